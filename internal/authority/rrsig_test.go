package authority

import (
	"slices"
	"testing"

	"github.com/miekg/dns"
)

func rrsigCovers(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if s, ok := rr.(*dns.RRSIG); ok {
			out = append(out, s.Hdr.Name+" "+dns.TypeToString[s.TypeCovered])
		}
	}
	return out
}

// TestRRSIGQuery: QTYPE=RRSIG is answered with the signatures of the lowest
// signed type at the name, with or without DO, as Knot answers it: no NODATA
// and no proof beside them (except the wildcard proof of a synthesized
// answer), no CNAME followed.
func TestRRSIGQuery(t *testing.T) {
	set := loadSet(t, append(append([]string(nil), parentZones...), childZones...)...)
	tests := []struct {
		q      ask
		rcode  int
		covers []string // RRSIGs in the answer: owner and type covered
		ns     []string
	}{
		{ask{"www.nsec.example.", dns.TypeRRSIG, true, 1232}, dns.RcodeSuccess, []string{"www.nsec.example. A"}, nil},
		{ask{"www.nsec.example.", dns.TypeRRSIG, false, 512}, dns.RcodeSuccess, []string{"www.nsec.example. A"}, nil},
		{ask{"www.nsec3.example.", dns.TypeRRSIG, true, 0}, dns.RcodeSuccess, []string{"www.nsec3.example. A"}, nil},
		{ask{"nsec.example.", dns.TypeRRSIG, true, 1232}, dns.RcodeSuccess, []string{"nsec.example. A"}, nil},
		{ask{"kid.nsec.example.", dns.TypeRRSIG, true, 1232}, dns.RcodeSuccess, []string{"kid.nsec.example. A"}, nil},
		{ask{"alias.nsec.example.", dns.TypeRRSIG, true, 1232}, dns.RcodeSuccess, []string{"alias.nsec.example. CNAME"}, nil},
		{ask{"host.wild.nsec.example.", dns.TypeRRSIG, true, 1232}, dns.RcodeSuccess, []string{"host.wild.nsec.example. A"},
			[]string{"*.wild.nsec.example. NSEC", "*.wild.nsec.example. RRSIG"}},
		{ask{"host.wild.nsec.example.", dns.TypeRRSIG, false, 1232}, dns.RcodeSuccess, []string{"host.wild.nsec.example. A"}, nil},
		// No signatures at the name: NODATA, as for any absent type.
		{ask{"www.example.com.", dns.TypeRRSIG, true, 1232}, dns.RcodeSuccess, nil, []string{"example.com. SOA"}},
		{ask{"ent.nsec.example.", dns.TypeRRSIG, false, 1232}, dns.RcodeSuccess, nil, []string{"nsec.example. SOA"}},
	}
	for _, tt := range tests {
		t.Run(tt.q.String(), func(t *testing.T) {
			m, res := run(t, set, tt.q)
			if res.Rcode != tt.rcode || !res.AA || res.TC {
				t.Errorf("rcode %s aa=%v tc=%v, want %s aa", dns.RcodeToString[res.Rcode], res.AA, res.TC, dns.RcodeToString[tt.rcode])
			}
			if len(rrsigCovers(m.Answer)) != len(m.Answer) {
				t.Errorf("answer has records other than RRSIG: %q", types(m.Answer))
			}
			if got := rrsigCovers(m.Answer); !slices.Equal(got, tt.covers) {
				t.Errorf("answer covers %q, want %q", got, tt.covers)
			}
			if got := types(m.Ns); !slices.Equal(got, tt.ns) {
				t.Errorf("authority %q, want %q", got, tt.ns)
			}
		})
	}
}
