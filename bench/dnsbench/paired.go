package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/anycastdns/anycastdns/bench/internal/benchkit"
)

// Side-by-side latency rounds. One latency run's p99 on this VM is set by
// stalls of the whole virtual CPU (1-5 ms, ~10 a second, invisible in
// /proc/stat), not by the server: run after run of one server it swings by
// several times. Two servers measured one after another meet different
// stalls. In a paired round the server and NSD run at the same time on the
// same server core, each with its own dnsperf at the latency rate on the
// client core, so both meet the same stalls and their p99 ratio in that
// round measures the servers. A pair of two NSDs (the control) shows how
// far the ratio strays for equal servers.
//
// The two servers share a core: a query may wait while the other server
// handles one. That wait is set by the other server's busy share, so it is
// the heavier server that slows its partner; each side's busy share is in
// the results.

// pairedRun is one round of a pair.
type pairedRun struct {
	Server benchkit.LatencyStats `json:"server"`
	NSD    benchkit.LatencyStats `json:"nsd"`
	// Busy and NSDBusy are each one's share of the shared core.
	Busy    float64 `json:"server_busy"`
	NSDBusy float64 `json:"nsd_busy"`
	Lost    uint64  `json:"server_lost"`
	NSDLost uint64  `json:"nsd_lost"`
	QPS     float64 `json:"server_qps"`
	NSDQPS  float64 `json:"nsd_qps"`
	// NSDFirst: NSD and its dnsperf were started before the server's.
	NSDFirst bool `json:"nsd_first"`
}

// P99Ratio is the server's p99 over NSD's in this round.
func (r pairedRun) P99Ratio() float64 {
	if r.NSD.P99 <= 0 {
		return 0
	}
	return float64(r.Server.P99) / float64(r.NSD.P99)
}

// pairedRounds are the rounds of one server beside NSD. Server "nsd" is the
// control: a second NSD beside the first.
type pairedRounds struct {
	Server string      `json:"server"`
	Runs   []pairedRun `json:"runs"`
	Errors []string    `json:"errors,omitempty"`
}

func medianFloat(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// ratios are the per-round p99 ratios, in round order.
func (pr pairedRounds) ratios() []float64 {
	var out []float64
	for _, r := range pr.Runs {
		out = append(out, r.P99Ratio())
	}
	return out
}

// MedianRatio is the median of the per-round p99 ratios.
func (pr pairedRounds) MedianRatio() float64 { return medianFloat(pr.ratios()) }

// notWorse counts the rounds whose p99 was at most NSD's.
func (pr pairedRounds) notWorse() int {
	n := 0
	for _, r := range pr.ratios() {
		if r <= 1 {
			n++
		}
	}
	return n
}

// medians are the medians over the rounds of each side's p50 and p99 and
// busy share.
func (pr pairedRounds) medians() (p50, p99, nsdP50, nsdP99 time.Duration, busy, nsdBusy float64) {
	var a50, a99, n50, n99 []time.Duration
	var ab, nb []float64
	for _, r := range pr.Runs {
		a50, a99 = append(a50, r.Server.P50), append(a99, r.Server.P99)
		n50, n99 = append(n50, r.NSD.P50), append(n99, r.NSD.P99)
		ab, nb = append(ab, r.Busy), append(nb, r.NSDBusy)
	}
	return medianOf(a50), medianOf(a99), medianOf(n50), medianOf(n99), medianFloat(ab), medianFloat(nb)
}

// pairedNames are the pairs to run: every server of the run beside NSD,
// then NSD beside NSD (the control). None without NSD.
func pairedNames(only []string) []string {
	if !slices.Contains(only, "nsd") {
		return nil
	}
	var out []string
	for _, n := range only {
		if n != "nsd" {
			out = append(out, n)
		}
	}
	return append(out, "nsd")
}

// pairedRounds runs o.PairedRounds rounds of every pair, the pairs taking
// turns within a round; every other round starts NSD's side first.
func (b *bench) pairedRounds(ctx context.Context) []pairedRounds {
	names := pairedNames(b.o.Only)
	out := make([]pairedRounds, len(names))
	for i, n := range names {
		out[i].Server = n
	}
	for round := range b.o.PairedRounds {
		for i, name := range names {
			if ctx.Err() != nil {
				return out
			}
			time.Sleep(time.Second)
			b.logger.Info("paired round", "round", round+1, "of", b.o.PairedRounds, "server", name, "beside", "nsd")
			r, err := b.pairedOnce(ctx, name, round%2 == 1)
			if err != nil {
				out[i].Errors = append(out[i].Errors, err.Error())
				b.logger.Error("paired round failed", "server", name, "err", err)
				continue
			}
			b.logger.Info("paired round done", "server", name, "p50", r.Server.P50, "p99", r.Server.P99,
				"nsd_p50", r.NSD.P50, "nsd_p99", r.NSD.P99, "p99_ratio", fmt.Sprintf("%.2f", r.P99Ratio()),
				"server_busy", pct(r.Busy), "nsd_busy", pct(r.NSDBusy))
			out[i].Runs = append(out[i].Runs, r)
		}
	}
	return out
}

// pairedOnce starts name and NSD on the server core, lets one dnsperf per
// server send at the latency rate at the same time, and stops both. With
// nsdFirst NSD and its dnsperf start first: the side started first came out
// slower (NSD beside NSD: 5 of 5 rounds, by 1-12%), so the rounds alternate.
func (b *bench) pairedOnce(ctx context.Context, name string, nsdFirst bool) (pairedRun, error) {
	dir := name
	if name == "nsd" {
		dir = "nsd-control"
	}
	names, dirs := [2]string{name, "nsd"}, [2]string{dir, "nsd"}
	order := [2]int{0, 1}
	if nsdFirst {
		order = [2]int{1, 0}
	}
	var servers [2]*benchkit.Server
	for _, i := range order {
		srv, err := b.startReadyIn(ctx, names[i], dirs[i])
		if err != nil {
			return pairedRun{}, err
		}
		defer b.stop(srv)
		servers[i] = srv
	}

	var (
		wg      sync.WaitGroup
		perf    [2]perfResult
		errs    [2]error
		ticks   [2][2]uint64 // server CPU ticks at the first and last statistics line
		at      [2][2]time.Time
		seconds int // only the server's side counts (i == 0)
	)
	for _, i := range order {
		srv := servers[i]
		cfg := latencyConfig(b.baseConfig(srv), b.o.LatencyQPS)
		ev := perfEvents{
			Start: func() { ticks[i][0], at[i][0] = treeTicks(srv.Tree()), time.Now() },
			Interval: func(float64) {
				ticks[i][1], at[i][1] = treeTicks(srv.Tree()), time.Now()
				if i == 0 {
					seconds++
					b.logger.Info("paired latency", "server", name, "t", fmt.Sprintf("%ds/%v", seconds, cfg.Duration))
				}
			},
		}
		wg.Go(func() { perf[i], errs[i] = runPerf(ctx, cfg, nil, ev) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return pairedRun{}, fmt.Errorf("%s: %w", servers[i].Name, err)
		}
	}
	busy := func(i int) float64 {
		wall := at[i][1].Sub(at[i][0]).Seconds()
		if wall <= 0 {
			return 0
		}
		return float64(ticks[i][1]-ticks[i][0]) / userHZ / wall
	}
	return pairedRun{
		NSDFirst: nsdFirst,
		Server:   benchkit.Summarise(perf[0].Latencies), NSD: benchkit.Summarise(perf[1].Latencies),
		Busy: busy(0), NSDBusy: busy(1), Lost: perf[0].Lost, NSDLost: perf[1].Lost,
		QPS: perf[0].QPS, NSDQPS: perf[1].QPS,
	}, nil
}
