package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// ShutdownTimeout is how long Serve waits for requests in progress when its
// context ends.
const ShutdownTimeout = 10 * time.Second

// Serve serves h on ln until ctx is done, then stops accepting requests and
// waits up to ShutdownTimeout for those in progress, so that a write that
// started is answered. It takes ownership of ln.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	log := logger.With("component", "api")
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// Bodies of imports can be large and clients slow.
		ReadTimeout:  2 * time.Minute,
		WriteTimeout: 2 * time.Minute,
		IdleTimeout:  2 * time.Minute,
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("api listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
		defer cancel()
		shutErr := srv.Shutdown(sctx)
		if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("api on %s: %w", ln.Addr(), err)
		}
		if shutErr != nil {
			_ = srv.Close()
			return fmt.Errorf("api on %s: shutdown: %w", ln.Addr(), shutErr)
		}
		return nil
	case err := <-errc:
		return fmt.Errorf("api on %s: %w", ln.Addr(), err)
	}
}
