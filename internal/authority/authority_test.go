package authority

import (
	"testing"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/wire"
	"github.com/anycastdns/anycastdns/internal/zone"
)

func answer(t *testing.T, set *zone.Set, name string, qtype uint16) (*dns.Msg, Result) {
	t.Helper()
	q, err := zone.NameWire(name)
	if err != nil {
		t.Fatal(err)
	}
	var b wire.Builder
	b.Reset(nil, 65535)
	b.Header(1, 0x8000)
	b.Question(q, qtype, dns.ClassINET)
	var a Answerer
	res := a.Answer(set, Query{Name: q, Type: qtype, Class: dns.ClassINET}, &b)
	m := new(dns.Msg)
	if err := m.Unpack(b.Bytes()); err != nil {
		t.Fatalf("%s %s: %v", name, dns.TypeToString[qtype], err)
	}
	return m, res
}

func types(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, rr.Header().Name+" "+dns.TypeToString[rr.Header().Rrtype])
	}
	return out
}

func TestAnswer(t *testing.T) {
	z, err := zone.Load("example.", "testdata/example.zone")
	if err != nil {
		t.Fatal(err)
	}
	set := zone.NewSet(z)
	tests := []struct {
		name   string
		qtype  uint16
		rcode  int
		aa     bool
		answer []string
		ns     []string
		extra  []string
	}{
		{"www.example.", dns.TypeA, dns.RcodeSuccess, true, []string{"www.example. A"}, nil, nil},
		{"www.example.", dns.TypeMX, dns.RcodeSuccess, true, []string{"www.example. MX"}, nil, []string{"mail.example. A"}},
		{"www.example.", dns.TypeTXT, dns.RcodeSuccess, true, nil, []string{"example. SOA"}, nil},
		{"nope.example.", dns.TypeA, dns.RcodeNameError, true, nil, []string{"example. SOA"}, nil},
		{"alias.example.", dns.TypeA, dns.RcodeSuccess, true, []string{"alias.example. CNAME", "www.example. A"}, nil, nil},
		{"alias.example.", dns.TypeCNAME, dns.RcodeSuccess, true, []string{"alias.example. CNAME"}, nil, nil},
		{"loop1.example.", dns.TypeA, dns.RcodeSuccess, true, []string{"loop1.example. CNAME", "loop2.example. CNAME"}, nil, nil},
		{"a.b.wild.example.", dns.TypeTXT, dns.RcodeSuccess, true, []string{"a.b.wild.example. TXT"}, nil, nil},
		{"a.wild.example.", dns.TypeA, dns.RcodeSuccess, true, nil, []string{"example. SOA"}, nil},
		{"z.wc.example.", dns.TypeA, dns.RcodeSuccess, true, []string{"z.wc.example. CNAME", "www.example. A"}, nil, nil},
		{"host.deleg.example.", dns.TypeA, dns.RcodeSuccess, false, nil, []string{"deleg.example. NS"}, []string{"ns.deleg.example. A"}},
		{"deleg.example.", dns.TypeDS, dns.RcodeSuccess, true, []string{"deleg.example. DS"}, nil, nil},
		// The synthesized target a.target.example. does not exist: NXDOMAIN (RFC 6604).
		{"a.d.example.", dns.TypeA, dns.RcodeNameError, true, []string{"d.example. DNAME", "a.d.example. CNAME"}, []string{"example. SOA"}, nil},
		{"ent.example.", dns.TypeA, dns.RcodeSuccess, true, nil, []string{"example. SOA"}, nil},
		{"y.ent.example.", dns.TypeTXT, dns.RcodeSuccess, true, nil, []string{"example. SOA"}, nil},
		{"www.example.", dns.TypeANY, dns.RcodeSuccess, true, []string{"www.example. A"}, nil, nil},
		{"example.org.", dns.TypeA, dns.RcodeRefused, false, nil, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+dns.TypeToString[tt.qtype], func(t *testing.T) {
			m, res := answer(t, set, tt.name, tt.qtype)
			if res.Rcode != tt.rcode || res.AA != tt.aa {
				t.Errorf("rcode %d aa %v, want %d %v", res.Rcode, res.AA, tt.rcode, tt.aa)
			}
			for _, s := range []struct {
				what      string
				got, want []string
			}{{"answer", types(m.Answer), tt.answer}, {"authority", types(m.Ns), tt.ns}, {"additional", types(m.Extra), tt.extra}} {
				if len(s.got) != len(s.want) {
					t.Errorf("%s %v, want %v", s.what, s.got, s.want)
					continue
				}
				for i := range s.got {
					if s.got[i] != s.want[i] {
						t.Errorf("%s %v, want %v", s.what, s.got, s.want)
						break
					}
				}
			}
		})
	}
	// The negative TTL is min(SOA TTL, MINIMUM).
	m, _ := answer(t, set, "nope.example.", dns.TypeA)
	if ttl := m.Ns[0].Header().Ttl; ttl != 300 {
		t.Errorf("negative TTL %d, want 300", ttl)
	}
}

func TestTruncatedGlueSetsTC(t *testing.T) {
	recs := "$ORIGIN example.\n@ 300 SOA ns h 1 2 3 4 5\n@ 300 NS ns\nns 300 A 192.0.2.1\n"
	for i := range 20 {
		recs += "sub 300 NS ns" + string(rune('a'+i)) + ".sub\n"
		recs += "ns" + string(rune('a'+i)) + ".sub 300 AAAA 2001:db8::1\n"
	}
	rs, err := zone.Parse(stringsReader(recs), "example.", "test")
	if err != nil {
		t.Fatal(err)
	}
	z, err := zone.Build("example.", rs)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := zone.NameWire("www.sub.example.")
	var b wire.Builder
	b.Reset(nil, 512)
	b.Header(1, 0)
	b.Question(q, dns.TypeA, dns.ClassINET)
	var a Answerer
	res := a.Answer(zone.NewSet(z), Query{Name: q, Type: dns.TypeA, Class: dns.ClassINET}, &b)
	if !res.TC || res.AA {
		t.Errorf("referral with glue over 512 bytes: TC=%v AA=%v, want TC (RFC 9471)", res.TC, res.AA)
	}
}

func BenchmarkAnswer(b *testing.B) {
	z, err := zone.Load("example.", "testdata/example.zone")
	if err != nil {
		b.Fatal(err)
	}
	set := zone.NewSet(z)
	q, _ := zone.NameWire("www.example.")
	var bl wire.Builder
	var a Answerer
	buf := make([]byte, 0, 65535)
	b.ReportAllocs()
	for b.Loop() {
		bl.Reset(buf, 1232)
		bl.Header(1, 0)
		bl.Question(q, dns.TypeA, dns.ClassINET)
		a.Answer(set, Query{Name: q, Type: dns.TypeA, Class: dns.ClassINET}, &bl)
	}
}
