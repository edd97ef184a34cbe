package xfrout

import (
	"crypto/tls"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/listen"
	"github.com/anycastdns/anycastdns/internal/testkit"
	"github.com/anycastdns/anycastdns/internal/tsig"
)

// TestXoT: with TLSListen the server transfers over TLS (RFC 9103), with
// the same ACL and TSIG as over TCP, beside its plain listener; a client
// that does not trust the certificate gets nothing.
func TestXoT(t *testing.T) {
	dir := t.TempDir()
	ca := testkit.NewCA(t, dir, "ca")
	certFile, keyFile, _ := ca.Issue(t, "xfr", "xfr.test")
	cert, err := listen.LoadCertificate(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	src, vs := sourceWithVersions(t)
	cfg := aclConfig()
	cfg.TLSListen = []netip.AddrPort{netip.MustParseAddrPort(loopback + ":0")}
	cfg.TLS = listen.ServerTLS(cert)
	s, plain := startServer(t, cfg, src)
	if len(s.TLSAddrs()) != 1 {
		t.Fatalf("TLSAddrs = %v, want one", s.TLSAddrs())
	}
	tlsAddr := s.TLSAddrs()[0]

	axfr := func(addr netip.AddrPort, conf *tls.Config, key bool) ([]dns.RR, error) {
		q := axfrQuery(origin)
		tr := &dns.Transfer{TLS: conf, DialTimeout: 3 * time.Second, ReadTimeout: 3 * time.Second}
		if key {
			q.SetTsig(keyA, dns.HmacSHA256, tsig.Fudge, 0)
			tr.TsigSecret = map[string]string{keyA: secretA}
		}
		ch, err := tr.In(q, addr.String())
		if err != nil {
			return nil, err
		}
		var rrs []dns.RR
		for env := range ch {
			if env.Error != nil {
				return nil, env.Error
			}
			rrs = append(rrs, env.RR...)
		}
		return rrs, nil
	}
	trusting := &tls.Config{RootCAs: ca.Pool, ServerName: "xfr.test", NextProtos: []string{listen.ALPNDoT}, MinVersion: tls.VersionTLS12}

	rrs, err := axfr(tlsAddr, trusting, true)
	if err != nil {
		t.Fatalf("signed AXFR over TLS: %v", err)
	}
	if diff := cmp.Diff(zoneStrings(t, vs[3]), rrStrings(rrs[:len(rrs)-1])); diff != "" {
		t.Errorf("AXFR over TLS content (-zone +axfr):\n%s", diff)
	}
	// The ACL entry of 127.0.0.1 wants key-a over TLS as over TCP.
	if _, err := axfr(tlsAddr, trusting, false); err == nil {
		t.Error("an unsigned AXFR over TLS from 127.0.0.1 succeeded; the ACL wants key-a")
	}
	// The plain listener still serves.
	if _, err := axfr(plain, nil, true); err != nil {
		t.Errorf("signed AXFR over TCP: %v", err)
	}
	// A client trusting another CA does not get a byte.
	other := testkit.NewCA(t, dir, "other")
	if _, err := axfr(tlsAddr, &tls.Config{RootCAs: other.Pool, ServerName: "xfr.test", MinVersion: tls.VersionTLS12}, true); err == nil {
		t.Error("AXFR over TLS trusting another CA succeeded")
	}
	// Plain DNS on the TLS port is no transfer.
	if _, err := axfr(tlsAddr, nil, true); err == nil {
		t.Error("AXFR in clear on the TLS port succeeded")
	}
}

// TestXoTConfig: a TLS listener without a TLS configuration is refused.
func TestXoTConfig(t *testing.T) {
	cfg := aclConfig()
	cfg.Listen = []netip.AddrPort{netip.MustParseAddrPort(loopback + ":0")}
	cfg.TLSListen = []netip.AddrPort{netip.MustParseAddrPort(loopback + ":0")}
	if _, err := New(cfg, newMemSource(), testLogger(t)); err == nil {
		t.Error("New accepted tls listen addresses without a certificate")
	}
}

// TestXoTRequired: an ACL entry with TLS allows transfers over TLS only;
// the same request in clear is refused.
func TestXoTRequired(t *testing.T) {
	dir := t.TempDir()
	ca := testkit.NewCA(t, dir, "ca")
	certFile, keyFile, _ := ca.Issue(t, "xfr", "xfr.test")
	cert, err := listen.LoadCertificate(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	src, _ := sourceWithVersions(t)
	cfg := Config{
		Keys:          testKeys(),
		AllowTransfer: []ACL{{Prefix: netip.MustParsePrefix("127.0.0.1/32"), Key: keyA, TLS: true}},
		TLSListen:     []netip.AddrPort{netip.MustParseAddrPort(loopback + ":0")},
		TLS:           listen.ServerTLS(cert),
	}
	s, plain := startServer(t, cfg, src)
	resp, err := exchangeTCP(t, plain, axfrQuery(origin), signA)
	if err != nil {
		t.Fatal(err)
	}
	if rc := resp.msgs[0].Rcode; rc != dns.RcodeRefused {
		t.Errorf("AXFR in clear answered %s, want REFUSED", dns.RcodeToString[rc])
	}
	q := axfrQuery(origin)
	q.SetTsig(keyA, dns.HmacSHA256, tsig.Fudge, 0)
	tr := &dns.Transfer{TsigSecret: map[string]string{keyA: secretA}, DialTimeout: 3 * time.Second, ReadTimeout: 3 * time.Second,
		TLS: &tls.Config{RootCAs: ca.Pool, ServerName: "xfr.test", MinVersion: tls.VersionTLS12}}
	ch, err := tr.In(q, s.TLSAddrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for env := range ch {
		if env.Error != nil {
			t.Fatalf("AXFR over TLS: %v", env.Error)
		}
		n += len(env.RR)
	}
	if n == 0 {
		t.Error("AXFR over TLS: no records")
	}
}
