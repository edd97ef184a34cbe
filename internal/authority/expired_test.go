package authority

import (
	"testing"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/zone"
)

// TestExpiredZone: a zone marked expired in the set answers SERVFAIL (no
// AA, no records) for every name at or below it, its own delegations and
// child zones included, while the other zones of the set answer as usual.
func TestExpiredZone(t *testing.T) {
	build := func(origin, text string) *zone.Zone {
		t.Helper()
		rs, err := zone.Parse(stringsReader(text), origin, "test")
		if err != nil {
			t.Fatal(err)
		}
		z, err := zone.Build(origin, rs)
		if err != nil {
			t.Fatal(err)
		}
		return z
	}
	parent := build("example.", "$ORIGIN example.\n@ 300 SOA ns h 1 2 3 4 5\n@ 300 NS ns\nns 300 A 192.0.2.1\n"+
		"www 300 A 192.0.2.80\nsub 300 NS ns.sub\nns.sub 300 A 192.0.2.2\n")
	child := build("child.example.", "$ORIGIN child.example.\n@ 300 SOA ns h 1 2 3 4 5\n@ 300 NS ns\nns 300 A 192.0.2.3\nwww 300 A 192.0.2.81\n")
	other := build("other.", "$ORIGIN other.\n@ 300 SOA ns h 1 2 3 4 5\n@ 300 NS ns\nns 300 A 192.0.2.4\n")

	tests := []struct {
		name      string
		set       *zone.Set
		qname     string
		qtype     uint16
		rcode     int
		aa        bool
		nAnswered int // records in all sections
	}{
		{"expired apex", zone.NewSet(other).WithExpired(parent), "example.", dns.TypeSOA, dns.RcodeServerFailure, false, 0},
		{"expired name", zone.NewSet(other).WithExpired(parent), "www.example.", dns.TypeA, dns.RcodeServerFailure, false, 0},
		{"expired nxdomain", zone.NewSet(other).WithExpired(parent), "nope.example.", dns.TypeA, dns.RcodeServerFailure, false, 0},
		{"expired referral", zone.NewSet(other).WithExpired(parent), "a.sub.example.", dns.TypeA, dns.RcodeServerFailure, false, 0},
		{"other zone unaffected", zone.NewSet(other).WithExpired(parent), "other.", dns.TypeSOA, dns.RcodeSuccess, true, 1},
		{"outside every zone", zone.NewSet(other).WithExpired(parent), "example.net.", dns.TypeA, dns.RcodeRefused, false, 0},
		// The closest zone decides: an expired parent does not fail a
		// child that is served, an expired child is not answered from
		// its parent.
		{"served child of an expired parent", zone.NewSet(child).WithExpired(parent), "www.child.example.", dns.TypeA, dns.RcodeSuccess, true, 1},
		{"expired child of a served parent", zone.NewSet(parent).WithExpired(child), "www.child.example.", dns.TypeA, dns.RcodeServerFailure, false, 0},
		{"parent of an expired child", zone.NewSet(parent).WithExpired(child), "www.example.", dns.TypeA, dns.RcodeSuccess, true, 1},
		// Replacing the zone (a primary confirmed it) clears the mark.
		{"replaced", zone.NewSet(other).WithExpired(parent).With(parent), "www.example.", dns.TypeA, dns.RcodeSuccess, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, res := answer(t, tt.set, tt.qname, tt.qtype)
			if res.Rcode != tt.rcode || res.AA != tt.aa {
				t.Errorf("rcode %s aa %v, want %s aa %v", dns.RcodeToString[res.Rcode], res.AA, dns.RcodeToString[tt.rcode], tt.aa)
			}
			if n := len(m.Answer) + len(m.Ns) + len(m.Extra); n != tt.nAnswered {
				t.Errorf("%d records (answer %v, authority %v, additional %v), want %d", n, types(m.Answer), types(m.Ns), types(m.Extra), tt.nAnswered)
			}
		})
	}
}
