package lab

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/sign"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

// TestResolverOutcome: an answer of the validating resolver counts as
// validated only with AD, the rcode the zone gives and, for a name that
// exists, a record of the type asked; SERVFAIL (unbound's answer to bogus
// data), no AD and no answer are told apart.
func TestResolverOutcome(t *testing.T) {
	www := resolverQueries[0]
	nx := resolverQueries[1]
	msg := func(rcode int, ad bool, rrs ...string) *dns.Msg {
		m := new(dns.Msg)
		m.Response, m.Rcode, m.AuthenticatedData = true, rcode, ad
		for _, s := range rrs {
			rr, err := dns.NewRR(s)
			if err != nil {
				t.Fatal(err)
			}
			m.Answer = append(m.Answer, rr)
		}
		return m
	}
	a := "www." + DNSSECZone + " 5 IN A 192.0.2.80"
	for _, tc := range []struct {
		name string
		q    resolverQuery
		m    *dns.Msg
		want string
	}{
		{"validated", www, msg(dns.RcodeSuccess, true, a), outValidated},
		{"no answer", www, nil, outLost},
		{"servfail", www, msg(dns.RcodeServerFailure, false), outServFail},
		{"servfail with AD", www, msg(dns.RcodeServerFailure, true), outServFail},
		{"insecure", www, msg(dns.RcodeSuccess, false, a), outBogus},
		{"nxdomain validated", nx, msg(dns.RcodeNameError, true), outValidated},
		{"nxdomain insecure", nx, msg(dns.RcodeNameError, false), outBogus},
		{"nodata for a name that has the record", www, msg(dns.RcodeSuccess, true), outWrong},
		{"nxdomain for a name that exists", www, msg(dns.RcodeNameError, true), outWrong},
		{"an answer for a name that does not exist", nx, msg(dns.RcodeSuccess, true, a), outWrong},
		{"refused", www, msg(dns.RcodeRefused, false), outBogus},
	} {
		if got := resolverOutcome(tc.q, tc.m); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// TestTallyRollover: a rollover's line counts the queries sent in its
// window, each by its outcome, and shows the first failures.
func TestTallyRollover(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	res := []resolverResult{
		{at(-0.1), outServFail, "before"},
		{at(0), outValidated, "a"},
		{at(1), outValidated, "b"},
		{at(2), outServFail, "c"},
		{at(3), outBogus, "d"},
		{at(4), outLost, "e"},
		{at(5), outWrong, "f"},
		{at(10), outValidated, "at the end: out"},
	}
	var line RolloverLine
	failures := tallyRollover(&line, res, t0, at(10))
	want := RolloverLine{Queries: 6, Validated: 2, ServFail: 1, Bogus: 1, Lost: 1, Wrong: 1, DurationS: 10}
	if d := cmp.Diff(want, line); d != "" {
		t.Errorf("line (-want +got):\n%s", d)
	}
	if len(failures) != 4 || !strings.Contains(failures[0], "servfail") || !strings.Contains(failures[0], "c") {
		t.Errorf("failures %q, want the 4 in the window, servfail of c first", failures)
	}
	if got := len(line.Failures()); got != 4 {
		t.Errorf("Failures() = %q, want 4 (servfail, bogus, lost, wrong)", line.Failures())
	}
	ok := RolloverLine{Rollover: "zsk", Queries: 3, Validated: 3}
	if f := ok.Failures(); len(f) != 0 {
		t.Errorf("a clean line fails: %q", f)
	}
	if f := (RolloverLine{Rollover: "zsk"}).Failures(); len(f) != 1 {
		t.Errorf("a line without a validated answer: %q, want one failure", f)
	}
}

// TestCDSToDS: the parent's DS RRset is the child's CDS RRset, less a
// delete request, sorted, once each.
func TestCDSToDS(t *testing.T) {
	var rrs []dns.RR
	for _, s := range []string{
		DNSSECZone + " 5 IN CDS 2371 13 2 1f987cc6583e92df0890718c42",
		DNSSECZone + " 5 IN CDS 1 13 2 AB",
		DNSSECZone + " 5 IN CDNSKEY 257 3 13 AAAA",
		DNSSECZone + " 5 IN CDS 1 13 2 ab",
		DNSSECZone + " 5 IN CDS 0 0 0 00",
	} {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		rrs = append(rrs, rr)
	}
	want := []string{"1 13 2 AB", "2371 13 2 1F987CC6583E92DF0890718C42"}
	if d := cmp.Diff(want, cdsToDS(rrs)); d != "" {
		t.Errorf("cdsToDS (-want +got):\n%s", d)
	}
	ds, err := dns.NewRR(DNSSECZone + " 5 IN DS 2371 13 2 1f987cc6583e92df0890718c42")
	if err != nil {
		t.Fatal(err)
	}
	if got := dsRecords([]dns.RR{ds}); !slices.Equal(got, want[1:]) {
		t.Errorf("dsRecords = %q, want %q (the form cdsToDS writes)", got, want[1:])
	}
}

// TestRolloverPolicies: the policies the scenario gives through the API are
// what the API takes (decoded as the handler does, then validated): a KSK
// and a ZSK with CDS and TTLs of seconds, the lifetime that starts a
// rollover longer than a rollover; the parent's one CSK that never rolls.
func TestRolloverPolicies(t *testing.T) {
	decode := func(raw []byte) sign.Policy {
		t.Helper()
		d := api.PolicyOf(sign.DefaultPolicy())
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		p, err := d.Policy()
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		return p
	}
	for _, alg := range rolloverAlgorithms {
		for _, tc := range []struct{ zsk, ksk time.Duration }{{0, 0}, {rolloverLifetime, 0}, {0, rolloverLifetime}} {
			raw, err := rolloverPolicy(alg, tc.zsk, tc.ksk)
			if err != nil {
				t.Fatal(err)
			}
			p := decode(raw)
			if p.Algorithm.String() != alg || p.CSK || !p.CDS || p.ZSKLifetime != tc.zsk || p.KSKLifetime != tc.ksk ||
				p.DNSKEYTTL != rolloverTTL || p.ZoneMaxTTL != rolloverTTL || p.PropagationDelay != rolloverPropagation {
				t.Errorf("%s: policy %+v", raw, p)
			}
		}
	}
	raw, err := parentPolicy()
	if err != nil {
		t.Fatal(err)
	}
	if p := decode(raw); !p.CSK || p.KSKLifetime != 0 || p.DNSKEYTTL != rolloverTTL {
		t.Errorf("parent policy %+v", p)
	}
}

// TestRolloverZones: both zones parse, every TTL is the scenario's (the
// policies' zone_max_ttl refuses more), and the parent delegates the child
// to the anycast address.
func TestRolloverZones(t *testing.T) {
	parent, child := rolloverZones(netip.MustParseAddr("192.0.2.53"))
	for _, z := range []struct {
		name string
		recs []string
	}{{DNSSECParentZone, parent}, {DNSSECZone, child}} {
		rrs, err := api.ParseRecords(z.name, z.recs)
		if err != nil {
			t.Fatalf("%s: %v", z.name, err)
		}
		for _, rr := range rrs {
			if rr.Header().Ttl != uint32(rolloverTTL.Seconds()) {
				t.Errorf("%s: %s: TTL %d, want %v", z.name, rr, rr.Header().Ttl, rolloverTTL)
			}
			if soa, ok := rr.(*dns.SOA); ok && soa.Minttl != uint32(rolloverTTL.Seconds()) {
				t.Errorf("%s: negative TTL %d, want %v", z.name, soa.Minttl, rolloverTTL)
			}
		}
		if z.name == DNSSECParentZone {
			var ns, glue bool
			for _, rr := range rrs {
				switch v := rr.(type) {
				case *dns.NS:
					ns = ns || (v.Hdr.Name == DNSSECZone && v.Ns == "ns1."+DNSSECZone)
				case *dns.A:
					glue = glue || (v.Hdr.Name == "ns1."+DNSSECZone && v.A.String() == "192.0.2.53")
				}
			}
			if !ns || !glue {
				t.Errorf("parent: delegation %v, glue %v; want both", ns, glue)
			}
		}
	}
}

// TestUnboundConfig: the resolver's configuration validates from the
// anchor file, stubs both zones to the anycast address, caps its cache
// TTLs, keeps its files in the lab directory and runs without chroot or a
// user change; unbound-checkconf accepts it.
func TestUnboundConfig(t *testing.T) {
	dir := t.TempDir()
	anchor := filepath.Join(dir, "unbound.anchor")
	if err := os.WriteFile(anchor, []byte(DNSSECParentZone+" IN DS 46530 13 2 AEE043D2B71522B59DED78E0C5C8FBA017B39A64017B3E2B44CFA4AC0329AE60\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := unboundConfig(dir, "A-client", netip.MustParseAddr("192.0.2.53"), anchor)
	for _, want := range []string{
		"\tval-log-level: 2\n", "\tchroot: \"\"\n", "\tusername: \"\"\n", "\tpidfile: \"" + dir + "/unbound.A-client.pid\"\n",
		"\ttrust-anchor-file: \"" + anchor + "\"\n", "\tcache-max-ttl: 5\n", "\tinterface: 127.0.0.1@5300\n",
		"stub-zone:\n\tname: \"" + DNSSECParentZone + "\"\n\tstub-addr: 192.0.2.53\n",
		"stub-zone:\n\tname: \"" + DNSSECZone + "\"\n\tstub-addr: 192.0.2.53\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	chk := testkit.RequireTool(t, "unbound-checkconf", "unbound")
	path := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(chk, path).CombinedOutput(); err != nil {
		t.Errorf("unbound-checkconf: %v\n%s\n%s", err, out, conf)
	}
}

// TestControlConfigSigning: the control plane the lab runs can sign: its
// configuration names the key file the lab writes beside it.
func TestControlConfigSigning(t *testing.T) {
	p := testPlan(t, false)
	ctl, err := p.newControlPlan()
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.renderControlConfig(ctl, 0)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg, err := config.ParseControl(b, filepath.Join(dir, controlFile))
	if err != nil {
		t.Fatalf("anycastd rejects the generated control config: %v\n%s", err, b)
	}
	if want := filepath.Join(dir, controlKeyFile); cfg.Signing.KeyFile != want {
		t.Errorf("signing.key_file %q, want %q", cfg.Signing.KeyFile, want)
	}
}
