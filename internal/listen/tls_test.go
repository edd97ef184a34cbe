package listen

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

// serveTLS binds a TLS listener on 127.0.0.1:0 serving cert and serves h
// until the test ends.
func serveTLS(t *testing.T, cert *Certificate, hooks Hooks, h Handler) *Listener {
	t.Helper()
	l, err := Bind(context.Background(), Config{Listen: []netip.AddrPort{loopback}, TLS: ServerTLS(cert)})
	if err != nil {
		t.Fatal(err)
	}
	l.SetTCPLimits(TCPLimits{Idle: 3 * time.Second})
	l.SetHooks(hooks)
	done := make(chan error, 1)
	go func() { done <- l.ServeTCP(h) }()
	t.Cleanup(func() {
		l.Close()
		if err := <-done; err != nil {
			t.Errorf("ServeTCP: %v", err)
		}
	})
	return l
}

// dialTLS connects to addr trusting ca's pool with ALPN "dot".
func dialTLS(addr netip.AddrPort, ca *testkit.CA, name string) (*tls.Conn, error) {
	conf := &tls.Config{RootCAs: ca.Pool, ServerName: name, NextProtos: []string{ALPNDoT}, MinVersion: tls.VersionTLS12}
	d := tls.Dialer{Config: conf}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return nil, err
	}
	return c.(*tls.Conn), nil
}

// frameRoundTrip sends msg framed and reads one framed answer.
func frameRoundTrip(t *testing.T, c io.ReadWriter, msg []byte) []byte {
	t.Helper()
	if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)); err != nil {
		t.Fatal(err)
	}
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		t.Fatal(err)
	}
	out := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTLSListener: a TLS listener has no UDP socket, negotiates ALPN
// "dot", frames messages as TCP does and tells the handler the connection
// is TLS; a client that does not trust the certificate gets no answer and
// the HandshakeFailed hook hears of it.
func TestTLSListener(t *testing.T) {
	dir := t.TempDir()
	ca := testkit.NewCA(t, dir, "good")
	certFile, keyFile, _ := ca.Issue(t, "server", "xfr.test")
	cert, err := LoadCertificate(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	failed := make(chan error, 1)
	l := serveTLS(t, cert, Hooks{HandshakeFailed: func(_ netip.AddrPort, err error) { failed <- err }},
		func(c *Conn, msg []byte) bool {
			if !c.TLS() {
				return c.Write([]byte("not tls")) == nil
			}
			return c.Write(msg) == nil
		})
	if !l.TLS() || len(l.UDP()) != 0 {
		t.Fatalf("TLS() = %v, %d UDP sockets; want a TLS listener without UDP", l.TLS(), len(l.UDP()))
	}
	addr := l.Addrs()[0]
	if addr.Port() == 0 {
		t.Fatal("port 0 not resolved")
	}
	c, err := dialTLS(addr, ca, "xfr.test")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := c.ConnectionState().NegotiatedProtocol; p != ALPNDoT {
		t.Errorf("ALPN = %q, want %q", p, ALPNDoT)
	}
	for _, m := range []string{"first", "second"} {
		if got := string(frameRoundTrip(t, c, []byte(m))); got != m {
			t.Errorf("answer %q, want %q", got, m)
		}
	}

	other := testkit.NewCA(t, dir, "other")
	if c, err := dialTLS(addr, other, "xfr.test"); err == nil {
		c.Close()
		t.Fatal("a client trusting another CA completed the handshake")
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("handshake error %v does not name the certificate", err)
	}
	select {
	case err := <-failed:
		if err == nil {
			t.Error("HandshakeFailed got no error")
		}
	case <-time.After(3 * time.Second):
		t.Error("HandshakeFailed not called")
	}
}

// TestCertificateReload: a reload reaches the next handshake; a reload
// from broken files keeps the certificate in force.
func TestCertificateReload(t *testing.T) {
	dir := t.TempDir()
	ca := testkit.NewCA(t, dir, "ca")
	certFile, keyFile, first := ca.Issue(t, "server", "xfr.test")
	cert, err := LoadCertificate(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	l := serveTLS(t, cert, Hooks{}, echo)
	serial := func() string {
		t.Helper()
		c, err := dialTLS(l.Addrs()[0], ca, "xfr.test")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	if got := serial(); got != first.String() {
		t.Fatalf("serial %s, want %s", got, first)
	}
	_, _, second := ca.Issue(t, "server", "xfr.test")
	if got := serial(); got != first.String() {
		t.Fatalf("before Reload: serial %s, want %s still", got, first)
	}
	if err := cert.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := serial(); got != second.String() {
		t.Fatalf("after Reload: serial %s, want %s", got, second)
	}
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cert.Reload(); err == nil || !strings.Contains(err.Error(), certFile) {
		t.Errorf("Reload of a broken key = %v, want an error naming %s", err, certFile)
	}
	if got := serial(); got != second.String() {
		t.Errorf("after a failed Reload: serial %s, want %s kept", got, second)
	}
}
