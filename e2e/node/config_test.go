//go:build linux

package node

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/miekg/dns"
)

const (
	testName    = "e2e-pop-1"
	testVersion = "e2e-version-7"
)

// identityConfig is a node configuration with two zones from files relative
// to the configuration's directory and the given identity switches.
func identityConfig(nsid, idServer, hostnameBind, versionBind bool) string {
	return fmt.Sprintf(`identity:
  name: %s
  nsid: %t
  id_server: %t
  hostname_bind: %t
  version_bind: %t
  version: %q
listen: {{.Listen}}
zones:
  - name: example.com.
    file: example.com.zone
  - name: example.net
    file: zones/example.net.zone
log:
  level: debug
`, testName, nsid, idServer, hostnameBind, versionBind, testVersion)
}

// writeTwoZones writes example.com. and example.net. into dir.
func writeTwoZones(t *testing.T, dir string) {
	t.Helper()
	writeFile(t, filepath.Join(dir, "example.com.zone"), zoneText("example.com.", 1, "mail IN A 192.0.2.25"))
	mkdir(t, filepath.Join(dir, "zones"))
	writeFile(t, filepath.Join(dir, "zones", "example.net.zone"), zoneText("example.net.", 2, "mail IN A 198.51.100.25"))
}

// TestConfigFile runs the node from a configuration file on 127.0.0.1 and
// ::1 with two zones, and checks answers and the identity answers over UDP
// and TCP on every address.
func TestConfigFile(t *testing.T) {
	v6 := haveIPv6()
	if !v6 {
		t.Log("::1 is not available: testing 127.0.0.1 only, skipping the IPv6 part")
	}
	dir := t.TempDir()
	writeTwoZones(t, dir)
	n := startNode(t, nodeOpts{dir: dir, v6: v6, config: identityConfig(true, true, true, true)})

	for _, addr := range n.ports.DNSAddrs() {
		for _, network := range []string{"udp", "tcp"} {
			t.Run(fmt.Sprintf("%s/%s", network, addr), func(t *testing.T) {
				expectA(t, mustExchange(t, network, addr, question("mail.example.com.", dns.TypeA, dns.ClassINET)), "192.0.2.25")
				expectA(t, mustExchange(t, network, addr, question("MAIL.Example.NET.", dns.TypeA, dns.ClassINET)), "198.51.100.25")
				if s := soaSerial(t, mustExchange(t, network, addr, question("example.net.", dns.TypeSOA, dns.ClassINET))); s != 2 {
					t.Errorf("example.net. SOA serial %d, want 2", s)
				}
				r := mustExchange(t, network, addr, question("nope.example.com.", dns.TypeA, dns.ClassINET))
				if r.Rcode != dns.RcodeNameError || !r.Authoritative {
					t.Errorf("nope.example.com. A: rcode %s aa=%t, want NXDOMAIN aa=true", dns.RcodeToString[r.Rcode], r.Authoritative)
				}
				r = mustExchange(t, network, addr, question("example.org.", dns.TypeSOA, dns.ClassINET))
				if r.Rcode != dns.RcodeRefused {
					t.Errorf("example.org. SOA (not served): rcode %s, want REFUSED", dns.RcodeToString[r.Rcode])
				}
				checkIdentity(t, network, addr, identityWant{nsid: true, idServer: true, hostnameBind: true, versionBind: true})
			})
		}
	}
}

// TestConfigIdentityOff turns each identity answer off in turn and checks
// that exactly that one stops: NSID absent, the CH TXT names REFUSED.
func TestConfigIdentityOff(t *testing.T) {
	for _, tc := range []struct {
		name string
		want identityWant
	}{
		{"nsid", identityWant{nsid: false, idServer: true, hostnameBind: true, versionBind: true}},
		{"id_server", identityWant{nsid: true, idServer: false, hostnameBind: true, versionBind: true}},
		{"hostname_bind", identityWant{nsid: true, idServer: true, hostnameBind: false, versionBind: true}},
		{"version_bind", identityWant{nsid: true, idServer: true, hostnameBind: true, versionBind: false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeTwoZones(t, dir)
			w := tc.want
			n := startNode(t, nodeOpts{dir: dir, config: identityConfig(w.nsid, w.idServer, w.hostnameBind, w.versionBind)})
			for _, network := range []string{"udp", "tcp"} {
				checkIdentity(t, network, n.addr(), w)
			}
			// Zones are unaffected.
			expectA(t, mustExchange(t, "udp", n.addr(), question("www.example.net.", dns.TypeA, dns.ClassINET)), "192.0.2.80")
		})
	}
}

// identityWant says which identity answers are on.
type identityWant struct {
	nsid, idServer, hostnameBind, versionBind bool
}

// checkIdentity queries NSID and the CH TXT identity names.
func checkIdentity(t *testing.T, network string, addr netip.AddrPort, w identityWant) {
	t.Helper()
	r := mustExchange(t, network, addr, withNSID(question("www.example.com.", dns.TypeA, dns.ClassINET)))
	expectA(t, r, "192.0.2.80")
	got, ok := nsid(r)
	switch {
	case w.nsid && (!ok || got != testName):
		t.Errorf("%s NSID: got %q (present %t), want %q", network, got, ok, testName)
	case !w.nsid && ok:
		t.Errorf("%s NSID: got %q, want no NSID option (nsid: false)", network, got)
	}
	if r.IsEdns0() == nil {
		t.Errorf("%s: EDNS query answered without OPT", network)
	}
	for _, c := range []struct {
		name string
		on   bool
		text string
	}{
		{"id.server.", w.idServer, testName},
		{"ID.SERVER.", w.idServer, testName},
		{"hostname.bind.", w.hostnameBind, testName},
		{"version.bind.", w.versionBind, testVersion},
		{"version.server.", w.versionBind, testVersion},
	} {
		r := mustExchange(t, network, addr, question(c.name, dns.TypeTXT, dns.ClassCHAOS))
		text, err := chaosTXT(r)
		switch {
		case c.on && err != nil:
			t.Errorf("%s CH TXT %s: %v, want %q", network, c.name, err, c.text)
		case c.on && text != c.text:
			t.Errorf("%s CH TXT %s: %q, want %q", network, c.name, text, c.text)
		case !c.on && r.Rcode != dns.RcodeRefused:
			t.Errorf("%s CH TXT %s (turned off): rcode %s answer %q, want REFUSED",
				network, c.name, dns.RcodeToString[r.Rcode], rrStrings(r.Answer))
		case !c.on && len(r.Answer) != 0:
			t.Errorf("%s CH TXT %s (turned off): answer %q, want none", network, c.name, rrStrings(r.Answer))
		}
	}
}
