package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/anycastdns/anycastdns/internal/admin"
	"github.com/anycastdns/anycastdns/internal/fleet/level"
)

// MaxRemoteValidity bounds how long a level from the control plane holds
// without being renewed: when the control plane or the monitors are gone,
// the node is back at normal after at most this long. The monitor can only
// improve on plain anycast, never keep a PoP shed or withdrawn alone.
const MaxRemoteValidity = 5 * time.Minute

// ErrNoBGP is returned for a level on a node without a bgp section.
var ErrNoBGP = errors.New("this node has no BGP configured")

// RemoteLeveler is how the control plane gives a node the level it decided
// for the node's PoP from the monitors' view. (*Node implements it; the
// control plane's change stream is to call it.)
type RemoteLeveler interface {
	// SetRemoteLevel sets the control plane's level until validUntil: at
	// most MaxRemoteValidity from now (a later time is cut to that), and
	// not in the past (an error). Unless it is renewed, the node then
	// returns to normal. An operator's pin overrides it, and the node's
	// own health (unhealthy, drained, stopping: withdrawn) both.
	SetRemoteLevel(l level.Level, reason string, validUntil time.Time) error
}

var (
	_ RemoteLeveler = (*Node)(nil)
	_ admin.Leveler = (*Node)(nil)
)

// levelSetting is the level one source asks for.
type levelSetting struct {
	level  level.Level
	reason string
	since  time.Time
	until  time.Time // zero for a pin
}

func (s *levelSetting) admin() *admin.LevelSetting {
	if s == nil {
		return nil
	}
	return &admin.LevelSetting{Level: s.level, Reason: s.reason, Since: s.since, Until: s.until}
}

// levels holds the operator's pin and the control plane's level and says
// which applies: the pin, else the control plane's level while valid,
// else normal. (The node's own health comes on top, in anycast.apply.)
type levels struct {
	log *slog.Logger
	// changed is called, without mu held, after anything that may change
	// the level in force.
	changed func(reason string)

	mu     sync.Mutex
	pin    *levelSetting
	remote *levelSetting
	timer  *time.Timer // ends remote; nil when there is none
	closed bool
}

func newLevels(logger *slog.Logger, changed func(reason string)) *levels {
	return &levels{log: logger, changed: changed}
}

// current returns the level routing follows, health aside, where it comes
// from (admin.SourceOperator, SourceControl or SourceDefault) and why.
func (ls *levels) current() (level.Level, string, string) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.currentLocked(time.Now())
}

func (ls *levels) currentLocked(now time.Time) (level.Level, string, string) {
	switch r := ls.remote; {
	case ls.pin != nil:
		return ls.pin.level, admin.SourceOperator, ls.pin.reason
	case r != nil && now.Before(r.until):
		return r.level, admin.SourceControl, r.reason
	}
	return level.Normal, admin.SourceDefault, ""
}

// settings returns copies of the pin and of the control plane's level
// while it is valid.
func (ls *levels) settings() (pin, remote *levelSetting) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.pin != nil {
		p := *ls.pin
		pin = &p
	}
	if r := ls.remote; r != nil && time.Now().Before(r.until) {
		c := *r
		remote = &c
	}
	return pin, remote
}

func (ls *levels) setPin(l level.Level, reason string) error {
	if !l.Valid() {
		return fmt.Errorf("pin level %v: not a level", l)
	}
	ls.mu.Lock()
	was := ls.pin
	ls.pin = &levelSetting{level: l, reason: reason, since: time.Now()}
	ls.mu.Unlock()
	attrs := []any{"level", l, "reason", reason}
	if was != nil {
		attrs = append(attrs, "was", was.level)
	}
	ls.log.Warn("level pinned by the operator: the control plane's level does not apply until unpinned", attrs...)
	ls.changed(fmt.Sprintf("operator pin %v: %s", l, reason))
	return nil
}

func (ls *levels) unpin() {
	ls.mu.Lock()
	was := ls.pin
	ls.pin = nil
	l, src, _ := ls.currentLocked(time.Now())
	ls.mu.Unlock()
	if was == nil {
		return
	}
	ls.log.Info("level unpinned by the operator", "was", was.level, "now", l, "source", src)
	ls.changed("operator unpin")
}

func (ls *levels) setRemote(l level.Level, reason string, until time.Time) error {
	if !l.Valid() {
		return fmt.Errorf("set remote level %v: not a level", l)
	}
	now := time.Now()
	if !until.After(now) {
		return fmt.Errorf("set remote level %v: valid until %s, which has passed (now %s; clocks differ?)",
			l, until.UTC().Format(time.RFC3339Nano), now.UTC().Format(time.RFC3339Nano))
	}
	if limit := now.Add(MaxRemoteValidity); until.After(limit) {
		until = limit
	}
	ls.mu.Lock()
	if ls.closed {
		ls.mu.Unlock()
		return fmt.Errorf("set remote level %v: %w", l, admin.ErrUnavailable)
	}
	since, renewal := now, false
	if r := ls.remote; r != nil && r.level == l && now.Before(r.until) {
		since, renewal = r.since, true
	}
	prev, _, _ := ls.currentLocked(now)
	ls.remote = &levelSetting{level: l, reason: reason, since: since, until: until}
	if ls.timer != nil {
		ls.timer.Stop()
	}
	ls.timer = time.AfterFunc(until.Sub(now), ls.lapse)
	next, src, _ := ls.currentLocked(now)
	ls.mu.Unlock()
	if !renewal {
		ls.log.Info("level from the control plane", "level", l, "reason", reason, "valid_until", until, "in_force", next, "source", src)
	} else {
		ls.log.Debug("level from the control plane renewed", "level", l, "valid_until", until)
	}
	if next != prev || !renewal {
		ls.changed(fmt.Sprintf("control plane %v: %s", l, reason))
	}
	return nil
}

// lapse ends the control plane's level once its validity has passed.
func (ls *levels) lapse() {
	ls.mu.Lock()
	r := ls.remote
	if r == nil || time.Now().Before(r.until) {
		// Renewed since this timer was set.
		ls.mu.Unlock()
		return
	}
	ls.remote, ls.timer = nil, nil
	l, src, _ := ls.currentLocked(time.Now())
	ls.mu.Unlock()
	ls.log.Warn("the control plane's level lapsed without renewal", "was", r.level, "valid_until", r.until, "now", l, "source", src)
	ls.changed(fmt.Sprintf("control plane level %v lapsed", r.level))
}

// close stops the lapse timer.
func (ls *levels) close() {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.closed = true
	if ls.timer != nil {
		ls.timer.Stop()
	}
}

// SetRemoteLevel implements RemoteLeveler.
func (n *Node) SetRemoteLevel(l level.Level, reason string, validUntil time.Time) error {
	if n.anycast == nil {
		return fmt.Errorf("set remote level: %w", ErrNoBGP)
	}
	return n.anycast.levels.setRemote(l, reason, validUntil)
}

// PinLevel implements admin.Leveler: the operator's level, over the
// control plane's, until UnpinLevel. It is kept in memory only: a restart
// forgets it.
func (n *Node) PinLevel(_ context.Context, l level.Level, reason string) error {
	if n.anycast == nil {
		return fmt.Errorf("pin level: %w: %w", ErrNoBGP, admin.ErrConflict)
	}
	return n.anycast.levels.setPin(l, reason)
}

// UnpinLevel implements admin.Leveler.
func (n *Node) UnpinLevel(context.Context) error {
	if n.anycast == nil {
		return fmt.Errorf("unpin level: %w: %w", ErrNoBGP, admin.ErrConflict)
	}
	n.anycast.levels.unpin()
	return nil
}

// levelStatus is the level in force, with the node's own reasons to
// announce nothing first.
func (a *anycast) levelStatus() admin.Level {
	a.mu.Lock()
	drained, stopping := a.drained, a.stopping
	a.mu.Unlock()
	pin, remote := a.levels.settings()
	l, src, why := a.levels.current()
	st := admin.Level{Level: l, Source: src, Reason: why, Pin: pin.admin(), Control: remote.admin()}
	switch {
	case stopping:
		st.Level, st.Source, st.Reason = level.Withdrawn, admin.SourceShutdown, "shutting down"
	case drained:
		st.Level, st.Source, st.Reason = level.Withdrawn, admin.SourceDrain, "operator drain"
	case !a.checker.Healthy():
		st.Level, st.Source, st.Reason = level.Withdrawn, admin.SourceHealth, "health check failing"
		var failing []string
		for _, c := range a.checker.Status().Checks {
			if !c.OK {
				failing = append(failing, c.Name)
			}
		}
		if len(failing) > 0 {
			st.Reason = fmt.Sprintf("health check failing: %v", failing)
		}
	}
	return st
}

var levelDesc = prometheus.NewDesc("anycastd_level",
	"The PoP level the node announces at: 0 normal, 1-3 shed-1..3, 4 withdrawn; source says why "+
		"(operator, control, default; health, drain, shutdown when the node withdraws for its own reasons).",
	[]string{"source"}, nil)

// levelCollector exposes the level in force at scrape time.
type levelCollector struct{ a *anycast }

func (c levelCollector) Describe(ch chan<- *prometheus.Desc) { ch <- levelDesc }

func (c levelCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.a.levelStatus()
	ch <- prometheus.MustNewConstMetric(levelDesc, prometheus.GaugeValue, float64(st.Level), st.Source)
}
