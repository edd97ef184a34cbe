//go:build linux

package announce

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// asPath returns the AS path BIRD holds for prefix from the speaker, nil
// when it holds no route.
func (l *lab) asPath(prefix string) []string {
	l.t.Helper()
	out, err := exec.Command("birdc", "-s", l.birdSock, "show", "route", prefix, "all", "protocol", "speaker").CombinedOutput()
	if err != nil {
		l.t.Fatalf("birdc show route %s all: %v\n%s", prefix, err, out)
	}
	for line := range strings.Lines(string(out)) {
		if _, v, ok := strings.Cut(line, "BGP.as_path:"); ok {
			return strings.Fields(v)
		}
	}
	return nil
}

// waitPathLen polls BIRD until both prefixes have an AS path of n ASNs
// and returns how long that took.
func (l *lab) waitPathLen(n int, timeout time.Duration, what string) time.Duration {
	l.t.Helper()
	start := time.Now()
	for {
		p4, p6 := l.asPath(anycast4), l.asPath(anycast6)
		if len(p4) == n && len(p6) == n {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			l.t.Fatalf("%s: AS paths in BIRD after %v: %s %v, %s %v; want %d ASNs", what, timeout, anycast4, p4, anycast6, p6, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// routeLog returns BIRD's log lines from byte offset from on that record a
// route of the speaker's prefixes coming or going.
func (l *lab) routeLog(from int64) (lines []string, size int64) {
	l.t.Helper()
	b, err := os.ReadFile(l.birdLog)
	if err != nil {
		l.t.Fatal(err)
	}
	for line := range strings.Lines(string(b[min(from, int64(len(b))):])) {
		if strings.Contains(line, "speaker") && (strings.Contains(line, anycast4) || strings.Contains(line, anycast6)) {
			lines = append(lines, strings.TrimSpace(line))
		}
	}
	return lines, int64(len(b))
}

// TestInteropBIRDLevels: BIRD sees the AS path grow and shrink with the
// level (shed-N prepends N), each change replacing the route (BIRD logs
// no removal), and withdrawn takes the routes away.
func TestInteropBIRDLevels(t *testing.T) {
	l := newLab(t, false)
	l.startSpeaker()
	l.waitRoutes(true, 15*time.Second, "initial announce")
	l.waitPathLen(1, time.Second, "normal")
	_, mark := l.routeLog(0)

	for _, step := range []struct {
		level string
		asns  int
	}{{"shed-1", 2}, {"shed-3", 4}, {"shed-2", 3}, {"normal", 1}} {
		t0 := time.Now()
		l.command("level " + step.level)
		d := time.Since(t0) + l.waitPathLen(step.asns, 5*time.Second, step.level)
		t.Logf("level %s: BIRD holds AS path %v after %v", step.level, l.asPath(anycast4), d.Round(time.Millisecond))
		if v4, v6 := l.routes(); !v4 || !v6 {
			t.Errorf("level %s: routes missing from BIRD", step.level)
		}
	}
	lines, mark := l.routeLog(mark)
	removed := 0
	for _, line := range lines {
		if strings.Contains(line, "removed") {
			removed++
			t.Errorf("across the level changes BIRD logged a removal: %s", line)
		}
	}
	if len(lines) < 8 {
		t.Errorf("BIRD logged %d route changes for 4 level changes of 2 prefixes, want at least 8:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	t.Logf("BIRD's route log across the changes (%d lines, %d removals):\n%s", len(lines), removed, strings.Join(lines, "\n"))

	t0 := time.Now()
	l.command("level withdrawn")
	d := time.Since(t0) + l.waitRoutes(false, 5*time.Second, "withdrawn")
	t.Logf("level withdrawn: gone from BIRD after %v", d.Round(time.Millisecond))
	t0 = time.Now()
	l.command("level shed-1")
	d = time.Since(t0) + l.waitPathLen(2, 5*time.Second, "shed-1 after withdrawn")
	t.Logf("level shed-1 after withdrawn: back in BIRD with AS path %v after %v", l.asPath(anycast4), d.Round(time.Millisecond))
	if lines, _ := l.routeLog(mark); len(lines) == 0 || !strings.Contains(fmt.Sprint(lines), "removed") {
		t.Errorf("BIRD logged no removal for withdrawn: %q", lines)
	}
}
