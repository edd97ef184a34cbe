package dnsserver

import (
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/zone"
)

// TestOPTReserveIsExact: while the records are written, only the OPT record
// the answer will carry is kept free, so an answer that fits the client's
// EDNS buffer with it is sent whole (RFC 2181 §9), as Knot sends it. The
// Extended DNS Error that REFUSED answers carry is not reserved for.
func TestOPTReserveIsExact(t *testing.T) {
	// Header 12, question 22, the TXT record 12+rdlen, OPT 11: with rdlen
	// 455 the answer is 512 octets exactly.
	for _, tt := range []struct {
		rdlen int
		tc    bool
	}{{455, false}, {456, true}} {
		second := tt.rdlen - 255 - 1
		src := "$ORIGIN example.com.\n@ 3600 SOA ns h 1 2 3 4 5\n@ 3600 NS ns\nns 3600 A 192.0.2.1\n" +
			"fill 3600 TXT \"" + strings.Repeat("a", 254) + "\" \"" + strings.Repeat("b", second) + "\"\n"
		recs, err := zone.Parse(strings.NewReader(src), "example.com.", "test")
		if err != nil {
			t.Fatal(err)
		}
		z, err := zone.Build("example.com.", recs)
		if err != nil {
			t.Fatal(err)
		}
		h := NewHandler(Settings{Identity: Identity{Name: "pop-test"}, MaxUDP: 1232}, &Stats{})
		h.SetZones(zone.NewSet(z))
		m := new(dns.Msg)
		m.SetQuestion("fill.example.com.", dns.TypeTXT)
		m.SetEdns0(512, false)
		p, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		resp := answer(h.NewWorker(), p, UDP)
		r := new(dns.Msg)
		if err := r.Unpack(resp); err != nil {
			t.Fatal(err)
		}
		wantAnswers := 1
		if tt.tc {
			wantAnswers = 0
		}
		if r.Truncated != tt.tc || len(r.Answer) != wantAnswers || r.IsEdns0() == nil {
			t.Errorf("TXT of %d octets, EDNS buffer 512: %d octets, TC=%v, %d answers; want TC=%v", tt.rdlen, len(resp), r.Truncated, len(r.Answer), tt.tc)
		}
		if !tt.tc && len(resp) != 512 {
			t.Errorf("answer is %d octets, want 512", len(resp))
		}
	}
}
