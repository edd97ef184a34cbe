package zonesync

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/miekg/dns"

	cpstore "github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/tsig"
	"github.com/anycastdns/anycastdns/internal/xfrout"
)

// TestRefreshOverUDP runs the Manager against the control plane's own
// transfer server (xfrout over a store) on 127.0.0.1: a small change after
// a NOTIFY arrives as an IXFR over UDP in one round trip; a change too
// large for one UDP message is announced over UDP by the newer SOA alone
// and then transferred over TCP.
func TestRefreshOverUDP(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	st, err := cpstore.Open(ctx, filepath.Join(t.TempDir(), "zones.db"), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	rrs, err := makeZone(t, 1).RRs()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateZone(ctx, origin, rrs, cpstore.SerialIncrement); err != nil {
		t.Fatal(err)
	}
	srv, err := xfrout.New(xfrout.Config{
		Listen:        []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")},
		Keys:          []tsig.Key{{Name: testKey, Algorithm: "hmac-sha256", Secret: testSecret}},
		AllowTransfer: []xfrout.ACL{{Prefix: netip.MustParsePrefix("127.0.0.0/8"), Key: testKey}},
	}, st, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-srvDone }) // after the secondary's (LIFO)
	select {
	case <-srv.Ready():
	case err := <-srvDone:
		t.Fatalf("transfer server: %v", err)
	}
	addr := srv.Addrs()[0]

	m, changed := runSecondary(t, addr)
	transfers := func(kind string) float64 {
		return counter(t, m.met.transfers.WithLabelValues(kind, "ok"))
	}
	waitSerial(t, m, changed, 1)

	// Small: one A record.
	a, _ := dns.NewRR("udp.example.com. 300 IN A 192.0.2.77")
	serial, err := st.SetRRset(ctx, origin, "udp.example.com.", dns.TypeA, []dns.RR{a})
	if err != nil {
		t.Fatal(err)
	}
	notifyOK(t, m, addr)
	waitSerial(t, m, changed, serial)
	if got := transfers("ixfr_udp"); got != 1 {
		t.Errorf("ixfr_udp transfers = %v, want 1", got)
	}
	if got := transfers("ixfr"); got != 0 {
		t.Errorf("ixfr (tcp) transfers = %v, want 0", got)
	}

	// Large: 100 TXT records of 100 bytes do not fit in 1232 bytes.
	var big []dns.RR
	for i := range 100 {
		rr, _ := dns.NewRR(fmt.Sprintf(`big.example.com. 300 IN TXT "%03d %096d"`, i, i))
		big = append(big, rr)
	}
	serial, err = st.SetRRset(ctx, origin, "big.example.com.", dns.TypeTXT, big)
	if err != nil {
		t.Fatal(err)
	}
	notifyOK(t, m, addr)
	waitSerial(t, m, changed, serial)
	if got := transfers("ixfr"); got != 1 {
		t.Errorf("ixfr (tcp) transfers = %v, want 1", got)
	}
	if got := transfers("ixfr_udp"); got != 1 {
		t.Errorf("ixfr_udp transfers = %v, want still 1", got)
	}
	rrs, err = served(m, origin).RRs()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, rr := range rrs {
		if rr.Header().Name == "big.example.com." && rr.Header().Rrtype == dns.TypeTXT {
			n++
		}
	}
	if n != 100 {
		t.Errorf("%d TXT records at big.example.com. served, want 100", n)
	}
}
