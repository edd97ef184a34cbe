// Package pgtest starts real PostgreSQL servers for tests: the Debian
// binaries (/usr/lib/postgresql/*/bin), a cluster made by initdb in a
// temporary directory, run as an unprivileged user (PostgreSQL refuses to
// run as root, and CI runs as root), listening only on a Unix socket in
// that directory, stopped by its PID when the test (or the package) ends.
//
// Without the binaries a test is skipped with a message saying what to
// install, except in CI (CI=true), where a missing PostgreSQL fails the
// test: CI installs it, so its absence there is a broken setup.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is one running PostgreSQL cluster.
type Server struct {
	Dir    string // the temporary directory: data/, the socket, the log
	Socket string // the directory of the Unix socket
	Log    string // the server's log file
	cmd    *exec.Cmd
	done   chan struct{}
	dbs    atomic.Int64
	stop   sync.Once
	bin    string
	cred   *syscall.Credential
}

// BinDir returns the directory of the newest PostgreSQL binaries
// installed, or an error saying how to install them.
func BinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	var ok []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			ok = append(ok, d)
		}
	}
	if len(ok) == 0 {
		return "", errors.New("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): apt-get install -y postgresql")
	}
	version := func(d string) int {
		v, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		return v
	}
	slices.SortFunc(ok, func(a, b string) int { return version(a) - version(b) })
	return ok[len(ok)-1], nil
}

// unavailable skips the test, or fails it in CI.
func unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI needs PostgreSQL for this test: %v", err)
	}
	t.Skipf("skipped: %v", err)
}

// Start starts a server that is stopped when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := BinDir()
	if err != nil {
		unavailable(t, err)
	}
	srv, err := start(bin, Options{})
	if err != nil {
		t.Fatalf("start PostgreSQL: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("stop PostgreSQL: %v", err)
		}
	})
	return srv
}

var shared struct {
	mu  sync.Mutex
	srv *Server
	err error
}

// Shared returns the server that the tests of the package share, starting
// it on first use; Main stops it when the tests end. Each test should take
// its own database (NewDatabase).
func Shared(t testing.TB) *Server {
	t.Helper()
	bin, err := BinDir()
	if err != nil {
		unavailable(t, err)
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.srv == nil && shared.err == nil {
		shared.srv, shared.err = start(bin, Options{})
	}
	if shared.err != nil {
		t.Fatalf("start PostgreSQL: %v", shared.err)
	}
	return shared.srv
}

// M is what testing.M and goleak.VerifyTestMain have in common.
type M interface{ Run() int }

type mainRunner struct{ m M }

func (r mainRunner) Run() int {
	code := r.m.Run()
	shared.mu.Lock()
	srv := shared.srv
	shared.srv, shared.err = nil, nil
	shared.mu.Unlock()
	if srv != nil {
		if err := srv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: stop the shared PostgreSQL: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Main wraps a package's testing.M so that the shared server stops after
// the tests: goleak.VerifyTestMain(pgtest.Main(m)) or os.Exit(pgtest.Main(m).Run()).
func Main(m M) M { return mainRunner{m} }

// runAs is the user the server runs as: the current one unless that is
// root, else nobody.
func runAs() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, fmt.Errorf("find the unprivileged user to run PostgreSQL as: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("user nobody: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// Options change how a server is started.
type Options struct {
	// Durable keeps PostgreSQL's defaults fsync, synchronous_commit and
	// full_page_writes on, so that a commit is on disk when it returns:
	// for measurements beside SQLite's synchronous=FULL. Tests leave it
	// off (a test's database need not survive a crash of the machine).
	Durable bool

	settings []string // more -c settings, after the others: the replication pair's
}

// Launch starts a server outside a test (a benchmark tool, bench/apibench);
// the caller stops it with Stop.
func Launch(opts Options) (*Server, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	return start(bin, opts)
}

func start(bin string, opts Options) (srv *Server, err error) {
	srv, logFile, err := newServer(bin)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logFile.Close() }() // the children hold their own descriptors
	defer func() {
		if err != nil {
			_ = os.RemoveAll(srv.Dir)
		}
	}()
	data := srv.data()
	initdb := srv.command(logFile, "initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	if err := initdb.Run(); err != nil {
		return nil, fmt.Errorf("initdb in %s: %w; %s", data, err, tail(srv.Log))
	}
	// fsync off unless Durable: see Options.
	var settings []string
	if !opts.Durable {
		settings = append(settings, "fsync=off", "synchronous_commit=off", "full_page_writes=off")
	}
	if err := srv.run(logFile, append(settings, opts.settings...)); err != nil {
		return nil, err
	}
	return srv, nil
}

// newServer makes the directory of a server (data/, the socket directory,
// the log) for the user it runs as, and opens its log for the commands.
func newServer(bin string) (srv *Server, logFile *os.File, err error) {
	cred, err := runAs()
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	}()
	// The unprivileged user must reach the directory and own what is in it.
	if err := os.Chmod(dir, 0o711); err != nil { //nolint:gosec // search only, for the server's user; its files are 0600/0700
		return nil, nil, err
	}
	srv = &Server{Dir: dir, Socket: filepath.Join(dir, "sock"), Log: filepath.Join(dir, "postgres.log"), done: make(chan struct{}), bin: bin, cred: cred}
	for _, d := range []string{srv.data(), srv.Socket} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return nil, nil, err
		}
	}
	logFile, err = os.OpenFile(srv.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, err
	}
	if cred != nil {
		for _, p := range []string{srv.data(), srv.Socket, srv.Log} {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				_ = logFile.Close()
				return nil, nil, err
			}
		}
	}
	return srv, logFile, nil
}

// data is the server's data directory.
func (srv *Server) data() string { return filepath.Join(srv.Dir, "data") }

// command is one of the PostgreSQL programs, run as the server's user
// with its output in the server's log.
func (srv *Server) command(logFile *os.File, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(srv.bin, name), args...)
	cmd.Dir = srv.Dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = []string{"LC_ALL=C", "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: srv.cred, Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// run starts postgres on the data directory with the -c settings given
// after the common ones (a later one wins), and waits until it accepts
// connections.
func (srv *Server) run(logFile *os.File, settings []string) error {
	// Only the Unix socket (no TCP port to collide with other tests).
	args := []string{"-D", srv.data(), "-k", srv.Socket, "-c", "listen_addresses=",
		"-c", "max_connections=200", "-c", "shared_buffers=32MB"}
	for _, s := range settings {
		args = append(args, "-c", s)
	}
	srv.cmd = srv.command(logFile, "postgres", args...)
	if err := srv.cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	go func() {
		_ = srv.cmd.Wait() // the exit is reported by Stop or by the readiness wait
		close(srv.done)
	}()
	if err := srv.waitReady(30 * time.Second); err != nil {
		_ = srv.Stop()
		return fmt.Errorf("%w; %s", err, tail(srv.Log))
	}
	return nil
}

func (srv *Server) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-srv.done:
			return errors.New("postgres exited during start")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, srv.DSN("postgres"))
		if err == nil {
			err = conn.Ping(ctx)
			_ = conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("postgres not ready after %v: %w", limit, last)
}

// DSN is the connection string of a database of the server.
func (srv *Server) DSN(database string) string {
	return fmt.Sprintf("host=%s port=5432 user=postgres dbname=%s sslmode=disable", srv.Socket, database)
}

// NewDatabase creates an empty database for one test, dropped when the
// test ends, and returns its DSN.
func (srv *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("test_%d", srv.dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, srv.DSN("postgres"))
	if err != nil {
		t.Fatalf("connect to PostgreSQL: %v", err)
	}
	defer func() { _ = conn.Close(ctx) }()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		select {
		case <-srv.done:
			return // the server was stopped: nothing left to drop
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, srv.DSN("postgres"))
		if err != nil {
			t.Errorf("connect to PostgreSQL to drop %s: %v", name, err)
			return
		}
		defer func() { _ = conn.Close(ctx) }()
		if _, err := conn.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})
	return srv.DSN(name)
}

// Stop stops the server by its PID (SIGINT, PostgreSQL's fast shutdown;
// SIGKILL of its process group after 10 s) and removes its directory.
func (srv *Server) Stop() error {
	var err error
	srv.stop.Do(func() {
		if srv.cmd != nil && srv.cmd.Process != nil {
			srv.Resume() // a Paused server stops too
			_ = srv.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-srv.done:
			case <-time.After(10 * time.Second):
				_ = syscall.Kill(-srv.cmd.Process.Pid, syscall.SIGKILL)
				<-srv.done
				err = fmt.Errorf("postgres (pid %d) did not stop within 10 s of SIGINT and was killed; %s", srv.cmd.Process.Pid, tail(srv.Log))
			}
		}
		if rerr := os.RemoveAll(srv.Dir); err == nil {
			err = rerr
		}
	})
	return err
}

// tail is the end of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "no log: " + err.Error()
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return "log " + path + ":\n" + s
}

// Pid is the process id of the postmaster.
func (srv *Server) Pid() int { return srv.cmd.Process.Pid }
