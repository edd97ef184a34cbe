//go:build linux

package node

import (
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// tcpNode starts a node serving example.com. with the given limits block.
func tcpNode(t *testing.T, limits string, metrics bool) *proc {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "example.com.zone"), zoneText("example.com.", 1,
		"a IN A 192.0.2.11",
		"b IN A 192.0.2.12",
		"c IN A 192.0.2.13",
	))
	cfg := `identity: {name: tcp-node}
listen: {{.Listen}}
zones:
  - name: example.com.
    file: example.com.zone
limits:
` + limits
	if metrics {
		cfg += "metrics: {listen: \"{{.MetricsAddr}}\"}\n"
	}
	return startNode(t, nodeOpts{dir: dir, config: cfg, metrics: metrics})
}

// closedByPeer reports whether err means the other end closed the
// connection (EOF or reset), as opposed to a timeout.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// TestTCPPipelining writes many queries in one write and expects every
// answer, in order, with matching IDs and questions (RFC 7766 §6.2.1).
func TestTCPPipelining(t *testing.T) {
	n := tcpNode(t, "  tcp_idle_timeout: 10s\n", false)
	type q struct {
		name  string
		qtype uint16
		class uint16
		rcode int
		a     string // expected A, if any
	}
	kinds := []q{
		{"a.example.com.", dns.TypeA, dns.ClassINET, dns.RcodeSuccess, "192.0.2.11"},
		{"b.example.com.", dns.TypeA, dns.ClassINET, dns.RcodeSuccess, "192.0.2.12"},
		{"missing.example.com.", dns.TypeA, dns.ClassINET, dns.RcodeNameError, ""},
		{"c.example.com.", dns.TypeA, dns.ClassINET, dns.RcodeSuccess, "192.0.2.13"},
		{"example.org.", dns.TypeA, dns.ClassINET, dns.RcodeRefused, ""},
		{"id.server.", dns.TypeTXT, dns.ClassCHAOS, dns.RcodeSuccess, ""},
		{"a.example.com.", dns.TypeAAAA, dns.ClassINET, dns.RcodeSuccess, ""},
	}
	// 300 queries (~10 KB) do not fit in one read buffer of the server.
	const count = 300
	var want []q
	var wire [][]byte
	for i := range count {
		k := kinds[i%len(kinds)]
		m := question(k.name, k.qtype, k.class)
		m.Id = uint16(1000 + i*7)
		wire = append(wire, packMsg(t, m))
		want = append(want, k)
	}
	c := dialTCP(t, n.addr())
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(frame(wire...)); err != nil {
		t.Fatalf("write %d pipelined queries: %v", count, err)
	}
	for i, w := range want {
		r, err := readFramed(c)
		if err != nil {
			t.Fatalf("answer %d of %d: %v", i+1, count, err)
		}
		if wantID := uint16(1000 + i*7); r.Id != wantID {
			t.Fatalf("answer %d: ID %d, want %d (answers out of order)", i+1, r.Id, wantID)
		}
		if len(r.Question) != 1 || r.Question[0].Name != w.name || r.Question[0].Qtype != w.qtype {
			t.Fatalf("answer %d: question %v, want %s %s", i+1, r.Question, w.name, dns.TypeToString[w.qtype])
		}
		if r.Rcode != w.rcode {
			t.Errorf("answer %d (%s): rcode %s, want %s", i+1, w.name, dns.RcodeToString[r.Rcode], dns.RcodeToString[w.rcode])
		}
		if w.a != "" {
			expectA(t, r, w.a)
		}
	}
	// Still open and usable after the batch.
	m := question("a.example.com.", dns.TypeA, dns.ClassINET)
	r, err := tcpQuery(c, m, 3*time.Second)
	if err != nil {
		t.Fatalf("query after the pipelined batch: %v", err)
	}
	expectA(t, r, "192.0.2.11")
}

// TestTCPIdleTimeout: with tcp_idle_timeout 1s, a connection stays usable
// while it is busy and is closed by the node once it has been idle.
func TestTCPIdleTimeout(t *testing.T) {
	n := tcpNode(t, "  tcp_idle_timeout: 1s\n", false)

	c := dialTCP(t, n.addr())
	for i := range 3 {
		r, err := tcpQuery(c, question("a.example.com.", dns.TypeA, dns.ClassINET), 3*time.Second)
		if err != nil {
			t.Fatalf("query %d: %v", i, err)
		}
		expectA(t, r, "192.0.2.11")
		// Well inside the idle timeout: the next query must still work.
		time.Sleep(200 * time.Millisecond)
	}
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	_, err := c.Read(b[:])
	if !closedByPeer(err) {
		t.Fatalf("idle connection: read returned %v, want the node to close it (EOF) within 10s", err)
	}

	// A connection that never sends anything is closed too.
	silent := dialTCP(t, n.addr())
	if err := silent.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := silent.Read(b[:]); !closedByPeer(err) {
		t.Fatalf("silent connection: read returned %v, want the node to close it (EOF) within 10s", err)
	}
	// So is one that stops in the middle of a message.
	partial := dialTCP(t, n.addr())
	msg := frame(packMsg(t, question("a.example.com.", dns.TypeA, dns.ClassINET)))
	if _, err := partial.Write(msg[:len(msg)-3]); err != nil {
		t.Fatal(err)
	}
	if err := partial.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := partial.Read(b[:]); !closedByPeer(err) {
		t.Fatalf("connection stalled mid-message: read returned %v, want the node to close it (EOF) within 10s", err)
	}
}

// TestTCPMaxConns: with tcp_max_conns 2 and both slots held, a third
// connection is served, and the node closes the one that has been idle
// longest to make room for it (as NSD and Knot do) instead of refusing
// the newcomer; the other keeps working.
func TestTCPMaxConns(t *testing.T) {
	n := tcpNode(t, "  tcp_max_conns: 2\n  tcp_idle_timeout: 30s\n  tcp_busy_idle_timeout: 30s\n", true)
	query := func(c net.Conn, name, want string) error {
		r, err := tcpQuery(c, question(name, dns.TypeA, dns.ClassINET), 3*time.Second)
		if err != nil {
			return err
		}
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != want {
			return fmt.Errorf("%s: rcode %s answer %q, want A %s", name, dns.RcodeToString[r.Rcode], rrStrings(r.Answer), want)
		}
		return nil
	}
	first := dialTCP(t, n.addr())
	second := dialTCP(t, n.addr())
	// An answer on each proves that the node holds both connections; the
	// first has been idle longer.
	if err := query(first, "a.example.com.", "192.0.2.11"); err != nil {
		t.Fatalf("first connection: %v", err)
	}
	if err := query(second, "b.example.com.", "192.0.2.12"); err != nil {
		t.Fatalf("second connection: %v", err)
	}

	third := dialTCP(t, n.addr())
	if err := query(third, "c.example.com.", "192.0.2.13"); err != nil {
		t.Fatalf("third connection with both slots held by idle ones: %v, want it served", err)
	}
	if err := first.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if _, err := first.Read(b[:]); !closedByPeer(err) {
		t.Errorf("first (idle longest) connection: read returned %v, want it closed by the node", err)
	}
	if err := query(second, "a.example.com.", "192.0.2.11"); err != nil {
		t.Errorf("second connection after the third came: %v", err)
	}
	fams := n.scrape()
	if v, _ := metricValue(fams, "anycastd_tcp_evicted_total", nil); v != 1 {
		t.Errorf("anycastd_tcp_evicted_total = %v, want 1", v)
	}
	if v, _ := metricValue(fams, "anycastd_tcp_refused_total", nil); v != 0 {
		t.Errorf("anycastd_tcp_refused_total = %v, want 0", v)
	}
	if v, _ := metricValue(fams, "anycastd_tcp_connections", nil); v != 2 {
		t.Errorf("anycastd_tcp_connections = %v, want 2", v)
	}
	if err := query(third, "b.example.com.", "192.0.2.12"); err != nil {
		t.Errorf("third connection at the end: %v", err)
	}
}

// TestTCPMaxQueries: with tcp_max_queries 3, the node answers three
// queries on a connection and then closes it, whether the queries come one
// by one or pipelined.
func TestTCPMaxQueries(t *testing.T) {
	const limit = 3
	n := tcpNode(t, fmt.Sprintf("  tcp_max_queries: %d\n", limit), false)

	t.Run("sequential", func(t *testing.T) {
		c := dialTCP(t, n.addr())
		for i := range limit {
			m := question("a.example.com.", dns.TypeA, dns.ClassINET)
			r, err := tcpQuery(c, m, 3*time.Second)
			if err != nil {
				t.Fatalf("query %d of %d: %v", i+1, limit, err)
			}
			expectA(t, r, "192.0.2.11")
		}
		_, err := tcpQuery(c, question("b.example.com.", dns.TypeA, dns.ClassINET), 5*time.Second)
		if !closedByPeer(err) {
			t.Fatalf("query %d: %v, want the connection closed by the node", limit+1, err)
		}
	})
	t.Run("pipelined", func(t *testing.T) {
		c := dialTCP(t, n.addr())
		var wire [][]byte
		for i := range limit + 2 {
			m := question("c.example.com.", dns.TypeA, dns.ClassINET)
			m.Id = uint16(100 + i)
			wire = append(wire, packMsg(t, m))
		}
		if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(frame(wire...)); err != nil {
			t.Fatal(err)
		}
		for i := range limit {
			r, err := readFramed(c)
			if err != nil {
				t.Fatalf("answer %d of %d: %v", i+1, limit, err)
			}
			if r.Id != uint16(100+i) {
				t.Errorf("answer %d: ID %d, want %d", i+1, r.Id, 100+i)
			}
			expectA(t, r, "192.0.2.13")
		}
		if r, err := readFramed(c); !closedByPeer(err) {
			t.Fatalf("after %d answers: got %v, %v; want the connection closed by the node", limit, r, err)
		}
	})
}
