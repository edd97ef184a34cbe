package admin_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/anycastdns/anycastdns/internal/admin"
)

// readyFake is a backend that answers /readyz through Readiness.
type readyFake struct {
	*fakeBackend
	err error
}

func (r *readyFake) Readiness() error { return r.err }

func TestProbes(t *testing.T) {
	notReady := newFake()
	notReady.st.Ready = false
	for _, tc := range []struct {
		name string
		b    admin.Backend
		path string
		code int
		body string
	}{
		{"liveness", newFake(), "/healthz", 200, "ok\n"},
		{"liveness while loading", notReady, "/healthz", 200, "ok\n"},
		{"ready from Status", newFake(), "/readyz", 200, "ready\n"},
		{"not ready from Status", notReady, "/readyz", 503, "not ready: the node is not ready\n"},
		{"Readiness wins", &readyFake{newFake(), errors.New("zones loading")}, "/readyz", 503, "not ready: zones loading\n"},
		{"Readiness ready", &readyFake{notReady, nil}, "/readyz", 200, "ready\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(admin.Handler(tc.b, nil))
			defer srv.Close()
			resp, err := http.Get(srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code || string(b) != tc.body {
				t.Errorf("GET %s = %d %q, want %d %q", tc.path, resp.StatusCode, b, tc.code, tc.body)
			}
		})
	}
}
