package node

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/dnsserver"
	"github.com/anycastdns/anycastdns/internal/health"
	"github.com/anycastdns/anycastdns/internal/zone"
)

func TestSampler(t *testing.T) {
	all := make([]string, 5)
	for i := range all {
		all[i] = fmt.Sprintf("z%d.", i)
	}
	s := sampler(func() []string { return all }, 3)
	var got [][]string
	for range 3 {
		got = append(got, s())
	}
	want := [][]string{{"z0.", "z1.", "z2."}, {"z3.", "z4.", "z0."}, {"z1.", "z2.", "z3."}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	small := sampler(func() []string { return all[:2] }, 3)
	if d := cmp.Diff(all[:2], small()); d != "" {
		t.Errorf("fewer names than the window: %s", d)
	}
}

func TestServedOf(t *testing.T) {
	want := func() []string {
		return []string{"a.example.", "B.example", "new.example.", "old.example.", "Stale.example", "disk.example."}
	}
	loaded := func() map[string]health.ZoneState {
		return map[string]health.ZoneState{
			"a.example.":     {Serial: 1},
			"b.example.":     {Serial: 2},
			"old.example.":   {Serial: 3, Expired: true},
			"stale.example.": {Serial: 5, Expired: true},
			"disk.example.":  {Serial: 6, Expired: true, Unconfirmed: true}, // not loaded yet
			"other.example.": {Serial: 4},                                   // loaded but not wanted
		}
	}
	got := servedOf(want, loaded)()
	if w := []string{"a.example.", "B.example"}; !slices.Equal(got, w) {
		t.Errorf("servedOf = %v, want %v", got, w)
	}
	got = expiredOf(want, loaded)()
	if w := []string{"old.example.", "Stale.example"}; !slices.Equal(got, w) {
		t.Errorf("expiredOf = %v, want %v", got, w)
	}
}

// TestHealthPathsDirect: the in-process path answers the zone's SOA with
// the node's handler, REFUSED for a zone it does not serve, and its
// queries do not count as TCP progress (they would excuse a dead TCP
// listener).
func TestHealthPathsDirect(t *testing.T) {
	rrs, err := zone.Parse(strings.NewReader("@ 300 IN SOA ns1 h 1 2 3 4 5\n@ 300 IN NS ns1\nns1 300 IN A 192.0.2.1\n"), "example.com.", "test")
	if err != nil {
		t.Fatal(err)
	}
	z, err := zone.Build("example.com.", rrs)
	if err != nil {
		t.Fatal(err)
	}
	stats := &dnsserver.Stats{}
	h := dnsserver.NewHandler(dnsserver.Settings{}, stats)
	h.SetZones(zone.NewSet(z))
	p := &healthPaths{handler: h, stats: stats, src: netip.MustParseAddrPort("127.0.0.1:0")}
	before := p.tcpProgress()
	for _, tc := range []struct {
		zone  string
		rcode int
		soa   int
	}{{"example.com.", dns.RcodeSuccess, 1}, {"other.example.", dns.RcodeRefused, 0}} {
		m := new(dns.Msg)
		m.SetQuestion(tc.zone, dns.TypeSOA)
		r, err := p.direct(m)
		if err != nil {
			t.Fatal(err)
		}
		if r.Rcode != tc.rcode || len(r.Answer) != tc.soa || (tc.soa == 1 && !r.Authoritative) {
			t.Errorf("%s: rcode %s, %d answers, AA %v; want %s, %d", tc.zone, dns.RcodeToString[r.Rcode], len(r.Answer), r.Authoritative, dns.RcodeToString[tc.rcode], tc.soa)
		}
	}
	if got := p.tcpProgress(); got != before {
		t.Errorf("tcp progress moved %d -> %d on in-process queries alone", before, got)
	}
	if got := p.udpProgress(); got != 0 {
		t.Errorf("udp progress %d on in-process queries alone", got)
	}
}
