//go:build linux

package xot

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/listen"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

// named is a BIND process started by the test.
type named struct {
	*testkit.Process
	addr string // its plain DNS address
}

// startNamed writes named.conf (options, then body) into dir and runs
// named in the foreground on 127.0.0.1:port until the test ends (SIGTERM
// to its PID). tlsListen, when set, adds a listener with the tls clause
// named srv on that port.
func startNamed(t *testing.T, dir string, port, tlsPort uint16, body string) *named {
	t.Helper()
	bin := testkit.RequireTool(t, "named", "bind9")
	if out, err := exec.Command(bin, "-v").Output(); err == nil {
		t.Logf("%s", strings.TrimSpace(string(out)))
	}
	listenTLS := ""
	if tlsPort != 0 {
		listenTLS = fmt.Sprintf("listen-on port %d tls srv { 127.0.0.1; };", tlsPort)
	}
	conf := filepath.Join(dir, "named.conf")
	writeFile(t, conf, fmt.Sprintf(`options {
	directory %q;
	pid-file %q;
	session-keyfile %q;
	managed-keys-directory %q;
	listen-on port %d { 127.0.0.1; };
	%s
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
	notify explicit;
};
controls { };
key "xfr-key" { algorithm hmac-sha256; secret %q; };
%s
`, dir, filepath.Join(dir, "named.pid"), filepath.Join(dir, "session.key"), dir, port, listenTLS, keySecret, body))
	if checkconf, err := exec.LookPath("named-checkconf"); err == nil {
		if out, err := exec.Command(checkconf, conf).CombinedOutput(); err != nil {
			t.Fatalf("named-checkconf: %v\n%s", err, out)
		}
	}
	p := testkit.StartProcess(t, "named", filepath.Join(dir, "named.log"), bin, "-g", "-n", "1", "-4", "-c", conf)
	n := &named{Process: p, addr: fmt.Sprintf("127.0.0.1:%d", port)}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := query(n.addr, "version.bind.", dns.TypeTXT); err == nil {
			return n
		}
		if p.Exited() || time.Now().After(deadline) {
			t.Fatalf("named does not answer on %s:\n%s", n.addr, p.Tail(30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBINDSecondary: BIND 9.18 is an XoT secondary of our control plane:
// its primary is the control plane's TLS port, whose certificate it checks
// against our CA and the name (tls clause with ca-file and
// remote-hostname), with TSIG; it follows a change after our NOTIFY.
func TestBINDSecondary(t *testing.T) {
	testkit.RequireTool(t, "named", "bind9")
	bin := testkit.BuildAnycastd(t)
	dir := t.TempDir()
	ca := testkit.NewCA(t, dir, "ca")
	certFile, keyFile, _ := ca.Issue(t, "xfr", serverName)
	bindPort := testkit.FreePort(t)
	bindDir := filepath.Join(dir, "bind")
	if err := os.MkdirAll(bindDir, 0o700); err != nil {
		t.Fatal(err)
	}
	ctl := startControl(t, bin, dir, certFile, keyFile, fmt.Sprintf("127.0.0.1:%d", bindPort))
	ctl.createZone(t, "198.51.100.1")
	_, xotPort, err := net.SplitHostPort(ctl.xot)
	if err != nil {
		t.Fatal(err)
	}
	n := startNamed(t, bindDir, bindPort, 0, fmt.Sprintf(`tls ctl { ca-file %q; remote-hostname %q; };
zone %q { type secondary; primaries { 127.0.0.1 port %s key "xfr-key" tls ctl; }; file "example.test.db"; };
`, ca.File, serverName, strings.TrimSuffix(zoneName, "."), xotPort))
	waitA(t, n.addr, "www."+zoneName, "198.51.100.1", 20*time.Second)
	ctl.setWWW(t, "198.51.100.2")
	waitA(t, n.addr, "www."+zoneName, "198.51.100.2", 20*time.Second)
	// Both transfers went to the XoT port, the only one BIND knows.
	if got := strings.Count(n.Log(), "from 127.0.0.1#"+xotPort+": Transfer status: success"); got < 2 {
		t.Errorf("BIND logged %d successful transfers from the XoT port %s, want 2:\n%s", got, xotPort, n.Tail(30))
	}
	if strings.Contains(ctl.Log(), "tls handshake of a transfer connection failed") {
		t.Errorf("a handshake with BIND failed:\n%s", ctl.Tail(20))
	}
}

// TestBINDPrimary: BIND 9.18 is the XoT primary of our node: it serves
// transfers only over TLS (listen-on ... tls, allow-transfer transport
// tls, a certificate of our CA), which our node checks; the node serves
// the zone and follows a change after BIND's NOTIFY. A transfer in clear
// is refused by BIND, so the node's transfers were over TLS.
func TestBINDPrimary(t *testing.T) {
	testkit.RequireTool(t, "named", "bind9")
	bin := testkit.BuildAnycastd(t)
	dir := t.TempDir()
	ca := testkit.NewCA(t, dir, "ca")
	certFile, keyFile, _ := ca.Issue(t, "bind", serverName)
	bindDir := filepath.Join(dir, "bind")
	if err := os.MkdirAll(bindDir, 0o700); err != nil {
		t.Fatal(err)
	}
	const zone = "bind.test."
	zoneFile := filepath.Join(bindDir, "bind.test.db")
	writeZone := func(serial int, addr string) {
		writeFile(t, zoneFile, fmt.Sprintf(`$TTL 300
@ IN SOA ns1 hostmaster %d 7200 3600 1209600 300
@ IN NS ns1
ns1 IN A 192.0.2.1
www IN A %s
`, serial, addr))
	}
	writeZone(1, "203.0.113.1")
	bindPort, tlsPort := testkit.FreePort(t), testkit.FreePort(t)
	nodeDNS := testkit.FreeAddr(t)
	_, nodePort, err := net.SplitHostPort(nodeDNS)
	if err != nil {
		t.Fatal(err)
	}
	n := startNamed(t, bindDir, bindPort, tlsPort, fmt.Sprintf(`tls srv { key-file %q; cert-file %q; };
zone %q {
	type primary;
	file %q;
	allow-transfer port %d transport tls { key "xfr-key"; };
	also-notify { 127.0.0.1 port %s key "xfr-key"; };
};
`, keyFile, certFile, strings.TrimSuffix(zone, "."), zoneFile, tlsPort, nodePort))
	primary := fmt.Sprintf("127.0.0.1:%d", tlsPort)

	// BIND refuses a transfer in clear, signed or not, on its plain port.
	q := new(dns.Msg)
	q.SetAxfr(zone)
	q.SetTsig(keyName, dns.HmacSHA256, 300, time.Now().Unix())
	tr := &dns.Transfer{TsigSecret: map[string]string{keyName: keySecret}}
	if ch, err := tr.In(q, n.addr); err == nil {
		env := <-ch
		if env.Error == nil {
			t.Fatalf("BIND transferred %s in clear; the test wants a TLS-only primary", zone)
		}
	}

	nodeDir := filepath.Join(dir, "n")
	if err := os.MkdirAll(nodeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	node := startNode(t, bin, nodeDir, nodeDNS, zone, primary, fmt.Sprintf("{ca: %q, server_name: %s}", ca.File, serverName))
	waitA(t, nodeDNS, "www."+zone, "203.0.113.1", 20*time.Second)

	// A new version: named re-reads its zone on SIGHUP and notifies the
	// node, which transfers it over TLS.
	writeZone(2, "203.0.113.2")
	if err := n.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitA(t, nodeDNS, "www."+zone, "203.0.113.2", 20*time.Second)
	if strings.Contains(node.Log(), "zone refresh failed") {
		t.Errorf("the node failed a refresh:\n%s", node.Tail(20))
	}

	// And the same over TLS with a library client, for the record: BIND
	// negotiates ALPN dot.
	c, err := tls.Dial("tcp", primary, &tls.Config{RootCAs: ca.Pool, ServerName: serverName, NextProtos: []string{listen.ALPNDoT}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("tls to BIND: %v", err)
	}
	if p := c.ConnectionState().NegotiatedProtocol; p != listen.ALPNDoT {
		t.Errorf("BIND negotiated ALPN %q, want %q", p, listen.ALPNDoT)
	}
	c.Close()
}
