package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
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

// startControl starts the control plane and waits until its API answers.
// It runs before the nodes, so that their first catalog transfer finds it.
func (l *Lab) startControl(ctx context.Context) (string, error) {
	p, err := l.startIn(l.ctl.Node, "anycastd", []string{l.opts.Anycastd, "control", "-config", l.ControlConfigPath()})
	if p != nil {
		l.mu.Lock()
		l.control = p
		l.mu.Unlock()
	}
	if err != nil {
		return "", fmt.Errorf("anycastd control on %s: %w", l.ctl.Node, err)
	}
	c, err := l.Control()
	if err != nil {
		return "", err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := c.ListZones(ctx)
		if err == nil {
			break
		}
		select {
		case <-p.Done():
			return "", fmt.Errorf("anycastd control on %s exited (log %s): %w", l.ctl.Node, p.Log, p.Wait())
		default:
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("anycastd control on %s: API not answering after 20s: %w", l.ctl.Node, err)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return "", err
		}
	}
	// The PoPs' first catalog transfer needs a route to the control plane,
	// which the routers learn from each other over BGP: wait for it, or
	// every node's first attempt fails and waits out its retry interval.
	for _, n := range l.NodesByRole(RolePoP) {
		for {
			r, err := l.Ping(ctx, l.ctl.Node, n.Addr4, 1, 0, 200*time.Millisecond)
			if err == nil && len(r.RTTs) > 0 {
				break
			}
			if time.Now().After(deadline) {
				if err == nil {
					err = errors.New("no echo reply")
				}
				return "", fmt.Errorf("control plane on %s cannot reach %s (%s) after 20s: %w", l.ctl.Node, n.Name, n.Addr4, err)
			}
			if err := sleep(ctx, 100*time.Millisecond); err != nil {
				return "", err
			}
		}
	}
	stream := "no stream"
	if l.ctl.Stream {
		stream = "stream at " + l.ctl.streamAddr().String()
	}
	return fmt.Sprintf("anycastd control on %s (transfers and NOTIFY from %s, catalog %s, %s), routed to every PoP", l.ctl.Node, l.ctl.xfrAddr(), CatalogZone, stream), nil
}
