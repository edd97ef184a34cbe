//go:build linux

package anycast

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// --- topology ---------------------------------------------------------------

var envCounter atomic.Int32

// env is one test's topology: R with BIRD, N for the node, and a veth.
type env struct {
	t        *testing.T
	dir      string
	rNS, nNS string // namespace names
	rIf      string // R's end of the veth
	birdSock string
	birdLog  string
	bfd      bool
	fib      *netlink.Handle // netlink in R
	nftTable string
	nftSh    *nftShell // started by the first blockDNS
}

// newEnv builds the namespaces, the veth and BIRD; everything is removed in
// t.Cleanup, also when the test fails.
func newEnv(t *testing.T, bfd bool) *env {
	t.Helper()
	requireLab(t)
	n := envCounter.Add(1)
	pid := os.Getpid()
	e := &env{
		t:        t,
		dir:      t.TempDir(),
		rNS:      fmt.Sprintf("ane2e-r-%d-%d", pid, n),
		nNS:      fmt.Sprintf("ane2e-n-%d-%d", pid, n),
		rIf:      fmt.Sprintf("aer%d%d", pid%100000, n),
		bfd:      bfd,
		nftTable: fmt.Sprintf("anycast_e2e_%d", pid),
	}
	nIf := fmt.Sprintf("aen%d%d", pid%100000, n)
	if len(e.rIf) > 15 || len(nIf) > 15 {
		t.Fatalf("interface names %q %q too long", e.rIf, nIf)
	}
	e.birdSock = filepath.Join(e.dir, "bird.ctl")
	e.birdLog = filepath.Join(e.dir, "bird.log")

	for _, ns := range []string{e.rNS, e.nNS} {
		untrack := trackNamespace(ns)
		run(t, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("cleanup: ip netns del %s: %v\n%s", ns, err, out)
				return
			}
			untrack()
		})
	}
	// The veth lives in the namespaces and goes with them; deleting it
	// explicitly is not needed, but a link left in the root namespace
	// (if the move failed) is removed here.
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", e.rIf).Run() })
	run(t, "ip", "link", "add", e.rIf, "netns", e.rNS, "type", "veth", "peer", "name", nIf, "netns", e.nNS)
	for _, c := range []struct{ ns, ifc, a4, a6 string }{
		{e.rNS, e.rIf, routerAddr4, routerAddr6},
		{e.nNS, nIf, nodeAddr4, nodeAddr6},
	} {
		run(t, "ip", "-n", c.ns, "link", "set", "lo", "up")
		run(t, "ip", "-n", c.ns, "addr", "add", c.a4+"/30", "dev", c.ifc)
		run(t, "ip", "-n", c.ns, "addr", "add", c.a6+"/64", "dev", c.ifc, "nodad")
		run(t, "ip", "-n", c.ns, "link", "set", c.ifc, "up")
	}
	run(t, "ip", "-n", e.nNS, "addr", "add", prefix4, "dev", "lo")
	run(t, "ip", "-n", e.nNS, "addr", "add", prefix6, "dev", "lo", "nodad")

	h, err := netns.GetFromName(e.rNS)
	if err != nil {
		t.Fatalf("open namespace %s: %v", e.rNS, err)
	}
	e.fib, err = netlink.NewHandleAt(h)
	h.Close()
	if err != nil {
		t.Fatalf("netlink in %s: %v", e.rNS, err)
	}
	t.Cleanup(e.fib.Close)

	e.startBird()
	e.startCapture()
	return e
}

// startCapture: with ANYCAST_E2E_PCAP=1, tcpdump in R writes BFD and BGP
// packets on the veth to capture.log (kept with ANYCAST_E2E_LOGDIR).
func (e *env) startCapture() {
	if os.Getenv("ANYCAST_E2E_PCAP") != "1" {
		return
	}
	f, err := os.Create(filepath.Join(e.dir, "capture.log"))
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", e.rNS, "tcpdump", "-i", e.rIf, "-n", "-l", "-tttt", "-v", "udp port 3784 or tcp port 179")
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		e.t.Fatalf("tcpdump: %v", err)
	}
	untrack := trackPID(cmd.Process.Pid, "tcpdump")
	e.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		_ = cmd.Wait()
		untrack()
		f.Close()
	})
	time.Sleep(200 * time.Millisecond)
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// birdConfig: eBGP with the node, explicit filters, fast timers as in
// internal/announce's interop test, and the kernel protocol so that R's
// FIB has the routes the DNS client in R uses.
func (e *env) birdConfig() string {
	bfdProto, bfdOpt := "", "bfd off;"
	if e.bfd {
		bfdProto = fmt.Sprintf("protocol bfd {\n\tdebug { states, events };\n\tinterface %q { interval 100 ms; multiplier 3; };\n}\n", e.rIf)
		bfdOpt = "bfd on;"
	}
	return fmt.Sprintf(`log %q all;
timeformat protocol iso long ms;
timeformat log iso long ms;
router id %s;
protocol device { scan time 10; }
protocol kernel kernel4 { ipv4 { import none; export filter { if proto = "node" then accept; reject; }; }; }
protocol kernel kernel6 { ipv6 { import none; export filter { if proto = "node" then accept; reject; }; }; }
%s
filter from_node4 {
	if net ~ [ %s ] then accept;
	reject;
}
filter from_node6 {
	if net ~ [ %s ] then accept;
	reject;
}
protocol bgp node {
	debug { states, events, routes };
	local %s as %d;
	neighbor %s as %d;
	hold time %d;
	keepalive time %d;
	connect delay time 1;
	connect retry time 1;
	error wait time 1, 10;
	error forget time 1;
	%s
	ipv4 { import filter from_node4; export none; };
	ipv6 { import filter from_node6; export none; };
}
`, e.birdLog, routerAddr4, bfdProto, prefix4, prefix6, routerAddr4, routerASN, nodeAddr4, nodeASN,
		int(holdTime/time.Second), int(keepalive/time.Second), bfdOpt)
}

func (e *env) startBird() {
	t := e.t
	conf := filepath.Join(e.dir, "bird.conf")
	writeFile(t, conf, e.birdConfig())
	cmd := exec.Command("ip", append([]string{"netns", "exec", e.rNS}, niced("bird", "-c", conf, "-s", e.birdSock, "-f")...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start bird: %v", err)
	}
	untrack := trackPID(cmd.Process.Pid, "bird")
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // bird itself: ip netns exec execs it
		_ = cmd.Wait()
		untrack()
		keepLogs(t, e.dir)
		if t.Failed() || showLogs() {
			log, _ := os.ReadFile(e.birdLog)
			t.Logf("bird output:\n%s\nbird log (tail):\n%s", out.String(), lastLines(string(log), 60))
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if o, err := exec.Command("birdc", "-s", e.birdSock, "show", "status").CombinedOutput(); err == nil && strings.Contains(string(o), "Daemon is up") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bird not up after 10s: %s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) birdc(args ...string) string {
	out, err := exec.Command("birdc", append([]string{"-s", e.birdSock}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("birdc %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// --- the router's view ------------------------------------------------------

// view is what R knows about the anycast prefixes.
type view struct {
	bird4, bird6 bool // in BIRD's tables, from the node
	fib4, fib6   bool // in R's kernel FIB
}

func (v view) bird(want bool) bool { return v.bird4 == want && v.bird6 == want }
func (v view) fib(want bool) bool  { return v.fib4 == want && v.fib6 == want }

func (v view) String() string {
	return fmt.Sprintf("BIRD %s=%v %s=%v, FIB %s=%v %s=%v", prefix4, v.bird4, prefix6, v.bird6, prefix4, v.fib4, prefix6, v.fib6)
}

func (e *env) view() view {
	e.t.Helper()
	out, err := exec.Command("birdc", "-s", e.birdSock, "show", "route", "protocol", "node").CombinedOutput()
	if err != nil {
		e.t.Fatalf("birdc show route: %v\n%s", err, out)
	}
	s := string(out)
	v := view{bird4: strings.Contains(s, prefix4+" "), bird6: strings.Contains(s, prefix6+" ")}
	v.fib4 = e.inFIB(netlink.FAMILY_V4, prefix4)
	v.fib6 = e.inFIB(netlink.FAMILY_V6, prefix6)
	return v
}

func (e *env) inFIB(family int, prefix string) bool {
	e.t.Helper()
	p := netip.MustParsePrefix(prefix)
	dst := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
	routes, err := e.fib.RouteListFiltered(family, &netlink.Route{Dst: dst}, netlink.RT_FILTER_DST)
	if err != nil {
		e.t.Fatalf("routes in %s: %v", e.rNS, err)
	}
	return len(routes) > 0
}

// waitRoutes polls every 10 ms until both prefixes are (want) or are not
// in BIRD and in R's FIB, and returns the time from t0 to each. It fails the
// test after timeout.
func (e *env) waitRoutes(t0 time.Time, want bool, timeout time.Duration, what string) (bird, fib time.Duration) {
	e.t.Helper()
	bird, fib = -1, -1
	for {
		v := e.view()
		now := time.Since(t0)
		if bird < 0 && v.bird(want) {
			bird = now
		}
		if fib < 0 && v.fib(want) {
			fib = now
		}
		if bird >= 0 && fib >= 0 {
			return bird, fib
		}
		if now > timeout {
			e.t.Fatalf("%s: after %v: %v, want all %v %s\n%s\n%s", what, timeout.Round(time.Millisecond), v, want, machine(t0),
				e.birdc("show", "protocols", "all", "node"), e.statusText())
		}
		time.Sleep(pollEvery)
	}
}

// holdRoutes fails the test if, during d, BIRD or R's FIB is ever other
// than want.
func (e *env) holdRoutes(want bool, d time.Duration, what string) {
	e.t.Helper()
	start := time.Now()
	for time.Since(start) < d {
		if v := e.view(); !v.bird(want) || !v.fib(want) {
			e.t.Fatalf("%s: %v after %v, want all %v for %v %s\n%s\n%s", what, v, ms(time.Since(start)), want, d, machine(start),
				e.birdc("show", "protocols", "all", "node"), e.statusText())
		}
		time.Sleep(5 * pollEvery)
	}
}

// waitEstablished waits until BIRD's session with the node is Established.
func (e *env) waitEstablished(timeout time.Duration) time.Duration {
	e.t.Helper()
	start := time.Now()
	for {
		if strings.Contains(e.birdc("show", "protocols", "node"), "Established") {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			e.t.Fatalf("BGP session not established after %v\n%s\n%s", timeout,
				e.birdc("show", "protocols", "all", "node"), e.statusText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitBFDUp waits until BIRD's BFD session with the node is Up.
func (e *env) waitBFDUp(timeout time.Duration) {
	e.t.Helper()
	start := time.Now()
	for {
		out := e.birdc("show", "bfd", "sessions")
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) >= 3 && f[0] == nodeAddr4 && f[2] == "Up" {
				return
			}
		}
		if time.Since(start) > timeout {
			e.t.Fatalf("BFD session not up after %v\n%s", timeout, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
