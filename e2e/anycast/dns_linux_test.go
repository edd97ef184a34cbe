//go:build linux

package anycast

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/vishvananda/netns"
)

// --- namespaces: sockets ----------------------------------------------------

// dialIn opens a connection from inside the named namespace: the socket is
// created on a thread that has entered it, and stays there for its life. A
// thread whose namespace cannot be restored is left locked, so the runtime
// ends it with the goroutine.
func dialIn(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("current namespace: %w", err)}
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(ns)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("open namespace %s: %w", ns, err)}
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("enter namespace %s: %w", ns, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if rerr := netns.Set(orig); rerr != nil {
			if c != nil {
				c.Close()
			}
			ch <- result{nil, errors.Join(err, fmt.Errorf("leave namespace %s: %w", ns, rerr))}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// query asks server, from inside namespace ns, for www.example.com/A and
// requires the node's authoritative answer.
func query(ns, network string, server netip.AddrPort, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn, err := dialIn(ctx, ns, network, server.String())
	if err != nil {
		return err
	}
	defer conn.Close()
	c := &dns.Client{Net: network, Timeout: timeout}
	m := new(dns.Msg)
	m.SetQuestion(qname, dns.TypeA)
	m.RecursionDesired = false
	r, _, err := c.ExchangeWithConnContext(ctx, m, &dns.Conn{Conn: conn})
	if err != nil {
		return err
	}
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
		return fmt.Errorf("%s %s: rcode %s aa=%v", network, server, dns.RcodeToString[r.Rcode], r.Authoritative)
	}
	for _, rr := range r.Answer {
		if a, ok := rr.(*dns.A); ok && a.A.String() == wwwAddr {
			return nil
		}
	}
	return fmt.Errorf("%s %s: answer %v has no A %s", network, server, r.Answer, wwwAddr)
}

// sample is one query of a prober.
type sample struct {
	at  time.Time // sent
	err error
}

// prober queries one server from one namespace every interval until
// stopped.
type prober struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	got  []sample
}

// It is stopped at the end of the test at the latest.
func startProber(t *testing.T, ns, network string, server netip.AddrPort, interval, timeout time.Duration) *prober {
	p := &prober{stop: make(chan struct{}), done: make(chan struct{})}
	t.Cleanup(func() { p.Stop() })
	go func() {
		defer close(p.done)
		for {
			at := time.Now()
			err := query(ns, network, server, timeout)
			p.mu.Lock()
			p.got = append(p.got, sample{at, err})
			p.mu.Unlock()
			select {
			case <-p.stop:
				return
			case <-time.After(interval):
			}
		}
	}()
	return p
}

// Stop ends the prober and returns every sample.
func (p *prober) Stop() []sample {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
	return p.got
}

// snapshot returns the samples so far.
func (p *prober) snapshot() []sample {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got)
}

// failures returns the samples sent in [from, to) that failed, and how many
// were sent then.
func failures(s []sample, from, to time.Time) (failed []sample, n int) {
	for _, x := range s {
		if x.at.Before(from) || !x.at.Before(to) {
			continue
		}
		n++
		if x.err != nil {
			failed = append(failed, x)
		}
	}
	return failed, n
}
