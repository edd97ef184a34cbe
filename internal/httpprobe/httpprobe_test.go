package httpprobe_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/anycastdns/anycastdns/internal/httpprobe"
)

func TestWrap(t *testing.T) {
	var notReady error
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "next", http.StatusTeapot)
	})
	h := httpprobe.Wrap(next, func() error { return notReady })
	tests := []struct {
		method, path string
		notReady     error
		code         int
		body         string
	}{
		{"GET", "/healthz", nil, 200, "ok\n"},
		{"GET", "/healthz", errors.New("loading"), 200, "ok\n"}, // liveness does not depend on readiness
		{"HEAD", "/healthz", nil, 200, "ok\n"},                  // the server drops the body of a HEAD answer
		{"GET", "/readyz", nil, 200, "ready\n"},
		{"GET", "/readyz", errors.New("zones loading"), 503, "not ready: zones loading\n"},
		{"POST", "/readyz", nil, 405, "method POST not allowed, use GET\n"},
		{"GET", "/readyz/x", nil, 418, "next\n"},
		{"GET", "/v1/zones", nil, 418, "next\n"},
	}
	for _, tt := range tests {
		notReady = tt.notReady
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
		if rec.Code != tt.code || rec.Body.String() != tt.body {
			t.Errorf("%s %s (not ready: %v) = %d %q, want %d %q", tt.method, tt.path, tt.notReady, rec.Code, rec.Body.String(), tt.code, tt.body)
		}
	}
}

func TestWrapNilReady(t *testing.T) {
	rec := httptest.NewRecorder()
	httpprobe.Wrap(http.NotFoundHandler(), nil).ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 200 {
		t.Errorf("/readyz without a ReadyFunc = %d, want 200", rec.Code)
	}
}
