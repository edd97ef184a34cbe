package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/anycastdns/anycastdns/internal/httpprobe"
	"github.com/anycastdns/anycastdns/internal/httpserve"
)

// Paths of the API.
const (
	PathStatus  = "/v1/status"
	PathDrain   = "/v1/drain"
	PathUndrain = "/v1/undrain"
)

type handler struct {
	b      Backend
	logger *slog.Logger
	cop    *http.CrossOriginProtection
	routes map[string][]route // by path, one per method
	ready  httpprobe.ReadyFunc
}

// Readier is a Backend that says cheaply whether the node is ready, for
// /readyz; without it /readyz asks Status.
type Readier interface {
	Readiness() error
}

type route struct {
	method string
	serve  func(w http.ResponseWriter, r *http.Request)
}

// Handler serves the admin API of b. Only GET /v1/status, POST /v1/drain,
// POST /v1/undrain, GET /v1/load (when b is a Loader), POST and DELETE
// /v1/level (when b is a Leveler) and the probes GET /healthz and /readyz
// (package httpprobe) exist; other paths are 404 and other methods 405. Requests
// whose Host is not an IP address or localhost are refused (403), against
// DNS rebinding, and so are cross-origin requests from browsers.
func Handler(b Backend, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{b: b, logger: logger.With("component", "admin"), cop: http.NewCrossOriginProtection()}
	h.ready = func() error {
		if !b.Status().Ready {
			return errors.New("the node is not ready")
		}
		return nil
	}
	if r, ok := b.(Readier); ok {
		h.ready = r.Readiness
	}
	h.routes = map[string][]route{
		PathStatus:  {{http.MethodGet, h.status}},
		PathDrain:   {{http.MethodPost, h.action("drain", b.Drain)}},
		PathUndrain: {{http.MethodPost, h.action("undrain", b.Undrain)}},
	}
	if l, ok := b.(Loader); ok {
		h.routes[PathLoad] = []route{{http.MethodGet, h.load(l)}}
	}
	if l, ok := b.(Leveler); ok {
		h.routes[PathLevel] = []route{{http.MethodPost, h.pin(l)}, {http.MethodDelete, h.unpin(l)}}
	}
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !localHost(r.Host) {
		writeError(w, http.StatusForbidden, fmt.Sprintf("host %q is not a local address", r.Host))
		return
	}
	if h.ready != nil && httpprobe.Serve(w, r, h.ready) {
		return
	}
	rts, ok := h.routes[r.URL.Path]
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint %s", r.URL.Path))
		return
	}
	i := slices.IndexFunc(rts, func(rt route) bool { return rt.method == r.Method })
	if i < 0 {
		methods := make([]string, len(rts))
		for j, rt := range rts {
			methods[j] = rt.method
		}
		w.Header().Set("Allow", strings.Join(methods, ", "))
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s, use %s", r.Method, r.URL.Path, strings.Join(methods, " or ")))
		return
	}
	rt := rts[i]
	if err := h.cop.Check(r); err != nil {
		writeError(w, http.StatusForbidden, err.Error())
		return
	}
	rt.serve(w, r)
}

func (h *handler) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, h.b.Status())
}

// action serves an operator action and answers with the status after it;
// attrs are logged with it.
func (h *handler) action(name string, do func(context.Context) error, attrs ...any) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if err := do(r.Context()); err != nil {
			code := statusCode(err)
			level := slog.LevelWarn
			if code >= http.StatusInternalServerError {
				level = slog.LevelError
			}
			h.logger.Log(r.Context(), level, "operator "+name+" failed", append(attrs, "remote_addr", r.RemoteAddr, "error", err)...)
			writeError(w, code, err.Error())
			return
		}
		h.logger.Info("operator "+name, append(attrs, "remote_addr", r.RemoteAddr, "took", time.Since(start))...)
		writeJSON(w, http.StatusOK, h.b.Status())
	}
}

// statusCode maps a backend error to an HTTP status code.
func statusCode(err error) int {
	switch {
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrUnavailable), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// localHost reports whether a Host header names this machine the way a
// local operator does: an IP address, localhost, or nothing (HTTP/1.0).
// A DNS name could be an attacker's that resolves to 127.0.0.1.
func localHost(host string) bool {
	if host == "" {
		return true
	}
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	return strings.EqualFold(host, "localhost")
}

type errorJSON struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorJSON{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(errorJSON{Error: "encode response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// ErrNotLoopback is returned by Serve for a listener on an address other
// than a loopback one: the API has no authentication.
var ErrNotLoopback = errors.New("admin endpoint must listen on a loopback address")

// Serve serves Handler(b, logger) on ln until ctx is done, then shuts down
// gracefully. It takes ownership of ln and refuses one that is not on a
// loopback address.
func Serve(ctx context.Context, ln net.Listener, b Backend, logger *slog.Logger) error {
	ap, err := netip.ParseAddrPort(ln.Addr().String())
	if err != nil || !ap.Addr().IsLoopback() {
		_ = ln.Close()
		return fmt.Errorf("admin on %s: %w", ln.Addr(), ErrNotLoopback)
	}
	return httpserve.Serve(ctx, ln, Handler(b, logger), logger, httpserve.Options{
		Component: "admin", ReadTimeout: 10 * time.Second,
	})
}
