// Package control wires the control plane: the zone store, its REST API and
// the transfer server (AXFR/IXFR, NOTIFY, catalog zone) of package xfrout.
//
// Start-up order: create the data directory → open the store, which loads
// every zone into memory → bind the API listener and the transfer listeners
// (any failure closes what was opened and aborts) → ready.
//
// Shutdown order, when the context ends: the API stops accepting requests
// and waits up to api.ShutdownTimeout for those in progress, so a write
// that started is committed and answered → the transfer server stops →
// the store closes (after the write in progress, if any) → Run returns. If
// the transfer server fails, the API shuts down the same way and Run
// returns the error. A write that was acknowledged has been fsynced before
// its answer was sent, so a crash at any point loses only writes that were
// never acknowledged.
package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/xfrout"
)

// DBFile is the name of the zone database in the data directory.
const DBFile = "zones.db"

// Control is a control plane process.
type Control struct {
	cfg   *config.Control
	log   *slog.Logger
	ready chan struct{}

	// listener, when set before Run (by tests), is used instead of
	// binding api.listen.
	listener net.Listener

	mu       sync.Mutex
	store    *store.Store
	addr     netip.AddrPort
	xfrAddrs []netip.AddrPort
}

// XfrAddrs returns the bound transfer addresses, once ready.
func (c *Control) XfrAddrs() []netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]netip.AddrPort(nil), c.xfrAddrs...)
}

// New prepares a control plane from a configuration, which it validates.
// Nothing is opened until Run.
func New(cfg *config.Control, logger *slog.Logger) (*Control, error) {
	if cfg == nil {
		return nil, errors.New("control: no configuration")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Control{cfg: cfg, log: logger, ready: make(chan struct{})}, nil
}

// Ready is closed once the store is open and the API listens.
func (c *Control) Ready() <-chan struct{} { return c.ready }

// Store returns the open store, nil before Ready.
func (c *Control) Store() *store.Store {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.store
}

// APIAddr returns the address the API listens on, zero before Ready.
func (c *Control) APIAddr() netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addr
}

// Run starts the control plane and serves until ctx is done, then shuts
// down in the order the package documents.
func (c *Control) Run(ctx context.Context) error {
	start := time.Now()
	log := c.log.With("component", "control")
	if err := os.MkdirAll(c.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("control: data directory: %w", err)
	}
	policy, err := store.ParseSerialPolicy(c.cfg.SerialPolicy)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	s, err := store.Open(ctx, filepath.Join(c.cfg.DataDir, DBFile), c.log,
		store.WithJournalLimit(c.cfg.JournalLimit), store.WithDefaultPolicy(policy))
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	ln := c.listener
	if ln == nil {
		if ln, err = net.Listen("tcp", c.cfg.API.Listen.String()); err != nil {
			return errors.Join(fmt.Errorf("control: api: %w", err), s.Close())
		}
	}
	addr, err := netip.ParseAddrPort(ln.Addr().String())
	if err != nil {
		_ = ln.Close()
		return errors.Join(fmt.Errorf("control: api: %w", err), s.Close())
	}
	if !addr.Addr().IsLoopback() {
		log.Warn("the API speaks plain HTTP on a non-loopback address: tokens cross the network in the clear unless a TLS proxy fronts it",
			"addr", addr.String())
	}
	c.mu.Lock()
	c.store, c.addr = s, addr
	c.mu.Unlock()
	h := api.Handler(NewBackend(s), api.Config{Tokens: c.cfg.API.Tokens, MaxBody: c.cfg.API.MaxBody}, c.log)

	// xfrDone stays nil (never ready) without a transfer server.
	xfrCtx, stopXfr := context.WithCancel(context.Background())
	defer stopXfr()
	var xfrDone chan error
	if xfrout.Enabled(c.cfg) {
		srv, err := xfrout.New(xfrout.FromControl(c.cfg), s, c.log)
		if err != nil {
			_ = ln.Close()
			return errors.Join(fmt.Errorf("control: xfr: %w", err), s.Close())
		}
		xfrDone = make(chan error, 1)
		go func() { xfrDone <- srv.Run(xfrCtx) }()
		select {
		case <-srv.Ready():
			c.mu.Lock()
			c.xfrAddrs = srv.Addrs()
			c.mu.Unlock()
		case err := <-xfrDone:
			_ = ln.Close()
			return errors.Join(fmt.Errorf("control: xfr: %w", err), s.Close())
		}
	}
	close(c.ready)
	log.Info("control plane ready", "api", addr.String(), "xfr", fmt.Sprint(c.XfrAddrs()), "data_dir", c.cfg.DataDir,
		"startup", time.Since(start).Round(time.Millisecond))

	// The API stops when ctx ends, or when the transfer server fails.
	apiCtx, stopAPI := context.WithCancel(ctx)
	defer stopAPI()
	apiDone := make(chan error, 1)
	go func() { apiDone <- api.Serve(apiCtx, ln, h, c.log) }()
	var runErr error
	select {
	case runErr = <-apiDone:
	case err := <-xfrDone:
		xfrDone = nil // received
		runErr = fmt.Errorf("control: xfr: %w", err)
		if err == nil {
			runErr = errors.New("control: xfr: the transfer server stopped")
		}
		stopAPI()
		if err := <-apiDone; err != nil {
			log.Warn("api stopped", "err", err)
		}
	}
	log.Info("shutting down")
	stopXfr()
	if xfrDone != nil {
		if err := <-xfrDone; err != nil && runErr == nil {
			runErr = fmt.Errorf("control: xfr: %w", err)
		}
	}
	if err := s.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("control: %w", err)
	}
	log.Info("stopped")
	return runErr
}
