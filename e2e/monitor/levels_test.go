//go:build linux

package monitor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/admin"
	"github.com/anycastdns/anycastdns/internal/announce/bgptest"
	"github.com/anycastdns/anycastdns/internal/fleet/level"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

// blackhole relays DNS (UDP and TCP) to a node until it is cut: then every
// query goes unanswered, as when a PoP's upstream link drops its traffic
// while the PoP itself, its BGP session and its self-check are fine (a
// gray failure only the monitors can see).
type blackhole struct {
	addr   string // where the monitors send their queries
	target string
	cut    atomic.Bool
	udp    *net.UDPConn
	tcp    net.Listener
	wg     sync.WaitGroup
}

func startBlackhole(t *testing.T, target string) *blackhole {
	t.Helper()
	port := testkit.FreePort(t)
	b := &blackhole{addr: fmt.Sprintf("127.0.0.1:%d", port), target: target}
	var err error
	if b.udp, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(b.addr))); err != nil {
		t.Fatal(err)
	}
	if b.tcp, err = net.Listen("tcp", b.addr); err != nil {
		t.Fatal(err)
	}
	b.wg.Go(b.serveUDP)
	b.wg.Go(b.serveTCP)
	t.Cleanup(func() { _ = b.udp.Close(); _ = b.tcp.Close(); b.wg.Wait() })
	return b
}

func (b *blackhole) serveUDP() {
	buf := make([]byte, 65535)
	for {
		n, from, err := b.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if b.cut.Load() {
			continue
		}
		q := append([]byte(nil), buf[:n]...)
		b.wg.Go(func() {
			c, err := net.Dial("udp", b.target)
			if err != nil {
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(time.Second))
			if _, err := c.Write(q); err != nil {
				return
			}
			a := make([]byte, 65535)
			n, err := c.Read(a)
			if err != nil || b.cut.Load() {
				return
			}
			_, _ = b.udp.WriteToUDPAddrPort(a[:n], from)
		})
	}
}

func (b *blackhole) serveTCP() {
	for {
		c, err := b.tcp.Accept()
		if err != nil {
			return
		}
		b.wg.Go(func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if b.cut.Load() {
				_, _ = io.Copy(io.Discard, c) // accepted, never answered
				return
			}
			up, err := net.Dial("tcp", b.target)
			if err != nil {
				return
			}
			defer up.Close()
			_ = up.SetDeadline(time.Now().Add(5 * time.Second))
			go func() { _, _ = io.Copy(up, c) }()
			_, _ = io.Copy(c, up)
		})
	}
}

const e2eToken = "0123456789abcdef-e2e-token"

// TestMonitorsMoveAPoP: the loop of application-layer anycast with the
// real binaries — a control plane deciding levels, two nodes following it
// (B-pop with BGP to a router in the test, A-pop without BGP) and two
// monitors reporting to it. B-pop's DNS is cut on the monitors' path
// while the node, its BGP session and its self-check stay up: two of two
// vantage points see it down, the control plane withdraws it and B-pop's
// router loses the route within 2 s; anycastctl fleet says why. Repaired,
// it comes back after the hold. A-pop without BGP ignores the levels.
// With the control plane gone, B-pop's last level lapses after its
// validity and the node is back at its own default.
func TestMonitorsMoveAPoP(t *testing.T) {
	bin := testkit.BuildAnycastd(t)
	ctl := testkit.BuildAnycastctl(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "canary.zone"), zone)
	const secret = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

	// The control plane.
	apiAddr, xfrAddr, streamAddr := testkit.FreeAddr(t), testkit.FreeAddr(t), testkit.FreeAddr(t)
	write(t, filepath.Join(dir, "control.yaml"), fmt.Sprintf(`data_dir: %s
api: {listen: "%s", tokens: ["%s"]}
xfr:
  listen: ["%s"]
  tsig_keys: [{name: fleet-key, secret: "%s"}]
  allow_transfer: [{prefix: 127.0.0.0/8, key: fleet-key}]
stream: {listen: ["%s"], heartbeat: 200ms}
levels: {interval: 100ms, quorum: 2, stale: 1s, validity: 2s, hold: 1s}
log: {level: debug}
`, filepath.Join(dir, "data"), apiAddr, e2eToken, xfrAddr, secret, streamAddr))
	control := testkit.StartProcess(t, "control", filepath.Join(dir, "control.log"), bin, "control", "-config", filepath.Join(dir, "control.yaml"))
	apiURL := "http://" + apiAddr

	// B-pop, with BGP to a router of the test; A-pop without BGP.
	const nodeASN, routerASN = 64512, 64513
	prefix := netip.MustParsePrefix("192.0.2.53/32")
	bDNS, bAdmin, bBGP := testkit.FreePort(t), testkit.FreePort(t), testkit.FreePort(t)
	write(t, filepath.Join(dir, "b.yaml"), fmt.Sprintf(`identity: {name: b1}
listen: ["127.0.0.3:%d"]
zones: [{name: canary.test., file: canary.zone}]
admin: {listen: "127.0.0.3:%d"}
drain_period: 0s
health: {interval: 200ms, timeout: 150ms, rise: 1, fall: 3, query_addr: "127.0.0.3:%d"}
bgp:
  asn: %d
  router_id: 192.0.2.3
  listen_port: %d
  peers: [{address: 127.0.0.1, asn: %d, passive: true}]
  announce: [{prefix: %s}]
tsig_keys: [{name: fleet-key, secret: "%s"}]
control: {servers: ["http://%s"], key: fleet-key, pop: B-pop}
log: {level: debug}
`, bDNS, bAdmin, bDNS, nodeASN, bBGP, routerASN, prefix, secret, streamAddr))
	testkit.StartProcess(t, "b1", filepath.Join(dir, "b.log"), bin, "node", "-config", filepath.Join(dir, "b.yaml"))
	lo := netip.MustParseAddr("127.0.0.1")
	router, err := bgptest.Start(bgptest.Config{ASN: routerASN, RouterID: netip.MustParseAddr("192.0.2.254"), Local: lo,
		Speaker: netip.MustParseAddr("127.0.0.3"), SpeakerPort: bBGP, SpeakerASN: nodeASN})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(router.Close)
	aDNS, aAdmin := testkit.FreePort(t), testkit.FreePort(t)
	write(t, filepath.Join(dir, "a.yaml"), fmt.Sprintf(`identity: {name: a1}
listen: ["127.0.0.2:%d"]
zones: [{name: canary.test., file: canary.zone}]
admin: {listen: "127.0.0.2:%d"}
tsig_keys: [{name: fleet-key, secret: "%s"}]
control: {servers: ["http://%s"], key: fleet-key, pop: A-pop}
`, aDNS, aAdmin, secret, streamAddr))
	nodeA := testkit.StartProcess(t, "a1", filepath.Join(dir, "a.log"), bin, "node", "-config", filepath.Join(dir, "a.yaml"))

	// Two monitors, both reaching B-pop through the blackhole.
	hole := startBlackhole(t, fmt.Sprintf("127.0.0.3:%d", bDNS))
	for _, v := range []string{"m1", "m2"} {
		write(t, filepath.Join(dir, v+".token"), e2eToken+"\n")
		write(t, filepath.Join(dir, v+".yaml"), fmt.Sprintf(`vantage: %s
listen: "%s"
canary_zone: canary.test.
interval: 100ms
timeout: 80ms
rise: 2
fall: 2
window: 2s
pops:
  - {name: A-pop, dns: "127.0.0.2:%d", load: "http://127.0.0.2:%d"}
  - {name: B-pop, dns: "%s", load: "http://127.0.0.3:%d"}
report: {url: "%s", token_file: %s.token}
`, v, testkit.FreeAddr(t), aDNS, aAdmin, hole.addr, bAdmin, apiURL, v))
		testkit.StartProcess(t, v, filepath.Join(dir, v+".log"), bin, "monitor", "-config", filepath.Join(dir, v+".yaml"))
	}

	runCtl := func(args ...string) ([]byte, error) {
		cmd := exec.Command(ctl, args...)
		cmd.Env = append(os.Environ(), "ANYCASTCTL_API="+apiURL, "ANYCASTCTL_TOKEN="+e2eToken)
		return cmd.CombinedOutput()
	}
	bAdminClient := admin.NewClient(fmt.Sprintf("http://127.0.0.3:%d", bAdmin), nil)
	bLevel := func() *admin.Level {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, err := bAdminClient.Status(ctx)
		if err != nil {
			return nil
		}
		return st.Level
	}
	waitUntil := func(what string, within time.Duration, ok func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for !ok() {
			if time.Since(start) > within {
				t.Fatalf("%s: not within %v; B-pop level %+v", what, within, bLevel())
			}
			time.Sleep(10 * time.Millisecond)
		}
		return time.Since(start)
	}
	routed := func(want bool) func() bool {
		return func() bool {
			r, ok := router.Route(prefix)
			return ok == want && (!ok || len(r.ASPath) == 1)
		}
	}

	// Both PoPs up from both vantage points: B-pop is announced, at the
	// control plane's "normal".
	waitUntil("B-pop announced at the control plane's normal", 30*time.Second, func() bool {
		l := bLevel()
		return l != nil && l.Source == admin.SourceControl && l.Level == level.Normal && routed(true)()
	})

	// The gray failure: B-pop's DNS is cut on the monitors' path.
	hole.cut.Store(true)
	d := waitUntil("B-pop withdrawn by the control plane", 5*time.Second, routed(false))
	t.Logf("B-pop's route withdrawn %v after its DNS was cut", d)
	if d > 2*time.Second {
		t.Errorf("B-pop withdrawn %v after the cut, want within 2 s (interval 100ms, fall 2)", d)
	}
	if l := bLevel(); l == nil || l.Level != level.Withdrawn || l.Source != admin.SourceControl || !strings.Contains(l.Reason, "down from 2 of 2") {
		t.Errorf("B-pop's level %+v, want withdrawn by the control plane", l)
	}
	out, err := runCtl("fleet")
	if err != nil {
		t.Fatalf("anycastctl fleet: %v\n%s", err, out)
	}
	for _, want := range []string{"B-pop  withdrawn", "down from 2 of 2 vantage points (quorum 2)", "A-pop  normal"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("anycastctl fleet lacks %q:\n%s", want, out)
		}
	}

	// Repaired: back after rise rounds and the hold.
	hole.cut.Store(false)
	d = waitUntil("B-pop back", 10*time.Second, routed(true))
	t.Logf("B-pop announced again %v after the repair (hold 1s)", d)

	// An operator pin through the control plane wins, and is lifted.
	if out, err := runCtl("fleet", "pin", "B-pop", "shed-1", "-reason", "e2e"); err != nil {
		t.Fatalf("anycastctl fleet pin: %v\n%s", err, out)
	}
	waitUntil("B-pop at the pinned shed-1", 5*time.Second, func() bool {
		r, ok := router.Route(prefix)
		return ok && len(r.ASPath) == 2
	})
	if out, err := runCtl("fleet", "unpin", "B-pop"); err != nil {
		t.Fatalf("anycastctl fleet unpin: %v\n%s", err, out)
	}
	waitUntil("B-pop back at normal after the unpin", 5*time.Second, routed(true))

	// A-pop has no BGP: the levels are ignored, said once.
	if n := strings.Count(nodeA.Log(), "they are ignored"); n != 1 {
		t.Errorf("A-pop logged %d times that it ignores the levels, want once", n)
	}

	// The control plane goes: B-pop keeps the control plane's level for
	// its validity (2s), then its own default.
	if err := control.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-control.Done()
	if err := control.Err(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("control plane exited with %v", err)
	}
	// The last refresh was sent while the control plane was stopping:
	// the level holds until the validity of that one.
	var until time.Time
	waitUntil("B-pop's level back to its own default", 10*time.Second, func() bool {
		l := bLevel()
		if l != nil && l.Control != nil {
			until = l.Control.Until
		}
		return l != nil && l.Source == admin.SourceDefault
	})
	if early := time.Until(until); until.IsZero() || early > 50*time.Millisecond {
		t.Errorf("B-pop dropped the control plane's level %v before its validity ended (valid until %v)", early, until)
	}
	if !routed(true)() {
		t.Error("B-pop is not announced after the control plane went: the monitors must never take a PoP down alone")
	}
}
