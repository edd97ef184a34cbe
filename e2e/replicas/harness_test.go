//go:build linux

package replicas

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/apiclient"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

const (
	token     = "replicas-test-token-0123456789"
	keyName   = "replicas-key."
	keySecret = "H85wLAx/Fa9n7pdln+wAN9mn7Cj+gF/2pp3i2WsO47w="
	catalog   = "catalog.invalid."
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// start runs an anycastd process until the end of the test: SIGTERM,
// SIGKILL 20 s later; the test fails if it does not exit with status 0,
// and shows the end of its log if the test failed.
func start(t *testing.T, name, bin, logPath string, args ...string) *testkit.Process {
	t.Helper()
	p := testkit.StartProcess(t, name, logPath, append([]string{bin}, args...)...)
	p.StopAfter = 20 * time.Second
	p.CheckExit = true
	return p
}

// replica is one `anycastd control` on the shared database.
type replica struct {
	name, dir, cfg, log      string
	api, xfr, stream, metric string
	client                   *apiclient.Client
	proc                     *testkit.Process
}

// newReplica writes the configuration of a control plane on the
// PostgreSQL database dsn: API, transfer server with the catalog, the
// stream, all on loopback ports of its own, and no per-node entry (nodes
// join with the key).
func newReplica(t *testing.T, name, dir, dsn string, clients int) *replica {
	t.Helper()
	dir = filepath.Join(dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	r := &replica{name: name, dir: dir, cfg: filepath.Join(dir, "control.yaml"), log: filepath.Join(dir, "control.log"),
		api: testkit.FreeAddr(t), xfr: testkit.FreeAddr(t), stream: testkit.FreeAddr(t), metric: testkit.FreeAddr(t)}
	writeFile(t, r.cfg, fmt.Sprintf(`data_dir: %q
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
store:
  postgres:
    dsn: %q
log: {level: info}
`, filepath.Join(dir, "data"), r.api, token, r.xfr, keyName, keySecret, keyName, catalog, r.stream, r.metric, dsn))
	// One idle connection per writer, so that the writers do not open a
	// new connection for most requests.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = clients
	c, err := apiclient.New("http://"+r.api, token, &http.Client{Timeout: requestBound, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	r.client = c
	return r
}

// start runs the replica; ready waits for its API.
func (r *replica) start(t *testing.T, bin string) {
	t.Helper()
	r.proc = start(t, r.name, bin, r.log, "control", "-config", r.cfg)
}

func (r *replica) ready(t *testing.T) {
	t.Helper()
	testkit.WaitHTTP(t, "http://"+r.api+"/readyz", 30*time.Second)
}

// node is one `anycastd node` following the replicas.
type node struct {
	name, dir, cfg, log, dns, admin, metrics string
	proc                                     *testkit.Process
}

// newNode writes the configuration of a node that lists the replicas, in
// the order given, as the catalog's primaries and as stream servers.
func newNode(t *testing.T, name, dir string, order []*replica) *node {
	t.Helper()
	dir = filepath.Join(dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	n := &node{name: name, dir: dir, cfg: filepath.Join(dir, "node.yaml"), log: filepath.Join(dir, "node.log"),
		dns: testkit.FreeAddr(t), admin: testkit.FreeAddr(t), metrics: testkit.FreeAddr(t)}
	var primaries, servers []string
	for _, r := range order {
		primaries = append(primaries, fmt.Sprintf("{addr: %q, key: %s}", r.xfr, keyName))
		servers = append(servers, fmt.Sprintf("%q", "http://"+r.stream))
	}
	writeFile(t, n.cfg, fmt.Sprintf(`identity: {name: %s}
listen: [%q]
admin: {listen: %q}
metrics: {listen: %q}
data_dir: %q
tsig_keys: [{name: %s, algorithm: hmac-sha256, secret: %q}]
catalog:
  zone: %s
  primaries: [%s]
control:
  servers: [%s]
  key: %s
  pop: pop-%s
log: {level: info, format: json}
drain_period: 0s
`, name, n.dns, n.admin, n.metrics, filepath.Join(dir, "data"), keyName, keySecret, catalog,
		strings.Join(primaries, ", "), strings.Join(servers, ", "), keyName, name))
	return n
}

func (n *node) start(t *testing.T, bin string) {
	t.Helper()
	n.proc = start(t, n.name, bin, n.log, "node", "-config", n.cfg)
	testkit.WaitHTTP(t, "http://"+n.admin+"/readyz", 30*time.Second)
}

// axfr transfers zone from a replica with the key.
func axfr(addr, zone string) ([]dns.RR, error) {
	m := new(dns.Msg)
	m.SetAxfr(zone)
	m.SetTsig(keyName, dns.HmacSHA256, 300, time.Now().Unix())
	tr := &dns.Transfer{TsigSecret: map[string]string{keyName: keySecret}, ReadTimeout: 30 * time.Second}
	ch, err := tr.In(m, addr)
	if err != nil {
		return nil, fmt.Errorf("axfr %s from %s: %w", zone, addr, err)
	}
	var rrs []dns.RR
	for env := range ch {
		if env.Error != nil {
			return nil, fmt.Errorf("axfr %s from %s: %w", zone, addr, env.Error)
		}
		rrs = append(rrs, env.RR...)
	}
	return rrs, nil
}
