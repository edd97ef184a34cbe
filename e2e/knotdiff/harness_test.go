package knotdiff

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
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
// changes answers by client or by time.
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
	knotd := testkit.RequireTool(t, "knotd", "knot")
	var last error
	for attempt := range 3 {
		dir := filepath.Join(t.TempDir(), "knot")
		port := testkit.FreePort(t)
		conf := writeKnotConfig(t, dir, port, zones, false)
		addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
		p := startProcess(t, fmt.Sprintf("knotd#%d", attempt), addr, filepath.Join(dir, "knotd.log"), knotd, "-c", conf)
		if last = waitReady(p, zones, 20*time.Second); last == nil {
			return p
		}
		p.Stop(t)
		t.Logf("knotd attempt %d: %v\n%s", attempt, last, p.Tail(20))
	}
	t.Fatalf("knotd did not start: %v", last)
	return nil
}

// startAnycastd starts the node with the test zones on a free port and waits
// until it answers for every zone.
func startAnycastd(t *testing.T, bin string, zones []testZone) *process {
	t.Helper()
	data := testdataDir(t)
	var last error
	for attempt := range 3 {
		dir := t.TempDir()
		port := testkit.FreePort(t)
		addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
		argv := []string{bin, "node", "-listen", addr.String(), "-nsid", identity, "-log-level", "info"}
		for _, z := range zones {
			argv = append(argv, "-zone", z.origin+"="+filepath.Join(data, z.file))
		}
		p := startProcess(t, fmt.Sprintf("anycastd#%d", attempt), addr, filepath.Join(dir, "anycastd.log"), argv...)
		if last = waitReady(p, zones, 30*time.Second); last == nil {
			return p
		}
		p.Stop(t)
		t.Logf("anycastd attempt %d: %v\n%s", attempt, last, p.Tail(20))
	}
	t.Fatalf("anycastd did not start: %v", last)
	return nil
}
