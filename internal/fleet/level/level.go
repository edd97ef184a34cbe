// Package level decides the level of each PoP from what the monitors see:
// normal, shed-1..3 (announced with more prepends, so that part of its
// catchment moves to other PoPs) or withdrawn. It is pure code: no I/O, no
// clock of its own; the caller passes the time and the observations.
//
// The rules, in the order Engine.Step applies them:
//
//  1. An observation older than Config.Stale is ignored: a monitor that
//     stops reporting is not trusted.
//  2. A PoP is unavailable when at least Config.Quorum vantage points
//     with fresh observations see it down; one monitor's own partition
//     never moves a PoP. An unavailable PoP is withdrawn at once — unless
//     every PoP with fresh observations is unavailable: a condition every
//     PoP shares moves nothing. A withdrawn PoP comes back to normal once
//     it has been available for Config.Hold.
//  3. A PoP is hot when its load (the highest fresh q/s) is above
//     Config.HighQPS or its RTT (the median over the vantage points of
//     their p95) above Config.HighRTT; cool when both are below
//     Config.LowQPS and Config.LowRTT. A hot PoP goes up one shed level,
//     a PoP cool for Config.Hold down one; at most one such change per PoP
//     per Config.Hold.
//  4. A PoP is shed only if at least Config.MinNormal other PoPs are
//     available, at normal and not hot (somewhere for the load to go):
//     the last healthy PoPs are never shed, and when every PoP is hot
//     nothing moves. At most Config.MaxShed PoPs are shed at once.
//  5. A PoP without any fresh observation returns to normal: without
//     monitors, plain anycast.
//  6. Absorb, don't shed: a PoP under attack — its nodes drop or rate
//     limit (source limit, early drops, RRL) at least AttackMinQPS
//     queries a second and at least AttackShare of all they get — is
//     neither shed nor withdrawn for being hot or seen down, unless
//     Config.ShedUnderAttack: shedding a flooded PoP moves the flood onto
//     its neighbours, and the monitors' probes are lost in the flood like
//     any query (docs/ddos.md). A PoP that is really broken withdraws
//     itself: its node's own health check tells a flood from a fault.
//     Lowering a shed level and the return of a withdrawn PoP go on.
//
// Every Decision carries a reason a person can read.
package level

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// Level of a PoP.
type Level int

// Levels, in order.
const (
	Normal Level = iota
	Shed1
	Shed2
	Shed3
	Withdrawn
)

func (l Level) String() string {
	switch l {
	case Normal:
		return "normal"
	case Shed1, Shed2, Shed3:
		return fmt.Sprintf("shed-%d", int(l))
	case Withdrawn:
		return "withdrawn"
	}
	return fmt.Sprintf("level(%d)", int(l))
}

// Observation is what one vantage point saw of one PoP at Time.
type Observation struct {
	PoP     string
	Vantage string
	Time    time.Time
	Up      bool
	RTTp95  time.Duration // over the monitor's window; 0 = unknown
	QPS     float64       // the node's load; < 0 = unknown
	// Limited is what the node dropped unanswered or rate limited, in
	// queries a second (early drops, the per-source limit, RRL drops and
	// slips); 0 or less = none or unknown. It tells a flood (rule 6).
	Limited float64
}

// The marks of "under attack" (rule 6): at least AttackMinQPS queries a
// second limited, and at least AttackShare of everything the node got
// (answered and limited). A few RRL drops of a busy resolver are not an
// attack.
const (
	AttackMinQPS = 100
	AttackShare  = 0.1
)

// Config holds the thresholds.
type Config struct {
	Quorum    int           // vantage points that must see a PoP down; at least 1
	Stale     time.Duration // observations older than this are ignored
	HighQPS   float64       // hot above; 0 = load is not used
	LowQPS    float64       // cool below
	HighRTT   time.Duration // hot above; 0 = RTT is not used
	LowRTT    time.Duration // cool below
	Hold      time.Duration // between two load changes of one PoP; cool (or back) for this long to lower
	MaxShed   int           // PoPs shed at once; 0 = no limit
	MinNormal int           // other PoPs that must stay available, normal and not hot for one to be shed; default 1
	// ShedUnderAttack lets a PoP under attack be shed and withdrawn like
	// any other (rule 6); off by default: a flooded PoP absorbs.
	ShedUnderAttack bool
}

// Decision is a PoP's level and why.
type Decision struct {
	PoP     string
	Level   Level
	Reason  string
	Changed bool      // in this step
	Since   time.Time // when the PoP got this level; zero = never changed
}

type popState struct {
	level      Level
	since      time.Time // last change
	coolSince  time.Time // zero when not cool
	availSince time.Time // zero when unavailable (or unknown)
}

// Engine keeps the levels between steps.
type Engine struct {
	cfg  Config
	pops map[string]*popState
}

// New returns an engine with every PoP at normal.
func New(cfg Config) *Engine {
	if cfg.Quorum < 1 {
		cfg.Quorum = 1
	}
	if cfg.MinNormal < 1 {
		cfg.MinNormal = 1
	}
	return &Engine{cfg: cfg, pops: map[string]*popState{}}
}

// assessment is what the fresh observations say of one PoP.
type assessment struct {
	name        string
	fresh       int
	down        int
	unavailable bool
	qps         float64
	rtt         time.Duration
	hot, cool   bool
	why         string // what makes it hot or cool
	attack      bool   // under attack (rule 6)
	limited     float64
}

// absorbs reports whether a's PoP must not be shed nor withdrawn for
// load or the monitors' view: under attack, and the operator did not ask
// to shed under attack.
func (e *Engine) absorbs(a *assessment) bool { return a.attack && !e.cfg.ShedUnderAttack }

// attackWhy says why a PoP absorbs.
func (a *assessment) attackWhy() string {
	return fmt.Sprintf("under attack (%.0f q/s dropped or rate limited): absorbing it rather than moving it to the neighbours (levels.shed_under_attack is off)", a.limited)
}

// Step takes the observations at now and returns every PoP's decision,
// sorted by PoP name. PoPs are those of the observations (fresh or not)
// and those seen before.
func (e *Engine) Step(now time.Time, obs []Observation) []Decision {
	c := e.cfg
	by := map[string][]Observation{}
	for _, o := range obs {
		if _, ok := e.pops[o.PoP]; !ok {
			e.pops[o.PoP] = &popState{}
		}
		if now.Sub(o.Time) > c.Stale || o.Time.After(now) {
			continue
		}
		by[o.PoP] = append(by[o.PoP], o)
	}
	names := make([]string, 0, len(e.pops))
	for n := range e.pops {
		names = append(names, n)
	}
	slices.Sort(names)

	as := map[string]*assessment{}
	available := 0
	known := 0
	for _, n := range names {
		a := e.assess(n, by[n])
		as[n] = a
		if a.fresh > 0 {
			known++
			if !a.unavailable {
				available++
			}
		}
		st := e.pops[n]
		switch {
		case a.fresh == 0 || a.unavailable:
			st.availSince = time.Time{}
		case st.availSince.IsZero():
			st.availSince = now
		}
		switch {
		case a.cool && st.coolSince.IsZero():
			st.coolSince = now
		case !a.cool:
			st.coolSince = time.Time{}
		}
	}

	out := make(map[string]*Decision, len(names))
	set := func(n string, l Level, reason string) {
		st := e.pops[n]
		d := &Decision{PoP: n, Level: l, Reason: reason}
		if l != st.level {
			st.level, st.since, d.Changed = l, now, true
		}
		d.Since = st.since
		out[n] = d
	}

	// Availability first: withdrawals and returns.
	for _, n := range names {
		a, st := as[n], e.pops[n]
		switch {
		case a.fresh == 0:
			set(n, Normal, "no fresh observation from any vantage point: plain anycast")
		case a.unavailable && e.absorbs(a):
			set(n, st.level, fmt.Sprintf("down from %d of %d vantage points, but %s", a.down, a.fresh, a.attackWhy()))
		case a.unavailable && available == 0:
			set(n, st.level, fmt.Sprintf("down from %d of %d vantage points, but so is every PoP: a shared condition moves nothing", a.down, a.fresh))
		case a.unavailable:
			set(n, Withdrawn, fmt.Sprintf("down from %d of %d vantage points (quorum %d)", a.down, a.fresh, c.Quorum))
		case st.level == Withdrawn && now.Sub(st.availSince) >= c.Hold:
			set(n, Normal, fmt.Sprintf("available again for %v", now.Sub(st.availSince)))
		case st.level == Withdrawn:
			set(n, Withdrawn, fmt.Sprintf("available again for %v, back after %v", now.Sub(st.availSince), c.Hold))
		}
	}

	// Load: lowering first (it frees room), then raising, hottest first.
	held := func(st *popState) bool { return !st.since.IsZero() && now.Sub(st.since) < c.Hold }
	for _, n := range names {
		if out[n] != nil {
			continue
		}
		a, st := as[n], e.pops[n]
		if st.level > Normal && st.level < Withdrawn && a.cool && now.Sub(st.coolSince) >= c.Hold && !held(st) {
			set(n, st.level-1, fmt.Sprintf("%s for %v: one step down", a.why, now.Sub(st.coolSince)))
		}
	}
	var hot []*assessment
	for _, n := range names {
		if out[n] == nil && as[n].hot {
			hot = append(hot, as[n])
		}
	}
	slices.SortStableFunc(hot, func(x, y *assessment) int {
		return cmp.Or(cmp.Compare(y.qps/max(c.HighQPS, 1), x.qps/max(c.HighQPS, 1)), cmp.Compare(y.rtt, x.rtt))
	})
	shed := func() int {
		k := 0
		for _, n := range names {
			if l := e.pops[n].level; l > Normal && l < Withdrawn {
				k++
			}
		}
		return k
	}
	// spare counts the other PoPs the load of n could go to.
	spare := func(n string) int {
		k := 0
		for _, m := range names {
			if m != n && e.pops[m].level == Normal && as[m].fresh > 0 && !as[m].unavailable && !as[m].hot {
				k++
			}
		}
		return k
	}
	for _, a := range hot {
		n, st := a.name, e.pops[a.name]
		switch {
		case e.absorbs(a):
			set(n, st.level, a.why+", but "+a.attackWhy())
		case st.level == Shed3:
			set(n, st.level, a.why+": already at the highest shed level")
		case held(st):
			set(n, st.level, fmt.Sprintf("%s, but the level changed %v ago (hold %v)", a.why, now.Sub(st.since), c.Hold))
		case spare(n) < c.MinNormal:
			set(n, st.level, fmt.Sprintf("%s, but fewer than %d other PoPs are normal and not hot: the last healthy PoPs are not shed", a.why, c.MinNormal))
		case st.level == Normal && c.MaxShed > 0 && shed() >= c.MaxShed:
			set(n, st.level, fmt.Sprintf("%s, but %d PoPs are shed already (max %d)", a.why, shed(), c.MaxShed))
		default:
			set(n, st.level+1, a.why+": one step up")
		}
	}
	for _, n := range names {
		if out[n] == nil {
			a := as[n]
			reason := "within the marks"
			if a.cool {
				reason = fmt.Sprintf("%s for %v", a.why, now.Sub(e.pops[n].coolSince))
			}
			set(n, e.pops[n].level, reason)
		}
	}
	res := make([]Decision, 0, len(names))
	for _, n := range names {
		res = append(res, *out[n])
	}
	return res
}

func (e *Engine) assess(name string, obs []Observation) *assessment {
	c := e.cfg
	a := &assessment{name: name, fresh: len(obs), qps: -1}
	// The newest observation of each vantage point counts.
	newest := map[string]Observation{}
	for _, o := range obs {
		if p, ok := newest[o.Vantage]; !ok || o.Time.After(p.Time) {
			newest[o.Vantage] = o
		}
	}
	a.fresh = len(newest)
	var rtts []time.Duration
	qpsAll := -1.0 // the answered load, of every vantage point: for the attack share
	for _, o := range newest {
		a.limited = max(a.limited, o.Limited)
		qpsAll = max(qpsAll, o.QPS)
		if !o.Up {
			a.down++
			continue
		}
		a.qps = max(a.qps, o.QPS)
		if o.RTTp95 > 0 {
			rtts = append(rtts, o.RTTp95)
		}
	}
	a.unavailable = a.down >= c.Quorum
	a.attack = a.limited >= AttackMinQPS && a.limited >= AttackShare*(max(qpsAll, 0)+a.limited)
	if len(rtts) > 0 {
		slices.Sort(rtts)
		a.rtt = rtts[(len(rtts)-1)/2]
	}
	switch {
	case c.HighQPS > 0 && a.qps > c.HighQPS:
		a.hot, a.why = true, fmt.Sprintf("load %.0f q/s above the high-water mark %.0f", a.qps, c.HighQPS)
	case c.HighRTT > 0 && a.rtt > c.HighRTT:
		a.hot, a.why = true, fmt.Sprintf("RTT p95 %v above the bound %v", a.rtt, c.HighRTT)
	default:
		qpsCool := c.HighQPS == 0 || a.qps >= 0 && a.qps < c.LowQPS
		rttCool := c.HighRTT == 0 || a.rtt < c.LowRTT
		switch {
		case !qpsCool || !rttCool || a.fresh <= a.down:
		case c.HighQPS == 0 && c.HighRTT == 0:
			a.cool, a.why = true, "available (neither load nor RTT marks set)"
		default:
			a.cool, a.why = true, fmt.Sprintf("load %.0f q/s and RTT p95 %v below the low-water marks", max(a.qps, 0), a.rtt)
		}
	}
	return a
}
