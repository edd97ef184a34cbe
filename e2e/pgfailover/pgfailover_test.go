//go:build linux

// Package pgfailover runs the real `anycastd control` on a PostgreSQL
// primary with a synchronous standby and makes API writes across a
// failover: the primary is killed, the standby promoted.
package pgfailover

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/apiclient"
	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/testkit"
	"github.com/anycastdns/anycastdns/internal/testkit/pgtest"
)

const token = "pgfailover-token-0123456789abcdef"

// Bounds of the test.
const (
	requestBound = 15 * time.Second        // every API answer, database or not
	resumeBound  = 5 * time.Second         // first acknowledged write after pg_promote
	outage       = 1500 * time.Millisecond // no primary
)

type write struct {
	name, ip   string
	status     int // 200 or the API's error status; 0: no HTTP answer
	err        error
	start, end time.Time
}

// TestControlPlaneFailover: `anycastd control` with store.postgres.dsn
// listing a primary and its synchronous standby
// (target_session_attrs=read-write) keeps answering while a client
// writes through the API and the primary is killed, then the standby
// promoted: a write while there is no primary is answered 503 within
// requestBound (no 500, no hang, no crash), writes are acknowledged again
// within resumeBound of the promotion, and every acknowledged write is on
// the promoted standby and served by the running control plane.
func TestControlPlaneFailover(t *testing.T) {
	bin := testkit.BuildAnycastd(t)
	pair := pgtest.StartPair(t, pgtest.PairOptions{Sync: true})
	dsn := pair.NewDatabase(t)
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	apiAddr := testkit.FreeAddr(t)
	conf := filepath.Join(dir, "control.yaml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, `data_dir: %q
api:
  listen: %q
  tokens: [%q]
store:
  postgres:
    dsn: %q
log: {level: info}
`, filepath.Join(dir, "control"), apiAddr, token, dsn), 0o600); err != nil {
		t.Fatal(err)
	}
	ctl := testkit.StartProcess(t, "control", filepath.Join(dir, "control.log"), bin, "control", "-config", conf)
	ctl.StopAfter, ctl.CheckExit = 20*time.Second, true
	testkit.WaitHTTP(t, "http://"+apiAddr+"/readyz", 20*time.Second)
	client, err := apiclient.New("http://"+apiAddr, token, &http.Client{Timeout: 2 * requestBound})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	const zone = "example.com."
	if _, err := client.CreateZone(ctx, api.CreateZone{Name: zone, Records: []string{
		"@ 3600 IN SOA ns1 hostmaster 1 3600 600 604800 60",
		"@ 3600 IN NS ns1",
		"ns1 3600 IN A 192.0.2.53",
	}}); err != nil {
		t.Fatal(err)
	}

	var (
		mu     sync.Mutex
		writes []write
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
			w := write{name: fmt.Sprintf("w%d.%s", i, zone), ip: fmt.Sprintf("192.0.2.%d", 1+i%250), start: time.Now()}
			_, err := client.SetRRset(ctx, zone, w.name, "A", api.RRset{TTL: 60, Records: []string{w.ip}}, "")
			w.end, w.err, w.status = time.Now(), err, http.StatusOK
			var ae *apiclient.Error
			if errors.As(err, &ae) {
				w.status = ae.StatusCode
			} else if err != nil {
				w.status = 0
			}
			mu.Lock()
			writes = append(writes, w)
			mu.Unlock()
			if err != nil {
				time.Sleep(20 * time.Millisecond)
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
	waitAcks := func(after time.Time, n int) time.Time {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			if got, first := acked(after); got >= n {
				return first
			}
			if time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				got, _ := acked(after)
				t.Fatalf("%d writes acknowledged in 30 s after %s, want %d; control plane log:\n%s", got, after.Format(time.StampMilli), n, ctl.Tail(30))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitAcks(time.Now(), 30)
	killed := time.Now()
	if err := pair.Primary.Kill(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(outage)
	promoting := time.Now()
	if err := pair.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	promoted := time.Now()
	first := waitAcks(promoting, 1)
	waitAcks(promoting, 30)
	close(stop)
	wg.Wait()

	if ctl.Exited() {
		t.Fatalf("the control plane exited during the failover: %v\n%s", ctl.Err(), ctl.Tail(30))
	}
	var failed, unavailable int
	var slowest time.Duration
	for _, w := range writes {
		if d := w.end.Sub(w.start); d > slowest {
			slowest = d
		}
		if w.err == nil {
			continue
		}
		failed++
		if w.status == http.StatusServiceUnavailable {
			unavailable++
			continue
		}
		t.Errorf("write %s (%v after the kill): %v, want a 503", w.name, w.start.Sub(killed).Round(time.Millisecond), w.err)
	}
	if failed == 0 {
		t.Error("no API write failed while the database had no primary")
	}
	if slowest > requestBound {
		t.Errorf("an API write took %v, more than %v", slowest, requestBound)
	}
	gap := first.Sub(promoting)
	if gap > resumeBound {
		t.Errorf("the first write after the promotion was acknowledged %v after pg_promote was called, more than %v", gap, resumeBound)
	}

	// Every acknowledged write is on the promoted standby and served by
	// the running control plane.
	s, err := store.OpenPostgres(ctx, pair.Standby.DSN(cfg.Database), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	lost, ackedN := 0, 0
	for _, w := range writes {
		if w.err != nil {
			continue
		}
		ackedN++
		got, err := s.RRset(ctx, zone, w.name, dns.TypeA)
		if err != nil || len(got) != 1 || got[0].(*dns.A).A.String() != w.ip {
			lost++
			t.Errorf("acknowledged write %s is not on the promoted standby: %v %v", w.name, got, err)
		}
		set, _, err := client.RRset(ctx, zone, w.name, "A")
		if err != nil || len(set.Records) != 1 || set.Records[0] != w.ip {
			t.Errorf("acknowledged write %s: the control plane answers %v %v", w.name, set.Records, err)
		}
	}
	t.Logf("API writes: %d acknowledged, %d failed (all 503: %v), the slowest request took %v; lost: %d",
		ackedN, failed, unavailable == failed, slowest.Round(time.Millisecond), lost)
	t.Logf("pg_promote called %v after the kill and took %v; first write acknowledged %v after pg_promote was called (%v after it returned)",
		promoting.Sub(killed).Round(time.Millisecond), promoted.Sub(promoting).Round(time.Millisecond),
		gap.Round(time.Millisecond), first.Sub(promoted).Round(time.Millisecond))
}

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m).Run()) }
