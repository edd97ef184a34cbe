package sign

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/testkit"
	"github.com/anycastdns/anycastdns/internal/zone"
)

func loadZone(t testing.TB, origin, path string) *zone.Zone {
	t.Helper()
	z, err := zone.Load(origin, path)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// testKeys makes the keys of a policy for zone: a CSK, or a KSK and a ZSK.
func testKeys(t testing.TB, zoneName string, p Policy) []*Key {
	t.Helper()
	roles := []Role{CSK}
	if !p.CSK {
		roles = []Role{KSK, ZSK}
	}
	var keys []*Key
	for _, r := range roles {
		k, err := GenerateKey(zoneName, r, p, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return keys
}

func newSigner(t testing.TB, p Policy, zoneName string) *Signer {
	t.Helper()
	s, err := New(p, zoneName, testKeys(t, zoneName, p))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// policies are the combinations the verifiers check.
func policies() map[string]Policy {
	out := map[string]Policy{}
	for _, alg := range []Algorithm{ECDSAP256SHA256, ED25519, RSASHA256} {
		p := policyFor(alg)
		out[alg.String()+"/nsec/csk"] = p
		p.CSK = false
		p.NSEC3 = true
		out[alg.String()+"/nsec3/ksk+zsk"] = p
	}
	p := DefaultPolicy()
	p.NSEC3, p.NSEC3OptOut, p.CDS = true, true, true
	out["ECDSAP256SHA256/nsec3-opt-out/cds"] = p
	p = DefaultPolicy()
	p.NSEC3, p.NSEC3SaltLength = true, 8
	out["ECDSAP256SHA256/nsec3-salt"] = p
	return out
}

func TestSignVerifies(t *testing.T) {
	for name, p := range policies() {
		t.Run(name, func(t *testing.T) {
			z := loadZone(t, "example.com.", "testdata/example.com.zone")
			s := newSigner(t, p, "example.com.")
			now := time.Now()
			sz, err := s.Sign(z, now)
			if err != nil {
				t.Fatal(err)
			}
			checkSigned(t, s, sz, now)
			verifyExternal(t, sz)
			// Signing a signed zone again gives the same zone but for
			// the signatures' bytes.
			again, err := s.Sign(sz, now.Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if d := diffModuloSigs(t, sz, again); d != "" {
				t.Errorf("signed twice differs:\n%s", d)
			}
		})
	}
}

// checkSigned verifies every signature with miekg/dns, and the rules the
// external verifiers do not all check: what is signed and what is not.
func checkSigned(t *testing.T, s *Signer, z *zone.Zone, now time.Time) {
	t.Helper()
	rrs, err := z.RRs()
	if err != nil {
		t.Fatal(err)
	}
	keys := map[uint16]*dns.DNSKEY{}
	sets := map[string][]dns.RR{}
	var sigs []*dns.RRSIG
	for _, rr := range rrs {
		h := rr.Header()
		switch v := rr.(type) {
		case *dns.DNSKEY:
			if h.Name == z.Origin {
				keys[v.KeyTag()] = v
			}
		case *dns.RRSIG:
			sigs = append(sigs, v)
			continue
		}
		k := strings.ToLower(h.Name) + " " + dns.Type(h.Rrtype).String()
		sets[k] = append(sets[k], rr)
	}
	signed := map[string]int{}
	for _, sig := range sigs {
		k := strings.ToLower(sig.Hdr.Name) + " " + dns.Type(sig.TypeCovered).String()
		key := keys[sig.KeyTag]
		if key == nil {
			t.Errorf("%s: signed by key %d, not in the DNSKEY RRset", k, sig.KeyTag)
			continue
		}
		if err := sig.Verify(key, sets[k]); err != nil {
			t.Errorf("%s: signature by %d does not verify: %v", k, sig.KeyTag, err)
		}
		if !sig.ValidityPeriod(now) {
			t.Errorf("%s: signature not valid now", k)
		}
		if sig.TypeCovered == dns.TypeDNSKEY && key.Flags&1 == 0 {
			t.Errorf("%s signed by a ZSK", k)
		}
		signed[k]++
	}
	for k, rrs := range sets {
		h := rrs[0].Header()
		n := z.Lookup(mustWire(t, h.Name))
		auth := n.Cut == nil || (n.Cut == n && (h.Rrtype == dns.TypeDS || h.Rrtype == dns.TypeNSEC))
		if auth && signed[k] == 0 {
			t.Errorf("%s: authoritative RRset without signature", k)
		}
		if !auth && signed[k] > 0 {
			t.Errorf("%s: not authoritative (glue or delegation) but signed", k)
		}
	}
	if !z.Signed || (z.NSEC3 != nil) != s.policy.NSEC3 {
		t.Errorf("zone Signed=%v NSEC3=%v", z.Signed, z.NSEC3)
	}
}

func mustWire(t testing.TB, name string) []byte {
	t.Helper()
	w, err := zone.NameWire(name)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// verifyExternal runs ldns-verify-zone, kzonecheck and dnssec-verify on the
// zone.
func verifyExternal(t *testing.T, z *zone.Zone) {
	t.Helper()
	for _, f := range verifierFailures(t, z) {
		t.Error(f)
	}
}

// verifierFailures returns what each verifier that fails says.
func verifierFailures(t *testing.T, z *zone.Zone) []string {
	t.Helper()
	var fails []string
	// With a CSK alone, dnssec-verify must be told that KSKs sign all.
	csk := []string{}
	if ks := z.Apex.Get(dns.TypeDNSKEY); ks != nil {
		csk = []string{"-z"}
		for rd := range ks.All() {
			if rd[1]&1 == 0 {
				csk = nil
			}
		}
	}
	path := filepath.Join(t.TempDir(), "signed.zone")
	var buf bytes.Buffer
	if _, err := z.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, v := range []struct {
		tool, pkg string
		args      []string
	}{
		{"ldns-verify-zone", "ldnsutils", []string{"-V", "1", path}},
		{"kzonecheck", "knot-dnssecutils", []string{"-o", z.Origin, "-d", "on", path}},
		{"dnssec-verify", "bind9-utils", append(csk, "-q", "-o", z.Origin, path)},
	} {
		bin := testkit.RequireTool(t, v.tool, v.pkg)
		out, err := exec.CommandContext(ctx, bin, v.args...).CombinedOutput()
		if err != nil {
			fails = append(fails, fmt.Sprintf("%s %s: %v\n%s", v.tool, strings.Join(v.args, " "), err, out))
		}
	}
	if len(fails) > 0 && testing.Verbose() {
		t.Logf("zone:\n%s", buf.String())
	}
	return fails
}

// TestVerifiersCatchBrokenZones proves the verifiers fail on a zone with a
// signature missing and on one with a hole in its chain.
func TestVerifiersCatchBrokenZones(t *testing.T) {
	for _, nsec3 := range []bool{false, true} {
		p := DefaultPolicy()
		p.NSEC3 = nsec3
		z := loadZone(t, "example.com.", "testdata/example.com.zone")
		s := newSigner(t, p, "example.com.")
		sz, err := s.Sign(z, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		web := sz.Lookup(mustWire(t, "web.example.com."))
		rd, _ := web.Get(dns.TypeA).SigHead()
		noSig, err := sz.Apply([]zone.RR{{Name: web.Name, Type: dns.TypeRRSIG, TTL: web.Get(dns.TypeA).SigTTL(), Rdata: rd}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if f := verifierFailures(t, noSig); len(f) != 3 {
			t.Errorf("nsec3=%v, web A unsigned: %d verifiers fail, want 3: %q", nsec3, len(f), f)
		}
		// A name added without its chain record.
		add, err := zone.WireRR(mustRR(t, "new.example.com. 3600 IN A 192.0.2.99"))
		if err != nil {
			t.Fatal(err)
		}
		hole, err := sz.Apply(nil, []zone.RR{add})
		if err != nil {
			t.Fatal(err)
		}
		if f := verifierFailures(t, hole); len(f) < 2 {
			t.Errorf("nsec3=%v, name outside the chain: %d verifiers fail, want at least 2: %q", nsec3, len(f), f)
		}
	}
}

func mustRR(t testing.TB, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

// diffModuloSigs compares two zones with the signatures' inception,
// expiration and bytes set aside.
func diffModuloSigs(t testing.TB, a, b *zone.Zone) string {
	t.Helper()
	norm := func(z *zone.Zone) map[string]bool {
		rrs, err := z.RRs()
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, rr := range rrs {
			if sig, ok := rr.(*dns.RRSIG); ok {
				c := *sig
				c.Inception, c.Expiration, c.Signature = 0, 0, ""
				rr = &c
			}
			m[strings.ToLower(rr.String())] = true
		}
		return m
	}
	ma, mb := norm(a), norm(b)
	var out []string
	for k := range ma {
		if !mb[k] {
			out = append(out, "- "+k)
		}
	}
	for k := range mb {
		if !ma[k] {
			out = append(out, "+ "+k)
		}
	}
	if len(out) > 40 {
		out = append(out[:40], "...")
	}
	return strings.Join(out, "\n")
}
