package update

import (
	"testing"

	"github.com/miekg/dns"
)

// FuzzPlan feeds arbitrary messages to the UPDATE parser and planner:
// whatever the bytes, they must not panic, a failure carries an rcode of
// RFC 2136, and every RRset planned holds only records of its own owner
// and type, in the zone (what the store would otherwise refuse).
func FuzzPlan(f *testing.F) {
	seed := func(prereq, upd []dns.RR) {
		m := new(dns.Msg)
		m.SetUpdate("example.com.")
		m.Answer, m.Ns = prereq, upd
		m.SetTsig("k.", dns.HmacSHA256, 300, 0)
		if b, err := m.Pack(); err == nil {
			f.Add(b)
		}
	}
	txt, _ := dns.NewRR(`_acme-challenge.www.example.com. 60 IN TXT "token"`)
	a, _ := dns.NewRR("www.example.com. 0 IN A 192.0.2.10")
	del := dns.Copy(txt)
	del.Header().Class, del.Header().Ttl = dns.ClassNONE, 0
	soa, _ := dns.NewRR("example.com. 3600 IN SOA ns1.example.com. h.example.com. 200 1 1 1 1")
	seed(nil, []dns.RR{txt})
	seed([]dns.RR{hdr("www.example.com.", dns.ClassANY, dns.TypeANY)}, []dns.RR{del})
	seed([]dns.RR{a, hdr("x.example.com.", dns.ClassNONE, dns.TypeA)}, []dns.RR{hdr("www.example.com.", dns.ClassANY, dns.TypeANY), soa})
	seed([]dns.RR{hdr("www.example.com.", dns.ClassNONE, dns.TypeTXT)}, []dns.RR{hdr("example.com.", dns.ClassANY, dns.TypeNS), hdr("alias.example.com.", dns.ClassANY, dns.TypeCNAME)})
	z := testZone(f)
	pol := mustPolicy(f, append(allowAll, Rule{Key: "k.", Match: MatchWildcard, Name: "*.example.com."}))
	valid := map[int]bool{dns.RcodeFormatError: true, dns.RcodeNotAuth: true, dns.RcodeNotZone: true, dns.RcodeNameError: true,
		dns.RcodeYXDomain: true, dns.RcodeYXRrset: true, dns.RcodeNXRrset: true, dns.RcodeRefused: true}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m dns.Msg
		if m.Unpack(b) != nil {
			return
		}
		m.Opcode = dns.OpcodeUpdate
		r, err := Parse(&m)
		if err != nil {
			if !valid[rcodeOf(err)] {
				t.Fatalf("parse: %v", err)
			}
			return
		}
		if r.Zone != "example.com." {
			return
		}
		ws, err := Plan(z, r, "k.", pol)
		if err != nil {
			if !valid[rcodeOf(err)] {
				t.Fatalf("plan: %v", err)
			}
			return
		}
		for _, w := range ws {
			if !dns.IsSubDomain("example.com.", w.Name) {
				t.Fatalf("planned %s outside the zone", w.Name)
			}
			for _, rr := range w.RRs {
				if h := rr.Header(); dns.CanonicalName(h.Name) != w.Name || h.Rrtype != w.Type || h.Class != dns.ClassINET {
					t.Fatalf("RRset %s %s holds %s", w.Name, dns.Type(w.Type), rr)
				}
			}
		}
	})
}
