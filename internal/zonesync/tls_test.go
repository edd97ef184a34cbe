package zonesync

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

// tlsPrimary runs a test primary behind a TLS listener with a certificate
// of ca for xfr.test, negotiating ALPN "dot"; clientCAs, when set, makes
// it want a client certificate from them.
func tlsPrimary(t *testing.T, ca *testkit.CA, clientCAs *testkit.CA) (*primary, netip.AddrPort) {
	t.Helper()
	certFile, keyFile, _ := ca.Issue(t, "primary", "xfr.test")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"dot"}, MinVersion: tls.VersionTLS12}
	if clientCAs != nil {
		conf.ClientCAs, conf.ClientAuth = clientCAs.Pool, tls.RequireAndVerifyClientCert
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := newPrimary(t, tls.NewListener(l, conf), makeZone(t, 1), "")
	return p, mustAddrPort(p.addr)
}

// runTLSSecondary runs a Manager for origin from one primary at addr over
// TLS with conf, logging into log.
func runTLSSecondary(t *testing.T, addr netip.AddrPort, conf *tls.Config, log *recordLog) (*Manager, chan struct{}) {
	t.Helper()
	m, err := New(Config{
		DataDir: t.TempDir(), Keys: testKeys(),
		Zones:  []Zone{{Name: origin, Primaries: []Primary{{Addr: addr, Key: testKey, TLS: conf}}}},
		Timers: Timers{Initial: 50 * time.Millisecond, Jitter: -1},
	}, slog.New(log))
	if err != nil {
		t.Fatal(err)
	}
	changed := make(chan struct{}, 100)
	m.OnChange(func() { changed <- struct{}{} })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return m, changed
}

// TestXoTPrimary: a primary with TLS is transferred from over TLS alone
// (RFC 9103), signed as without it: AXFR at start, then NOTIFY and IXFR
// over TLS (none over UDP, which would go in clear).
func TestXoTPrimary(t *testing.T) {
	ca := testkit.NewCA(t, t.TempDir(), "ca")
	p, addr := tlsPrimary(t, ca, nil)
	m, changed := runTLSSecondary(t, addr, &tls.Config{RootCAs: ca.Pool, ServerName: "xfr.test", MinVersion: tls.VersionTLS12}, &recordLog{})
	waitSerial(t, m, changed, 1)
	p.set(makeZone(t, 2, "tls.example.com. 300 IN A 192.0.2.223"))
	notifyOK(t, m, addr)
	waitSerial(t, m, changed, 2)
	if diff := cmp.Diff(dump(t, p.current(origin)), dump(t, served(m, origin))); diff != "" {
		t.Errorf("served differs from the primary (-primary +served):\n%s", diff)
	}
	if p.ixfrs.Load() != 1 {
		t.Errorf("%d IXFRs over TLS, want 1", p.ixfrs.Load())
	}
}

// TestXoTMutual: a primary that wants a client certificate transfers to
// a secondary that presents one of its CA.
func TestXoTMutual(t *testing.T) {
	dir := t.TempDir()
	ca := testkit.NewCA(t, dir, "ca")
	clients := testkit.NewCA(t, dir, "clients")
	_, addr := tlsPrimary(t, ca, clients)
	certFile, keyFile, _ := clients.Issue(t, "node", "node.test")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	m, changed := runTLSSecondary(t, addr, &tls.Config{RootCAs: ca.Pool, ServerName: "xfr.test", MinVersion: tls.VersionTLS12,
		Certificates: []tls.Certificate{cert}}, &recordLog{})
	waitSerial(t, m, changed, 1)
}

// TestXoTRefused: a primary whose certificate is not of the trusted CA,
// or not for the expected name, or that wants a client certificate the
// secondary lacks, transfers nothing, and the log says why.
func TestXoTRefused(t *testing.T) {
	dir := t.TempDir()
	ca := testkit.NewCA(t, dir, "ca")
	other := testkit.NewCA(t, dir, "other")
	tests := []struct {
		name      string
		clientCAs *testkit.CA
		conf      *tls.Config
		want      string
	}{
		{"unknown ca", nil, &tls.Config{RootCAs: other.Pool, ServerName: "xfr.test"}, "xfr over tls: tls handshake: tls: failed to verify certificate: x509: certificate signed by unknown authority"},
		{"wrong name", nil, &tls.Config{RootCAs: ca.Pool, ServerName: "other.test"}, "xfr over tls: tls handshake: tls: failed to verify certificate: x509: certificate is valid for xfr.test, not other.test"},
		// TLS 1.3: the server checks the client's certificate after the
		// client's side of the handshake; the refusal comes with the
		// first read.
		{"no client certificate", other, &tls.Config{RootCAs: ca.Pool, ServerName: "xfr.test"}, "tls: certificate required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, addr := tlsPrimary(t, ca, tt.clientCAs)
			log := &recordLog{}
			m, _ := runTLSSecondary(t, addr, tt.conf, log)
			deadline := time.Now().Add(5 * time.Second)
			for len(log.find("zone refresh failed")) == 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			lines := log.find("zone refresh failed")
			if len(lines) == 0 {
				t.Fatal("no refresh failure logged")
			}
			if !strings.Contains(lines[0], tt.want) {
				t.Errorf("logged %q, want it to say %q", lines[0], tt.want)
			}
			if served(m, origin) != nil {
				t.Error("the zone was transferred")
			}
			if n := p.queries.Load(); n != 0 {
				t.Errorf("the primary answered %d queries", n)
			}
		})
	}
}
