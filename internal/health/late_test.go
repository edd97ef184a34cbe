package health

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// lateCheck is a Patient check whose runs take hold (a process starved of
// CPU by a flood returns late) and whose progress count the test moves.
type lateCheck struct {
	name     string
	hold     atomic.Int64 // how long a run takes, in ns; 0 = at once
	err      atomic.Value // error of a run (nil = pass): a fault
	progress atomic.Uint64
}

func (l *lateCheck) Name() string { return l.name }

func (l *lateCheck) Check(context.Context) error {
	// Like a goroutine that gets no CPU: it ignores its deadline.
	time.Sleep(time.Duration(l.hold.Load()))
	if e, ok := l.err.Load().(error); ok && e != nil {
		return e
	}
	return nil
}

func (l *lateCheck) Progress() uint64 { return l.progress.Load() }

// plainCheck is a lateCheck that is not Patient: Config.Progress is its
// progress count.
type plainCheck struct{ l *lateCheck }

func (p plainCheck) Name() string                    { return p.l.Name() }
func (p plainCheck) Check(ctx context.Context) error { return p.l.Check(ctx) }

type errString string

func (e errString) Error() string { return string(e) }

// TestLateButBusy: a Patient check late while its progress count moves
// holds the round (the node stays healthy); late without progress, late
// for longer than Patience, a fault in the late check's result, or another
// check failing withdraw as before. Rounds every 100 ms, timeout 80 ms,
// fall 2; the node is healthy when the trouble starts.
func TestLateButBusy(t *testing.T) {
	for _, tc := range []struct {
		name        string
		hold        time.Duration // of each run once the trouble starts
		progress    bool          // the server makes progress throughout
		fault       bool          // the late runs return a fault
		otherFails  bool          // another (not patient) check fails
		patience    time.Duration // 0 = default (10 × interval)
		plain       bool          // not Patient: Config.Progress counts (nil when !progressCfg)
		noCfg       bool          // plain, and no Config.Progress either
		wantHealthy bool
		wantHeld    bool // some round was held
	}{
		{name: "late and busy: held, stays healthy", hold: 150 * time.Millisecond, progress: true, wantHealthy: true, wantHeld: true},
		{name: "very late and busy: held", hold: 450 * time.Millisecond, progress: true, wantHealthy: true, wantHeld: true},
		{name: "late without progress: hung, withdraws", hold: 150 * time.Millisecond, wantHealthy: false},
		{name: "late and busy beyond patience", hold: 2 * time.Second, progress: true, patience: 300 * time.Millisecond, wantHealthy: false, wantHeld: true},
		{name: "late, busy, and a fault when it returns", hold: 90 * time.Millisecond, progress: true, fault: true, wantHealthy: false, wantHeld: true},
		{name: "on time with a fault", progress: true, fault: true, wantHealthy: false},
		{name: "late and busy, another check fails", hold: 150 * time.Millisecond, progress: true, otherFails: true, wantHealthy: false},
		{name: "not patient, Config.Progress moves: held", hold: 150 * time.Millisecond, progress: true, plain: true, wantHealthy: true, wantHeld: true},
		{name: "not patient, no progress count: late fails", hold: 150 * time.Millisecond, progress: true, plain: true, noCfg: true, wantHealthy: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := Config{Interval: 100 * time.Millisecond, Timeout: 80 * time.Millisecond, Rise: 2, Fall: 2, Patience: tc.patience}
				dns := &lateCheck{name: "dns"}
				other := &fakeCheck{name: "file", fn: func(context.Context) error { return nil }}
				var otherFails atomic.Bool
				other.fn = func(context.Context) error {
					if otherFails.Load() {
						return errString("maintenance file present")
					}
					return nil
				}
				var checked Check = dns
				if tc.plain {
					checked = plainCheck{dns}
					if !tc.noCfg {
						cfg.Progress = dns.Progress
					}
				}
				c, err := New(cfg, []Check{checked, other}, testLogger(t))
				if err != nil {
					t.Fatal(err)
				}
				t0 := time.Now()
				stop := start(t, c)
				sleepUntil(t0.Add(250 * time.Millisecond))
				if !c.Healthy() {
					t.Fatal("not healthy before the trouble")
				}
				dns.hold.Store(int64(tc.hold))
				if tc.fault {
					dns.err.Store(error(errString("wrong answer")))
				}
				otherFails.Store(tc.otherFails)
				stopProgress := make(chan struct{})
				if tc.progress {
					go func() {
						tk := time.NewTicker(10 * time.Millisecond)
						defer tk.Stop()
						for {
							select {
							case <-stopProgress:
								return
							case <-tk.C:
								dns.progress.Add(1)
							}
						}
					}()
				}
				sleepUntil(t0.Add(3 * time.Second))
				close(stopProgress)
				st := c.Status()
				if st.Healthy != tc.wantHealthy {
					t.Errorf("healthy = %v, want %v (checks %+v)", st.Healthy, tc.wantHealthy, st.Checks)
				}
				if (st.Held > 0) != tc.wantHeld {
					t.Errorf("held rounds = %d, want some: %v", st.Held, tc.wantHeld)
				}
				dns.hold.Store(0)
				_ = stop()
				time.Sleep(tc.hold) // the last late run returns
			})
		})
	}
}
