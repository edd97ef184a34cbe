package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/anycastdns/anycastdns/internal/sign"
)

// ErrNotRoot is returned by Up when the process cannot manage namespaces.
var ErrNotRoot = errors.New("the lab needs root")

// Options tune how Up builds a lab.
type Options struct {
	// ID names the lab; namespaces are "acl-<ID>-<node>". Empty: random.
	ID string
	// StateDir holds the lab's directory (default /run/anycastlab).
	StateDir string
	// WireCommand, when set, runs each wire as a child process,
	// WireCommand + flags, that inherits the link's two TUN devices as file
	// descriptors 3 and 4; the lab then outlives the process that built it
	// (anycastlab up). When empty the wires run as goroutines of this
	// process and the lab lives as long as it does (tests).
	WireCommand []string
	// Speakers runs BIRD on every PoP as a stand-in for anycastd's BGP
	// speaker, announcing the anycast prefixes with BFD, so the network can
	// be proven before the node speaks BGP.
	Speakers bool
	// Anycastd, when set, is the anycastd binary that Up starts on every
	// PoP (`anycastd node -config <PoP>.node.yaml` in the PoP's namespace);
	// Up then also waits until every PoP announces the anycast prefixes.
	// Exclusive with Speakers.
	Anycastd string
	// Control, with Anycastd, also runs `anycastd control` in the central
	// region's client namespace and makes every PoP follow its catalog
	// zone (see control.go); the propagation scenario needs it.
	Control bool
	// NoStream, with Control, leaves the PoPs without their stream to the
	// control plane: changes reach them by NOTIFY and IXFR alone.
	NoStream bool
	// ControlReplicas, with Control, runs that many replicas of the
	// control plane (0 or 1: one, on SQLite). With two or more Up first
	// starts a PostgreSQL (the Debian binaries, on a Unix socket in a
	// temporary directory; Down stops it), the replicas share its
	// database, each runs in the client namespace of another region, and
	// every PoP lists them all (see controlpg_linux.go).
	ControlReplicas int
	// Monitors, with Control, also runs one `anycastd monitor` per region
	// with a PoP, in the region's client namespace, reporting to the
	// control plane (see monitor.go).
	Monitors bool
	// Levels, with Monitors, is the control plane's levels section: it
	// then decides the PoPs' levels from the monitors' reports and sends
	// them down the PoPs' streams. nil: no decisions.
	Levels *Levels
	// Timing tunes the nodes' health checks and drain period (zero:
	// DefaultNodeTiming).
	Timing NodeTiming
	// Bird and Birdc are the BIRD 2 binaries (default "bird", "birdc").
	Bird, Birdc string
	// ConvergeTimeout bounds the wait for BGP and routes (default 60s).
	ConvergeTimeout time.Duration
	// Progress receives one line per step (default: discarded).
	Progress io.Writer
	Logger   *slog.Logger
}

// Lab is a running lab.
type Lab struct {
	ID    string
	Dir   string
	plan  *plan
	opts  Options
	log   *slog.Logger
	start time.Time

	mu      sync.Mutex
	state   *State
	handles map[string]*nsHandle
	wires   []*runningWire // in-process wires
	procs   map[int]*Process
	nodes   map[string]*Process // the running anycastd of each PoP
	down    bool

	ctl     *controlPlan // nil without Options.Control
	control *Process     // the running control plane (its first replica)
	// replicas are the running replicas of the control plane, by index
	// (replicas[0] is control); pg is their PostgreSQL (nil on SQLite).
	replicas map[int]*Process
	pg       *labPostgres

	monitors map[string]*Process  // the running monitor of each vantage point
	quotas   map[string]*cpuQuota // the CPU quotas put on PoPs
}

type runningWire struct {
	wire   *Wire
	cancel context.CancelFunc
	done   chan error
}

// Up builds the lab of topo and waits until its BGP sessions are established
// and every router has every route. On any failure, or when ctx ends, it
// removes everything it built before it returns.
func Up(ctx context.Context, topo *Topology, opts Options) (_ *Lab, err error) {
	if err := topo.Validate(); err != nil {
		return nil, err
	}
	l, err := newLab(topo, opts)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			l.progressf("failed: %v; tearing down", err)
			if derr := l.Down(); derr != nil {
				err = errors.Join(err, fmt.Errorf("teardown: %w", derr))
			}
		}
	}()
	type step struct {
		name string
		fn   func(context.Context) (string, error)
	}
	var steps []step
	if l.ctl != nil && len(l.ctl.Others) > 0 {
		steps = append(steps, step{"postgresql", l.startPostgres})
	}
	steps = append(steps, []step{
		{"namespaces", l.createNamespaces},
		{"links", l.createLinks},
		{"addresses and routes", l.configureHosts},
		{"configs", l.writeConfigs},
		{"bird", l.startBIRD},
	}...)
	if opts.Control {
		steps = append(steps, step{"control plane", l.startControl})
	}
	if opts.Anycastd != "" {
		steps = append(steps, step{"anycastd", l.startNodes})
	}
	steps = append(steps, step{"convergence", l.converge})
	if opts.Monitors {
		// After convergence: a PoP still coming up would be seen down.
		steps = append(steps, step{"monitors", l.startMonitors})
	}
	for i, s := range steps {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("up lab %s: %w", l.ID, context.Cause(ctx))
		}
		t0 := time.Now()
		l.progressf("[%d/%d] %s...", i+1, len(steps), s.name)
		what, err := s.fn(ctx)
		if err != nil {
			return nil, fmt.Errorf("up lab %s: %s: %w", l.ID, s.name, err)
		}
		l.progressf("[%d/%d] %s: %s (%s)", i+1, len(steps), s.name, what, time.Since(t0).Round(time.Millisecond))
	}
	l.mu.Lock()
	l.state.Ready = true
	err = l.state.save()
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	l.progressf("lab %s is up in %s", l.ID, time.Since(l.start).Round(time.Millisecond))
	return l, nil
}

func newLab(topo *Topology, opts Options) (*Lab, error) {
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	if opts.StateDir == "" {
		opts.StateDir = DefaultStateDir
	}
	if opts.Bird == "" {
		opts.Bird = "bird"
	}
	if opts.Birdc == "" {
		opts.Birdc = "birdc"
	}
	if opts.Speakers && opts.Anycastd != "" {
		return nil, errors.New("lab: BIRD speakers and anycastd on the PoPs exclude each other")
	}
	if opts.Control && opts.Anycastd == "" {
		return nil, errors.New("lab: a control plane needs anycastd (Options.Anycastd)")
	}
	if opts.Monitors && (!opts.Control || opts.NoStream) {
		return nil, errors.New("lab: monitors need a control plane with the PoPs' streams (Options.Control, not NoStream)")
	}
	if opts.Levels != nil && !opts.Monitors {
		return nil, errors.New("lab: levels need monitors (Options.Monitors)")
	}
	if opts.ControlReplicas < 0 || opts.ControlReplicas > 1 && !opts.Control {
		return nil, fmt.Errorf("lab: %d control-plane replicas: want 0 or 1, or more with a control plane (Options.Control)", opts.ControlReplicas)
	}
	if opts.Timing == (NodeTiming{}) {
		opts.Timing = DefaultNodeTiming
	}
	if opts.ConvergeTimeout == 0 {
		opts.ConvergeTimeout = 60 * time.Second
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ID == "" {
		var b [3]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("lab id: %w", err)
		}
		opts.ID = hex.EncodeToString(b[:])
	}
	if !validID(opts.ID) {
		return nil, fmt.Errorf("lab id %q: want 1 to 8 lower-case letters or digits", opts.ID)
	}
	for _, bin := range []string{"ip", opts.Bird, opts.Birdc} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, fmt.Errorf("lab needs %s: %w", bin, err)
		}
	}
	dir := filepath.Join(opts.StateDir, opts.ID)
	if err := os.MkdirAll(opts.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab %s: %w", opts.ID, err)
	}
	l := &Lab{
		ID: opts.ID, Dir: dir, plan: newPlan(opts.ID, topo), opts: opts, start: time.Now(),
		log:     opts.Logger.With("component", "lab", "lab", opts.ID),
		handles: map[string]*nsHandle{}, procs: map[int]*Process{}, nodes: map[string]*Process{},
		monitors: map[string]*Process{}, quotas: map[string]*cpuQuota{}, replicas: map[int]*Process{},
	}
	if opts.Control {
		c, err := l.plan.newControlPlan()
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		c.Stream = !opts.NoStream
		c.Levels = opts.Levels
		if opts.ControlReplicas > 1 {
			if err := l.plan.placeReplicas(c, opts.ControlReplicas); err != nil {
				_ = os.RemoveAll(dir)
				return nil, err
			}
		}
		l.ctl = c
	}
	l.state = &State{ID: l.ID, Dir: dir, Created: l.start, Topology: topo, Speakers: opts.Speakers, Anycastd: opts.Anycastd, Links: l.plan.links}
	if err := l.state.save(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return l, nil
}

func validID(id string) bool {
	if len(id) == 0 || len(id) > 8 {
		return false
	}
	for _, c := range id {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func (l *Lab) progressf(format string, args ...any) {
	printf(l.opts.Progress, "anycastlab %s %6.2fs: %s\n", l.ID, time.Since(l.start).Seconds(), fmt.Sprintf(format, args...))
}

// record applies fn to the state under the lock and saves it.
func (l *Lab) record(fn func(*State)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	fn(l.state)
	return l.state.save()
}

// Nodes returns the lab's nodes in topology order.
func (l *Lab) Nodes() []*Node { return slices.Clone(l.plan.nodes) }

// Links returns the lab's links.
func (l *Lab) Links() []*Link { return slices.Clone(l.plan.links) }

// Node returns the node called name ("A-client").
func (l *Lab) Node(name string) (*Node, error) { return l.plan.node(name) }

// NodesByRole returns the nodes of one role in topology order.
func (l *Lab) NodesByRole(r Role) []*Node {
	var out []*Node
	for _, n := range l.plan.nodes {
		if n.Role == r {
			out = append(out, n)
		}
	}
	return out
}

// Topology returns the topology the lab was built from.
func (l *Lab) Topology() *Topology { return l.plan.topo }

// Sessions lists the BGP sessions of a router or PoP.
func (l *Lab) Sessions(node string) []Session { return l.plan.sessions(node) }

func (l *Lab) handle(node string) (*nsHandle, error) {
	n, err := l.plan.node(node)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if h, ok := l.handles[n.Namespace]; ok {
		return h, nil
	}
	h, err := openHandle(n.Namespace)
	if err != nil {
		return nil, err
	}
	l.handles[n.Namespace] = h
	return h, nil
}

func (l *Lab) createNamespaces(ctx context.Context) (string, error) {
	for _, n := range l.plan.nodes {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		if err := l.createNamespace(ctx, n); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%d namespaces %s*", len(l.plan.nodes), NamespacePrefix(l.ID)), nil
}

// createNamespace creates the namespace of n, records it, sets its sysctls
// and brings lo up.
func (l *Lab) createNamespace(ctx context.Context, n *Node) error {
	if _, err := run(ctx, "ip", "netns", "add", n.Namespace); err != nil {
		return err
	}
	if err := l.record(func(s *State) { s.Namespaces = append(s.Namespaces, n.Namespace) }); err != nil {
		return err
	}
	// Anycast means asymmetric paths: no reverse-path filtering
	// anywhere. Routers forward. IPv6 addresses are usable at once.
	kv := [][2]string{
		{"net.ipv4.conf.all.rp_filter", "0"},
		{"net.ipv4.conf.default.rp_filter", "0"},
		{"net.ipv6.conf.all.accept_dad", "0"},
		{"net.ipv6.conf.default.accept_dad", "0"},
	}
	// IPv4 settings are inherited from the host's namespace: say
	// everything that matters, including that only routers forward.
	forward := "0"
	if n.Role == RoleRouter {
		forward = "1"
	}
	kv = append(kv,
		[2]string{"net.ipv4.ip_forward", forward},
		[2]string{"net.ipv6.conf.all.forwarding", forward})
	if n.Role == RoleRouter {
		kv = append(kv,
			// traceroute through the lab answers every probe
			[2]string{"net.ipv4.icmp_ratelimit", "0"},
			[2]string{"net.ipv6.icmp.ratelimit", "0"},
		)
		if l.plan.topo.ECMP {
			// hash on ports too, so that flows from one client spread
			kv = append(kv,
				[2]string{"net.ipv4.fib_multipath_hash_policy", "1"},
				[2]string{"net.ipv6.fib_multipath_hash_policy", "1"},
			)
		}
	}
	if err := setSysctls(namespacePath(n.Namespace), kv); err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	h, err := l.handle(n.Name)
	if err != nil {
		return err
	}
	lo, err := h.nl.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("%s: lo: %w", n.Name, err)
	}
	if err := h.nl.LinkSetUp(lo); err != nil {
		return fmt.Errorf("%s: lo up: %w", n.Name, err)
	}
	return nil
}

func (l *Lab) createLinks(ctx context.Context) (string, error) {
	wired := 0
	for _, k := range l.plan.links {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		if k.Wired() {
			wired++
		}
		if err := l.createLink(k); err != nil {
			return "", err
		}
	}
	how := "goroutines"
	if len(l.opts.WireCommand) > 0 {
		how = "processes"
	}
	return fmt.Sprintf("%d links: %d wired (TUN pairs, wires as %s), %d veth", len(l.plan.links), wired, how, len(l.plan.links)-wired), nil
}

func (l *Lab) createLink(k *Link) error {
	var err error
	if k.Wired() {
		err = l.createWiredLink(k)
	} else {
		err = l.createVeth(k)
	}
	if err != nil {
		return fmt.Errorf("link %s: %w", k.Name, err)
	}
	return nil
}

func (l *Lab) createVeth(k *Link) error {
	ha, err := l.handle(k.A.Node)
	if err != nil {
		return err
	}
	hb, err := l.handle(k.B.Node)
	if err != nil {
		return err
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: k.A.Ifname, MTU: 1500},
		PeerName:      k.B.Ifname,
		PeerNamespace: netlink.NsFd(hb.ns),
	}
	if err := ha.nl.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth %s/%s: %w", k.A.Ifname, k.B.Ifname, err)
	}
	for _, side := range []struct {
		h   *nsHandle
		end LinkEnd
	}{{ha, k.A}, {hb, k.B}} {
		link, err := side.h.nl.LinkByName(side.end.Ifname)
		if err != nil {
			return fmt.Errorf("find %s in %s: %w", side.end.Ifname, side.h.name, err)
		}
		if err := side.h.nl.LinkSetUp(link); err != nil {
			return fmt.Errorf("up %s in %s: %w", side.end.Ifname, side.h.name, err)
		}
		if err := side.h.addAddr(link, side.end.Addr4, 31, netip.Addr{}); err != nil {
			return err
		}
		if err := side.h.addAddr(link, side.end.Addr6, 127, netip.Addr{}); err != nil {
			return err
		}
	}
	return nil
}

func (l *Lab) createWiredLink(k *Link) (err error) {
	na, _ := l.plan.node(k.A.Node)
	nb, _ := l.plan.node(k.B.Node)
	fa, err := openTUN(namespacePath(na.Namespace), k.A.Ifname)
	if err != nil {
		return err
	}
	fb, err := openTUN(namespacePath(nb.Namespace), k.B.Ifname)
	if err != nil {
		fa.Close()
		return err
	}
	// Addresses before the wire starts: the devices exist while this
	// process holds the files.
	for _, side := range []struct {
		node       string
		end, other LinkEnd
	}{{k.A.Node, k.A, k.B}, {k.B.Node, k.B, k.A}} {
		h, herr := l.handle(side.node)
		if herr != nil {
			err = herr
			break
		}
		link, lerr := h.nl.LinkByName(side.end.Ifname)
		if lerr != nil {
			err = fmt.Errorf("find %s in %s: %w", side.end.Ifname, h.name, lerr)
			break
		}
		// Up first: addresses then get their routes at once.
		if err = h.nl.LinkSetUp(link); err != nil {
			err = fmt.Errorf("up %s in %s: %w", side.end.Ifname, h.name, err)
			break
		}
		if err = h.addAddr(link, side.end.Addr4, 32, side.other.Addr4); err != nil {
			break
		}
		if err = h.addAddr(link, side.end.Addr6, 128, side.other.Addr6); err != nil {
			break
		}
	}
	if err != nil {
		fa.Close()
		fb.Close()
		return err
	}
	cfg := WireConfig{Name: k.Name, Delay: k.Spec.Delay, Loss: k.Spec.Loss, Seed: wireSeed(k.Name)}
	if len(l.opts.WireCommand) == 0 {
		w, err := NewWire(cfg, l.log)
		if err != nil {
			fa.Close()
			fb.Close()
			return err
		}
		ctx, cancel := context.WithCancel(context.Background())
		rw := &runningWire{wire: w, cancel: cancel, done: make(chan error, 1)}
		go func() { rw.done <- w.Run(ctx, fa, fb) }()
		l.mu.Lock()
		l.wires = append(l.wires, rw)
		l.mu.Unlock()
		return nil
	}
	// The child owns the devices from here on: close our copies so that
	// the devices vanish when it exits.
	defer fa.Close()
	defer fb.Close()
	args := append(slices.Clone(l.opts.WireCommand[1:]),
		"-name", k.Name,
		"-delay", k.Spec.Delay.String(),
		"-loss", strconv.FormatFloat(k.Spec.Loss, 'g', -1, 64),
		"-seed", strconv.FormatUint(cfg.Seed, 10),
		"-delay-file", l.delayFile(k))
	cmd := exec.Command(l.opts.WireCommand[0], args...)
	cmd.ExtraFiles = []*os.File{fa, fb}
	rec, err := startRecorded(cmd, "wire "+k.Name, "wire", "", filepath.Join(l.Dir, "wire-"+k.Name+".log"))
	if rec.PID != 0 {
		go cmd.Wait() //nolint:errcheck // reaps the child; its exit is seen through /proc
		if rerr := l.record(func(s *State) { s.Processes = append(s.Processes, rec) }); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	return err
}

// wireSeed derives a repeatable loss seed from the link name.
func wireSeed(name string) uint64 {
	var h uint64 = 14695981039346656037
	for i := 0; i < len(name); i++ {
		h ^= uint64(name[i])
		h *= 1099511628211
	}
	return h
}

// configureHosts puts each node's own addresses on lo (plus the anycast
// addresses on PoPs) and gives PoPs and clients a default route to their
// router, from their own address. Routers get their routes from BIRD.
func (l *Lab) configureHosts(ctx context.Context) (string, error) {
	for _, n := range l.plan.nodes {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		if err := l.configureHost(n); err != nil {
			return "", err
		}
	}
	return "loopbacks, anycast on PoPs, default routes on PoPs and clients", nil
}

func (l *Lab) configureHost(n *Node) error {
	h, err := l.handle(n.Name)
	if err != nil {
		return err
	}
	lo, err := h.nl.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("%s: lo: %w", n.Name, err)
	}
	type pfx struct {
		a    netip.Addr
		bits int
	}
	addrs := []pfx{{n.Addr4, 32}, {n.Addr6, 128}}
	switch n.Role {
	case RoleClient:
		// the whole client network is the client's (IPv4: local to lo)
		addrs = []pfx{{n.Addr4, n.Network4.Bits()}, {n.Addr6, n.Network6.Bits()}}
	case RolePoP:
		for _, a := range l.plan.topo.Anycast {
			addrs = append(addrs, pfx{a.Addr(), a.Addr().BitLen()})
		}
	}
	for _, a := range addrs {
		if err := h.addAddr(lo, a.a, a.bits, netip.Addr{}); err != nil {
			return err
		}
	}
	if n.Role == RoleRouter {
		return nil
	}
	up := l.plan.uplink(n.Name)
	local, remote, _ := up.End(n.Name)
	link, err := h.nl.LinkByName(local.Ifname)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", n.Name, local.Ifname, err)
	}
	for _, r := range []struct{ gw, src netip.Addr }{{remote.Addr4, n.Addr4}, {remote.Addr6, n.Addr6}} {
		// onlink: the router is at the other end of a point-to-point
		// link whatever the state of the kernel's route to it.
		route := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(netip.IPv4Unspecified(), 0), Gw: netIP(r.gw), Src: netIP(r.src), Flags: int(netlink.FLAG_ONLINK)}
		if r.gw.Is6() {
			route.Dst = ipNet(netip.IPv6Unspecified(), 0)
		}
		if err := h.nl.RouteAdd(route); err != nil {
			return fmt.Errorf("%s: default via %s src %s: %w", n.Name, r.gw, r.src, err)
		}
	}
	return nil
}

func (l *Lab) birdPaths(node string) (conf, ctl, log string) {
	return filepath.Join(l.Dir, node+".bird.conf"), filepath.Join(l.Dir, node+".ctl"), filepath.Join(l.Dir, node+".bird.log")
}

// NodeConfigPath is where the lab wrote anycastd's node configuration for
// a PoP (`anycastd node -config PATH` in the PoP's namespace).
func (l *Lab) NodeConfigPath(pop string) string { return filepath.Join(l.Dir, pop+".node.yaml") }

// NodeBGP returns the bgp section of anycastd's node configuration for a PoP.
func (l *Lab) NodeBGP(pop string) (NodeBGP, error) { return l.plan.nodeBGP(pop) }

// NodeConfig returns anycastd's node configuration for a PoP.
func (l *Lab) NodeConfig(pop string) (NodeConfig, error) {
	return l.plan.nodeConfigFor(pop, l.opts.Timing, l.ctl)
}

func (l *Lab) writeConfigs(context.Context) (string, error) {
	if err := os.WriteFile(filepath.Join(l.Dir, zoneFile), labZone, 0o644); err != nil {
		return "", fmt.Errorf("write zone: %w", err)
	}
	nb, np := 0, 0
	for _, n := range l.plan.nodes {
		wrote, err := l.writeConfig(n)
		if err != nil {
			return "", err
		}
		switch {
		case n.Role == RolePoP:
			np++
			if wrote {
				nb++
			}
		case wrote:
			nb++
		}
	}
	what := fmt.Sprintf("%d BIRD configs, %d node configs, zone %s in %s", nb, np, ZoneName, l.Dir)
	if l.ctl != nil {
		for i := range l.ctl.sites() {
			b, err := l.plan.renderControlConfig(l.ctl, i)
			if err != nil {
				return "", err
			}
			if err := os.WriteFile(l.controlConfigPathOf(i), b, 0o600); err != nil {
				return "", fmt.Errorf("write control config: %w", err)
			}
		}
		if err := os.WriteFile(filepath.Join(l.Dir, controlKeyFile), sign.GenerateKeyFile(), 0o600); err != nil {
			return "", fmt.Errorf("write the control plane's signing key file: %w", err)
		}
		what += ", control plane config"
		if n := len(l.ctl.sites()); n > 1 {
			what += fmt.Sprintf("s (%d replicas)", n)
		}
	}
	if l.opts.Monitors {
		if err := l.writeMonitorConfigs(); err != nil {
			return "", err
		}
		what += fmt.Sprintf(", %d monitor configs", len(l.plan.monitors()))
	}
	return what, nil
}

// writeConfig writes the BIRD configuration of a router (or a PoP when
// speakers run) and the node configuration of a PoP. It reports whether it
// wrote a BIRD configuration.
func (l *Lab) writeConfig(n *Node) (bool, error) {
	var conf string
	var err error
	switch {
	case n.Role == RoleRouter:
		conf, err = l.plan.routerConfig(n.Name)
	case n.Role == RolePoP && l.opts.Speakers:
		conf, err = l.plan.popSpeakerConfig(n.Name)
	}
	if err != nil {
		return false, err
	}
	if conf != "" {
		path, _, _ := l.birdPaths(n.Name)
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			return false, fmt.Errorf("write %s: %w", path, err)
		}
	}
	if n.Role == RolePoP {
		b, err := l.plan.nodeConfig(n.Name, l.opts.Timing, l.ctl)
		if err != nil {
			return false, err
		}
		if err := os.WriteFile(l.NodeConfigPath(n.Name), b, 0o644); err != nil {
			return false, fmt.Errorf("write node config: %w", err)
		}
	}
	return conf != "", nil
}

func (l *Lab) birdNodes() []*Node {
	var out []*Node
	for _, n := range l.plan.nodes {
		if n.Role == RoleRouter || (n.Role == RolePoP && l.opts.Speakers) {
			out = append(out, n)
		}
	}
	return out
}

func (l *Lab) startBIRD(ctx context.Context) (string, error) {
	nodes := l.birdNodes()
	for _, n := range nodes {
		conf, ctl, logPath := l.birdPaths(n.Name)
		// -f: stay in the foreground so that the PID is BIRD's own.
		cmd := exec.Command("ip", "netns", "exec", n.Namespace, l.opts.Bird, "-f", "-c", conf, "-s", ctl)
		rec, err := startRecorded(cmd, "bird "+n.Name, "bird", n.Namespace, logPath)
		if rec.PID != 0 {
			go cmd.Wait() //nolint:errcheck // reaps the child; its exit is seen through /proc
			if rerr := l.record(func(s *State) { s.Processes = append(s.Processes, rec) }); rerr != nil {
				return "", rerr
			}
		}
		if err != nil {
			return "", err
		}
	}
	// BIRD is ready when its control socket answers.
	l.mu.Lock()
	recs := map[string]ProcessRecord{}
	for _, p := range l.state.Processes {
		recs[p.Name] = p
	}
	l.mu.Unlock()
	for _, n := range nodes {
		if err := l.waitBirdc(ctx, n.Name, recs["bird "+n.Name]); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%d BIRD daemons answering", len(nodes)), nil
}

func (l *Lab) waitBirdc(ctx context.Context, node string, rec ProcessRecord) error {
	_, _, logPath := l.birdPaths(node)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := l.Birdc(ctx, node, "show", "status")
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("wait for bird on %s: %w", node, context.Cause(ctx))
		}
		if !rec.alive() || time.Now().After(deadline) {
			tail, _ := os.ReadFile(logPath)
			return fmt.Errorf("bird on %s does not answer: %w; log: %s", node, err, lastLines(string(tail), 5))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// Birdc runs a birdc command against the BIRD of a router (or a PoP when
// speakers run) and returns its output.
func (l *Lab) Birdc(ctx context.Context, node string, args ...string) (string, error) {
	_, ctl, _ := l.birdPaths(node)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := run(ctx, l.opts.Birdc, append([]string{"-s", ctl}, args...)...)
	return string(out), err
}

// Protocols returns BIRD's protocol table of a node.
func (l *Lab) Protocols(ctx context.Context, node string) ([]ProtocolState, error) {
	out, err := l.Birdc(ctx, node, "show", "protocols")
	if err != nil {
		return nil, err
	}
	return parseProtocols(out), nil
}

// convergence is how far the lab is from converged.
type convergence struct {
	established, sessions int
	routes, wanted        int
	missing               []string
}

func (c convergence) done() bool {
	return c.established == c.sessions && c.routes == c.wanted
}

// Convergence checks every expected BGP session (router—router always,
// router—PoP when speakers run) and every router's kernel table.
func (l *Lab) convergence(ctx context.Context) (convergence, error) {
	var c convergence
	for _, r := range l.NodesByRole(RoleRouter) {
		ps, err := l.Protocols(ctx, r.Name)
		if err != nil {
			return c, err
		}
		state := map[string]string{}
		for _, p := range ps {
			state[p.Name] = p.Info
		}
		for _, s := range l.plan.sessions(r.Name) {
			if s.PeerRole == RolePoP && !l.popsAnnounce() {
				continue
			}
			c.sessions++
			if strings.HasPrefix(state[s.Protocol], "Established") {
				c.established++
			} else {
				c.missing = append(c.missing, fmt.Sprintf("%s: bgp %s is %q", r.Name, s.Protocol, state[s.Protocol]))
			}
		}
		h, err := l.handle(r.Name)
		if err != nil {
			return c, err
		}
		have, err := h.kernelPrefixes()
		if err != nil {
			return c, err
		}
		for _, p := range l.plan.expectedRoutes(r.Name, l.popsAnnounce()) {
			c.wanted++
			if have[p] {
				c.routes++
			} else {
				c.missing = append(c.missing, fmt.Sprintf("%s: no route to %s", r.Name, p))
			}
		}
	}
	return c, nil
}

// popsAnnounce reports whether something announces the anycast prefixes
// from the PoPs: BIRD speakers or anycastd.
func (l *Lab) popsAnnounce() bool { return l.opts.Speakers || l.opts.Anycastd != "" }

func (l *Lab) converge(ctx context.Context) (string, error) {
	deadline := time.Now().Add(l.opts.ConvergeTimeout)
	var last convergence
	for first := true; ; first = false {
		c, err := l.convergence(ctx)
		if err != nil {
			return "", err
		}
		if first || c.established != last.established || c.routes != last.routes {
			l.progressf("      bgp %d/%d established, routes %d/%d", c.established, c.sessions, c.routes, c.wanted)
		}
		last = c
		if c.done() && l.opts.Anycastd != "" {
			// Every route is there; catchment also needs every
			// router with a PoP of its own to prefer it.
			bad, err := l.localPreferred(ctx)
			if err != nil {
				return "", err
			}
			c.missing = bad
		}
		if c.done() && len(c.missing) == 0 {
			return fmt.Sprintf("%d BGP sessions established, %d routes in the routers' kernels", c.sessions, c.wanted), nil
		}
		if time.Now().After(deadline) {
			missing := c.missing
			if len(missing) > 8 {
				missing = append(missing[:8:8], fmt.Sprintf("and %d more", len(c.missing)-8))
			}
			return "", fmt.Errorf("not converged after %s: %s", l.opts.ConvergeTimeout, strings.Join(missing, "; "))
		}
		select {
		case <-ctx.Done():
			return "", context.Cause(ctx)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Namespace returns the namespace of a node.
func (l *Lab) Namespace(node string) (string, error) {
	n, err := l.plan.node(node)
	if err != nil {
		return "", err
	}
	return n.Namespace, nil
}

// Exec runs argv in the namespace of node and returns its combined output.
func (l *Lab) Exec(ctx context.Context, node string, argv ...string) ([]byte, error) {
	ns, err := l.Namespace(node)
	if err != nil {
		return nil, err
	}
	if len(argv) == 0 {
		return nil, errors.New("exec: no command")
	}
	return run(ctx, "ip", append([]string{"netns", "exec", ns}, argv...)...)
}

// Process is a process started in a lab namespace. Down stops it if it is
// still running.
type Process struct {
	ProcessRecord
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Wait waits for the process to exit and returns its exit error.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Stop sends SIGTERM, then SIGKILL after grace, and waits for the exit.
func (p *Process) Stop(grace time.Duration) error {
	if err := stopProcesses([]ProcessRecord{p.ProcessRecord}, grace); err != nil {
		return err
	}
	<-p.done
	return nil
}

// StartProcess starts argv in the namespace of node, its output going to a
// log file in the lab directory (Process.Log). The process is recorded in
// the state file, so `anycastlab down` stops it too.
func (l *Lab) StartProcess(node string, argv ...string) (*Process, error) {
	return l.startIn(node, "process", argv)
}

// startIn starts argv in the namespace of node as a process of kind (see
// ProcessRecord), recorded in the state file.
func (l *Lab) startIn(node, kind string, argv []string) (*Process, error) {
	ns, err := l.Namespace(node)
	if err != nil {
		return nil, err
	}
	if len(argv) == 0 {
		return nil, errors.New("start process: no command")
	}
	l.mu.Lock()
	n := len(l.state.Processes)
	l.mu.Unlock()
	logPath := filepath.Join(l.Dir, fmt.Sprintf("%s.%s.%d.log", node, filepath.Base(argv[0]), n))
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	rec, err := startRecorded(cmd, filepath.Base(argv[0])+" "+node, kind, ns, logPath)
	if rec.PID == 0 {
		return nil, err
	}
	p := &Process{ProcessRecord: rec, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if rerr := l.record(func(s *State) { s.Processes = append(s.Processes, rec) }); rerr != nil {
		err = errors.Join(err, rerr)
	}
	l.mu.Lock()
	l.procs[rec.PID] = p
	l.mu.Unlock()
	if err != nil {
		return p, err
	}
	return p, nil
}

// Down removes the lab: it stops every process and wire, deletes every
// namespace and the lab directory, then checks that nothing is left.
func (l *Lab) Down() error {
	l.mu.Lock()
	if l.down {
		l.mu.Unlock()
		return nil
	}
	l.down = true
	st := l.state
	wires := l.wires
	handles := l.handles
	l.handles = map[string]*nsHandle{}
	l.mu.Unlock()
	for _, h := range handles {
		h.Close()
	}
	stopWires := func() error {
		var errs []error
		for _, w := range wires {
			w.cancel()
			if err := <-w.done; err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	err := teardown(st, stopWires)
	// PostgreSQL last: its clients, the control plane's replicas, are
	// gone by now.
	if l.pg != nil {
		if perr := l.pg.Stop(); perr != nil {
			err = errors.Join(err, fmt.Errorf("down lab %s: stop PostgreSQL: %w", l.ID, perr))
		}
	}
	if err == nil {
		l.progressf("lab %s is down", l.ID)
	}
	return err
}

// Teardown removes lab id recorded under stateDir, as Down does, from its
// state file alone: for `anycastlab down` and for labs whose builder died.
func Teardown(stateDir, id string) error {
	st, err := ReadState(stateDir, id)
	if err != nil {
		// No usable state: still remove the lab's namespaces.
		st = &State{ID: id, Dir: filepath.Join(stateDir, id)}
		if !validID(id) {
			return err
		}
	}
	return teardown(st, nil)
}

func teardown(st *State, stopWires func() error) error {
	var errs []error
	// Daemons and started processes first, so that BIRD can close its
	// sessions; then the wires; then the namespaces, which takes every
	// remaining link with them.
	var daemons, wires []ProcessRecord
	for _, p := range st.Processes {
		if p.Kind == "wire" {
			wires = append(wires, p)
		} else {
			daemons = append(daemons, p)
		}
	}
	if err := stopProcesses(daemons, 3*time.Second); err != nil {
		errs = append(errs, err)
	}
	if stopWires != nil {
		if err := stopWires(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := stopProcesses(wires, 2*time.Second); err != nil {
		errs = append(errs, err)
	}
	for _, dir := range st.Cgroups {
		if err := removeCgroup(dir); err != nil {
			errs = append(errs, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Every namespace with the lab's prefix goes, recorded or not: a
	// builder killed between creating one and saving the state leaves it.
	names := slices.Clone(st.Namespaces)
	if more, err := listNamespaces(NamespacePrefix(st.ID)); err == nil {
		for _, m := range more {
			if !slices.Contains(names, m) {
				names = append(names, m)
			}
		}
	} else {
		errs = append(errs, err)
	}
	for _, ns := range slices.Backward(names) {
		if err := deleteNamespace(ctx, ns); err != nil {
			errs = append(errs, err)
		}
	}
	left, err := listNamespaces(NamespacePrefix(st.ID))
	if err != nil {
		errs = append(errs, err)
	} else if len(left) > 0 {
		errs = append(errs, fmt.Errorf("namespaces left: %s", strings.Join(left, " ")))
	}
	for _, p := range st.Processes {
		if p.alive() {
			errs = append(errs, fmt.Errorf("process left: %s (pid %d)", p.Name, p.PID))
		}
	}
	if len(errs) == 0 && st.Dir != "" {
		if err := os.RemoveAll(st.Dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", st.Dir, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("down lab %s: %w", st.ID, errors.Join(errs...))
	}
	return nil
}
