package node

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/dnsserver"
	"github.com/anycastdns/anycastdns/internal/zonesync"
)

// TestSecondaryConfig: the secondary zones of a node's configuration make
// a zonesync configuration it accepts.
func TestSecondaryConfig(t *testing.T) {
	n, err := config.LoadNode("../../config/testdata/secondary_full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !hasSecondaries(n) {
		t.Error("hasSecondaries = false for a node with secondary zones")
	}
	n.DataDir = t.TempDir()
	c, certs, err := secondaryConfig(n)
	if err != nil {
		t.Fatal(err)
	}
	// The primary over TLS: its CA, the name, the client certificate.
	tp := c.Zones[0].Primaries[2]
	if tp.TLS == nil || tp.TLS.ServerName != "xfr.test" || tp.TLS.RootCAs == nil || tp.TLS.GetClientCertificate == nil || len(certs) != 1 {
		t.Errorf("primary over tls: %+v, %d client certificates", tp.TLS, len(certs))
	} else if cc, err := tp.TLS.GetClientCertificate(nil); err != nil || cc.Leaf.Subject.CommonName != "xfr.test" {
		t.Errorf("client certificate %v, %v", cc, err)
	}
	c.Zones[0].Primaries[2].TLS = nil
	if _, err := zonesync.New(c, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("the zonesync configuration of a valid node is invalid: %v", err)
	}
	ap := netip.MustParseAddrPort
	want := []zonesync.Zone{
		{Name: "example.net.", Primaries: []zonesync.Primary{{Addr: ap("192.0.2.10:53"), Key: "xfr-key."}, {Addr: ap("[2001:db8::10]:5300")}, {Addr: ap("192.0.2.12:853"), Key: "xfr-key."}}},
		{Name: "0/25.2.0.192.in-addr.arpa.", Primaries: []zonesync.Primary{{Addr: ap("192.0.2.10:53")}}},
	}
	if diff := cmp.Diff(want, c.Zones, cmp.Comparer(func(a, b zonesync.Primary) bool { return a == b })); diff != "" {
		t.Errorf("zones (-want +got):\n%s", diff)
	}
	if len(c.Keys) != 3 || c.Keys[1].Algorithm != "hmac-sha512" || len(c.NotifyAllow) != 3 ||
		c.Catalog == nil || c.Catalog.Zone != "catalog.invalid." || len(c.Reserved) != 1 || c.Reserved[0] != "example.com." {
		t.Errorf("secondaryConfig = %+v", c)
	}
	n.SecondaryTimers = config.SecondaryTimers{MinRefresh: 2 * time.Second, MinRetry: time.Second, MinExpire: 5 * time.Second}
	if c, _, err = secondaryConfig(n); err != nil {
		t.Fatal(err)
	}
	if got := (zonesync.Timers{MinRefresh: 2 * time.Second, MinRetry: time.Second, MinExpire: 5 * time.Second}); c.Timers != got {
		t.Errorf("timers = %+v, want %+v", c.Timers, got)
	}
	if ring, err := keyring(n); err != nil || ring.Len() != 3 {
		t.Errorf("keyring: %v keys, %v", ring.Len(), err)
	}
	n.Zones, n.Catalog = n.Zones[:1], nil
	if hasSecondaries(n) {
		t.Error("hasSecondaries = true for a node with file zones only")
	}
}

// TestRRLBounds: every limits.rrl the configuration accepts makes a rate
// limiter, and the first value past each bound is refused by the
// configuration (config does not import ratelimit: the bounds live in
// both, and this keeps them in step).
func TestRRLBounds(t *testing.T) {
	for _, r := range []config.RRL{
		{},
		{Rate: config.MaxRRLRate, Slip: config.MaxRRLSlip, IPv4Prefix: 32, IPv6Prefix: 128, Buckets: config.MaxRRLBuckets},
		{Rate: 1, Slip: 0, IPv4Prefix: 0, IPv6Prefix: 0, Buckets: 1},
	} {
		if _, err := rrl(r); err != nil {
			t.Errorf("rrl(%+v): %v", r, err)
		}
	}
	base := "identity: {name: a}\nlisten: [\"127.0.0.1:53\"]\nlimits:\n  rrl: {"
	for _, field := range []string{
		"rate: 1048577", "slip: 101", "ipv4_prefix: 33", "ipv6_prefix: 129", "buckets: 16777217", "rate: -1",
	} {
		if _, err := config.ParseNode([]byte(base+field+"}\n"), "test"); err == nil {
			t.Errorf("limits.rrl {%s} accepted", field)
		}
	}
}

// TestCookies: cookies are off, on with a random secret, or on with the
// configured one.
func TestCookies(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if c := cookies(config.Cookies{}, log); c != nil {
		t.Error("cookies on when disabled")
	}
	if c := cookies(config.Cookies{Enabled: true}, log); c == nil {
		t.Error("no cookies with a random secret")
	}
	if c := cookies(config.Cookies{Enabled: true, Secret: "e5e973e5a6b2a43f48e7dc849e37bfcf"}, log); c == nil {
		t.Error("no cookies with a configured secret")
	}
}

// TestDNSSettings: a reload builds the settings whole, but the parts whose
// configuration is unchanged keep their state: the rate limiter its
// buckets, the cookies their random secret; changed parts are new.
func TestDNSSettings(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	doc := "identity: {name: a}\nlisten: [\"127.0.0.1:53\"]\nlimits: {rrl: {rate: 20}}\n"
	cfg, err := config.ParseNode([]byte(doc), "test")
	if err != nil {
		t.Fatal(err)
	}
	first, err := dnsSettings(cfg, nil, dnsserver.Settings{}, log)
	if err != nil || first.RRL == nil || first.Cookies == nil || first.TSIG != nil || first.Identity.Name != "a" {
		t.Fatalf("settings at start: %+v, %v", first, err)
	}
	same, err := dnsSettings(cfg, cfg, first, log)
	if err != nil || same.RRL != first.RRL || same.Cookies != first.Cookies {
		t.Errorf("unchanged configuration: new limiter %t, new cookies %t, %v", same.RRL != first.RRL, same.Cookies != first.Cookies, err)
	}
	changed, err := config.ParseNode([]byte("identity: {name: b}\nlisten: [\"127.0.0.1:53\"]\nlimits: {rrl: {rate: 30}, tcp_max_conns: 7}\n"), "test")
	if err != nil {
		t.Fatal(err)
	}
	next, err := dnsSettings(changed, cfg, first, log)
	if err != nil || next.RRL == first.RRL || next.Cookies != first.Cookies || next.Identity.Name != "b" || next.TCP.MaxConns != 7 {
		t.Errorf("changed configuration: %+v, %v", next, err)
	}
}
