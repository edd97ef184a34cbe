package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/anycastdns/anycastdns/internal/listen"
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

// Server serves a Handler on UDP and TCP, on the sockets of a
// listen.Listener.
type Server struct {
	cfg   Config
	h     *Handler
	log   *slog.Logger
	stats *Stats
	ready chan struct{}
	pool  sync.Pool

	mu     sync.Mutex
	limits listen.TCPLimits // with the defaults applied
	lis    *listen.Listener // nil until Run has bound the sockets
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
	if l.Idle <= 0 {
		l.Idle = defaultTCPIdle
	}
	if l.BusyIdle <= 0 {
		l.BusyIdle = defaultTCPBusyIdle
	}
	lim := listen.TCPLimits{
		MaxConns: l.MaxConns, PerSource: l.PerSource, SourceV4: l.SourceV4, SourceV6: l.SourceV6,
		Idle: l.Idle, BusyIdle: l.BusyIdle, MaxQueries: l.MaxQueries,
		// A new connection is never refused for want of room.
		Evict: true,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limits = lim
	if s.lis != nil {
		s.lis.SetTCPLimits(lim)
	}
}

// New returns a server; nothing is bound until Run.
func New(cfg Config, h *Handler, logger *slog.Logger) (*Server, error) {
	if len(cfg.Listen) == 0 {
		return nil, errors.New("dnsserver: no listen address")
	}
	if cfg.Readers <= 0 {
		cfg.Readers = runtime.GOMAXPROCS(0)
	}
	s := &Server{
		cfg:   cfg,
		h:     h,
		log:   logger.With("component", "dnsserver"),
		stats: h.stats,
		ready: make(chan struct{}),
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
	if s.lis == nil {
		return nil
	}
	return s.lis.Addrs()
}

// tcpConns is the number of open TCP connections.
func (s *Server) tcpConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lis == nil {
		return 0
	}
	return s.lis.Conns()
}

// hooks count the listener's TCP events in the server's Stats.
func (s *Server) hooks() listen.Hooks {
	st := s.stats
	if st == nil {
		return listen.Hooks{}
	}
	return listen.Hooks{
		Refused:   func() { st.TCPRefuse.Add(1) },
		Evicted:   func() { st.TCPEvicted.Add(1) },
		Malformed: func() { st.Malformed.Add(1) },
		Conns:     func(d int) { st.TCPConns.Add(int64(d)) },
	}
}

// Run binds every address and serves until ctx is done. A socket that fails
// while running ends Run with an error.
func (s *Server) Run(ctx context.Context) error {
	lis, err := listen.Bind(ctx, listen.Config{Listen: s.cfg.Listen, UDPSockets: s.cfg.Readers, ReusePort: true})
	if err != nil {
		return err
	}
	lis.SetHooks(s.hooks())
	s.mu.Lock()
	lis.SetTCPLimits(s.limits)
	s.lis = lis
	s.mu.Unlock()
	udp := lis.UDP()
	errc := make(chan error, len(udp)+1)
	var wg sync.WaitGroup
	for _, u := range udp {
		wg.Go(func() { errc <- s.serveUDPBatch(lis, u) })
	}
	wg.Go(func() { errc <- lis.ServeTCP(s.serveTCP) })
	s.log.Info("dns listening", "addrs", fmt.Sprint(lis.Addrs()), "udp_readers", s.cfg.Readers)
	close(s.ready)
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	lis.Close()
	wg.Wait()
	return err
}

// serveTCP answers one query of a TCP connection.
func (s *Server) serveTCP(c *listen.Conn, msg []byte) bool {
	start := time.Now()
	w := s.pool.Get().(*Worker)
	defer s.pool.Put(w)
	w.Src = c.Remote()
	resp := w.Handle(msg, TCP)
	if resp == nil {
		return true
	}
	if err := c.Write(resp); err != nil {
		return false
	}
	if w.local != nil {
		w.local.observe(time.Since(start))
	}
	return true
}
