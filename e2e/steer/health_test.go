//go:build linux

package steer

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/admin"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

// TestHealthFailover (issue #14 items 1–3): a control plane, two nodes and
// two monitors (real anycastd processes); a pool with `up` over two HTTP
// endpoints on loopback. When one endpoint fails its check it leaves both
// nodes' answers within 2 probe intervals + 1 s, and it comes back after
// rise passing probes; both nodes hold the same steering state version.
func TestHealthFailover(t *testing.T) {
	bin, ctlBin := testkit.BuildAnycastd(t), testkit.BuildAnycastctl(t)
	dir := t.TempDir()

	// The two endpoints: one port, 127.0.0.1 and 127.0.0.2.
	var fail atomic.Bool
	h1 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "svc ok") }))
	t.Cleanup(h1.Close)
	port := h1.Listener.Addr().(*net.TCPAddr).Port
	ln2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.2:%d", port))
	if err != nil {
		t.Skipf("127.0.0.2:%d: %v", port, err)
	}
	h2 := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			http.Error(w, "broken", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "svc ok")
	}))
	h2.Listener = ln2
	h2.Start()
	t.Cleanup(h2.Close)

	apiAddr, xfrAddr, streamAddr := testkit.FreeAddr(t), testkit.FreeAddr(t), testkit.FreeAddr(t)
	ctlCfg := filepath.Join(dir, "control.yaml")
	write(t, ctlCfg, fmt.Sprintf(`data_dir: %q
api: {listen: %q, tokens: [%q]}
xfr:
  listen: [%q]
  tsig_keys: [{name: %s, algorithm: hmac-sha256, secret: %q}]
  allow_transfer: [{prefix: 127.0.0.0/8, key: %s}]
  catalog: {zone: catalog.invalid.}
stream: {listen: [%q], heartbeat: 200ms}
`, filepath.Join(dir, "control"), apiAddr, token, xfrAddr, keyName, keySecret, keyName, streamAddr))
	run(t, filepath.Join(dir, "control.log"), bin, "control", "-config", ctlCfg)
	waitReady(t, "http://"+apiAddr+"/readyz")

	type node struct{ dns, admin string }
	var nodes []node
	for i := range 2 {
		name := fmt.Sprintf("pop%d", i)
		n := node{testkit.FreeAddr(t), testkit.FreeAddr(t)}
		cfg := filepath.Join(dir, name+".yaml")
		write(t, cfg, fmt.Sprintf(`identity: {name: %s}
listen: [%q]
admin: {listen: %q}
data_dir: %q
tsig_keys: [{name: %s, algorithm: hmac-sha256, secret: %q}]
catalog:
  zone: catalog.invalid.
  primaries: [{addr: %q, key: %s}]
control: {servers: ["http://%s"], key: %s, pop: %s}
drain_period: 0s
`, name, n.dns, n.admin, filepath.Join(dir, name), keyName, keySecret, xfrAddr, keyName, streamAddr, keyName, name))
		run(t, filepath.Join(dir, name+".log"), bin, "node", "-config", cfg)
		waitReady(t, "http://"+n.admin+"/readyz")
		nodes = append(nodes, n)
	}

	ctl(t, ctlBin, apiAddr, "zone", "create", "example.com", "-ns", "ns1")
	const interval, rise = 200 * time.Millisecond, 2
	pool := filepath.Join(dir, "pool.json")
	write(t, pool, fmt.Sprintf(`{"ttl": 5, "policy": ["up"],
 "check": {"type": "http", "port": %d, "path": "/health", "body": "ok", "interval": "%v", "timeout": "150ms",
           "rise": %d, "fall": 2, "quorum": 2},
 "endpoints": [{"address": "127.0.0.1"}, {"address": "127.0.0.2"}]}`, port, interval, rise))
	ctl(t, ctlBin, apiAddr, "pool", "set", "example.com", "svc", "A", "-file", pool)

	for _, v := range []string{"m1", "m2"} {
		cfg := filepath.Join(dir, v+".yaml")
		write(t, cfg, fmt.Sprintf(`vantage: %s
listen: %q
canary_zone: example.com.
interval: 200ms
timeout: 150ms
rise: 1
fall: 2
window: 2s
pops:
  - {name: pop0, dns: %q}
  - {name: pop1, dns: %q}
report: {url: "http://%s", token: %q}
`, v, testkit.FreeAddr(t), nodes[0].dns, nodes[1].dns, apiAddr, token))
		run(t, filepath.Join(dir, v+".log"), bin, "monitor", "-config", cfg)
	}

	c := &dns.Client{Timeout: time.Second}
	both, one := "127.0.0.1/5127.0.0.2/5", "127.0.0.1/5"
	// every waits until every node answers want, polling every 5 ms, and
	// returns how long it took.
	every := func(want string, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for _, n := range nodes {
			for {
				a, _ := tryAsk(c, n.dns, "svc.example.com.")
				if a == want {
					break
				}
				if time.Since(start) > within {
					t.Fatalf("%s answers %q, want %q, after %v", n.dns, a, want, within)
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		return time.Since(start)
	}
	status := func(addr string) *admin.Steering {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, err := admin.NewClient("http://"+addr, nil).Status(ctx)
		if err != nil {
			t.Fatalf("status of %s: %v", addr, err)
		}
		return st.Steering
	}
	// The monitors read the pool (within their 5 s refresh) and report
	// both endpoints up: a first state reaches both nodes.
	every(both, 10*time.Second)
	deadline := time.Now().Add(15 * time.Second)
	for st := status(nodes[0].admin); st == nil || len(st.Endpoints) != 2; st = status(nodes[0].admin) {
		if time.Now().After(deadline) {
			t.Fatalf("no steering state with both endpoints on %s: %+v", nodes[0].admin, st)
		}
		time.Sleep(20 * time.Millisecond)
	}

	bound := 2*interval + time.Second
	for round := range 3 {
		fail.Store(true)
		down := every(one, 5*time.Second)
		if down > bound {
			t.Errorf("round %d: 127.0.0.2 left both nodes' answers after %v, want within %v", round, down, bound)
		}
		s0, s1 := status(nodes[0].admin), status(nodes[1].admin)
		if s0 == nil || s1 == nil || s0.Version != s1.Version {
			t.Errorf("round %d: steering versions %+v and %+v, want the same", round, s0, s1)
		}
		fail.Store(false)
		up := every(both, 5*time.Second)
		if up < time.Duration(rise-1)*interval {
			t.Errorf("round %d: back after %v, before rise (%d probes at %v)", round, up, rise, interval)
		}
		t.Logf("FIGURE round %d: endpoint gone from both nodes %v after its check started failing (bound %v); back %v after it passed again (rise %d × %v)",
			round, down.Round(time.Millisecond), bound, up.Round(time.Millisecond), rise, interval)
	}
	out := ctl(t, ctlBin, apiAddr, "pool", "status", "example.com")
	if !strings.Contains(out, "svc.example.com./A  127.0.0.2") || !strings.Contains(out, "m1") || !strings.Contains(out, "m2") {
		t.Errorf("pool status:\n%s", out)
	}
	t.Logf("anycastctl pool status example.com:\n%s", out)
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
