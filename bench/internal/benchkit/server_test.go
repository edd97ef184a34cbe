package benchkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestPinned(t *testing.T) {
	prog, args := Pinned(0, 0, []string{"nsd", "-d"})
	if got := prog + " " + strings.Join(args, " "); got != "taskset -c 0 nsd -d" {
		t.Errorf("Pinned(0, 0) = %q", got)
	}
	prog, args = Pinned(1, -10, []string{"dnsperf"})
	if got := prog + " " + strings.Join(args, " "); got != "nice -n -10 taskset -c 1 dnsperf" {
		t.Errorf("Pinned(1, -10) = %q", got)
	}
	prog, args = Pinned(-1, 0, []string{"knotd", "-c", "k.conf"})
	if got := prog + " " + strings.Join(args, " "); got != "knotd -c k.conf" {
		t.Errorf("Pinned(-1, 0) = %q", got)
	}
	prog, args = Pinned(-1, 5, []string{"knotd"})
	if got := prog + " " + strings.Join(args, " "); got != "nice -n 5 knotd" {
		t.Errorf("Pinned(-1, 5) = %q", got)
	}
}

// TestAutogroupNice starts a process in a session of its own at niceness
// -5 the way -nice does and reads the niceness back.
func TestAutogroupNice(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/kernel/sched_autogroup_enabled")
	if err != nil || strings.TrimSpace(string(b)) != "1" {
		t.Skip("scheduler autogroups are off")
	}
	if os.Geteuid() != 0 {
		t.Skip("lowering niceness needs root")
	}
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	if err := SetAutogroupNice(cmd.Process.Pid, -5); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "autogroup"))
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(got)), "nice -5") {
		t.Errorf("autogroup = %q, %v; want nice -5", got, err)
	}
	mine, _ := os.ReadFile("/proc/self/autogroup")
	if strings.TrimSpace(string(mine)) == strings.TrimSpace(string(got)) {
		t.Errorf("the test's own autogroup %q was changed", mine)
	}
}
