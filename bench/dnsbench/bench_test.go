package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/anycastdns/anycastdns/bench/internal/benchkit"
)

func TestRunFigures(t *testing.T) {
	quiet := func(qps, busy float64) second {
		return second{QPS: qps, Shares: shares{Server: busy, Client: 1, ServerOther: 0.01}}
	}
	noisySec := second{QPS: 50000, Shares: shares{Server: 0.5, Client: 0.5, ServerOther: 0.5}}
	approx := cmpopts.EquateApprox(1e-9, 0)
	tests := []struct {
		name        string
		secs        []second
		whole       shares
		wantQuiet   *figures
		wantLimited bool
	}{
		{
			name:  "quiet seconds replace the whole run",
			secs:  []second{quiet(100000, 0.5), noisySec, quiet(100000, 0.5), quiet(130000, 0.65)},
			whole: shares{Server: 0.5, Client: 0.8, ServerOther: 0.13},
			wantQuiet: &figures{QPS: 110000, Busy: 0.55, PerCore: 200000, ClientBusy: 1,
				ServerOther: 0.01, Seconds: 3},
			wantLimited: true, // 0.55 + 0.01 < 0.9: idle, dnsperf was the limit
		},
		{
			name:        "too few quiet seconds",
			secs:        []second{quiet(100000, 1), noisySec, noisySec, quiet(100000, 1)},
			whole:       shares{Server: 0.5, ServerOther: 0.45},
			wantLimited: false, // starved by others, not idle
		},
		{
			name:        "saturated server",
			secs:        []second{quiet(100000, 0.98), quiet(100000, 0.98), quiet(100000, 0.98)},
			whole:       shares{Server: 0.98},
			wantQuiet:   &figures{QPS: 100000, Busy: 0.98, PerCore: 100000 / 0.98, ClientBusy: 1, ServerOther: 0.01, Seconds: 3},
			wantLimited: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runFigures(perfResult{QPS: 90000}, tt.whole, tt.secs)
			if diff := cmp.Diff(tt.wantQuiet, r.Quiet, approx); diff != "" {
				t.Errorf("quiet figures (-want +got):\n%s", diff)
			}
			if r.Run.QPS != 90000 || r.Run.Seconds != len(tt.secs) || (tt.whole.Server > 0 && r.Run.PerCore != 90000/tt.whole.Server) {
				t.Errorf("whole run = %+v", r.Run)
			}
			if r.ClientLimited != tt.wantLimited {
				t.Errorf("client limited = %v, want %v", r.ClientLimited, tt.wantLimited)
			}
			want := r.Run
			if tt.wantQuiet != nil {
				want = *r.Quiet
			}
			if h := r.Headline(); h != want {
				t.Errorf("headline = %+v, want %+v", h, want)
			}
		})
	}
}

func TestLatencyFigures(t *testing.T) {
	ms := time.Millisecond
	us := time.Microsecond
	perf := perfResult{
		// Second 1: fast; second 2: slow (noisy); seconds 3, 4: fast;
		// a partial fifth second after the last statistics line.
		Latencies:     []time.Duration{10 * us, 20 * us, 5 * ms, 6 * ms, 30 * us, 40 * us, 50 * us, 9 * ms},
		IntervalMarks: []int{2, 4, 6, 7},
	}
	q := second{Shares: shares{ServerOther: 0.01}}
	n := second{Shares: shares{ServerOther: 0.3}}
	r := latencyFigures(perf, shares{}, []second{q, n, q, q})
	if r.QuietSeconds != 3 || r.Seconds != 4 {
		t.Errorf("quiet %d of %d seconds, want 3 of 4", r.QuietSeconds, r.Seconds)
	}
	if r.Stats.Count != 5 || r.Stats.Max != 50*us {
		t.Errorf("quiet stats = %+v, want the 5 answers of seconds 1, 3, 4 (max 50µs)", r.Stats)
	}
	if r.All.Count != 8 || r.All.Max != 9*ms {
		t.Errorf("whole-run stats = %+v", r.All)
	}
	r = latencyFigures(perf, shares{}, []second{q, n, n, q})
	if r.Stats != r.All {
		t.Errorf("two quiet seconds: stats %+v, want the whole run's", r.Stats)
	}
}

func TestLatencyRoundsMedians(t *testing.T) {
	run := func(p50, p99 time.Duration, busy float64) latencyResult {
		return latencyResult{Stats: benchkit.LatencyStats{P50: p50, P99: p99}, Busy: busy}
	}
	lr := serverRounds{Server: "x", Runs: []latencyResult{
		run(100*time.Microsecond, 4000*time.Microsecond, 0.4),
		run(90*time.Microsecond, 300*time.Microsecond, 0.3),
		run(120*time.Microsecond, 2000*time.Microsecond, 0.5),
	}}
	m := lr.medians()
	if m.P50 != 100*time.Microsecond || m.P99 != 2000*time.Microsecond {
		t.Errorf("medians p50 %v p99 %v, want 100µs and 2ms", m.P50, m.P99)
	}
	if lo, hi := lr.p99Range(); lo != 300*time.Microsecond || hi != 4000*time.Microsecond {
		t.Errorf("p99 range %v-%v, want 300µs-4ms", lo, hi)
	}
	if b := lr.busyMedian(); b != 0.4 {
		t.Errorf("busy median %v, want 0.4", b)
	}
	if m := (serverRounds{}).medians(); m.P99 != 0 {
		t.Errorf("no runs: p99 %v, want 0", m.P99)
	}
}
