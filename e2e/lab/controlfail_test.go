//go:build linux

package lab

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/lab"
	"github.com/anycastdns/anycastdns/internal/testkit/pgtest"
)

// needPostgres skips a test without the PostgreSQL binaries, except in CI
// (CI=true), which installs them: there their absence fails the test, as
// pgtest's own tests do.
func needPostgres(t *testing.T) {
	t.Helper()
	if _, err := pgtest.BinDir(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI needs PostgreSQL for this test: %v", err)
		}
		t.Skipf("skipped: %v", err)
	}
}

// TestControlFailover runs `anycastlab scenario control-failover -json`
// (issue #17): two control-plane replicas on one PostgreSQL, a writer
// sending a record change every 30 ms to the first and moving to the
// second when it fails, the first killed with SIGKILL mid-stream. It holds
// the outcome to the bounds: no acknowledged write missing from the
// database or any PoP, writes resumed through the other replica within
// 2 s, every PoP converged on the final serial; and it checks that the
// lab, its processes and its PostgreSQL (process and directory) are gone
// afterwards.
func TestControlFailover(t *testing.T) {
	needRoot(t)
	needPostgres(t)
	stateDir, id, stdout, stderr := runScenario(t, "f", "control-failover", 2*time.Minute)
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d JSON lines, want 1:\n%s", len(lines), stdout.String())
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatalf("not JSON: %q: %v", lines[0], err)
	}
	for _, k := range []string{"scenario", "writes", "acknowledged", "lost", "gap_ms", "pops_converged"} {
		if _, ok := m[k]; !ok {
			t.Errorf("line %s has no %q", lines[0], k)
		}
	}
	var ln lab.ControlFailoverLine
	if err := json.Unmarshal([]byte(lines[0]), &ln); err != nil {
		t.Fatal(err)
	}
	t.Logf("FIGURE control-failover: %d writes, %d acknowledged (%d by the killed replica, %d by the survivor), lost %d, gap %s, kill to ack %s, converged %s after the last write",
		ln.Writes, ln.Acknowledged, ln.AckedBy1, ln.AckedBy2, ln.Lost, f(ln.GapMS), f(ln.KillToAckMS), f(ln.ConvergedMS))
	if ln.Scenario != "control-failover" || ln.Replicas != 2 {
		t.Errorf("scenario %q with %d replicas, want control-failover with 2", ln.Scenario, ln.Replicas)
	}
	// Writes on both sides of the kill, or nothing failed over.
	if ln.AckedBy1 < 10 || ln.AckedBy2 < 5 || ln.Acknowledged != ln.AckedBy1+ln.AckedBy2 || ln.Writes < ln.Acknowledged {
		t.Errorf("writes %d, acknowledged %d (%d by the killed replica, %d by the survivor): want at least 10 and 5", ln.Writes, ln.Acknowledged, ln.AckedBy1, ln.AckedBy2)
	}
	if ln.Lost != 0 || ln.MissingDB != 0 {
		t.Errorf("lost %d acknowledged writes (database %d, PoPs %v), want 0", ln.Lost, ln.MissingDB, ln.MissingPoPs)
	}
	if ln.GapMS == nil || *ln.GapMS > float64(lab.ControlFailoverMaxGap.Milliseconds()) {
		t.Errorf("gap %s ms, want at most %d", f(ln.GapMS), lab.ControlFailoverMaxGap.Milliseconds())
	}
	if !ln.PoPsConverged || len(ln.MissingPoPs) != 3 {
		t.Errorf("PoPs converged %v, missing writes by PoP %v: want every one of the 3 with everything", ln.PoPsConverged, ln.MissingPoPs)
	}
	if !ln.SerialsIncreasing {
		t.Error("the acknowledged serials did not increase write after write (a serial given twice?)")
	}
	if !ln.ReplicaRejoined {
		t.Error("the killed replica, started again, did not serve the final serial")
	}
	// Everything gone: the lab, and its PostgreSQL.
	if left := leftovers(id, nil); len(left) > 0 {
		t.Errorf("left after the scenario: %v", left)
	}
	if ids, _ := lab.ListLabs(stateDir); len(ids) != 0 {
		t.Errorf("labs left in %s: %v", stateDir, ids)
	}
	pg := regexp.MustCompile(`PostgreSQL \(pid (\d+)\) on the Unix socket in \S+, data in (\S+)`).FindStringSubmatch(stderr.String())
	if pg == nil {
		t.Fatal("the lab's progress does not say where its PostgreSQL ran")
	}
	if pid, _ := strconv.Atoi(pg[1]); pid > 0 && syscall.Kill(pid, 0) == nil {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && strings.Contains(string(b), "postgres") {
			t.Errorf("PostgreSQL (pid %d) still runs after the scenario", pid)
		}
	}
	if _, err := os.Stat(pg[2]); err == nil {
		t.Errorf("PostgreSQL's directory %s left after the scenario", pg[2])
	}
}
