package testkit

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a program a test started, its output in a log file. It is
// stopped when the test ends (SIGTERM, SIGKILL after StopTimeout), and
// the end of its log is printed if the test failed.
type Process struct {
	Name    string
	Cmd     *exec.Cmd
	LogPath string
	// StopAfter is how long Stop waits after SIGTERM before SIGKILL;
	// 0 = StopTimeout.
	StopAfter time.Duration
	// CheckExit fails the test when, at its end, the process did not exit
	// with status 0 (stopped by Stop, or on its own); Kill excepted.
	CheckExit bool
	done      chan struct{} // closed when the process has exited
	waitErr   error         // valid once done is closed
	stopOnce  sync.Once
	stopErr   error // what Stop returns
}

// StopTimeout is how long Stop waits after SIGTERM before SIGKILL.
const StopTimeout = 10 * time.Second

// StartProcess starts argv with its stdout and stderr appended to logPath
// (a process restarted with the same log keeps the earlier run's lines);
// name names it in messages. The process is killed if the test binary
// dies (Pdeathsig).
func StartProcess(t testing.TB, name, logPath string, argv ...string) *Process {
	t.Helper()
	return StartProcessIn(t, name, "", logPath, argv...)
}

// StartProcessIn is StartProcess with dir as the working directory ("" =
// the test's).
func StartProcessIn(t testing.TB, name, dir, logPath string, argv ...string) *Process {
	t.Helper()
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatalf("%s log: %v", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Process{Name: name, Cmd: cmd, LogPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		_ = logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		if err := p.Stop(t); err != nil && p.CheckExit {
			t.Errorf("%s (pid %d): %v", name, cmd.Process.Pid, err)
		}
		if t.Failed() {
			t.Logf("%s log (%s):\n%s", name, logPath, p.Tail(40))
		}
	})
	return p
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is what waiting for the process returned, once it has exited.
func (p *Process) Err() error {
	<-p.done
	return p.waitErr
}

// Stop ends the process (ours, by PID): SIGTERM, then SIGKILL if it has not
// exited within StopAfter, which fails the test. It returns how the process
// ended — nil for exit status 0 — and the same on later calls; nil after
// Kill.
func (p *Process) Stop(t testing.TB) error {
	p.stopOnce.Do(func() {
		if !p.Exited() {
			if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
				t.Logf("signal %s (pid %d): %v", p.Name, p.Cmd.Process.Pid, err)
			}
			after := cmp.Or(p.StopAfter, StopTimeout)
			select {
			case <-p.done:
			case <-time.After(after):
				t.Errorf("%s (pid %d) ignored SIGTERM for %s; killing it", p.Name, p.Cmd.Process.Pid, after)
				_ = p.Cmd.Process.Kill()
				<-p.done
			}
		}
		p.stopErr = p.waitErr
	})
	return p.stopErr
}

// Kill ends the process (ours, by PID) with SIGKILL, as a crash would:
// nothing of it gets to say goodbye. Stop then returns nil.
func (p *Process) Kill() {
	p.stopOnce.Do(func() {
		_ = p.Cmd.Process.Kill()
		<-p.done
	})
}

// Log returns the whole log.
func (p *Process) Log() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return fmt.Sprintf("(read log: %v)", err)
	}
	return string(b)
}

// Tail returns the last n lines of the log.
func (p *Process) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// KnotDirs makes the directories of a knotd run in dir — dir/run (its
// rundir and control socket) and dir/db — and returns the sections of its
// knot.conf that name them: control, database and log (to its stderr, the
// process's log). The control socket is dir/run/knot.sock.
func KnotDirs(t testing.TB, dir string) string {
	t.Helper()
	for _, d := range []string{"run", "db"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatalf("knot directory: %v", err)
		}
	}
	return fmt.Sprintf(`control:
    listen: %q

database:
    storage: %q

log:
  - target: stderr
    any: info

`, filepath.Join(dir, "run", "knot.sock"), filepath.Join(dir, "db"))
}
