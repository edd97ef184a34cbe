package node

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

// TestPrimaryClientCertReload: the client certificate of a primary over
// TLS (mutual TLS) is re-read by a reload (SIGHUP): the next transfer
// presents the renewed one.
func TestPrimaryClientCertReload(t *testing.T) {
	dir := t.TempDir()
	ca := testkit.NewCA(t, dir, "ca")
	certFile, keyFile, first := ca.Issue(t, "node", "node.test")
	path := filepath.Join(dir, "node.yaml")
	doc := fmt.Sprintf(`listen: [%q]
data_dir: %q
zones:
  - name: example.net.
    primaries: [{addr: "127.0.0.1:853", tls: {ca: %q, server_name: xfr.test, cert: %q, key: %q}}]
`, testkit.FreeAddr(t), filepath.Join(dir, "data"), ca.File, certFile, keyFile)
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadNode(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(cfg, path, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	serial := func() string {
		t.Helper()
		if len(n.primaryCerts) != 1 {
			t.Fatalf("%d client certificates, want 1", len(n.primaryCerts))
		}
		c, err := n.primaryCerts[0].GetClientCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.SerialNumber.String()
	}
	if got := serial(); got != first.String() {
		t.Fatalf("client certificate %s, want %s", got, first)
	}
	_, _, second := ca.Issue(t, "node", "node.test")
	n.Reload()
	if got := serial(); got != second.String() {
		t.Errorf("after the reload: client certificate %s, want %s", got, second)
	}
}
