//go:build linux

package anycast

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// --- the node ---------------------------------------------------------------

// nodeOpts is what varies between the tests' node configurations.
type nodeOpts struct {
	bfd   bool
	zones map[string]string // name → file; default example.com. only
}

// writeNodeConfig writes the node's configuration and zone, and returns its path.
func (e *env) writeNodeConfig(o nodeOpts) string {
	e.t.Helper()
	zones := o.zones
	if zones == nil {
		zones = map[string]string{zoneName: e.writeZone("example.com.zone", zoneText(zoneName))}
	}
	var zb strings.Builder
	names := make([]string, 0, len(zones))
	for name := range zones {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(&zb, "  - name: %s\n    file: %s\n", name, zones[name])
	}
	cfg := fmt.Sprintf(`identity:
  name: e2e-pop
listen: ["%s", "%s", "%s"]
zones:
%sadmin:
  listen: %s
log:
  level: %s
drain_period: %s
bgp:
  asn: %d
  router_id: %s
  peers:
    - address: %s
      asn: %d
      local_address: %s
      hold_time: %s
      keepalive: %s
      bfd: {enabled: %v, interval: 100ms, multiplier: 3}
  announce:
    - prefix: %s
    - prefix: %s
      next_hop: %s
health:
  interval: %s
  timeout: %s
  rise: %d
  fall: %d
  query_addr: %s
  maintenance_file: %s
`, anycast4Port, anycast6Port, unicastPort, zb.String(), adminAddr, nodeLogLevel(), drainPeriod,
		nodeASN, nodeAddr4, routerAddr4, routerASN, nodeAddr4, holdTime, keepalive, o.bfd,
		prefix4, prefix6, nodeAddr6,
		healthInterval, healthTimeout, healthRise, healthFall, anycast4Port, e.maintenanceFile())
	path := filepath.Join(e.dir, "node.yaml")
	writeFile(e.t, path, cfg)
	return path
}

func (e *env) maintenanceFile() string { return filepath.Join(e.dir, "maintenance") }

func (e *env) writeZone(file, text string) string {
	e.t.Helper()
	path := filepath.Join(e.dir, file)
	writeFile(e.t, path, text)
	return path
}

// zoneText is a small valid zone with www A 192.0.2.80, then extra lines.
func zoneText(origin string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "$ORIGIN %s\n$TTL 300\n", origin)
	b.WriteString("@ IN SOA ns1 hostmaster 1 7200 3600 1209600 60\n")
	b.WriteString("@ IN NS ns1\n")
	fmt.Fprintf(&b, "ns1 IN A %s\n", anycast4)
	fmt.Fprintf(&b, "ns1 IN AAAA %s\n", anycast6)
	fmt.Fprintf(&b, "www IN A %s\n", wwwAddr)
	for _, x := range extra {
		b.WriteString(x + "\n")
	}
	return b.String()
}

// node is a running "anycastd node" in N.
type node struct {
	e       *env
	cmd     *exec.Cmd
	pid     int
	logPath string
	started time.Time
	done    chan struct{} // closed when the process has been reaped
	exitAt  time.Time
	state   *os.ProcessState
}

var nodeCounter atomic.Int32

// startNode runs "anycastd node -config cfg" in N under ip netns exec,
// which execs the node in place: the PID is the node's, checked through
// /proc before returning.
func (e *env) startNode(cfg string) *node {
	t := e.t
	t.Helper()
	bin := anycastd(t)
	n := &node{e: e, logPath: filepath.Join(e.dir, fmt.Sprintf("node-%d.log", nodeCounter.Add(1))), done: make(chan struct{})}
	logf, err := os.Create(n.logPath)
	if err != nil {
		t.Fatal(err)
	}
	n.cmd = exec.Command("ip", append([]string{"netns", "exec", e.nNS}, niced(bin, "node", "-config", cfg)...)...)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	n.started = time.Now()
	if err := n.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start node: %v", err)
	}
	n.pid = n.cmd.Process.Pid
	untrack := trackPID(n.pid, "anycastd")
	go func() {
		_ = n.cmd.Wait()
		untrack()
		n.exitAt = time.Now()
		n.state = n.cmd.ProcessState
		logf.Close()
		close(n.done)
	}()
	t.Cleanup(func() {
		if !n.exited() {
			_ = syscall.Kill(n.pid, syscall.SIGCONT)
			_ = syscall.Kill(n.pid, syscall.SIGKILL)
			<-n.done
		}
		if t.Failed() || showLogs() {
			log, _ := os.ReadFile(n.logPath)
			t.Logf("node %d log (tail):\n%s", n.pid, lastLines(string(log), 80))
		}
	})
	// Until ip has exec'd, the PID is ip's; signals must reach the node.
	deadline := time.Now().Add(5 * time.Second)
	for {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", n.pid))
		if err == nil && exe == bin {
			return n
		}
		if n.exited() || time.Now().After(deadline) {
			log, _ := os.ReadFile(n.logPath)
			t.Fatalf("node process %d is not %s (exe %q, err %v, exited %v)\n%s", n.pid, bin, exe, err, n.exited(), log)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (n *node) exited() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

func (n *node) signal(sig syscall.Signal) {
	n.e.t.Helper()
	if err := syscall.Kill(n.pid, sig); err != nil {
		n.e.t.Fatalf("signal %v to node %d: %v", sig, n.pid, err)
	}
}

// wait waits for the node to exit and returns its exit code.
func (n *node) wait(timeout time.Duration) int {
	n.e.t.Helper()
	select {
	case <-n.done:
		return n.state.ExitCode()
	case <-time.After(timeout):
		n.e.t.Fatalf("node %d still running after %v", n.pid, timeout)
		return -1
	}
}

// kill ends the node at once (between runs of a test).
func (n *node) kill() {
	n.e.t.Helper()
	_ = syscall.Kill(n.pid, syscall.SIGCONT)
	n.signal(syscall.SIGKILL)
	n.wait(10 * time.Second)
}

// --- admin API (in N, on loopback) ------------------------------------------

// adminStatus is the part of GET /v1/status the tests read.
type adminStatus struct {
	Node    string `json:"node"`
	Ready   bool   `json:"ready"`
	Drained bool   `json:"drained"`
	Healthy bool   `json:"healthy"`
	Checks  []struct {
		Name  string `json:"name"`
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	} `json:"checks"`
	Sessions []struct {
		Peer  string `json:"peer"`
		State string `json:"state"`
		BFD   string `json:"bfd"`
	} `json:"sessions"`
	Announced []string `json:"announced"`
}

// admin calls the node's admin API from inside N.
func (e *env) admin(method, path string) (adminStatus, error) {
	hc := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return dialIn(ctx, e.nNS, network, addr)
			},
		},
	}
	req, err := http.NewRequest(method, "http://"+adminAddr+path, nil)
	if err != nil {
		return adminStatus{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return adminStatus{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return adminStatus{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return adminStatus{}, fmt.Errorf("%s %s: http %d: %s", method, path, resp.StatusCode, body)
	}
	var st adminStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return adminStatus{}, fmt.Errorf("%s %s: %w: %s", method, path, err, body)
	}
	return st, nil
}

// statusText is the node's status for failure messages.
func (e *env) statusText() string {
	st, err := e.admin(http.MethodGet, "/v1/status")
	if err != nil {
		return "node status: " + err.Error()
	}
	b, _ := json.Marshal(st)
	return "node status: " + string(b)
}
