package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/testkit/pgtest"
)

// loseCommitAnswer makes the next commit of a write run do (commit or roll
// back the transaction, then call then) and return a lost connection's
// error instead of the commit's answer; the commits after it are left
// alone.
func loseCommitAnswer(t *testing.T, commit bool, then func()) {
	t.Helper()
	old := commitTx
	used := false
	commitTx = func(tx *sql.Tx) error {
		if used {
			return old(tx)
		}
		used = true
		var err error
		if commit {
			err = old(tx)
		} else {
			err = tx.Rollback()
		}
		if err != nil {
			t.Errorf("loseCommitAnswer: %v", err)
		}
		if then != nil {
			then()
		}
		return io.ErrUnexpectedEOF // what a connection cut after the commit was sent gives
	}
	t.Cleanup(func() { commitTx = old })
}

func testZoneRRs(t *testing.T) []dns.RR {
	t.Helper()
	var out []dns.RR
	for _, s := range []string{
		"example.com. 3600 IN SOA ns1.example.com. hostmaster.example.com. 1 7200 3600 1209600 300",
		"example.com. 3600 IN NS ns1.example.com.",
		"ns1.example.com. 3600 IN A 192.0.2.53",
	} {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rr)
	}
	return out
}

func setA(ctx context.Context, t *testing.T, s *Store, name, ip string) (uint32, error) {
	t.Helper()
	rr, err := dns.NewRR(name + " 60 IN A " + ip)
	if err != nil {
		t.Fatal(err)
	}
	return s.SetRRset(ctx, "example.com.", name, dns.TypeA, []dns.RR{rr})
}

// TestCommitAnswerLost: a write whose commit was sent but whose answer was
// lost asks the database whether the commit took effect, also when another
// replica wrote the zone in between: one that did is acknowledged (not
// reported failed, which would make the client send it again), one that
// did not fails with ErrUnavailable and leaves the zone in memory as the
// database has it.
func TestCommitAnswerLost(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	ctx := t.Context()
	openStore := func() *Store {
		s, err := OpenPostgres(ctx, dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a, b := openStore(), openStore()
	if _, err := a.CreateZone(ctx, "example.com.", testZoneRRs(t), SerialIncrement); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		name          string
		landed, other bool
	}{
		{"landed", true, false},
		{"not landed", false, false},
		{"landed, then another replica wrote", true, true},
		{"not landed, another replica wrote", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("w%d.example.com.", i)
			var otherSerial uint32
			loseCommitAnswer(t, tc.landed, func() {
				if tc.other {
					var err error
					if otherSerial, err = setA(ctx, t, b, "other."+name, "192.0.2.2"); err != nil {
						t.Errorf("the other replica's write: %v", err)
					}
				}
			})
			serial, err := setA(ctx, t, a, name, "192.0.2.1")
			got, _ := a.RRset(ctx, "example.com.", name, dns.TypeA)
			if tc.landed {
				if err != nil {
					t.Fatalf("a commit that took effect was reported failed: %v", err)
				}
				if len(got) != 1 {
					t.Fatalf("the acknowledged write is not in memory: %v", got)
				}
				if tc.other && serial >= otherSerial {
					t.Errorf("serial %d, the other replica's later write %d", serial, otherSerial)
				}
			} else {
				if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrCommitUnknown) {
					t.Fatalf("a commit that did not take effect: %v, want ErrUnavailable", err)
				}
				if len(got) != 0 {
					t.Fatalf("a write that did not take effect is in memory: %v", got)
				}
			}
			// Both replicas and a fresh one agree with the database
			// after one more write.
			last, err := setA(ctx, t, a, "after."+name, "192.0.2.3")
			if err != nil {
				t.Fatal(err)
			}
			c := openStore()
			for _, s := range []*Store{a, b, c} {
				deadline := time.Now().Add(5 * time.Second)
				for {
					info, _, err := s.Get(ctx, "example.com.")
					rrs, _ := s.RRset(ctx, "example.com.", name, dns.TypeA)
					if err == nil && info.Serial == last && (len(rrs) == 1) == tc.landed {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("a replica at serial %d (%v) with %v at %s, want serial %d and the write there: %v", info.Serial, err, rrs, name, last, tc.landed)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}
}

// TestCommitAnswerLostDatabaseGone: when the database does not answer
// within commitResolveTimeout whether a commit whose answer was lost took
// effect, the write fails with ErrCommitUnknown (not ErrUnavailable: it
// must not be sent again blindly), within that bound.
func TestCommitAnswerLostDatabaseGone(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	ctx := t.Context()
	s, err := OpenPostgres(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	if _, err := s.CreateZone(ctx, "example.com.", testZoneRRs(t), SerialIncrement); err != nil {
		t.Fatal(err)
	}
	old := commitResolveTimeout
	commitResolveTimeout = time.Second
	t.Cleanup(func() { commitResolveTimeout = old })
	loseCommitAnswer(t, true, func() {
		if err := srv.Kill(); err != nil {
			t.Error(err)
		}
	})
	start := time.Now()
	_, err = setA(ctx, t, s, "w.example.com.", "192.0.2.1")
	took := time.Since(start)
	if !errors.Is(err, ErrCommitUnknown) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v, want ErrCommitUnknown", err)
	}
	if took > commitResolveTimeout+3*time.Second {
		t.Errorf("the write took %v, more than the bound %v and a query's timeout", took, commitResolveTimeout)
	}
	t.Logf("%v after %v", err, took.Round(time.Millisecond))
}

// TestConnectionLost: the errors of a lost database are told from the
// database refusing a statement.
func TestConnectionLost(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("zone example.com.: some error"), false},
		{&pgconn.PgError{Code: "23505", Message: "duplicate key"}, false},
		{&pgconn.PgError{Code: "40001", Message: "serialization failure"}, false},
		{&pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}, true},
		{&pgconn.PgError{Code: "08006", Message: "connection failure"}, true},
		{&pgconn.PgError{Code: "25006", Message: "cannot execute UPDATE in a read-only transaction"}, true},
		{io.EOF, true},
		{io.ErrUnexpectedEOF, true},
		{&net.OpError{Op: "dial", Net: "unix", Err: syscall.ECONNREFUSED}, true},
		{syscall.ECONNRESET, true},
		{&pgconn.ConnectError{Config: &pgconn.Config{}}, true},
		{context.DeadlineExceeded, true}, // a statement's or lock's bound: the API's 503 too
		{context.Canceled, false},
	} {
		if got := connectionLost(tc.err); got != tc.want {
			t.Errorf("connectionLost(%v) = %v, want %v", tc.err, got, tc.want)
		}
		if marked := markUnavailable(tc.err); errors.Is(marked, ErrUnavailable) != tc.want {
			t.Errorf("markUnavailable(%v) = %v: ErrUnavailable %v, want %v", tc.err, marked, !tc.want, tc.want)
		}
	}
	if err := markUnavailable(errors.Join(ErrCommitUnknown, io.EOF)); errors.Is(err, ErrUnavailable) {
		t.Errorf("a commit of unknown outcome was marked ErrUnavailable: %v", err)
	}
}
