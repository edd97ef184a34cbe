package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/anycastdns/anycastdns/bench/internal/benchkit"
	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/apiclient"
	"github.com/anycastdns/anycastdns/internal/testkit/pgtest"
)

// The zone the writers change, and its content at creation.
const zoneName = "bench.example."

var zoneRecords = []string{
	"@ 3600 IN SOA ns1 hostmaster 1 7200 3600 1209600 300",
	"@ 3600 IN NS ns1",
	"ns1 3600 IN A 192.0.2.1",
}

// Each writer of a case cycles through namesPerWriter names of its own
// (named after the case's writer count, so that a case never rewrites what
// an earlier one wrote); the address written is the change's number in
// 198.18.0.0/15, so that every PUT changes its RRset (consecutive writes of
// one name differ by namesPerWriter). A PUT of what is there already
// would be no change, answered with the current serial.
const (
	namesPerWriter = 64
	maxChanges     = 1 << 17
)

// changeName and changeAddr are writer w's i-th change in the case of n
// writers.
func changeName(n, w, i int) string {
	return fmt.Sprintf("c%d-w%d-%d.%s", n, w, i%namesPerWriter, zoneName)
}

func changeAddr(i int) netip.Addr {
	v := uint32(198)<<24 | uint32(18)<<16 + uint32(i%maxChanges) //nolint:gosec // i%maxChanges < 2^17
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// caseResult is one store × writer count.
type caseResult struct {
	Store     string                `json:"store"`
	Writers   int                   `json:"writers"`
	Changes   int                   `json:"changes"`
	Elapsed   time.Duration         `json:"elapsed_ns"`
	PerSecond float64               `json:"changes_per_second"`
	Latency   benchkit.LatencyStats `json:"latency"`
	// SerialsUnique: every acknowledged change got a serial of its own.
	SerialsUnique bool   `json:"serials_unique"`
	Error         string `json:"error,omitempty"`
}

// measureStore starts anycastd control on the store, creates the zone and
// runs every writer count, in a directory of its own under work.
func measureStore(ctx context.Context, o *options, store, work string, logger *slog.Logger) ([]caseResult, error) {
	dir := filepath.Join(work, store)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	var dsn string
	if store == storePostgres {
		logger.Info("starting PostgreSQL", "fsync", "on")
		srv, err := pgtest.Launch(pgtest.Options{Durable: true})
		if err != nil {
			return nil, fmt.Errorf("start PostgreSQL: %w", err)
		}
		defer func() {
			if err := srv.Stop(); err != nil {
				logger.Warn("stop PostgreSQL", "err", err)
			}
		}()
		if dsn, err = createDatabase(ctx, srv, "apibench"); err != nil {
			return nil, err
		}
		logger.Info("PostgreSQL ready", "pid", srv.Pid(), "socket", srv.Socket)
	}
	cl, s, err := startControl(ctx, o.AnycastdBin, store, dir, dsn)
	if s != nil {
		defer func() {
			if err := s.Stop(10 * time.Second); err != nil {
				logger.Warn("stop anycastd control", "store", store, "err", err)
			}
		}()
	}
	if err != nil {
		return nil, err
	}
	logger.Info("API ready", "store", store, "pid", s.PID(), "after", time.Since(s.Started).Round(time.Millisecond))
	if _, err := cl.CreateZone(ctx, api.CreateZone{Name: zoneName, Records: zoneRecords}); err != nil {
		return nil, fmt.Errorf("create zone %s: %w", zoneName, err)
	}
	var res []caseResult
	for _, n := range o.Writers {
		if ctx.Err() != nil {
			break
		}
		logger.Info("writing", "store", store, "writers", n, "duration", o.Duration, "changes_per_writer", o.Changes)
		r, err := runCase(ctx, cl, o, n)
		r.Store = store
		res = append(res, r)
		if err != nil {
			if s.Exited() {
				err = fmt.Errorf("%w; anycastd exited: %w\n%s", err, s.ExitErr(), s.LogTail())
			}
			return res, fmt.Errorf("%d writers: %w", n, err)
		}
		logger.Info("done", "store", store, "writers", n, "changes", r.Changes,
			"changes/s", fmt.Sprintf("%.0f", r.PerSecond), "p50", r.Latency.P50, "p99", r.Latency.P99)
	}
	return res, nil
}

// createDatabase creates an empty database on srv and returns its DSN.
func createDatabase(ctx context.Context, srv *pgtest.Server, name string) (string, error) {
	conn, err := pgx.Connect(ctx, srv.DSN("postgres"))
	if err != nil {
		return "", fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	return srv.DSN(name), nil
}

// controlConfig is control.yaml: the API on api, the data in dir/data,
// the zones in PostgreSQL when dsn is set.
func controlConfig(dir, token, dsn string, apiAddr netip.AddrPort) string {
	c := "data_dir: " + strconv.Quote(filepath.Join(dir, "data")) + "\n" +
		"api:\n  listen: " + strconv.Quote(apiAddr.String()) + "\n  tokens: [" + strconv.Quote(token) + "]\n" +
		"log:\n  level: warn\n"
	if dsn != "" {
		c += "store:\n  postgres:\n    dsn: " + strconv.Quote(dsn) + "\n"
	}
	return c
}

// startControl starts anycastd control in dir and waits for its API.
func startControl(ctx context.Context, bin, store, dir, dsn string) (*apiclient.Client, *benchkit.Server, error) {
	addr, err := benchkit.FreePort(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		return nil, nil, err
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return nil, nil, err
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	conf := filepath.Join(dir, "control.yaml")
	if err := os.WriteFile(conf, []byte(controlConfig(dir, token, dsn, addr)), 0o600); err != nil {
		return nil, nil, fmt.Errorf("write %s: %w", conf, err)
	}
	s, err := benchkit.Start(benchkit.Launch{
		Name:  "anycastd-control",
		Argv:  []string{bin, "control", "-config", conf},
		Check: []string{bin, "checkconf", "-role", "control", conf},
	}, -1, 0, dir, addr)
	if err != nil {
		return nil, nil, err
	}
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: maxWriters}}
	cl, err := apiclient.New("http://"+addr.String(), token, hc)
	if err != nil {
		return nil, s, err
	}
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		if s.Exited() {
			return nil, s, fmt.Errorf("anycastd control on %s exited before its API answered: %w\n%s", store, s.ExitErr(), s.LogTail())
		}
		if _, err := cl.ListZones(rctx); err == nil {
			return cl, s, nil
		} else if rctx.Err() != nil {
			return nil, s, fmt.Errorf("anycastd control on %s: API not ready: %w", store, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runCase has n writers change the zone until o.Duration has passed or
// each has made o.Changes changes, and measures them. A failed PUT stops
// the case with its error.
func runCase(ctx context.Context, cl *apiclient.Client, o *options, n int) (caseResult, error) {
	res := caseResult{Writers: n}
	lat := make([][]time.Duration, n)
	serials := make([][]uint32, n)
	errs := make([]error, n)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ttl := uint32(300)
	start := time.Now()
	end := start.Add(o.Duration)
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() {
			for i := 0; o.Changes == 0 || i < o.Changes; i++ {
				if ctx.Err() != nil || o.Duration > 0 && !time.Now().Before(end) {
					return
				}
				set := api.PutRRset{TTL: &ttl, Records: []string{changeAddr(i).String()}}
				t0 := time.Now()
				wr, err := cl.PutRRset(ctx, zoneName, changeName(n, w, i), "A", set, "")
				if err != nil {
					if ctx.Err() == nil {
						errs[w] = fmt.Errorf("writer %d, change %d (PUT %s A): %w", w, i, changeName(n, w, i), err)
						cancel() // one failure ends the case
					}
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
				serials[w] = append(serials[w], wr.Serial)
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	all := slices.Concat(lat...)
	res.Changes = len(all)
	res.Latency = benchkit.Summarise(all)
	if res.Elapsed > 0 {
		res.PerSecond = float64(res.Changes) / res.Elapsed.Seconds()
	}
	ss := slices.Concat(serials...)
	slices.Sort(ss)
	res.SerialsUnique = len(slices.Compact(ss)) == res.Changes
	err := errors.Join(errs...)
	if err == nil && !res.SerialsUnique {
		err = errors.New("two acknowledged changes got the same serial")
	}
	if err == nil && res.Changes == 0 {
		err = errors.New("no change was made")
	}
	if err != nil {
		res.Error = err.Error()
	}
	return res, err
}
