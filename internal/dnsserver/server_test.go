package dnsserver

import (
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

// startServer runs a server for testHandler's zone on a free loopback
// port with the TCP limits tl until the test ends.
func startServer(t *testing.T, tl TCPLimits) (*Server, netip.AddrPort) {
	t.Helper()
	h := testHandler(t)
	set(h, func(s *Settings) { s.TCP = tl })
	cfg := Config{Listen: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}, Readers: 1}
	s, err := New(cfg, h, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	testkit.Start(t, s)
	return s, s.Addrs()[0]
}

// dialFrom opens a TCP connection to addr from the loopback address src.
func dialFrom(t *testing.T, src string, addr netip.AddrPort) *net.TCPConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 3 * time.Second}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// queryTCP sends one A query for www.example.com. and reads the answer.
func queryTCP(c net.Conn) error {
	m := new(dns.Msg)
	m.SetQuestion("www.example.com.", dns.TypeA)
	p, err := m.Pack()
	if err != nil {
		return err
	}
	if err := c.SetDeadline(time.Now().Add(3 * time.Second)); err != nil {
		return err
	}
	if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(p))), p...)); err != nil {
		return err
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return err
	}
	resp := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, resp); err != nil {
		return err
	}
	r := new(dns.Msg)
	if err := r.Unpack(resp); err != nil {
		return err
	}
	if len(r.Answer) != 1 {
		return errors.New("no answer record")
	}
	return nil
}

// closedSoon reports whether the server closes c within d.
func closedSoon(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	_, err := c.Read(b[:])
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// waitConns waits until the server holds n connections.
func waitConns(t *testing.T, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.tcpConns() != n {
		if time.Now().After(deadline) {
			t.Fatalf("server holds %d connections, want %d", s.tcpConns(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTCPFullEvictsOldest: with every slot held by idle connections, a new
// client is served and the connection idle longest is closed for it.
func TestTCPFullEvictsOldest(t *testing.T) {
	s, addr := startServer(t, TCPLimits{MaxConns: 4, Idle: time.Minute, BusyIdle: time.Minute})
	var idle []*net.TCPConn
	for i, src := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"} {
		c := dialFrom(t, src, addr)
		waitConns(t, s, i+1)
		idle = append(idle, c)
	}
	// The second one asks something: it is no longer the oldest idle.
	if err := queryTCP(idle[1]); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		c := dialFrom(t, "127.0.0.6", addr)
		if err := queryTCP(c); err != nil {
			t.Fatalf("new client %d with every slot taken: %v", i, err)
		}
	}
	// 0 and 2 were idle longest; 1 asked, 3 came later.
	for i, want := range []bool{true, false, true, false} {
		if got := closedSoon(idle[i], 300*time.Millisecond); got != want {
			t.Errorf("connection %d closed: %t, want %t", i, got, want)
		}
	}
	if n := s.stats.TCPEvicted.Load(); n != 2 {
		t.Errorf("TCPEvicted = %d, want 2", n)
	}
	if n := s.stats.TCPRefuse.Load(); n != 0 {
		t.Errorf("TCPRefuse = %d, want 0", n)
	}
}

// TestTCPLimitsFromSettings: the TCP limits are part of the settings
// snapshot; new settings (a reload) apply to the next connection.
func TestTCPLimitsFromSettings(t *testing.T) {
	s, addr := startServer(t, TCPLimits{Idle: time.Minute})
	first := dialFrom(t, "127.0.0.2", addr)
	if err := queryTCP(first); err != nil {
		t.Fatal(err)
	}
	set(s.h, func(st *Settings) { st.TCP.PerSource = 1 })
	second := dialFrom(t, "127.0.0.2", addr)
	if err := queryTCP(second); err != nil {
		t.Fatal(err)
	}
	if !closedSoon(first, time.Second) {
		t.Error("with one connection per source, the first was not evicted for the second")
	}
}
