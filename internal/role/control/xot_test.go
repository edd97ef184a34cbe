package control

import (
	"context"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/listen"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

// TestXoTReload: the control plane serves transfers over TLS with the
// certificate of xfr.tls, and a reload re-reads the files: the next
// handshake shows the renewed certificate.
func TestXoTReload(t *testing.T) {
	dir := t.TempDir()
	ca := testkit.NewCA(t, dir, "ca")
	certFile, keyFile, first := ca.Issue(t, "xfr", "xfr.test")
	api, xfr, xot := testkit.FreeAddr(t), testkit.FreeAddr(t), testkit.FreeAddr(t)
	doc := fmt.Sprintf(`data_dir: %s
api: {listen: %s, tokens: [%q]}
xfr:
  listen: [%s]
  allow_transfer: [{prefix: 127.0.0.0/8}]
  tls: {listen: [%s], cert: %s, key: %s}
`, filepath.Join(dir, "data"), api, token, xfr, xot, certFile, keyFile)
	r := startFromFile(t, doc)
	serial := func() string {
		t.Helper()
		d := tls.Dialer{Config: &tls.Config{RootCAs: ca.Pool, ServerName: "xfr.test", NextProtos: []string{listen.ALPNDoT}, MinVersion: tls.VersionTLS12}}
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", xot)
		if err != nil {
			t.Fatalf("tls to the transfer server: %v", err)
		}
		defer c.Close()
		st := c.(*tls.Conn).ConnectionState()
		if st.NegotiatedProtocol != listen.ALPNDoT {
			t.Errorf("ALPN %q, want dot", st.NegotiatedProtocol)
		}
		return st.PeerCertificates[0].SerialNumber.String()
	}
	if got := serial(); got != first.String() {
		t.Fatalf("serial %s, want %s", got, first)
	}
	_, _, second := ca.Issue(t, "xfr", "xfr.test")
	r.reloadWith(t, doc, "xfr.tls certificate re-read")
	if got := serial(); got != second.String() {
		t.Errorf("after the reload: serial %s, want %s", got, second)
	}
}
