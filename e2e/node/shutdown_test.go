//go:build linux

package node

import (
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestSIGTERM stops a busy node with SIGTERM: it must exit with status 0
// within a few seconds, with TCP clients connected (idle and mid-message),
// and leave every port it used free.
func TestSIGTERM(t *testing.T) {
	v6 := haveIPv6()
	if !v6 {
		t.Log("::1 is not available: testing 127.0.0.1 only, skipping the IPv6 part")
	}
	for _, mode := range []string{"config", "flags"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			zf := filepath.Join(dir, "example.com.zone")
			writeFile(t, zf, zoneText("example.com.", 1))
			o := nodeOpts{dir: dir, v6: v6, metrics: true}
			if mode == "config" {
				o.config = `identity: {name: term-node}
listen: {{.Listen}}
zones:
  - name: example.com.
    file: example.com.zone
metrics: {listen: "{{.MetricsAddr}}"}
`
			} else {
				o.args = func(p ports) []string {
					args := []string{"-zone", "example.com.=" + zf, "-metrics", p.MetricsAddr()}
					for _, a := range p.DNSAddrs() {
						args = append(args, "-listen", a.String())
					}
					return args
				}
			}
			n := startNode(t, o)

			for _, a := range n.ports.DNSAddrs() {
				expectA(t, mustExchange(t, "udp", a, question("www.example.com.", dns.TypeA, dns.ClassINET)), "192.0.2.80")
			}
			// Clients that hold connections open must not delay the exit.
			idle := dialTCP(t, n.addr())
			if _, err := tcpQuery(idle, question("www.example.com.", dns.TypeA, dns.ClassINET), 3*time.Second); err != nil {
				t.Fatalf("tcp query: %v", err)
			}
			partial := dialTCP(t, n.ports.DNSAddrs()[len(n.ports.DNSAddrs())-1])
			if _, err := partial.Write([]byte{0, 40, 0x12}); err != nil {
				t.Fatal(err)
			}
			dialTCP(t, netip.MustParseAddrPort(n.ports.MetricsAddr())) // an idle HTTP client

			n.signal(syscall.SIGTERM)
			select {
			case <-n.done:
			case <-time.After(10 * time.Second):
				t.Fatalf("still running 10s after SIGTERM")
			}
			if code := n.cmd.ProcessState.ExitCode(); code != 0 {
				t.Fatalf("exit status %d after SIGTERM (%v), want 0", code, n.waitErr)
			}
			if log := n.log.String(); strings.Contains(log, "level=ERROR") {
				t.Errorf("errors logged during a clean shutdown:\n%s", log)
			}

			// The node's sockets are gone: plain binds (no SO_REUSEPORT,
			// which would share a port with a leftover socket) succeed.
			for _, a := range n.ports.DNSAddrs() {
				checkFree(t, "udp", a.String())
				checkFree(t, "tcp", a.String())
			}
			checkFree(t, "tcp", n.ports.MetricsAddr())
			// And nothing answers there any more.
			if _, err := exchange("tcp", n.addr(), question("www.example.com.", dns.TypeA, dns.ClassINET), time.Second); err == nil {
				t.Errorf("a TCP query was answered after the node exited")
			}
		})
	}
}

// checkFree binds network addr without SO_REUSEPORT and releases it.
func checkFree(t *testing.T, network, addr string) {
	t.Helper()
	var err error
	switch network {
	case "udp":
		var pc net.PacketConn
		if pc, err = net.ListenPacket("udp", addr); err == nil {
			pc.Close()
		}
	default:
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			ln.Close()
		}
	}
	if err != nil {
		t.Errorf("%s %s still taken after the node exited: %v", network, addr, err)
	}
}
