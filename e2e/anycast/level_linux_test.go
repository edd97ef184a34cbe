//go:build linux

package anycast

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	ctlOnce sync.Once
	ctlPath string
	ctlErr  error
)

// anycastctl returns the CLI under test: $ANYCASTCTL_BIN, or built once
// from ./cmd/anycastctl.
func anycastctl(t *testing.T) string {
	t.Helper()
	ctlOnce.Do(func() {
		if bin := os.Getenv("ANYCASTCTL_BIN"); bin != "" {
			ctlPath, ctlErr = filepath.Abs(bin)
			return
		}
		goTool, err := exec.LookPath("go")
		if err != nil {
			ctlErr = fmt.Errorf("go tool not found to build anycastctl (or set ANYCASTCTL_BIN): %w", err)
			return
		}
		ctlPath = filepath.Join(buildDir, "anycastctl")
		out, err := exec.Command(goTool, "build", "-o", ctlPath, "github.com/anycastdns/anycastdns/cmd/anycastctl").CombinedOutput()
		if err != nil {
			ctlErr = fmt.Errorf("build anycastctl: %w\n%s", err, out)
		}
	})
	if ctlErr != nil {
		t.Fatal(ctlErr)
	}
	return ctlPath
}

// ctl runs anycastctl in N against the node's admin API and returns its
// output; it fails the test unless anycastctl exits 0.
func (e *env) ctl(args ...string) string {
	e.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", e.nNS, anycastctl(e.t)}, args...)...)
	cmd.Env = append(os.Environ(), "ANYCASTCTL_ADMIN="+adminAddr)
	out, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Fatalf("anycastctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// asPath returns BIRD's AS path for prefix from the node, nil without a
// route.
func (e *env) asPath(prefix string) []string {
	for line := range strings.Lines(e.birdc("show", "route", prefix, "all", "protocol", "node")) {
		if _, v, ok := strings.Cut(line, "BGP.as_path:"); ok {
			return strings.Fields(v)
		}
	}
	return nil
}

// waitPathLen polls BIRD every 10 ms until both prefixes have an AS path of
// n ASNs; it returns the time from t0.
func (e *env) waitPathLen(t0 time.Time, n int, timeout time.Duration, what string) time.Duration {
	e.t.Helper()
	for {
		p4, p6 := e.asPath(prefix4), e.asPath(prefix6)
		if len(p4) == n && len(p6) == n {
			return time.Since(t0)
		}
		if time.Since(t0) > timeout {
			e.t.Fatalf("%s: after %v BIRD has AS paths %v and %v, want %d ASNs %s\n%s", what, timeout, p4, p6, n, machine(t0), e.statusText())
		}
		time.Sleep(pollEvery)
	}
}

// birdRouteLog returns BIRD's log from byte offset from on: the lines
// about the node's prefixes, and the size to continue from.
func (e *env) birdRouteLog(from int) ([]string, int) {
	e.t.Helper()
	b, err := os.ReadFile(e.birdLog)
	if err != nil {
		e.t.Fatal(err)
	}
	var lines []string
	for line := range strings.Lines(string(b[min(from, len(b)):])) {
		if strings.Contains(line, "node.") && (strings.Contains(line, prefix4) || strings.Contains(line, prefix6)) {
			lines = append(lines, strings.TrimSpace(line))
		}
	}
	return lines, len(b)
}

// TestLevel: the operator pins the PoP level with the real anycastctl (run
// in N with ip netns exec; its start-up is in the figures);
// BIRD sees the AS path grow and shrink with it (shed-N: N more copies of
// the node's AS), each change replacing the route in place — BIRD logs no
// removal, R's FIB keeps the route and R's DNS client, querying the anycast
// address every 20 ms, loses no query; anycastctl status shows the level;
// a pinned withdrawn withdraws, and the unpin announces again.
func TestLevel(t *testing.T) {
	e := newEnv(t, false)
	anycastctl(t) // built before any clock starts
	n := e.startNode(e.writeNodeConfig(nodeOpts{}))
	e.waitRoutes(n.started, true, startup, "initial announce")
	e.holdRoutes(true, 500*time.Millisecond, "initial")
	e.waitPathLen(time.Now(), 1, eventually, "normal")
	_, mark := e.birdRouteLog(0)

	client := startProber(t, e.rNS, "udp", anycast4Port, 20*time.Millisecond, time.Second)
	start := time.Now()
	var changes durations
	for _, step := range []struct {
		args []string
		want string // in anycastctl's output
		asns int
	}{
		{[]string{"level", "shed-2", "-reason", "e2e maintenance"}, "pinned at shed-2", 3},
		{[]string{"level", "shed-3"}, "pinned at shed-3", 4},
		{[]string{"level", "shed-1", "-reason", "e2e"}, "pinned at shed-1", 2},
		{[]string{"level", "-unpin"}, "level: normal (no pin, no level from the control plane)", 1},
	} {
		t0 := time.Now()
		out := e.ctl(step.args...)
		if !strings.Contains(out, step.want) {
			t.Errorf("anycastctl %s printed:\n%s\nwant %q", strings.Join(step.args, " "), out, step.want)
		}
		d := e.waitPathLen(t0, step.asns, eventually, strings.Join(step.args, " "))
		changes = append(changes, d)
		t.Logf("anycastctl %s → BIRD holds AS path %v after %v", strings.Join(step.args, " "), e.asPath(prefix4), ms(d))
		e.holdRoutes(true, 300*time.Millisecond, "after "+strings.Join(step.args, " "))
	}
	samples := client.Stop()
	failed, total := failures(samples, start, time.Now())
	t.Logf("R's DNS client across the 4 level changes: %d queries to %s, %d unanswered", total, anycast4Port, len(failed))
	figure(t, "level_change_to_bird", changes)
	if len(failed) > 0 || total == 0 {
		t.Errorf("R's DNS client lost %d of %d queries across the level changes (first: %v) %s", len(failed), total, firstErr(failed), machine(start))
	}
	lines, mark := e.birdRouteLog(mark)
	for _, line := range lines {
		if strings.Contains(line, "removed") {
			t.Errorf("BIRD removed a route across the level changes: %s", line)
		}
	}
	if len(lines) < 8 {
		t.Errorf("BIRD logged %d route changes for 4 level changes of 2 prefixes, want 8 or more:\n%s", len(lines), strings.Join(lines, "\n"))
	}

	// A pinned withdrawn withdraws; anycastctl status says why.
	t0 := time.Now()
	e.ctl("level", "withdrawn", "-reason", "e2e withdraw")
	bird, fib := e.waitRoutes(t0, false, eventually, "pinned withdrawn")
	t.Logf("anycastctl level withdrawn → gone from BIRD after %v, from R's FIB after %v", ms(bird), ms(fib))
	figure(t, "level_withdrawn_to_gone_bird", durations{bird})
	if out := e.ctl("status"); !strings.Contains(out, "level: withdrawn, pinned by the operator: e2e withdraw") ||
		!strings.Contains(out, "announcing nothing") {
		t.Errorf("anycastctl status while pinned withdrawn:\n%s", out)
	}
	if lines, _ := e.birdRouteLog(mark); !strings.Contains(strings.Join(lines, "\n"), "removed") {
		t.Errorf("BIRD logged no removal for the pinned withdrawn:\n%s", strings.Join(lines, "\n"))
	}
	t0 = time.Now()
	e.ctl("level", "-unpin")
	bird, _ = e.waitRoutes(t0, true, eventually, "unpinned")
	e.waitPathLen(t0, 1, eventually, "unpinned")
	t.Logf("anycastctl level -unpin → back in BIRD after %v", ms(bird))
	if out := e.ctl("level"); !strings.Contains(out, "e2e-pop: level: normal") {
		t.Errorf("anycastctl level after the unpin:\n%s", out)
	}
}
