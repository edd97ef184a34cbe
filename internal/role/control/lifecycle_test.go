package control

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/testkit"
	"github.com/anycastdns/anycastdns/internal/tsig"
)

// xfrConfigFor gives cfg a transfer server on a free port and a metrics
// endpoint.
func xfrConfigFor(t *testing.T, cfg *config.Control) {
	t.Helper()
	cfg.Xfr = config.Xfr{
		Listen:        []netip.AddrPort{netip.MustParseAddrPort(testkit.FreeAddr(t))},
		TSIGKeys:      []tsig.Key{{Name: "k.", Algorithm: "hmac-sha256", Secret: "MDEyMzQ1Njc4OWFiY2RlZg=="}},
		AllowTransfer: []config.XfrACL{{Prefix: netip.MustParsePrefix("127.0.0.0/8"), Key: "k."}},
	}
	cfg.Metrics.Listen = netip.MustParseAddrPort(testkit.FreeAddr(t))
}

// TestShutdownOrder: a control plane with a transfer server and metrics
// stops reloads, turns /readyz to 503, stops the HTTP listeners, then the
// transfer server; Run returns nil, nothing listens any more and (goleak,
// TestMain) no goroutine is left.
func TestShutdownOrder(t *testing.T) {
	cfg := testConfig(t)
	xfrConfigFor(t, cfg)
	c, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.listener, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx, nil) }()
	select {
	case <-c.Ready():
	case err := <-errc:
		t.Fatal(err)
	}
	if len(c.XfrAddrs()) != 1 {
		t.Fatalf("transfer addresses %v", c.XfrAddrs())
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := []string{"reload", "not ready", "api+metrics", "signing", "xfr"}
	if got := c.runner.Stopped(); !slices.Equal(got, want) {
		t.Errorf("stop stages %v, want %v", got, want)
	}
	if err := c.Readiness(); err == nil || !strings.Contains(err.Error(), "shutting down") {
		t.Errorf("readiness after the shutdown: %v", err)
	}
	for _, a := range []string{c.APIAddr().String(), c.MetricsAddr().String(), c.XfrAddrs()[0].String()} {
		if conn, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			conn.Close()
			t.Errorf("%s still accepts after Run returned", a)
		}
	}
}

// TestXfrStartFailure: a transfer server that cannot bind ends the
// start-up with its error; the API and metrics listeners it had bound are
// closed and the store released.
func TestXfrStartFailure(t *testing.T) {
	cfg := testConfig(t)
	xfrConfigFor(t, cfg)
	taken, err := net.Listen("tcp", cfg.Xfr.Listen[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	c, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.listener, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	apiAddr := c.listener.Addr().String()
	err = c.Run(context.Background(), nil)
	if err == nil || !strings.HasPrefix(err.Error(), "control: xfr: ") {
		t.Fatalf("Run = %v, want the transfer server's error", err)
	}
	for _, a := range []string{apiAddr, cfg.Metrics.Listen.String()} {
		if _, err := http.Get("http://" + a + "/healthz"); err == nil {
			t.Errorf("%s answers after a failed start-up", a)
		}
	}
}
