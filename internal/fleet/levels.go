package fleet

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/anycastdns/anycastdns/internal/fleet/level"
	"github.com/anycastdns/anycastdns/internal/stream"
)

// The PoP levels: from the monitors' reports (Observe) the registry
// decides each PoP's level with a level.Engine every interval (and at once
// after each report), lets an operator pin a PoP's level, and sends each
// PoP's level down the stream of every connected node of that PoP — at
// once when it changes or the node joins, and as a refresh each interval.
// A node keeps a level for Validity without a refresh, then returns to
// normal: a control plane that stops leaves plain anycast behind.

// LevelsConfig turns the decisions on.
type LevelsConfig struct {
	Engine   level.Config  // the engine's thresholds (Stale included)
	Interval time.Duration // between two steps (and refreshes)
	Validity time.Duration // how long a node keeps a level without a refresh
}

// DefaultStale is how old a report may be before it is shown as stale
// when the decisions are off.
const DefaultStale = 2 * time.Second

// ErrNoLevels is returned when the control plane makes no decisions (no levels section),
// so there is nothing to pin.
var ErrNoLevels = errors.New("this control plane decides no PoP levels (its configuration has no levels section)")

// ErrInvalid marks a bad argument (the API answers 400).
var ErrInvalid = errors.New("invalid argument")

// pin is an operator's level for a PoP.
type pin struct {
	Level  level.Level `json:"level"`
	Reason string      `json:"reason"`
	Since  time.Time   `json:"since"`
}

// popLevel is a PoP's level in force.
type popLevel struct {
	decided *level.Decision // the engine's last, nil before one
	level   level.Level
	reason  string
	since   time.Time
	known   bool   // a level is in force (decided or pinned)
	changes uint64 // level changes, the first level counting only when not normal
}

// levelChange is one change of a PoP's level, logged outside the lock.
type levelChange struct {
	pop, reason string
	from, to    level.Level
	first       bool
	pinned      bool
}

// levelMetrics are the decisions' collectors.
type levelMetrics struct {
	reports *prometheus.CounterVec
	changes *prometheus.CounterVec
	steps   prometheus.Counter
}

func newLevelMetrics() *levelMetrics {
	return &levelMetrics{
		reports: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "anycastd_fleet_reports_total",
			Help: "Monitor reports received, by result (ok, invalid)."}, []string{"result"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "anycastd_fleet_level_changes_total",
			Help: "Changes of a PoP's level in force (decided or pinned); a first level of normal is no change."}, []string{"pop"}),
		steps: prometheus.NewCounter(prometheus.CounterOpts{Name: "anycastd_fleet_level_steps_total",
			Help: "Decision steps run over the monitors' reports."}),
	}
}

var (
	popLevelDesc = prometheus.NewDesc("anycastd_fleet_pop_level",
		"The PoP's level in force: 0 normal, 1-3 shed-1..3, 4 withdrawn.", []string{"pop"}, nil)
	monitorAgeDesc = prometheus.NewDesc("anycastd_fleet_monitor_report_age_seconds",
		"Seconds since the vantage point's last report.", []string{"vantage"}, nil)
)

// Levels reports whether the registry decides PoP levels.
func (r *Registry) Levels() bool { return r.lv != nil }

// poke asks the decision loop for a step now.
func (r *Registry) poke() {
	if r.lv == nil {
		return
	}
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// RunLevels steps the decisions every interval, and after each report,
// until ctx ends. Without levels it only waits.
func (r *Registry) RunLevels(ctx context.Context) error {
	if r.lv == nil {
		<-ctx.Done()
		return nil
	}
	r.log.Info("PoP levels decided from the monitors' reports", "interval", r.lv.Interval, "quorum", r.lv.Engine.Quorum,
		"stale", r.lv.Engine.Stale, "validity", r.lv.Validity, "hold", r.lv.Engine.Hold)
	t := time.NewTicker(r.lv.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			r.Step(true)
		case <-r.kick:
			r.Step(false)
		}
	}
}

// Step runs one decision over the fresh reports: every PoP whose level in
// force changed is sent its level at once, and with refresh every PoP
// with a level is sent it again. It does nothing without levels.
func (r *Registry) Step(refresh bool) {
	if r.lv == nil {
		return
	}
	now := r.now()
	r.mu.Lock()
	r.forgetOld(now)
	var obs []level.Observation
	for pop, byVantage := range r.obs {
		for v, o := range byVantage {
			if o.rep.State == ReportUnknown {
				continue // not yet rise or fall rounds: no observation
			}
			ob := level.Observation{PoP: pop, Vantage: v, Time: o.received, Up: o.rep.State == ReportUp,
				RTTp95: msDuration(o.rep.RTTp95ms), QPS: -1}
			if o.rep.QPS != nil {
				ob.QPS = *o.rep.QPS
			}
			if o.rep.Limited != nil {
				ob.Limited = *o.rep.Limited
			}
			obs = append(obs, ob)
		}
	}
	r.met.steps.Inc()
	for _, d := range r.engine.Step(now, obs) {
		r.popLevelLocked(d.PoP).decided = &d
	}
	for pop := range r.pins {
		r.popLevelLocked(pop)
	}
	var changes []levelChange
	changed := map[string]bool{}
	for pop := range r.pops {
		if c, ok := r.applyLocked(pop, now); ok {
			changes, changed[pop] = append(changes, c), true
		}
	}
	for _, m := range r.members {
		if m.sess == nil || !refresh && !changed[m.pop] {
			continue
		}
		if pl := r.pops[m.pop]; pl != nil && pl.known {
			m.sess.sendLevel(r.levelMsg(m.pop, pl))
		}
	}
	r.mu.Unlock()
	r.logChanges(changes)
}

func msDuration(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }

// popLevelLocked returns the PoP's entry, created when missing; r.mu is
// held.
func (r *Registry) popLevelLocked(pop string) *popLevel {
	pl := r.pops[pop]
	if pl == nil {
		pl = &popLevel{}
		r.pops[pop] = pl
	}
	return pl
}

// applyLocked puts the PoP's level in force (its pin, else the engine's
// decision) and reports a change; r.mu is held.
func (r *Registry) applyLocked(pop string, now time.Time) (levelChange, bool) {
	pl := r.popLevelLocked(pop)
	var l level.Level
	var reason string
	p := r.pins[pop]
	switch {
	case p != nil:
		l, reason = p.Level, "pinned by the operator: "+p.Reason
	case pl.decided != nil:
		l, reason = pl.decided.Level, pl.decided.Reason
	default:
		if pl.known { // unpinned before any decision: back to plain anycast
			l, reason = level.Normal, "unpinned; no decision yet"
			break
		}
		return levelChange{}, false
	}
	c := levelChange{pop: pop, from: pl.level, to: l, reason: reason, first: !pl.known, pinned: p != nil}
	pl.reason = reason
	if pl.known && pl.level == l {
		return levelChange{}, false
	}
	pl.level, pl.since, pl.known = l, now, true
	if !c.first || l != level.Normal {
		pl.changes++
		r.met.changes.WithLabelValues(pop).Inc()
	}
	return c, true
}

func (r *Registry) logChanges(changes []levelChange) {
	for _, c := range changes {
		if c.first && c.to == level.Normal {
			r.log.Debug("PoP level", "pop", c.pop, "level", c.to, "reason", c.reason)
			continue
		}
		r.log.Info("PoP level changed", "pop", c.pop, "from", c.from, "to", c.to, "reason", c.reason, "pinned", c.pinned)
	}
}

// levelMsg is the level frame for the nodes of pop; r.mu is held.
func (r *Registry) levelMsg(pop string, pl *popLevel) stream.Level {
	return stream.Level{PoP: pop, Level: pl.level.String(), Reason: pl.reason, ValidMS: r.lv.Validity.Milliseconds()}
}

// sendLevel hands the stream the newest level, replacing one it has not
// sent yet; r.mu is held (one sender at a time).
func (s *session) sendLevel(l stream.Level) {
	for {
		select {
		case s.levels <- l:
			return
		default:
		}
		select {
		case <-s.levels:
		default:
		}
	}
}

// Levels implements stream.LevelSession.
func (s *session) Levels() <-chan stream.Level { return s.levels }

var _ stream.LevelSession = (*session)(nil)

// Pin makes l the level of pop whatever the monitors say, until Unpin; the
// pin is kept across restarts and applies at once.
func (r *Registry) Pin(pop string, l level.Level, reason string) error {
	if err := checkName(pop); err != nil {
		return fmt.Errorf("%w: pop: %w", ErrInvalid, err)
	}
	if !l.Valid() {
		return fmt.Errorf("%w: level: %v is not a level", ErrInvalid, l)
	}
	if len(reason) > maxReportError {
		return fmt.Errorf("%w: reason: at most %d bytes, got %d", ErrInvalid, maxReportError, len(reason))
	}
	if r.lv == nil {
		return ErrNoLevels
	}
	r.mu.Lock()
	r.pins[pop] = &pin{Level: l, Reason: reason, Since: r.now()}
	r.mu.Unlock()
	r.log.Warn("PoP level pinned by the operator", "pop", pop, "level", l, "reason", reason)
	r.Step(false)
	return r.saveErr()
}

// Unpin lifts the operator's pin of pop: the decisions apply again.
func (r *Registry) Unpin(pop string) error {
	if r.lv == nil {
		return ErrNoLevels
	}
	r.mu.Lock()
	p := r.pins[pop]
	delete(r.pins, pop)
	r.mu.Unlock()
	if p == nil {
		return fmt.Errorf("%w: PoP %s is not pinned", ErrNotFound, pop)
	}
	r.log.Info("PoP level pin lifted", "pop", pop, "was", p.Level)
	r.Step(false)
	return r.saveErr()
}

// PoPView is one PoP in the fleet view: its level and what each vantage
// point sees of it.
type PoPView struct {
	PoP string `json:"pop"`
	// Level in force (normal, shed-1..3, withdrawn), "" before any
	// decision; Reason why, Since when it took this level.
	Level  string    `json:"level"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since,omitzero"`
	// Pinned: an operator's pin is in force (Pin); Decided is then the
	// level the decisions would give.
	Pinned  bool     `json:"pinned"`
	Pin     *PinView `json:"pin,omitempty"`
	Decided string   `json:"decided,omitempty"`
	// Changes counts the changes of its level in force since the control
	// plane started (a first level of normal is none).
	Changes uint64 `json:"changes"`
	// Nodes are the connected members of the PoP.
	Nodes    int           `json:"nodes"`
	Vantages []VantageView `json:"vantages"`
}

// PinView is an operator's pin.
type PinView struct {
	Level  string    `json:"level"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// VantageView is the latest observation of a PoP from one vantage point.
type VantageView struct {
	Vantage  string   `json:"vantage"`
	State    string   `json:"state"` // up, down, unknown
	RTTp50ms float64  `json:"rtt_p50_ms"`
	RTTp95ms float64  `json:"rtt_p95_ms"`
	QPS      *float64 `json:"qps,omitempty"`
	TCPConns *int     `json:"tcp_conns,omitempty"`
	CPU      *float64 `json:"cpu,omitempty"`
	Error    string   `json:"error,omitempty"`
	// Time is the report's, by the monitor's clock; Received and
	// AgeSeconds by the control plane's. Stale: older than the stale
	// bound, so not counted.
	Time       time.Time `json:"time"`
	Received   time.Time `json:"received"`
	AgeSeconds float64   `json:"age_seconds"`
	Stale      bool      `json:"stale"`
}

// MonitorView is one vantage point and its last report.
type MonitorView struct {
	Vantage    string    `json:"vantage"`
	Remote     string    `json:"remote"`
	LastReport time.Time `json:"last_report"` // received
	ReportTime time.Time `json:"report_time"` // the report's own time
	AgeSeconds float64   `json:"age_seconds"`
	Stale      bool      `json:"stale"`
	IntervalMS int64     `json:"interval_ms"`
	PoPs       int       `json:"pops"`
	Reports    uint64    `json:"reports"`
}

// LevelsView is the decisions' settings, as the view shows them.
type LevelsView struct {
	IntervalMS int64 `json:"interval_ms"`
	ValidityMS int64 `json:"validity_ms"`
	Quorum     int   `json:"quorum"`
	HoldMS     int64 `json:"hold_ms"`
}

// stale is the age past which a report is not counted; r.lv is fixed.
func (r *Registry) stale() time.Duration {
	if r.lv != nil {
		return r.lv.Engine.Stale
	}
	return DefaultStale
}

// popsView builds the PoPs and monitors of the view; r.mu is held.
func (r *Registry) popsView(now time.Time) ([]PoPView, []MonitorView) {
	stale := r.stale()
	byName := map[string]*PoPView{}
	get := func(pop string) *PoPView {
		pv := byName[pop]
		if pv == nil {
			pv = &PoPView{PoP: pop, Vantages: []VantageView{}}
			byName[pop] = pv
		}
		return pv
	}
	for _, m := range r.members {
		if m.pop == "" {
			continue
		}
		pv := get(m.pop)
		if m.sess != nil {
			pv.Nodes++
		}
	}
	for pop, byVantage := range r.obs {
		pv := get(pop)
		for v, o := range byVantage {
			age := now.Sub(o.received)
			pv.Vantages = append(pv.Vantages, VantageView{Vantage: v, State: o.rep.State, RTTp50ms: o.rep.RTTp50ms, RTTp95ms: o.rep.RTTp95ms,
				QPS: o.rep.QPS, TCPConns: o.rep.TCPConns, CPU: o.rep.CPU, Error: o.rep.Error,
				Time: o.time, Received: o.received, AgeSeconds: age.Seconds(), Stale: age > stale})
		}
		slices.SortFunc(pv.Vantages, func(a, b VantageView) int { return cmp.Compare(a.Vantage, b.Vantage) })
	}
	for pop, pl := range r.pops {
		pv := get(pop)
		if pl.known {
			pv.Level, pv.Reason, pv.Since = pl.level.String(), pl.reason, pl.since
		}
		pv.Changes = pl.changes
		if pl.decided != nil {
			pv.Decided = pl.decided.Level.String()
		}
	}
	for pop, p := range r.pins {
		pv := get(pop)
		pv.Pinned, pv.Pin = true, &PinView{Level: p.Level.String(), Reason: p.Reason, Since: p.Since}
	}
	pops := make([]PoPView, 0, len(byName))
	for _, pv := range byName {
		if !pv.Pinned {
			pv.Decided = ""
		}
		pops = append(pops, *pv)
	}
	slices.SortFunc(pops, func(a, b PoPView) int { return cmp.Compare(a.PoP, b.PoP) })
	mons := make([]MonitorView, 0, len(r.monitors))
	for v, m := range r.monitors {
		age := now.Sub(m.received)
		mons = append(mons, MonitorView{Vantage: v, Remote: m.remote, LastReport: m.received, ReportTime: m.time,
			AgeSeconds: age.Seconds(), Stale: age > stale, IntervalMS: m.interval.Milliseconds(), PoPs: m.pops, Reports: m.reports})
	}
	slices.SortFunc(mons, func(a, b MonitorView) int { return cmp.Compare(a.Vantage, b.Vantage) })
	return pops, mons
}

// levelsView is the view's settings of the decisions, nil without them.
func (r *Registry) levelsView() *LevelsView {
	if r.lv == nil {
		return nil
	}
	return &LevelsView{IntervalMS: r.lv.Interval.Milliseconds(), ValidityMS: r.lv.Validity.Milliseconds(),
		Quorum: r.lv.Engine.Quorum, HoldMS: r.lv.Engine.Hold.Milliseconds()}
}
