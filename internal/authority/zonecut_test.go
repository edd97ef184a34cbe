package authority

import (
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// nsec3Owner is the NSEC3 owner name of name in the test zones (SHA-1, no
// extra iterations, no salt).
func nsec3Owner(name, zone string) string {
	return strings.ToLower(dns.HashName(name, dns.SHA1, 0, "")) + "." + zone
}

// TestDSAtZoneCut: a DS query for the apex of a child zone served beside
// its parent is answered from the parent (RFC 4034 §5, RFC 4035 §3.1.4.1):
// the parent's DS RRset, or its NODATA with the parent's SOA and, with DO
// in a signed parent, the parent's NSEC/NSEC3 proof. Without the parent the
// child answers; without the child the parent does, as before.
func TestDSAtZoneCut(t *testing.T) {
	all := loadSet(t, append(append([]string(nil), parentZones...), childZones...)...)
	parents := loadSet(t, parentZones...)
	children := loadSet(t, childZones...)
	tests := []struct {
		set    string
		q      ask
		zone   string
		rcode  int
		answer []string
		ns     []string
	}{
		{"all", ask{"kid.example.com.", dns.TypeDS, false, 512}, "example.com.", dns.RcodeSuccess,
			[]string{"kid.example.com. DS"}, nil},
		{"all", ask{"kid.example.com.", dns.TypeDS, true, 1232}, "example.com.", dns.RcodeSuccess,
			[]string{"kid.example.com. DS"}, nil},
		{"all", ask{"kidnods.example.com.", dns.TypeDS, true, 1232}, "example.com.", dns.RcodeSuccess,
			nil, []string{"example.com. SOA"}},
		{"all", ask{"orphan.example.com.", dns.TypeDS, false, 512}, "example.com.", dns.RcodeNameError,
			nil, []string{"example.com. SOA"}},
		{"all", ask{"kid.nsec.example.", dns.TypeDS, true, 1232}, "nsec.example.", dns.RcodeSuccess,
			[]string{"kid.nsec.example. DS", "kid.nsec.example. RRSIG"}, nil},
		{"all", ask{"kid.nsec.example.", dns.TypeDS, false, 512}, "nsec.example.", dns.RcodeSuccess,
			[]string{"kid.nsec.example. DS"}, nil},
		{"all", ask{"kidnods.nsec.example.", dns.TypeDS, true, 1232}, "nsec.example.", dns.RcodeSuccess,
			nil, []string{"nsec.example. SOA", "nsec.example. RRSIG", "kidnods.nsec.example. NSEC", "kidnods.nsec.example. RRSIG"}},
		{"all", ask{"kidnods.nsec.example.", dns.TypeDS, false, 1232}, "nsec.example.", dns.RcodeSuccess,
			nil, []string{"nsec.example. SOA"}},
		{"all", ask{"kid.nsec3.example.", dns.TypeDS, true, 1232}, "nsec3.example.", dns.RcodeSuccess,
			[]string{"kid.nsec3.example. DS", "kid.nsec3.example. RRSIG"}, nil},
		{"all", ask{"kidnods.nsec3.example.", dns.TypeDS, true, 1232}, "nsec3.example.", dns.RcodeSuccess,
			nil, []string{"nsec3.example. SOA", "nsec3.example. RRSIG",
				nsec3Owner("kidnods.nsec3.example.", "nsec3.example.") + " NSEC3",
				nsec3Owner("kidnods.nsec3.example.", "nsec3.example.") + " RRSIG"}},
		// Below the child's apex, and other types at it: the child's.
		{"all", ask{"www.kid.example.com.", dns.TypeDS, false, 512}, "kid.example.com.", dns.RcodeSuccess,
			nil, []string{"kid.example.com. SOA"}},
		{"all", ask{"kid.example.com.", dns.TypeSOA, false, 512}, "kid.example.com.", dns.RcodeSuccess,
			[]string{"kid.example.com. SOA"}, nil},
		{"all", ask{"kid.nsec.example.", dns.TypeDNSKEY, true, 1232}, "kid.nsec.example.", dns.RcodeSuccess,
			[]string{"kid.nsec.example. DNSKEY", "kid.nsec.example. RRSIG"}, nil},
		// Only the child: its own NODATA (and proof).
		{"children", ask{"kid.example.com.", dns.TypeDS, false, 512}, "kid.example.com.", dns.RcodeSuccess,
			nil, []string{"kid.example.com. SOA"}},
		{"children", ask{"kid.nsec.example.", dns.TypeDS, true, 1232}, "kid.nsec.example.", dns.RcodeSuccess,
			nil, []string{"kid.nsec.example. SOA", "kid.nsec.example. RRSIG", "kid.nsec.example. NSEC", "kid.nsec.example. RRSIG"}},
		{"all", ask{"nsec.example.", dns.TypeDS, true, 1232}, "nsec.example.", dns.RcodeSuccess,
			nil, []string{"nsec.example. SOA", "nsec.example. RRSIG", "nsec.example. NSEC", "nsec.example. RRSIG"}},
		// Only the parent: the DS at its delegation.
		{"parents", ask{"kid.example.com.", dns.TypeDS, false, 512}, "example.com.", dns.RcodeSuccess,
			[]string{"kid.example.com. DS"}, nil},
		{"parents", ask{"kidnods.nsec.example.", dns.TypeDS, true, 1232}, "nsec.example.", dns.RcodeSuccess,
			nil, []string{"nsec.example. SOA", "nsec.example. RRSIG", "kidnods.nsec.example. NSEC", "kidnods.nsec.example. RRSIG"}},
	}
	for _, tt := range tests {
		t.Run(tt.set+"/"+tt.q.String(), func(t *testing.T) {
			set := all
			switch tt.set {
			case "parents":
				set = parents
			case "children":
				set = children
			}
			m, res := run(t, set, tt.q)
			if res.Zone == nil || res.Zone.Origin != tt.zone {
				t.Errorf("answered from %v, want %s", res.Zone, tt.zone)
			}
			if res.Rcode != tt.rcode || !res.AA || res.TC {
				t.Errorf("rcode %s aa=%v tc=%v, want %s aa", dns.RcodeToString[res.Rcode], res.AA, res.TC, dns.RcodeToString[tt.rcode])
			}
			if got := types(m.Answer); !slices.Equal(got, tt.answer) {
				t.Errorf("answer %q, want %q", got, tt.answer)
			}
			if got := types(m.Ns); !slices.Equal(got, tt.ns) {
				t.Errorf("authority %q, want %q", got, tt.ns)
			}
		})
	}
}
