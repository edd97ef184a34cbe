//go:build linux

package node

import (
	"encoding/binary"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestTCPSlowSenders (issue 15 item 5): 60 connections from one address
// that each send a query one byte every 100 ms (a slowloris: a message
// takes 3 s, the idle timeout is 1 s) stay within the per-source cap (at
// most tcp_max_conns_per_source = 20 open at once), and each is closed
// within the idle timeout of its last whole message although it keeps
// sending bytes: the deadline is per message, not per byte, so dribbling
// buys no time. Another source is answered throughout.
func TestTCPSlowSenders(t *testing.T) {
	const perSource, idle, senders = 20, time.Second, 60
	n := tcpNode(t, "  tcp_max_conns: 1024\n  tcp_max_conns_per_source: 20\n  tcp_idle_timeout: 1s\n  tcp_busy_idle_timeout: 1s\n", true)
	q, err := question("a.example.com.", dns.TypeA, dns.ClassINET).Pack()
	if err != nil {
		t.Fatal(err)
	}
	msg := binary.BigEndian.AppendUint16(nil, uint16(len(q)))
	msg = append(msg, q...)

	var open, maxOpen atomic.Int64
	lifetimes := make([]time.Duration, senders)
	completed := make([]bool, senders)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range senders {
		dl := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 4, 1)}, Timeout: 3 * time.Second}
		c, err := dl.Dial("tcp", n.addr().String())
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		opened := time.Now()
		maxOpen.Store(max(maxOpen.Load(), open.Add(1)))
		closed := make(chan struct{})
		wg.Go(func() { // the reader: the node closing it ends the read
			var b [512]byte
			_ = c.SetReadDeadline(opened.Add(5 * time.Second))
			if _, err := c.Read(b[:]); err == nil {
				completed[i] = true // an answer: the message got through
			}
			lifetimes[i] = time.Since(opened)
			open.Add(-1)
			close(closed)
		})
		wg.Go(func() { // the slow sender
			for _, b := range msg {
				select {
				case <-closed:
					return
				case <-time.After(100 * time.Millisecond):
				}
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
			}
		})
		time.Sleep(5 * time.Millisecond)
	}
	// While they dribble, another source is served at once.
	for range 3 {
		if err := servedFrom(n, "127.0.5.1"); err != nil {
			t.Errorf("another source during the slow senders: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if v, _ := metricValue(n.scrape(), "anycastd_tcp_connections", nil); v > perSource+1 {
		t.Errorf("anycastd_tcp_connections = %v during the slow senders, want at most %d", v, perSource+1)
	}
	wg.Wait()
	slices.Sort(lifetimes)
	longest := lifetimes[len(lifetimes)-1]
	done := 0
	for _, c := range completed {
		if c {
			done++
		}
	}
	t.Logf("%d slow senders in %v: at most %d open at once on the client side (the node's per-source cap %d), lifetimes median %v, longest %v; %d got a whole message through",
		senders, time.Since(start).Round(time.Millisecond), maxOpen.Load(), perSource, lifetimes[len(lifetimes)/2].Round(time.Millisecond), longest.Round(time.Millisecond), done)
	if done > 0 {
		t.Errorf("%d slow senders got a whole message through before the idle timeout", done)
	}
	if longest > idle+time.Second {
		t.Errorf("a slow sender's connection lived %v, want at most the idle timeout %v (+1 s slack): dribbling bytes must not extend it", longest, idle)
	}
	if v, _ := metricValue(n.scrape(), "anycastd_tcp_evicted_total", nil); v < senders-perSource {
		t.Errorf("anycastd_tcp_evicted_total = %v, want at least %d (the source's share is full)", v, senders-perSource)
	}
}
