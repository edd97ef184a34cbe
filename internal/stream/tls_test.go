package stream

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// selfSigned returns a certificate for 127.0.0.1 and a pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "control"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

// TestStreamTLS: with a certificate the stream is HTTP/2 over TLS; a node
// that trusts the certificate's authority streams, one that does not is
// refused by its own TLS check.
func TestStreamTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	src := newFakeSource(map[string]uint32{"a.": 2})
	srv, err := NewServer(ServerConfig{Name: "ctl", Keys: map[string][]byte{"node-key.": testSecret}, Heartbeat: 100 * time.Millisecond},
		src, newFakeRegistry(), testLogger())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- srv.Serve(ctx, ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}, nil)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	zones := newFakeZones(map[string]uint32{"a.": 1})
	c, err := NewClient(ClientConfig{URL: "https://" + ln.Addr().String(), KeyName: "node-key", Secret: testSecret, Node: "n1",
		TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}, zones, func() Status { return Status{} }, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithCancel(context.Background())
	cdone := make(chan error, 1)
	go func() { cdone <- c.Run(cctx) }()
	waitFor(t, "the transfer over TLS", func() bool { return len(zones.appliedList()) == 1 })
	ccancel()
	<-cdone

	untrusting, err := NewClient(ClientConfig{URL: "https://" + ln.Addr().String(), KeyName: "node-key", Secret: testSecret, Node: "n2"},
		newFakeZones(map[string]uint32{}), func() Status { return Status{} }, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	if established, err := untrusting.session(context.Background()); established || err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a node without the authority: established %v, %v; want a certificate error", established, err)
	}
}
