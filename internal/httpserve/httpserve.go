// Package httpserve is how every HTTP listener of anycastd serves (the
// control plane's API, the node's admin API, the metrics endpoints): an
// http.Server with timeouts and its errors in the process's log, stopped
// when its context ends by a graceful shutdown that lets requests in
// progress finish.
package httpserve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anycastdns/anycastdns/internal/httpprobe"
)

// Options of a listener. Zero durations take the defaults shown.
type Options struct {
	// Component names the listener in its log lines (the "component"
	// key) and errors: "api", "admin", "metrics".
	Component string
	// ReadHeaderTimeout bounds reading a request's header (5s).
	ReadHeaderTimeout time.Duration
	// ReadTimeout and WriteTimeout bound reading a whole request and
	// writing its answer (none).
	ReadTimeout, WriteTimeout time.Duration
	// IdleTimeout bounds a keep-alive connection's wait for its next
	// request (1m).
	IdleTimeout time.Duration
	// ShutdownTimeout is how long requests in progress may take once the
	// context ends (5s); the connections still open then are closed.
	// Connections without a request in progress (idle keep-alives, and
	// clients that connected and sent nothing) are closed at once.
	ShutdownTimeout time.Duration
	// Ready, when set, makes the listener answer /healthz and /readyz
	// (httpprobe) before h.
	Ready httpprobe.ReadyFunc
}

// Defaults of Options.
const (
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultIdleTimeout       = time.Minute
	DefaultShutdownTimeout   = 5 * time.Second
)

// Serve serves h on ln until ctx is done, then stops accepting requests
// and waits up to o.ShutdownTimeout for those in progress, so that a
// request that started is answered. It takes ownership of ln. logger is
// the process's: Serve adds the component. It returns nil after a clean
// shutdown, else what went wrong, naming the component and address.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger, o Options) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if o.Component == "" {
		o.Component = "http"
	}
	if o.Ready != nil {
		h = httpprobe.Wrap(h, o.Ready)
	}
	log := logger.With("component", o.Component)
	t := &tracker{fresh: map[net.Conn]bool{}}
	srv := &http.Server{
		Handler:           t.wrap(h),
		ConnState:         t.state,
		ReadHeaderTimeout: orDefault(o.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		ReadTimeout:       o.ReadTimeout,
		WriteTimeout:      o.WriteTimeout,
		IdleTimeout:       orDefault(o.IdleTimeout, DefaultIdleTimeout),
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	addr := ln.Addr().String()
	log.Info(o.Component+" listening", "addr", addr)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), orDefault(o.ShutdownTimeout, DefaultShutdownTimeout))
		defer cancel()
		shutErr := make(chan error, 1)
		go func() { shutErr <- srv.Shutdown(sctx) }()
		// http.Server waits up to 5s for a connection that has not sent
		// a request yet: it has nothing in progress, so it goes now.
		t.closeFresh()
		err := <-shutErr
		if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) {
			return fmt.Errorf("%s on %s: %w", o.Component, addr, serveErr)
		}
		if err != nil {
			_ = srv.Close()
			if n := t.inflight.Load(); n > 0 {
				return fmt.Errorf("%s on %s: shutdown with %d requests in progress: %w", o.Component, addr, n, err)
			}
		}
		return nil
	case err := <-errc:
		return fmt.Errorf("%s on %s: %w", o.Component, addr, err)
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// tracker follows the connections and requests of a server: the requests
// in progress, and the connections that have not sent one yet.
type tracker struct {
	inflight atomic.Int64
	mu       sync.Mutex
	closing  bool
	fresh    map[net.Conn]bool // in http.StateNew
}

func (t *tracker) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.inflight.Add(1)
		defer t.inflight.Add(-1)
		h.ServeHTTP(w, r)
	})
}

func (t *tracker) state(c net.Conn, s http.ConnState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case s == http.StateNew && t.closing:
		_ = c.Close()
	case s == http.StateNew:
		t.fresh[c] = true
	default:
		delete(t.fresh, c)
	}
}

// closeFresh closes the connections that have not sent a request, and
// those that connect from now on.
func (t *tracker) closeFresh() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closing = true
	for c := range t.fresh {
		_ = c.Close()
		delete(t.fresh, c)
	}
}
