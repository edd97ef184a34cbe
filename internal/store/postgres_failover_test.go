package store_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/testkit/pgtest"
)

// Bounds of TestPostgresFailover.
const (
	// failoverWriteBound: no write may take longer than this, even
	// with the database gone (the API must answer, not hang).
	failoverWriteBound = 15 * time.Second
	// failoverResumeBound: the first write acknowledged after the
	// promotion comes within this of it.
	failoverResumeBound = 5 * time.Second
	// failoverOutage is how long the database has no primary.
	failoverOutage = 1500 * time.Millisecond
)

// failoverWrite is one write of the writer of TestPostgresFailover.
type failoverWrite struct {
	name       string
	ip         string
	serial     uint32
	err        error
	start, end time.Time
}

// TestPostgresFailover is PostgreSQL failover under a running control
// plane: two replicas (a writes, b follows) on a primary with a
// synchronous standby, reached through one DSN that lists both servers
// with target_session_attrs=read-write. A writer sends changes through a
// without pause; the primary is killed (SIGKILL of its processes), the
// database has no primary for failoverOutage, then the standby is
// promoted. It checks that
//   - every write that failed failed within failoverWriteBound, with an
//     error the API answers 503 (store.ErrUnavailable, or
//     store.ErrCommitUnknown when a commit's outcome could not be
//     learnt);
//   - writes succeed again within failoverResumeBound of the promotion
//     (the time is logged);
//   - no acknowledged write is lost: each is on the promoted standby
//     (synchronous replication: an acknowledged commit is on the
//     standby);
//   - b converges on the promoted standby's version, and its LISTEN is
//     back: a write made after both replicas listen on the new primary
//     reaches b through its notification.
//
// It runs twice: with the DSN listing both hosts, and with a DSN naming
// one address that moves to the promoted standby after pg_promote, as a
// VIP does (here the socket directory, a symbolic link switched from the
// primary's to the standby's).
func TestPostgresFailover(t *testing.T) {
	pgtest.Shared(t) // skipped here when PostgreSQL is not installed
	t.Run("multi-host DSN", func(t *testing.T) { testFailover(t, false, false) })
	t.Run("VIP", func(t *testing.T) { testFailover(t, true, false) })
	t.Run("commit in flight", func(t *testing.T) { testFailover(t, false, true) })
}

// testFailover is TestPostgresFailover through a VIP or the multi-host
// DSN. With inFlight, the standby hangs (SIGSTOP) before the primary is
// killed, so that a commit is waiting for the synchronous standby when the
// primary dies: its answer is lost, and the write must learn from the
// promoted standby whether it took effect (it has the commit's WAL, which
// it reads once it runs again).
func testFailover(t *testing.T, vip, inFlight bool) {
	pair := pgtest.StartPair(t, pgtest.PairOptions{Sync: true})
	dsn := pair.NewDatabase(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	moveVIP := func() {}
	if vip {
		link := filepath.Join(t.TempDir(), "vip")
		point := func(dir string) {
			tmp := link + ".new"
			if err := os.Symlink(dir, tmp); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, link); err != nil {
				t.Fatal(err)
			}
		}
		point(pair.Primary.Socket)
		moveVIP = func() { point(pair.Standby.Socket) }
		dsn = fmt.Sprintf("host=%s port=5432 user=postgres dbname=%s sslmode=disable", link, cfg.Database)
	}
	ctx := t.Context()
	openStore := func(dsn string) *store.Store {
		s, err := store.OpenPostgres(ctx, dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
		return s
	}
	logs := &lockedBuffer{}
	a, err := store.OpenPostgres(ctx, dsn, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Close(); err != nil {
			t.Error(err)
		}
	})
	b := openStore(dsn)
	const zname = "example.com."
	if _, err := a.CreateZone(ctx, zname, baseZone(t), store.SerialIncrement); err != nil {
		t.Fatal(err)
	}

	var (
		mu     sync.Mutex
		writes []failoverWrite
		stop   = make(chan struct{})
		wg     sync.WaitGroup
	)
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			w := failoverWrite{name: fmt.Sprintf("w%d.%s", i, zname), ip: fmt.Sprintf("192.0.2.%d", 1+i%250), start: time.Now()}
			wctx, cancel := context.WithTimeout(ctx, 2*failoverWriteBound)
			rr, err := dns.NewRR(w.name + " 60 IN A " + w.ip)
			if err == nil {
				w.serial, err = a.SetRRset(wctx, zname, w.name, dns.TypeA, []dns.RR{rr})
			}
			cancel()
			w.err, w.end = err, time.Now()
			mu.Lock()
			writes = append(writes, w)
			mu.Unlock()
			if err != nil {
				time.Sleep(20 * time.Millisecond) // a client's pause before it tries again
			}
		}
	})
	acked := func(after time.Time) (n int, first time.Time) {
		mu.Lock()
		defer mu.Unlock()
		for _, w := range writes {
			if w.err == nil && w.start.After(after) {
				if n == 0 {
					first = w.end
				}
				n++
			}
		}
		return n, first
	}
	waitAcks := func(after time.Time, n int, limit time.Duration) time.Time {
		t.Helper()
		deadline := time.Now().Add(limit)
		for {
			if got, first := acked(after); got >= n {
				return first
			}
			if time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				got, _ := acked(after)
				t.Fatalf("%d writes acknowledged in the %v after %s, want %d", got, limit, after.Format(time.StampMilli), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	begin := time.Now()
	waitAcks(begin, 50, 30*time.Second)

	if inFlight {
		pair.Standby.Pause()
		time.Sleep(200 * time.Millisecond) // the writer's commit waits for the standby
	}
	killed := time.Now()
	if err := pair.Primary.Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(failoverOutage)
	if inFlight {
		pair.Standby.Resume()
	}
	promoting := time.Now()
	if err := pair.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	moveVIP()
	promoted := time.Now()
	first := waitAcks(promoting, 1, 30*time.Second)
	waitAcks(promoting, 50, 30*time.Second)
	close(stop)
	wg.Wait()

	// The writes, in the order they were made.
	var before, during, after, failed, unknown int
	var slowest time.Duration
	for _, w := range writes {
		switch {
		case w.err != nil:
			failed++
			if d := w.end.Sub(w.start); d > slowest {
				slowest = d
			}
			if errors.Is(w.err, store.ErrCommitUnknown) {
				unknown++
			}
			if !errors.Is(w.err, store.ErrUnavailable) && !errors.Is(w.err, store.ErrCommitUnknown) {
				t.Errorf("write %s (%s after the kill) failed with an error that is not ErrUnavailable nor ErrCommitUnknown: %v",
					w.name, w.start.Sub(killed).Round(time.Millisecond), w.err)
			}
		case w.end.Before(killed):
			before++
		case w.start.After(promoting):
			after++
		default:
			during++
		}
	}
	if slowest > failoverWriteBound {
		t.Errorf("a failed write took %v, more than %v", slowest, failoverWriteBound)
	}
	gap := first.Sub(promoting)
	if gap > failoverResumeBound {
		t.Errorf("the first write after the promotion was acknowledged %v after pg_promote was called, more than %v", gap, failoverResumeBound)
	}

	// Every acknowledged write is on the promoted standby.
	c := openStore(pair.Standby.DSN(cfg.Database))
	info, _, err := c.Get(ctx, zname)
	if err != nil {
		t.Fatal(err)
	}
	lost := 0
	var lastSerial uint32
	for _, w := range writes {
		if w.err != nil {
			continue
		}
		got, err := c.RRset(ctx, zname, w.name, dns.TypeA)
		if err != nil || len(got) != 1 || got[0].(*dns.A).A.String() != w.ip {
			lost++
			t.Errorf("acknowledged write %s (serial %d) is not on the promoted standby: %v %v", w.name, w.serial, got, err)
		}
		if w.serial <= lastSerial {
			t.Errorf("write %s got serial %d after %d", w.name, w.serial, lastSerial)
		}
		lastSerial = w.serial
	}
	if lastSerial > info.Serial {
		t.Errorf("the promoted standby's zone is at serial %d, an acknowledged write had %d", info.Serial, lastSerial)
	}

	// b converges on the new primary's version.
	waitSerial := func(s *store.Store, serial uint32, what string) time.Duration {
		t.Helper()
		start := time.Now()
		deadline := start.Add(10 * time.Second)
		for {
			got, _, err := s.Get(ctx, zname)
			if err == nil && got.Serial == serial {
				return time.Since(start)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: replica b at serial %d (%v), want %d", what, got.Serial, err, serial)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitSerial(b, info.Serial, "after the failover")

	// LISTEN is back on the new primary (a, b and c listen there), so a
	// write now reaches b by its notification, not by the sweep that
	// follows a reconnect.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := c.Listeners(ctx)
		if err == nil && n == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions LISTEN on the promoted standby (%v), want 3 (replicas a, b, c)", n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	serial, err := a.SetRRset(ctx, zname, "last."+zname, dns.TypeA, rrs(t, "last."+zname+" 60 IN A 192.0.2.254"))
	if err != nil {
		t.Fatal(err)
	}
	if d := waitSerial(b, serial, "the write after the failover"); d > 2*time.Second {
		t.Errorf("replica b saw the write after the failover %v after it was acknowledged", d)
	}
	resolved := strings.Count(logs.String(), "the answer to a commit was lost")
	// The one writer, caught in a commit by the kill (on purpose in the
	// in-flight case, by chance in the others), waits for a primary to
	// learn that commit's outcome, and so spans the outage without a
	// failed write; otherwise a write must have failed meanwhile.
	if failed == 0 && !inFlight && resolved == 0 {
		t.Error("no write failed while the database had no primary")
	}
	if inFlight && resolved+unknown == 0 {
		t.Errorf("no commit was in flight when the primary was killed; the store's log:\n%s", logs.String())
	}
	t.Logf("commits whose answer was lost and whose outcome was read from the promoted standby: %d", resolved)
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "answer to a commit") || strings.Contains(l, "outcome of a commit") {
			t.Log(l)
		}
	}
	t.Logf("writes: %d acknowledged before the kill, %d acknowledged while the primary was down or being promoted, %d after the promotion; "+
		"%d failed (%d with the commit's outcome unknown), the slowest failed write took %v",
		before, during, after, failed, unknown, slowest.Round(time.Millisecond))
	t.Logf("primary killed at +0; pg_promote called at +%v, returned at +%v; first write acknowledged after the promotion at +%v: "+
		"%v after pg_promote was called, %v after it returned; acknowledged writes lost: %d",
		promoting.Sub(killed).Round(time.Millisecond), promoted.Sub(killed).Round(time.Millisecond), first.Sub(killed).Round(time.Millisecond),
		gap.Round(time.Millisecond), first.Sub(promoted).Round(time.Millisecond), lost)
}

// lockedBuffer is a log destination for several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
