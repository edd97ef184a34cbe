//go:build linux

package standalone

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

const namesToken = "names-token-0123456789"

// startStandalone runs anycastd standalone until the end of the test and
// returns its DNS and API addresses; extra are more flags.
func startStandalone(t *testing.T, extra ...string) (dnsAddr, apiAddr string) {
	t.Helper()
	bin := testkit.BuildAnycastd(t)
	dnsAddr = testkit.FreeAddr(t)
	apiAddr = testkit.FreeAddr(t)
	argv := []string{bin, "standalone", "-data", t.TempDir(), "-dns", dnsAddr, "-api", apiAddr,
		"-xfr", testkit.FreeAddr(t), "-admin", testkit.FreeAddr(t), "-metrics", "", "-token", namesToken}
	testkit.StartProcess(t, "standalone", filepath.Join(t.TempDir(), "standalone.log"), append(argv, extra...)...)
	waitA(t, dnsAddr, "www.example.com.", "192.0.2.80", 15*time.Second)
	return dnsAddr, apiAddr
}

// waitRcode polls until a query for name SOA gets rcode (NOERROR with an
// SOA answer for dns.RcodeSuccess).
func waitRcode(t *testing.T, addr, name string, rcode int, limit time.Duration) {
	t.Helper()
	c := &dns.Client{Timeout: 500 * time.Millisecond}
	var last string
	for start := time.Now(); time.Since(start) < limit; time.Sleep(10 * time.Millisecond) {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeSOA)
		r, _, err := c.Exchange(m, addr)
		if err != nil {
			last = err.Error()
			continue
		}
		last = dns.RcodeToString[r.Rcode]
		if r.Rcode == rcode && (rcode != dns.RcodeSuccess || len(r.Answer) > 0 && r.Answer[0].Header().Name == name) {
			return
		}
	}
	t.Fatalf("%s SOA: %s, want %s within %v", name, last, dns.RcodeToString[rcode], limit)
}

// TestZoneNamesWithTheBinaries drives the real anycastctl against the real
// anycastd standalone: a name the node would skip is refused at creation,
// the root zone needs -allow-tld, is served once created, and
// `anycastctl zone delete .` removes it from the node.
func TestZoneNamesWithTheBinaries(t *testing.T) {
	ctl := testkit.BuildAnycastctl(t)
	dnsAddr, apiAddr := startStandalone(t)
	anycastctl := func(args ...string) (int, string) {
		t.Helper()
		cmd := exec.Command(ctl, args...)
		cmd.Env = append(os.Environ(), "ANYCASTCTL_API=http://"+apiAddr, "ANYCASTCTL_TOKEN="+namesToken)
		cmd.Stdin = nil // not a terminal
		out, err := cmd.CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, string(out)
	}

	for _, name := range []string{"*.test", `a\.b.test`, `a\000b.test`} {
		code, out := anycastctl("zone", "create", name, "-ns", "ns1.example.net.")
		if code != 1 || !strings.Contains(out, "(http 400)") || !strings.Contains(out, "not a zone the nodes can serve") {
			t.Errorf("zone create %s: exit %d\n%s", name, code, out)
		}
	}
	if code, out := anycastctl("zone", "list"); code != 0 || strings.Contains(out, "test.") {
		t.Errorf("refused zones listed: exit %d\n%s", code, out)
	}

	if code, out := anycastctl("zone", "create", ".", "-ns", "ns1.example.net."); code != 1 || !strings.Contains(out, "-allow-tld") {
		t.Errorf("zone create . without -allow-tld: exit %d\n%s", code, out)
	}
	if code, out := anycastctl("zone", "create", ".", "-ns", "ns1.example.net.", "-allow-tld"); code != 0 {
		t.Fatalf("zone create . -allow-tld: exit %d\n%s", code, out)
	}
	waitRcode(t, dnsAddr, ".", dns.RcodeSuccess, 5*time.Second)

	if code, out := anycastctl("zone", "delete", "."); code != 2 || !strings.Contains(out, "add -yes") {
		t.Errorf("zone delete . without -yes and no terminal: exit %d\n%s", code, out)
	}
	if code, out := anycastctl("zone", "delete", ".", "-yes"); code != 0 || out != "deleted zone .\n" {
		t.Fatalf("zone delete . -yes: exit %d\n%s", code, out)
	}
	waitRcode(t, dnsAddr, ".", dns.RcodeRefused, 5*time.Second)
	// The other zone is untouched.
	waitA(t, dnsAddr, "www.example.com.", "192.0.2.80", time.Second)
}
