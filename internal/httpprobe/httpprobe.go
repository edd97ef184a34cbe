// Package httpprobe serves the liveness and readiness probes that every
// HTTP listener of anycastd answers (node admin, metrics, control API):
//
//	GET /healthz  200 "ok": the process is alive and serves HTTP
//	GET /readyz   200 "ready", or 503 "not ready: REASON": the role does
//	              its job (node: zones loaded and DNS answering; control
//	              plane: store open and every listener up)
//
// They take no authentication and say nothing secret, so that a load
// balancer, systemd or Kubernetes can call them. HEAD is allowed too.
package httpprobe

import (
	"net/http"
)

// Paths of the probes.
const (
	PathHealthz = "/healthz"
	PathReadyz  = "/readyz"
)

// ReadyFunc reports whether the role is ready: nil, or why not.
type ReadyFunc func() error

// Wrap serves the probes and hands every other request to next. ready may
// be nil: then /readyz is always ready.
func Wrap(next http.Handler, ready ReadyFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !Serve(w, r, ready) {
			next.ServeHTTP(w, r)
		}
	})
}

// Serve answers r when it asks for a probe and reports whether it did.
func Serve(w http.ResponseWriter, r *http.Request, ready ReadyFunc) bool {
	switch r.URL.Path {
	case PathHealthz, PathReadyz:
	default:
		return false
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method "+r.Method+" not allowed, use GET", http.StatusMethodNotAllowed)
		return true
	}
	if r.URL.Path == PathHealthz {
		_, _ = w.Write([]byte("ok\n"))
		return true
	}
	if ready != nil {
		if err := ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: " + err.Error() + "\n"))
			return true
		}
	}
	_, _ = w.Write([]byte("ready\n"))
	return true
}
