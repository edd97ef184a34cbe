//go:build linux

package monitor

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/role/monitor"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

// start runs bin with args through testkit (its log in the test's
// directory), which stops it when the test ends and fails the test if it
// did not exit with status 0. A test may have stopped it (SIGSTOP), so it
// gets SIGCONT first: cleanups run last-in first-out, so the one added
// here runs before testkit's SIGTERM.
func start(t *testing.T, name, bin string, args ...string) *exec.Cmd {
	t.Helper()
	p := testkit.StartProcess(t, name, filepath.Join(t.TempDir(), name+".log"), append([]string{bin}, args...)...)
	p.CheckExit = true
	t.Cleanup(func() { _ = p.Cmd.Process.Signal(syscall.SIGCONT) })
	return p.Cmd
}

const zone = `$ORIGIN canary.test.
$TTL 60
@ IN SOA ns1 hostmaster 2026010101 3600 600 86400 60
@ IN NS ns1
ns1 IN A 192.0.2.53
`

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// view reads the monitor's view.
func view(t *testing.T, url string) monitor.View {
	t.Helper()
	resp, err := http.Get(url + monitor.PathView) //nolint:noctx // a test on loopback
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var v monitor.View
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("decode view: %v", err)
	}
	return v
}

func pop(v monitor.View, name string) monitor.PoPView {
	for _, p := range v.PoPs {
		if p.Name == name {
			return p
		}
	}
	return monitor.PoPView{}
}

// waitFor polls the view until ok holds or the deadline passes, and
// returns the view and when it held.
func waitFor(t *testing.T, url string, within time.Duration, what string, ok func(monitor.View) bool) (monitor.View, time.Time) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		v := view(t, url)
		if ok(v) {
			return v, time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; view: %+v", what, within, v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMonitorSeesNodes: the monitor sees two nodes up with RTTs and load;
// a frozen node (SIGSTOP) goes down after fall rounds and comes back up
// after rise rounds once resumed.
func TestMonitorSeesNodes(t *testing.T) {
	bin := testkit.BuildAnycastd(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "canary.zone"), zone)

	type node struct {
		name, ip   string
		dns, admin uint16
		cmd        *exec.Cmd
	}
	nodes := []*node{{name: "A-pop", ip: "127.0.0.2"}, {name: "B-pop", ip: "127.0.0.3"}}
	for _, n := range nodes {
		n.dns, n.admin = testkit.FreePort(t), testkit.FreePort(t)
		cfg := filepath.Join(dir, n.name+".yaml")
		write(t, cfg, fmt.Sprintf(`listen: ["%s:%d"]
identity: {name: %s}
zones:
  - {name: canary.test., file: canary.zone}
admin: {listen: "%s:%d"}
log: {level: debug}
`, n.ip, n.dns, n.name, n.ip, n.admin))
		n.cmd = start(t, n.name, bin, "node", "-config", cfg)
	}
	const (
		interval = 200 * time.Millisecond
		rise     = 2
		fall     = 3
	)
	mport := testkit.FreePort(t)
	mcfg := filepath.Join(dir, "monitor.yaml")
	write(t, mcfg, fmt.Sprintf(`vantage: e2e
listen: 127.0.0.1:%d
canary_zone: canary.test
interval: %v
timeout: 150ms
rise: %d
fall: %d
window: 10s
pops:
  - {name: A-pop, dns: "127.0.0.2:%d", load: "http://127.0.0.2:%d"}
  - {name: B-pop, dns: "127.0.0.3:%d", load: "http://127.0.0.3:%d"}
`, mport, interval, rise, fall, nodes[0].dns, nodes[0].admin, nodes[1].dns, nodes[1].admin))
	start(t, "monitor", bin, "monitor", "-config", mcfg)
	url := fmt.Sprintf("http://127.0.0.1:%d", mport)

	// The monitor's listener comes up; then both PoPs are up, with RTTs
	// and a load that counts the monitor's own queries.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url + "/readyz") //nolint:noctx // a test on loopback
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("monitor not ready within 10 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	v, _ := waitFor(t, url, 10*time.Second, "both PoPs up with a load", func(v monitor.View) bool {
		for _, n := range nodes {
			p := pop(v, n.name)
			if p.State != monitor.StateUp || p.Load == nil || p.Load.QueriesPerSecond <= 0 {
				return false
			}
		}
		return true
	})
	for _, n := range nodes {
		p := pop(v, n.name)
		if !p.UDP.OK || !p.TCP.OK || p.UDP.P95ms <= 0 || p.TCP.P50ms <= 0 || p.UDP.Serial != 2026010101 {
			t.Errorf("%s: udp %+v tcp %+v, want passing probes with RTTs and serial 2026010101", n.name, p.UDP, p.TCP)
		}
		if p.Load.Node != n.name || p.Load.Interval <= 0 || p.LoadError != "" {
			t.Errorf("%s: load %+v (error %q), want the node's own", n.name, p.Load, p.LoadError)
		}
	}

	// Freeze B: down after fall failing rounds; A stays up.
	b := nodes[1]
	if err := b.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	v, downAt := waitFor(t, url, 10*time.Second, "B-pop down", func(v monitor.View) bool { return pop(v, "B-pop").State == monitor.StateDown })
	took := downAt.Sub(stopped)
	t.Logf("B-pop down %v after SIGSTOP (fall %d × interval %v)", took, fall, interval)
	if took < (fall-1)*interval {
		t.Errorf("B-pop down after %v, before %d failing rounds could have run", took, fall)
	}
	if p := pop(v, "B-pop"); p.Fails < fall || p.UDP.OK || p.TCP.OK || p.UDP.Error == "" {
		t.Errorf("B-pop down: %+v", p)
	}
	if p := pop(v, "A-pop"); p.State != monitor.StateUp {
		t.Errorf("A-pop while B is frozen: %+v, want up", p)
	}

	// Resume B: up after rise passing rounds.
	if err := b.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	v, upAt := waitFor(t, url, 10*time.Second, "B-pop up again", func(v monitor.View) bool { return pop(v, "B-pop").State == monitor.StateUp })
	t.Logf("B-pop up %v after SIGCONT (rise %d × interval %v)", upAt.Sub(resumed), rise, interval)
	if p := pop(v, "B-pop"); p.Passes < rise {
		t.Errorf("B-pop up with %d passing rounds, want at least %d", p.Passes, rise)
	}
}
