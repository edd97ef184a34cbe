package lab

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"go.yaml.in/yaml/v3"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

// TestMain doubles as `anycastlab wire` so that the wire-process mode can
// be tested without building the command: Options.WireCommand points at
// this test binary with ANYCASTLAB_TEST_WIRE=1 in its environment.
func TestMain(m *testing.M) {
	if os.Getenv("ANYCASTLAB_TEST_WIRE") == "1" {
		os.Exit(wireMain(os.Args[1:]))
	}
	onSignal()
	os.Exit(m.Run())
}

// Ctrl-C (or a SIGTERM) of the test run tears down what the tests built:
// testCtx ends, which makes a lab being built remove itself, and every
// lab already up is brought down before the process exits.
var (
	testCtx, interrupt = context.WithCancel(context.Background())
	liveMu             sync.Mutex
	live               = map[*Lab]bool{}
)

func onSignal() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "%v: removing the labs of this test run\n", s)
		interrupt()
		liveMu.Lock()
		for l := range live {
			if err := l.Down(); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}
		os.Exit(130)
	}()
}

func wireMain(args []string) int {
	fs := flag.NewFlagSet("wire", flag.ContinueOnError)
	name := fs.String("name", "", "")
	delay := fs.Duration("delay", 0, "")
	loss := fs.Float64("loss", 0, "")
	seed := fs.Uint64("seed", 0, "")
	delayFile := fs.String("delay-file", "", "")
	if len(args) > 0 && args[0] == "wire" {
		args = args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := ServeWire(ctx, WireConfig{Name: *name, Delay: *delay, Loss: *loss, Seed: *seed, DelayFile: *delayFile}, logger, 3, 4); err != nil {
		logger.Error("wire", "err", err)
		return 1
	}
	return 0
}

// needRoot skips a test that needs root or a tool of the lab, except in
// CI where it fails.
func needRoot(t *testing.T) {
	t.Helper()
	testkit.RequireRoot(t, "network namespaces, TUN devices, BIRD")
	for _, bin := range []string{"bird", "birdc", "ip"} {
		testkit.RequireTool(t, bin, "bird2 or iproute2")
	}
}

type testLog struct{ t *testing.T }

func (w testLog) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func upTest(t *testing.T, topo *Topology, opts Options) *Lab {
	t.Helper()
	if opts.StateDir == "" {
		opts.StateDir = t.TempDir()
	}
	opts.Progress = testLog{t}
	ctx, cancel := context.WithTimeout(testCtx, 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	l, err := Up(ctx, topo, opts)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	t.Logf("up in %s", time.Since(t0).Round(time.Millisecond))
	liveMu.Lock()
	live[l] = true
	liveMu.Unlock()
	t.Cleanup(func() {
		liveMu.Lock()
		delete(live, l)
		liveMu.Unlock()
		if err := l.Down(); err != nil {
			t.Errorf("Down: %v", err)
		}
	})
	return l
}

// leftovers lists what of lab id still exists: namespaces, and processes
// whose command line names the lab's directory or id.
func leftovers(t *testing.T, id, dir string) []string {
	t.Helper()
	var left []string
	ns, err := listNamespaces(NamespacePrefix(id))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range ns {
		left = append(left, "namespace "+n)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmd, dir+"/") || strings.Contains(cmd, NamespacePrefix(id)) {
			var pid int
			fmt.Sscanf(p, "/proc/%d/cmdline", &pid)
			if st, _, err := procStat(pid); err == nil && st != 'Z' {
				left = append(left, "process "+cmd)
			}
		}
	}
	if _, err := os.Stat(dir); err == nil {
		left = append(left, "directory "+dir)
	}
	return left
}

// pathDelay is the one-way delay of the lowest-delay path between two
// nodes, from the topology's links.
func pathDelay(l *Lab, from, to string) time.Duration {
	dist := map[string]time.Duration{from: 0}
	for range l.Nodes() { // Bellman-Ford: the graph is tiny
		for _, k := range l.Links() {
			for _, e := range [][2]string{{k.A.Node, k.B.Node}, {k.B.Node, k.A.Node}} {
				if d, ok := dist[e[0]]; ok {
					if old, ok := dist[e[1]]; !ok || d+k.Spec.Delay < old {
						dist[e[1]] = d + k.Spec.Delay
					}
				}
			}
		}
	}
	return dist[to]
}

// serveName answers every UDP datagram to addr:port in node's namespace
// with the node's name, until the test ends.
func serveName(t *testing.T, l *Lab, node string, addr netip.Addr, port int) {
	t.Helper()
	n, err := l.Node(node)
	if err != nil {
		t.Fatal(err)
	}
	var conn *net.UDPConn
	err = inNamespace(namespacePath(n.Namespace), func() error {
		var err error
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, uint16(port))))
		return err
	})
	if err != nil {
		t.Fatalf("listen in %s: %v", node, err)
	}
	t.Cleanup(func() { conn.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			_, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			conn.WriteToUDPAddrPort([]byte(node), from)
		}
	}()
}

// askName sends a datagram from node to dst and returns the answer.
func askName(l *Lab, node string, dst netip.AddrPort) (string, error) {
	n, err := l.Node(node)
	if err != nil {
		return "", err
	}
	src := n.Addr4
	if dst.Addr().Is6() {
		src = n.Addr6
	}
	var conn *net.UDPConn
	err = inNamespace(namespacePath(n.Namespace), func() error {
		var err error
		conn, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(dst))
		return err
	})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	buf := make([]byte, 512)
	for range 3 {
		if _, err := conn.Write([]byte("who")); err != nil {
			return "", err
		}
		conn.SetReadDeadline(time.Now().Add(time.Second))
		n, err := conn.Read(buf)
		if err == nil {
			return string(buf[:n]), nil
		}
	}
	return "", fmt.Errorf("no answer from %s", dst)
}

// TestLab brings the default topology up with BIRD standing in for the
// PoPs' BGP speakers, proves routing, delays and catchment, and brings it
// down again leaving nothing behind.
func TestLab(t *testing.T) {
	needRoot(t)
	topo, err := DefaultTopology()
	if err != nil {
		t.Fatal(err)
	}
	l := upTest(t, topo, Options{Speakers: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	t.Run("sysctls", func(t *testing.T) {
		for _, n := range l.Nodes() {
			want := map[string]string{"net.ipv4.conf.all.rp_filter": "0", "net.ipv4.ip_forward": "0", "net.ipv6.conf.all.forwarding": "0"}
			if n.Role == RoleRouter {
				want["net.ipv4.ip_forward"], want["net.ipv6.conf.all.forwarding"] = "1", "1"
			}
			for k, v := range want {
				got, err := readSysctl(namespacePath(n.Namespace), k)
				if err != nil || got != v {
					t.Errorf("%s: %s = %q (%v), want %q", n.Name, k, got, err, v)
				}
			}
		}
	})

	t.Run("bgp and bfd", func(t *testing.T) {
		for _, r := range l.NodesByRole(RoleRouter) {
			ps, err := l.Protocols(ctx, r.Name)
			if err != nil {
				t.Fatal(err)
			}
			info := map[string]string{}
			for _, p := range ps {
				info[p.Name] = p.Info
			}
			for _, s := range l.Sessions(r.Name) {
				if info[s.Protocol] != "Established" {
					t.Errorf("%s: %s to %s is %q", r.Name, s.Protocol, s.Peer, info[s.Protocol])
				}
			}
			// BFD may come up a moment after the BGP session it guards.
			var out string
			var up int
			for deadline := time.Now().Add(10 * time.Second); up != 2 && time.Now().Before(deadline); {
				if out, err = l.Birdc(ctx, r.Name, "show", "bfd", "sessions"); err != nil {
					t.Fatal(err)
				}
				if up = strings.Count(out, " Up "); up != 2 {
					time.Sleep(100 * time.Millisecond)
				}
			}
			if up != 2 {
				t.Errorf("%s: %d BFD sessions up, want 2 (IPv4 and IPv6 to its PoP):\n%s", r.Name, up, out)
			}
		}
	})

	t.Run("reachability", func(t *testing.T) {
		var wg sync.WaitGroup
		for _, c := range l.NodesByRole(RoleClient) {
			var targets []*Node
			targets = append(targets, l.NodesByRole(RoleRouter)...)
			for _, o := range l.NodesByRole(RoleClient) {
				if o != c {
					targets = append(targets, o)
				}
			}
			wg.Go(func() {
				for _, d := range targets {
					for _, a := range d.Addrs() {
						res, err := l.Ping(ctx, c.Name, a, 2, 10*time.Millisecond, 2*time.Second)
						if err != nil || len(res.RTTs) == 0 {
							t.Errorf("%s cannot ping %s (%s): %v, %d/%d answered", c.Name, d.Name, a, err, len(res.RTTs), res.Sent)
						}
					}
				}
			})
		}
		wg.Wait()
	})

	t.Run("rtt reflects delays", func(t *testing.T) {
		want := 2 * pathDelay(l, "A-client", "C-client")
		if want != 2*(5+20+40+5)*time.Millisecond {
			t.Fatalf("path delay A-client→C-client %s: the default topology changed", want/2)
		}
		c, _ := l.Node("C-client")
		for _, dst := range c.Addrs() {
			res, err := l.Ping(ctx, "A-client", dst, 10, 20*time.Millisecond, 3*time.Second)
			if err != nil || len(res.RTTs) == 0 {
				t.Fatalf("ping %s: %v", dst, err)
			}
			t.Logf("A-client → C-client %s: min %s avg %s over %d/%d, configured %s", dst, res.Min(), res.Avg(), len(res.RTTs), res.Sent, want)
			// Never faster than the configured delays; slower only by
			// scheduling, which a loaded machine stretches.
			if res.Min() < want || res.Min() > 2*want+100*time.Millisecond {
				t.Errorf("min RTT %s, want within [%s, %s]", res.Min(), want, 2*want+100*time.Millisecond)
			}
		}
	})

	t.Run("catchment", func(t *testing.T) {
		for _, pop := range l.NodesByRole(RolePoP) {
			for _, a := range l.Topology().Anycast {
				serveName(t, l, pop.Name, a.Addr(), 5300)
			}
		}
		for _, c := range l.NodesByRole(RoleClient) {
			for _, a := range l.Topology().Anycast {
				got, err := askName(l, c.Name, netip.AddrPortFrom(a.Addr(), 5300))
				if want := c.Region + "-pop"; err != nil || got != want {
					t.Errorf("%s → %s answered by %q (%v), want %s", c.Name, a.Addr(), got, err, want)
				}
			}
		}
	})

	t.Run("node configs", func(t *testing.T) {
		for _, pop := range l.NodesByRole(RolePoP) {
			b, err := os.ReadFile(l.NodeConfigPath(pop.Name))
			if err != nil {
				t.Fatal(err)
			}
			var cfg struct {
				BGP NodeBGP `yaml:"bgp"`
			}
			if err := yaml.Unmarshal(b, &cfg); err != nil {
				t.Fatal(err)
			}
			if cfg.BGP.ASN != pop.ASN || len(cfg.BGP.Peers) != 2 || len(cfg.BGP.Announce) != 2 {
				t.Errorf("%s: node config %+v", pop.Name, cfg.BGP)
			}
		}
	})

	t.Run("exec", func(t *testing.T) {
		out, err := l.Exec(ctx, "A-pop", "ip", "-o", "addr", "show", "dev", "lo")
		if err != nil || !strings.Contains(string(out), "192.0.2.53/32") || !strings.Contains(string(out), "2001:db8::53/128") {
			t.Errorf("A-pop lo: %v\n%s", err, out)
		}
	})

	p, err := l.StartProcess("B-client", "sleep", "600")
	if err != nil {
		t.Fatal(err)
	}
	if !p.alive() {
		t.Fatal("started process is not running")
	}

	t0 := time.Now()
	if err := l.Down(); err != nil {
		t.Fatalf("Down: %v", err)
	}
	t.Logf("down in %s", time.Since(t0).Round(time.Millisecond))
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		t.Error("Down left the started process running")
	}
	if left := leftovers(t, l.ID, l.Dir); len(left) > 0 {
		t.Errorf("left after Down: %v", left)
	}
	out, err := run(ctx, "ip", "netns", "list")
	if err != nil || strings.Contains(string(out), NamespacePrefix(l.ID)) {
		t.Errorf("ip netns list: %v\n%s", err, out)
	}
}

// TestLabWireProcesses runs the wires as child processes, as anycastlab up
// does, and removes the lab from its state file alone, as anycastlab down
// does.
func TestLabWireProcesses(t *testing.T) {
	needRoot(t)
	t.Setenv("ANYCASTLAB_TEST_WIRE", "1")
	topo, err := DefaultTopology()
	if err != nil {
		t.Fatal(err)
	}
	l := upTest(t, topo, Options{WireCommand: []string{os.Args[0], "wire"}})
	var wires int
	for _, p := range l.state.Processes {
		if p.Kind == "wire" && p.alive() {
			wires++
		}
	}
	if wires != len(l.Links()) {
		t.Errorf("%d wire processes running, want %d", wires, len(l.Links()))
	}
	want := 2 * pathDelay(l, "A-client", "C-client")
	ctx := context.Background()
	c, _ := l.Node("C-client")
	res, err := l.Ping(ctx, "A-client", c.Addr4, 5, 20*time.Millisecond, 3*time.Second)
	if err != nil || len(res.RTTs) == 0 {
		t.Fatalf("ping: %v", err)
	}
	if res.Min() < want || res.Min() > 2*want+100*time.Millisecond {
		t.Errorf("min RTT %s, want within [%s, %s]", res.Min(), want, 2*want+100*time.Millisecond)
	}
	// The delay of a wire process changes while it runs (SetLinkDelay:
	// its delay file and SIGUSR1), and back.
	ab, err := l.LinkDelay("A", "B")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.SetLinkDelay("A", "B", ab+30*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * ab) // what was queued under the old delay
	res, err = l.Ping(ctx, "A-client", c.Addr4, 3, 20*time.Millisecond, 3*time.Second)
	if err != nil || len(res.RTTs) == 0 {
		t.Fatalf("ping after SetLinkDelay: %v", err)
	}
	if res.Min() < want+60*time.Millisecond {
		t.Errorf("A—B delay %s → %s: min RTT A-client → C-client %s, want at least %s", ab, ab+30*time.Millisecond, res.Min(), want+60*time.Millisecond)
	}
	if err := l.SetLinkDelay("A", "B", ab); err != nil {
		t.Fatal(err)
	}
	if err := l.SetLinkDelay("A", "C", time.Millisecond); err == nil {
		t.Error("SetLinkDelay between A and C, which no link joins: no error")
	}
	if pl, err := l.LinkDelay("B", "A"); err != nil || pl != ab {
		t.Errorf("LinkDelay after restoring: %s, %v; want %s", pl, err, ab)
	}
	for _, p := range l.state.Processes {
		if p.Kind == "wire" && !p.alive() {
			t.Errorf("%s died", p.Name)
		}
	}
	// Another process attaches and tears down from the state file.
	a, err := Attach(filepath.Dir(l.Dir), l.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	var status strings.Builder
	if err := a.WriteStatus(ctx, &status); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(status.String(), "Established"); n != 8 {
		t.Errorf("status shows %d established sessions, want 8:\n%s", n, status.String())
	}
	if err := Teardown(filepath.Dir(l.Dir), l.ID); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, l.ID, l.Dir); len(left) > 0 {
		t.Errorf("left after Teardown: %v", left)
	}
	for _, p := range l.state.Processes {
		if p.alive() {
			t.Errorf("%s (pid %d) still runs", p.Name, p.PID)
		}
	}
}

// progressHook calls fn on the first progress line containing s.
type progressHook struct {
	s    string
	fn   func()
	once sync.Once
	t    *testing.T
}

func (h *progressHook) Write(b []byte) (int, error) {
	h.t.Log(strings.TrimRight(string(b), "\n"))
	if strings.Contains(string(b), h.s) {
		h.once.Do(h.fn)
	}
	return len(b), nil
}

// TestUpTearsDownOnFailure checks that Up removes what it built when it is
// interrupted (Ctrl-C) or when a step fails.
func TestUpTearsDownOnFailure(t *testing.T) {
	needRoot(t)
	topo, err := DefaultTopology()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		opts    func(cancel func()) (Options, *progressHook)
		wantErr func(error) bool
	}{
		{
			name: "cancelled while BIRD starts",
			opts: func(cancel func()) (Options, *progressHook) {
				h := &progressHook{s: "[5/6] bird...", fn: cancel, t: t}
				return Options{Speakers: true}, h
			},
			wantErr: func(err error) bool { return errors.Is(err, context.Canceled) },
		},
		{
			name: "bird exits at once",
			opts: func(func()) (Options, *progressHook) {
				return Options{Bird: "false"}, &progressHook{t: t, fn: func() {}}
			},
			wantErr: func(err error) bool {
				return err != nil && strings.Contains(err.Error(), "bird on A-router does not answer")
			},
		},
		{
			name: "convergence times out",
			opts: func(func()) (Options, *progressHook) {
				return Options{ConvergeTimeout: 200 * time.Millisecond}, &progressHook{t: t, fn: func() {}}
			},
			wantErr: func(err error) bool { return err != nil && strings.Contains(err.Error(), "not converged after 200ms") },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			opts, hook := tc.opts(cancel)
			opts.StateDir = t.TempDir()
			opts.ID = fmt.Sprintf("f%07d", time.Now().UnixNano()%1e7)
			opts.Progress = hook
			l, err := Up(ctx, topo, opts)
			if l != nil {
				l.Down()
				t.Fatal("Up succeeded")
			}
			if !tc.wantErr(err) {
				t.Errorf("Up = %v", err)
			}
			if left := leftovers(t, opts.ID, filepath.Join(opts.StateDir, opts.ID)); len(left) > 0 {
				t.Errorf("left after a failed Up: %v", left)
				Teardown(opts.StateDir, opts.ID)
			}
		})
	}
}

// TestECMP puts no PoP in the middle region, so that its router hears the
// anycast prefix at equal AS-path length from both sides: one best path by
// default, both in the kernel with ecmp: true.
func TestECMP(t *testing.T) {
	needRoot(t)
	for _, ecmp := range []bool{false, true} {
		t.Run(fmt.Sprintf("ecmp=%v", ecmp), func(t *testing.T) {
			topo, err := DefaultTopology()
			if err != nil {
				t.Fatal(err)
			}
			topo.ECMP = ecmp
			topo.Regions[1].PoPs = nil
			l := upTest(t, topo, Options{Speakers: true})
			h, err := l.handle("B-router")
			if err != nil {
				t.Fatal(err)
			}
			want := 1
			if ecmp {
				want = 2
			}
			for _, a := range topo.Anycast {
				// Convergence means a route to every prefix; the
				// second path of a multipath route can come from the
				// other neighbour's update a moment later (on a busy
				// machine): give it a few seconds before judging.
				var paths int
				var last string
				for deadline := time.Now().Add(10 * time.Second); ; {
					routes, err := h.nl.RouteGet(netIP(a.Addr()))
					if err != nil {
						t.Fatal(err)
					}
					dst := ipNet(a.Addr(), a.Bits())
					all, err := h.nl.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Dst: dst}, netlink.RT_FILTER_DST)
					if err != nil || len(all) != 1 {
						t.Fatalf("routes to %s: %v %v", a, all, err)
					}
					paths, last = max(1, len(all[0].MultiPath)), fmt.Sprintf("%v via %v", all[0], routes)
					if paths >= want || time.Now().After(deadline) {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				if paths != want {
					t.Errorf("B-router has %d paths to %s (%s), want %d", paths, a, last, want)
				}
			}
		})
	}
}
