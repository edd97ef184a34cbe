//go:build linux

package xot

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/apiclient"
	"github.com/anycastdns/anycastdns/internal/listen"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

const (
	token     = "xot-test-token-0123456789"
	keyName   = "xfr-key."
	keySecret = "KmSBOQmjtyYzILPFjRYDIUmaEGkpbDVAkwbzmB8pfLE="
	zoneName  = "example.test."
	// serverName is the name on the certificates of the primaries
	// (ours and BIND's), which the secondaries check.
	serverName = "xfr.test"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// start runs an anycastd process until the end of the test: SIGTERM at the
// end, the test fails unless it exits with status 0.
func start(t *testing.T, name, bin, logPath string, args ...string) *testkit.Process {
	t.Helper()
	p := testkit.StartProcess(t, name, logPath, append([]string{bin}, args...)...)
	p.StopAfter = 20 * time.Second
	p.CheckExit = true
	return p
}

// control is an `anycastd control` serving XoT.
type control struct {
	*testkit.Process
	api, xfr, xot string // addresses: REST API, plain transfers, transfers over TLS
	client        *apiclient.Client
}

// startControl runs a control plane with its transfer server over TLS on
// a free port with certFile and keyFile, allowing transfers from loopback
// signed with the key and over TLS only, and NOTIFY to notify (if set).
func startControl(t *testing.T, bin, dir, certFile, keyFile string, notify ...string) *control {
	t.Helper()
	c := &control{api: testkit.FreeAddr(t), xfr: testkit.FreeAddr(t), xot: testkit.FreeAddr(t)}
	var notifyYAML string
	if len(notify) > 0 {
		notifyYAML = "  notify:\n"
		for _, n := range notify {
			notifyYAML += fmt.Sprintf("    - {addr: %q, key: %s}\n", n, keyName)
		}
	}
	cfg := filepath.Join(dir, "control.yaml")
	writeFile(t, cfg, fmt.Sprintf(`data_dir: %q
api: {listen: %q, tokens: [%q]}
xfr:
  listen: [%q]
  tsig_keys: [{name: %s, algorithm: hmac-sha256, secret: %q}]
  allow_transfer: [{prefix: 127.0.0.0/8, key: %s, tls: true}]
%s  tls:
    listen: [%q]
    cert: %q
    key: %q
log: {level: debug}
`, filepath.Join(dir, "control"), c.api, token, c.xfr, keyName, keySecret, keyName, notifyYAML, c.xot, certFile, keyFile))
	c.Process = start(t, "control", bin, filepath.Join(dir, "control.log"), "control", "-config", cfg)
	testkit.WaitHTTP(t, "http://"+c.api+api.PathZones, 15*time.Second)
	cl, err := apiclient.New("http://"+c.api, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.client = cl
	return c
}

// createZone creates zoneName with www at addr.
func (c *control) createZone(t *testing.T, addr string) {
	t.Helper()
	if _, err := c.client.CreateZone(t.Context(), api.CreateZone{Name: zoneName, Records: []string{
		"@ 3600 IN SOA ns1 hostmaster 1 7200 3600 1209600 300",
		"@ 3600 IN NS ns1",
		"ns1 3600 IN A 192.0.2.1",
		"www 300 IN A " + addr,
	}}); err != nil {
		t.Fatalf("create %s: %v", zoneName, err)
	}
}

// setWWW changes the address of www.
func (c *control) setWWW(t *testing.T, addr string) {
	t.Helper()
	if _, err := c.client.PutRRset(t.Context(), zoneName, "www."+zoneName, "A", api.PutRRset{TTL: new(uint32(300)), Records: []string{addr}}, ""); err != nil {
		t.Fatalf("set www: %v", err)
	}
}

// startNode runs a node serving zone from one primary at primary over TLS
// with the tls section given (YAML flow mapping), listening on dnsAddr.
func startNode(t *testing.T, bin, dir, dnsAddr, zone, primary, tlsYAML string) *testkit.Process {
	t.Helper()
	adminAddr := testkit.FreeAddr(t)
	cfg := filepath.Join(dir, "node.yaml")
	writeFile(t, cfg, fmt.Sprintf(`identity: {name: xot-pop}
listen: [%q]
data_dir: %q
tsig_keys: [{name: %s, algorithm: hmac-sha256, secret: %q}]
zones:
  - name: %s
    primaries: [{addr: %q, key: %s, tls: %s}]
admin: {listen: %q}
secondary_timers: {min_retry: 1s}
log: {level: debug}
drain_period: 0s
`, dnsAddr, filepath.Join(dir, "node"), keyName, keySecret, zone, primary, keyName, tlsYAML, adminAddr))
	p := start(t, "node", bin, filepath.Join(dir, "node.log"), "node", "-config", cfg)
	testkit.WaitHTTP(t, "http://"+adminAddr+"/v1/status", 15*time.Second)
	return p
}

// query asks server for name/qtype over UDP.
func query(server, name string, qtype uint16) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	c := &dns.Client{Timeout: time.Second}
	r, _, err := c.Exchange(q, server)
	return r, err
}

// waitA waits until server answers name A with want.
func waitA(t *testing.T, server, name, want string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	last := "no answer"
	for time.Now().Before(deadline) {
		r, err := query(server, name, dns.TypeA)
		switch {
		case err != nil:
			last = err.Error()
		case r.Rcode != dns.RcodeSuccess:
			last = dns.RcodeToString[r.Rcode]
		case len(r.Answer) > 0:
			if a, ok := r.Answer[0].(*dns.A); ok && a.A.String() == want {
				return
			}
			last = r.Answer[0].String()
		default:
			last = "empty answer"
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s does not answer %s A %s within %s; last: %s", server, name, want, limit, last)
}

// waitLog waits until p's log has a line with every one of subs.
func waitLog(t *testing.T, p *testkit.Process, limit time.Duration, subs ...string) string {
	t.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		for line := range strings.Lines(p.Log()) {
			all := true
			for _, s := range subs {
				all = all && strings.Contains(line, s)
			}
			if all {
				return line
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s logged no line with %q within %s", p.Name, subs, limit)
	return ""
}

// peerSerial completes a TLS handshake with addr trusting ca and returns
// the serial number of the certificate it showed.
func peerSerial(t *testing.T, addr string, ca *testkit.CA) string {
	t.Helper()
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 3 * time.Second},
		Config: &tls.Config{RootCAs: ca.Pool, ServerName: serverName, NextProtos: []string{listen.ALPNDoT}, MinVersion: tls.VersionTLS12}}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("tls to %s: %v", addr, err)
	}
	defer c.Close()
	return c.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// TestControlToNode: a node pulls a zone from the control plane over TLS
// alone (its primary is the XoT port), serves it, and follows a change
// (NOTIFY, IXFR over TLS); SIGHUP makes the control plane show a renewed
// certificate, and transfers go on with it.
func TestControlToNode(t *testing.T) {
	bin := testkit.BuildAnycastd(t)
	dir := t.TempDir()
	ca := testkit.NewCA(t, dir, "ca")
	certFile, keyFile, first := ca.Issue(t, "xfr", serverName)

	// The node's DNS address is the control plane's NOTIFY target: pick
	// it first, then start the node after the control plane.
	nodeDir := filepath.Join(dir, "n")
	if err := os.MkdirAll(nodeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	dnsAddr := testkit.FreeAddr(t)
	ctl := startControl(t, bin, dir, certFile, keyFile, dnsAddr)
	ctl.createZone(t, "198.51.100.1")
	node := startNode(t, bin, nodeDir, dnsAddr, zoneName, ctl.xot, fmt.Sprintf("{ca: %q, server_name: %s}", ca.File, serverName))
	waitA(t, dnsAddr, "www."+zoneName, "198.51.100.1", 20*time.Second)

	if got := peerSerial(t, ctl.xot, ca); got != first.String() {
		t.Fatalf("control plane shows certificate %s, want %s", got, first)
	}
	// The ACL wants TLS: the same signed AXFR in clear is refused.
	q := new(dns.Msg)
	q.SetAxfr(zoneName)
	q.SetTsig(keyName, dns.HmacSHA256, 300, time.Now().Unix())
	tr := &dns.Transfer{TsigSecret: map[string]string{keyName: keySecret}}
	ch, err := tr.In(q, ctl.xfr)
	if err != nil {
		t.Fatal(err)
	}
	if env := <-ch; env.Error == nil || !strings.Contains(env.Error.Error(), "rcode: 5") { // REFUSED
		t.Errorf("AXFR in clear from an ACL entry that wants TLS: %v, want refused", env.Error)
	}

	// A change reaches the node over TLS (its only primary is the XoT
	// port) after the control plane's NOTIFY.
	ctl.setWWW(t, "198.51.100.2")
	waitA(t, dnsAddr, "www."+zoneName, "198.51.100.2", 20*time.Second)

	// SIGHUP with renewed files: the next handshake shows the new
	// certificate, and the node keeps transferring (its CA is the same).
	_, _, second := ca.Issue(t, "xfr", serverName)
	if err := ctl.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLog(t, ctl.Process, 10*time.Second, "xfr.tls certificate re-read", "serial="+second.String())
	if got := peerSerial(t, ctl.xot, ca); got != second.String() {
		t.Errorf("after SIGHUP the control plane shows certificate %s, want %s", got, second)
	}
	ctl.setWWW(t, "198.51.100.3")
	waitA(t, dnsAddr, "www."+zoneName, "198.51.100.3", 20*time.Second)
	if strings.Contains(node.Log(), "zone refresh failed") {
		t.Errorf("the node failed a refresh:\n%s", node.Tail(20))
	}
}

// TestBadCA: a node that trusts another CA than the one of the control
// plane's certificate transfers nothing, serves nothing of the zone, and
// says why in its log.
func TestBadCA(t *testing.T) {
	bin := testkit.BuildAnycastd(t)
	dir := t.TempDir()
	ca := testkit.NewCA(t, dir, "ca")
	other := testkit.NewCA(t, dir, "other")
	certFile, keyFile, _ := ca.Issue(t, "xfr", serverName)
	ctl := startControl(t, bin, dir, certFile, keyFile)
	ctl.createZone(t, "198.51.100.1")
	nodeDir := filepath.Join(dir, "n")
	if err := os.MkdirAll(nodeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	dnsAddr := testkit.FreeAddr(t)
	node := startNode(t, bin, nodeDir, dnsAddr, zoneName, ctl.xot, fmt.Sprintf("{ca: %q, server_name: %s}", other.File, serverName))
	line := waitLog(t, node, 15*time.Second, "zone refresh failed", "xfr over tls")
	if !strings.Contains(line, "certificate signed by unknown authority") {
		t.Errorf("the failure does not say the certificate is not trusted: %s", line)
	}
	if r, err := query(dnsAddr, "www."+zoneName, dns.TypeA); err == nil && len(r.Answer) > 0 {
		t.Errorf("the node answers %v without having transferred the zone", r.Answer)
	}
	waitLog(t, ctl.Process, 5*time.Second, "tls handshake of a transfer connection failed")
}
