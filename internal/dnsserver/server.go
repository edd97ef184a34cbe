package dnsserver

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Config of the listeners.
type Config struct {
	Listen        []netip.AddrPort
	Readers       int           // UDP sockets (SO_REUSEPORT) per address; 0 = GOMAXPROCS
	TCPMaxConns   int           // open TCP connections at most; 0 = 1024
	TCPIdle       time.Duration // idle timeout of a TCP connection; 0 = 10s
	TCPMaxQueries int           // queries per TCP connection; 0 = unlimited
	// TCPPerSource bounds the open TCP connections of one source prefix
	// (TCPSourceV4, TCPSourceV6 bits); 0 = 64.
	TCPPerSource int
	TCPSourceV4  int // 0 = 32
	TCPSourceV6  int // 0 = 64
	// TCPBusyIdle replaces TCPIdle while more than half of TCPMaxConns
	// are open; 0 = 1s. It is never longer than TCPIdle.
	TCPBusyIdle time.Duration
}

// TCPLimits are the reloadable TCP limits; zero fields take the defaults
// of Config.
type TCPLimits struct {
	MaxConns   int
	Idle       time.Duration
	MaxQueries int
	PerSource  int
	SourceV4   int
	SourceV6   int
	BusyIdle   time.Duration
}

// Server serves a Handler on UDP and TCP.
type Server struct {
	cfg    Config
	limits atomic.Pointer[TCPLimits] // with the defaults applied
	h      *Handler
	log    *slog.Logger
	stats  *Stats
	ready  chan struct{}
	mu     sync.Mutex
	udp    []*net.UDPConn
	tcp    []*net.TCPListener
	conns  map[*tcpConn]struct{}
	perSrc map[netip.Prefix]int // open connections by source prefix
	nconns atomic.Int64         // len(conns), read without the lock
	shrunk time.Time            // when waiting connections last got the busy idle timeout
	addrs  []netip.AddrPort
	pool   sync.Pool
	closed bool
}

// tcpConn is an open TCP connection in the server's table.
type tcpConn struct {
	c   *net.TCPConn
	src netip.Prefix // the source prefix it counts against
	// last is when the connection last made progress (accepted, or a
	// whole query read), in Unix nanoseconds: the one with the oldest is
	// closed first to make room.
	last atomic.Int64
	gone bool // removed from the table (under Server.mu)
}

// Defaults of the TCP limits.
const (
	defaultTCPMaxConns  = 1024
	defaultTCPIdle      = 10 * time.Second
	defaultTCPPerSource = 64
	defaultTCPSourceV4  = 32
	defaultTCPSourceV6  = 64
	defaultTCPBusyIdle  = time.Second
)

// SetTCPLimits changes the TCP limits of a running server (on reload);
// zero values keep the defaults. Open connections pick them up with their
// next query; a lower connection limit takes effect as new connections
// arrive.
func (s *Server) SetTCPLimits(l TCPLimits) {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxConns, defaultTCPMaxConns)
	def(&l.PerSource, defaultTCPPerSource)
	def(&l.SourceV4, defaultTCPSourceV4)
	def(&l.SourceV6, defaultTCPSourceV6)
	l.SourceV4 = min(l.SourceV4, 32)
	l.SourceV6 = min(l.SourceV6, 128)
	l.PerSource = min(l.PerSource, l.MaxConns)
	if l.Idle <= 0 {
		l.Idle = defaultTCPIdle
	}
	if l.BusyIdle <= 0 {
		l.BusyIdle = defaultTCPBusyIdle
	}
	l.BusyIdle = min(l.BusyIdle, l.Idle)
	l.MaxQueries = max(l.MaxQueries, 0)
	s.limits.Store(&l)
}

// idle is how long a connection may wait for its next query: shorter while
// more than half of the connection slots are taken, so that idle clients
// make room sooner.
func (s *Server) idle() time.Duration {
	l := s.limits.Load()
	if s.nconns.Load() > int64(l.MaxConns/2) {
		return l.BusyIdle
	}
	return l.Idle
}

func (s *Server) maxQueries() int { return s.limits.Load().MaxQueries }

// New returns a server; nothing is bound until Run.
func New(cfg Config, h *Handler, logger *slog.Logger) (*Server, error) {
	if len(cfg.Listen) == 0 {
		return nil, errors.New("dnsserver: no listen address")
	}
	if cfg.Readers <= 0 {
		cfg.Readers = runtime.GOMAXPROCS(0)
	}
	s := &Server{
		cfg:    cfg,
		h:      h,
		log:    logger.With("component", "dnsserver"),
		stats:  h.stats,
		ready:  make(chan struct{}),
		conns:  make(map[*tcpConn]struct{}),
		perSrc: make(map[netip.Prefix]int),
	}
	// TCP workers come and go with the pool; they share one set of counters.
	var shared *workerStats
	if h.stats != nil {
		shared = h.stats.newWorker()
	}
	s.pool.New = func() any { return h.newWorker(shared) }
	s.SetTCPLimits(TCPLimits{
		MaxConns: cfg.TCPMaxConns, Idle: cfg.TCPIdle, MaxQueries: cfg.TCPMaxQueries,
		PerSource: cfg.TCPPerSource, SourceV4: cfg.TCPSourceV4, SourceV6: cfg.TCPSourceV6,
		BusyIdle: cfg.TCPBusyIdle,
	})
	return s, nil
}

// Ready is closed once every socket is bound and serving.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addrs returns the bound addresses (with the real port when 0 was asked).
func (s *Server) Addrs() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]netip.AddrPort(nil), s.addrs...)
}

func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// bind opens the UDP sockets and the TCP listener of one address. With port
// 0 the kernel picks the UDP port and TCP takes the same number, which may be
// in use for TCP: then it tries again with another port.
func (s *Server) bind(ctx context.Context, ap netip.AddrPort) error {
	for try := 0; ; try++ {
		err := s.bindOnce(ctx, ap)
		if err == nil || ap.Port() != 0 || try == 9 || !errors.Is(err, syscall.EADDRINUSE) {
			return err
		}
	}
}

func (s *Server) bindOnce(ctx context.Context, ap netip.AddrPort) error {
	lc := net.ListenConfig{Control: reusePort}
	network := "udp4"
	if ap.Addr().Is6() && !ap.Addr().Is4In6() {
		network = "udp6"
	}
	var udps []*net.UDPConn
	for i := range s.cfg.Readers {
		pc, err := lc.ListenPacket(ctx, network, ap.String())
		if err != nil {
			for _, u := range udps {
				_ = u.Close()
			}
			return fmt.Errorf("listen udp %s: %w", ap, err)
		}
		u := pc.(*net.UDPConn)
		if i == 0 && ap.Port() == 0 {
			ap = netip.AddrPortFrom(ap.Addr(), uint16(u.LocalAddr().(*net.UDPAddr).Port))
		}
		udps = append(udps, u)
	}
	tnet := "tcp4"
	if network == "udp6" {
		tnet = "tcp6"
	}
	ln, err := lc.Listen(ctx, tnet, ap.String())
	if err != nil {
		for _, u := range udps {
			_ = u.Close()
		}
		return fmt.Errorf("listen tcp %s: %w", ap, err)
	}
	s.mu.Lock()
	s.udp = append(s.udp, udps...)
	s.tcp = append(s.tcp, ln.(*net.TCPListener))
	s.addrs = append(s.addrs, ap)
	s.mu.Unlock()
	return nil
}

// Run binds every address and serves until ctx is done. A socket that fails
// while running ends Run with an error.
func (s *Server) Run(ctx context.Context) error {
	for _, ap := range s.cfg.Listen {
		if err := s.bind(ctx, ap); err != nil {
			s.closeAll()
			return err
		}
	}
	errc := make(chan error, len(s.udp)+len(s.tcp))
	var wg sync.WaitGroup
	for _, u := range s.udp {
		wg.Go(func() { errc <- s.serveUDPBatch(u) })
	}
	for _, l := range s.tcp {
		wg.Go(func() { errc <- s.serveTCP(l, &wg) })
	}
	s.log.Info("dns listening", "addrs", fmt.Sprint(s.Addrs()), "udp_readers", s.cfg.Readers)
	close(s.ready)
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	s.closeAll()
	wg.Wait()
	return err
}

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, u := range s.udp {
		_ = u.Close()
	}
	for _, l := range s.tcp {
		_ = l.Close()
	}
	for tc := range s.conns {
		_ = tc.c.Close()
	}
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) serveTCP(l *net.TCPListener, wg *sync.WaitGroup) error {
	for {
		c, err := l.AcceptTCP()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("tcp accept %s: %w", l.Addr(), err)
		}
		tc, ok := s.admit(c)
		if !ok {
			_ = c.Close()
			if s.stats != nil {
				s.stats.TCPRefuse.Add(1)
			}
			continue
		}
		wg.Go(func() {
			s.serveConn(tc)
			s.remove(tc)
		})
	}
}

// admit enters a new connection in the table. When its source prefix has
// its share of connections, or the table is full, the connection that made
// progress longest ago (of that source, or of all) is closed to make room,
// as NSD and Knot do: idle and slow clients cannot keep new ones out. It
// refuses only when the server is closing.
func (s *Server) admit(c *net.TCPConn) (*tcpConn, bool) {
	l := s.limits.Load()
	src := sourcePrefix(c.RemoteAddr(), l.SourceV4, l.SourceV6)
	tc := &tcpConn{c: c, src: src}
	tc.last.Store(time.Now().UnixNano())
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false
	}
	for s.perSrc[src] >= l.PerSource {
		if !s.evictLocked(src, true) {
			return nil, false
		}
	}
	for len(s.conns) >= l.MaxConns {
		if !s.evictLocked(netip.Prefix{}, false) {
			return nil, false
		}
	}
	s.conns[tc] = struct{}{}
	s.perSrc[src]++
	s.nconns.Store(int64(len(s.conns)))
	if s.stats != nil {
		s.stats.TCPConns.Add(1)
	}
	if now := time.Now(); len(s.conns) > l.MaxConns/2 && now.Sub(s.shrunk) >= l.BusyIdle {
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

// evictLocked closes the connection that made progress longest ago, of
// source src when bySource is set, and frees its slot at once (its
// goroutine ends on the closed socket). It reports whether there was one.
func (s *Server) evictLocked(src netip.Prefix, bySource bool) bool {
	var oldest *tcpConn
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
	_ = oldest.c.SetLinger(0) // nothing is owed to it: reset, no TIME_WAIT
	_ = oldest.c.Close()
	if s.stats != nil {
		s.stats.TCPEvicted.Add(1)
	}
	return true
}

func (s *Server) remove(tc *tcpConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeLocked(tc)
}

func (s *Server) removeLocked(tc *tcpConn) {
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
	if s.stats != nil {
		s.stats.TCPConns.Add(-1)
	}
}

// sourcePrefix is the prefix of a remote address that shares a connection
// budget.
func sourcePrefix(a net.Addr, v4, v6 int) netip.Prefix {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Prefix{}
	}
	ip, _ := netip.AddrFromSlice(ta.IP)
	ip = ip.Unmap()
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

// serveConn answers queries on one TCP connection in order, pipelined
// (RFC 7766 §6.2.1): the client may send several queries without waiting.
func (s *Server) serveConn(tc *tcpConn) {
	c := tc.c
	defer func() { _ = c.Close() }()
	remote, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	r := bufio.NewReaderSize(c, 4096)
	bw := bufio.NewWriterSize(c, 4096)
	// Answers are written before the connection goes away, whatever ends it.
	defer func() {
		_ = c.SetWriteDeadline(time.Now().Add(s.idle()))
		_ = bw.Flush()
	}()
	msg := make([]byte, 512)
	var lenb [2]byte
	for served := 0; ; served++ {
		if max := s.maxQueries(); max > 0 && served >= max {
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
			if s.stats != nil {
				s.stats.Malformed.Add(1)
			}
			return
		}
		start := time.Now()
		tc.last.Store(start.UnixNano())
		w := s.pool.Get().(*Worker)
		w.Src = remote
		resp := w.Handle(msg, TCP)
		if resp != nil {
			binary.BigEndian.PutUint16(lenb[:], uint16(len(resp)))
			_, _ = bw.Write(lenb[:])
			_, _ = bw.Write(resp)
			if w.local != nil {
				w.local.observe(time.Since(start))
			}
		}
		s.pool.Put(w)
		// Keep answers back only while another whole query is already
		// waiting: then they go out together (RFC 7766 §6.2.1.1).
		if !wholeMessageBuffered(r) {
			if err := c.SetWriteDeadline(time.Now().Add(s.idle())); err != nil {
				return
			}
			if err := bw.Flush(); err != nil {
				return
			}
		}
	}
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
