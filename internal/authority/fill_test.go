package authority

import (
	"slices"
	"testing"

	"github.com/miekg/dns"
)

// TestAdditionalFilledAsFarAsFits: a glue or additional RRset that does not
// fit does not end the additional section; the next name's smaller RRset
// goes in if it fits (RFC 2181 §9), as Knot fills it. The numbers are
// Knot 3.2's for the same zones and buffers.
func TestAdditionalFilledAsFarAsFits(t *testing.T) {
	set := loadSet(t, parentZones...)
	tests := []struct {
		q     ask
		tc    bool
		extra []string
	}{
		// 13 NS with A and AAAA glue, EDNS 512: ns05's AAAA does not fit,
		// ns06's A does. Required glue is missing: TC (RFC 9471).
		{ask{"www.big.example.com.", dns.TypeA, true, 512}, true, []string{
			"ns01.big.example.com. A", "ns01.big.example.com. AAAA", "ns02.big.example.com. A", "ns02.big.example.com. AAAA",
			"ns03.big.example.com. A", "ns03.big.example.com. AAAA", "ns04.big.example.com. A", "ns04.big.example.com. AAAA",
			"ns05.big.example.com. A", "ns06.big.example.com. A",
		}},
		{ask{"www.big.example.com.", dns.TypeA, false, 512}, true, []string{
			"ns01.big.example.com. A", "ns01.big.example.com. AAAA", "ns02.big.example.com. A", "ns02.big.example.com. AAAA",
			"ns03.big.example.com. A", "ns03.big.example.com. AAAA", "ns04.big.example.com. A", "ns04.big.example.com. AAAA",
			"ns05.big.example.com. A", "ns05.big.example.com. AAAA",
		}},
		// 10 MX targets with A and AAAA, EDNS 512: mx06's AAAA does not
		// fit, mx07's A does. Optional addresses: no TC.
		{ask{"manymx.example.com.", dns.TypeMX, true, 512}, false, []string{
			"mx01.manymx.example.com. A", "mx01.manymx.example.com. AAAA", "mx02.manymx.example.com. A", "mx02.manymx.example.com. AAAA",
			"mx03.manymx.example.com. A", "mx03.manymx.example.com. AAAA", "mx04.manymx.example.com. A", "mx04.manymx.example.com. AAAA",
			"mx05.manymx.example.com. A", "mx05.manymx.example.com. AAAA", "mx06.manymx.example.com. A", "mx07.manymx.example.com. A",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.q.String(), func(t *testing.T) {
			m, res := run(t, set, tt.q)
			if res.TC != tt.tc {
				t.Errorf("TC=%v, want %v", res.TC, tt.tc)
			}
			if got := types(m.Extra); !slices.Equal(got, tt.extra) {
				t.Errorf("additional\n%q\nwant\n%q", got, tt.extra)
			}
		})
	}
}
