package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Pair is a primary and a streaming-replication standby of it, each a
// Server of its own (its own directory and socket), for failover tests:
// Kill the primary, Promote the standby.
type Pair struct {
	Primary, Standby *Server
	Sync             bool // a commit on the primary returns once the standby has its WAL
}

// PairOptions change how a pair is started.
type PairOptions struct {
	// Sync makes the standby synchronous (synchronous_standby_names
	// names it, synchronous_commit=on): a commit is acknowledged only once
	// the standby has flushed its WAL, so a promotion loses no
	// acknowledged commit. Without it the replication is asynchronous and
	// the last acknowledged commits before a failover can be lost.
	Sync bool
}

// standbyName is the standby's application_name, which
// synchronous_standby_names lists.
const standbyName = "standby1"

// replicationRole is the role the standby connects as.
const replicationRole = "replicator"

// StartPair starts a primary and a standby streaming from it, both
// stopped when the test ends.
func StartPair(t testing.TB, opts PairOptions) *Pair {
	t.Helper()
	if _, err := BinDir(); err != nil {
		unavailable(t, err)
	}
	p, err := LaunchPair(opts)
	if err != nil {
		t.Fatalf("start a PostgreSQL primary and standby: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("stop PostgreSQL: %v", err)
		}
	})
	return p
}

// LaunchPair starts a primary and a standby outside a test; the caller
// stops them with Stop.
func LaunchPair(opts PairOptions) (p *Pair, err error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	// full_page_writes stays on: a base backup and the standby's replay
	// rely on it. synchronous_commit=on after start's "off" wins.
	settings := []string{"full_page_writes=on", "wal_level=replica", "max_wal_senders=10", "wal_keep_size=256MB"}
	if opts.Sync {
		// synchronous_standby_names is set once the standby streams:
		// before, a commit would wait for it.
		settings = append(settings, "synchronous_commit=on")
	}
	primary, err := start(bin, Options{settings: settings})
	if err != nil {
		return nil, fmt.Errorf("primary: %w", err)
	}
	p = &Pair{Primary: primary} // Sync once the standby is named synchronous
	defer func() {
		if err != nil {
			_ = p.Stop()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := execSQL(ctx, primary.DSN("postgres"), "CREATE ROLE "+replicationRole+" WITH REPLICATION LOGIN"); err != nil {
		return nil, fmt.Errorf("primary: create the replication role: %w", err)
	}
	standby, logFile, err := newServer(bin)
	if err != nil {
		return nil, fmt.Errorf("standby: %w", err)
	}
	p.Standby = standby
	defer func() { _ = logFile.Close() }() // the children hold their own descriptors
	// -R writes standby.signal (and a primary_conninfo, replaced below by
	// one with the standby's name).
	backup := standby.command(logFile, "pg_basebackup", "-h", primary.Socket, "-p", "5432", "-U", replicationRole,
		"-D", standby.data(), "-R", "-X", "stream", "-c", "fast", "--no-sync")
	if err := backup.Run(); err != nil {
		_ = os.RemoveAll(standby.Dir)
		return nil, fmt.Errorf("standby: pg_basebackup from %s: %w; %s", primary.Socket, err, tail(standby.Log))
	}
	conninfo := fmt.Sprintf("primary_conninfo=host=%s port=5432 user=%s application_name=%s", primary.Socket, replicationRole, standbyName)
	if err := standby.run(logFile, []string{"fsync=off", "full_page_writes=on", conninfo, "hot_standby=on"}); err != nil {
		_ = os.RemoveAll(standby.Dir)
		return nil, fmt.Errorf("standby: %w", err)
	}
	if err := p.WaitStreaming(ctx); err != nil {
		return nil, err
	}
	if opts.Sync {
		for _, q := range []string{"ALTER SYSTEM SET synchronous_standby_names = '" + standbyName + "'", "SELECT pg_reload_conf()"} {
			if err := execSQL(ctx, primary.DSN("postgres"), q); err != nil {
				return nil, fmt.Errorf("primary: make the standby synchronous: %w", err)
			}
		}
		p.Sync = true
		if err := p.WaitStreaming(ctx); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// execSQL runs one statement on a new connection.
func execSQL(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(ctx) }()
	_, err = conn.Exec(ctx, sql)
	return err
}

// WaitStreaming waits until the standby streams from the primary (and,
// with Sync, is its synchronous standby).
func (p *Pair) WaitStreaming(ctx context.Context) error {
	q := "SELECT count(*) FROM pg_stat_replication WHERE application_name = $1 AND state = 'streaming'"
	if p.Sync {
		q += " AND sync_state = 'sync'"
	}
	var last error
	for {
		var n int
		last = func() error {
			conn, err := pgx.Connect(ctx, p.Primary.DSN("postgres"))
			if err != nil {
				return err
			}
			defer func() { _ = conn.Close(ctx) }()
			return conn.QueryRow(ctx, q, standbyName).Scan(&n)
		}()
		if last == nil && n == 1 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the standby does not stream from the primary (%w); %s; %s", last, tail(p.Primary.Log), tail(p.Standby.Log))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// DSN is a connection string that lists both servers, primary first, and
// keeps the first that accepts writes (target_session_attrs=read-write):
// after a promotion it reaches the promoted standby.
func (p *Pair) DSN(database string) string {
	return fmt.Sprintf("host=%s,%s port=5432,5432 user=postgres dbname=%s sslmode=disable target_session_attrs=read-write",
		p.Primary.Socket, p.Standby.Socket, database)
}

// NewDatabase creates a database on the primary (the standby replicates
// it) and returns the pair's DSN for it.
func (p *Pair) NewDatabase(t testing.TB) string {
	t.Helper()
	dsn := p.Primary.NewDatabase(t)
	c, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return p.DSN(c.Database)
}

// Promote makes the standby a primary (pg_promote, waiting up to 60 s)
// and returns once it accepts writes.
func (p *Pair) Promote(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, p.Standby.DSN("postgres"))
	if err != nil {
		return fmt.Errorf("promote the standby: connect: %w", err)
	}
	defer func() { _ = conn.Close(ctx) }()
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_promote(true, 60)").Scan(&ok); err != nil {
		return fmt.Errorf("promote the standby: %w", err)
	}
	if !ok {
		return fmt.Errorf("promote the standby: not promoted within 60 s; %s", tail(p.Standby.Log))
	}
	var recovering bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&recovering); err != nil || recovering {
		return fmt.Errorf("promote the standby: still in recovery after pg_promote (err: %w)", err)
	}
	return nil
}

// Stop stops both servers.
func (p *Pair) Stop() error {
	var errs []error
	for _, srv := range []*Server{p.Standby, p.Primary} {
		if srv != nil {
			errs = append(errs, srv.Stop())
		}
	}
	return errors.Join(errs...)
}

// Kill kills the server as a crash would: every process of it (the
// postmaster and its children, which PostgreSQL puts in sessions of their
// own) is stopped, then killed (SIGKILL), so that none reacts to the
// others' deaths; it returns once all are gone. Its directory stays
// until Stop.
func (srv *Server) Kill() error {
	pids := srv.signalAll(syscall.SIGSTOP)
	srv.signalAll(syscall.SIGKILL)
	select {
	case <-srv.done:
	case <-time.After(10 * time.Second):
		return fmt.Errorf("postgres (pid %d) still runs 10 s after SIGKILL", srv.cmd.Process.Pid)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for alive(pid) {
			if time.Now().After(deadline) {
				return fmt.Errorf("process %d of postgres (pid %d) still runs 10 s after SIGKILL", pid, srv.cmd.Process.Pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// processes are the PIDs of the postmaster and its children.
func (srv *Server) processes() []int {
	pid := srv.cmd.Process.Pid
	out := []int{pid}
	entries, _ := os.ReadDir("/proc") // none: only the postmaster is known
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, ok := procStat(child); ok && ppid == pid {
			out = append(out, child)
		}
	}
	return out
}

// procStat reads a process's parent and state from /proc.
func procStat(pid int) (ppid int, state string, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, "", false
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return 0, "", false
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0], err == nil
}

// alive reports whether a process exists and is not a zombie.
func alive(pid int) bool {
	_, state, ok := procStat(pid)
	return ok && state != "Z" && state != "X"
}

// signalAll sends sig to the postmaster and each of its children, and
// returns their PIDs.
func (srv *Server) signalAll(sig syscall.Signal) []int {
	pids := srv.processes()
	for _, pid := range pids {
		_ = syscall.Kill(pid, sig) // one that has just exited is gone anyway
	}
	return pids
}

// Pause stops every process of the server (SIGSTOP), as a server that
// hangs: connections to it are accepted by the kernel and get no answer,
// a standby neither receives nor acknowledges WAL. Resume continues them.
func (srv *Server) Pause() { srv.signalAll(syscall.SIGSTOP) }

// Resume continues a server that Pause stopped.
func (srv *Server) Resume() { srv.signalAll(syscall.SIGCONT) }

// Setting is the value of a setting of the server, for tests.
func (srv *Server) Setting(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, srv.DSN("postgres"))
	if err != nil {
		return "", err
	}
	defer func() { _ = conn.Close(ctx) }()
	var v string
	err = conn.QueryRow(ctx, "SELECT current_setting($1)", strings.TrimSpace(name)).Scan(&v)
	return v, err
}
