package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/anycastdns/anycastdns/internal/admin"
	"github.com/anycastdns/anycastdns/internal/fleet/level"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

// fakeBackend is a node: drain withdraws the prefixes, undrain announces
// them again when healthy.
type fakeBackend struct {
	mu         sync.Mutex
	st         admin.Status
	prefixes   []netip.Prefix
	drainErr   error
	undrainErr error
	calls      []string
}

func (f *fakeBackend) Status() admin.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeBackend) Drain(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "drain")
	if f.drainErr != nil {
		return f.drainErr
	}
	f.st.Drained = true
	f.st.Announced = nil
	return nil
}

func (f *fakeBackend) Undrain(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "undrain")
	if f.undrainErr != nil {
		return f.undrainErr
	}
	f.st.Drained = false
	if f.st.Healthy {
		f.st.Announced = f.prefixes
	}
	return nil
}

func (f *fakeBackend) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

var t0 = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func sampleStatus() admin.Status {
	return admin.Status{
		Node: "ams1", Version: "v0.4.0", Uptime: 26*time.Hour + 3*time.Minute + 4*time.Second + 500*time.Millisecond,
		Ready: true, Healthy: true,
		Checks: []admin.Check{
			{Name: "self-query 192.0.2.53", OK: true, Last: t0.Add(-400 * time.Millisecond), Latency: 1250 * time.Microsecond},
			{Name: "zone freshness", OK: false, Error: "example.net. expired 2m0s ago", Last: t0.Add(-2 * time.Second), Latency: 3 * time.Microsecond},
			{Name: "not run yet"},
		},
		Sessions: []admin.Session{
			{Peer: netip.MustParseAddr("10.0.0.1"), ASN: 64500, State: "established", Uptime: 25 * time.Hour, BFD: "up"},
			{Peer: netip.MustParseAddr("2001:db8::1"), ASN: 64501, State: "active"},
		},
		Announced: []netip.Prefix{netip.MustParsePrefix("192.0.2.53/32"), netip.MustParsePrefix("2001:db8:53::/48")},
		Level: &admin.Level{
			Level: level.Shed2, Source: admin.SourceOperator, Reason: "rack upgrade",
			Pin:     &admin.LevelSetting{Level: level.Shed2, Reason: "rack upgrade", Since: t0.Add(-5 * time.Minute)},
			Control: &admin.LevelSetting{Level: level.Shed1, Reason: "load 1200 q/s above the high-water mark 1000", Since: t0.Add(-time.Minute), Until: t0.Add(2 * time.Minute)},
		},
		Zones: []admin.Zone{
			{Name: "example.com.", Serial: 2026031401, Records: 42, Source: "/var/lib/anycastd/example.com.zone"},
			{Name: "example.net.", Serial: 7, Records: 3, Source: "axfr 192.0.2.1:53"},
		},
	}
}

func newFake() *fakeBackend {
	st := sampleStatus()
	return &fakeBackend{st: st, prefixes: st.Announced}
}

var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmpopts.EquateEmpty(),
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	testkit.Golden(t, filepath.Join("testdata", name), got)
}

func TestStatusGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   admin.Status
	}{
		{"status.json", sampleStatus()},
		// A node without BGP, checks or zones still gives every list, empty.
		{"status_empty.json", admin.Status{Node: "lab-pop1", Version: "dev"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := admin.Handler(&fakeBackend{st: tc.st}, nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1:8053/v1/status", nil))
			if rec.Code != http.StatusOK {
				t.Fatalf("code %d, body %s", rec.Code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			golden(t, tc.name, rec.Body.Bytes())
		})
	}
}

func TestClientStatusRoundTrip(t *testing.T) {
	f := newFake()
	srv := httptest.NewServer(admin.Handler(f, nil))
	defer srv.Close()
	c := admin.NewClient(strings.TrimPrefix(srv.URL, "http://"), srv.Client())
	got, err := c.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sampleStatus(), got, cmpOpts); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
}

func TestDrainUndrain(t *testing.T) {
	f := newFake()
	srv := httptest.NewServer(admin.Handler(f, nil))
	defer srv.Close()
	c := admin.NewClient(srv.URL, srv.Client()) // a URL works as well as host:port

	st, err := c.Drain(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !st.Drained || len(st.Announced) != 0 {
		t.Errorf("after drain: drained %v, announced %v; want drained, nothing announced", st.Drained, st.Announced)
	}
	st, err = c.Undrain(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sampleStatus(), st, cmpOpts); diff != "" {
		t.Errorf("after undrain (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"drain", "undrain"}, f.Calls()); diff != "" {
		t.Errorf("backend calls (-want +got):\n%s", diff)
	}
}

func TestHandlerErrors(t *testing.T) {
	for _, tc := range []struct {
		name       string
		method     string
		url        string
		header     map[string]string
		drainErr   error
		wantCode   int
		wantError  string
		wantAllow  string
		wantCalled bool
	}{
		{name: "unknown path", method: "GET", url: "/v1/zones", wantCode: 404, wantError: "no such endpoint /v1/zones"},
		{name: "root", method: "GET", url: "/", wantCode: 404, wantError: "no such endpoint /"},
		{name: "post status", method: "POST", url: "/v1/status", wantCode: 405, wantAllow: "GET",
			wantError: "method POST not allowed on /v1/status, use GET"},
		{name: "head status", method: "HEAD", url: "/v1/status", wantCode: 405, wantAllow: "GET"},
		{name: "get drain", method: "GET", url: "/v1/drain", wantCode: 405, wantAllow: "POST",
			wantError: "method GET not allowed on /v1/drain, use POST"},
		{name: "delete undrain", method: "DELETE", url: "/v1/undrain", wantCode: 405, wantAllow: "POST",
			wantError: "method DELETE not allowed on /v1/undrain, use POST"},
		{name: "rebinding host", method: "GET", url: "http://evil.example:8053/v1/status", wantCode: 403,
			wantError: `host "evil.example:8053" is not a local address`},
		{name: "rebinding host on drain", method: "POST", url: "http://evil.example/v1/drain", wantCode: 403,
			wantError: `host "evil.example" is not a local address`},
		{name: "cross-site browser post", method: "POST", url: "/v1/drain",
			header: map[string]string{"Sec-Fetch-Site": "cross-site"}, wantCode: 403},
		{name: "cross-origin post", method: "POST", url: "/v1/drain",
			header: map[string]string{"Origin": "http://evil.example"}, wantCode: 403},
		{name: "conflict", method: "POST", url: "/v1/drain", drainErr: fmt.Errorf("no bgp configured: %w", admin.ErrConflict),
			wantCode: 409, wantError: "no bgp configured: conflict", wantCalled: true},
		{name: "unavailable", method: "POST", url: "/v1/drain", drainErr: fmt.Errorf("shutting down: %w", admin.ErrUnavailable),
			wantCode: 503, wantError: "shutting down: unavailable", wantCalled: true},
		{name: "timeout", method: "POST", url: "/v1/drain", drainErr: fmt.Errorf("withdraw: %w", context.DeadlineExceeded),
			wantCode: 503, wantError: "withdraw: context deadline exceeded", wantCalled: true},
		{name: "failure", method: "POST", url: "/v1/drain", drainErr: errors.New("withdraw 192.0.2.53/32: bgp server stopped"),
			wantCode: 500, wantError: "withdraw 192.0.2.53/32: bgp server stopped", wantCalled: true},
		{name: "curl post", method: "POST", url: "http://localhost:8053/v1/drain", wantCode: 200, wantCalled: true},
		{name: "ipv6 host", method: "POST", url: "http://[::1]:8053/v1/drain", wantCode: 200, wantCalled: true},
		{name: "same-origin browser post", method: "POST", url: "/v1/drain",
			header: map[string]string{"Sec-Fetch-Site": "same-origin"}, wantCode: 200, wantCalled: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			f.drainErr = tc.drainErr
			url := tc.url
			if strings.HasPrefix(url, "/") {
				url = "http://127.0.0.1:8053" + url
			}
			req := httptest.NewRequest(tc.method, url, nil)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			admin.Handler(f, nil).ServeHTTP(rec, req)
			if rec.Code != tc.wantCode {
				t.Errorf("code %d, want %d (body %s)", rec.Code, tc.wantCode, rec.Body)
			}
			if got := rec.Header().Get("Allow"); got != tc.wantAllow {
				t.Errorf("Allow %q, want %q", got, tc.wantAllow)
			}
			if called := len(f.Calls()) > 0; called != tc.wantCalled {
				t.Errorf("backend called %v, want %v", called, tc.wantCalled)
			}
			if tc.wantCode == 200 {
				return
			}
			var body struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("error body %q is not JSON: %v", rec.Body, err)
			}
			if body.Error == "" || (tc.wantError != "" && body.Error != tc.wantError) {
				t.Errorf("error %q, want %q", body.Error, tc.wantError)
			}
		})
	}
}

func TestClientErrors(t *testing.T) {
	f := newFake()
	f.drainErr = fmt.Errorf("no bgp configured: %w", admin.ErrConflict)
	f.undrainErr = fmt.Errorf("stopping: %w", admin.ErrUnavailable)
	srv := httptest.NewServer(admin.Handler(f, nil))
	defer srv.Close()
	c := admin.NewClient(srv.Listener.Addr().String(), nil)

	_, err := c.Drain(t.Context())
	if !errors.Is(err, admin.ErrConflict) || errors.Is(err, admin.ErrUnavailable) {
		t.Errorf("drain: %v, want ErrConflict only", err)
	}
	if want := "drain " + srv.URL + ": no bgp configured: conflict (http 409)"; err == nil || err.Error() != want {
		t.Errorf("drain: %v, want %q", err, want)
	}
	_, err = c.Undrain(t.Context())
	if !errors.Is(err, admin.ErrUnavailable) {
		t.Errorf("undrain: %v, want ErrUnavailable", err)
	}
	var ae *admin.Error
	if !errors.As(err, &ae) || ae.StatusCode != 503 || ae.Op != "undrain" {
		t.Errorf("undrain: %#v, want *admin.Error with 503", err)
	}

	for _, tc := range []struct {
		name    string
		code    int
		body    string
		wantErr string
	}{
		{"proxy page", 502, "Bad Gateway\n<html>...", ": Bad Gateway (http 502)"},
		{"empty error", 500, "", ": internal server error (http 500)"},
		{"not json", 200, "<html>", ": decode response: "},
		{"negative uptime", 200, `{"uptime_seconds": -1}`, "uptime_seconds: out of range"},
		{"bad prefix", 200, `{"announced": ["192.0.2.0/33"]}`, "decode response: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tc.code)
				io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			_, err := admin.NewClient(srv.URL, srv.Client()).Status(t.Context())
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}

	t.Run("unknown fields", func(t *testing.T) {
		// A newer node may add fields; an older client keeps working.
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, `{"node": "ams1", "role": "node", "checks": [{"name": "x", "ok": true, "flaps": 2}]}`)
		}))
		defer srv.Close()
		st, err := admin.NewClient(srv.URL, srv.Client()).Status(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		want := admin.Status{Node: "ams1", Checks: []admin.Check{{Name: "x", OK: true}}}
		if diff := cmp.Diff(want, st, cmpOpts); diff != "" {
			t.Errorf("status (-want +got):\n%s", diff)
		}
	})

	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		_, err = admin.NewClient(addr, nil).Status(t.Context())
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("error %v, want ECONNREFUSED", err)
		}
	})
}

func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- admin.Serve(ctx, ln, newFake(), nil) }()

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	st, err := admin.NewClient(ln.Addr().String(), &http.Client{Transport: tr}).Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Node != "ams1" {
		t.Errorf("node %q", st.Node)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("listener still accepts after Serve returned")
	}
}

// publicListener claims a non-loopback address; it never accepts.
type publicListener struct{ closed bool }

func (l *publicListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (l *publicListener) Close() error              { l.closed = true; return nil }
func (l *publicListener) Addr() net.Addr {
	return &net.TCPAddr{IP: net.ParseIP("192.0.2.10"), Port: 8053}
}

func TestServeRefusesPublicAddress(t *testing.T) {
	ln := &publicListener{}
	err := admin.Serve(t.Context(), ln, newFake(), nil)
	if !errors.Is(err, admin.ErrNotLoopback) {
		t.Errorf("error %v, want ErrNotLoopback", err)
	}
	if !ln.closed {
		t.Error("listener not closed")
	}
}

func TestJSONRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   admin.Status
	}{
		{"sample", sampleStatus()},
		{"zero", admin.Status{}},
		{"nanoseconds", admin.Status{Uptime: 49*24*time.Hour + time.Nanosecond, Checks: []admin.Check{{Latency: 1}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.st)
			if err != nil {
				t.Fatal(err)
			}
			var got admin.Status
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.st, got, cmpOpts); diff != "" {
				t.Errorf("round trip of %s (-want +got):\n%s", b, diff)
			}
		})
	}
}
