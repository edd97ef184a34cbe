package testkit

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a testing.TB that records how a helper ended the test
// instead of ending the real one.
type recorder struct {
	testing.TB
	mu       sync.Mutex
	failed   bool
	skipped  bool
	msgs     []string
	cleanups []func()
}

func (r *recorder) Helper() {}

func (r *recorder) log(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}

func (r *recorder) Errorf(format string, args ...any) { r.log(format, args...); r.setFailed() }
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }
func (r *recorder) Skip(args ...any) {
	r.log("%s", fmt.Sprint(args...))
	r.mu.Lock()
	r.skipped = true
	r.mu.Unlock()
	runtime.Goexit()
}
func (r *recorder) Skipf(format string, args ...any) { r.Skip(fmt.Sprintf(format, args...)) }
func (r *recorder) Name() string                     { return "TestRecorded" }
func (r *recorder) Cleanup(f func())                 { r.cleanups = append(r.cleanups, f) }
func (r *recorder) setFailed() {
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
}

// run calls f with a recorder in a goroutine of its own (Fatal and Skip
// end it as they end a test), then its cleanups.
func run(t *testing.T, f func(tb testing.TB)) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		done := make(chan struct{})
		go func() {
			defer close(done)
			r.cleanups[i]()
		}()
		<-done
	}
	return r
}

func TestGolden(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "x.golden")
	defer func(u bool) { *update = u }(*update)

	*update = false
	if r := run(t, func(tb testing.TB) { Golden(tb, path, []byte("one\n")) }); !r.failed || !strings.Contains(strings.Join(r.msgs, ""), "-update") {
		t.Errorf("missing golden file: failed=%v %q, want a failure that names -update", r.failed, r.msgs)
	}
	*update = true
	if r := run(t, func(tb testing.TB) { Golden(tb, path, []byte("one\n")) }); r.failed {
		t.Errorf("-update: %q", r.msgs)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "one\n" {
		t.Errorf("-update wrote %q, %v", b, err)
	}
	*update = false
	if r := run(t, func(tb testing.TB) { Golden(tb, path, []byte("one\n")) }); r.failed {
		t.Errorf("same content: %q", r.msgs)
	}
	if r := run(t, func(tb testing.TB) { Golden(tb, path, []byte("two\n")) }); !r.failed || !strings.Contains(strings.Join(r.msgs, ""), "two") {
		t.Errorf("other content: failed=%v %q, want a diff", r.failed, r.msgs)
	}
}

func TestUnavailable(t *testing.T) {
	for _, tc := range []struct {
		ci         string
		fail, skip bool
	}{{"", false, true}, {"false", false, true}, {"true", true, false}} {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			r := run(t, func(tb testing.TB) { RequireTool(tb, "no-such-tool-anycastdns", "nothing") })
			if r.failed != tc.fail || r.skipped != tc.skip {
				t.Errorf("failed=%v skipped=%v, want %v %v (%q)", r.failed, r.skipped, tc.fail, tc.skip, r.msgs)
			}
			if !strings.Contains(strings.Join(r.msgs, ""), "Debian package nothing") {
				t.Errorf("message %q does not name the package", r.msgs)
			}
		})
	}
	if p, err := LookTool("go"); err != nil || p == "" {
		t.Errorf("LookTool(go) = %q, %v", p, err)
	}
}

func TestFreePort(t *testing.T) {
	seen := map[uint16]bool{}
	for range 5 {
		p := FreePort(t)
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		for _, network := range []string{"tcp4", "udp4"} {
			addr := fmt.Sprintf("127.0.0.1:%d", p)
			var c interface{ Close() error }
			var err error
			if network == "tcp4" {
				c, err = net.Listen(network, addr)
			} else {
				c, err = net.ListenPacket(network, addr)
			}
			if err != nil {
				t.Fatalf("%s %s: %v", network, addr, err)
			}
			_ = c.Close()
		}
	}
}

// task is a Task for the tests of Start.
type task struct {
	ready    chan struct{}
	failWith error // returned at once, before ready
	stopErr  error // returned when the context ends
}

func (k *task) Ready() <-chan struct{} { return k.ready }
func (k *task) Run(ctx context.Context) error {
	if k.failWith != nil {
		return k.failWith
	}
	close(k.ready)
	<-ctx.Done()
	return k.stopErr
}

func TestStart(t *testing.T) {
	ok := &task{ready: make(chan struct{})}
	if r := run(t, func(tb testing.TB) { Start(tb, ok) }); r.failed {
		t.Errorf("a task that serves: %q", r.msgs)
	}
	early := &task{ready: make(chan struct{}), failWith: errors.New("bind: address in use")}
	if r := run(t, func(tb testing.TB) { Start(tb, early) }); !r.failed || !strings.Contains(strings.Join(r.msgs, ""), "address in use") {
		t.Errorf("a task that fails at start: failed=%v %q", r.failed, r.msgs)
	}
	late := &task{ready: make(chan struct{}), stopErr: errors.New("lost a connection")}
	if r := run(t, func(tb testing.TB) { Start(tb, late) }); !r.failed || !strings.Contains(strings.Join(r.msgs, ""), "lost a connection") {
		t.Errorf("a task that fails at the end: failed=%v %q", r.failed, r.msgs)
	}
}

// TestProcess: a process started by a test logs to its file, reports its
// exit, and Stop ends one that runs (SIGTERM).
func TestProcess(t *testing.T) {
	dir := t.TempDir()
	short := StartProcess(t, "short", filepath.Join(dir, "short.log"), "sh", "-c", "echo one; echo two; exit 3")
	<-short.Done()
	if err := short.Err(); err == nil || !short.Exited() {
		t.Errorf("exit 3: err %v, exited %t", err, short.Exited())
	}
	if short.Log() != "one\ntwo\n" || short.Tail(1) != "two" {
		t.Errorf("log %q, tail %q", short.Log(), short.Tail(1))
	}
	long := StartProcess(t, "long", filepath.Join(dir, "long.log"), "sleep", "60")
	start := time.Now()
	long.Stop(t)
	if !long.Exited() || time.Since(start) > 5*time.Second {
		t.Errorf("Stop: exited %t after %s", long.Exited(), time.Since(start))
	}
	if err := long.Stop(t); err == nil {
		t.Error("Stop of a sleep ended by SIGTERM returned nil, want its exit")
	}

	// A process that exits 0 on SIGTERM: Stop returns nil, as on later
	// calls; its log is appended to, not truncated.
	term := "trap 'echo bye; exit 0' TERM; echo up; while :; do sleep 0.05; done"
	logPath := filepath.Join(dir, "term.log")
	if err := os.WriteFile(logPath, []byte("earlier run\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	clean := StartProcess(t, "clean", logPath, "sh", "-c", term)
	for !strings.Contains(clean.Log(), "up") && !clean.Exited() { // the trap is set
		time.Sleep(10 * time.Millisecond)
	}
	if err := clean.Stop(t); err != nil || clean.Stop(t) != nil {
		t.Errorf("Stop of a clean exit: %v", err)
	}
	if clean.Log() != "earlier run\nup\nbye\n" {
		t.Errorf("log %q, want the earlier run's line kept", clean.Log())
	}

	// StartProcessIn: in the directory given.
	wd := StartProcessIn(t, "pwd", dir, filepath.Join(dir, "pwd.log"), "pwd")
	if err := wd.Err(); err != nil || strings.TrimSpace(wd.Log()) != dir {
		t.Errorf("pwd in %s: %q, %v", dir, wd.Log(), err)
	}

	// Kill: SIGKILL, and Stop returns nil.
	killed := StartProcess(t, "killed", filepath.Join(dir, "killed.log"), "sleep", "60")
	killed.Kill()
	if !killed.Exited() || killed.Stop(t) != nil {
		t.Errorf("Kill: exited %t, Stop %v", killed.Exited(), killed.Stop(t))
	}

	// CheckExit: a process that exits non-zero fails the test at its end,
	// one killed by Kill or exiting 0 does not.
	for _, tt := range []struct {
		name, script string
		kill, fail   bool
	}{
		{"exit 3", "exit 3", false, true},
		{"clean", term, false, false},
		{"killed", "sleep 60", true, false},
	} {
		r := run(t, func(tb testing.TB) {
			p := StartProcess(tb, tt.name, filepath.Join(dir, "check.log"), "sh", "-c", tt.script)
			p.CheckExit = true
			for tt.script == term && !strings.Contains(p.Log(), "up") && !p.Exited() { // the trap is set
				time.Sleep(10 * time.Millisecond)
			}
			if tt.kill {
				p.Kill()
			}
		})
		if r.failed != tt.fail {
			t.Errorf("CheckExit, %s: failed %t, want %t (%q)", tt.name, r.failed, tt.fail, r.msgs)
		}
	}

	conf := KnotDirs(t, filepath.Join(dir, "knot"))
	for _, want := range []string{filepath.Join(dir, "knot", "run", "knot.sock"), filepath.Join(dir, "knot", "db")} {
		if !strings.Contains(conf, want) {
			t.Errorf("knot sections %q do not name %s", conf, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "knot", "run")); err != nil {
		t.Error(err)
	}
}

// TestWaitHTTP: it returns once the URL answers, whatever the status, and
// fails the test when nothing answers within the limit.
func TestWaitHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer srv.Close()
	if r := run(t, func(tb testing.TB) { WaitHTTP(tb, srv.URL, time.Second) }); r.failed {
		t.Errorf("a server that answers 503: %q", r.msgs)
	}
	addr := FreeAddr(t)
	if r := run(t, func(tb testing.TB) { WaitHTTP(tb, "http://"+addr+"/", 100*time.Millisecond) }); !r.failed || !strings.Contains(strings.Join(r.msgs, ""), "not answering") {
		t.Errorf("nothing listening: failed=%v %q", r.failed, r.msgs)
	}
}
