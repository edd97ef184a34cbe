package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ProcessRecord identifies a process the lab started. PID and the start
// time together survive PID reuse: a process is only signalled if both
// still match.
type ProcessRecord struct {
	Name      string `json:"name"` // "bird A-router", "wire A-router~B-router"
	Kind      string `json:"kind"` // bird, wire, process
	Namespace string `json:"namespace,omitempty"`
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time"` // clock ticks since boot, /proc/PID/stat field 22
	Log       string `json:"log,omitempty"`
}

// labNice is the scheduling priority of the lab's daemons and wires.
const labNice = -10

// procStat returns the state letter and start time of pid.
func procStat(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses, so
	// split after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); field 22 (starttime) is f[19].
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f))
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat start time: %w", pid, err)
	}
	return f[0][0], start, nil
}

// Running reports whether the recorded process still runs (a zombie does
// not), checked against PID reuse.
func (r ProcessRecord) Running() bool { return r.alive() }

// alive reports whether the recorded process still runs (a zombie does not).
func (r ProcessRecord) alive() bool {
	state, start, err := procStat(r.PID)
	return err == nil && start == r.StartTime && state != 'Z' && state != 'X'
}

// start starts cmd in its own session (so a Ctrl-C at the terminal reaches
// anycastlab, which then tears down in order, and not every daemon at once)
// and records it.
func startRecorded(cmd *exec.Cmd, name, kind, namespace, logPath string) (ProcessRecord, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644) //nolint:gosec // the lab's logs are for anyone to read
	if err != nil {
		return ProcessRecord{}, fmt.Errorf("start %s: %w", name, err)
	}
	defer logf.Close()
	if cmd.Stdout == nil {
		cmd.Stdout = logf
	}
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	// The lab's network (wires, BIRD and its BFD, anycastd and its BFD,
	// the clients' probes) runs ahead of whatever else loads the machine,
	// so that delays and BFD timers hold. The child inherits the priority
	// of the thread that starts it, so every thread it ever creates has it
	// too (setting it after the start would miss the threads a Go program
	// creates at once). Failing to raise it only costs precision.
	nice := 0
	if kind != "process" {
		nice = labNice
	}
	if err := startNice(cmd, nice); err != nil {
		return ProcessRecord{}, fmt.Errorf("start %s: %w", name, err)
	}
	if nice != 0 {
		// With autogroup scheduling (sched_autogroup_enabled), which
		// Linux enables on desktops and many VMs, each session is one
		// scheduling group, and a thread's nice only ranks it inside its
		// group: the groups share the CPUs by the group's own nice. The
		// child leads a session of its own, so raise its group too.
		raiseAutogroup(cmd.Process.Pid)
	}
	rec := ProcessRecord{Name: name, Kind: kind, Namespace: namespace, PID: cmd.Process.Pid, Log: logPath}
	_, rec.StartTime, err = procStat(rec.PID)
	if err != nil {
		// It died at once; it has been started, so let the caller see why.
		return rec, fmt.Errorf("start %s: exited at once, see %s", name, logPath)
	}
	return rec, nil
}

// raiseAutogroup sets the nice of the autogroup of pid to labNice. It does
// nothing where autogroups do not exist.
func raiseAutogroup(pid int) {
	_ = os.WriteFile("/proc/"+strconv.Itoa(pid)+"/autogroup", []byte(strconv.Itoa(labNice)), 0)
}

// startNice starts cmd from a thread running at nice (0: unchanged), which
// the child inherits.
func startNice(cmd *exec.Cmd, nice int) error {
	if nice == 0 {
		return cmd.Start()
	}
	runtime.LockOSThread()
	tid := unix.Gettid()
	// getpriority(2) returns 20-nice.
	raw, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err == nil {
		err = unix.Setpriority(unix.PRIO_PROCESS, tid, nice)
	}
	if err != nil {
		runtime.UnlockOSThread()
		return cmd.Start()
	}
	err = cmd.Start()
	if rerr := unix.Setpriority(unix.PRIO_PROCESS, tid, 20-raw); rerr == nil {
		runtime.UnlockOSThread()
	}
	// Else the thread stays locked to this goroutine and ends with it,
	// so that no other goroutine runs at the raised priority.
	return err
}

// stopProcesses sends SIGTERM to every live recorded process, waits up to
// grace for them to exit, then SIGKILLs what is left and waits a little
// more. It returns an error naming any process that survived.
func stopProcesses(recs []ProcessRecord, grace time.Duration) error {
	var live []ProcessRecord
	for _, r := range recs {
		if r.alive() {
			if err := syscall.Kill(r.PID, syscall.SIGTERM); err == nil {
				// A process a scenario froze (SIGSTOP) must run to
				// act on the SIGTERM.
				_ = syscall.Kill(r.PID, syscall.SIGCONT)
				live = append(live, r)
			}
		}
	}
	live = waitGone(live, grace)
	for _, r := range live {
		_ = syscall.Kill(r.PID, syscall.SIGKILL)
	}
	live = waitGone(live, 2*time.Second)
	var errs []error
	for _, r := range live {
		errs = append(errs, fmt.Errorf("%s (pid %d) did not exit", r.Name, r.PID))
	}
	return errors.Join(errs...)
}

func waitGone(recs []ProcessRecord, d time.Duration) []ProcessRecord {
	deadline := time.Now().Add(d)
	for {
		var left []ProcessRecord
		for _, r := range recs {
			if r.alive() {
				left = append(left, r)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		recs = left
		time.Sleep(20 * time.Millisecond)
	}
}

// RaisePriority puts every thread of this process at the lab's raised
// priority; threads created later inherit it. anycastlab calls it before a
// scenario so that the clients' query loops keep time like the daemons.
func RaisePriority() error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("raise priority: %w", err)
	}
	var errs []error
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, labNice); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("raise priority of thread %d: %w", tid, err))
		}
	}
	return errors.Join(errs...)
}
