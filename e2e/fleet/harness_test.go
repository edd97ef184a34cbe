package fleet

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/apiclient"
	"github.com/anycastdns/anycastdns/internal/fleet"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

const (
	token     = "fleet-test-token-0123456789"
	keyName   = "fleet-key."
	keySecret = "KmSBOQmjtyYzILPFjRYDIUmaEGkpbDVAkwbzmB8pfLE="
	catalog   = "catalog.invalid."
	nodeASN   = 64512
	routerASN = 64513
	// anycastPrefix is a documentation prefix; it only travels over BGP
	// sessions on loopback.
	anycastPrefix = "192.0.2.53/32"
)

// start runs an anycastd process until the end of the test
// (testkit.StartProcess): SIGTERM, SIGKILL 20s later; the test fails if it
// does not exit with status 0, and shows its log if it failed.
func start(t *testing.T, name, bin, logPath string, args ...string) *testkit.Process {
	t.Helper()
	p := testkit.StartProcess(t, name, logPath, append([]string{bin}, args...)...)
	p.StopAfter = 20 * time.Second
	p.CheckExit = true
	return p
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// plane is the control plane's addresses and configuration.
type plane struct {
	bin, dir, cfg            string
	api, xfr, stream, metric string
	client                   *apiclient.Client
}

// newPlane writes a control plane's configuration: API, transfer server
// with the catalog, the stream, and no NOTIFY target and no per-node
// entry at all: nodes join with the key.
func newPlane(t *testing.T, bin, dir string) *plane {
	t.Helper()
	p := &plane{bin: bin, dir: dir, cfg: filepath.Join(dir, "control.yaml"),
		api:    fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t)),
		xfr:    fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t)),
		stream: fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t)),
		metric: fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t)),
	}
	writeFile(t, p.cfg, fmt.Sprintf(`data_dir: %q
api:
  listen: %q
  tokens: [%q]
xfr:
  listen: [%q]
  tsig_keys: [{name: %s, algorithm: hmac-sha256, secret: %q}]
  allow_transfer: [{prefix: 127.0.0.0/8, key: %s}]
  catalog: {zone: %s}
stream:
  listen: [%q]
  heartbeat: 200ms
metrics: {listen: %q}
log: {level: debug}
`, filepath.Join(dir, "control"), p.api, token, p.xfr, keyName, keySecret, keyName, catalog, p.stream, p.metric))
	c, err := apiclient.New("http://"+p.api, token, &http.Client{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	p.client = c
	return p
}

// start runs the control plane and waits for its API.
func (p *plane) start(t *testing.T, log string) *testkit.Process {
	t.Helper()
	pr := start(t, "control", p.bin, filepath.Join(p.dir, log), "control", "-config", p.cfg)
	testkit.WaitHTTP(t, "http://"+p.api+"/readyz", 20*time.Second)
	return pr
}

// node is a PoP's addresses and configuration.
type node struct {
	name, dir, cfg, dns, admin, metrics, log string
}

// newNode writes the configuration of a PoP that knows nothing but the
// control plane's stream and transfer addresses and the key; with bgpPort,
// it also has a BGP speaker that accepts a router on 127.0.0.1 there.
func newNode(t *testing.T, p *plane, name string, bgpPort uint16) *node {
	t.Helper()
	dir := filepath.Join(p.dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	n := &node{name: name, dir: dir, cfg: filepath.Join(dir, "node.yaml"), log: filepath.Join(dir, "node.log"),
		dns:     fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t)),
		admin:   fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t)),
		metrics: fmt.Sprintf("127.0.0.1:%d", testkit.FreePort(t)),
	}
	writeFile(t, n.cfg, fmt.Sprintf(`identity: {name: %s}
listen: [%q]
admin: {listen: %q}
metrics: {listen: %q}
data_dir: %q
tsig_keys: [{name: %s, algorithm: hmac-sha256, secret: %q}]
catalog:
  zone: %s
  primaries: [{addr: %q, key: %s}]
control:
  servers: ["http://%s"]
  key: %s
  pop: pop-%s
log: {level: debug, format: json}
drain_period: 0s
`, name, n.dns, n.admin, n.metrics, filepath.Join(dir, "data"), keyName, keySecret, catalog, p.xfr, keyName, p.stream, keyName, name))
	if bgpPort != 0 {
		f, err := os.OpenFile(n.cfg, os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		_, err = fmt.Fprintf(f, `bgp:
  asn: %d
  router_id: 192.0.2.1
  listen_port: %d
  peers: [{address: 127.0.0.1, asn: %d, passive: true}]
  announce: [{prefix: %s}]
health: {interval: 100ms, timeout: 80ms, rise: 2, fall: 2}
`, nodeASN, bgpPort, routerASN, anycastPrefix)
		if err := errors.Join(err, f.Close()); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func (n *node) start(t *testing.T, bin string) *testkit.Process {
	t.Helper()
	pr := start(t, n.name, bin, n.log, "node", "-config", n.cfg)
	testkit.WaitHTTP(t, "http://"+n.admin+"/readyz", 20*time.Second)
	return pr
}

// waitSerial waits until the node answers zone's SOA with serial.
func waitSerial(t *testing.T, n *node, zone string, serial uint32, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got := testkit.SOASerial(n.dns, zone)
		if got == serial {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s: %s at serial %d after %v, want %d", n.name, zone, got, limit, serial)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// createZone creates a small zone through the API.
func createZone(t *testing.T, c *apiclient.Client, name string) uint32 {
	t.Helper()
	info, err := c.CreateZone(context.Background(), api.CreateZone{Name: name, Records: []string{
		"@ 3600 IN SOA ns1 hostmaster 1 3600 600 604800 60",
		"@ 3600 IN NS ns1",
		"ns1 3600 IN A 192.0.2.53",
	}})
	if err != nil {
		t.Fatal(err)
	}
	return info.Serial
}

// member returns a node's entry in the fleet.
func member(v fleet.View, name string) (fleet.MemberView, bool) {
	for _, m := range v.Members {
		if m.Node == name {
			return m, true
		}
	}
	return fleet.MemberView{}, false
}
