//go:build linux

package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// reloadConfig serves example.com. and example.net. from files next to it.
const reloadConfig = `identity: {name: reload-node}
listen: {{.Listen}}
zones:
  - name: example.com.
    file: example.com.zone
  - name: example.net.
    file: example.net.zone
`

// TestReloadZone changes a zone file and reloads with SIGHUP; then breaks
// it with a syntax error and, separately, with a validation error: the
// previous version keeps serving and the log names the file and line.
func TestReloadZone(t *testing.T) {
	dir := t.TempDir()
	com := filepath.Join(dir, "example.com.zone")
	writeFile(t, com, zoneText("example.com.", 1))
	writeFile(t, filepath.Join(dir, "example.net.zone"), zoneText("example.net.", 1))
	n := startNode(t, nodeOpts{dir: dir, config: reloadConfig})
	addr := n.addr()

	serial := func() uint32 {
		t.Helper()
		return soaSerial(t, mustExchange(t, "udp", addr, question("example.com.", dns.TypeSOA, dns.ClassINET)))
	}
	rcode := func(name string) int {
		t.Helper()
		return mustExchange(t, "udp", addr, question(name, dns.TypeA, dns.ClassINET)).Rcode
	}
	if s := serial(); s != 1 {
		t.Fatalf("serial %d at start, want 1", s)
	}
	if rc := rcode("new.example.com."); rc != dns.RcodeNameError {
		t.Fatalf("new.example.com. before reload: %s, want NXDOMAIN", dns.RcodeToString[rc])
	}

	t.Log("valid change: new serial and a new record")
	writeFile(t, com, zoneText("example.com.", 2, "new IN A 192.0.2.2"))
	n.reload()
	if s := serial(); s != 2 {
		t.Fatalf("serial %d after reload, want 2", s)
	}
	for _, network := range []string{"udp", "tcp"} {
		expectA(t, mustExchange(t, network, addr, question("new.example.com.", dns.TypeA, dns.ClassINET)), "192.0.2.2")
	}

	// The previous version (serial 2 with new.) must keep serving through
	// each broken version.
	keeps := func(what string) {
		t.Helper()
		if s := serial(); s != 2 {
			t.Errorf("%s: serial %d, want the previous 2", what, s)
		}
		for _, network := range []string{"udp", "tcp"} {
			expectA(t, mustExchange(t, network, addr, question("new.example.com.", dns.TypeA, dns.ClassINET)), "192.0.2.2")
		}
		if rc := rcode("new2.example.com."); rc != dns.RcodeNameError {
			t.Errorf("%s: new2.example.com. %s, want NXDOMAIN (record of the rejected version)", what, dns.RcodeToString[rc])
		}
		// The other zone is untouched.
		expectA(t, mustExchange(t, "udp", addr, question("www.example.net.", dns.TypeA, dns.ClassINET)), "192.0.2.80")
	}

	t.Log("syntax error")
	writeFile(t, com, zoneText("example.com.", 3,
		"new IN A 192.0.2.2",
		"new2 IN A 192.0.2.300", // line zoneExtraLine+1: not an IPv4 address
	))
	log := n.reload()
	keeps("syntax error")
	if !logHasPos(log, com, zoneExtraLine+1) {
		t.Errorf("log of the reload does not name %s:%d (the syntax error):\n%s", com, zoneExtraLine+1, log)
	}

	t.Log("validation error: CNAME and other data")
	writeFile(t, com, zoneText("example.com.", 4,
		"new IN A 192.0.2.2",  // line zoneExtraLine
		"new IN CNAME www",    // line zoneExtraLine+1: CNAME and other data
		"new2 IN A 192.0.2.3", // valid on its own
	))
	log = n.reload()
	keeps("CNAME and other data")
	if !logHasPos(log, com, zoneExtraLine) && !logHasPos(log, com, zoneExtraLine+1) {
		t.Errorf("log of the reload names neither %s:%d nor :%d (CNAME and other data):\n%s", com, zoneExtraLine, zoneExtraLine+1, log)
	}
	if !strings.Contains(log, "CNAME") {
		t.Errorf("log of the reload does not say what is wrong (CNAME):\n%s", log)
	}

	t.Log("file removed")
	if err := os.Remove(com); err != nil {
		t.Fatal(err)
	}
	log = n.reload()
	keeps("zone file removed")
	if !strings.Contains(log, com) {
		t.Errorf("log of the reload does not name the missing file %s:\n%s", com, log)
	}

	t.Log("fixed again")
	writeFile(t, com, zoneText("example.com.", 5, "new2 IN A 192.0.2.3"))
	n.reload()
	if s := serial(); s != 5 {
		t.Errorf("serial %d after the fix, want 5", s)
	}
	expectA(t, mustExchange(t, "udp", addr, question("new2.example.com.", dns.TypeA, dns.ClassINET)), "192.0.2.3")
	if rc := rcode("new.example.com."); rc != dns.RcodeNameError {
		t.Errorf("new.example.com. after the fix: %s, want NXDOMAIN (removed)", dns.RcodeToString[rc])
	}
	if n.exited() {
		t.Fatalf("node exited: %v", n.waitErr)
	}
}

// TestReloadInvalidConfig makes the configuration invalid and reloads: the
// running configuration stays (both zones served, zones re-read from it) and
// the log names the configuration's file and line. A valid change then
// applies, which shows that the reload did read the file.
func TestReloadInvalidConfig(t *testing.T) {
	dir := t.TempDir()
	com := filepath.Join(dir, "example.com.zone")
	writeFile(t, com, zoneText("example.com.", 1))
	writeFile(t, filepath.Join(dir, "example.net.zone"), zoneText("example.net.", 1))
	n := startNode(t, nodeOpts{dir: dir, config: reloadConfig})
	addr := n.addr()

	// Drop example.net. and add an unknown key on line 3 (after the
	// "identity" and "listen" lines): the whole file must be rejected.
	n.writeConfig(`identity: {name: reload-node}
listen: {{.Listen}}
no_such_key: 1
zones:
  - name: example.com.
    file: example.com.zone
`)
	writeFile(t, com, zoneText("example.com.", 2))
	log := n.reload()
	if !logHasPos(log, n.cfgPath, 3) {
		t.Errorf("log of the reload does not name %s:3 (the unknown key):\n%s", n.cfgPath, log)
	}
	expectA(t, mustExchange(t, "udp", addr, question("www.example.net.", dns.TypeA, dns.ClassINET)), "192.0.2.80")
	if s := soaSerial(t, mustExchange(t, "udp", addr, question("example.com.", dns.TypeSOA, dns.ClassINET))); s != 2 {
		t.Errorf("example.com. serial %d after reload with a rejected configuration, want 2 (zones re-read)", s)
	}

	// Semantically invalid (validation, not syntax): a zone without a file.
	n.writeConfig(`identity: {name: reload-node}
listen: {{.Listen}}
zones:
  - name: example.com.
`)
	log = n.reload()
	if !logHasPos(log, n.cfgPath, 4) {
		t.Errorf("log of the reload does not name %s:4 (zone without file):\n%s", n.cfgPath, log)
	}
	expectA(t, mustExchange(t, "tcp", addr, question("www.example.net.", dns.TypeA, dns.ClassINET)), "192.0.2.80")

	// The configuration file is gone: still the running one.
	if err := os.Remove(n.cfgPath); err != nil {
		t.Fatal(err)
	}
	n.reload()
	expectA(t, mustExchange(t, "udp", addr, question("www.example.net.", dns.TypeA, dns.ClassINET)), "192.0.2.80")

	// A valid configuration without example.net. applies.
	n.writeConfig(`identity: {name: reload-node}
listen: {{.Listen}}
zones:
  - name: example.com.
    file: example.com.zone
`)
	n.reload()
	if r := mustExchange(t, "udp", addr, question("www.example.net.", dns.TypeA, dns.ClassINET)); r.Rcode != dns.RcodeRefused {
		t.Errorf("www.example.net. after a valid reload that removed the zone: %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
	expectA(t, mustExchange(t, "udp", addr, question("www.example.com.", dns.TypeA, dns.ClassINET)), "192.0.2.80")
	if n.exited() {
		t.Fatalf("node exited: %v", n.waitErr)
	}
}

// TestStartupZoneFailure starts with one broken zone: it is not served
// (REFUSED) while the other zone serves, the log names the file and line,
// and a reload after the fix serves it.
func TestStartupZoneFailure(t *testing.T) {
	dir := t.TempDir()
	com := filepath.Join(dir, "example.com.zone")
	writeFile(t, com, zoneText("example.com.", 1, "bad IN A 192.0.2.999"))
	writeFile(t, filepath.Join(dir, "example.net.zone"), zoneText("example.net.", 1))
	n := startNode(t, nodeOpts{dir: dir, config: reloadConfig})
	addr := n.addr()

	for _, network := range []string{"udp", "tcp"} {
		for _, q := range []*dns.Msg{
			question("www.example.com.", dns.TypeA, dns.ClassINET),
			question("example.com.", dns.TypeSOA, dns.ClassINET),
		} {
			r := mustExchange(t, network, addr, q)
			if r.Rcode != dns.RcodeRefused || len(r.Answer) != 0 {
				t.Errorf("%s %s %s (zone failed to load): rcode %s answer %q, want REFUSED", network, q.Question[0].Name,
					dns.TypeToString[q.Question[0].Qtype], dns.RcodeToString[r.Rcode], rrStrings(r.Answer))
			}
		}
		expectA(t, mustExchange(t, network, addr, question("www.example.net.", dns.TypeA, dns.ClassINET)), "192.0.2.80")
	}
	if log := n.log.String(); !logHasPos(log, com, zoneExtraLine) {
		t.Errorf("start-up log does not name %s:%d:\n%s", com, zoneExtraLine, log)
	}

	writeFile(t, com, zoneText("example.com.", 2))
	n.reload()
	expectA(t, mustExchange(t, "udp", addr, question("www.example.com.", dns.TypeA, dns.ClassINET)), "192.0.2.80")
}
