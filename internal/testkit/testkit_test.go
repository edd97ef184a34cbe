package testkit

import (
	"context"
	"errors"
	"fmt"
	"net"
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
