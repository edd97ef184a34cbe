package health

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
)

// fakeCheck passes or fails by script: 'P' passes and 'F' fails, one letter
// per run; runs beyond the script fail. fn, when set, replaces the script.
type fakeCheck struct {
	name   string
	script string
	fn     func(ctx context.Context) error

	mu    sync.Mutex
	calls int
}

func (f *fakeCheck) Name() string { return f.name }

func (f *fakeCheck) Check(ctx context.Context) error {
	f.mu.Lock()
	n := f.calls
	f.calls++
	f.mu.Unlock()
	if f.fn != nil {
		return f.fn(ctx)
	}
	if n < len(f.script) && f.script[n] == 'P' {
		return nil
	}
	return fmt.Errorf("scripted failure %d", n)
}

func (f *fakeCheck) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// start runs c until the test ends and returns a func that stops it and
// returns Run's error.
func start(t *testing.T, c *Checker) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// sleepUntil advances the bubble's clock to t and waits until every other
// goroutine of the bubble is blocked.
func sleepUntil(t time.Time) {
	time.Sleep(time.Until(t))
	synctest.Wait()
}

func TestHysteresis(t *testing.T) {
	const interval = time.Second
	tests := []struct {
		name    string
		cfg     Config
		script  string // round results
		want    string // state after each round: H healthy, U unhealthy
		changes []bool
		rise    []int // Status().Rise after each round; nil = not checked
	}{
		{
			name:    "starts unhealthy and rises after rise passes",
			cfg:     Config{Rise: 3, Fall: 2},
			script:  "PPPP",
			want:    "UUHH",
			changes: []bool{true},
		},
		{
			name:   "never healthy while failing",
			cfg:    Config{Rise: 3, Fall: 2},
			script: "FFFF",
			want:   "UUUU",
		},
		{
			name:    "failure while rising restarts the count",
			cfg:     Config{Rise: 3, Fall: 2},
			script:  "PPFPPP",
			want:    "UUUUUH",
			changes: []bool{true},
		},
		{
			name:    "failures fewer than fall do not withdraw",
			cfg:     Config{Rise: 3, Fall: 2},
			script:  "PPPFPFPP",
			want:    "UUHHHHHH",
			changes: []bool{true},
		},
		{
			name:    "fall consecutive failures withdraw",
			cfg:     Config{Rise: 3, Fall: 2},
			script:  "PPPFFF",
			want:    "UUHHUU",
			changes: []bool{true, false},
		},
		{
			name:    "recovery needs rise passes again",
			cfg:     Config{Rise: 3, Fall: 2},
			script:  "PPPFFPPPP",
			want:    "UUHHUUUHH",
			changes: []bool{true, false, true},
		},
		{
			name:    "rise and fall of one follow every round",
			cfg:     Config{Rise: 1, Fall: 1},
			script:  "PFPF",
			want:    "HUHU",
			changes: []bool{true, false, true, false},
		},
		{
			name:    "no damping when disabled",
			cfg:     Config{Rise: 1, Fall: 1, FlapWindow: -1, MaxFlaps: 1},
			script:  "PFPFPFP",
			want:    "HUHUHUH",
			changes: []bool{true, false, true, false, true, false, true},
			rise:    []int{1, 1, 1, 1, 1, 1, 1},
		},
		{
			// Flaps at rounds 0,1,2,3 make four changes within the 10s
			// window: two beyond MaxFlaps, so rise doubles twice (1 → 4).
			// Then rise stays capped at MaxRise while the flaps of rounds
			// 7 and 8 are in the window, and comes down as the old flaps
			// age out: at round 12 only 3 are left (rise 2), and by
			// round 22 the window is quiet again (rise 1), so a failure at
			// round 25 is followed by a rise after one pass.
			name:    "flap damping raises rise until the window is quiet",
			cfg:     Config{Rise: 1, Fall: 1, FlapWindow: 10 * interval, MaxFlaps: 2, MaxRise: 4},
			script:  "PFPFPPPPFPPPPP" + "PPPPPPPPPPP" + "FP",
			want:    "HUHUUUUHUUUUHH" + "HHHHHHHHHHH" + "UH",
			changes: []bool{true, false, true, false, true, false, true, false, true},
			rise:    []int{1, 1, 2, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
		},
		{
			// Each change beyond MaxFlaps doubles rise: 2, 4, 8, 16, 32.
			name:    "damping doubles rise per flap beyond the limit",
			cfg:     Config{Rise: 2, Fall: 1, FlapWindow: time.Hour, MaxFlaps: 1, MaxRise: 100},
			script:  "PPFPPPPF" + strings.Repeat("P", 16),
			want:    "UHUUUUHU" + strings.Repeat("U", 15) + "H",
			changes: []bool{true, false, true, false, true},
			rise:    append([]int{2, 2, 4, 4, 4, 4, 8}, append(slices.Repeat([]int{16}, 16), 32)...),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := tt.cfg
				cfg.Interval, cfg.Timeout = interval, interval/2
				fc := &fakeCheck{name: "fake", script: tt.script}
				c, err := New(cfg, []Check{fc}, testLogger(t))
				if err != nil {
					t.Fatal(err)
				}
				if c.Healthy() {
					t.Fatal("healthy before Run")
				}
				t0 := time.Now()
				stop := start(t, c)
				var got strings.Builder
				var changes []bool
				var rise []int
				for i := range tt.script {
					sleepUntil(t0.Add(time.Duration(i)*interval + interval/2))
					if c.Healthy() {
						got.WriteByte('H')
					} else {
						got.WriteByte('U')
					}
					select {
					case v := <-c.Changes():
						changes = append(changes, v)
					default:
					}
					rise = append(rise, c.Status().Rise)
				}
				if err := stop(); err != nil {
					t.Fatalf("Run: %v", err)
				}
				if n := fc.Calls(); n != len(tt.script) {
					t.Errorf("check ran %d times, want %d", n, len(tt.script))
				}
				if diff := cmp.Diff(tt.want, got.String()); diff != "" {
					t.Errorf("states (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(tt.changes, changes); diff != "" {
					t.Errorf("changes (-want +got):\n%s", diff)
				}
				if tt.rise != nil {
					if diff := cmp.Diff(tt.rise, rise); diff != "" {
						t.Errorf("rise (-want +got):\n%s", diff)
					}
				}
			})
		})
	}
}

func TestAnyFailingCheckFailsTheRound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := Config{Interval: time.Second, Rise: 2, Fall: 1}
		good := &fakeCheck{name: "good", script: "PPPPPP"}
		bad := &fakeCheck{name: "bad", script: "PPPFPP"}
		c, err := New(cfg, []Check{good, bad}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		start(t, c)
		var got strings.Builder
		for i := range 6 {
			sleepUntil(t0.Add(time.Duration(i)*cfg.Interval + cfg.Interval/2))
			got.WriteString(map[bool]string{true: "H", false: "U"}[c.Healthy()])
		}
		if diff := cmp.Diff("UHHUUH", got.String()); diff != "" {
			t.Errorf("states (-want +got):\n%s", diff)
		}
	})
}

func TestStatus(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		cfg := Config{Interval: time.Second, Timeout: 500 * time.Millisecond, Rise: 2, Fall: 2}
		slow := &fakeCheck{name: "slow", fn: func(ctx context.Context) error {
			time.Sleep(20 * time.Millisecond)
			return nil
		}}
		flaky := &fakeCheck{name: "flaky", script: "PPF"}
		c, err := New(cfg, []Check{slow, flaky}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		want := Status{Rise: 2, Fall: 2, Checks: []CheckStatus{{Name: "slow"}, {Name: "flaky"}}}
		if diff := cmp.Diff(want, c.Status()); diff != "" {
			t.Errorf("status before Run (-want +got):\n%s", diff)
		}
		start(t, c)
		sleepUntil(t0.Add(2*cfg.Interval + cfg.Interval/2))
		// Round 1 (t0+1s) made it healthy; round 2 (t0+2s) failed once.
		want = Status{
			Healthy: true, Since: t0.Add(time.Second + 20*time.Millisecond), Running: true,
			Passes: 0, Fails: 1, Rise: 2, Fall: 2, Flaps: 1, LastRound: t0.Add(2 * time.Second),
			Checks: []CheckStatus{
				{Name: "slow", OK: true, LastRun: t0.Add(2 * time.Second), Latency: 20 * time.Millisecond, Passes: 3},
				{Name: "flaky", OK: false, Error: "scripted failure 2", LastRun: t0.Add(2 * time.Second), Fails: 1},
			},
		}
		if diff := cmp.Diff(want, c.Status()); diff != "" {
			t.Errorf("status (-want +got):\n%s", diff)
		}
	})
}

func TestConcurrentChecks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		cfg := Config{Interval: time.Second, Timeout: 100 * time.Millisecond, Rise: 1, Fall: 1}
		// Each check alone fits in the timeout; one after the other would not.
		var checks []Check
		for i := range 5 {
			checks = append(checks, &fakeCheck{name: fmt.Sprint("c", i), fn: func(ctx context.Context) error {
				time.Sleep(80 * time.Millisecond)
				return ctx.Err()
			}})
		}
		c, err := New(cfg, checks, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		start(t, c)
		sleepUntil(t0.Add(cfg.Interval / 2))
		if !c.Healthy() {
			t.Errorf("unhealthy: %+v", c.Status())
		}
	})
}

func TestTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		cfg := Config{Interval: time.Second, Timeout: 300 * time.Millisecond, Rise: 1, Fall: 1}
		// polite returns when its context ends; stuck ignores it and
		// returns only when released, after the next round has started.
		polite := &fakeCheck{name: "polite", fn: func(ctx context.Context) error {
			<-ctx.Done()
			return fmt.Errorf("waiting for the answer: %w", ctx.Err())
		}}
		release := make(chan struct{})
		stuck := &fakeCheck{name: "stuck", fn: func(context.Context) error {
			<-release
			return nil
		}}
		c, err := New(cfg, []Check{polite, stuck}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		stop := start(t, c)
		sleepUntil(t0.Add(cfg.Interval / 2))
		st := c.Status()
		want := []CheckStatus{
			{Name: "polite", Error: "waiting for the answer: context deadline exceeded", LastRun: t0, Latency: cfg.Timeout, Fails: 1},
			{Name: "stuck", Error: "check timed out: no result after 300ms", LastRun: t0, Latency: cfg.Timeout + cfg.Timeout/10, Fails: 1},
		}
		if diff := cmp.Diff(want, st.Checks); diff != "" {
			t.Errorf("checks after round 1 (-want +got):\n%s", diff)
		}

		sleepUntil(t0.Add(cfg.Interval + cfg.Interval/2))
		st = c.Status()
		if got, want := st.Checks[1].Error, "check timed out: still running from an earlier round"; got != want {
			t.Errorf("stuck check error in round 2 = %q, want %q", got, want)
		}
		if stuck.Calls() != 1 {
			t.Errorf("stuck check started %d times, want 1", stuck.Calls())
		}
		close(release)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCheckNow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := Config{Interval: time.Minute, Timeout: time.Second, Rise: 2, Fall: 1}
		fc := &fakeCheck{name: "fake", script: "PPPP"}
		c, err := New(cfg, []Check{fc}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		start(t, c)
		synctest.Wait()
		time.Sleep(10 * time.Second)
		c.CheckNow()
		synctest.Wait()
		if got := fc.Calls(); got != 2 {
			t.Fatalf("calls after CheckNow = %d, want 2", got)
		}
		if !c.Healthy() {
			t.Error("not healthy after the second passing round")
		}
		if got, want := c.Status().LastRound, t0.Add(10*time.Second); !got.Equal(want) {
			t.Errorf("last round at %s, want %s", got, want)
		}
		// The next round comes a full interval after the requested one.
		time.Sleep(cfg.Interval - time.Nanosecond)
		synctest.Wait()
		if got := fc.Calls(); got != 2 {
			t.Errorf("calls before the interval = %d, want 2", got)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if got := fc.Calls(); got != 3 {
			t.Errorf("calls after the interval = %d, want 3", got)
		}
	})
}

func TestStopTurnsUnhealthy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := New(Config{Interval: time.Second, Rise: 1}, []Check{&fakeCheck{name: "fake", script: "PPP"}}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		stop := start(t, c)
		synctest.Wait()
		if v := <-c.Changes(); !v || !c.Healthy() {
			t.Fatalf("change %v, healthy %v; want healthy", v, c.Healthy())
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if v := <-c.Changes(); v || c.Healthy() {
			t.Errorf("after Run returned: change %v, healthy %v; want unhealthy", v, c.Healthy())
		}
		if c.Status().Running {
			t.Error("status says running")
		}
		if err := c.Run(t.Context()); err == nil {
			t.Error("second Run returned nil")
		}
	})
}

func TestChangesKeepsLatest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := Config{Interval: time.Second, Rise: 1, Fall: 1, FlapWindow: -1}
		c, err := New(cfg, []Check{&fakeCheck{name: "fake", script: "PFP"}}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		start(t, c)
		synctest.Wait()
		time.Sleep(2 * cfg.Interval)
		synctest.Wait()
		// Three changes, nobody reading: only the last is kept.
		if v := <-c.Changes(); !v {
			t.Errorf("change = %v, want true", v)
		}
		select {
		case v := <-c.Changes():
			t.Errorf("second change %v pending, want none", v)
		default:
		}
	})
}

func TestNewErrors(t *testing.T) {
	ok := []Check{&fakeCheck{name: "a"}}
	tests := []struct {
		name   string
		cfg    Config
		checks []Check
		want   []string // substrings of the error
	}{
		{"no checks", Config{}, nil, []string{"no checks"}},
		{"nil check", Config{}, []Check{nil}, []string{"check 0 is nil"}},
		{"unnamed check", Config{}, []Check{&fakeCheck{}}, []string{"check 0 has no name"}},
		{"duplicate names", Config{}, []Check{&fakeCheck{name: "a"}, &fakeCheck{name: "a"}}, []string{`check name "a" used twice`}},
		{"timeout above interval", Config{Interval: time.Second, Timeout: 2 * time.Second}, ok, []string{"timeout (2s) must not exceed interval (1s)"}},
		{"negatives", Config{Interval: -1, Timeout: -1, Rise: -1, Fall: -1, MaxFlaps: -1, MaxRise: -1}, ok, []string{
			"interval must not be negative", "timeout must not be negative", "rise must not be negative",
			"fall must not be negative", "max flaps must not be negative", "max rise must not be negative"}},
		{"max rise below rise", Config{Rise: 5, MaxRise: 4}, ok, []string{"max rise (4) must be at least rise (5)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, tt.checks, testLogger(t))
			if err == nil {
				t.Fatal("New returned no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c, err := New(Config{}, []Check{&fakeCheck{name: "a"}}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Interval: 500 * time.Millisecond, Timeout: 300 * time.Millisecond, Rise: 3, Fall: 2,
		FlapWindow: time.Minute, MaxFlaps: 4, MaxRise: 48, Patience: 5 * time.Second}
	if diff := cmp.Diff(want, c.cfg); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := Config{Interval: time.Second, Rise: 1, Fall: 1}
		a := &fakeCheck{name: "a", fn: func(context.Context) error {
			time.Sleep(3 * time.Millisecond)
			return nil
		}}
		b := &fakeCheck{name: "b", script: "PFP"}
		c, err := New(cfg, []Check{a, b}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		reg.MustRegister(c.Collectors()...)
		t0 := time.Now()
		start(t, c)
		sleepUntil(t0.Add(2*cfg.Interval + cfg.Interval/2))
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				key := mf.GetName()
				for _, l := range m.GetLabel() {
					key += fmt.Sprintf("{%s=%s}", l.GetName(), l.GetValue())
				}
				switch {
				case m.GetGauge() != nil:
					got[key] = m.GetGauge().GetValue()
				case m.GetCounter() != nil:
					got[key] = m.GetCounter().GetValue()
				case m.GetHistogram() != nil:
					h := m.GetHistogram()
					got[key+"_count"] = float64(h.GetSampleCount())
					got[key+"_sum"] = h.GetSampleSum()
					// The bucket that first holds a's 3ms runs.
					for _, bk := range h.GetBucket() {
						if bk.GetCumulativeCount() > 0 {
							got[key+"_first_le"] = bk.GetUpperBound()
							break
						}
					}
				}
			}
		}
		want := map[string]float64{
			"anycastd_health_healthy":                         1,
			"anycastd_health_rise_threshold":                  1,
			"anycastd_health_transitions_total":               3,
			"anycastd_health_check_failures_total{check=a}":   0,
			"anycastd_health_check_failures_total{check=b}":   1,
			"anycastd_health_check_late_busy_total{check=a}":  0,
			"anycastd_health_check_late_busy_total{check=b}":  0,
			"anycastd_health_held_rounds_total":               0,
			"anycastd_health_check_seconds{check=a}_count":    3,
			"anycastd_health_check_seconds{check=a}_sum":      0.009,
			"anycastd_health_check_seconds{check=a}_first_le": 0.005,
			"anycastd_health_check_seconds{check=b}_count":    3,
			"anycastd_health_check_seconds{check=b}_sum":      0,
			"anycastd_health_check_seconds{check=b}_first_le": 0.0001,
		}
		if diff := cmp.Diff(want, got, cmp.Comparer(func(x, y float64) bool { return x-y < 1e-9 && y-x < 1e-9 })); diff != "" {
			t.Errorf("metrics (-want +got):\n%s", diff)
		}
	})
}
