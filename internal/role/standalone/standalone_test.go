package standalone

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestLifecycle runs a standalone until its node serves the seeded zone,
// then stops it: the node stops before the control plane, Run returns nil,
// nothing answers any more, and (goleak) no goroutine is left.
func TestLifecycle(t *testing.T) {
	addr := func() netip.AddrPort {
		return netip.MustParseAddrPort(testkit.FreeAddr(t))
	}
	o := Options{DataDir: t.TempDir(), DNS: addr(), API: addr(), Xfr: addr(), Admin: addr(), Metrics: addr(),
		Token: "lifecycle-token-0123456789", Name: "lifecycle", LogLevel: slog.LevelWarn}
	var log testkit.Log
	r, ready, err := prepare(o, slog.New(slog.NewTextHandler(&log, nil)), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	readyc := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, func() { ready(); close(readyc) }) }()
	select {
	case <-readyc:
	case err := <-done:
		t.Fatalf("Run before ready: %v\n%s", err, log.String())
	}
	soa := func() error {
		m := new(dns.Msg)
		m.SetQuestion("example.com.", dns.TypeSOA)
		resp, _, err := (&dns.Client{Timeout: 300 * time.Millisecond}).Exchange(m, o.DNS.String())
		if err == nil && (resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1) {
			err = fmt.Errorf("rcode %s", dns.RcodeToString[resp.Rcode])
		}
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for soa() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the node never served the seeded zone: %v\n%s", soa(), log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v\n%s", err, log.String())
	}
	if got, want := r.Stopped(), []string{"trim", "node", "seed", "control"}; !slices.Equal(got, want) {
		t.Errorf("stop stages %v, want %v", got, want)
	}
	if soa() == nil {
		t.Error("DNS answers after Run returned")
	}
}
