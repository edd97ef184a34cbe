//go:build linux

package update

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/apiclient"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

const (
	token      = "update-test-token-0123456789"
	xfrKey     = "xfr-key."
	xfrSecret  = "KmSBOQmjtyYzILPFjRYDIUmaEGkpbDVAkwbzmB8pfLE="
	acmeKey    = "acme-key."
	acmeSecret = "3ZcCmCGtFhd2XwZQ6bFoTJ2XbJh0pZs2X9r7ZJtUOSM="
	otherKey   = "other-key."
	// otherSecret is a key the control plane holds that the policy
	// grants nothing.
	otherSecret = "q5zU4KFQJbUQZ2HeZ7mJXbVMTfm3y0oQ2S3cN0x0vJQ="
	zoneName    = "example.com."
	challenge   = "_acme-challenge.example.com."
	// propagationBound is how long after an UPDATE is answered the node
	// must serve its change: on loopback NOTIFY and IXFR take a few
	// milliseconds; the bound leaves room for a loaded CI runner.
	propagationBound = time.Second
)

// anycastdBin is the binary under test, built once by TestMain.
var anycastdBin string

func TestMain(m *testing.M) {
	os.Exit(testkit.RunWithAnycastd(m, &anycastdBin))
}

type setup struct {
	bin, dir       string
	api, xfr, node string
	ctl, nodeProc  *testkit.Process
	nsupdateBin    string
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// start runs the control plane with the update policy and a node serving
// example.com. as its secondary, and creates the zone through the API.
func start(t *testing.T) *setup {
	t.Helper()
	s := &setup{nsupdateBin: testkit.RequireTool(t, "nsupdate", "bind9-dnsutils")}
	s.bin = anycastdBin
	s.dir = t.TempDir()
	s.api, s.xfr, s.node = testkit.FreeAddr(t), testkit.FreeAddr(t), testkit.FreeAddr(t)
	ctlCfg := filepath.Join(s.dir, "control.yaml")
	writeFile(t, ctlCfg, fmt.Sprintf(`data_dir: %q
api:
  listen: %q
  tokens: [%q]
xfr:
  listen: [%q]
  tsig_keys:
    - {name: %s, secret: %q}
    - {name: %s, secret: %q}
    - {name: %s, secret: %q}
  allow_transfer: [{prefix: 127.0.0.0/8, key: %s}]
  notify: [{addr: %q, key: %s}]
  update:
    from: [127.0.0.0/8]
    policy:
      - key: %s
        zones: [%s]
        match: subdomain
        name: %s
        types: [TXT]
log: {level: debug}
`, filepath.Join(s.dir, "control"), s.api, token, s.xfr, xfrKey, xfrSecret, acmeKey, acmeSecret, otherKey, otherSecret,
		xfrKey, s.node, xfrKey, acmeKey, zoneName, challenge))
	nodeCfg := filepath.Join(s.dir, "node.yaml")
	// The node holds the ACME key too: certbot looks the zone up with
	// signed SOA queries, which the node answers signed.
	writeFile(t, nodeCfg, fmt.Sprintf(`identity: {name: update-pop}
listen: [%q]
data_dir: %q
tsig_keys:
  - {name: %s, secret: %q}
  - {name: %s, secret: %q}
zones:
  - {name: %s, primaries: [{addr: %q, key: %s}]}
log: {level: debug}
drain_period: 0s
`, s.node, filepath.Join(s.dir, "node"), xfrKey, xfrSecret, acmeKey, acmeSecret, zoneName, s.xfr, xfrKey))

	s.ctl = testkit.StartProcess(t, "control", filepath.Join(s.dir, "control.log"), s.bin, "control", "-config", ctlCfg)
	s.ctl.StopAfter, s.ctl.CheckExit = 20*time.Second, true
	testkit.WaitHTTP(t, "http://"+s.api+api.PathZones, 15*time.Second)
	cl, err := apiclient.New("http://"+s.api, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.CreateZone(t.Context(), api.CreateZone{Name: zoneName, Records: []string{
		"@ 3600 IN SOA ns1 hostmaster 1 7200 3600 1209600 300",
		"@ 3600 IN NS ns1",
		"ns1 3600 IN A 192.0.2.1",
		"www 300 IN A 192.0.2.10",
	}}); err != nil {
		t.Fatal(err)
	}
	s.nodeProc = testkit.StartProcess(t, "node", filepath.Join(s.dir, "node.log"), s.bin, "node", "-config", nodeCfg)
	s.nodeProc.StopAfter, s.nodeProc.CheckExit = 20*time.Second, true
	deadline := time.Now().Add(15 * time.Second)
	for !s.serves("www.example.com.", dns.TypeA) {
		if time.Now().After(deadline) {
			t.Fatalf("node does not serve %s 15s after its start\n%s", zoneName, s.nodeProc.Tail(30))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s
}

// serves reports whether the node answers name/t with records.
func (s *setup) serves(name string, t uint16) bool {
	m := new(dns.Msg)
	m.SetQuestion(name, t)
	c := &dns.Client{Timeout: time.Second}
	r, _, err := c.Exchange(m, s.node)
	return err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0
}

// txt returns the TXT strings the node serves at name, sorted.
func (s *setup) txt(name string) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeTXT)
	c := &dns.Client{Timeout: time.Second}
	r, _, err := c.Exchange(m, s.node)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range r.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	slices.Sort(out)
	return out, nil
}

// waitTXT waits until the node serves exactly want at name and returns how
// long that took from since; it fails the test past propagationBound.
func (s *setup) waitTXT(t *testing.T, name string, since time.Time, want ...string) time.Duration {
	t.Helper()
	slices.Sort(want)
	var got []string
	var err error
	for {
		got, err = s.txt(name)
		if err == nil && slices.Equal(got, want) {
			return time.Since(since)
		}
		if time.Since(since) > propagationBound {
			t.Fatalf("node serves %s TXT %q (err %v) %v after the update, want %q", name, got, err, propagationBound, want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// nsupdate runs BIND's nsupdate with the key against server; tcp adds -v.
// It returns the output and whether it succeeded.
func (s *setup) nsupdate(t *testing.T, server, key, secret string, tcp bool, commands ...string) (string, bool) {
	t.Helper()
	host, port, _ := strings.Cut(server, ":")
	script := fmt.Sprintf("check-names no\nserver %s %s\nzone %s\n%s\nsend\n", host, port, zoneName, strings.Join(commands, "\n"))
	args := []string{"-y", "hmac-sha256:" + strings.TrimSuffix(key, ".") + ":" + secret, "-t", "5"}
	if tcp {
		args = append(args, "-v")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.nsupdateBin, args...)
	cmd.Stdin = strings.NewReader(script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err == nil
}

// TestNsupdate: nsupdate adds and deletes _acme-challenge TXT records
// through the control plane and through the node, over UDP and TCP, with
// prerequisites; the node serves each change within propagationBound.
// What the policy does not grant, an unknown key and failed prerequisites
// are refused and change nothing.
func TestNsupdate(t *testing.T) {
	s := start(t)
	ok := func(what, server string, tcp bool, commands ...string) time.Time {
		t.Helper()
		out, success := s.nsupdate(t, server, acmeKey, acmeSecret, tcp, commands...)
		if !success {
			t.Fatalf("%s: nsupdate failed:\n%s\ncontrol:\n%s", what, out, s.ctl.Tail(20))
		}
		return time.Now()
	}
	refused := func(what, server, key, secret, rcode string, commands ...string) {
		t.Helper()
		out, success := s.nsupdate(t, server, key, secret, false, commands...)
		if success || !strings.Contains(out, rcode) {
			t.Errorf("%s: nsupdate succeeded %v, output %q; want it to fail with %s", what, success, out, rcode)
		}
	}

	at := ok("add through the control plane (UDP)", s.xfr, false, `update add `+challenge+` 60 TXT "token-1"`)
	t.Logf("add through the control plane, UDP: served by the node %v after the answer", s.waitTXT(t, challenge, at, "token-1").Round(time.Microsecond))
	at = ok("add through the node (UDP, forwarded)", s.node, false,
		"prereq yxrrset "+challenge+" TXT", `update add `+challenge+` 60 TXT "token-2"`)
	t.Logf("add through the node, UDP: served %v after the answer", s.waitTXT(t, challenge, at, "token-1", "token-2").Round(time.Microsecond))
	at = ok("add below, through the node (TCP, forwarded)", s.node, true, `update add www.`+challenge+` 60 TXT "token-3"`)
	t.Logf("add through the node, TCP: served %v after the answer", s.waitTXT(t, "www."+challenge, at, "token-3").Round(time.Microsecond))

	refused("prerequisite: the RRset must not exist", s.node, acmeKey, acmeSecret, "YXRRSET",
		"prereq nxrrset "+challenge+" TXT", `update add `+challenge+` 60 TXT "token-x"`)
	refused("prerequisite: the name must not be in use", s.xfr, acmeKey, acmeSecret, "YXDOMAIN",
		"prereq nxdomain "+challenge, `update add `+challenge+` 60 TXT "token-x"`)
	refused("prerequisite: a name not in use", s.xfr, acmeKey, acmeSecret, "NXDOMAIN",
		"prereq yxdomain nope."+challenge, `update add `+challenge+` 60 TXT "token-x"`)
	refused("prerequisite: an RRset with other values", s.xfr, acmeKey, acmeSecret, "NXRRSET",
		`prereq yxrrset `+challenge+` TXT "token-1"`, `update add `+challenge+` 60 TXT "token-x"`)
	refused("a type the policy does not grant", s.xfr, acmeKey, acmeSecret, "REFUSED", "update add "+challenge+" 60 A 192.0.2.99")
	refused("a name the policy does not grant", s.node, acmeKey, acmeSecret, "REFUSED", `update add www.example.com. 60 TXT "x"`)
	refused("a key the policy grants nothing", s.xfr, otherKey, otherSecret, "REFUSED", `update add `+challenge+` 60 TXT "x"`)
	refused("a key the control plane does not hold", s.xfr, "nobody.", acmeSecret, "NOTAUTH", `update add `+challenge+` 60 TXT "x"`)
	refused("a wrong secret", s.node, acmeKey, otherSecret, "NOTAUTH", `update add `+challenge+` 60 TXT "x"`)
	if got, _ := s.txt(challenge); !slices.Equal(got, []string{"token-1", "token-2"}) {
		t.Errorf("after the refused updates the node serves %q", got)
	}
	if s.serves(challenge, dns.TypeA) {
		t.Error("the node serves an A record the policy refused")
	}

	at = ok("delete one record through the node", s.node, false, `update delete `+challenge+` TXT "token-1"`)
	t.Logf("delete through the node: served %v after the answer", s.waitTXT(t, challenge, at, "token-2").Round(time.Microsecond))
	at = ok("delete the RRsets through the control plane (TCP)", s.xfr, true, "update delete "+challenge+" TXT", "update delete www."+challenge)
	s.waitTXT(t, challenge, at)
	s.waitTXT(t, "www."+challenge, at)
}

// TestCertbotRFC2136: certbot's RFC 2136 plugin creates and removes the
// challenge record as certbot does around an ACME DNS-01 validation: its
// client finds the zone with signed SOA queries and sends the UPDATEs
// over TCP — to the node, which forwards them, and to the control plane.
// A record the policy does not grant is refused.
func TestCertbotRFC2136(t *testing.T) {
	python := "/usr/bin/python3"
	if out, err := exec.Command(python, "-c", "import certbot_dns_rfc2136._internal.dns_rfc2136").CombinedOutput(); err != nil {
		testkit.Unavailable(t, "certbot's RFC 2136 plugin not importable by %s (install the Debian package python3-certbot-dns-rfc2136): %v %s", python, err, out)
	}
	s := start(t)
	// run calls the plugin's client against server: add or del of a TXT
	// record; it returns when the UPDATE was answered, and the output.
	run := func(server, op, name, value string) (time.Time, string, error) {
		t.Helper()
		host, port, _ := strings.Cut(server, ":")
		script := fmt.Sprintf(`
import sys, dns.name
from certbot_dns_rfc2136._internal.dns_rfc2136 import _RFC2136Client
c = _RFC2136Client(%q, %s, %q, %q, dns.name.from_text("hmac-sha256."), 5)
if sys.argv[1] == "add":
    c.add_txt_record(sys.argv[2], sys.argv[3], 60)
else:
    c.del_txt_record(sys.argv[2], sys.argv[3])
`, host, port, acmeKey, acmeSecret)
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, python, "-c", script, op, name, value).CombinedOutput()
		return time.Now(), string(out), err
	}
	must := func(server, op, value string) time.Time {
		t.Helper()
		at, out, err := run(server, op, challenge, value)
		if err != nil {
			t.Fatalf("certbot plugin %s %s via %s: %v\n%s\ncontrol:\n%s", op, value, server, err, out, s.ctl.Tail(20))
		}
		return at
	}
	for _, tc := range []struct{ via, server, validation string }{
		{"the node", s.node, "Zm9vYmFyLXZhbGlkYXRpb24tdG9rZW4tZm9yLWFjbWU"},
		{"the control plane", s.xfr, "YW5vdGhlci12YWxpZGF0aW9uLXRva2VuLWZvci1hY21l"},
	} {
		at := must(tc.server, "add", tc.validation)
		t.Logf("certbot add through %s: served by the node %v after the answer", tc.via, s.waitTXT(t, challenge, at, tc.validation).Round(time.Microsecond))
		at = must(tc.server, "del", tc.validation)
		s.waitTXT(t, challenge, at)
	}
	_, out, err := run(s.xfr, "add", "www.example.com.", "not-granted")
	if err == nil || !strings.Contains(out, "REFUSED") {
		t.Errorf("certbot add of a record the policy does not grant: %v\n%s\nwant a failure with REFUSED", err, out)
	}
	if got, _ := s.txt("www.example.com."); len(got) != 0 {
		t.Errorf("the node serves %q at www.example.com. after a refused update", got)
	}
}
