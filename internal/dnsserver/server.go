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
}

// Server serves a Handler on UDP and TCP.
type Server struct {
	cfg    Config
	limits atomic.Pointer[tcpLimits]
	h      *Handler
	log    *slog.Logger
	stats  *Stats
	ready  chan struct{}
	mu     sync.Mutex
	udp    []*net.UDPConn
	tcp    []*net.TCPListener
	conns  map[net.Conn]struct{}
	addrs  []netip.AddrPort
	pool   sync.Pool
	closed bool
}

type tcpLimits struct {
	maxConns   int
	idle       time.Duration
	maxQueries int
}

// SetTCPLimits changes the TCP limits of a running server (on reload);
// zero values keep the defaults. Open connections pick them up with their
// next query.
func (s *Server) SetTCPLimits(maxConns int, idle time.Duration, maxQueries int) {
	if maxConns <= 0 {
		maxConns = 1024
	}
	if idle <= 0 {
		idle = 10 * time.Second
	}
	s.limits.Store(&tcpLimits{maxConns: maxConns, idle: idle, maxQueries: maxQueries})
}

func (s *Server) idle() time.Duration { return s.limits.Load().idle }
func (s *Server) maxQueries() int     { return s.limits.Load().maxQueries }

// New returns a server; nothing is bound until Run.
func New(cfg Config, h *Handler, logger *slog.Logger) (*Server, error) {
	if len(cfg.Listen) == 0 {
		return nil, errors.New("dnsserver: no listen address")
	}
	if cfg.Readers <= 0 {
		cfg.Readers = runtime.GOMAXPROCS(0)
	}
	if cfg.TCPMaxConns <= 0 {
		cfg.TCPMaxConns = 1024
	}
	if cfg.TCPIdle <= 0 {
		cfg.TCPIdle = 10 * time.Second
	}
	s := &Server{
		cfg:   cfg,
		h:     h,
		log:   logger.With("component", "dnsserver"),
		stats: h.stats,
		ready: make(chan struct{}),
		conns: make(map[net.Conn]struct{}),
	}
	// TCP workers come and go with the pool; they share one set of counters.
	var shared *workerStats
	if h.stats != nil {
		shared = h.stats.newWorker()
	}
	s.pool.New = func() any { return h.newWorker(shared) }
	s.SetTCPLimits(cfg.TCPMaxConns, cfg.TCPIdle, cfg.TCPMaxQueries)
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
	for c := range s.conns {
		_ = c.Close()
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
		s.mu.Lock()
		if s.closed || len(s.conns) >= s.limits.Load().maxConns {
			s.mu.Unlock()
			_ = c.Close()
			if s.stats != nil {
				s.stats.TCPRefuse.Add(1)
			}
			continue
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		if s.stats != nil {
			s.stats.TCPConns.Add(1)
		}
		wg.Go(func() {
			s.serveConn(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			if s.stats != nil {
				s.stats.TCPConns.Add(-1)
			}
		})
	}
}

// serveConn answers queries on one TCP connection in order, pipelined
// (RFC 7766 §6.2.1): the client may send several queries without waiting.
func (s *Server) serveConn(c *net.TCPConn) {
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
