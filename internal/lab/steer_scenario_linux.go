package lab

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anycastdns/anycastdns/internal/fleet/level"
)

// The steering scenarios: application-layer anycast at work. The lab runs
// one monitor per region reporting to the control plane, which decides
// each PoP's level and sends it to the PoP's node (Options.Monitors,
// Options.Levels).

// levelChange is one change of a PoP's level as its node reports it.
type levelChange struct {
	at     time.Time
	pop    string
	from   level.Level
	to     level.Level
	reason string
}

// levelWatch polls the level of every PoP's node (admin status) every
// 100 ms and keeps the changes.
type levelWatch struct {
	cancel  context.CancelFunc
	done    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	changes []levelChange
	now     map[string]level.Level
}

func (l *Lab) watchLevels(ctx context.Context) (*levelWatch, error) {
	w := &levelWatch{done: make(chan struct{}), now: map[string]level.Level{}}
	type src struct {
		pop string
		get func(context.Context) (level.Level, string, error)
	}
	var srcs []src
	for _, n := range l.NodesByRole(RolePoP) {
		c, err := l.Admin(n.Name)
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, src{n.Name, func(ctx context.Context) (level.Level, string, error) {
			st, err := c.Status(ctx)
			if err != nil {
				return 0, "", err
			}
			if st.Level == nil {
				return level.Normal, "", nil
			}
			return st.Level.Level, st.Level.Reason, nil
		}})
	}
	for _, s := range srcs {
		lv, _, err := s.get(ctx)
		if err != nil {
			return nil, fmt.Errorf("level of %s: %w", s.pop, err)
		}
		w.now[s.pop] = lv
	}
	wctx, cancel := context.WithCancel(ctx)
	w.cancel = cancel
	go func() {
		defer close(w.done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
			}
			for _, s := range srcs {
				lv, why, err := s.get(wctx)
				if err != nil {
					continue
				}
				w.mu.Lock()
				if old := w.now[s.pop]; old != lv {
					w.changes = append(w.changes, levelChange{at: time.Now(), pop: s.pop, from: old, to: lv, reason: why})
					w.now[s.pop] = lv
				}
				w.mu.Unlock()
			}
		}
	}()
	return w, nil
}

// level returns a PoP's last seen level.
func (w *levelWatch) level(pop string) level.Level {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.now[pop]
}

// snapshot returns the changes seen so far.
func (w *levelWatch) snapshot() []levelChange {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.changes)
}

// stop ends the watch and returns the changes seen.
func (w *levelWatch) stop() []levelChange {
	w.once.Do(func() {
		w.cancel()
		<-w.done
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.changes)
}

// of returns the changes of one PoP ("" = every PoP).
func changesOf(cs []levelChange, pop string) []levelChange {
	var out []levelChange
	for _, c := range cs {
		if pop == "" || c.pop == pop {
			out = append(out, c)
		}
	}
	return out
}

// levelPath is "normal→shed-1→normal" for the changes of one PoP.
func levelPath(cs []levelChange) string {
	if len(cs) == 0 {
		return ""
	}
	parts := []string{cs[0].from.String()}
	for _, c := range cs {
		parts = append(parts, c.to.String())
	}
	return strings.Join(parts, "→")
}

// levelPaths is levelPath per PoP, "A-pop: normal→shed-1; C-pop: …", in
// the order of their first change.
func levelPaths(cs []levelChange) string {
	var pops []string
	for _, c := range cs {
		if !slices.Contains(pops, c.pop) {
			pops = append(pops, c.pop)
		}
	}
	var parts []string
	for _, p := range pops {
		parts = append(parts, p+": "+levelPath(changesOf(cs, p)))
	}
	return strings.Join(parts, "; ")
}

// minGap is the shortest time between two changes of one PoP; nil with
// fewer than two.
func minGap(cs []levelChange) *float64 {
	var best time.Duration = -1
	last := map[string]time.Time{}
	for _, c := range cs {
		if t, ok := last[c.pop]; ok && (best < 0 || c.at.Sub(t) < best) {
			best = c.at.Sub(t)
		}
		last[c.pop] = c.at
	}
	if best < 0 {
		return nil
	}
	return ms(best)
}

func withdrawnIn(cs []levelChange) bool {
	for _, c := range cs {
		if c.to == level.Withdrawn {
			return true
		}
	}
	return false
}

// needSteering checks that the lab runs the loop: monitors, and a control
// plane that decides levels.
func (l *Lab) needSteering(name string) error {
	if !l.opts.Monitors || l.ctl == nil || l.ctl.Levels == nil {
		return fmt.Errorf("%s needs the monitors and the control plane's levels (anycastlab scenario does it; lab.Options Control, Monitors and Levels)", name)
	}
	return nil
}

// waitLoop starts every monitor that does not run and waits until every
// monitor sees every PoP up and every PoP's node holds a level from the
// control plane: the loop is closed.
func (l *Lab) waitLoop(ctx context.Context, timeout time.Duration) error {
	for _, m := range l.Monitors() {
		l.mu.Lock()
		p := l.monitors[m.Vantage]
		l.mu.Unlock()
		if p == nil || !p.Running() {
			if _, err := l.StartMonitor(ctx, m.Vantage); err != nil {
				return err
			}
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		why := ""
		for _, m := range l.Monitors() {
			v, err := l.MonitorView(ctx, m.Vantage)
			if err != nil {
				why = err.Error()
				break
			}
			for _, p := range v.PoPs {
				if p.State != "up" {
					why = fmt.Sprintf("monitor %s sees %s %s", m.Vantage, p.Name, p.State)
				}
			}
		}
		if why == "" {
			for _, n := range l.NodesByRole(RolePoP) {
				c, err := l.Admin(n.Name)
				if err != nil {
					return err
				}
				st, err := c.Status(ctx)
				switch {
				case err != nil:
					why = err.Error()
				case st.Level == nil || st.Level.Control == nil:
					why = n.Name + " holds no level from the control plane (is the control path, monitors' reports to the control plane's levels sent down the stream, in this anycastd?)"
				case st.Level.Level != level.Normal:
					why = fmt.Sprintf("%s is at %s (%s)", n.Name, st.Level.Level, st.Level.Reason)
				}
				if why != "" {
					break
				}
			}
		}
		if why == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the monitors' loop is not closed after %s: %s", timeout, why)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// stopMonitors stops every monitor.
func (l *Lab) stopMonitors() error {
	var errs []error
	for _, m := range l.Monitors() {
		if err := l.StopMonitor(m.Vantage); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// grayFailure blackholes the target PoP's DNS traffic on its upstream link
// twice: first with the monitors stopped (plain anycast: the PoP's BGP
// session and self-check stay up, so its clients lose every query until
// the repair), then with the monitors running (the control plane withdraws
// the PoP once 2 of 3 vantage points see it down, its clients move, and
// come back after the repair).
func (l *Lab) grayFailure(ctx context.Context, o ScenarioOptions) (*Result, error) {
	const name = "gray-failure"
	if err := l.needSteering(name); err != nil {
		return nil, err
	}
	r := newRun(name, o.Progress)
	f := fault{
		what: fmt.Sprintf("DNS to it dropped on its upstream link (nftables in %s, table inet %s; BGP, BFD and its self-check untouched)", l.plan.uplink(o.Target).A.Node, blackholeTable(o.Target)),
		undo: "blackhole removed", end: "repair",
		inject:  func(ctx context.Context) error { return l.Blackhole(ctx, o.Target) },
		restore: func(ctx context.Context) error { return l.RepairBlackhole(ctx, o.Target) },
	}
	// Plain anycast: no monitor, no decision.
	if err := l.stopMonitors(); err != nil {
		return nil, err
	}
	r.notef("plain anycast: monitors stopped; the control plane's levels lapse to normal without reports")
	if err := sleep(ctx, l.ctl.Levels.Stale+l.ctl.Levels.Interval*2); err != nil {
		return nil, err
	}
	po := o
	po.SwitchWait, po.RecoverWait = 3*time.Second, 5*time.Second
	plain, err := l.failover(ctx, name, f, po)
	if err != nil {
		return nil, fmt.Errorf("plain anycast: %w", err)
	}
	for _, n := range plain.Notes {
		r.res.notef("plain anycast: %s", n)
	}
	off := false
	for _, ln := range plain.Lines {
		ln.Monitor = &off
		ln.PoPAfter = popAfter(ln)
		r.res.Lines = append(r.res.Lines, ln)
	}
	// The loop: monitors, reports, decisions.
	if err := l.waitLoop(ctx, 20*time.Second); err != nil {
		return nil, err
	}
	r.notef("monitors running: every vantage point sees every PoP up, every node holds a level from the control plane")
	w, err := l.watchLevels(ctx)
	if err != nil {
		return nil, err
	}
	mo := o
	mo.RecoverWait = l.ctl.Levels.Hold + 10*time.Second
	mon, err := l.failover(ctx, name, f, mo)
	changes := w.stop()
	if err != nil {
		return nil, fmt.Errorf("with the monitors: %w", err)
	}
	for _, n := range mon.Notes {
		r.res.notef("monitors: %s", n)
	}
	tc := changesOf(changes, o.Target)
	for _, c := range tc {
		r.res.notef("monitors: %s %s → %s at %s: %s", c.pop, c.from, c.to, r.at(c.at), c.reason)
	}
	on := true
	nc := len(tc)
	for _, ln := range mon.Lines {
		ln.Monitor = &on
		ln.PoPAfter = popAfter(ln)
		ln.LevelChanges, ln.Levels = &nc, levelPath(tc)
		r.res.Lines = append(r.res.Lines, ln)
	}
	return r.done(), nil
}

// popAfter is the PoP a failover line's client moved to, or the one it
// stayed on.
func popAfter(ln Line) string {
	if ln.PoPDuring != "" {
		return ln.PoPDuring
	}
	return ln.PoPBefore
}

// steady runs the clients' streams around an event that lasts hold, and
// returns a line per client with where it was served before and during
// it, and the level changes of every PoP meanwhile.
func (l *Lab) steady(ctx context.Context, r *scenarioRun, o ScenarioOptions, hold time.Duration,
	inject, restore func(context.Context) error) (_ []Line, _ []levelChange, err error) {
	streams, err := l.startStreams(o)
	if err != nil {
		return nil, nil, err
	}
	defer stopAll(streams)
	w, err := l.watchLevels(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer w.stop()
	if err := sleep(ctx, o.Baseline); err != nil {
		return nil, nil, err
	}
	event := time.Now()
	if err := inject(ctx); err != nil {
		return nil, nil, err
	}
	injected := true
	defer func() {
		if injected {
			if rerr := restore(context.WithoutCancel(ctx)); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
	}()
	if err := sleep(ctx, hold); err != nil {
		return nil, nil, err
	}
	end := time.Now()
	injected = false
	if err := restore(ctx); err != nil {
		return nil, nil, err
	}
	if err := sleep(ctx, time.Second); err != nil {
		return nil, nil, err
	}
	changes := w.stop()
	all := stopAll(streams)
	if err := streamsErr(streams); err != nil {
		return nil, nil, err
	}
	var lines []Line
	for i, s := range streams {
		fo := analyzeFailover(all[i], event, end)
		ln := Line{Scenario: r.res.Scenario, Client: s.Client, Transport: s.Transport, PoP: fo.last, Sent: fo.sent, Lost: fo.lost, Late: fo.late,
			Target: o.Target, PoPBefore: fo.before, PoPDuring: fo.during}
		if fo.didSwitch {
			ln.SwitchMS = ms(fo.switched)
		}
		if fo.didRecover {
			ln.RecoverMS = ms(fo.recovered)
		}
		ln.PoPAfter = popAfter(ln)
		lines = append(lines, ln)
	}
	return lines, changes, nil
}

// monitorPartition cuts one monitor (the target's region's) off from every
// PoP for longer than it takes it to see them all down: it reports them
// down, but one vantage point is no quorum, so nothing moves.
func (l *Lab) monitorPartition(ctx context.Context, o ScenarioOptions) (*Result, error) {
	const name = "monitor-partition"
	if err := l.needSteering(name); err != nil {
		return nil, err
	}
	r := newRun(name, o.Progress)
	if err := l.WaitSettled(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	if err := l.waitLoop(ctx, 20*time.Second); err != nil {
		return nil, err
	}
	tn, _ := l.plan.node(o.Target)
	vantage := tn.Region
	hold := max(o.Hold, 4*time.Second)
	seenDown := false
	lines, changes, err := l.steady(ctx, r, o, hold,
		func(ctx context.Context) error {
			if err := l.PartitionMonitor(ctx, vantage); err != nil {
				return err
			}
			r.notef("monitor %s cut off from every PoP (nftables in its namespace); its reports still reach the control plane", vantage)
			// The partition must bite: the monitor sees every PoP down.
			deadline := time.Now().Add(hold - 500*time.Millisecond)
			for time.Now().Before(deadline) && !seenDown {
				v, err := l.MonitorView(ctx, vantage)
				if err == nil {
					down := 0
					for _, p := range v.PoPs {
						if p.State == "down" {
							down++
						}
					}
					seenDown = down == len(v.PoPs)
				}
				if err := sleep(ctx, 100*time.Millisecond); err != nil {
					return err
				}
			}
			return nil
		},
		func(ctx context.Context) error { return l.HealMonitor(ctx, vantage) })
	if err != nil {
		return nil, err
	}
	if seenDown {
		r.notef("monitor %s saw every PoP down; the others saw them up", vantage)
	} else {
		r.notef("monitor %s never saw every PoP down: the partition did not bite", vantage)
	}
	r.res.Lines = steeringLines(lines, changes, "", true)
	return r.done(), nil
}

// steeringLines marks lines as run with the monitors and gives each the
// level changes of pop ("" = every PoP).
func steeringLines(lines []Line, changes []levelChange, pop string, mon bool) []Line {
	cs := changesOf(changes, pop)
	n := len(cs)
	wd := withdrawnIn(cs)
	path := levelPath(cs)
	if pop == "" {
		path = levelPaths(cs)
	}
	for i := range lines {
		lines[i].Monitor = &mon
		lines[i].LevelChanges, lines[i].Levels, lines[i].MinGapMS, lines[i].Withdrawn = &n, path, minGap(cs), &wd
	}
	return lines
}

// Load the overload scenarios offer.
const (
	// loadRate is each loaded client's queries per second (overload);
	// allHotRate the load on each PoP in all-hot, shared by its clients.
	loadRate    = 1500
	allHotRate  = 2400
	loadWorkers = 20 // queries in flight per loaded client at most
	// capacityShare is the share of the offered load a hot PoP's quota
	// lets it serve: with three client networks in its catchment, shed-1
	// (one network gone, 1.7 times what it can serve) leaves it hot,
	// shed-2 (two gone, 0.8 times) does not.
	capacityShare = 0.4
	// quotaPeriod is the quota's period: a throttled node waits up to
	// nearly all of it, so the monitors' p95 of a hot PoP is some 100 ms,
	// clear of the 80 ms bound, while a probe (200 ms timeout) and BFD
	// (500 ms in the steering topology) still get through.
	quotaPeriod = 150 * time.Millisecond
	// minQuota keeps a throttled node's share of each period at 7.5 ms at
	// least: with less, its probes and BFD wait whole periods, and it is
	// seen dead rather than slow.
	minQuota = 0.05
	// allHotWorkers is loadWorkers in all-hot: a smaller backlog for
	// each of a throttled node's slices, so that its probes still pass.
	allHotWorkers = 10
	// allHotShare is capacityShare in all-hot: enough for every PoP to be
	// hot, not so little that its probes time out.
	allHotShare = 0.6
)

// calibrateQuota measures what a query costs a PoP's node in CPU (from its
// GET /v1/load idle and under load) and returns the share of a CPU that
// lets it serve capacity queries per second: what it spends on no query,
// plus capacity queries at that cost.
func calibrateQuota(idle, loaded nodeLoad, capacity float64) (float64, error) {
	dq := loaded.qps - idle.qps
	if dq < 100 {
		return 0, fmt.Errorf("the load added %.0f q/s to the PoP (%.0f → %.0f): too little to measure a query's cost", dq, idle.qps, loaded.qps)
	}
	cost := max(loaded.cpu-idle.cpu, 0) / dq
	// What the node spends with no query at all (BGP, BFD, the stream,
	// the monitors' reads): the idle reading may include some queries.
	base := max(idle.cpu-cost*idle.qps, 0)
	return max(base+cost*capacity, minQuota), nil
}

type nodeLoad struct{ qps, cpu float64 }

func (l *Lab) readLoad(ctx context.Context, pop string) (nodeLoad, error) {
	c, err := l.Admin(pop)
	if err != nil {
		return nodeLoad{}, err
	}
	ld, err := c.Load(ctx)
	if err != nil {
		return nodeLoad{}, fmt.Errorf("load of %s: %w", pop, err)
	}
	return nodeLoad{qps: ld.QueriesPerSecond, cpu: ld.CPU}, nil
}

// medianRTT is the median over the monitors of their UDP p95 for a PoP.
func (l *Lab) medianRTT(ctx context.Context, pop string) (time.Duration, error) {
	var v []float64
	for _, m := range l.Monitors() {
		view, err := l.MonitorView(ctx, m.Vantage)
		if err != nil {
			return 0, err
		}
		for _, p := range view.PoPs {
			if p.Name == popName(pop) {
				v = append(v, max(p.UDP.P95ms, p.TCP.P95ms))
			}
		}
	}
	if len(v) == 0 {
		return 0, fmt.Errorf("no monitor sees %s", pop)
	}
	slices.Sort(v)
	return time.Duration(v[(len(v)-1)/2] * float64(time.Millisecond)), nil
}

// waitHot waits until the monitors' median RTT p95 of a PoP is over the
// control plane's bound.
func (l *Lab) waitHot(ctx context.Context, pop string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		rtt, err := l.medianRTT(ctx, pop)
		if err != nil {
			return err
		}
		if rtt > l.ctl.Levels.HighRTT {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not hot after %s: RTT p95 (median of the monitors) %s, bound %s", pop, timeout, rtt, l.ctl.Levels.HighRTT)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}

// startLoads starts a load generator on each client.
func (l *Lab) startLoads(clients []string, rate int, v6 bool) ([]*Load, error) {
	dst, err := l.anycastAddr(v6)
	if err != nil {
		return nil, err
	}
	var loads []*Load
	for _, c := range clients {
		ld, err := l.StartLoad(c, dst, rate, loadWorkers)
		if err != nil {
			for _, x := range loads {
				x.Stop()
			}
			return nil, err
		}
		loads = append(loads, ld)
	}
	return loads, nil
}

func stopLoads(loads []*Load) map[string][]Answer {
	out := map[string][]Answer{}
	for _, ld := range loads {
		out[ld.Client] = ld.Stop()
	}
	return out
}

// rttsBetween are the query times of the answers to queries sent in
// [from, to).
func rttsBetween(qs []Answer, from, to time.Time) []time.Duration {
	var out []time.Duration
	for _, a := range qs {
		if a.OK() && !a.Sent.Before(from) && a.Sent.Before(to) {
			out = append(out, a.RTT())
		}
	}
	return out
}

// catchmentOf starts the streams and returns them with the clients the
// target serves, after o.Baseline.
func (l *Lab) catchmentOf(ctx context.Context, o ScenarioOptions, pops ...string) ([]*Stream, []string, error) {
	streams, err := l.startStreams(o)
	if err != nil {
		return nil, nil, err
	}
	if err := sleep(ctx, o.Baseline); err != nil {
		stopAll(streams)
		return nil, nil, err
	}
	var hot []string
	for _, s := range streams {
		if slices.Contains(pops, s.Last().PoP) {
			hot = append(hot, s.Client)
		}
	}
	return streams, hot, nil
}

// overload makes the target PoP too slow for its clients' load for real:
// bounded load generators in every client network it serves, and a CPU
// quota on its processes that lets it serve half of that load. The
// control plane sheds it a step at a time (one per hold) while the
// monitors' RTT p95 stays above the bound; part of its clients move to
// other PoPs, with no query lost. The load stops once the RTT is back
// under the bound (before the level would come down under the load), the
// quota goes, and the PoP returns to normal a step per hold: no flap.
func (l *Lab) overload(ctx context.Context, o ScenarioOptions) (_ *Result, err error) {
	const name = "overload"
	if err := l.needSteering(name); err != nil {
		return nil, err
	}
	lv := *l.ctl.Levels
	if lv.HighRTT == 0 {
		return nil, fmt.Errorf("%s: the control plane's levels use no RTT bound (high_rtt)", name)
	}
	r := newRun(name, o.Progress)
	if err := l.WaitSettled(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	if err := l.waitLoop(ctx, 20*time.Second); err != nil {
		return nil, err
	}
	o.Timeout = max(o.Timeout, LoadTimeout)
	// The node's load covers its last 1 to 2 s: let the queries of what
	// ran before pass out of it.
	if err := sleep(ctx, 2100*time.Millisecond); err != nil {
		return nil, err
	}
	idle, err := l.readLoad(ctx, o.Target)
	if err != nil {
		return nil, err
	}
	streams, hot, err := l.catchmentOf(ctx, o, o.Target)
	if err != nil {
		return nil, err
	}
	defer stopAll(streams)
	if len(hot) == 0 {
		return nil, fmt.Errorf("%s: no client is served by %s", name, o.Target)
	}
	// A query's cost, measured at a third of the load (the full load
	// alone may already slow the PoP on a busy machine, and the scenario
	// would begin before its event).
	calib, err := l.startLoads(hot, loadRate/3, o.IPv6)
	if err != nil {
		return nil, err
	}
	serr := sleep(ctx, 2500*time.Millisecond)
	var loaded nodeLoad
	if serr == nil {
		loaded, serr = l.readLoad(ctx, o.Target)
	}
	stopLoads(calib)
	if serr != nil {
		return nil, serr
	}
	defer func() {
		if cerr := l.ClearCPUQuota(o.Target); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	offered := float64(loadRate * len(hot))
	quota, err := calibrateQuota(idle, loaded, capacityShare*offered)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	w, err := l.watchLevels(ctx)
	if err != nil {
		return nil, err
	}
	defer w.stop()
	// The event: the clients' load comes, more than the PoP can serve.
	event := time.Now()
	if err := l.SetCPUQuota(o.Target, quota, quotaPeriod); err != nil {
		return nil, err
	}
	loads, err := l.startLoads(hot, loadRate, o.IPv6)
	if err != nil {
		return nil, err
	}
	defer func() {
		if loads != nil {
			stopLoads(loads)
		}
	}()
	r.notef("%s serves %s; at %s each sends %d q/s (at most %d in flight), %.0f q/s in all, beside %d q/s of steady probes, and %s gets a CPU quota of %.3f of a CPU per %s (idle %.3f CPU at %.0f q/s, %.3f CPU at %.0f q/s under a third of the load: room for %.0f%% of it)",
		o.Target, strings.Join(hot, ", "), r.at(event), loadRate, loadWorkers, offered, o.Rate, o.Target, quota, quotaPeriod, idle.cpu, idle.qps, loaded.cpu, loaded.qps, 100*capacityShare)
	// The machine's other work blurs the measure: if the PoP still serves
	// much more than it should, tighten the quota once, in proportion.
	if err := sleep(ctx, 2500*time.Millisecond); err != nil {
		return nil, err
	}
	if served, err := l.readLoad(ctx, o.Target); err != nil {
		return nil, err
	} else if want := capacityShare * offered; served.qps > 1.25*want && w.level(o.Target) == level.Normal {
		base := max(quota-(loaded.cpu-idle.cpu)/max(loaded.qps-idle.qps, 1)*want, 0)
		quota = max(base+(quota-base)*want/served.qps, minQuota)
		if err := l.SetCPUQuota(o.Target, quota, quotaPeriod); err != nil {
			return nil, err
		}
		r.notef("%s served %.0f q/s under the quota, want %.0f: quota %.3f", o.Target, served.qps, want, quota)
	}
	// Keep the load until the PoP is shed and its RTT is back under the
	// bound a little before the next step could come (then the level
	// would only come down under the load, and the load back: a flap).
	deadline := event.Add(3*lv.Hold + 10*time.Second)
	// The RTT counts once the monitors' window holds only what came after
	// the last step, and must stay under the bound for a while (one
	// window's p95 can dip), all before the next step could come.
	const steady = 1750 * time.Millisecond
	var loadEnd, underSince, lastSeen time.Time
	for loadEnd.IsZero() {
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return nil, err
		}
		cs := changesOf(w.snapshot(), o.Target)
		now := time.Now()
		if now.After(deadline) {
			r.notef("%s: the load ran %s without the RTT coming back under %s", o.Target, now.Sub(event).Round(time.Second), lv.HighRTT)
			loadEnd = now
			break
		}
		if len(cs) == 0 || w.level(o.Target) == level.Normal || w.level(o.Target) == level.Withdrawn {
			underSince = time.Time{}
			continue
		}
		last := cs[len(cs)-1].at
		if !last.Equal(lastSeen) {
			lastSeen, underSince = last, time.Time{}
		}
		if now.Sub(last) < MonitorWindow {
			continue
		}
		rtt, err := l.medianRTT(ctx, o.Target)
		if err != nil {
			return nil, err
		}
		switch {
		case rtt >= lv.HighRTT:
			underSince = time.Time{}
			if now.Sub(last) > lv.Hold+time.Second && w.level(o.Target) == level.Shed3 {
				r.notef("%s at shed-3 and RTT p95 %s still over %s: the load stops", o.Target, rtt.Round(100*time.Microsecond), lv.HighRTT)
				loadEnd = now
			}
		case underSince.IsZero():
			underSince = now
		case now.Sub(underSince) >= steady:
			r.notef("%s at %s, RTT p95 (median of the monitors) under %s for %s (now %s): the load stops", o.Target, w.level(o.Target), lv.HighRTT, steady, rtt.Round(100*time.Microsecond))
			loadEnd = now
		}
	}
	loadQs := stopLoads(loads)
	loads = nil
	if err := l.ClearCPUQuota(o.Target); err != nil {
		return nil, err
	}
	r.notef("load stopped and quota lifted at %s", r.at(loadEnd))
	// Back to normal, a step per hold.
	back := time.Time{}
	for wait := time.Now().Add(3*lv.Hold + 10*time.Second); time.Now().Before(wait); {
		if w.level(o.Target) == level.Normal {
			back = time.Now()
			break
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return nil, err
		}
	}
	if back.IsZero() {
		r.notef("%s did not come back to normal within %s of the load's end", o.Target, 3*lv.Hold+10*time.Second)
	} else {
		r.notef("%s back to normal %s after the load's end", o.Target, back.Sub(loadEnd).Round(time.Millisecond))
	}
	// Watch a little longer: no flap after the return.
	if err := sleep(ctx, 2*time.Second); err != nil {
		return nil, err
	}
	changes := w.stop()
	all := stopAll(streams)
	if err := streamsErr(streams); err != nil {
		return nil, err
	}
	r.checkSessions(ctx, l, "")
	tc := changesOf(changes, o.Target)
	for _, c := range changes {
		r.res.notef("%s %s → %s at %s: %s", c.pop, c.from, c.to, r.at(c.at), c.reason)
	}
	firstChange := loadEnd
	if len(tc) > 0 {
		firstChange = tc[0].at
	}
	// The share of the offered load that moved: per loaded client, the
	// share of its answers other PoPs gave over the last seconds of the
	// load, averaged (each offered the same rate).
	window := 3 * time.Second
	var share float64
	for _, c := range hot {
		moved, total := 0, 0
		for _, a := range loadQs[c] {
			if a.OK() && !a.Sent.Before(loadEnd.Add(-window)) && a.Sent.Before(loadEnd) {
				total++
				if a.PoP != o.Target {
					moved++
				}
			}
		}
		if total > 0 {
			share += float64(moved) / float64(total) / float64(len(hot))
		}
	}
	share = float64(int(share*1000+0.5)) / 1000
	for i, s := range streams {
		fo := analyzeFailover(all[i], event, loadEnd)
		ln := Line{Scenario: name, Client: s.Client, Transport: s.Transport, PoP: fo.last, Sent: fo.sent, Lost: fo.lost, Late: fo.late,
			Target: o.Target, PoPBefore: fo.before, PoPDuring: fo.during}
		if fo.didSwitch {
			ln.SwitchMS = ms(fo.switched)
		}
		if fo.didRecover {
			ln.RecoverMS = ms(fo.recovered)
		}
		ln.PoPAfter = popAfter(ln)
		if slices.Contains(hot, s.Client) {
			ln.ShedShare = &share
			if before := rttsBetween(all[i], event.Add(time.Second), firstChange); len(before) > 0 {
				ln.P95MSBefore = ms(percentile(before, 95))
			}
			if after := rttsBetween(all[i], loadEnd.Add(-window), loadEnd); len(after) > 0 {
				ln.P95MSAfter = ms(percentile(after, 95))
			}
		}
		r.res.Lines = append(r.res.Lines, ln)
	}
	r.res.Lines = steeringLines(r.res.Lines, changes, o.Target, true)
	r.notef("%s: %d level changes (%s); %.0f%% of the offered load moved", o.Target, len(tc), levelPath(tc), 100*share)
	return r.done(), nil
}

// allHot overloads every PoP, each with load from the clients it serves
// and a CPU quota that lets it serve 60 % of it: every PoP is hot, none
// has room to spare, so the target (whose clients could move) is not
// shed, no client moves and no PoP is withdrawn.
func (l *Lab) allHot(ctx context.Context, o ScenarioOptions) (_ *Result, err error) {
	const name = "all-hot"
	if err := l.needSteering(name); err != nil {
		return nil, err
	}
	r := newRun(name, o.Progress)
	if err := l.WaitSettled(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	if err := l.waitLoop(ctx, 20*time.Second); err != nil {
		return nil, err
	}
	o.Timeout = max(o.Timeout, LoadTimeout)
	if err := sleep(ctx, 2100*time.Millisecond); err != nil {
		return nil, err
	}
	var pops []string
	idle := map[string]nodeLoad{}
	for _, n := range l.NodesByRole(RolePoP) {
		pops = append(pops, n.Name)
		if idle[n.Name], err = l.readLoad(ctx, n.Name); err != nil {
			return nil, err
		}
	}
	streams, _, err := l.catchmentOf(ctx, o)
	if err != nil {
		return nil, err
	}
	defer stopAll(streams)
	serves := map[string]int{}
	servedBy := map[string]string{}
	for _, s := range streams {
		serves[s.Last().PoP]++
		servedBy[s.Client] = s.Last().PoP
	}
	dst, err := l.anycastAddr(o.IPv6)
	if err != nil {
		return nil, err
	}
	var loads []*Load
	defer func() {
		if loads != nil {
			stopLoads(loads)
		}
	}()
	for _, c := range l.clientNames() {
		p := servedBy[c]
		if serves[p] == 0 {
			return nil, fmt.Errorf("%s: %s got no answer", name, c)
		}
		ld, err := l.StartLoad(c, dst, allHotRate/serves[p], allHotWorkers)
		if err != nil {
			return nil, err
		}
		loads = append(loads, ld)
	}
	defer func() {
		for _, p := range pops {
			if cerr := l.ClearCPUQuota(p); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
	}()
	r.notef("every PoP gets %d q/s from the clients it serves (at most %d in flight each)", allHotRate, allHotWorkers)
	if err := sleep(ctx, 2500*time.Millisecond); err != nil {
		return nil, err
	}
	quotas := map[string]float64{}
	for _, p := range pops {
		if serves[p] == 0 {
			return nil, fmt.Errorf("%s: %s serves no client: it cannot be made hot", name, p)
		}
		loaded, err := l.readLoad(ctx, p)
		if err != nil {
			return nil, err
		}
		if quotas[p], err = calibrateQuota(idle[p], loaded, allHotShare*allHotRate); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", name, p, err)
		}
	}
	hold := max(o.Hold, 6*time.Second)
	lines, changes, err := l.steady(ctx, r, o, hold,
		func(ctx context.Context) error {
			// The other PoPs first, the target once they are hot: the
			// first PoP the monitors see hot would otherwise be shed,
			// for a moment, while another still has room. A PoP whose
			// clients cannot move (A's, C's: their routers see every
			// other PoP 4 AS hops further) may be; the target's
			// clients could move, so it comes last.
			order := append(slices.DeleteFunc(slices.Clone(pops), func(p string) bool { return p == o.Target }), o.Target)
			var qs []string
			for i, p := range order {
				if i == len(order)-1 {
					for _, q := range order[:i] {
						// Not hot yet: a little less CPU, a few times.
						for try := 0; ; try++ {
							err := l.waitHot(ctx, q, 4*time.Second)
							if err == nil {
								break
							}
							if try == 2 {
								r.notef("%v; going on", err)
								break
							}
							quotas[q] = max(quotas[q]*0.8, 0.8*minQuota)
							if err := l.SetCPUQuota(q, quotas[q], quotaPeriod); err != nil {
								return err
							}
						}
					}
				}
				if err := l.SetCPUQuota(p, quotas[p], quotaPeriod); err != nil {
					return err
				}
				qs = append(qs, fmt.Sprintf("%s %.3f", p, quotas[p]))
			}
			r.notef("CPU quotas on every PoP (%s of a CPU per %s, %s once the others were hot): each can serve %.0f%% of its load", strings.Join(qs, ", "), quotaPeriod, o.Target, 100*allHotShare)
			return nil
		},
		func(ctx context.Context) error {
			// Every PoP was hot in the monitors' eyes.
			for _, p := range pops {
				if rtt, err := l.medianRTT(ctx, p); err == nil {
					r.notef("%s: RTT p95 (median of the monitors) %s at the end (bound %s)", p, rtt.Round(100*time.Microsecond), l.ctl.Levels.HighRTT)
				}
			}
			stopLoads(loads)
			loads = nil
			var errs []error
			for _, p := range pops {
				errs = append(errs, l.ClearCPUQuota(p))
			}
			return errors.Join(errs...)
		})
	if err != nil {
		return nil, err
	}
	for _, c := range changes {
		r.res.notef("%s %s → %s at %s: %s", c.pop, c.from, c.to, r.at(c.at), c.reason)
	}
	r.checkSessions(ctx, l, "")
	r.res.Lines = steeringLines(lines, changes, "", true)
	return r.done(), nil
}
