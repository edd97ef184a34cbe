//go:build linux

package node

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// openIdle opens count TCP connections to n that never send anything,
// spread over the loopback sources 127.0.<block>.1 to 127.0.<block>.<srcs>,
// and keeps them until the test ends. A dial that fails is an error: the
// kernel accepts every connection, the node decides which to keep.
func openIdle(t *testing.T, n *proc, block, srcs, count int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, count)
	var wg sync.WaitGroup
	errs := make(chan error, count)
	const dialers = 16
	for d := range dialers {
		wg.Go(func() {
			for i := d; i < count; i += dialers {
				src := net.IPv4(127, 0, byte(block), byte(1+i%srcs))
				dl := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 5 * time.Second}
				c, err := dl.Dial("tcp", n.addr().String())
				switch {
				case errors.Is(err, syscall.ECONNRESET):
					// Accepted and at once closed for a newer one (by
					// another dialer) before Dial looked: closed.
				case err != nil:
					errs <- fmt.Errorf("dial %d from %s: %w", i, src, err)
					return
				default:
					conns[i] = c
				}
			}
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return conns
}

// servedFrom dials n from src and asks one query.
func servedFrom(n *proc, src string) error {
	dl := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 3 * time.Second}
	c, err := dl.Dial("tcp", n.addr().String())
	if err != nil {
		return err
	}
	defer c.Close()
	r, err := tcpQuery(c, question("a.example.com.", dns.TypeA, dns.ClassINET), 3*time.Second)
	if err != nil {
		return err
	}
	if len(r.Answer) != 1 {
		return errors.New("no answer record")
	}
	return nil
}

// stillOpen counts the connections the node has not closed: a read that
// times out means open.
func stillOpen(conns []net.Conn) int {
	open := 0
	var b [1]byte
	for _, c := range conns {
		if c == nil {
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
		var ne net.Error
		if _, err := c.Read(b[:]); errors.As(err, &ne) && ne.Timeout() {
			open++
		}
	}
	return open
}

// TestTCPIdleFlood: 2,000 idle TCP connections from 40 loopback sources
// (50 each, under the per-source cap) take every one of the node's 1,024
// slots; a new client is still answered at once, because the node closes
// the connection idle longest instead of refusing the newcomer. With the
// defaults, the busy idle timeout then clears the idle ones within a
// second or so; with it as long as the idle timeout, eviction alone keeps
// the node serving.
func TestTCPIdleFlood(t *testing.T) {
	for _, tc := range []struct {
		name, limits string
	}{
		{"defaults", ""},
		{"eviction only", "  tcp_idle_timeout: 60s\n  tcp_busy_idle_timeout: 60s\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := tcpNode(t, "  tcp_max_conns: 1024\n"+tc.limits, true)
			flood := openIdle(t, n, 1, 40, 2000)
			start := time.Now()
			if err := servedFrom(n, "127.0.0.1"); err != nil {
				t.Fatalf("new client after 2,000 idle connections: %v", err)
			}
			t.Logf("new client answered %v after the flood", time.Since(start).Round(time.Millisecond))
			fams := n.scrape()
			conns, _ := metricValue(fams, "anycastd_tcp_connections", nil)
			evicted, _ := metricValue(fams, "anycastd_tcp_evicted_total", nil)
			refused, _ := metricValue(fams, "anycastd_tcp_refused_total", nil)
			t.Logf("tcp_connections %v, evicted %v, refused %v", conns, evicted, refused)
			if conns > 1024 {
				t.Errorf("anycastd_tcp_connections = %v, over tcp_max_conns 1024", conns)
			}
			if refused != 0 {
				t.Errorf("anycastd_tcp_refused_total = %v, want 0: room is made, nobody refused", refused)
			}
			if tc.limits != "" {
				// Without the busy timeout every connection past the 1,024th
				// displaced one.
				if evicted < 2000-1024 {
					t.Errorf("anycastd_tcp_evicted_total = %v, want at least %d", evicted, 2000-1024)
				}
				if open := stillOpen(flood); open > 1024 {
					t.Errorf("%d flood connections still open, more than the 1,024 slots", open)
				}
				// The newest of the flood are the ones kept.
				if open := stillOpen(flood[len(flood)-100:]); open < 90 {
					t.Errorf("only %d of the 100 newest flood connections open, want the oldest closed first", open)
				}
			} else {
				// Over half full, idle connections get 1s: the flood is gone
				// in a few seconds.
				// One count decides (a second look could see a connection
				// the first found closed still open).
				deadline := time.Now().Add(10 * time.Second)
				open := stillOpen(flood)
				for open > 0 && time.Now().Before(deadline) {
					time.Sleep(200 * time.Millisecond)
					open = stillOpen(flood)
				}
				if open > 0 {
					t.Errorf("%d idle connections still open 10s after the flood, want the busy idle timeout (1s) to close them", open)
				}
			}
			// And again, once more, from a source of the flood.
			if err := servedFrom(n, "127.0.1.7"); err != nil {
				t.Errorf("a flooding source's new connection: %v", err)
			}
		})
	}
}

// TestTCPPerSourceCap: 200 idle connections from one address leave it at
// most tcp_max_conns_per_source (here 20) of them; its new connections
// displace its own oldest, and another source is not touched.
func TestTCPPerSourceCap(t *testing.T) {
	n := tcpNode(t, "  tcp_max_conns: 1024\n  tcp_max_conns_per_source: 20\n  tcp_idle_timeout: 60s\n  tcp_busy_idle_timeout: 60s\n", true)
	neighbour := openIdle(t, n, 3, 1, 5) // 127.0.3.1
	if err := servedFrom(n, "127.0.3.1"); err != nil {
		t.Fatal(err)
	}
	flood := openIdle(t, n, 2, 1, 200) // 127.0.2.1
	if err := servedFrom(n, "127.0.2.1"); err != nil {
		t.Fatalf("new connection from the capped source: %v", err)
	}
	if open := stillOpen(flood); open > 20 {
		t.Errorf("%d of the source's 200 connections open, want at most 20", open)
	}
	if open := stillOpen(neighbour); open != 5 {
		t.Errorf("%d of another source's 5 idle connections open, want all", open)
	}
	fams := n.scrape()
	if v, _ := metricValue(fams, "anycastd_tcp_connections", nil); v > 20+5 {
		t.Errorf("anycastd_tcp_connections = %v, want at most 25", v)
	}
	if v, _ := metricValue(fams, "anycastd_tcp_evicted_total", nil); v < 200-20 {
		t.Errorf("anycastd_tcp_evicted_total = %v, want at least 180", v)
	}
}
