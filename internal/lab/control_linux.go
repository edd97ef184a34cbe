package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/anycastdns/anycastdns/internal/apiclient"
)

// ErrNoControl is returned by the control-plane operations of a lab built
// without Options.Control.
var ErrNoControl = errors.New("the lab runs no control plane (anycastlab up -control, Options.Control)")

// ControlConfigPath is the control plane's configuration file.
func (l *Lab) ControlConfigPath() string { return filepath.Join(l.Dir, controlFile) }

// ControlNode returns the namespace the control plane runs in and its
// transfer address; ok is false without a control plane.
func (l *Lab) ControlNode() (node string, xfr netip.AddrPort, ok bool) {
	if l.ctl == nil {
		return "", netip.AddrPort{}, false
	}
	return l.ctl.Node, l.ctl.xfrAddr(), true
}

// Control returns a client of the control plane's API (what `anycastctl
// -api http://127.0.0.1:8080` is inside its namespace, with its token).
func (l *Lab) Control() (*apiclient.Client, error) {
	if l.ctl == nil {
		return nil, ErrNoControl
	}
	n, err := l.plan.node(l.ctl.Node)
	if err != nil {
		return nil, err
	}
	return apiclient.New(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), ControlAPIPort).String(), l.ctl.Token, httpClientIn(n, 10*time.Second))
}

// controlConfigPathOf is the configuration file of replica i.
func (l *Lab) controlConfigPathOf(i int) string { return filepath.Join(l.Dir, controlFileOf(i)) }

// ControlReplicas is the number of replicas of the control plane (0
// without one).
func (l *Lab) ControlReplicas() int {
	if l.ctl == nil {
		return 0
	}
	return len(l.ctl.sites())
}

// ControlReplicaNode returns the namespace replica i runs in and its
// address.
func (l *Lab) ControlReplicaNode(i int) (node string, addr netip.Addr, err error) {
	if l.ctl == nil {
		return "", netip.Addr{}, ErrNoControl
	}
	sites := l.ctl.sites()
	if i < 0 || i >= len(sites) {
		return "", netip.Addr{}, fmt.Errorf("control plane replica %d: the lab runs %d", i+1, len(sites))
	}
	return sites[i].Node, sites[i].Addr4, nil
}

// ControlReplicaProcess returns the running process of replica i, nil
// when it does not run.
func (l *Lab) ControlReplicaProcess(i int) *Process {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.replicas[i]
}

// startControl starts every replica of the control plane and waits until
// each one's API answers and reaches every PoP. It runs before the nodes,
// so that their first catalog transfer finds it.
func (l *Lab) startControl(ctx context.Context) (string, error) {
	sites := l.ctl.sites()
	for i := range sites {
		if err := l.startReplica(ctx, i); err != nil {
			return "", err
		}
	}
	stream := "no stream"
	if l.ctl.Stream {
		stream = "stream at " + l.ctl.streamAddr().String()
	}
	if len(sites) == 1 {
		return fmt.Sprintf("anycastd control on %s (transfers and NOTIFY from %s, catalog %s, %s), routed to every PoP", l.ctl.Node, l.ctl.xfrAddr(), CatalogZone, stream), nil
	}
	where := make([]string, len(sites))
	for i, s := range sites {
		where[i] = fmt.Sprintf("%s (%s)", s.Node, s.Addr4)
	}
	return fmt.Sprintf("%d replicas of anycastd control on PostgreSQL: %s; catalog %s; every PoP lists them all; routed to every PoP",
		len(sites), strings.Join(where, ", "), CatalogZone), nil
}

// startReplica starts replica i of the control plane and waits until its
// API answers and it reaches every PoP.
func (l *Lab) startReplica(ctx context.Context, i int) error {
	site := l.ctl.sites()[i]
	n, err := l.plan.node(site.Node)
	if err != nil {
		return err
	}
	p, err := l.startIn(site.Node, "anycastd", []string{l.opts.Anycastd, "control", "-config", l.controlConfigPathOf(i)})
	if p != nil {
		l.mu.Lock()
		l.replicas[i] = p
		if i == 0 {
			l.control = p
		}
		l.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("anycastd control on %s: %w", site.Node, err)
	}
	c, err := apiclient.New(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), ControlAPIPort).String(), l.ctl.Token, httpClientIn(n, 10*time.Second))
	if err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := c.ListZones(ctx)
		if err == nil {
			break
		}
		select {
		case <-p.Done():
			return fmt.Errorf("anycastd control on %s exited (log %s): %w", site.Node, p.Log, p.Wait())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("anycastd control on %s: API not answering after 20s: %w", site.Node, err)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	// The PoPs' first catalog transfer needs a route to the control plane,
	// which the routers learn from each other over BGP: wait for it, or
	// every node's first attempt fails and waits out its retry interval.
	for _, pop := range l.NodesByRole(RolePoP) {
		for {
			r, err := l.Ping(ctx, site.Node, pop.Addr4, 1, 0, 200*time.Millisecond)
			if err == nil && len(r.RTTs) > 0 {
				break
			}
			if time.Now().After(deadline) {
				if err == nil {
					err = errors.New("no echo reply")
				}
				return fmt.Errorf("control plane on %s cannot reach %s (%s) after 20s: %w", site.Node, pop.Name, pop.Addr4, err)
			}
			if err := sleep(ctx, 100*time.Millisecond); err != nil {
				return err
			}
		}
	}
	return nil
}
