package admin_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/anycastdns/anycastdns/internal/admin"
)

// loadBackend is a node that measures its load.
type loadBackend struct {
	*fakeBackend
	load admin.Load
	err  error
}

func (l *loadBackend) Load() (admin.Load, error) { return l.load, l.err }

func sampleLoad() admin.Load {
	return admin.Load{
		Node: "ams1", Time: t0, Interval: 1500 * time.Millisecond, QueriesPerSecond: 1520.5, TCPConnections: 12, CPU: 0.35,
		DroppedPerSecond: 0.5, RRLDroppedPerSecond: 3, RRLSlippedPerSecond: 1.5, TCPEvictedPerSecond: 0.25, TCPRefusedPerSecond: 0.125,
	}
}

func TestLoadGolden(t *testing.T) {
	h := admin.Handler(&loadBackend{fakeBackend: newFake(), load: sampleLoad()}, nil)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8053/v1/load", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("code %d, body %s", rec.Code, rec.Body)
	}
	golden(t, "load.json", rec.Body.Bytes())
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		b       admin.Backend
		method  string
		host    string
		code    int
		wantMsg string
	}{
		{"not a loader", newFake(), http.MethodGet, "127.0.0.1:8053", http.StatusNotFound, "no such endpoint /v1/load"},
		{"not yet measured", &loadBackend{fakeBackend: newFake(), err: fmt.Errorf("too early: %w", admin.ErrUnavailable)}, http.MethodGet, "127.0.0.1:8053", http.StatusServiceUnavailable, "load: too early"},
		{"failed", &loadBackend{fakeBackend: newFake(), err: errors.New("broken")}, http.MethodGet, "127.0.0.1:8053", http.StatusInternalServerError, "load: broken"},
		{"post", &loadBackend{fakeBackend: newFake()}, http.MethodPost, "127.0.0.1:8053", http.StatusMethodNotAllowed, "use GET"},
		{"dns name host", &loadBackend{fakeBackend: newFake()}, http.MethodGet, "evil.example:8053", http.StatusForbidden, "not a local address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			admin.Handler(tt.b, nil).ServeHTTP(rec, httptest.NewRequest(tt.method, "http://"+tt.host+"/v1/load", nil))
			if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.wantMsg) {
				t.Errorf("code %d body %s, want %d with %q", rec.Code, rec.Body, tt.code, tt.wantMsg)
			}
		})
	}
}

// TestLoadHandler: the load alone, for the metrics listener: a monitor on
// another host reaches it by IP address; nothing else is served.
func TestLoadHandler(t *testing.T) {
	h := admin.LoadHandler(&loadBackend{fakeBackend: newFake(), load: sampleLoad()})
	for _, tt := range []struct {
		url  string
		code int
	}{
		{"http://192.0.2.10:9153/v1/load", http.StatusOK},
		{"http://192.0.2.10:9153/v1/status", http.StatusNotFound},
		{"http://evil.example:9153/v1/load", http.StatusForbidden},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.url, nil))
		if rec.Code != tt.code {
			t.Errorf("GET %s: code %d, want %d (%s)", tt.url, rec.Code, tt.code, rec.Body)
		}
	}
}

func TestClientLoad(t *testing.T) {
	b := &loadBackend{fakeBackend: newFake(), load: sampleLoad()}
	srv := httptest.NewServer(admin.Handler(b, nil))
	defer srv.Close()
	c := admin.NewClient(srv.URL, srv.Client())
	got, err := c.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sampleLoad(), got); diff != "" {
		t.Errorf("load (-want +got):\n%s", diff)
	}
	b.err = fmt.Errorf("too early: %w", admin.ErrUnavailable)
	if _, err := c.Load(t.Context()); !errors.Is(err, admin.ErrUnavailable) {
		t.Errorf("Load while unavailable: %v, want ErrUnavailable", err)
	}
}

func TestLoadJSONRefusesNegative(t *testing.T) {
	for _, body := range []string{
		`{"queries_per_second": -1}`,
		`{"cpu": -0.5}`,
		`{"tcp_connections": -3}`,
		`{"interval_seconds": -1}`,
	} {
		var l admin.Load
		if err := l.UnmarshalJSON([]byte(body)); err == nil {
			t.Errorf("%s: decoded as %+v, want an error", body, l)
		}
	}
}
