package level

import (
	"strings"
	"testing"
	"time"
)

// seeLimited is see with the node's limited (dropped or rate limited)
// queries a second in every observation.
func seeLimited(pop string, at time.Time, up []bool, rtt time.Duration, qps, limited float64) []Observation {
	obs := see(pop, at, up, rtt, qps)
	for i := range obs {
		obs[i].Limited = limited
	}
	return obs
}

// TestUnderAttack: a PoP whose nodes drop or limit a flood is neither shed
// for being hot nor withdrawn for being seen down, unless the operator
// sets ShedUnderAttack; a few limited queries, or a small share of the
// load, are not an attack; the rules for everything else are unchanged.
func TestUnderAttack(t *testing.T) {
	now := t0
	cool := 10 * time.Millisecond
	slow := 300 * time.Millisecond
	down := []bool{false, false, true}
	for _, tc := range []struct {
		name   string
		shed   bool // Config.ShedUnderAttack
		a      []Observation
		want   Level
		reason string
	}{
		{name: "hot by load, flooded: absorbs", a: seeLimited("A", now, allUp, cool, 1500, 50_000), want: Normal, reason: "under attack (50000 q/s dropped or rate limited): absorbing it"},
		{name: "hot by RTT, flooded: absorbs", a: seeLimited("A", now, allUp, slow, 500, 20_000), want: Normal, reason: "RTT p95 300ms above the bound 100ms, but under attack"},
		{name: "seen down, flooded: stays", a: seeLimited("A", now, down, cool, 500, 20_000), want: Normal, reason: "down from 2 of 3 vantage points, but under attack"},
		{name: "operator asks: hot and flooded sheds", shed: true, a: seeLimited("A", now, allUp, cool, 1500, 50_000), want: Shed1, reason: "one step up"},
		{name: "operator asks: down and flooded withdraws", shed: true, a: seeLimited("A", now, down, cool, 500, 20_000), want: Withdrawn, reason: "quorum 2"},
		{name: "hot, a few RRL drops: not an attack", a: seeLimited("A", now, allUp, cool, 1500, 50), want: Shed1, reason: "one step up"},
		{name: "hot, limited a small share: not an attack", a: seeLimited("A", now, allUp, cool, 50_000, 2_000), want: Shed1, reason: "one step up"},
		{name: "down without a flood: withdrawn", a: seeLimited("A", now, down, cool, 500, 0), want: Withdrawn, reason: "quorum 2"},
		{name: "flooded but cool: normal", a: seeLimited("A", now, allUp, cool, 100, 5_000), want: Normal, reason: "below the low-water marks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := cfg()
			c.ShedUnderAttack = tc.shed
			e := New(c)
			obs := append(append([]Observation(nil), tc.a...), see("B", now, allUp, cool, 100)...)
			obs = append(obs, see("C", now, allUp, cool, 100)...)
			var got *Decision
			for _, d := range e.Step(now, obs) {
				if d.PoP == "A" {
					got = &d
				}
			}
			if got == nil {
				t.Fatal("no decision for A")
			}
			if got.Level != tc.want || !strings.Contains(got.Reason, tc.reason) {
				t.Errorf("A: %s (%q), want %s with %q", got.Level, got.Reason, tc.want, tc.reason)
			}
		})
	}
}

// TestAttackEnds: a PoP that absorbed an attack while hot is shed once the
// attack ends and it is still hot (its load then is its own).
func TestAttackEnds(t *testing.T) {
	e := New(cfg())
	cool := 10 * time.Millisecond
	step := func(at time.Time, limited float64) Level {
		obs := append(seeLimited("A", at, allUp, cool, 1500, limited), see("B", at, allUp, cool, 100)...)
		for _, d := range e.Step(at, obs) {
			if d.PoP == "A" {
				return d.Level
			}
		}
		return -1
	}
	if l := step(t0, 40_000); l != Normal {
		t.Fatalf("under attack: %s, want normal", l)
	}
	if l := step(t0.Add(time.Second), 0); l != Shed1 {
		t.Fatalf("after the attack, still hot: %s, want shed-1", l)
	}
}
