package pgtest_test

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/anycastdns/anycastdns/internal/testkit/pgtest"
)

// TestStart starts a server, runs a query as a user other than root in a
// database of its own, and checks that Stop ends the server and removes
// its directory.
func TestStart(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	var db, user string
	var n int
	if err := conn.QueryRow(ctx, "SELECT current_database(), current_user, 40 + 2").Scan(&db, &user, &n); err != nil {
		t.Fatal(err)
	}
	if err := conn.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if db == "postgres" || n != 42 {
		t.Fatalf("database %q, 40+2 = %d", db, n)
	}
	st, err := os.Stat(srv.Dir + "/data")
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 && st.Sys().(*syscall.Stat_t).Uid == 0 {
		t.Fatal("the data directory belongs to root: the server would refuse to run")
	}
	pid := srv.Pid()
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("postgres pid %d still runs after Stop", pid)
	}
	if _, err := os.Stat(srv.Dir); !os.IsNotExist(err) {
		t.Fatalf("the directory %s is left after Stop: %v", srv.Dir, err)
	}
}

// TestShared: two calls share one server, and two databases of it are
// distinct.
func TestShared(t *testing.T) {
	a, b := pgtest.Shared(t), pgtest.Shared(t)
	if a != b {
		t.Fatal("Shared started two servers")
	}
	if d1, d2 := a.NewDatabase(t), a.NewDatabase(t); d1 == d2 {
		t.Fatalf("two databases with one DSN %s", d1)
	}
}

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m).Run()) }

// TestLaunchDurable: a server started with Durable has fsync,
// synchronous_commit and full_page_writes on (what bench/apibench compares
// with SQLite's synchronous=FULL); one started by Start has them off.
func TestLaunchDurable(t *testing.T) {
	if _, err := pgtest.BinDir(); err != nil {
		t.Skipf("skipped: %v", err)
	}
	settings := func(dsn string) string {
		t.Helper()
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = conn.Close(ctx) }()
		var fsync, sc, fpw string
		if err := conn.QueryRow(ctx, "SELECT current_setting('fsync'), current_setting('synchronous_commit'), current_setting('full_page_writes')").Scan(&fsync, &sc, &fpw); err != nil {
			t.Fatal(err)
		}
		return fsync + " " + sc + " " + fpw
	}
	srv, err := pgtest.Launch(pgtest.Options{Durable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
	}()
	if got := settings(srv.DSN("postgres")); got != "on on on" {
		t.Errorf("Durable: fsync, synchronous_commit, full_page_writes = %s, want on on on", got)
	}
	if got := settings(pgtest.Start(t).DSN("postgres")); got != "off off off" {
		t.Errorf("Start: fsync, synchronous_commit, full_page_writes = %s, want off off off", got)
	}
}

// TestPair: a synchronous standby streams from the primary and has a
// commit once the primary acknowledged it; the multi-host DSN reaches the
// primary; after the primary is killed and the standby promoted, the same
// DSN reaches the standby, which accepts writes and holds the commit.
func TestPair(t *testing.T) {
	p := pgtest.StartPair(t, pgtest.PairOptions{Sync: true})
	ctx := t.Context()
	for name, want := range map[string]string{"synchronous_standby_names": "standby1", "synchronous_commit": "on", "wal_level": "replica"} {
		if v, err := p.Primary.Setting(ctx, name); err != nil || v != want {
			t.Errorf("primary: %s = %q (%v), want %q", name, v, err, want)
		}
	}
	dsn := p.NewDatabase(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	var recovering bool
	if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&recovering); err != nil || recovering {
		t.Fatalf("the pair's DSN reached a server in recovery (%v)", err)
	}
	// With the standby paused a commit waits for it (synchronous).
	p.Standby.Pause()
	short, cancel := context.WithTimeout(ctx, time.Second)
	_, err = conn.Exec(short, "INSERT INTO t VALUES (4)")
	cancel()
	p.Standby.Resume()
	if err == nil {
		t.Fatal("a commit returned with the synchronous standby paused")
	}
	if conn, err = pgx.Connect(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	pid := p.Primary.Pid()
	if err := p.Primary.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("postgres pid %d still runs after Kill", pid)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO t VALUES (2)"); err == nil {
		t.Fatal("a write on the killed primary's connection succeeded")
	}
	if c, err := pgx.Connect(ctx, dsn); err == nil {
		_ = c.Close(ctx)
		t.Fatal("the DSN reached a read-write server with the primary dead and the standby not promoted")
	}
	if err := p.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err = pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close(ctx) }()
	if _, err := conn.Exec(ctx, "INSERT INTO t VALUES (3)"); err != nil {
		t.Fatalf("write on the promoted standby: %v", err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM t WHERE n IN (1, 3)").Scan(&n); err != nil || n != 2 {
		t.Fatalf("the promoted standby has %d of the rows 1 and 3 (%v)", n, err)
	}
}
