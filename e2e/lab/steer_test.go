//go:build linux

package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/lab"
)

// upSteering builds the steering lab: the steering topology with the
// control plane, one monitor per region reporting to it, and (levels) its
// decisions.
func upSteering(t *testing.T, levels bool) *lab.Lab {
	t.Helper()
	topo, err := lab.SteeringTopology()
	if err != nil {
		t.Fatal(err)
	}
	opts := lab.Options{Control: true, Monitors: true, Timing: lab.SteeringNodeTiming}
	if levels {
		lv := lab.SteeringLevels
		opts.Levels = &lv
	}
	return upLabWith(t, topo, opts)
}

// TestSteeringMechanisms checks the lab's means of the steering scenarios
// on their own: the catchment of the steering topology (B-pop serves B, D
// and E), a blackhole that drops B-pop's DNS on its upstream link while it
// keeps announcing, a CPU quota that throttles B-pop's node, a monitor cut
// off from every PoP that sees them all down while the others see them up,
// and a bounded load generator whose answers carry the PoP. The control
// plane decides no levels here: what is seen is the mechanisms alone.
func TestSteeringMechanisms(t *testing.T) {
	needRoot(t)
	l := upSteering(t, false)
	ctx, cancel := context.WithTimeout(testCtx, 90*time.Second)
	defer cancel()
	if err := l.WaitSettled(ctx, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	anycast := netip.MustParseAddr("192.0.2.53")
	bpop, _ := l.Node("B-pop")
	serve := func(client string, dst netip.Addr) string {
		t.Helper()
		a, err := l.Query(ctx, client, "udp", dst, 500*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if !a.OK() {
			return "lost: " + a.Err
		}
		return a.PoP
	}
	for c, want := range map[string]string{"A-client": "A-pop", "B-client": "B-pop", "C-client": "C-pop", "D-client": "B-pop", "E-client": "B-pop"} {
		if got := serve(c, anycast); got != want {
			t.Errorf("%s served by %s, want %s", c, got, want)
		}
	}

	t.Run("blackhole", func(t *testing.T) {
		if err := l.Blackhole(ctx, "B-pop"); err != nil {
			t.Fatal(err)
		}
		for _, dst := range []netip.Addr{anycast, bpop.Addr4} {
			if got := serve("B-client", dst); !strings.HasPrefix(got, "lost") {
				t.Errorf("blackholed: B-client to %s served by %s, want lost", dst, got)
			}
		}
		if got := serve("A-client", anycast); got != "A-pop" {
			t.Errorf("blackholed B-pop: A-client served by %s, want A-pop", got)
		}
		time.Sleep(time.Second) // BFD and the self-check had their chance
		if err := l.WaitAnnounced(ctx, time.Second, "B-pop"); err != nil {
			t.Errorf("blackholed B-pop must keep announcing: %v", err)
		}
		if err := l.RepairBlackhole(ctx, "B-pop"); err != nil {
			t.Fatal(err)
		}
		if got := serve("B-client", anycast); got != "B-pop" {
			t.Errorf("repaired: B-client served by %s, want B-pop", got)
		}
	})

	t.Run("partition", func(t *testing.T) {
		if err := l.PartitionMonitor(ctx, "C"); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := l.HealMonitor(ctx, "C"); err != nil {
				t.Error(err)
			}
		}()
		deadline := time.Now().Add(5 * time.Second)
		for {
			v, err := l.MonitorView(ctx, "C")
			if err != nil {
				t.Fatal(err)
			}
			down := 0
			for _, p := range v.PoPs {
				if p.State == "down" {
					down++
				}
			}
			if down == len(v.PoPs) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("monitor C sees %d of %d PoPs down after 5 s cut off, want all", down, len(v.PoPs))
			}
			time.Sleep(100 * time.Millisecond)
		}
		v, err := l.MonitorView(ctx, "A")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range v.PoPs {
			if p.State != "up" {
				t.Errorf("monitor A (not cut off) sees %s %s", p.Name, p.State)
			}
		}
		// The monitors read each PoP's load over the network.
		for _, p := range v.PoPs {
			if p.Load == nil {
				t.Errorf("monitor A has no load of %s: %s", p.Name, p.LoadError)
			}
		}
	})

	t.Run("quota-and-load", func(t *testing.T) {
		ld, err := l.StartLoad("D-client", anycast, 1000, 10)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.SetCPUQuota("B-pop", 0.02, 100*time.Millisecond); err != nil {
			ld.Stop()
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		st, _ := lab.ReadState(filepath.Dir(l.Dir), l.ID)
		var throttled string
		if st != nil && len(st.Cgroups) == 1 {
			b, _ := os.ReadFile(filepath.Join(st.Cgroups[0], "cpu.stat"))
			throttled = string(b)
		}
		if err := l.ClearCPUQuota("B-pop"); err != nil {
			t.Error(err)
		}
		qs := ld.Stop()
		if st == nil || len(st.Cgroups) != 1 {
			t.Fatalf("state records cgroups %v, want one", st)
		}
		if !strings.Contains(throttled, "nr_throttled") || strings.Contains(throttled, "nr_throttled 0\n") {
			t.Errorf("B-pop's node was not throttled under load with 2%% of a CPU: %s", throttled)
		}
		if _, err := os.Stat(st.Cgroups[0]); !os.IsNotExist(err) {
			t.Errorf("cgroup %s left after the quota was lifted: %v", st.Cgroups[0], err)
		}
		ok := 0
		for _, a := range qs {
			if a.OK() && a.PoP == "B-pop" {
				ok++
			}
		}
		if ok < 100 {
			t.Errorf("the load got %d answers from B-pop of %d queries, want a steady load", ok, len(qs))
		}
		t.Logf("load: %d queries, %d answered by B-pop in 2 s under a 2%% quota", len(qs), ok)
	})
}

// runSteering runs a steering scenario on l and logs its table.
func runSteering(t *testing.T, l *lab.Lab, name string) *lab.Result {
	t.Helper()
	return run(t, l, name)
}

func fmtLines(ls []lab.Line) string {
	var b strings.Builder
	for _, l := range ls {
		fmt.Fprintf(&b, "%s monitor=%v before=%s after=%s end=%s lost=%d/%d switch=%s recover=%s\n", l.Client, l.Monitor != nil && *l.Monitor,
			l.PoPBefore, l.PoPAfter, l.PoP, l.Lost, l.Sent, f(l.SwitchMS), f(l.RecoverMS))
	}
	return b.String()
}

// TestSteering runs the four steering scenarios on one steering lab and
// asserts issue #13's bounds: gray-failure — plain anycast loses B-pop's
// clients' queries for as long as the blackhole lasts, with the monitors
// they move within 2 s and come back after the repair; monitor-partition
// and all-hot — nothing moves, nothing is withdrawn; overload — B-pop is
// shed a step at a time, part of its load moves with no query lost in the
// move, its clients' p95 falls, and it comes back to normal with at most
// one level change per hold.
func TestSteering(t *testing.T) {
	needRoot(t)
	l := upSteering(t, true)
	hold := lab.SteeringLevels.Hold

	t.Run("gray-failure", func(t *testing.T) {
		r := runSteering(t, l, "gray-failure")
		var plain, mon int
		for _, ln := range r.Lines {
			if ln.Monitor == nil {
				t.Fatalf("%s: line without monitor flag", ln.Client)
			}
			if ln.PoPBefore != ln.Target {
				if ln.SwitchMS != nil || ln.Lost > 2 {
					t.Errorf("%s (not B-pop's): switched %s, lost %d/%d", ln.Client, f(ln.SwitchMS), ln.Lost, ln.Sent)
				}
				continue
			}
			if !*ln.Monitor {
				plain++
				// Plain anycast: the blackhole lasts 3 s at 100 q/s.
				if ln.SwitchMS != nil || ln.PoPAfter != ln.Target || ln.Lost < 250 {
					t.Errorf("plain anycast, %s: switched %s to %s, lost %d/%d; want no switch and every query of the 3 s lost", ln.Client, f(ln.SwitchMS), ln.PoPAfter, ln.Lost, ln.Sent)
				}
				continue
			}
			mon++
			switch {
			case ln.SwitchMS == nil:
				t.Errorf("with the monitors, %s never left %s", ln.Client, ln.Target)
			case *ln.SwitchMS > 2000:
				t.Errorf("with the monitors, %s moved after %s, want within 2 s", ln.Client, f(ln.SwitchMS))
			case ln.PoPAfter == ln.Target || ln.PoPAfter == "":
				t.Errorf("with the monitors, %s moved to %q", ln.Client, ln.PoPAfter)
			}
			if ln.RecoverMS == nil || ln.PoP != ln.Target {
				t.Errorf("with the monitors, %s did not come back to %s after the repair (at end on %s)", ln.Client, ln.Target, ln.PoP)
			}
		}
		if plain != 3 || mon != 3 {
			t.Errorf("%d plain and %d monitored lines of B-pop's clients, want 3 each (B, D and E):\n%s", plain, mon, fmtLines(r.Lines))
		}
	})

	t.Run("monitor-partition", func(t *testing.T) {
		r := runSteering(t, l, "monitor-partition")
		for _, ln := range r.Lines {
			if ln.SwitchMS != nil || ln.PoPAfter != ln.PoPBefore || ln.Lost > 2 {
				t.Errorf("%s: moved %s → %s (%s), lost %d/%d; want nothing to move", ln.Client, ln.PoPBefore, ln.PoPAfter, f(ln.SwitchMS), ln.Lost, ln.Sent)
			}
			if ln.LevelChanges == nil || *ln.LevelChanges != 0 {
				t.Errorf("%s: level changes %v (%s), want none", ln.Client, ln.LevelChanges, ln.Levels)
			}
		}
		for _, n := range r.Notes {
			if strings.Contains(n, "did not bite") {
				t.Error(n)
			}
		}
	})

	t.Run("overload", func(t *testing.T) {
		r := runSteering(t, l, "overload")
		hot := 0
		for _, ln := range r.Lines {
			if ln.ShedShare == nil {
				if ln.SwitchMS != nil {
					t.Errorf("%s (not B-pop's) moved to %s", ln.Client, ln.PoPAfter)
				}
				continue
			}
			hot++
			if ln.PoPAfter != ln.Target && ln.Lost != 0 {
				t.Errorf("%s moved %s → %s and lost %d of %d queries, want none lost in the move", ln.Client, ln.Target, ln.PoPAfter, ln.Lost, ln.Sent)
			}
			if s := *ln.ShedShare; s <= 0 || s >= 1 {
				t.Errorf("shed share %.2f, want part of the load moved (0 < share < 1)", s)
			}
			if ln.P95MSBefore == nil || ln.P95MSAfter == nil || *ln.P95MSAfter >= *ln.P95MSBefore {
				t.Errorf("%s: p95 %s while hot, %s once shed: want it lower once shed", ln.Client, f(ln.P95MSBefore), f(ln.P95MSAfter))
			}
			if ln.LevelChanges == nil || *ln.LevelChanges < 2 || !strings.HasPrefix(ln.Levels, "normal→shed-1") || !strings.HasSuffix(ln.Levels, "→normal") {
				t.Errorf("levels %q: want normal→shed-1 …→normal", ln.Levels)
			}
			if ln.MinGapMS != nil && *ln.MinGapMS < float64(hold.Milliseconds())-300 {
				t.Errorf("two level changes %s apart, want at most one per hold (%s)", f(ln.MinGapMS), hold)
			}
			if ln.Withdrawn != nil && *ln.Withdrawn {
				t.Errorf("B-pop was withdrawn for load: %s", ln.Levels)
			}
		}
		if hot != 3 {
			t.Errorf("%d clients of B-pop loaded it, want 3 (B, D, E)", hot)
		}
	})

	t.Run("all-hot", func(t *testing.T) {
		r := runSteering(t, l, "all-hot")
		for _, ln := range r.Lines {
			if ln.SwitchMS != nil || ln.PoPAfter != ln.PoPBefore {
				t.Errorf("%s moved %s → %s with every PoP hot; want nothing to move", ln.Client, ln.PoPBefore, ln.PoPAfter)
			}
			// A PoP whose clients cannot move may be shed for a moment
			// while the others heat up; the target, whose clients
			// could move, never, and no PoP is withdrawn.
			if ln.Withdrawn == nil || *ln.Withdrawn || strings.Contains(ln.Levels, ln.Target) {
				t.Errorf("%s: levels %q (withdrawn %v), want %s untouched and none withdrawn", ln.Client, ln.Levels, ln.Withdrawn, ln.Target)
			}
		}
	})
}
