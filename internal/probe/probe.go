// Package probe holds the monitor's probes: DNS (the SOA of a canary zone
// over UDP or TCP), TCP connect and HTTP(S). Each runs once per call, is
// bounded by its context (a deadline or a cancellation ends it at once,
// and leaves no goroutine behind) and returns a Result with its timing.
//
// A probe never panics on what a server sends: a malformed, mismatched or
// wrong answer is a failed Result whose Err says what was wrong.
package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// Result is the outcome of one probe.
type Result struct {
	Start time.Time     // when the probe started
	RTT   time.Duration // from the start to the answer (or to the failure)
	Err   error         // nil when the probe passed
	// Serial is the SOA serial a DNS probe saw; 0 for the other probes.
	Serial uint32
	// Status is the HTTP status code an HTTP probe saw; 0 for the others
	// or when no answer came.
	Status int
}

// OK reports whether the probe passed.
func (r Result) OK() bool { return r.Err == nil }

// ErrTimeout matches (errors.Is) the error of a probe that its context
// ended before it had an answer.
var ErrTimeout = errors.New("timed out")

// ioErr wraps the error of what was being done; an I/O cut short by ctx
// is reported as ErrTimeout (deadline) or ctx's error (cancellation)
// rather than as the socket's deadline error.
func ioErr(ctx context.Context, what string, err error) error {
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		err = ctx.Err()
	case ctx.Err() != nil, errors.Is(err, os.ErrDeadlineExceeded):
		// The socket's deadline is the context's: it may fire a moment
		// before the context's own timer.
		err = ErrTimeout
	}
	return fmt.Errorf("%s: %w", what, err)
}

// closeOnDone makes conn's pending reads and writes fail when ctx ends,
// through its deadline: the probe's goroutine returns at once. The
// returned stop must be called; it leaves no goroutine running.
func closeOnDone(ctx context.Context, conn net.Conn) (stop func() bool) {
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d)
	}
	return context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
}

// TCP is a TCP connect probe: it passes when a connection to Addr is
// established, and closes it at once.
type TCP struct {
	Addr string // host:port
}

// Probe connects once.
func (p TCP) Probe(ctx context.Context) Result {
	start := time.Now()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", p.Addr)
	r := Result{Start: start, RTT: time.Since(start)}
	if err != nil {
		r.Err = ioErr(ctx, "connect "+p.Addr, err)
		return r
	}
	_ = conn.Close()
	return r
}
