package listen

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// TCPLimits bound the TCP connections. A zero field takes the default
// shown.
type TCPLimits struct {
	MaxConns int // open connections at most (1024)
	// PerSource bounds the open connections of one source prefix of
	// SourceV4 or SourceV6 bits (MaxConns: no bound of its own).
	PerSource int
	SourceV4  int           // 32
	SourceV6  int           // 64
	Idle      time.Duration // how long a connection may wait for its next message (10s)
	// BusyIdle replaces Idle while more than half of MaxConns are open,
	// for the connections already waiting too (Idle: no change). It is
	// never longer than Idle.
	BusyIdle   time.Duration
	MaxQueries int // messages per connection (0: unlimited)
	// Evict: when a source has its share, or every slot is taken, the
	// connection that made progress (accepted, or a whole message read)
	// longest ago, of that source or of all, is reset and its slot given
	// to the newcomer, as NSD and Knot do, so that idle or slow clients
	// cannot keep others out. Without it the newcomer is closed.
	Evict bool
}

// Defaults of TCPLimits.
const (
	DefaultMaxConns = 1024
	DefaultSourceV4 = 32
	DefaultSourceV6 = 64
	DefaultIdle     = 10 * time.Second
)

// WithDefaults returns l with the defaults in its zero fields and its
// fields within their bounds: the limits as a Listener applies them.
func (l TCPLimits) WithDefaults() TCPLimits {
	l.defaults()
	return l
}

func (l *TCPLimits) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxConns, DefaultMaxConns)
	def(&l.PerSource, l.MaxConns)
	def(&l.SourceV4, DefaultSourceV4)
	def(&l.SourceV6, DefaultSourceV6)
	l.SourceV4 = min(l.SourceV4, 32)
	l.SourceV6 = min(l.SourceV6, 128)
	l.PerSource = min(l.PerSource, l.MaxConns)
	if l.Idle <= 0 {
		l.Idle = DefaultIdle
	}
	if l.BusyIdle <= 0 {
		l.BusyIdle = l.Idle
	}
	l.BusyIdle = min(l.BusyIdle, l.Idle)
	l.MaxQueries = max(l.MaxQueries, 0)
}

// Hooks tell the owner of a Listener about its TCP connections. Every
// field may be nil. They are set before ServeTCP and called from its
// goroutines.
type Hooks struct {
	// Allow is asked as soon as a connection is accepted, before a byte
	// is read: false resets it, so that sources with nothing to ask
	// cannot hold the slots.
	Allow func(src netip.Addr) bool
	// Denied is told of a connection Allow reset.
	Denied func(remote netip.AddrPort)
	// Refused is told of a connection closed at once: no slot for it
	// (without Evict), or the listener closing.
	Refused func()
	// Evicted is told of a connection reset to make room (Evict).
	Evicted func()
	// Malformed is told of a message cut short.
	Malformed func()
	// Conns is told of each connection opened (+1) and closed (-1).
	Conns func(delta int)
	// HandshakeFailed is told of a TLS connection whose handshake failed
	// (a TLS listener only); the connection is closed.
	HandshakeFailed func(remote netip.AddrPort, err error)
}

// Handler answers one message read from c, writing any answer with
// c.Write, and returns false to close the connection (after what was
// written is sent). msg is valid until it returns.
type Handler func(c *Conn, msg []byte) bool

// tcpServer is the connection table of a Listener.
type tcpServer struct {
	tls    *tls.Config               // nil: plain TCP
	set    atomic.Pointer[TCPLimits] // by SetTCPLimits, defaults applied
	limits func() *TCPLimits         // the limits in force: set's, or the owner's
	hooks  Hooks

	mu     sync.Mutex
	closed bool
	conns  map[*Conn]struct{}
	perSrc map[netip.Prefix]int // open connections by source prefix
	nconns atomic.Int64         // len(conns), read without the lock
	shrunk time.Time            // when waiting connections last got the busy idle timeout
}

func (s *tcpServer) init() {
	s.conns = make(map[*Conn]struct{})
	s.perSrc = make(map[netip.Prefix]int)
	s.limits = s.set.Load
	s.SetTCPLimits(TCPLimits{})
}

// SetTCPLimits changes the limits, also while serving (a reload): open
// connections take them with their next message, a lower connection
// limit as new connections arrive.
func (s *tcpServer) SetTCPLimits(l TCPLimits) {
	l.defaults()
	s.set.Store(&l)
}

// SetTCPLimitsFunc makes the listener read its limits from f at each
// decision, instead of keeping its own (SetTCPLimits no longer counts):
// for an owner that holds them in a snapshot of its settings, replaced
// whole on reload. f returns limits with the defaults applied
// (WithDefaults) and must not block. Call it before ServeTCP.
func (s *tcpServer) SetTCPLimitsFunc(f func() *TCPLimits) { s.limits = f }

// TCPLimits returns the limits in force, defaults applied.
func (s *tcpServer) TCPLimits() TCPLimits { return *s.limits() }

// SetHooks installs the hooks; call it before ServeTCP.
func (s *tcpServer) SetHooks(h Hooks) { s.hooks = h }

// Conns is the number of open TCP connections.
func (s *tcpServer) Conns() int { return int(s.nconns.Load()) }

// Conns is the number of open TCP connections; 0 for a nil Listener.
func (l *Listener) Conns() int {
	if l == nil {
		return 0
	}
	return l.tcpServer.Conns()
}

// idle is how long a connection may wait for its next message: shorter
// while more than half of the slots are taken, so that idle clients make
// room sooner.
func (s *tcpServer) idle() time.Duration {
	l := s.limits()
	if s.nconns.Load() > int64(l.MaxConns/2) {
		return l.BusyIdle
	}
	return l.Idle
}

// Conn is a TCP connection being served, or a TLS connection over one.
type Conn struct {
	c      net.Conn       // tcp, or the TLS connection over it
	tcp    *net.TCPConn   // the socket: reset and closed from outside the connection's goroutine
	tls    *tls.Conn      // nil: plain TCP
	remote netip.AddrPort // IPv4 unmapped
	src    netip.Prefix   // the source prefix it counts against
	// last is when the connection last made progress (accepted, or a
	// whole message read), in Unix nanoseconds: the one with the oldest
	// is evicted first.
	last atomic.Int64
	gone bool // removed from the table (under tcpServer.mu)
	w    *bufio.Writer
	srv  *tcpServer
}

// Remote is the address of the client.
func (c *Conn) Remote() netip.AddrPort { return c.remote }

// Local is the address the connection arrived on, IPv4 unmapped (for
// dnstap's response address).
func (c *Conn) Local() netip.AddrPort {
	ta, ok := c.c.LocalAddr().(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	ap := ta.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// TLS reports whether the connection is a TLS one (its handshake done).
func (c *Conn) TLS() bool { return c.tls != nil }

// errTooLong is a message longer than a TCP frame holds.
var errTooLong = errors.New("message longer than 65535 bytes")

// Write queues msg, with its length (RFC 1035 §4.2.2), for the client. It
// is sent once the handler returns and no further whole message is
// waiting (RFC 7766 §6.2.1.1), or at once when the buffer is full; each
// write to the network may take the idle timeout.
func (c *Conn) Write(msg []byte) error {
	if len(msg) > 65535 {
		return errTooLong
	}
	if c.w.Available() < 2+len(msg) {
		if err := c.c.SetWriteDeadline(time.Now().Add(c.srv.idle())); err != nil {
			return err
		}
	}
	var l [2]byte
	binary.BigEndian.PutUint16(l[:], uint16(len(msg)))
	if _, err := c.w.Write(l[:]); err != nil {
		return err
	}
	_, err := c.w.Write(msg)
	return err
}

// flush sends what was written.
func (c *Conn) flush() error {
	if c.w.Buffered() == 0 {
		return nil
	}
	if err := c.c.SetWriteDeadline(time.Now().Add(c.srv.idle())); err != nil {
		return err
	}
	return c.w.Flush()
}

// ioPause is how long the accept loop waits when the process is out of
// file descriptors, for connections to close.
const ioPause = 10 * time.Millisecond

func (l *Listener) accept(ln *net.TCPListener, h Handler, wg *sync.WaitGroup) error {
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if l.Closed() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				time.Sleep(ioPause)
				continue
			}
			return fmt.Errorf("tcp accept %s: %w", ln.Addr(), err)
		}
		remote := remoteAddr(c)
		// The hooks hear of a denial or refusal before the client can
		// see its connection closed.
		if allow := l.hooks.Allow; allow != nil && !allow(remote.Addr()) {
			if f := l.hooks.Denied; f != nil {
				f(remote)
			}
			_ = c.SetLinger(0) // nothing is owed to it: reset, no TIME_WAIT
			_ = c.Close()
			continue
		}
		tc, ok := l.admit(c, remote)
		if !ok {
			if f := l.hooks.Refused; f != nil {
				f()
			}
			_ = c.Close()
			continue
		}
		wg.Go(func() {
			l.serveConn(tc, h)
			l.remove(tc)
		})
	}
}

// remoteAddr is the source of a connection, IPv4 unmapped.
func remoteAddr(c *net.TCPConn) netip.AddrPort {
	ta, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	ap := ta.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// admit enters a new connection in the table, making room by eviction
// when the limits say so. It refuses when there is no room, or when the
// listener is closing.
func (s *tcpServer) admit(c *net.TCPConn, remote netip.AddrPort) (*Conn, bool) {
	l := s.limits()
	src := sourcePrefix(remote.Addr(), l.SourceV4, l.SourceV6)
	tc := &Conn{c: c, tcp: c, remote: remote, src: src, srv: s}
	if s.tls != nil {
		tc.tls = tls.Server(c, s.tls)
		tc.c = tc.tls
	}
	tc.last.Store(time.Now().UnixNano())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false
	}
	for s.perSrc[src] >= l.PerSource {
		if !l.Evict || !s.evictLocked(src, true) {
			return nil, false
		}
	}
	for len(s.conns) >= l.MaxConns {
		if !l.Evict || !s.evictLocked(netip.Prefix{}, false) {
			return nil, false
		}
	}
	s.conns[tc] = struct{}{}
	s.perSrc[src]++
	s.nconns.Store(int64(len(s.conns)))
	if f := s.hooks.Conns; f != nil {
		f(1)
	}
	if now := time.Now(); l.BusyIdle < l.Idle && len(s.conns) > l.MaxConns/2 && now.Sub(s.shrunk) >= l.BusyIdle {
		// Under pressure the connections already waiting get the short
		// idle timeout too (each later wait gets it from idle()); at
		// most once per BusyIdle, as the count moves about the mark.
		s.shrunk = now
		deadline := now.Add(l.BusyIdle)
		for other := range s.conns {
			if other != tc {
				_ = other.c.SetReadDeadline(deadline)
			}
		}
	}
	return tc, true
}

// evictLocked resets the connection that made progress longest ago, of
// source src when bySource is set, and frees its slot at once (its
// goroutine ends on the closed socket). It reports whether there was one.
func (s *tcpServer) evictLocked(src netip.Prefix, bySource bool) bool {
	var oldest *Conn
	var at int64
	for tc := range s.conns {
		if bySource && tc.src != src {
			continue
		}
		if t := tc.last.Load(); oldest == nil || t < at {
			oldest, at = tc, t
		}
	}
	if oldest == nil {
		return false
	}
	s.removeLocked(oldest)
	if f := s.hooks.Evicted; f != nil {
		f() // before the client can see the reset
	}
	_ = oldest.tcp.SetLinger(0) // nothing is owed to it: reset, no TIME_WAIT
	_ = oldest.tcp.Close()
	return true
}

func (s *tcpServer) remove(tc *Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeLocked(tc)
}

func (s *tcpServer) removeLocked(tc *Conn) {
	if tc.gone {
		return
	}
	tc.gone = true
	delete(s.conns, tc)
	if n := s.perSrc[tc.src] - 1; n > 0 {
		s.perSrc[tc.src] = n
	} else {
		delete(s.perSrc, tc.src)
	}
	s.nconns.Store(int64(len(s.conns)))
	if f := s.hooks.Conns; f != nil {
		f(-1)
	}
}

// sourcePrefix is the prefix of a source address that shares a
// connection budget.
func sourcePrefix(ip netip.Addr, v4, v6 int) netip.Prefix {
	bits := v6
	if ip.Is4() {
		bits = v4
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// serveConn reads the messages of one connection in order, pipelined
// (RFC 7766 §6.2.1: the client may send several without waiting), and
// hands each to h.
func (s *tcpServer) serveConn(tc *Conn, h Handler) {
	c := tc.c
	defer func() { _ = c.Close() }()
	if tc.tls != nil && !s.handshake(tc) {
		return
	}
	r := bufio.NewReaderSize(c, 4096)
	tc.w = bufio.NewWriterSize(c, 4096)
	// What was written goes out before the connection does, whatever
	// ends it.
	defer func() { _ = tc.flush() }()
	msg := make([]byte, 512)
	var lenb [2]byte
	for served := 0; ; served++ {
		if max := s.limits().MaxQueries; max > 0 && served >= max {
			return
		}
		if err := c.SetReadDeadline(time.Now().Add(s.idle())); err != nil {
			return
		}
		if _, err := io.ReadFull(r, lenb[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(lenb[:]))
		if n > cap(msg) {
			msg = make([]byte, n)
		}
		msg = msg[:n]
		if _, err := io.ReadFull(r, msg); err != nil {
			if f := s.hooks.Malformed; f != nil {
				f()
			}
			return
		}
		tc.last.Store(time.Now().UnixNano())
		if !h(tc, msg) {
			return
		}
		// Keep answers back only while another whole message is already
		// waiting: then they go out together (RFC 7766 §6.2.1.1).
		if !wholeMessageBuffered(r) {
			if err := tc.flush(); err != nil {
				return
			}
		}
	}
}

// handshake runs the TLS handshake of tc within the idle timeout and
// reports whether it succeeded; the HandshakeFailed hook hears why not.
func (s *tcpServer) handshake(tc *Conn) bool {
	ctx, cancel := context.WithTimeout(context.Background(), s.idle())
	defer cancel()
	err := tc.tls.HandshakeContext(ctx)
	if err == nil {
		return true
	}
	if f := s.hooks.HandshakeFailed; f != nil {
		f(tc.remote, err)
	}
	return false
}

// wholeMessageBuffered reports whether r holds a complete length-prefixed
// message without reading from the connection.
func wholeMessageBuffered(r *bufio.Reader) bool {
	if r.Buffered() < 2 {
		return false
	}
	p, err := r.Peek(2)
	if err != nil {
		return false
	}
	return r.Buffered() >= 2+int(binary.BigEndian.Uint16(p))
}
