package knotdiff

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

var dump = flag.Bool("dump", false, "log both servers' full responses for every query")

// TestKnotDiff sends every query of queries() to Knot and to anycastd, both
// serving the zones in testdata/, and reports each response that differs
// other than in an accepted difference.
func TestKnotDiff(t *testing.T) {
	skipShort(t)
	zones := testZones()
	zoneData := loadZoneData(t, zones)
	knot := startKnot(t, zones)
	ours := startAnycastd(t, testkit.BuildAnycastd(t), zones)
	accepted := acceptedDifferences(zoneData)

	used := map[string][]string{}
	for i, q := range queries() {
		t.Run(q.name(), func(t *testing.T) {
			id := uint16(0x4000 + i)
			kv := askView(t, &q, knot.addr, id)
			if err := q.want.check(kv); err != nil {
				t.Errorf("Knot's answer is not what this query is meant to test, fix the query or the zone: %v", err)
			}
			ov := askView(t, &q, ours.addr, id)
			both := fmt.Sprintf("knot:\n%s\nanycastd:\n%s", describe(kv), describe(ov))
			if *dump {
				t.Log(both)
			}
			diff, ids := compareViews(&q, kv, ov, accepted) // normalises kv and ov
			for _, a := range ids {
				used[a] = append(used[a], q.name())
			}
			if diff != "" {
				t.Errorf("%s: anycastd differs from Knot (-knot +anycastd):\n%s", q.name(), diff)
				if len(ids) > 0 {
					t.Logf("accepted differences already applied: %s", strings.Join(ids, ", "))
				}
				if !*dump {
					t.Logf("full responses as received:\n%s", both)
				}
			}
		})
	}
	for _, a := range accepted {
		if names := used[a.id]; len(names) > 0 {
			t.Logf("accepted difference %q applied to %d queries: %s", a.id, len(names), strings.Join(names, "; "))
		}
	}
}

// TestKnotOracle runs every query against Knot alone and checks that Knot's
// answer is what the query is meant to test (its want). It guards the test
// zones and the query list: a typo in a zone turns a wildcard test into an
// NXDOMAIN test here, not silently in the comparison.
func TestKnotOracle(t *testing.T) {
	skipShort(t)
	zones := testZones()
	knot := startKnot(t, zones)
	seen := map[string]bool{}
	for i, q := range queries() {
		name := q.name()
		if seen[name] {
			t.Errorf("two queries are both named %q", name)
		}
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			v := askView(t, &q, knot.addr, uint16(0x2000+i))
			if *dump {
				t.Logf("knot:\n%s", describe(v))
			}
			if err := q.want.check(v); err != nil {
				t.Error(err)
			}
			if v.answered && v.unpackErr == "" && !v.idEchoed {
				t.Error("Knot did not echo the query ID")
			}
		})
	}
	if n := len(queries()); n < 100 {
		t.Errorf("only %d queries; the differential test is meant to send 100-200", n)
	}
}

// TestZonesLoadInKnot runs Knot's own zone check, with every semantic
// check on, over the test zones, so that a broken test zone is reported as
// such and not as a difference between the servers.
func TestZonesLoadInKnot(t *testing.T) {
	knotc := testkit.RequireTool(t, "knotc", "knot")
	dir := t.TempDir()
	conf := writeKnotConfig(t, dir, testkit.FreePort(t), testZones(), true)
	out, err := execOutput(knotc, "-c", conf, "-f", "zone-check")
	if err != nil {
		t.Fatalf("knotc zone-check: %v\n%s", err, out)
	}
	if strings.Contains(out, "warning") || strings.Contains(out, "error") {
		t.Errorf("knotc zone-check reported problems:\n%s", out)
	}
}

// TestZonesParse parses every test zone with miekg/dns, the parser the node
// uses, so a zone that only Knot accepts is caught.
func TestZonesParse(t *testing.T) {
	data := loadZoneData(t, testZones())
	for _, z := range testZones() {
		if len(data[z.origin]) == 0 {
			t.Errorf("%s: no records at the apex", z.origin)
		}
	}
}

// TestSignedZones checks the pre-signed zones: every RRset is signed, every
// signature verifies with the zone's DNSKEY, and none expires before 2036,
// so the comparison of DNSSEC answers keeps meaning something.
func TestSignedZones(t *testing.T) {
	for _, z := range signedZones() {
		t.Run(z.origin, func(t *testing.T) {
			rrs := parseZone(t, z)
			var keys []*dns.DNSKEY
			sets := map[string][]dns.RR{}
			var sigs []*dns.RRSIG
			for _, rr := range rrs {
				switch r := rr.(type) {
				case *dns.RRSIG:
					sigs = append(sigs, r)
					continue
				case *dns.DNSKEY:
					keys = append(keys, r)
				}
				k := strings.ToLower(rr.Header().Name) + "/" + dns.Type(rr.Header().Rrtype).String()
				sets[k] = append(sets[k], rr)
			}
			if len(keys) == 0 {
				t.Fatal("no DNSKEY")
			}
			signed := map[string]bool{}
			expiry := time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC)
			for _, sig := range sigs {
				k := strings.ToLower(sig.Hdr.Name) + "/" + dns.Type(sig.TypeCovered).String()
				set := sets[k]
				if len(set) == 0 {
					t.Errorf("RRSIG for missing RRset %s", k)
					continue
				}
				key := keyFor(keys, sig.KeyTag)
				if key == nil {
					t.Errorf("%s: no DNSKEY with tag %d", k, sig.KeyTag)
					continue
				}
				if err := sig.Verify(key, set); err != nil {
					t.Errorf("%s: signature does not verify: %v", k, err)
				}
				if !sig.ValidityPeriod(expiry.Add(-time.Hour)) {
					t.Errorf("%s: signature not valid until %s", k, expiry)
				}
				signed[k] = true
			}
			for k, set := range sets {
				if set[0].Header().Rrtype == dns.TypeNS && !strings.EqualFold(set[0].Header().Name, z.origin) {
					continue // delegation NS: not signed (RFC 4035 §2.2)
				}
				if isGlue(k, z.origin, sets) {
					continue
				}
				if !signed[k] {
					t.Errorf("RRset %s is not signed", k)
				}
			}
		})
	}
}

// isGlue reports whether an RRset key names an address at or below one of
// the zone's delegations (a non-apex name with NS), which is not signed.
func isGlue(key, origin string, sets map[string][]dns.RR) bool {
	owner := strings.SplitN(key, "/", 2)[0]
	for k := range sets {
		cut, typ, _ := strings.Cut(k, "/")
		if typ == "NS" && cut != strings.ToLower(origin) && dns.IsSubDomain(cut, owner) && owner != cut {
			return true
		}
	}
	return false
}

func keyFor(keys []*dns.DNSKEY, tag uint16) *dns.DNSKEY {
	for _, k := range keys {
		if k.KeyTag() == tag {
			return k
		}
	}
	return nil
}

// TestSignScriptReproduces re-signs the zones with sign.sh into a copy of
// testdata/ and checks that the committed signed files are what it gives,
// so they cannot drift from their *.unsigned sources.
func TestSignScriptReproduces(t *testing.T) {
	testkit.RequireTool(t, "ldns-signzone", "ldnsutils")
	src := testdataDir(t)
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatalf("copy testdata: %v", err)
	}
	if out, err := execOutput("sh", filepath.Join(dst, "sign.sh")); err != nil {
		t.Fatalf("sign.sh: %v\n%s", err, out)
	}
	for _, z := range signedZones() {
		f := z.file
		want, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dst, f))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s: committed file differs from what sign.sh makes from its source; run testdata/sign.sh and commit the result", f)
		}
	}
}

// skipShort skips the end-to-end tests (servers, hundreds of queries) under
// go test -short.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test against Knot: skipped with -short")
	}
}

// askView sends q with the given ID and decodes what comes back.
func askView(t *testing.T, q *query, addr netip.AddrPort, id uint16) *view {
	t.Helper()
	wire, err := q.wire(id)
	if err != nil {
		t.Fatal(err)
	}
	wait, tries := 2*time.Second, 2
	if q.raw != nil || q.want.noAnswer {
		// Silence is a valid outcome here; on loopback an answer takes
		// microseconds, so half a second tells silence apart.
		wait, tries = 500*time.Millisecond, 1
	}
	if q.tcp {
		tries = 1
	}
	resp, err := ask(q.network(), addr, wire, wait, tries)
	if err != nil && !isNoAnswer(err) {
		t.Fatalf("%s to %s: %v", q.network(), addr, err)
	}
	return newView(id, resp, err)
}

// describe prints a view for -dump and failure logs.
func describe(v *view) string {
	if !v.answered {
		return "  (no answer: " + v.why + ")"
	}
	r := v.render()
	var b strings.Builder
	fmt.Fprintf(&b, "  %s %s [%s] id-echoed=%t\n", r.Opcode, r.Rcode, r.Flags, r.IDEchoed)
	if r.UnpackError != "" {
		fmt.Fprintf(&b, "  unpack error: %s\n", r.UnpackError)
	}
	for _, q := range r.Question {
		fmt.Fprintf(&b, "  question:   %s\n", q)
	}
	for i, sec := range [][]string{r.Answer, r.Authority, r.Additional} {
		for _, rr := range sec {
			fmt.Fprintf(&b, "  %-11s %s\n", sectionNames[i]+":", rr)
		}
	}
	if e := r.EDNS; e != nil {
		fmt.Fprintf(&b, "  edns:       %+v\n", *e)
	}
	return b.String()
}

// loadZoneData parses the test zones into records by lower-case owner.
func loadZoneData(t *testing.T, zones []testZone) map[string][]dns.RR {
	t.Helper()
	data := map[string][]dns.RR{}
	for _, z := range zones {
		for _, rr := range parseZone(t, z) {
			owner := strings.ToLower(rr.Header().Name)
			data[owner] = append(data[owner], rr)
		}
	}
	return data
}

func parseZone(t *testing.T, z testZone) []dns.RR {
	t.Helper()
	path := filepath.Join(testdataDir(t), z.file)
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("zone %s: %v", z.origin, err)
	}
	defer f.Close()
	zp := dns.NewZoneParser(f, z.origin, path)
	var rrs []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("parse zone %s: %v", z.origin, err)
	}
	if len(rrs) == 0 || rrs[0].Header().Rrtype != dns.TypeSOA {
		t.Fatalf("zone %s does not start with its SOA", z.origin)
	}
	if !slices.ContainsFunc(rrs, func(rr dns.RR) bool { return rr.Header().Rrtype == dns.TypeNS }) {
		t.Fatalf("zone %s has no NS", z.origin)
	}
	return rrs
}

// TestSignScriptFailsUnderCIWithoutTool runs TestSignScriptReproduces in a
// child process with CI=true and an empty PATH, where ldns-signzone cannot
// be found: like every test here that needs an external program, it must
// fail under CI instead of skipping silently.
func TestSignScriptFailsUnderCIWithoutTool(t *testing.T) {
	for _, dir := range testkit.SbinDirs {
		if _, err := os.Stat(filepath.Join(dir, "ldns-signzone")); err == nil {
			t.Skipf("ldns-signzone is in %s, which testkit.LookTool searches whatever PATH says", dir)
		}
	}
	bin, err := os.Executable()
	if err != nil {
		t.Fatalf("test binary: %v", err)
	}
	cmd := exec.Command(bin, "-test.run=^TestSignScriptReproduces$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "CI=true", "PATH="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--- FAIL: TestSignScriptReproduces") ||
		!strings.Contains(string(out), "ldns-signzone not found") {
		t.Errorf("TestSignScriptReproduces with CI=true and no ldns-signzone: want a failure naming the tool, got (err %v):\n%s", err, out)
	}
}
