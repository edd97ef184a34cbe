package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// dnsServer serves h over UDP and TCP on one 127.0.0.1 port until the
// test ends.
func dnsServer(t *testing.T, h dns.HandlerFunc) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		_ = pc.Close()
		t.Fatal(err)
	}
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: ln, Handler: h}} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		done := make(chan struct{})
		go func() { defer close(done); _ = s.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = s.Shutdown(); <-done })
	}
	return pc.LocalAddr().String()
}

const canary = "canary.example."

func soa(name string) dns.RR {
	rr, err := dns.NewRR(name + " 60 IN SOA ns. host. 2024010101 3600 600 86400 60")
	if err != nil {
		panic(err)
	}
	return rr
}

// answer builds the good answer to q; edit changes it.
func answer(edit func(q, m *dns.Msg)) dns.HandlerFunc {
	return func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		m.Answer = []dns.RR{soa(q.Question[0].Name)}
		if edit != nil {
			edit(q, m)
		}
		_ = w.WriteMsg(m)
	}
}

func TestDNS(t *testing.T) {
	silent := dns.HandlerFunc(func(dns.ResponseWriter, *dns.Msg) {})
	tests := []struct {
		name    string
		h       dns.HandlerFunc
		nets    []string
		zone    string
		timeout time.Duration
		wantErr string // "" = pass
	}{
		{name: "good", h: answer(nil), nets: []string{"udp", "tcp"}},
		{name: "zone without the dot, other case", zone: "CANARY.example", h: answer(nil), nets: []string{"udp", "tcp"}},
		{name: "servfail", h: answer(func(_, m *dns.Msg) { m.Rcode = dns.RcodeServerFailure; m.Answer = nil }), nets: []string{"udp", "tcp"}, wantErr: "rcode SERVFAIL, want NOERROR"},
		{name: "refused", h: answer(func(_, m *dns.Msg) { m.Rcode = dns.RcodeRefused }), nets: []string{"udp"}, wantErr: "rcode REFUSED"},
		{name: "not authoritative", h: answer(func(_, m *dns.Msg) { m.Authoritative = false }), nets: []string{"udp", "tcp"}, wantErr: "AA bit clear"},
		{name: "no soa", h: answer(func(_, m *dns.Msg) { m.Answer = nil }), nets: []string{"udp", "tcp"}, wantErr: "no SOA of the zone"},
		{name: "soa of another zone", h: answer(func(_, m *dns.Msg) { m.Answer = []dns.RR{soa("other.example.")} }), nets: []string{"udp", "tcp"}, wantErr: "no SOA of the zone"},
		{name: "tcp answer with another id", h: answer(func(_, m *dns.Msg) { m.Id++ }), nets: []string{"tcp"}, wantErr: "does not match the query"},
		{name: "udp answers with another id are skipped until the deadline", h: answer(func(_, m *dns.Msg) { m.Id++ }), nets: []string{"udp"}, timeout: 200 * time.Millisecond, wantErr: "timed out"},
		{name: "udp skips a wrong answer and takes the right one", nets: []string{"udp"}, h: func(w dns.ResponseWriter, q *dns.Msg) {
			bad := new(dns.Msg)
			bad.SetReply(q)
			bad.Id++
			_ = w.WriteMsg(bad)
			_, _ = w.Write([]byte("garbage"))
			answer(nil)(w, q)
		}},
		{name: "silent", h: silent, nets: []string{"udp", "tcp"}, timeout: 200 * time.Millisecond, wantErr: "timed out"},
		{name: "invalid zone", zone: "a..b", h: answer(nil), nets: []string{"udp"}, wantErr: "invalid zone name"},
	}
	for _, tt := range tests {
		addr := ""
		for _, nw := range tt.nets {
			t.Run(tt.name+"/"+nw, func(t *testing.T) {
				if addr == "" {
					addr = dnsServer(t, tt.h)
				}
				zone := canary
				if tt.zone != "" {
					zone = tt.zone
				}
				timeout := tt.timeout
				if timeout == 0 {
					timeout = 5 * time.Second
				}
				ctx, cancel := context.WithTimeout(t.Context(), timeout)
				defer cancel()
				r := DNS{Addr: addr, Net: nw, Zone: zone}.Probe(ctx)
				checkResult(t, r, tt.wantErr, timeout)
				if tt.wantErr == "" && r.Serial != 2024010101 {
					t.Errorf("serial %d, want 2024010101", r.Serial)
				}
				if tt.wantErr == "timed out" && !errors.Is(r.Err, ErrTimeout) {
					t.Errorf("errors.Is(%v, ErrTimeout) = false", r.Err)
				}
			})
			addr = "" // one server per subtest: its cleanup closes it
		}
	}
}

func checkResult(t *testing.T, r Result, wantErr string, timeout time.Duration) {
	t.Helper()
	switch {
	case wantErr == "" && r.Err != nil:
		t.Fatalf("probe failed: %v", r.Err)
	case wantErr != "" && r.Err == nil:
		t.Fatalf("probe passed, want an error with %q", wantErr)
	case wantErr != "" && !strings.Contains(r.Err.Error(), wantErr):
		t.Fatalf("error %q, want one with %q", r.Err, wantErr)
	}
	if r.OK() != (wantErr == "") {
		t.Errorf("OK() = %v with error %v", r.OK(), r.Err)
	}
	if r.Start.IsZero() || r.RTT < 0 || r.RTT > timeout+time.Second {
		t.Errorf("start %v rtt %v, want a start and 0 <= rtt <= %v", r.Start, r.RTT, timeout+time.Second)
	}
}

// TestDNSCancel: cancelling the context ends a probe waiting on a silent
// server at once, with the cancellation as its error.
func TestDNSCancel(t *testing.T) {
	addr := dnsServer(t, func(dns.ResponseWriter, *dns.Msg) {})
	for _, nw := range []string{"udp", "tcp"} {
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(50*time.Millisecond, cancel)
		start := time.Now()
		r := DNS{Addr: addr, Net: nw, Zone: canary}.Probe(ctx)
		if !errors.Is(r.Err, context.Canceled) {
			t.Errorf("%s: error %v, want context.Canceled", nw, r.Err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: cancelled probe took %v", nw, d)
		}
	}
}

func TestDNSRefusedConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	r := DNS{Addr: addr, Net: "tcp", Zone: canary}.Probe(t.Context())
	checkResult(t, r, "connection refused", time.Second)
	r = DNS{Addr: addr, Net: "sctp", Zone: canary}.Probe(t.Context())
	checkResult(t, r, `unknown transport "sctp"`, time.Second)
}

func TestTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	open := ln.Addr().String()
	closedLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := closedLn.Addr().String()
	_ = closedLn.Close()
	defer func() { _ = ln.Close() }()
	tests := []struct {
		name, addr, wantErr string
	}{
		{"open", open, ""},
		{"closed", closed, "connection refused"},
		{"bad address", "127.0.0.1", "missing port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			r := TCP{Addr: tt.addr}.Probe(ctx)
			checkResult(t, r, tt.wantErr, 5*time.Second)
			if r.Err != nil && !strings.Contains(r.Err.Error(), "connect "+tt.addr) {
				t.Errorf("error %q does not name the address", r.Err)
			}
		})
	}
}

func TestHTTP(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("status: ready\n")) })
	mux.HandleFunc("/down", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "not ready", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	plain := httptest.NewServer(mux)
	defer plain.Close()
	secure := httptest.NewTLSServer(mux)
	defer secure.Close()
	trusted := x509.NewCertPool()
	trusted.AddCert(secure.Certificate())
	trust := &tls.Config{RootCAs: trusted}

	tests := []struct {
		name    string
		p       HTTP
		timeout time.Duration
		status  int
		wantErr string
	}{
		{name: "ok", p: HTTP{URL: plain.URL + "/ok"}, status: 200},
		{name: "body matches", p: HTTP{URL: plain.URL + "/ok", Body: regexp.MustCompile(`^status: ready`)}, status: 200},
		{name: "body differs", p: HTTP{URL: plain.URL + "/ok", Body: regexp.MustCompile(`draining`)}, status: 200, wantErr: "does not match"},
		{name: "503", p: HTTP{URL: plain.URL + "/down"}, status: 503, wantErr: "status 503, want 200"},
		{name: "503 expected", p: HTTP{URL: plain.URL + "/down", Status: 503}, status: 503},
		{name: "redirect not followed", p: HTTP{URL: plain.URL + "/redirect"}, status: 302, wantErr: "status 302"},
		{name: "slow", p: HTTP{URL: plain.URL + "/slow"}, timeout: 200 * time.Millisecond, wantErr: "timed out"},
		{name: "https trusted", p: HTTP{URL: secure.URL + "/ok", TLS: trust}, status: 200},
		{name: "https untrusted", p: HTTP{URL: secure.URL + "/ok"}, wantErr: "certificate"},
		{name: "https skip verify is ignored", p: HTTP{URL: secure.URL + "/ok", TLS: &tls.Config{InsecureSkipVerify: true}}, wantErr: "certificate"}, //nolint:gosec // the probe must turn it off
		{name: "https wrong name", p: HTTP{URL: secure.URL + "/ok", TLS: &tls.Config{RootCAs: trusted, ServerName: "other.test"}}, wantErr: "certificate"},
		{name: "not a url", p: HTTP{URL: "ftp://x/"}, wantErr: "not an http or https URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			ctx, cancel := context.WithTimeout(t.Context(), timeout)
			defer cancel()
			r := tt.p.Probe(ctx)
			checkResult(t, r, tt.wantErr, timeout)
			if r.Status != tt.status {
				t.Errorf("status %d, want %d", r.Status, tt.status)
			}
		})
	}
}
