package level

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func cfg() Config {
	return Config{Quorum: 2, Stale: 3 * time.Second, HighQPS: 1000, LowQPS: 600, HighRTT: 100 * time.Millisecond, LowRTT: 50 * time.Millisecond,
		Hold: 10 * time.Second, MaxShed: 1, MinNormal: 1}
}

// see builds one observation per vantage point of pop.
func see(pop string, at time.Time, up []bool, rtt time.Duration, qps float64) []Observation {
	var out []Observation
	for i, u := range up {
		out = append(out, Observation{PoP: pop, Vantage: string(rune('1' + i)), Time: at, Up: u, RTTp95: rtt, QPS: qps})
	}
	return out
}

var allUp = []bool{true, true, true}

func levels(ds []Decision) map[string]Level {
	m := map[string]Level{}
	for _, d := range ds {
		m[d.PoP] = d.Level
	}
	return m
}

// TestNoMarks: without load or RTT marks the reason says so, rather than
// naming marks that are not set.
func TestNoMarks(t *testing.T) {
	e := New(Config{Quorum: 2, Stale: time.Second, Hold: time.Second})
	ds := e.Step(t0, see("A", t0, allUp, 10*time.Millisecond, 100))
	if len(ds) != 1 || ds[0].Level != Normal || !strings.HasPrefix(ds[0].Reason, "available (neither load nor RTT marks set) for 0s") {
		t.Errorf("decisions %+v", ds)
	}
}

// TestStepOnce: one step from all-normal, rule by rule.
func TestStepOnce(t *testing.T) {
	now := t0
	cool := 10 * time.Millisecond
	tests := []struct {
		name   string
		obs    [][]Observation
		want   map[string]Level
		reason map[string]string
	}{
		{"all fine", [][]Observation{see("A", now, allUp, cool, 100), see("B", now, allUp, cool, 100), see("C", now, allUp, cool, 100)},
			map[string]Level{"A": Normal, "B": Normal, "C": Normal}, map[string]string{"A": "below the low-water marks"}},
		{"gray failure: 2 of 3 see B down", [][]Observation{see("A", now, allUp, cool, 100), see("B", now, []bool{false, false, true}, cool, 100), see("C", now, allUp, cool, 100)},
			map[string]Level{"A": Normal, "B": Withdrawn, "C": Normal}, map[string]string{"B": "down from 2 of 3 vantage points (quorum 2)"}},
		{"1 of 3 sees B down", [][]Observation{see("A", now, allUp, cool, 100), see("B", now, []bool{true, false, true}, cool, 100), see("C", now, allUp, cool, 100)},
			map[string]Level{"A": Normal, "B": Normal, "C": Normal}, nil},
		{"stale monitors do not count", [][]Observation{see("A", now, allUp, cool, 100), append(see("B", now.Add(-4*time.Second), []bool{false, false}, cool, 100), see("B", now, []bool{true}, cool, 100)...)},
			map[string]Level{"A": Normal, "B": Normal}, nil},
		{"every PoP down moves nothing", [][]Observation{see("A", now, []bool{false, false, false}, 0, 0), see("B", now, []bool{false, false, false}, 0, 0)},
			map[string]Level{"A": Normal, "B": Normal}, map[string]string{"A": "a shared condition moves nothing"}},
		{"hot by load", [][]Observation{see("A", now, allUp, cool, 1500), see("B", now, allUp, cool, 100)},
			map[string]Level{"A": Shed1, "B": Normal}, map[string]string{"A": "load 1500 q/s above the high-water mark 1000: one step up"}},
		{"hot by RTT (median of the p95s)", [][]Observation{{{PoP: "A", Vantage: "1", Time: now, Up: true, RTTp95: 300 * time.Millisecond}, {PoP: "A", Vantage: "2", Time: now, Up: true, RTTp95: 200 * time.Millisecond}, {PoP: "A", Vantage: "3", Time: now, Up: true, RTTp95: 10 * time.Millisecond}}, see("B", now, allUp, cool, 100)},
			map[string]Level{"A": Shed1, "B": Normal}, map[string]string{"A": "RTT p95 200ms above the bound 100ms"}},
		{"one slow monitor is not enough", [][]Observation{{{PoP: "A", Vantage: "1", Time: now, Up: true, RTTp95: 300 * time.Millisecond}, {PoP: "A", Vantage: "2", Time: now, Up: true, RTTp95: 10 * time.Millisecond}, {PoP: "A", Vantage: "3", Time: now, Up: true, RTTp95: 10 * time.Millisecond}}, see("B", now, allUp, cool, 100)},
			map[string]Level{"A": Normal, "B": Normal}, nil},
		{"all hot moves nothing", [][]Observation{see("A", now, allUp, cool, 1500), see("B", now, allUp, cool, 1200), see("C", now, allUp, cool, 2000)},
			map[string]Level{"A": Normal, "B": Normal, "C": Normal}, map[string]string{"A": "the last healthy PoPs are not shed"}},
		{"cap: only the hottest sheds", [][]Observation{see("A", now, allUp, cool, 1500), see("B", now, allUp, cool, 3000), see("C", now, allUp, cool, 100)},
			map[string]Level{"A": Normal, "B": Shed1, "C": Normal}, map[string]string{"A": "1 PoPs are shed already (max 1)"}},
		{"a hot PoP next to a down one: no spare", [][]Observation{see("A", now, allUp, cool, 1500), see("B", now, []bool{false, false, false}, 0, 0)},
			map[string]Level{"A": Normal, "B": Withdrawn}, map[string]string{"A": "the last healthy PoPs are not shed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var obs []Observation
			for _, o := range tt.obs {
				obs = append(obs, o...)
			}
			ds := New(cfg()).Step(now, obs)
			got := levels(ds)
			for p, l := range tt.want {
				if got[p] != l {
					t.Errorf("%s: %v, want %v (%+v)", p, got[p], l, ds)
				}
			}
			for _, d := range ds {
				if want, ok := tt.reason[d.PoP]; ok && !strings.Contains(d.Reason, want) {
					t.Errorf("%s: reason %q, want one with %q", d.PoP, d.Reason, want)
				}
				if d.Changed != (d.Level != Normal) {
					t.Errorf("%s: Changed %v at %v after one step from normal", d.PoP, d.Changed, d.Level)
				}
			}
		})
	}
}

func TestLevelString(t *testing.T) {
	for l, want := range map[Level]string{Normal: "normal", Shed1: "shed-1", Shed3: "shed-3", Withdrawn: "withdrawn", 9: "level(9)"} {
		if l.String() != want {
			t.Errorf("%d: %q, want %q", int(l), l.String(), want)
		}
	}
}

// scenario steps the engine every 250 ms of fake time for d, with the
// observations obs gives at each step, and records every level change.
type change struct {
	at    time.Duration
	pop   string
	level Level
}

func run(e *Engine, start time.Time, d time.Duration, obs func(now time.Time) []Observation, changes *[]change) {
	for end := time.Now().Add(d); time.Now().Before(end); {
		time.Sleep(250 * time.Millisecond)
		now := time.Now()
		for _, dec := range e.Step(now, obs(now)) {
			if dec.Changed {
				*changes = append(*changes, change{now.Sub(start), dec.PoP, dec.Level})
			}
		}
	}
}

// TestScenarioGrayFailure: B answers itself but 2 of 3 monitors lose it:
// withdrawn on the first step, back to normal Hold after the repair.
func TestScenarioGrayFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := New(cfg())
		start := time.Now()
		broken := true
		obs := func(now time.Time) []Observation {
			b := []bool{false, false, true}
			if !broken {
				b = allUp
			}
			return append(append(see("A", now, allUp, 5*time.Millisecond, 100), see("B", now, b, 5*time.Millisecond, 100)...), see("C", now, allUp, 5*time.Millisecond, 100)...)
		}
		var ch []change
		run(e, start, 5*time.Second, obs, &ch)
		broken = false
		run(e, start, 15*time.Second, obs, &ch)
		want := []change{{250 * time.Millisecond, "B", Withdrawn}, {5250*time.Millisecond + 10*time.Second, "B", Normal}}
		if len(ch) != len(want) || ch[0] != want[0] || ch[1] != want[1] {
			t.Errorf("changes %+v, want %+v", ch, want)
		}
	})
}

// TestScenarioPartitionedMonitor: monitor 3 sees every PoP down, then
// stops reporting: nothing moves.
func TestScenarioPartitionedMonitor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := New(cfg())
		start := time.Now()
		reporting := true
		obs := func(now time.Time) []Observation {
			var out []Observation
			for _, p := range []string{"A", "B", "C"} {
				out = append(out, Observation{PoP: p, Vantage: "1", Time: now, Up: true, RTTp95: 5 * time.Millisecond, QPS: 100},
					Observation{PoP: p, Vantage: "2", Time: now, Up: true, RTTp95: 5 * time.Millisecond, QPS: 100})
				if reporting {
					out = append(out, Observation{PoP: p, Vantage: "3", Time: now, Up: false})
				} else {
					out = append(out, Observation{PoP: p, Vantage: "3", Time: start, Up: false})
				}
			}
			return out
		}
		var ch []change
		run(e, start, 10*time.Second, obs, &ch)
		reporting = false
		run(e, start, 10*time.Second, obs, &ch)
		if len(ch) != 0 {
			t.Errorf("changes %+v, want none", ch)
		}
	})
}

// TestScenarioAllHot: every PoP over the high-water mark: nothing moves.
func TestScenarioAllHot(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := New(cfg())
		start := time.Now()
		obs := func(now time.Time) []Observation {
			return append(append(see("A", now, allUp, 300*time.Millisecond, 5000), see("B", now, allUp, 200*time.Millisecond, 4000)...), see("C", now, allUp, 150*time.Millisecond, 3000)...)
		}
		var ch []change
		run(e, start, 60*time.Second, obs, &ch)
		if len(ch) != 0 {
			t.Errorf("changes %+v, want none", ch)
		}
	})
}

// TestScenarioOverload: B hot: one step up per hold while it stays hot,
// then, once cool, one step down per hold, never two changes within a
// hold, and a load between the marks moves nothing.
func TestScenarioOverload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := New(cfg())
		start := time.Now()
		bq := 2000.0
		obs := func(now time.Time) []Observation {
			return append(append(see("A", now, allUp, 5*time.Millisecond, 300), see("B", now, allUp, 5*time.Millisecond, bq)...), see("C", now, allUp, 5*time.Millisecond, 300)...)
		}
		var ch []change
		run(e, start, 25*time.Second, obs, &ch) // hot: shed-1 at 0.25 s, shed-2 at 10.25 s, shed-3 at 20.25 s
		bq = 800                                // between the marks: stays
		run(e, start, 20*time.Second, obs, &ch)
		bq = 100 // cool: down one step per hold
		run(e, start, 40*time.Second, obs, &ch)
		want := []change{
			{250 * time.Millisecond, "B", Shed1}, {10250 * time.Millisecond, "B", Shed2}, {20250 * time.Millisecond, "B", Shed3},
			{55250 * time.Millisecond, "B", Shed2}, {65250 * time.Millisecond, "B", Shed1}, {75250 * time.Millisecond, "B", Normal},
		}
		if len(ch) != len(want) {
			t.Fatalf("changes %+v, want %+v", ch, want)
		}
		for i := range want {
			if ch[i] != want[i] {
				t.Errorf("change %d: %+v, want %+v", i, ch[i], want[i])
			}
			if i > 0 && ch[i].at-ch[i-1].at < cfg().Hold {
				t.Errorf("changes %+v and %+v closer than the hold", ch[i-1], ch[i])
			}
		}
	})
}

// TestNoFreshObservations: a PoP whose monitors all went quiet returns to
// normal.
func TestNoFreshObservations(t *testing.T) {
	e := New(cfg())
	e.Step(t0, append(see("A", t0, allUp, 0, 5000), see("B", t0, allUp, 0, 100)...))
	ds := e.Step(t0.Add(time.Minute), append(see("A", t0, allUp, 0, 5000), see("B", t0.Add(time.Minute), allUp, 0, 100)...))
	if l := levels(ds)["A"]; l != Normal || !strings.Contains(ds[0].Reason, "no fresh observation") {
		t.Errorf("A after its monitors went quiet: %+v", ds[0])
	}
}
