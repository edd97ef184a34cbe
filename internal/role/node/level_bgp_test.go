package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/admin"
	"github.com/anycastdns/anycastdns/internal/announce/bgptest"
	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/fleet/level"
)

const (
	testNodeASN   = 64512
	testRouterASN = 64513
)

var testPrefix = netip.MustParsePrefix("192.0.2.53/32")

func freeTCPPort(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// bgpNode is a Node with BGP on loopback, announcing testPrefix to an
// in-process router, with the default shed levels (prepend 1, 2, 3).
type bgpNode struct {
	*Node
	router      *bgptest.Router
	maintenance string // the maintenance file: while it exists the node is unhealthy
}

func startBGPNode(t *testing.T) *bgpNode {
	t.Helper()
	return startBGPNodeWith(t, "")
}

// startBGPNodeWith is startBGPNode with more of the node's configuration
// (YAML appended to the document).
func startBGPNodeWith(t *testing.T, extra string) *bgpNode {
	t.Helper()
	dir := t.TempDir()
	zone := filepath.Join(dir, "example.com.zone")
	if err := os.WriteFile(zone, []byte("$ORIGIN example.com.\n$TTL 300\n@ SOA ns1 host 1 3600 600 86400 300\n@ NS ns1\nns1 A 192.0.2.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var dnsPort uint16
	for {
		// The DNS port must be free for UDP as well.
		dnsPort = freeTCPPort(t)
		if pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", dnsPort)); err == nil {
			pc.Close()
			break
		}
	}
	bgpPort := freeTCPPort(t)
	maintenance := filepath.Join(dir, "drain")
	doc := fmt.Sprintf(`identity: {name: level-test}
listen: ["127.0.0.1:%d"]
zones: [{name: example.com., file: %q}]
drain_period: 0s
health: {interval: 500ms, timeout: 400ms, rise: 1, fall: 3, query_addr: "127.0.0.1:%d", maintenance_file: %q}
bgp:
  asn: %d
  router_id: 192.0.2.1
  listen_port: %d
  peers: [{address: 127.0.0.1, asn: %d, passive: true}]
  announce: [{prefix: %s}]
`, dnsPort, zone, dnsPort, maintenance, testNodeASN, bgpPort, testRouterASN, testPrefix) + extra
	cfg, err := config.ParseNode([]byte(doc), "level-test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	n, err := New(cfg, "", logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx, nil) }()
	lo := netip.MustParseAddr("127.0.0.1")
	r, err := bgptest.Start(bgptest.Config{
		ASN: testRouterASN, RouterID: netip.MustParseAddr("192.0.2.254"), Local: lo,
		Speaker: lo, SpeakerPort: bgpPort, SpeakerASN: testNodeASN,
	})
	if err != nil {
		cancel()
		<-done
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node Run: %v", err)
		}
		r.Close()
	})
	return &bgpNode{Node: n, router: r, maintenance: maintenance}
}

// waitPath waits until the router holds testPrefix with an AS path of n
// ASNs (0: no route) and returns how long that took.
func (b *bgpNode) waitPath(t *testing.T, n int, timeout time.Duration, what string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		r, ok := b.router.Route(testPrefix)
		if ok && len(r.ASPath) == n || !ok && n == 0 {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: after %v the router holds %+v (present %v), want an AS path of %d ASNs; node level %+v",
				what, timeout, r, ok, n, b.Status().Level)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// levelMetric returns the anycastd_level gauge: its value and source.
func (b *bgpNode) levelMetric(t *testing.T) (float64, string) {
	t.Helper()
	mfs, err := b.metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "anycastd_level" {
			continue
		}
		if len(mf.GetMetric()) != 1 {
			t.Fatalf("anycastd_level has %d series, want 1", len(mf.GetMetric()))
		}
		m := mf.GetMetric()[0]
		return m.GetGauge().GetValue(), m.GetLabel()[0].GetValue()
	}
	t.Fatal("no anycastd_level metric")
	return 0, ""
}

func (b *bgpNode) checkLevel(t *testing.T, l level.Level, source string) {
	t.Helper()
	st := b.Status().Level
	if st == nil || st.Level != l || st.Source != source {
		t.Errorf("status level %+v, want %v from %s", st, l, source)
	}
	if v, src := b.levelMetric(t); v != float64(l) || src != source {
		t.Errorf("anycastd_level{source=%q} %v, want {source=%q} %d", src, v, source, l)
	}
}

// TestNodeAppliesLevel: the node announces at the control plane's level
// (through SetRemoteLevel, as the change stream is to call it) until it
// lapses; the operator's pin wins over it; the node's own health and a
// drain win over both; and between announced levels the router's route is
// replaced, never missing.
func TestNodeAppliesLevel(t *testing.T) {
	b := startBGPNode(t)
	b.waitPath(t, 1, 20*time.Second, "initial announce")
	b.checkLevel(t, level.Normal, admin.SourceDefault)
	w, err := b.router.Watch()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx := t.Context()

	// The control plane's shed-2, valid 3 s.
	validity := 3 * time.Second
	set := time.Now()
	if err := b.SetRemoteLevel(level.Shed2, "load 1500 q/s above the high-water mark 1000", set.Add(validity)); err != nil {
		t.Fatal(err)
	}
	d := b.waitPath(t, 3, 2*time.Second, "control shed-2")
	t.Logf("SetRemoteLevel(shed-2) → AS path of 3 at the router after %v", d.Round(time.Millisecond))
	b.checkLevel(t, level.Shed2, admin.SourceControl)
	if c := b.Status().Level.Control; c == nil || c.Level != level.Shed2 || !c.Until.Equal(set.Add(validity)) {
		t.Errorf("status control %+v, want shed-2 valid until %v", c, set.Add(validity))
	}

	// The operator's pin wins; unpinned, the control plane's level is back.
	if err := b.PinLevel(ctx, level.Shed1, "maintenance"); err != nil {
		t.Fatal(err)
	}
	b.waitPath(t, 2, 2*time.Second, "pinned shed-1")
	b.checkLevel(t, level.Shed1, admin.SourceOperator)
	if err := b.UnpinLevel(ctx); err != nil {
		t.Fatal(err)
	}
	b.waitPath(t, 3, 2*time.Second, "unpinned: control shed-2")

	// Not renewed, the control plane's level lapses: back at normal.
	b.waitPath(t, 1, validity+2*time.Second, "control level lapsed")
	t.Logf("control plane's shed-2 lapsed → AS path of 1 at the router %v after valid_until", time.Since(set.Add(validity)).Round(time.Millisecond))
	if time.Now().Before(set.Add(validity)) {
		t.Errorf("back at normal %v before valid_until", time.Until(set.Add(validity)))
	}
	b.checkLevel(t, level.Normal, admin.SourceDefault)
	for _, e := range w.Events() {
		if e.Prefix == testPrefix && e.Withdrawn {
			hs := b.anycast.checker.Status()
			var restarts int
			for _, ss := range b.anycast.speaker.Status().Sessions {
				restarts += ss.Restarts
			}
			t.Errorf("the router's best path for %v was withdrawn across the level changes, at %s: %+v "+
				"(health changes in the flap window %d, last at %s; BGP session restarts %d)",
				testPrefix, e.Time.Format("15:04:05.000"), w.Events(), hs.Flaps, hs.Since.Format("15:04:05.000"), restarts)
		}
	}
	var lens []int
	for _, e := range w.Events() {
		lens = append(lens, len(e.ASPath))
	}
	if want := []int{3, 2, 3, 1}; !slices.Equal(lens, want) {
		t.Errorf("AS path lengths of the router's best paths: %v, want %v", lens, want)
	}

	// Health wins over a pin: the maintenance file withdraws a node pinned
	// at normal; removed, it comes back at the pinned level.
	if err := b.PinLevel(ctx, level.Shed3, "health test"); err != nil {
		t.Fatal(err)
	}
	b.waitPath(t, 4, 2*time.Second, "pinned shed-3")
	if err := os.WriteFile(b.maintenance, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	b.waitPath(t, 0, 5*time.Second, "maintenance file")
	b.checkLevel(t, level.Withdrawn, admin.SourceHealth)
	if err := os.Remove(b.maintenance); err != nil {
		t.Fatal(err)
	}
	b.waitPath(t, 4, 5*time.Second, "maintenance file removed")
	b.checkLevel(t, level.Shed3, admin.SourceOperator)

	// A drain wins over everything; undrained, the level is what it was.
	if err := b.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	b.waitPath(t, 0, 2*time.Second, "drain")
	b.checkLevel(t, level.Withdrawn, admin.SourceDrain)
	if err := b.Undrain(ctx); err != nil {
		t.Fatal(err)
	}
	b.waitPath(t, 4, 5*time.Second, "undrain")
	if err := b.UnpinLevel(ctx); err != nil {
		t.Fatal(err)
	}
	b.waitPath(t, 1, 2*time.Second, "unpinned")

	// The control plane's withdrawn takes the PoP down only for its
	// validity: not renewed (the control plane gone), the PoP is back.
	set = time.Now()
	if err := b.SetRemoteLevel(level.Withdrawn, "down from 2 of 3 vantage points", set.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	b.waitPath(t, 0, 2*time.Second, "control withdrawn")
	b.checkLevel(t, level.Withdrawn, admin.SourceControl)
	b.waitPath(t, 1, 5*time.Second, "control withdrawn lapsed")
	t.Logf("control plane's withdrawn lapsed → announced again %v after valid_until", time.Since(set.Add(time.Second)).Round(time.Millisecond))
	if time.Now().Before(set.Add(time.Second)) {
		t.Error("announced again before valid_until")
	}
}

// TestNodeWithoutBGPHasNoLevel: no bgp section, no level: pins are a
// conflict and the control plane's level an error.
func TestNodeWithoutBGPHasNoLevel(t *testing.T) {
	cfg, err := config.ParseNode([]byte("identity: {name: a}\nlisten: [\"127.0.0.1:5353\"]\n"), "n.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(cfg, "", slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.PinLevel(t.Context(), level.Shed1, "x"); !errors.Is(err, admin.ErrConflict) || !errors.Is(err, ErrNoBGP) {
		t.Errorf("PinLevel = %v, want ErrNoBGP and admin.ErrConflict", err)
	}
	if err := n.UnpinLevel(t.Context()); !errors.Is(err, admin.ErrConflict) {
		t.Errorf("UnpinLevel = %v, want admin.ErrConflict", err)
	}
	if err := n.SetRemoteLevel(level.Shed1, "x", time.Now().Add(time.Minute)); !errors.Is(err, ErrNoBGP) {
		t.Errorf("SetRemoteLevel = %v, want ErrNoBGP", err)
	}
	if st := n.Status(); st.Level != nil {
		t.Errorf("status level %+v, want none", st.Level)
	}
}
