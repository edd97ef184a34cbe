package listen

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var loopback = netip.MustParseAddrPort("127.0.0.1:0")

// echo answers each message with itself.
func echo(c *Conn, msg []byte) bool { return c.Write(msg) == nil }

// counters are Hooks that count.
type counters struct{ denied, refused, evicted, malformed, conns atomic.Int64 }

func (n *counters) hooks(allow func(netip.Addr) bool) Hooks {
	return Hooks{
		Allow:     allow,
		Denied:    func(netip.AddrPort) { n.denied.Add(1) },
		Refused:   func() { n.refused.Add(1) },
		Evicted:   func() { n.evicted.Add(1) },
		Malformed: func() { n.malformed.Add(1) },
		Conns:     func(d int) { n.conns.Add(int64(d)) },
	}
}

// serve binds 127.0.0.1:0 and serves TCP with h until the test ends; it
// fails the test if ServeTCP returns an error.
func serve(t *testing.T, lim TCPLimits, hooks Hooks, h Handler) (*Listener, netip.AddrPort) {
	t.Helper()
	l, err := Bind(context.Background(), Config{Listen: []netip.AddrPort{loopback}})
	if err != nil {
		t.Fatal(err)
	}
	l.SetTCPLimits(lim)
	l.SetHooks(hooks)
	done := make(chan error, 1)
	go func() { done <- l.ServeTCP(h) }()
	t.Cleanup(func() {
		l.Close()
		if err := <-done; err != nil {
			t.Errorf("ServeTCP: %v", err)
		}
	})
	return l, l.Addrs()[0]
}

func dialFrom(t *testing.T, src string, addr netip.AddrPort) *net.TCPConn {
	t.Helper()
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(src), 0)), Timeout: 3 * time.Second}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func frame(msgs ...string) []byte {
	var b []byte
	for _, m := range msgs {
		b = binary.BigEndian.AppendUint16(b, uint16(len(m)))
		b = append(b, m...)
	}
	return b
}

func readMsg(c net.Conn) (string, error) {
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return "", err
	}
	b := make([]byte, binary.BigEndian.Uint16(l[:]))
	_, err := io.ReadFull(c, b)
	return string(b), err
}

// roundTrip sends one message and reads the echo.
func roundTrip(c net.Conn, msg string) error {
	if _, err := c.Write(frame(msg)); err != nil {
		return err
	}
	got, err := readMsg(c)
	if err == nil && got != msg {
		err = fmt.Errorf("answer %q, want %q", got, msg)
	}
	return err
}

// closedSoon reports whether the other side closes c within d.
func closedSoon(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	_, err := c.Read(b[:])
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

func waitConns(t *testing.T, l *Listener, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); l.Conns() != n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want %d", l.Conns(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBind binds UDP and TCP on one port for port 0, several UDP sockets
// with SO_REUSEPORT, and closes them all.
func TestBind(t *testing.T) {
	addrs := []netip.AddrPort{loopback, loopback}
	if ln, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		ln.Close()
		addrs = append(addrs, netip.MustParseAddrPort("[::1]:0"))
	}
	l, err := Bind(context.Background(), Config{Listen: addrs, UDPSockets: 3})
	if err != nil {
		t.Fatal(err)
	}
	got := l.Addrs()
	if len(got) != len(addrs) || len(l.UDP()) != 3*len(addrs) {
		t.Fatalf("addrs %v, %d UDP sockets", got, len(l.UDP()))
	}
	for i, ap := range got {
		if ap.Port() == 0 {
			t.Errorf("address %d: port 0", i)
		}
		for j := range 3 {
			u := l.UDP()[3*i+j]
			if u.LocalAddr().(*net.UDPAddr).AddrPort().Port() != ap.Port() {
				t.Errorf("UDP socket %d of %s on %s", j, ap, u.LocalAddr())
			}
		}
		c, err := net.Dial("tcp", ap.String())
		if err != nil {
			t.Errorf("tcp %s: %v", ap, err)
		} else {
			c.Close()
		}
	}
	l.Close()
	l.Close() // twice is fine
	if !l.Closed() {
		t.Error("Closed() = false after Close")
	}
	for _, ap := range got {
		if pc, err := net.ListenPacket("udp", ap.String()); err != nil {
			t.Errorf("UDP %s still bound after Close: %v", ap, err)
		} else {
			pc.Close()
		}
	}
}

// TestBindInUse fails on an address whose TCP port is taken, and leaves
// no UDP socket behind.
func TestBindInUse(t *testing.T) {
	taken, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	ap := taken.Addr().(*net.TCPAddr).AddrPort()
	_, err = Bind(context.Background(), Config{Listen: []netip.AddrPort{loopback, ap}, UDPSockets: 2})
	if !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Bind with a taken TCP port: %v, want EADDRINUSE", err)
	}
	if pc, err := net.ListenPacket("udp4", ap.String()); err != nil {
		t.Errorf("UDP %s left bound after the failed Bind: %v", ap, err)
	} else {
		pc.Close()
	}
	if _, err := Bind(context.Background(), Config{}); err == nil {
		t.Error("Bind without addresses: no error")
	}
}

// TestPipelining: queries sent together are all answered, in order, and
// the answers held back while the next query is waiting go out together.
func TestPipelining(t *testing.T) {
	_, addr := serve(t, TCPLimits{}, Hooks{}, echo)
	c := dialFrom(t, "127.0.0.1", addr)
	if _, err := c.Write(frame("one", "two", "three")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"one", "two", "three"} {
		if got, err := readMsg(c); err != nil || got != want {
			t.Fatalf("answer %q, %v; want %q", got, err, want)
		}
	}
	// A message longer than the buffers.
	long := string(bytes.Repeat([]byte("x"), 20000))
	if err := roundTrip(c, long); err != nil {
		t.Fatal(err)
	}
}

// TestHandlerCloses: an answer written before the handler says to close
// still reaches the client.
func TestHandlerCloses(t *testing.T) {
	_, addr := serve(t, TCPLimits{}, Hooks{}, func(c *Conn, msg []byte) bool {
		_ = c.Write(msg)
		return false
	})
	c := dialFrom(t, "127.0.0.1", addr)
	if err := roundTrip(c, "last"); err != nil {
		t.Fatal(err)
	}
	if !closedSoon(c, 3*time.Second) {
		t.Error("connection open after the handler said to close it")
	}
}

// TestMaxQueries closes a connection after its last allowed message.
func TestMaxQueries(t *testing.T) {
	_, addr := serve(t, TCPLimits{MaxQueries: 2}, Hooks{}, echo)
	c := dialFrom(t, "127.0.0.1", addr)
	for _, m := range []string{"a", "b"} {
		if err := roundTrip(c, m); err != nil {
			t.Fatal(err)
		}
	}
	if !closedSoon(c, 3*time.Second) {
		t.Error("connection open after MaxQueries messages")
	}
}

// TestMalformed counts a message cut short.
func TestMalformed(t *testing.T) {
	var n counters
	l, addr := serve(t, TCPLimits{}, n.hooks(nil), echo)
	c := dialFrom(t, "127.0.0.1", addr)
	waitConns(t, l, 1)
	if _, err := c.Write([]byte{0, 100, 'a', 'b'}); err != nil {
		t.Fatal(err)
	}
	_ = c.CloseWrite()
	waitConns(t, l, 0)
	if n.malformed.Load() != 1 || n.conns.Load() != 0 {
		t.Errorf("malformed %d, open %d; want 1, 0", n.malformed.Load(), n.conns.Load())
	}
}

// TestEvict: with every slot held, a new client is served and the
// connection idle longest is reset for it; a source holds its share at
// most and displaces its own.
func TestEvict(t *testing.T) {
	var n counters
	l, addr := serve(t, TCPLimits{MaxConns: 4, PerSource: 2, SourceV4: 24, Idle: time.Minute, Evict: true}, n.hooks(nil), echo)
	var held []*net.TCPConn
	for i, src := range []string{"127.0.1.1", "127.0.2.1", "127.0.3.1", "127.0.4.1"} {
		held = append(held, dialFrom(t, src, addr))
		waitConns(t, l, i+1)
	}
	if err := roundTrip(held[0], "busy"); err != nil { // no longer the oldest
		t.Fatal(err)
	}
	newcomer := dialFrom(t, "127.0.5.1", addr)
	if err := roundTrip(newcomer, "hello"); err != nil {
		t.Fatalf("newcomer with every slot taken: %v", err)
	}
	for i, want := range []bool{false, true, false, false} {
		if got := closedSoon(held[i], 300*time.Millisecond); got != want {
			t.Errorf("connection %d closed: %t, want %t", i, got, want)
		}
	}
	// 127.0.5.0/24 has two slots: its third connection displaces its own
	// first.
	second := dialFrom(t, "127.0.5.2", addr)
	if err := roundTrip(second, "x"); err != nil {
		t.Fatal(err)
	}
	third := dialFrom(t, "127.0.5.3", addr)
	if err := roundTrip(third, "y"); err != nil {
		t.Fatal(err)
	}
	if !closedSoon(newcomer, time.Second) || closedSoon(held[0], 300*time.Millisecond) {
		t.Error("the source's third connection did not displace its own oldest alone")
	}
	if n.evicted.Load() != 3 || n.refused.Load() != 0 {
		t.Errorf("evicted %d refused %d, want 3 0", n.evicted.Load(), n.refused.Load())
	}
}

// TestRefuse: without Evict a connection past the limits is closed and
// the ones open keep working.
func TestRefuse(t *testing.T) {
	var n counters
	l, addr := serve(t, TCPLimits{MaxConns: 2, Idle: time.Minute}, n.hooks(nil), echo)
	a := dialFrom(t, "127.0.0.2", addr)
	b := dialFrom(t, "127.0.0.3", addr)
	waitConns(t, l, 2)
	late := dialFrom(t, "127.0.0.4", addr)
	if !closedSoon(late, 3*time.Second) {
		t.Error("a connection past MaxConns is open")
	}
	for _, c := range []net.Conn{a, b} {
		if err := roundTrip(c, "still"); err != nil {
			t.Error(err)
		}
	}
	if n.refused.Load() != 1 || n.evicted.Load() != 0 {
		t.Errorf("refused %d evicted %d, want 1 0", n.refused.Load(), n.evicted.Load())
	}
}

// TestAllow resets a connection from a source Allow refuses before
// reading from it; a new policy applies to the next connection.
func TestAllow(t *testing.T) {
	var n counters
	var allowed atomic.Pointer[netip.Addr]
	a := netip.MustParseAddr("127.0.0.2")
	allowed.Store(&a)
	_, addr := serve(t, TCPLimits{Idle: time.Minute}, n.hooks(func(src netip.Addr) bool { return src == *allowed.Load() }), echo)
	in := dialFrom(t, "127.0.0.2", addr)
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 3)}, Timeout: 3 * time.Second}
	switch out, err := d.Dial("tcp", addr.String()); {
	case errors.Is(err, syscall.ECONNRESET): // reset before Dial looked
	case err != nil:
		t.Fatal(err)
	default:
		defer out.Close()
		if !closedSoon(out, 3*time.Second) {
			t.Error("a connection Allow refuses is open")
		}
	}
	if err := roundTrip(in, "ok"); err != nil {
		t.Error(err)
	}
	b := netip.MustParseAddr("127.0.0.3")
	allowed.Store(&b)
	if err := roundTrip(dialFrom(t, "127.0.0.3", addr), "now"); err != nil {
		t.Error(err)
	}
	if n.denied.Load() != 1 {
		t.Errorf("denied %d, want 1", n.denied.Load())
	}
}

// TestBusyIdle: past half of the slots, waiting connections get the short
// idle timeout, those already waiting included.
func TestBusyIdle(t *testing.T) {
	l, addr := serve(t, TCPLimits{MaxConns: 4, Idle: time.Minute, BusyIdle: 200 * time.Millisecond, Evict: true}, Hooks{}, echo)
	first := dialFrom(t, "127.0.0.2", addr)
	if err := roundTrip(first, "q"); err != nil {
		t.Fatal(err)
	}
	if closedSoon(first, 500*time.Millisecond) {
		t.Fatal("one connection of four closed before its idle timeout")
	}
	dialFrom(t, "127.0.0.3", addr)
	waitConns(t, l, 2)
	dialFrom(t, "127.0.0.4", addr) // three of four: over half
	if !closedSoon(first, 3*time.Second) {
		t.Error("with three of four slots taken, a connection waiting with a 1m idle timeout was not closed after the 200ms busy one")
	}
}

// TestServeUDP answers datagrams with their source.
func TestServeUDP(t *testing.T) {
	l, err := Bind(context.Background(), Config{Listen: []netip.AddrPort{loopback}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- l.ServeUDP(l.UDP()[0], func(msg []byte, src netip.AddrPort, reply UDPReply) {
			_ = reply.Send(append([]byte(src.Addr().String()+" "), msg...))
		})
	}()
	c, err := net.Dial("udp4", l.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 100)
	n, err := c.Read(b)
	if err != nil || string(b[:n]) != "127.0.0.1 ping" {
		t.Errorf("answer %q, %v", b[:n], err)
	}
	l.Close()
	if err := <-done; err != nil {
		t.Errorf("ServeUDP after Close: %v", err)
	}
}

// TestOutOfFileDescriptors: an accept that fails for want of file
// descriptors (EMFILE) does not end the listener; the connection waiting
// is served once descriptors are free again.
func TestOutOfFileDescriptors(t *testing.T) {
	_, addr := serve(t, TCPLimits{}, Hooks{}, echo)
	// The client socket is made before the limit is lowered; connecting
	// it takes no new descriptor, accepting it does.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	tv := syscall.Timeval{Sec: 3}
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	// The lowest free descriptor: with the limit there, none can be made.
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	lowest := f.Fd()
	f.Close()
	restore := func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) }
	defer restore()
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: uint64(lowest), Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	sa := &syscall.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}
	if err := syscall.Connect(fd, sa); err != nil {
		restore()
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the accept loop meets EMFILE
	restore()
	msg := frame("after EMFILE")
	if _, err := syscall.Write(fd, msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	for off := 0; off < len(got); {
		n, err := syscall.Read(fd, got[off:])
		if err != nil || n == 0 {
			t.Fatalf("no answer once descriptors were free again: %d, %v", n, err)
		}
		off += n
	}
	if !bytes.Equal(got, msg) {
		t.Errorf("answer %q", got)
	}
}
