package api

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/anycastdns/anycastdns/internal/httpserve"
)

// ShutdownTimeout is how long Serve waits for requests in progress when its
// context ends.
const ShutdownTimeout = 10 * time.Second

// Serve serves h on ln until ctx is done, then stops accepting requests and
// waits up to ShutdownTimeout for those in progress, so that a write that
// started is answered. It takes ownership of ln.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger) error {
	return httpserve.Serve(ctx, ln, h, logger, Options())
}

// Options are the API listener's: imports can be large and clients slow.
func Options() httpserve.Options {
	return httpserve.Options{
		Component:         "api",
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		ShutdownTimeout:   ShutdownTimeout,
	}
}
