package lab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The networks the flood scenario adds for its run: the attacker's (IPv4
// for the connection flood's fallback and the routes, IPv6 for the spread
// sources: one address in each of 256 /56s, so in 256 /64s too) and the
// victim's, with the point-to-point links to their routers taken from the
// far end of the link pools (the topology's links take them from the
// start).
var (
	attackerNet4 = netip.MustParsePrefix("203.0.113.224/27")
	attackerNet6 = netip.MustParsePrefix("2001:db8:a77a::/48")
	victimNet4   = netip.MustParsePrefix("192.0.2.192/26")
	// victimAddr is the address and port the reflection attack spoofs.
	victimAddr = netip.MustParseAddrPort("192.0.2.200:33333")
	// The attacker's and the victim's links: router end, host end.
	attackerLink4 = [2]netip.Addr{netip.MustParseAddr("100.64.255.0"), netip.MustParseAddr("100.64.255.1")}
	attackerLink6 = [2]netip.Addr{netip.MustParseAddr("2001:db8:ffff:ffff::"), netip.MustParseAddr("2001:db8:ffff:ffff::1")}
	victimLink4   = [2]netip.Addr{netip.MustParseAddr("100.64.255.2"), netip.MustParseAddr("100.64.255.3")}
	victimLink6   = [2]netip.Addr{netip.MustParseAddr("2001:db8:ffff:ffff::2"), netip.MustParseAddr("2001:db8:ffff:ffff::3")}
)

// floodSources are the spread sources: 2001:db8:a77a:XX00::1 for every XX.
func floodSources() []netip.Addr {
	base := attackerNet6.Addr().As16()
	out := make([]netip.Addr, 0, 256)
	for i := range 256 {
		a := base
		a[6] = byte(i)
		a[15] = 1
		out = append(out, netip.AddrFrom16(a))
	}
	return out
}

// floodHost is a namespace the flood scenario adds: the attacker or the
// victim, on a veth pair to its region's router.
type floodHost struct {
	name   string // "A-attacker"
	ns     string // its namespace
	router string // "A-router"
	// undo are the ip commands that remove its routes from the other
	// routers (its own router's go with the veth).
	undo [][]string
}

// addFloodHost creates a namespace name in region, linked to its router,
// holding nets on lo, with routes to nets in every router.
func (l *Lab) addFloodHost(ctx context.Context, region, member string, link4, link6 [2]netip.Addr, addrs []netip.Prefix, local6 netip.Prefix) (_ *floodHost, err error) {
	router := nodeName(region, "router")
	rns, err := l.Namespace(router)
	if err != nil {
		return nil, err
	}
	h := &floodHost{name: nodeName(region, member), router: router}
	h.ns = NamespacePrefix(l.ID) + h.name
	ip := func(args ...string) error {
		_, err := run(ctx, "ip", args...)
		return err
	}
	if err := ip("netns", "add", h.ns); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, h.remove(context.WithoutCancel(ctx)))
		}
	}()
	if err := l.record(func(s *State) { s.Namespaces = append(s.Namespaces, h.ns) }); err != nil {
		return nil, err
	}
	if err := setSysctls(namespacePath(h.ns), [][2]string{
		{"net.ipv4.conf.all.rp_filter", "0"},
		{"net.ipv4.conf.default.rp_filter", "0"},
		{"net.ipv6.conf.all.accept_dad", "0"},
		{"net.ipv6.conf.default.accept_dad", "0"},
		{"net.ipv4.ip_forward", "0"},
		{"net.ipv6.conf.all.forwarding", "0"},
	}); err != nil {
		return nil, fmt.Errorf("%s: %w", h.name, err)
	}
	h4, h6 := addrs[0], addrs[len(addrs)-1]
	cmds := [][]string{
		{"-n", h.ns, "link", "set", "lo", "up"},
		{"-n", rns, "link", "add", h.name, "type", "veth", "peer", "name", router, "netns", h.ns},
		{"-n", rns, "link", "set", h.name, "up"},
		{"-n", h.ns, "link", "set", router, "up"},
		{"-n", rns, "addr", "add", link4[0].String() + "/31", "dev", h.name},
		{"-n", rns, "addr", "add", link6[0].String() + "/127", "dev", h.name, "nodad"},
		{"-n", h.ns, "addr", "add", link4[1].String() + "/31", "dev", router},
		{"-n", h.ns, "addr", "add", link6[1].String() + "/127", "dev", router, "nodad"},
	}
	for _, a := range addrs {
		c := []string{"-n", h.ns, "addr", "add", a.String(), "dev", "lo"}
		if a.Addr().Is6() {
			c = append(c, "nodad")
		}
		cmds = append(cmds, c)
	}
	if local6.IsValid() {
		// Every address of the network is the host's, as IPv4 does
		// for a network on lo.
		cmds = append(cmds, []string{"-n", h.ns, "-6", "route", "add", "local", local6.String(), "dev", "lo"})
	}
	cmds = append(cmds,
		[]string{"-n", h.ns, "route", "add", "default", "via", link4[0].String(), "dev", router, "src", h4.Addr().String()},
		[]string{"-n", h.ns, "-6", "route", "add", "default", "via", link6[0].String(), "dev", router, "src", h6.Addr().String()},
	)
	for _, a := range addrs {
		via := link4[1]
		if a.Addr().Is6() {
			via = link6[1]
		}
		cmds = append(cmds, []string{"-n", rns, "route", "add", a.Masked().String(), "via", via.String(), "dev", h.name})
	}
	routes, err := l.plan.routesTowards(region)
	if err != nil {
		return nil, err
	}
	for _, r := range routes {
		ns, err := l.Namespace(r.Router)
		if err != nil {
			return nil, err
		}
		for _, a := range addrs {
			via := r.Via4
			if a.Addr().Is6() {
				via = r.Via6
			}
			cmds = append(cmds, []string{"-n", ns, "route", "add", a.Masked().String(), "via", via.String()})
			h.undo = append(h.undo, []string{"-n", ns, "route", "del", a.Masked().String(), "via", via.String()})
		}
	}
	for _, c := range cmds {
		if err := ip(c...); err != nil {
			return nil, fmt.Errorf("add %s: %w", h.name, err)
		}
	}
	return h, nil
}

// remove deletes the host's namespace (its veth goes with it) and its
// routes in the other routers.
func (h *floodHost) remove(ctx context.Context) error {
	var errs []error
	for _, c := range h.undo {
		if _, err := run(ctx, "ip", c...); err != nil && !strings.Contains(err.Error(), "No such process") {
			errs = append(errs, err)
		}
	}
	if err := deleteNamespace(ctx, h.ns); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// freebind lets a socket use a source address that is not the host's: the
// victim's, for the reflection attack. IPv4 needs IP_TRANSPARENT as well
// (root): with IP_FREEBIND alone the kernel finds no route from a foreign
// source (ENETUNREACH).
func freebind(network, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		if strings.HasSuffix(network, "6") {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
			return
		}
		serr = errors.Join(unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1),
			unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1))
	})
	if err != nil {
		return err
	}
	return serr
}

// udpFlood is a bounded UDP flood from sockets in the attacker's namespace.
// It does not read what comes back (the PoP's counters tell what it did
// with the flood): the answers fill a small receive buffer and are dropped
// there.
type udpFlood struct {
	conns []*net.UDPConn
	sent  atomic.Int64
	bytes atomic.Int64
	errs  atomic.Int64
}

// openUDPFlood opens one socket from each source to dst in namespace ns.
func openUDPFlood(ns string, srcs []netip.AddrPort, dst netip.AddrPort) (*udpFlood, error) {
	f := &udpFlood{}
	network := "udp4"
	if dst.Addr().Is6() {
		network = "udp6"
	}
	err := inNamespace(namespacePath(ns), func() error {
		for _, s := range srcs {
			d := net.Dialer{LocalAddr: net.UDPAddrFromAddrPort(s), Control: freebind}
			c, err := d.Dial(network, dst.String())
			if err != nil {
				return fmt.Errorf("flood socket %s → %s: %w", s, dst, err)
			}
			f.conns = append(f.conns, c.(*net.UDPConn))
			_ = f.conns[len(f.conns)-1].SetReadBuffer(4096)
		}
		return nil
	})
	if err != nil {
		f.close()
		return nil, err
	}
	return f, nil
}

func (f *udpFlood) close() {
	for _, c := range f.conns {
		_ = c.Close()
	}
}

// floodSenders is how many goroutines send a flood of rate packets a
// second: one per 25,000, four at most.
func floodSenders(rate int) int { return min(4, 1+rate/25_000) }

// run sends rate packets a second for d (or until ctx ends), never more
// than rate × the time elapsed, from floodSenders goroutines that take the
// sockets in turn; newNext makes each sender's packet maker, which writes
// packet i into buf. The senders run at normal priority, not the lab's
// raised one: the flood is an outsider's traffic, and the sender pays the
// kernel's cost of carrying each packet to the PoP.
func (f *udpFlood) run(ctx context.Context, rate int, d time.Duration, newNext func() func(buf []byte, i int) []byte) {
	k := floodSenders(rate)
	var wg sync.WaitGroup
	for w := range k {
		next := newNext()
		wg.Go(func() {
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine, its priority with it
			_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 0)
			buf := make([]byte, 4096)
			share := rate / k
			if w < rate%k {
				share++
			}
			start := time.Now()
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			i := 0
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				el := time.Since(start)
				if el >= d {
					return
				}
				due := int(float64(share) * el.Seconds())
				// A sender that fell behind catches up by 10 ms at most.
				i = max(i, due-share/100)
				for ; i < due; i++ {
					p := next(buf, i*k+w)
					if _, err := f.conns[(i*k+w)%len(f.conns)].Write(p); err != nil {
						f.errs.Add(1)
						continue
					}
					f.sent.Add(1)
					f.bytes.Add(int64(len(p)))
				}
			}
		})
	}
	wg.Wait()
}

// victimCounter counts what arrives at the victim's address.
type victimCounter struct {
	conn    *net.UDPConn
	done    chan struct{}
	bytes   atomic.Int64
	packets atomic.Int64
}

func listenVictim(ns string, at netip.AddrPort) (*victimCounter, error) {
	v := &victimCounter{done: make(chan struct{})}
	err := inNamespace(namespacePath(ns), func() error {
		var err error
		v.conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(at))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("victim listens on %s: %w", at, err)
	}
	_ = v.conn.SetReadBuffer(4 << 20)
	go func() {
		defer close(v.done)
		buf := make([]byte, 65535)
		for {
			n, err := v.conn.Read(buf)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			v.bytes.Add(int64(n))
			v.packets.Add(1)
		}
	}()
	return v, nil
}

func (v *victimCounter) close() {
	_ = v.conn.Close()
	<-v.done
}

// onOutsiderThread runs fn on an OS thread of its own in the namespace at
// path, at normal priority (not the lab's raised one): the thread of an
// attacker, whose kernel work (each packet's way to the PoP) must not
// outrank the lab's daemons. The thread is never handed back to the Go
// runtime: it ends with fn, its namespace and priority with it.
func onOutsiderThread(path string, fn func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		target, err := netns.GetFromPath(path)
		if err != nil {
			errc <- fmt.Errorf("open namespace %s: %w", path, err)
			return
		}
		err = netns.Set(target)
		_ = target.Close()
		if err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", path, err)
			return
		}
		_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 0)
		errc <- nil
		fn()
	}()
	return <-errc
}

// tcpFlood opens connections at rate a second, at most open of them at
// once, from the sources in turn to dst, for d: even ones stay idle, odd
// ones send a query's length and then one byte every 500 ms (slow
// senders). 32 dialers on outsider threads in the attacker's namespace
// open them. It returns the connections opened, refused or timed out, and
// closed by the server.
func tcpFlood(ctx context.Context, ns string, srcs []netip.Addr, dst netip.AddrPort, rate, open int, d time.Duration, query []byte) (opened, failed, closed int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var nOpen atomic.Int64
	var nOpened, nFailed, nClosed atomic.Int64
	var wg sync.WaitGroup
	msg := append([]byte{byte(len(query) >> 8), byte(len(query))}, query...)
	hold := func(c net.Conn, slow bool) {
		defer nOpen.Add(-1)
		defer c.Close()
		gone := make(chan struct{})
		go func() {
			defer close(gone)
			var b [512]byte
			for {
				if _, err := c.Read(b[:]); err != nil {
					return
				}
			}
		}()
		var tick <-chan time.Time
		if slow {
			t := time.NewTicker(500 * time.Millisecond)
			defer t.Stop()
			tick = t.C
		}
		for j := 0; ; j++ {
			select {
			case <-gone:
				if ctx.Err() == nil {
					nClosed.Add(1)
				}
				return
			case <-ctx.Done():
				return
			case <-tick:
			}
			if j < len(msg) {
				_, _ = c.Write(msg[j : j+1])
			}
		}
	}
	type dialJob struct {
		src  netip.Addr
		slow bool
	}
	jobs := make(chan dialJob)
	for range 32 {
		wg.Add(1)
		serr := onOutsiderThread(namespacePath(ns), func() {
			defer wg.Done()
			for j := range jobs {
				dctx, dcancel := context.WithTimeout(ctx, time.Second)
				dl := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(j.src, 0)), Control: freebind}
				c, err := dl.DialContext(dctx, "tcp", dst.String())
				dcancel()
				if err != nil {
					nOpen.Add(-1)
					if ctx.Err() == nil {
						nFailed.Add(1)
					}
					continue
				}
				nOpened.Add(1)
				wg.Go(func() { hold(c, j.slow) })
			}
		})
		if serr != nil {
			wg.Done()
			err = serr
			break
		}
	}
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	i := 0
loop:
	for err == nil {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
		}
		due := int(float64(rate) * time.Since(start).Seconds())
		i = max(i, due-rate/10)
		for ; i < due && nOpen.Load() < int64(open); i++ {
			nOpen.Add(1)
			select {
			case jobs <- dialJob{src: srcs[i%len(srcs)], slow: i%2 == 1}:
			default:
				nOpen.Add(-1)
				i = due // every dialer busy: the flood is bounded
			}
		}
		i = max(i, due)
	}
	close(jobs)
	wg.Wait()
	return nOpened.Load(), nFailed.Load(), nClosed.Load(), err
}

// tcpProbes queries the anycast address over TCP from every client every
// 200 ms, a new connection each, until stop; what each got, by client.
type tcpProbes struct {
	mu   sync.Mutex
	qs   map[string][]Answer
	wg   sync.WaitGroup
	stop chan struct{}
}

func (l *Lab) startTCPProbes(ctx context.Context, dst netip.Addr) *tcpProbes {
	p := &tcpProbes{qs: map[string][]Answer{}, stop: make(chan struct{})}
	for _, c := range l.clientNames() {
		p.wg.Go(func() {
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-p.stop:
					return
				case <-ctx.Done():
					return
				case <-t.C:
				}
				a, err := l.Query(ctx, c, "tcp", dst, time.Second)
				if err != nil {
					a = Answer{Sent: time.Now(), Err: err.Error()}
				}
				p.mu.Lock()
				p.qs[c] = append(p.qs[c], a)
				p.mu.Unlock()
			}
		})
	}
	return p
}

func (p *tcpProbes) end() map[string][]Answer {
	close(p.stop)
	p.wg.Wait()
	return p.qs
}

// floodPoPWatch samples every PoP's anycastd: its RSS and whether it announces
// (admin status, every 100 ms), and whether each router prefers its own
// PoP's route (BIRD, every second).
type floodPoPWatch struct {
	mu   sync.Mutex
	pops map[string]*FloodPoPLine
	wg   sync.WaitGroup
	stop chan struct{}
}

// treeRSSMB is the resident set size of a process and its descendants
// (NSD's server and xfrd processes are children of its main one).
func treeRSSMB(pid int) (float64, error) {
	total, err := rssMB(pid)
	if err != nil {
		return 0, err
	}
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for f := range strings.FieldsSeq(string(b)) {
			if child, err := strconv.Atoi(f); err == nil {
				if r, err := treeRSSMB(child); err == nil {
					total += r
				}
			}
		}
	}
	return total, nil
}

// rssMB reads a process's resident set size.
func rssMB(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseFloat(f[0], 64)
				return kb / 1024, err
			}
		}
	}
	return 0, fmt.Errorf("pid %d: no VmRSS", pid)
}

// watchPoPs starts the samplers: pids are the servers' processes by PoP;
// admin says whether they are anycastd nodes with an admin API (else the
// routers' BIRD alone says whether a PoP is announced, every 250 ms).
func (l *Lab) watchPoPs(ctx context.Context, server string, pids map[string]int, admin bool) (*floodPoPWatch, error) {
	w := &floodPoPWatch{pops: map[string]*FloodPoPLine{}, stop: make(chan struct{})}
	for _, n := range l.NodesByRole(RolePoP) {
		pid, ok := pids[n.Name]
		if !ok {
			return nil, fmt.Errorf("no server on %s", n.Name)
		}
		rss, err := treeRSSMB(pid)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.Name, err)
		}
		line := &FloodPoPLine{Scenario: "flood", Server: server, PoP: n.Name, RSSMBBefore: rss, RSSMBMax: rss, Announced: true}
		w.pops[n.Name] = line
		bad := func(why string) {
			w.mu.Lock()
			defer w.mu.Unlock()
			line.NotAnnounced++
			line.Announced = false
			if line.FirstProblem == "" {
				line.FirstProblem = why
			}
		}
		c, err := l.Admin(n.Name)
		if err != nil {
			return nil, err
		}
		w.wg.Go(func() {
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-w.stop:
					return
				case <-ctx.Done():
					return
				case <-t.C:
				}
				if rss, err := treeRSSMB(pid); err == nil {
					w.mu.Lock()
					line.RSSMBMax = max(line.RSSMBMax, rss)
					w.mu.Unlock()
				}
				if !admin {
					continue
				}
				sctx, cancel := context.WithTimeout(ctx, time.Second)
				st, err := c.Status(sctx)
				cancel()
				if err != nil {
					w.mu.Lock()
					line.StatusErrors++
					w.mu.Unlock()
					continue
				}
				w.mu.Lock()
				line.Samples++
				w.mu.Unlock()
				if why := announcedProblem(st, l.plan.topo.Anycast); why != "" {
					bad(fmt.Sprintf("%s (healthy %v)", why, st.Healthy))
				}
			}
		})
	}
	every := time.Second
	if !admin {
		every = 250 * time.Millisecond
	}
	// The routers: each prefers its own PoP's route while that PoP
	// announces (what the network sees).
	w.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			wrong, err := l.localPreferred(ctx)
			if err != nil {
				continue
			}
			if !admin {
				w.mu.Lock()
				for _, line := range w.pops {
					line.Samples++
				}
				w.mu.Unlock()
			}
			for _, why := range wrong {
				router, _, _ := strings.Cut(why, ":")
				region := strings.TrimSuffix(router, "-router")
				w.mu.Lock()
				for name, line := range w.pops {
					if strings.HasPrefix(name, region+"-") {
						line.Announced = false
						line.NotAnnounced++
						if line.FirstProblem == "" {
							line.FirstProblem = why
						}
					}
				}
				w.mu.Unlock()
			}
		}
	})
	return w, nil
}

func (w *floodPoPWatch) end() []FloodPoPLine {
	close(w.stop)
	w.wg.Wait()
	var out []FloodPoPLine
	for _, k := range slices.Sorted(maps.Keys(w.pops)) {
		p := *w.pops[k]
		p.RSSMBBefore = math.Round(p.RSSMBBefore*10) / 10
		p.RSSMBMax = math.Round(p.RSSMBMax*10) / 10
		out = append(out, p)
	}
	return out
}

// floodPhase is one window of the scenario: the baseline or one attack.
type floodPhase struct {
	attack     string
	rate       int
	sweep      bool
	start, end time.Time
	sent       int64              // attack packets (tcp-conn: connections opened)
	counters   map[string]float64 // of the attacked PoP, during the attack
	attackerB  *int64
	victimB    *int64
	opened     *int64 // tcp-conn
	closed     *int64
	pps        float64
}

// flood runs the flood scenario: an attacker in region A floods A-pop with
// each attack in turn, bounded in rate and time, while every client
// queries the anycast address steadily over UDP and, every 200 ms, over
// TCP; it reports what each client saw during each attack beside the
// baseline, and each PoP's memory and announcement over the whole run.
func (l *Lab) flood(ctx context.Context, o ScenarioOptions) (_ *Result, err error) {
	r := newRun("flood", o.Progress)
	fo := o.Flood.withDefaults()
	if err := fo.Validate(); err != nil {
		return nil, err
	}
	isNode := fo.Server == "anycastd"
	pids := map[string]int{}
	switch {
	case isNode && l.opts.Anycastd == "":
		return nil, ErrNoAnycastd
	case isNode:
		if err := l.WaitSettled(ctx, 30*time.Second); err != nil {
			return nil, err
		}
		for _, n := range l.NodesByRole(RolePoP) {
			if p := l.NodeProcess(n.Name); p != nil {
				pids[n.Name] = p.PID
			}
		}
	case !l.opts.Speakers:
		return nil, fmt.Errorf("flood with %s: the lab needs BIRD as the PoPs' BGP speakers (Options.Speakers; anycastlab -flood-server sets it)", fo.Server)
	default:
		var err error
		if pids, err = l.startFloodServers(ctx, fo.Server); err != nil {
			return nil, err
		}
		r.notef("%s on every PoP (RRL %d/s, slip %d), BIRD announcing for it", fo.Server, LabRRLRate, LabRRLSlip)
	}
	regions := l.popRegions()
	if len(regions) < 2 {
		return nil, errors.New("flood: the lab needs PoPs in two regions at least (attacker's and victim's)")
	}
	atkRegion, vicRegion := regions[0], regions[len(regions)-1]
	anycast4, err := l.anycastAddr(false)
	if err != nil {
		return nil, err
	}
	anycast6, err := l.anycastAddr(true)
	if err != nil {
		return nil, err
	}
	atk, err := l.addFloodHost(ctx, atkRegion, "attacker", attackerLink4, attackerLink6,
		[]netip.Prefix{netip.PrefixFrom(nthAddr(attackerNet4.Addr(), 1), attackerNet4.Bits()), netip.PrefixFrom(nthAddr(attackerNet6.Addr(), 1), attackerNet6.Bits())}, attackerNet6)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, atk.remove(context.WithoutCancel(ctx))) }()
	vic, err := l.addFloodHost(ctx, vicRegion, "victim", victimLink4, victimLink6,
		[]netip.Prefix{netip.PrefixFrom(nthAddr(victimNet4.Addr(), 1), victimNet4.Bits()), netip.PrefixFrom(netip.MustParseAddr("2001:db8:7c7c::1"), 48)}, netip.Prefix{})
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, vic.remove(context.WithoutCancel(ctx))) }()
	r.notef("attacker %s (%s, %s: 256 /56 sources) on %s; victim %s on %s", atk.name, attackerNet4, attackerNet6, atk.router, victimAddr, vic.router)

	srcs := floodSources()
	spread := make([]netip.AddrPort, len(srcs))
	for i, s := range srcs {
		spread[i] = netip.AddrPortFrom(s, 0)
	}
	dst6 := netip.AddrPortFrom(anycast6, DNSPort)
	dst4 := netip.AddrPortFrom(anycast4, DNSPort)
	// Check the attacker reaches A-pop before flooding: one query from
	// a spread source must come back.
	if err := l.floodReach(ctx, atk.ns, spread[0], dst6); err != nil {
		return nil, err
	}
	victim, err := listenVictim(vic.ns, victimAddr)
	if err != nil {
		return nil, err
	}
	defer victim.close()

	watch, err := l.watchPoPs(ctx, fo.Server, pids, isNode)
	if err != nil {
		return nil, err
	}
	var pops []FloodPoPLine
	defer func() {
		if pops == nil {
			watch.end()
		}
	}()
	streams, err := l.startStreams(o)
	if err != nil {
		return nil, err
	}
	defer stopAll(streams)
	tcp := l.startTCPProbes(ctx, anycast4)
	var tcpQs map[string][]Answer
	defer func() {
		if tcpQs == nil {
			tcp.end()
		}
	}()
	r.notef("%d clients send %d q/s each over UDP (%s timeout) and 5 q/s over TCP to %s", len(streams), o.Rate, o.Timeout, anycast4)
	if err := sleep(ctx, 500*time.Millisecond); err != nil {
		return nil, err
	}
	phases := []floodPhase{{attack: "none", start: time.Now()}}
	if err := sleep(ctx, fo.Baseline); err != nil {
		return nil, err
	}
	phases[0].end = time.Now()

	attacked := l.NodesByRole(RolePoP)[0].Name
	attack := func(name string, rate int, d time.Duration, sweep bool) (floodPhase, error) {
		ph := floodPhase{attack: name, rate: rate, sweep: sweep, start: time.Now()}
		var before map[string]float64
		cerr := errors.New("no counters")
		if isNode {
			if before, cerr = l.popCounters(ctx, attacked); cerr != nil {
				r.notef("%s: counters: %v", attacked, cerr)
			}
		}
		switch name {
		case AttackRandomSubdomain, AttackGarbage:
			f, err := openUDPFlood(atk.ns, spread, dst6)
			if err != nil {
				return ph, err
			}
			q, err := randomSubdomainQuery()
			if err != nil {
				f.close()
				return ph, err
			}
			seed := uint64(time.Now().UnixNano())
			newNext := func() func(buf []byte, i int) []byte {
				seed++
				rnd := rand.New(rand.NewPCG(seed, 1)) //nolint:gosec // flood payloads, not secrets
				if name == AttackGarbage {
					return func(buf []byte, i int) []byte { return garbagePacket(buf, i, rnd) }
				}
				return func(buf []byte, _ int) []byte {
					b := append(buf[:0], q...)
					fillRandomLabel(b, rnd)
					return b
				}
			}
			ph.start = time.Now()
			f.run(ctx, rate, d, newNext)
			ph.end = time.Now()
			f.close()
			ph.sent = f.sent.Load()
		case AttackReflection:
			f, err := openUDPFlood(atk.ns, []netip.AddrPort{victimAddr}, dst4)
			if err != nil {
				return ph, err
			}
			q, err := reflectionQuery()
			if err != nil {
				f.close()
				return ph, err
			}
			seed := uint64(time.Now().UnixNano())
			newNext := func() func(buf []byte, i int) []byte {
				seed++
				rnd := rand.New(rand.NewPCG(seed, 3)) //nolint:gosec // flood payloads, not secrets
				return func(buf []byte, _ int) []byte {
					b := append(buf[:0], q...)
					b[0], b[1] = byte(rnd.Uint32()), byte(rnd.Uint32())
					return b
				}
			}
			vb0 := victim.bytes.Load()
			ph.start = time.Now()
			f.run(ctx, rate, d, newNext)
			ph.end = time.Now()
			if err := sleep(ctx, 500*time.Millisecond); err != nil { // answers on their way
				f.close()
				return ph, err
			}
			f.close()
			ph.sent = f.sent.Load()
			ab, vb := f.bytes.Load(), victim.bytes.Load()-vb0
			ph.attackerB, ph.victimB = &ab, &vb
		case AttackTCPConn:
			q, err := probeQuery(qtypeFor(anycast6))
			if err != nil {
				return ph, err
			}
			opened, failed, closed, err := tcpFlood(ctx, atk.ns, srcs, dst6, fo.TCPRate, fo.TCPOpen, d, q)
			if err != nil {
				return ph, err
			}
			ph.end = time.Now()
			ph.sent = opened + failed
			ph.opened, ph.closed = &opened, &closed
			r.notef("tcp-conn: %d connections opened, %d refused or timed out, %d closed by the PoP before the end", opened, failed, closed)
			rate = fo.TCPRate
			ph.rate = rate
		}
		if cerr != nil {
			// no counters: not anycastd, or unreadable
		} else if after, err := l.popCounters(ctx, attacked); err == nil {
			ph.counters = map[string]float64{}
			for k, v := range after {
				if d := v - before[k]; d != 0 {
					ph.counters[k] = d
				}
			}
		}
		if el := ph.end.Sub(ph.start).Seconds(); el > 0 {
			ph.pps = math.Round(float64(ph.sent)/el*10) / 10
		}
		return ph, ctx.Err()
	}

	for i, a := range fo.Attacks {
		if i > 0 {
			// Let queues drain and the PoP settle between attacks.
			if err := sleep(ctx, 2*time.Second); err != nil {
				return nil, err
			}
		}
		rate := fo.Rate
		if a == AttackTCPConn {
			rate = fo.TCPRate
		}
		r.notef("%s at %d/s for %s", a, rate, fo.Duration)
		ph, err := attack(a, fo.Rate, fo.Duration, false)
		if err != nil {
			return nil, fmt.Errorf("flood %s: %w", a, err)
		}
		phases = append(phases, ph)
	}
	sweepFrom := len(phases)
	for _, rate := range fo.Sweep {
		if err := sleep(ctx, 2*time.Second); err != nil {
			return nil, err
		}
		ph, err := attack(AttackRandomSubdomain, rate, fo.SweepStep, true)
		if err != nil {
			return nil, fmt.Errorf("flood sweep at %d/s: %w", rate, err)
		}
		phases = append(phases, ph)
		// Stop at the first rate the attacked region's clients are
		// hurt at: the answers so far tell.
		ok := true
		for _, s := range streams {
			if n, _ := l.plan.node(s.Client); n.Region == atkRegion {
				sent, ans, _ := phaseStats(s.Answers(), ph)
				ok = ok && sent > 0 && float64(ans) >= FloodMinAnsweredAttacked*float64(sent)
			}
		}
		r.notef("sweep: random-subdomain at %d/s (%.0f sent/s): %s-clients ≥ 99 %% answered: %v", rate, ph.pps, atkRegion, ok)
		if !ok {
			break
		}
	}
	if err := sleep(ctx, time.Second); err != nil {
		return nil, err
	}
	tcpQs = tcp.end()
	all := stopAll(streams)
	if err := streamsErr(streams); err != nil {
		return nil, err
	}
	pops = watch.end()

	fr := &FloodResult{AttackRegion: atkRegion, PoPs: pops}
	normal := map[string]*float64{}
	for i, ph := range phases {
		for j, s := range streams {
			n, _ := l.plan.node(s.Client)
			sent, ans, rtts := phaseStats(all[j], ph)
			line := FloodLine{Scenario: "flood", Server: fo.Server, Attack: ph.attack, Client: s.Client, Region: n.Region, Sweep: ph.sweep, Rate: ph.rate, AttackPPS: ph.pps,
				Transport: s.Transport, Sent: sent, Answered: ans, ServedBy: servedBy(all[j], ph),
				AttackerBytes: ph.attackerB, VictimBytes: ph.victimB, FloodOpened: ph.opened, FloodClosedByPoP: ph.closed}
			if ph.counters != nil {
				line.AttackedPoP, line.PoPCounters = attacked, ph.counters
			}
			if len(rtts) > 0 {
				line.P95MS = ms(percentile(rtts, 95))
			}
			if i == 0 {
				normal[s.Client] = line.P95MS
			}
			line.P95MSNormal = normal[s.Client]
			for _, a := range tcpQs[s.Client] {
				if !a.Sent.Before(ph.start) && a.Sent.Before(ph.end) {
					line.TCPSent++
					if a.OK() {
						line.TCPAnswered++
					}
				}
			}
			if ph.attackerB != nil && *ph.attackerB > 0 {
				amp := math.Round(float64(*ph.victimB)/float64(*ph.attackerB)*1000) / 1000
				line.Amplification = &amp
			}
			fr.Lines = append(fr.Lines, line)
		}
		if ph.sweep {
			ok, inTarget := true, true
			for _, ln := range fr.Lines[len(fr.Lines)-len(streams):] {
				if ln.Region == atkRegion {
					ok = ok && ln.Sent > 0 && float64(ln.Answered) >= FloodMinAnsweredAttacked*float64(ln.Sent)
					inTarget = inTarget && ln.P95MS != nil && ln.P95MSNormal != nil &&
						time.Duration((*ln.P95MS-*ln.P95MSNormal)*float64(time.Millisecond)) <= FloodMaxP95RiseAttacked
				}
			}
			if ok && i >= sweepFrom && ph.pps > fr.AbsorbedPPS {
				fr.Absorbed, fr.AbsorbedPPS = ph.rate, ph.pps
			}
			if ok && inTarget && i >= sweepFrom {
				fr.AbsorbedInTargetPPS = max(fr.AbsorbedInTargetPPS, ph.pps)
			}
		}
	}
	if len(fo.Sweep) > 0 {
		r.notef("highest random-subdomain rate %s-pop absorbed with its clients ≥ 99 %% answered: %.0f/s sent (%d/s asked; rates tried %v); with their p95 also ≤ %s above normal: %.0f/s",
			atkRegion, fr.AbsorbedPPS, fr.Absorbed, fo.Sweep, FloodMaxP95RiseAttacked, fr.AbsorbedInTargetPPS)
	}
	for _, v := range fr.Violations() {
		r.notef("target missed: %s", v)
	}
	r.res.Flood = fr
	if isNode {
		r.checkSessions(ctx, l, "")
	}
	return r.done(), nil
}

// phaseStats counts a stream's queries sent during a phase, those
// answered, and their query times.
func phaseStats(qs []Answer, ph floodPhase) (sent, answered int, rtts []time.Duration) {
	for _, a := range qs {
		if a.Sent.Before(ph.start) || !a.Sent.Before(ph.end) {
			continue
		}
		sent++
		if a.OK() {
			answered++
			rtts = append(rtts, a.RTT())
		}
	}
	return sent, answered, rtts
}

// servedBy lists the PoPs that answered a stream during a phase.
func servedBy(qs []Answer, ph floodPhase) string {
	seen := map[string]bool{}
	for _, a := range qs {
		if a.OK() && !a.Sent.Before(ph.start) && a.Sent.Before(ph.end) {
			seen[a.PoP] = true
		}
	}
	return strings.Join(slices.Sorted(maps.Keys(seen)), ",")
}

// popRegions are the regions with a PoP, in topology order.
func (l *Lab) popRegions() []string {
	var out []string
	for _, n := range l.NodesByRole(RolePoP) {
		if !slices.Contains(out, n.Region) {
			out = append(out, n.Region)
		}
	}
	return out
}

// floodReach checks that a query from the attacker's namespace is answered
// by the attacked region's PoP.
func (l *Lab) floodReach(ctx context.Context, ns string, src, dst netip.AddrPort) error {
	q, err := probeQuery(qtypeFor(dst.Addr()))
	if err != nil {
		return err
	}
	var c net.Conn
	err = inNamespace(namespacePath(ns), func() error {
		d := net.Dialer{LocalAddr: net.UDPAddrFromAddrPort(src), Control: freebind}
		var err error
		c, err = d.DialContext(ctx, "udp6", dst.String())
		return err
	})
	if err != nil {
		return fmt.Errorf("attacker socket: %w", err)
	}
	defer c.Close()
	var lastErr error
	for range 5 {
		_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := c.Write(q); err != nil {
			return fmt.Errorf("attacker query: %w", err)
		}
		buf := make([]byte, 4096)
		n, err := c.Read(buf)
		if err != nil {
			lastErr = err
			continue
		}
		_, pop, perr := parseAnswer(buf[:n])
		if perr != nil {
			return fmt.Errorf("attacker's query answered badly: %w", perr)
		}
		if !strings.HasPrefix(pop, l.popRegions()[0]+"-") {
			return fmt.Errorf("attacker's query answered by %s, not a PoP of its region", pop)
		}
		return nil
	}
	return fmt.Errorf("attacker %s reaches no PoP at %s: %w", src, dst, lastErr)
}

// popCounters reads a PoP's counters of what it did with the queries it
// got (its metrics): answers by rcode ("answered_NXDOMAIN"), drops
// ("dropped", "early_<reason>", "rrl_<action>"), TCP connections refused
// and evicted.
func (l *Lab) popCounters(ctx context.Context, pop string) (map[string]float64, error) {
	n, err := l.plan.node(pop)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+netip.AddrPortFrom(n.Addr4, MetricsPort).String()+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClientIn(n, 2*time.Second).Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics of %s: %w", pop, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics of %s: %s", pop, resp.Status)
	}
	return parseCounters(resp.Body)
}

// startFloodServers starts server ("nsd", "knot") on every PoP of a lab
// whose PoPs announce through BIRD, serving the lab's zone on the anycast
// and the PoP's addresses, and waits until every client is answered by
// its region's PoP. It returns the servers' PIDs by PoP; Down stops them.
func (l *Lab) startFloodServers(ctx context.Context, server string) (map[string]int, error) {
	pids := map[string]int{}
	zone := filepath.Join(l.Dir, zoneFile)
	exempt := l.plan.labLimits().Source.Exempt
	for _, n := range l.NodesByRole(RolePoP) {
		dir := filepath.Join(l.Dir, n.Name+"."+server)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		var addrs []netip.Addr
		for _, a := range l.plan.topo.Anycast {
			addrs = append(addrs, a.Addr())
		}
		addrs = append(addrs, n.Addrs()...)
		conf := filepath.Join(dir, server+".conf")
		var text string
		var check, argv []string
		switch server {
		case "nsd":
			text = nsdFloodConf(dir, n.Name, addrs, zone)
			check, argv = []string{"nsd-checkconf", conf}, []string{"nsd", "-d", "-c", conf}
		case "knot":
			text = knotFloodConf(dir, n.Name, addrs, zone, exempt)
			check, argv = []string{"knotc", "-c", conf, "conf-check"}, []string{"knotd", "-c", conf}
		default:
			return nil, fmt.Errorf("flood: unknown server %q", server)
		}
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			return nil, fmt.Errorf("write %s: %w", conf, err)
		}
		if _, err := exec.LookPath(argv[0]); err != nil {
			return nil, fmt.Errorf("flood with %s: %w", server, err)
		}
		if _, err := exec.LookPath(check[0]); err == nil {
			if _, err := run(ctx, check[0], check[1:]...); err != nil {
				return nil, fmt.Errorf("flood with %s on %s: %w", server, n.Name, err)
			}
		}
		p, err := l.StartProcess(n.Name, argv...)
		if err != nil {
			return nil, fmt.Errorf("start %s on %s: %w", server, n.Name, err)
		}
		pids[n.Name] = p.PID
	}
	anycast, err := l.anycastAddr(false)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range l.clientNames() {
		n, _ := l.plan.node(c)
		for {
			a, err := l.Query(ctx, c, "udp", anycast, 500*time.Millisecond)
			if err != nil {
				return nil, err
			}
			if a.OK() && a.PoP == nodeName(n.Region, "pop") {
				break
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("flood with %s: %s not answered by its region's PoP after 30s (last: %+v)", server, c, a)
			}
			if err := sleep(ctx, 200*time.Millisecond); err != nil {
				return nil, err
			}
		}
	}
	return pids, nil
}
