package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anycastdns/anycastdns/internal/listen"
)

// Config of the listeners. The TCP limits are Settings: they change with
// a reload.
type Config struct {
	Listen  []netip.AddrPort
	Readers int // UDP sockets (SO_REUSEPORT) per address; 0 = GOMAXPROCS
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

	lis atomic.Pointer[listen.Listener] // nil until Run has bound the sockets
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
	return s, nil
}

// Ready is closed once every socket is bound and serving.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addrs returns the bound addresses (with the real port when 0 was asked).
func (s *Server) Addrs() []netip.AddrPort { return s.lis.Load().Addrs() }

// tcpConns is the number of open TCP connections.
func (s *Server) tcpConns() int { return s.lis.Load().Conns() }

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
	// The limits are those of the handler's snapshot, replaced whole by
	// a reload.
	lis.SetTCPLimitsFunc(func() *listen.TCPLimits { return &s.h.rt.Load().tcp })
	s.lis.Store(lis)
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
	resp, _ := w.Handle(msg, c.Remote(), TCP)
	if resp == nil {
		return true
	}
	if err := c.Write(resp); err != nil {
		return false
	}
	if w.Tapping() {
		w.Tap(msg, resp, c.Local(), TCP, start)
	}
	if w.local != nil {
		w.local.observe(time.Since(start))
	}
	return true
}
