package knotdiff

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

// identity is the server identity both servers are given: the EDNS NSID
// payload and the CH TXT answer for id.server. and hostname.bind.
const identity = "knotdiff-node"

// knotVersion is what Knot answers to CH TXT version.bind.
const knotVersion = "knotdiff-knot"

// testZone is one zone both servers serve.
type testZone struct {
	origin string // fully qualified, lower case
	file   string // file name in testdata/
}

// testZones lists every zone of the test, in testdata/.
func testZones() []testZone {
	return []testZone{
		{origin: "example.com.", file: "example.com.zone"},
		{origin: "example.net.", file: "example.net.zone"},
		{origin: "types.example.", file: "types.example.zone"},
		{origin: "nsec.example.", file: "nsec.example.zone"},
		{origin: "nsec3.example.", file: "nsec3.example.zone"},
		// Children served beside their parents: DS at their apex comes
		// from the parent (RFC 4035 §3.1.4.1). orphan.example.com. has no
		// delegation in example.com.
		{origin: "kid.example.com.", file: "kid.example.com.zone"},
		{origin: "kidnods.example.com.", file: "kidnods.example.com.zone"},
		{origin: "orphan.example.com.", file: "orphan.example.com.zone"},
		{origin: "kid.nsec.example.", file: "kid.nsec.example.zone"},
		{origin: "kidnods.nsec.example.", file: "kidnods.nsec.example.zone"},
		{origin: "kid.nsec3.example.", file: "kid.nsec3.example.zone"},
		{origin: "kidnods.nsec3.example.", file: "kidnods.nsec3.example.zone"},
	}
}

// signedZones lists the pre-signed zones of testZones, made by
// testdata/sign.sh from their *.unsigned sources.
func signedZones() []testZone {
	var out []testZone
	for _, z := range testZones() {
		switch z.origin {
		case "nsec.example.", "nsec3.example.", "kid.nsec.example.", "kid.nsec3.example.":
			out = append(out, z)
		}
	}
	return out
}

// testdataDir returns the absolute path of testdata/.
func testdataDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatalf("testdata path: %v", err)
	}
	return dir
}

// execOutput runs a program to completion and returns its combined output.
func execOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// process is a server process started by the test, with the address it
// answers on.
type process struct {
	*testkit.Process
	addr netip.AddrPort
}

// startProcess starts a server with its stdout and stderr in logPath
// (testkit.StartProcess: stopped when the test ends, its log printed if
// the test failed).
func startProcess(t *testing.T, name string, addr netip.AddrPort, logPath string, argv ...string) *process {
	t.Helper()
	return &process{Process: testkit.StartProcess(t, name, logPath, argv...), addr: addr}
}

// waitReady polls until the server answers an authoritative SOA for every
// zone over UDP and for the first zone over TCP, the process exits, or the
// timeout passes.
func waitReady(p *process, zones []testZone, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if p.Exited() {
			if p.Err() == nil {
				return fmt.Errorf("%s exited with status 0 before it was ready", p.Name)
			}
			return fmt.Errorf("%s exited before it was ready: %w", p.Name, p.Err())
		}
		last = answersSOA(p.addr, zones)
		if last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %v: %w", p.Name, timeout, last)
}

func answersSOA(addr netip.AddrPort, zones []testZone) error {
	for i, z := range zones {
		nets := []string{"udp"}
		if i == 0 {
			nets = append(nets, "tcp")
		}
		for _, network := range nets {
			m := new(dns.Msg)
			m.SetQuestion(z.origin, dns.TypeSOA)
			m.RecursionDesired = false
			wire, err := m.Pack()
			if err != nil {
				return fmt.Errorf("pack soa query: %w", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			resp, err := exchange(ctx, network, addr, wire)
			cancel()
			if err != nil {
				return fmt.Errorf("soa %s over %s: %w", z.origin, network, err)
			}
			r := new(dns.Msg)
			if err := r.Unpack(resp); err != nil {
				return fmt.Errorf("soa %s over %s: unpack: %w", z.origin, network, err)
			}
			if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 || r.Answer[0].Header().Rrtype != dns.TypeSOA {
				return fmt.Errorf("soa %s over %s: not an authoritative SOA answer: rcode %s aa=%t answers %d",
					z.origin, network, dns.RcodeToString[r.Rcode], r.Authoritative, len(r.Answer))
			}
		}
	}
	return nil
}

// knotConfig is the knot.conf of the oracle: the zones as they are in
// testdata/, no signing, no journal, no writing back to the zone files.
//
// Knot applies response rate limiting and DNS cookies only through the
// rrl and cookies modules, which are not loaded here; no other Knot feature
// changes answers by client or by time. edns-client-subnet makes Knot
// validate and echo ECS options (RFC 7871) as anycastd does: without it
// Knot ignores them.
func knotConfig(dir, dirs string, port uint16, zoneDir string, zones []testZone, semanticChecks bool) string {
	var b bytes.Buffer
	checks := "off"
	if semanticChecks {
		checks = "on"
	}
	fmt.Fprintf(&b, `server:
    listen: 127.0.0.1@%d
    rundir: %q
    nsid: %q
    identity: %q
    version: %q
    udp-max-payload: 1232
    answer-rotation: off
    edns-client-subnet: on

%stemplate:
  - id: default
    storage: %q
    dnssec-signing: off
    semantic-checks: %s
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none

zone:
`, port, filepath.Join(dir, "run"), identity, identity, knotVersion, dirs, zoneDir, checks)
	for _, z := range zones {
		fmt.Fprintf(&b, "  - domain: %s\n    file: %s\n", z.origin, z.file)
	}
	return b.String()
}

// writeKnotConfig writes knot.conf and the directories it names into dir.
func writeKnotConfig(t *testing.T, dir string, port uint16, zones []testZone, semanticChecks bool) string {
	t.Helper()
	path := filepath.Join(dir, "knot.conf")
	conf := knotConfig(dir, testkit.KnotDirs(t, dir), port, testdataDir(t), zones, semanticChecks)
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatalf("write knot.conf: %v", err)
	}
	return path
}

// startKnot starts knotd with the test zones on a free port and waits until
// it answers for every zone.
func startKnot(t *testing.T, zones []testZone) *process {
	t.Helper()
	return startKnotWith(t, "knotd", zones, nil)
}

// startKnotWith is startKnot with edit applied to knot.conf (nil: none).
func startKnotWith(t *testing.T, name string, zones []testZone, edit func(t *testing.T, conf string) string) *process {
	t.Helper()
	knotd := testkit.RequireTool(t, "knotd", "knot")
	return startServer(t, name, zones, 20*time.Second, func(dir string, addr netip.AddrPort, name string) *process {
		conf := writeKnotConfig(t, dir, addr.Port(), zones, false)
		if edit != nil {
			b, err := os.ReadFile(conf)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(conf, []byte(edit(t, string(b))), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return startProcess(t, name, addr, filepath.Join(dir, "knotd.log"), knotd, "-c", conf)
	})
}

// startServer starts a server with start, in a new directory and on a
// free port, and waits until it answers for every zone. One that does not
// come up (its port taken meanwhile) is tried again on another port, three
// times at most.
func startServer(t *testing.T, name string, zones []testZone, timeout time.Duration, start func(dir string, addr netip.AddrPort, name string) *process) *process {
	t.Helper()
	var last error
	for attempt := range 3 {
		addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), testkit.FreePort(t))
		p := start(filepath.Join(t.TempDir(), "srv"), addr, fmt.Sprintf("%s#%d", name, attempt))
		if last = waitReady(p, zones, timeout); last == nil {
			return p
		}
		p.Stop(t)
		t.Logf("%s attempt %d: %v\n%s", name, attempt, last, p.Tail(20))
	}
	t.Fatalf("%s did not start: %v", name, last)
	return nil
}

// startAnycastd starts the node with the test zones on a free port and waits
// until it answers for every zone.
func startAnycastd(t *testing.T, bin string, zones []testZone) *process {
	t.Helper()
	data := testdataDir(t)
	return startServer(t, "anycastd", zones, 30*time.Second, func(dir string, addr netip.AddrPort, name string) *process {
		argv := []string{bin, "node", "-listen", addr.String(), "-nsid", identity, "-log-level", "info"}
		for _, z := range zones {
			argv = append(argv, "-zone", z.origin+"="+filepath.Join(data, z.file))
		}
		return startProcess(t, name, addr, filepath.Join(t.TempDir(), "anycastd.log"), argv...)
	})
}

// startAnycastdConfig starts the node with the test zones and the YAML
// extra in its configuration file.
func startAnycastdConfig(t *testing.T, name string, zones []testZone, extra string) *process {
	t.Helper()
	bin := testkit.BuildAnycastd(t)
	return startServer(t, name, zones, 30*time.Second, func(dir string, addr netip.AddrPort, name string) *process {
		var zs strings.Builder
		for _, z := range zones {
			fmt.Fprintf(&zs, "  - name: %s\n    file: %s\n", z.origin, filepath.Join(testdataDir(t), z.file))
		}
		conf := fmt.Sprintf("listen: [%q]\nzones:\n%s%s", addr, zs.String(), extra)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "node.yaml")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		return startProcess(t, name, addr, filepath.Join(dir, "anycastd.log"), bin, "node", "-config", path)
	})
}
