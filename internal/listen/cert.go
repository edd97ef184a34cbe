package listen

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
)

// ALPNDoT is the ALPN protocol of DNS over TLS, which zone transfers over
// TLS (RFC 9103 §7.1) negotiate too.
const ALPNDoT = "dot"

// Certificate is a TLS certificate and key read from PEM files, re-read
// by Reload (on SIGHUP): a connection takes the one in force at its
// handshake, so a renewed certificate reaches new connections without a
// restart and open ones keep theirs.
type Certificate struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

// LoadCertificate reads the certificate chain and key of certFile and
// keyFile.
func LoadCertificate(certFile, keyFile string) (*Certificate, error) {
	c := &Certificate{certFile: certFile, keyFile: keyFile}
	if err := c.Reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Reload reads the files again; on an error the certificate in force
// stays.
func (c *Certificate) Reload() error {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("tls certificate %s (key %s): %w", c.certFile, c.keyFile, err)
	}
	if len(cert.Certificate) > 0 {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return fmt.Errorf("tls certificate %s: %w", c.certFile, err)
		}
	}
	c.cur.Store(&cert)
	return nil
}

// Leaf is the certificate in force.
func (c *Certificate) Leaf() *x509.Certificate { return c.cur.Load().Leaf }

// GetCertificate is tls.Config.GetCertificate: the certificate in force.
func (c *Certificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cur.Load(), nil
}

// GetClientCertificate is tls.Config.GetClientCertificate: the
// certificate in force, for mutual TLS.
func (c *Certificate) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return c.cur.Load(), nil
}

// ServerTLS is the configuration of a DNS-over-TLS listener serving cert:
// TLS 1.2 at least (RFC 9103 §9 wants TLS 1.3 for XoT, which Go
// negotiates with every peer that has it) and ALPN "dot", which a client
// that offers ALPN must offer (RFC 9103 §7.1).
func ServerTLS(cert *Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: cert.GetCertificate,
		NextProtos:     []string{ALPNDoT},
	}
}

// ReadCAs reads a PEM bundle of certification authorities.
func ReadCAs(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read ca file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("ca file " + file + ": no PEM certificate in it")
	}
	return pool, nil
}
