//go:build linux

package anycast

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"
)

// --- leftovers: cleanup when the test binary is interrupted ------------------

// leftovers are the processes and namespaces the tests have created and not
// yet removed. t.Cleanup does not run when the test binary gets SIGINT or
// SIGTERM (go test passes Ctrl-C on), so a handler removes them then.
var leftovers = struct {
	sync.Mutex
	pids       map[int]string
	namespaces map[string]bool
}{pids: map[int]string{}, namespaces: map[string]bool{}}

// trackPID records a process the tests started; call the returned function
// once it has been reaped.
func trackPID(pid int, what string) (untrack func()) {
	leftovers.Lock()
	leftovers.pids[pid] = what
	leftovers.Unlock()
	return func() {
		leftovers.Lock()
		delete(leftovers.pids, pid)
		leftovers.Unlock()
	}
}

// trackNamespace records a namespace the tests created; call the returned
// function once it is deleted.
func trackNamespace(name string) (untrack func()) {
	leftovers.Lock()
	leftovers.namespaces[name] = true
	leftovers.Unlock()
	return func() {
		leftovers.Lock()
		delete(leftovers.namespaces, name)
		leftovers.Unlock()
	}
}

// removeLeftoversOnSignal installs the handler: on SIGINT or SIGTERM it
// kills the tracked processes (by PID), deletes the tracked namespaces and
// exits.
func removeLeftoversOnSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig := <-ch
		leftovers.Lock()
		defer leftovers.Unlock()
		for pid := range leftovers.pids {
			_ = syscall.Kill(pid, syscall.SIGCONT)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		for ns := range leftovers.namespaces {
			_ = exec.Command("ip", "netns", "del", ns).Run()
		}
		fmt.Fprintf(os.Stderr, "anycast e2e: %v: killed %d processes, deleted %d namespaces\n",
			sig, len(leftovers.pids), len(leftovers.namespaces))
		os.Exit(2)
	}()
}

// --- stalls: is the machine starving processes? ------------------------------

// The tests run on shared machines where other jobs can keep a runnable
// process off the CPU for hundreds of milliseconds; BFD at 100 ms × 3 has
// 300 ms of slack. A goroutine of the test binary sleeps 10 ms at a time
// and records how much later than that it wakes up, so that a failed timing
// target can say whether processes were being starved at the time.

const (
	stallTick = 10 * time.Millisecond
	stallMin  = 50 * time.Millisecond // wake-ups later than this are recorded
)

type stall struct {
	at    time.Time // when the late wake-up happened
	delay time.Duration
}

var stalls struct {
	sync.Mutex
	since time.Time
	list  []stall
}

func watchStalls() {
	stalls.Lock()
	stalls.since = time.Now()
	stalls.Unlock()
	go func() {
		for {
			t := time.Now()
			time.Sleep(stallTick)
			if d := time.Since(t) - stallTick; d > stallMin {
				stalls.Lock()
				stalls.list = append(stalls.list, stall{time.Now(), d})
				if len(stalls.list) > 10000 {
					stalls.list = stalls.list[len(stalls.list)-5000:]
				}
				stalls.Unlock()
			}
		}
	}()
}

// machine describes the machine's state since t0 for failure messages: the
// longest late wake-up of the test binary and the load average.
func machine(t0 time.Time) string {
	stalls.Lock()
	var worst time.Duration
	n := 0
	for _, s := range stalls.list {
		if s.at.Before(t0) {
			continue
		}
		n++
		worst = max(worst, s.delay)
	}
	stalls.Unlock()
	load, _ := os.ReadFile("/proc/loadavg")
	fields := strings.Fields(string(load))
	if len(fields) > 3 {
		fields = fields[:3]
	}
	if n == 0 {
		return fmt.Sprintf("[machine since %s: the test binary never woke up more than %v late; load average %s]",
			t0.Format("15:04:05.000"), stallMin, strings.Join(fields, " "))
	}
	return fmt.Sprintf("[machine since %s: the test binary woke up late %d times, worst %v — processes were being starved; load average %s]",
		t0.Format("15:04:05.000"), n, ms(worst), strings.Join(fields, " "))
}
