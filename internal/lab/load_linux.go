package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Load is a bounded load generator in one client network: at most Rate
// queries per second to the anycast address, at most Outstanding of them
// waiting for an answer at once (each worker sends its next query when the
// last is answered or lost), each answered within a second or lost. Unlike
// a Stream, it does not pile up queries on a PoP that cannot keep up: the
// PoP's queue stays bounded, so it is slow, not dead. Each answer's PoP
// comes from NSID.
type Load struct {
	Client      string
	Rate        int
	Outstanding int

	cancel context.CancelFunc
	conns  []*net.UDPConn
	wg     sync.WaitGroup
	mu     sync.Mutex
	qs     []Answer
}

// LoadTimeout is how long a load query waits for its answer.
const LoadTimeout = time.Second

// StartLoad starts a load generator from client to dst:53.
func (l *Lab) StartLoad(client string, dst netip.Addr, rate, outstanding int) (*Load, error) {
	if err := checkRate(rate); err != nil {
		return nil, err
	}
	if outstanding < 1 || outstanding > 1000 {
		return nil, fmt.Errorf("load from %s: %d outstanding queries: want 1..1000", client, outstanding)
	}
	nsPath, src, err := l.probeSource(client, dst)
	if err != nil {
		return nil, err
	}
	query, err := probeQuery(qtypeFor(dst))
	if err != nil {
		return nil, err
	}
	conns := make([]*net.UDPConn, 0, outstanding)
	closeAll := func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}
	for range outstanding {
		var c *net.UDPConn
		err := inNamespace(nsPath, func() error {
			var err error
			c, err = net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, DNSPort)))
			return err
		})
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("load from %s: %w", client, err)
		}
		conns = append(conns, c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ld := &Load{Client: client, Rate: rate, Outstanding: outstanding, cancel: cancel, conns: conns}
	// Tokens every 10 ms: rate/100 each, the remainder carried over.
	tokens := make(chan struct{}, outstanding)
	ld.wg.Go(func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		var owed float64
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			owed += float64(rate) / 100
			for ; owed >= 1; owed-- {
				select {
				case tokens <- struct{}{}:
				default: // every worker is busy: the load is bounded
				}
			}
		}
	})
	for i, c := range conns {
		ld.wg.Go(func() {
			q := append([]byte(nil), query...)
			buf := make([]byte, 4096)
			id := uint16(i) << 10
			var mine []Answer
			defer func() {
				ld.mu.Lock()
				ld.qs = append(ld.qs, mine...)
				ld.mu.Unlock()
			}()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tokens:
				}
				id = uint16(i)<<10 | (id+1)&0x3ff
				q[0], q[1] = byte(id>>8), byte(id)
				a := Answer{Seq: len(mine), Sent: time.Now()}
				_ = c.SetDeadline(a.Sent.Add(LoadTimeout))
				if _, err := c.Write(q); err != nil {
					a.Err = err.Error()
					mine = append(mine, a)
					continue
				}
				for {
					n, err := c.Read(buf)
					if err != nil {
						var ne net.Error
						if errors.As(err, &ne) && ne.Timeout() {
							a.Err = "timeout"
						} else {
							a.Err = err.Error()
						}
						break
					}
					rid, pop, perr := parseAnswer(buf[:n])
					if rid != id {
						continue // the late answer of a query already lost
					}
					a.Recv, a.PoP = time.Now(), pop
					if perr != nil {
						a.Err = perr.Error()
					}
					break
				}
				if ctx.Err() != nil && !a.OK() {
					return // cut short by the stop, not lost
				}
				mine = append(mine, a)
			}
		})
	}
	return ld, nil
}

// Stop stops the load and returns every query it sent, in no order.
func (ld *Load) Stop() []Answer {
	ld.cancel()
	for _, c := range ld.conns {
		_ = c.Close() // ends a wait for an answer at once
	}
	ld.wg.Wait()
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return ld.qs
}
