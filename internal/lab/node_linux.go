package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/anycastdns/anycastdns/internal/admin"
)

// ErrNoAnycastd is returned by the node operations of a lab built without
// Options.Anycastd.
var ErrNoAnycastd = errors.New("the lab runs no anycastd (Options.Anycastd)")

// Signal sends sig to the process if it is still the process the lab
// started (same PID and start time).
func (p *Process) Signal(sig syscall.Signal) error {
	if !p.alive() {
		return fmt.Errorf("%s (pid %d) is not running", p.Name, p.PID)
	}
	if err := syscall.Kill(p.PID, sig); err != nil {
		return fmt.Errorf("signal %s to %s (pid %d): %w", sig, p.Name, p.PID, err)
	}
	return nil
}

func (l *Lab) startNodes(ctx context.Context) (string, error) {
	pops := l.NodesByRole(RolePoP)
	for _, n := range pops {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		if _, err := l.StartNode(n.Name); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%d anycastd nodes started (%s)", len(pops), l.opts.Anycastd), nil
}

// StartNode starts anycastd on a PoP with the configuration the lab wrote
// for it (NodeConfigPath), at the lab's raised priority. It fails if the
// PoP's node already runs.
func (l *Lab) StartNode(pop string) (*Process, error) {
	if l.opts.Anycastd == "" {
		return nil, ErrNoAnycastd
	}
	n, err := l.plan.node(pop)
	if err != nil {
		return nil, err
	}
	if n.Role != RolePoP {
		return nil, fmt.Errorf("%s is a %s, not a pop", pop, n.Role)
	}
	l.mu.Lock()
	old := l.nodes[pop]
	l.mu.Unlock()
	if old != nil && old.Running() {
		return nil, fmt.Errorf("anycastd on %s already runs (pid %d)", pop, old.PID)
	}
	p, err := l.startIn(pop, "anycastd", []string{l.opts.Anycastd, "node", "-config", l.NodeConfigPath(pop)})
	if p != nil {
		l.mu.Lock()
		l.nodes[pop] = p
		l.mu.Unlock()
	}
	if err != nil {
		return nil, fmt.Errorf("anycastd on %s: %w", pop, err)
	}
	return p, nil
}

// NodeProcess returns the anycastd process the lab last started on a PoP,
// nil if none.
func (l *Lab) NodeProcess(pop string) *Process {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nodes[pop]
}

// dialIn returns a DialContext whose sockets belong to the namespace at
// nsPath: the admin API of a node listens on its namespace's loopback.
func dialIn(nsPath string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNamespace(nsPath, func() error {
			var d net.Dialer
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
}

// httpClientIn is an HTTP client whose connections are made in the
// namespace of n, where the daemon's API listens on the loopback.
func httpClientIn(n *Node, timeout time.Duration) *http.Client {
	tr := &http.Transport{DialContext: dialIn(namespacePath(n.Namespace)), DisableKeepAlives: true}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// Admin returns a client of the admin API of the node on a PoP (what
// `anycastctl -admin 127.0.0.1:8053` is inside the PoP's namespace).
func (l *Lab) Admin(pop string) (*admin.Client, error) {
	n, err := l.plan.node(pop)
	if err != nil {
		return nil, err
	}
	if n.Role != RolePoP {
		return nil, fmt.Errorf("%s is a %s, not a pop", pop, n.Role)
	}
	return admin.NewClient(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), AdminPort).String(), httpClientIn(n, 5*time.Second)), nil
}

// WaitAnnounced waits until the node on every PoP reports, over its admin
// API, that it announces every anycast prefix with every BGP session
// established and BFD up.
func (l *Lab) WaitAnnounced(ctx context.Context, timeout time.Duration, pops ...string) error {
	if len(pops) == 0 {
		for _, n := range l.NodesByRole(RolePoP) {
			pops = append(pops, n.Name)
		}
	}
	deadline := time.Now().Add(timeout)
	for _, pop := range pops {
		c, err := l.Admin(pop)
		if err != nil {
			return err
		}
		for {
			st, err := c.Status(ctx)
			why := ""
			switch {
			case err != nil:
				why = err.Error()
			default:
				why = announcedProblem(st, l.plan.topo.Anycast)
			}
			if why == "" {
				break
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("%s does not announce after %s: %s", pop, timeout, why)
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// announcedProblem says why a node's status is not "announcing every
// prefix, every session established with BFD up"; "" when it is.
func announcedProblem(st admin.Status, anycast []netip.Prefix) string {
	for _, p := range anycast {
		if !slices.Contains(st.Announced, p) {
			return fmt.Sprintf("%s not announced (healthy %v, drained %v)", p, st.Healthy, st.Drained)
		}
	}
	if len(st.Sessions) == 0 {
		return "no BGP sessions"
	}
	for _, s := range st.Sessions {
		if s.State != "established" || (s.BFD != "" && s.BFD != "up") {
			return fmt.Sprintf("session %s is %s, bfd %q", s.Peer, s.State, s.BFD)
		}
	}
	return ""
}

// bestProtocol returns the BIRD protocol of the primary route in the output
// of birdc "show route for PREFIX" ("" when there is none). The primary
// route's line carries a "*" after the protocol and time in brackets.
func bestProtocol(out string) string {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		i := strings.IndexByte(line, '[')
		j := strings.IndexByte(line, ']')
		if i < 0 || j < i || !strings.HasPrefix(strings.TrimSpace(line[j+1:]), "*") {
			continue
		}
		f := strings.Fields(line[i+1 : j])
		if len(f) > 0 {
			return f[0]
		}
	}
	return ""
}

// localPreferred lists the routers that have a PoP of their own but whose
// primary route to an anycast prefix is not through one of them: the
// anycast network has not settled while the list is not empty.
func (l *Lab) localPreferred(ctx context.Context) ([]string, error) {
	var bad []string
	for _, r := range l.NodesByRole(RoleRouter) {
		local := map[bool][]string{}
		for _, s := range l.plan.sessions(r.Name) {
			if s.PeerRole == RolePoP {
				local[s.Local.Is6()] = append(local[s.Local.Is6()], s.Protocol)
			}
		}
		if len(local[false])+len(local[true]) == 0 {
			continue
		}
		for _, a := range l.plan.topo.Anycast {
			out, err := l.Birdc(ctx, r.Name, "show", "route", "for", a.String())
			if err != nil && strings.Contains(out, "Network not found") {
				bad = append(bad, fmt.Sprintf("%s: no route to %s", r.Name, a))
				continue
			}
			if err != nil {
				return nil, err
			}
			if best := bestProtocol(out); !slices.Contains(local[a.Addr().Is6()], best) {
				bad = append(bad, fmt.Sprintf("%s: best route to %s from %q, not its PoP", r.Name, a, best))
			}
		}
	}
	return bad, nil
}

// NewPoP proposes a PoP to add to region: the next free name "popN", ASN
// one above the highest PoP ASN, and unicast addresses one above the
// highest PoP addresses (the next /64 for IPv6).
func (l *Lab) NewPoP(region string) (PoP, error) { return l.plan.newPoP(region) }

// AddPoP adds a PoP to a region of the running lab: its namespace, its link
// to the region's router, addresses (anycast on lo), its node configuration,
// and the router's BIRD configuration with the new sessions, which BIRD
// loads without touching the others (birdc configure). Start its node with
// StartNode. Addresses of the rest of the lab do not move.
func (l *Lab) AddPoP(ctx context.Context, region string, pop PoP) (*Node, error) {
	if l.opts.Speakers {
		return nil, errors.New("add pop: not with BIRD speakers on the PoPs")
	}
	a := AddedPoP{Region: region, PoP: pop}
	l.mu.Lock()
	n, k, err := l.plan.addPoP(a)
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := l.record(func(s *State) { s.Added = append(s.Added, a); s.Links = l.plan.links }); err != nil {
		return nil, err
	}
	if err := l.createNamespace(ctx, n); err != nil {
		return nil, err
	}
	if err := l.createLink(k); err != nil {
		return nil, err
	}
	if err := l.configureHost(n); err != nil {
		return nil, err
	}
	if _, err := l.writeConfig(n); err != nil {
		return nil, err
	}
	router := nodeName(region, "router")
	r, _ := l.plan.node(router)
	if _, err := l.writeConfig(r); err != nil {
		return nil, err
	}
	out, err := l.Birdc(ctx, router, "configure")
	if err != nil {
		return nil, fmt.Errorf("add pop: reconfigure %s: %w", router, err)
	}
	if !strings.Contains(out, "Reconfigured") {
		return nil, fmt.Errorf("add pop: reconfigure %s: %s", router, strings.TrimSpace(out))
	}
	return n, nil
}

// NodeLog returns the last lines of the log of the anycastd on a PoP.
func (l *Lab) NodeLog(pop string, lines int) string {
	p := l.NodeProcess(pop)
	if p == nil {
		return ""
	}
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return err.Error()
	}
	return lastLines(string(b), lines)
}

// SaveLogs copies the lab's state, configurations and logs (not its
// control sockets) to dir, to look at after the lab is gone.
func (l *Lab) SaveLogs(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ents, err := os.ReadDir(l.Dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(l.Dir, e.Name()))
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644) //nolint:gosec // names listed from the lab's own directory
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
