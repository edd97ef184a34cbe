package xfrout

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/steer"
)

// poolRR is the pool record of svc.example.com. for an A pool over addr.
func poolRR(t *testing.T, addr string) string {
	t.Helper()
	rd, err := steer.Encode(dns.TypeA, steer.Pool{TTL: 5, Policy: []string{"up"}, Endpoints: []steer.Endpoint{{Address: netip.MustParseAddr(addr)}}})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("svc.example.com. 300 IN TYPE%d \\# %d %s", steer.TypePool, len(rd), hex.EncodeToString(rd))
}

// pools counts the pool records among rrs.
func pools(rrs []dns.RR) int {
	n := 0
	for _, rr := range rrs {
		if rr.Header().Rrtype == steer.TypePool {
			n++
		}
	}
	return n
}

// TestPoolsOnlyToNodes: an AXFR or IXFR signed with a node key carries the
// pool records; one signed with another key, or unsigned, carries the zone
// without them (and otherwise the same records), as does an IXFR over UDP.
func TestPoolsOnlyToNodes(t *testing.T) {
	src := newMemSource()
	src.set(t, makeZone(t, origin, 1, 3, poolRR(t, "192.0.2.1"), "svc.example.com. 300 IN A 192.0.2.9"))
	src.set(t, makeZone(t, origin, 2, 3, poolRR(t, "192.0.2.2"), "svc.example.com. 300 IN A 192.0.2.9", "new.example.com. 300 IN A 192.0.2.7"))
	cfg := aclConfig()
	cfg.NodeKeys = []string{"KEY-A"} // any case
	cfg.AllowTransfer = append(cfg.AllowTransfer, ACL{Prefix: netip.MustParsePrefix("127.0.0.1/32")})
	cfg.MessageSize = 4096
	_, addr := startServer(t, cfg, src)
	for _, tc := range []struct {
		name  string
		key   *clientKey
		pools int // in an AXFR; an IXFR from 1 deletes one and adds one
	}{
		{"node key", signA, 1},
		{"third-party key", signB, 0},
		{"unsigned", nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from := netip.MustParseAddr("127.0.0.1")
			if tc.key == signB {
				from = netip.MustParseAddr("127.0.0.3")
			}
			resp, err := exchangeTCPFrom(t, from, addr, axfrQuery(origin), tc.key)
			if err != nil {
				t.Fatal(err)
			}
			rrs := resp.records()
			if got := pools(rrs); got != tc.pools {
				t.Errorf("AXFR: %d pool records, want %d", got, tc.pools)
			}
			z, _ := src.Zone(t.Context(), origin)
			all, err := z.RRs()
			if err != nil {
				t.Fatal(err)
			}
			var keep []dns.RR
			for _, rr := range all {
				if tc.pools > 0 || rr.Header().Rrtype != steer.TypePool {
					keep = append(keep, rr)
				}
			}
			want := rrStrings(keep)
			if got := rrStrings(rrs[:len(rrs)-1]); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("AXFR records\n%v\nwant\n%v", got, want)
			}
			resp, err = exchangeTCPFrom(t, from, addr, ixfrQuery(origin, 1), tc.key)
			if err != nil {
				t.Fatal(err)
			}
			if got := pools(resp.records()); got != 2*tc.pools {
				t.Errorf("IXFR over TCP: %d pool records, want %d", got, 2*tc.pools)
			}
			if tc.key == nil {
				m, _, err := exchangeUDP(t, addr, ixfrQuery(origin, 1), nil)
				if err != nil {
					t.Fatal(err)
				}
				if got := pools(m.Answer); got != 0 || len(m.Answer) < 4 {
					t.Errorf("IXFR over UDP: %d records, %d pools; want the differences without pools", len(m.Answer), got)
				}
			}
		})
	}
}
