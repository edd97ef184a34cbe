// Package testkit holds what the tests of several packages need, once:
// golden files rewritten with -update, the rule that a test missing an
// external tool or root skips, or fails under CI=true, free loopback ports,
// building the binaries, and running a component (Run and Ready) for the
// length of a test.
//
// Only tests import it.
package testkit

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files with what the tests get")

// Updating reports whether the tests run with -update, for tests that
// write their golden files themselves.
func Updating() bool { return *update }

// Golden compares got with the file at path, or, with -update, writes got
// there first (creating its directory).
func Golden(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got), run go test -update if the change is right:\n%s", path, diff)
	}
}

// CI reports whether the tests run in CI (CI=true), where every tool the
// tests need is part of the environment.
func CI() bool { return os.Getenv("CI") == "true" }

// Unavailable ends a test that cannot run here (a tool missing, not root):
// it skips, except under CI=true, where a skip would hide a broken setup
// and it fails.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if CI() {
		t.Fatal(msg + " (CI=true: the environment must provide it)")
	}
	t.Skip(msg)
}

// SbinDirs are searched for external programs after PATH: knotd and nsd
// live there and are not in an unprivileged user's PATH.
var SbinDirs = []string{"/usr/sbin", "/usr/local/sbin", "/sbin"}

// LookTool finds an external program in PATH or in the sbin directories.
func LookTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range SbinDirs {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, exec.ErrNotFound)
}

// RequireTool returns the path of an external program, or ends the test
// as Unavailable, naming the Debian package that has it.
func RequireTool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := LookTool(name)
	if err != nil {
		Unavailable(t, "%s not found (install the Debian package %s); %s cannot run", name, debianPackage, t.Name())
	}
	return p
}

// RequireRoot ends the test as Unavailable unless it runs as root; why
// says what needs root.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "%s needs root (%s); run as root", t.Name(), why)
	}
}

var (
	portsMu   sync.Mutex
	portsUsed = map[uint16]bool{} // never hand out a port twice in one test binary
)

// FreePort returns a port that is free right now for UDP and TCP on
// 127.0.0.1, and that this test binary has not handed out before. Another
// process may still take it before it is bound.
func FreePort(t testing.TB) uint16 { return freePort(t, false) }

// FreeAddr is FreePort as an address, "127.0.0.1:PORT".
func FreeAddr(t testing.TB) string {
	t.Helper()
	return fmt.Sprintf("127.0.0.1:%d", FreePort(t))
}

// FreePortDual is FreePort on ::1 as well.
func FreePortDual(t testing.TB) uint16 { return freePort(t, true) }

func freePort(t testing.TB, v6 bool) uint16 {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen tcp: %v", err)
		}
		port := uint16(ln.Addr().(*net.TCPAddr).Port)
		ok := !portsUsed[port] && portFree(port, v6)
		_ = ln.Close()
		if ok {
			portsUsed[port] = true
			return port
		}
	}
	t.Fatal("no port free for UDP and TCP on loopback")
	return 0
}

// portFree reports whether UDP on 127.0.0.1 (and UDP and TCP on ::1 when
// v6) can be bound on port; the caller holds TCP on 127.0.0.1.
func portFree(port uint16, v6 bool) bool {
	binds := []struct{ network, addr string }{{"udp4", "127.0.0.1"}}
	if v6 {
		binds = append(binds, struct{ network, addr string }{"udp6", "::1"}, struct{ network, addr string }{"tcp6", "::1"})
	}
	var closers []interface{ Close() error }
	defer func() {
		for _, c := range closers {
			_ = c.Close()
		}
	}()
	for _, b := range binds {
		hp := net.JoinHostPort(b.addr, fmt.Sprint(port))
		var c interface{ Close() error }
		var err error
		if b.network[:3] == "udp" {
			c, err = net.ListenPacket(b.network, hp)
		} else {
			c, err = net.Listen(b.network, hp)
		}
		if err != nil {
			return false
		}
		closers = append(closers, c)
	}
	return true
}

// Module is the import path of this module's root.
const Module = "github.com/anycastdns/anycastdns"

// Build returns the binary named by the environment variable env (made
// absolute) when it is set, else builds the package pkg (an import path)
// into dir. It needs no testing.T, for a TestMain.
func Build(dir, pkg, env string) (string, error) {
	if env != "" {
		if p := os.Getenv(env); p != "" {
			return filepath.Abs(p)
		}
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("go tool not found to build %s (or set %s): %w", pkg, env, err)
	}
	bin := filepath.Join(dir, filepath.Base(pkg))
	if out, err := exec.Command(goTool, "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w\n%s", pkg, err, out)
	}
	return bin, nil
}

// Binary is Build into the test's temporary directory; it fails the test
// when the build does.
func Binary(t testing.TB, pkg, env string) string {
	t.Helper()
	bin, err := Build(t.TempDir(), pkg, env)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// RunWithAnycastd is a TestMain body for the end-to-end packages that run
// one anycastd binary in many tests: it builds cmd/anycastd once into a
// temporary directory (or takes $ANYCASTD_BIN), stores its path in *bin,
// runs the tests and removes the directory. It returns the exit code.
func RunWithAnycastd(m *testing.M, bin *string) int {
	dir, err := os.MkdirTemp("", "anycastd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		return 2
	}
	defer func() { _ = os.RemoveAll(dir) }()
	if *bin, err = Build(dir, Module+"/cmd/anycastd", "ANYCASTD_BIN"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	return m.Run()
}

// BuildAnycastd returns $ANYCASTD_BIN, or builds cmd/anycastd into the
// test's temporary directory.
func BuildAnycastd(t testing.TB) string {
	t.Helper()
	return Binary(t, Module+"/cmd/anycastd", "ANYCASTD_BIN")
}

// BuildAnycastctl returns $ANYCASTCTL_BIN, or builds cmd/anycastctl into
// the test's temporary directory.
func BuildAnycastctl(t testing.TB) string {
	t.Helper()
	return Binary(t, Module+"/cmd/anycastctl", "ANYCASTCTL_BIN")
}

// Task is a component that runs until its context ends and says when it
// serves: the shape of every long-running part of anycastd.
type Task interface {
	Run(ctx context.Context) error
	Ready() <-chan struct{}
}

// ReadyTimeout bounds how long Start waits for a task to be ready, and
// then to stop.
const ReadyTimeout = 10 * time.Second

// Start runs task until the end of the test and waits until it is ready.
// The test fails if Run returns first, or if at the end it returns an
// error or does not return within ReadyTimeout of its context's end.
func Start(t testing.TB, task Task) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- task.Run(ctx) }()
	stopped := false
	t.Cleanup(func() {
		cancel()
		if stopped {
			return
		}
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("%T.Run: %v", task, err)
			}
		case <-time.After(ReadyTimeout):
			t.Errorf("%T.Run did not return %s after its context ended", task, ReadyTimeout)
		}
	})
	select {
	case <-task.Ready():
	case err := <-done:
		stopped = true
		t.Fatalf("%T.Run returned before it was ready: %v", task, err)
	case <-time.After(ReadyTimeout):
		t.Fatalf("%T not ready after %s", task, ReadyTimeout)
	}
}

// Log collects what a process or component writes while the test reads
// it: an io.Writer safe for concurrent use.
type Log struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns everything written so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Len is how many bytes were written so far.
func (l *Log) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Len()
}

// Buffer is an in-memory log destination that a program's goroutines write
// while the test reads it.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
