package dnsserver

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/ratelimit"
)

func packed(t testing.TB, name string, qtype, qclass uint16, change func(m *dns.Msg)) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Question[0].Qclass = qclass
	if change != nil {
		change(m)
	}
	p, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEarlyDrop: packets that are never answered are dropped with their
// reason counted, and the others are still answered.
func TestEarlyDrop(t *testing.T) {
	h := testHandler(t)
	l, err := ratelimit.NewSourceLimiter(ratelimit.SourceConfig{
		Rate: 2, Exempt: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")},
	})
	if err != nil {
		t.Fatal(err)
	}
	set(h, func(s *Settings) { s.Source = l })
	w := h.NewWorker()
	query := packed(t, "www.example.com.", dns.TypeA, dns.ClassINET, nil)
	response := packed(t, "www.example.com.", dns.TypeA, dns.ClassINET, func(m *dns.Msg) { m.Response = true })
	src := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
	for _, tc := range []struct {
		name string
		p    []byte
		src  netip.AddrPort
		t    Transport
		want DropReason
	}{
		{"empty", nil, src("192.0.2.1:1"), UDP, DropShort},
		{"11 bytes", query[:11], src("192.0.2.1:1"), UDP, DropShort},
		{"short over tcp", query[:5], src("192.0.2.1:1"), TCP, DropShort},
		{"response", response, src("192.0.2.1:1"), UDP, DropResponse},
		{"response over tcp", response, src("192.0.2.1:1"), TCP, DropResponse},
		{"class HS", packed(t, "www.example.com.", dns.TypeA, dns.ClassHESIOD, nil), src("192.0.2.1:1"), UDP, DropClass},
		{"class NONE", packed(t, "www.example.com.", dns.TypeA, dns.ClassNONE, nil), src("192.0.2.1:1"), TCP, DropClass},
		{"class 0", packed(t, "www.example.com.", dns.TypeA, 0, nil), src("192.0.2.1:1"), UDP, DropClass},
		// 192.0.2.0/24 has spent its two queries on the class drops above
		// (they are counted before the question is read).
		{"source over its rate", query, src("192.0.2.9:1"), UDP, DropSource},
		{"another source", query, src("203.0.113.1:1"), UDP, DropNone},
		{"its second", query, src("203.0.113.2:1"), UDP, DropNone},
		{"its third", query, src("203.0.113.3:1"), UDP, DropSource},
		{"tcp is not limited", query, src("203.0.113.3:1"), TCP, DropNone},
		{"exempt", query, src("198.51.100.1:1"), UDP, DropNone},
		{"exempt again", query, src("198.51.100.1:1"), UDP, DropNone},
		{"exempt a third time", query, src("198.51.100.1:1"), UDP, DropNone},
		{"class IN", query, src("[2001:db8::1]:1"), UDP, DropNone},
		{"class CH", packed(t, "id.server.", dns.TypeTXT, dns.ClassCHAOS, nil), src("[2001:db8::1]:1"), UDP, DropNone},
		{"class ANY", packed(t, "www.example.com.", dns.TypeA, dns.ClassANY, nil), src("[2001:db8:1::1]:1"), UDP, DropNone},
	} {
		resp, out := w.Handle(tc.p, tc.src, tc.t)
		if out.Drop != tc.want {
			t.Errorf("%s: dropped for %v, want %v", tc.name, out.Drop, tc.want)
		}
		if (resp == nil) != (tc.want != DropNone) {
			t.Errorf("%s: response %x with drop %v", tc.name, resp, tc.want)
		}
	}
	drops, exempt := h.stats.EarlyDrops()
	want := [NumDropReasons]uint64{DropShort: 3, DropResponse: 2, DropClass: 3, DropSource: 2}
	if drops != want || exempt != 3 {
		t.Errorf("counted %v and %d exempt, want %v and 3", drops, exempt, want)
	}
	_, dropped, _, _ := h.stats.Snapshot()
	if dropped != 10 {
		t.Errorf("dropped_total %d, want 10", dropped)
	}
}

// TestEarlyDropDoesNotAllocate: a dropped packet costs no allocation,
// whatever the reason.
func TestEarlyDropDoesNotAllocate(t *testing.T) {
	h := testHandler(t)
	l, _ := ratelimit.NewSourceLimiter(ratelimit.SourceConfig{Rate: 1})
	set(h, func(s *Settings) { s.Source = l })
	w := h.NewWorker()
	for name, p := range dropped(t) {
		if n := testing.AllocsPerRun(200, func() { answer(w, p, UDP) }); n != 0 {
			t.Errorf("%s: %v allocations", name, n)
		}
	}
}

// dropped are packets of each early drop reason (the source one when the
// source limit is 1 a second and the source has asked before).
func dropped(t testing.TB) map[string][]byte {
	q := packed(t, "www.example.com.", dns.TypeA, dns.ClassINET, nil)
	return map[string][]byte{
		"short":        q[:7],
		"response":     packed(t, "www.example.com.", dns.TypeA, dns.ClassINET, func(m *dns.Msg) { m.Response = true }),
		"class":        packed(t, "www.example.com.", dns.TypeA, dns.ClassHESIOD, nil),
		"source_limit": q,
	}
}

// BenchmarkDrop is the cost of a dropped packet, by reason, beside the
// cost of the same query answered (BenchmarkHandle).
func BenchmarkDrop(b *testing.B) {
	for name, p := range dropped(b) {
		b.Run(name, func(b *testing.B) {
			h := testHandler(b)
			if name == "source_limit" {
				l, _ := ratelimit.NewSourceLimiter(ratelimit.SourceConfig{Rate: 1})
				set(h, func(s *Settings) { s.Source = l })
			}
			w := h.NewWorker()
			b.ReportAllocs()
			for b.Loop() {
				answer(w, p, UDP)
			}
		})
	}
	b.Run("answered", func(b *testing.B) {
		h := testHandler(b)
		w := h.NewWorker()
		p := packed(b, "www.example.com.", dns.TypeA, dns.ClassINET, nil)
		b.ReportAllocs()
		for b.Loop() {
			answer(w, p, UDP)
		}
	})
}

// TestExemptSkipsRRL: a source in an exempt prefix of the per-source limit
// is not response rate limited either; others are.
func TestExemptSkipsRRL(t *testing.T) {
	h := testHandler(t)
	src, err := ratelimit.NewSourceLimiter(ratelimit.SourceConfig{
		Rate: 1000, Exempt: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")},
	})
	if err != nil {
		t.Fatal(err)
	}
	rrl, err := ratelimit.NewRRL(ratelimit.RRLConfig{Rate: 2, Slip: 0})
	if err != nil {
		t.Fatal(err)
	}
	set(h, func(s *Settings) { s.Source, s.RRL = src, rrl })
	w := h.NewWorker()
	p := packed(t, "www.example.com.", dns.TypeA, dns.ClassINET, nil)
	for _, tc := range []struct {
		src  string
		want string // . answered, x dropped
	}{
		{"198.51.100.1:53", "......"},
		{"192.0.2.1:53", "..xxxx"},
	} {
		var got []byte
		for range len(tc.want) {
			if resp, _ := w.Handle(p, netip.MustParseAddrPort(tc.src), UDP); resp != nil {
				got = append(got, '.')
			} else {
				got = append(got, 'x')
			}
		}
		if string(got) != tc.want {
			t.Errorf("from %s: %s, want %s", tc.src, got, tc.want)
		}
	}
}

// TestUDPHandled: the count the health check reads moves with every UDP
// packet handled, answered or dropped, and not with TCP answers.
func TestUDPHandled(t *testing.T) {
	h := testHandler(t)
	w := h.NewWorker()
	q := packed(t, "www.example.com.", dns.TypeA, dns.ClassINET, nil)
	answer(w, q, UDP)
	answer(w, q[:3], UDP)
	answer(w, q, TCP)
	if n := h.stats.UDPHandled(); n != 2 {
		t.Errorf("UDPHandled = %d, want 2", n)
	}
}
