// Package health decides whether this node may announce its anycast
// prefixes. A node must withdraw the moment it cannot answer correctly and
// announce again only once it is stably healthy.
//
// # Rounds
//
// A Checker runs every Check concurrently once per Config.Interval (and at
// once on CheckNow). Each check gets a context that ends after
// Config.Timeout. A round passes only when every check passed: one failing
// check makes the whole node unhealthy, because a withdrawal removes every
// prefix. A check that has not returned shortly after its timeout counts as
// failed, and is not started again while it is still running.
//
// # State machine
//
// The state starts unhealthy. With rise and fall the configured thresholds:
//
//	unhealthy --(rise consecutive passing rounds)--> healthy
//	healthy   --(fall consecutive failing rounds)--> unhealthy
//
// A failing round resets the count of passes and a passing round the count
// of failures, so a single failure fewer than fall does not withdraw, and a
// single failure while rising starts the rise again. When Run returns the
// state becomes unhealthy: a checker that no longer checks vouches for
// nothing.
//
// # Flap damping
//
// Every change of state is remembered for Config.FlapWindow. While more than
// Config.MaxFlaps changes lie within the window, the rise threshold doubles
// for each change beyond MaxFlaps, up to Config.MaxRise. As changes age out
// of the window the threshold comes back down, to Config.Rise once the
// window is quiet. Damping only slows the way up; withdrawal always takes
// fall rounds.
//
// # Late but busy
//
// A check that has not returned in time counts as failed — unless the
// work it watches advanced (its own count if it is Patient, else
// Config.Progress: the DNS server handled packets) since the run started,
// or over the last Interval at least: then the process is busy, not
// hung, as under a flood that takes the CPU, and the check is late, not
// failing.
// A round with such a check and no failing one is held: it moves neither
// count, so a healthy node stays announced and an unhealthy one does not
// rise. A run late for more than Config.Patience fails all the same.
//
// Each change of state is sent on Changes; the node role turns true into
// announcing its prefixes and false into withdrawing them.
package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Check is one condition the node needs to serve.
type Check interface {
	// Name identifies the check in status, logs and metric labels; unique
	// within a Checker.
	Name() string
	// Check returns nil when the condition holds. ctx ends after the
	// checker's per-round timeout.
	Check(ctx context.Context) error
}

// Patient is a Check whose lateness is excused while the work it watches
// advances (package documentation, "Late but busy").
type Patient interface {
	Check
	// Progress counts the work the check watches; it must be cheap and
	// must not block.
	Progress() uint64
}

// Config of a Checker. Zero values take the defaults.
type Config struct {
	Interval time.Duration // between rounds; 0 = 500ms
	Timeout  time.Duration // of one round, <= Interval; 0 = 300ms (capped at Interval)
	Rise     int           // consecutive passing rounds to become healthy; 0 = 3
	Fall     int           // consecutive failing rounds to become unhealthy; 0 = 2

	// FlapWindow is how long a change of state counts as a flap; 0 = 1m,
	// negative disables damping.
	FlapWindow time.Duration
	// MaxFlaps is how many changes within FlapWindow are tolerated before
	// the rise threshold doubles for each further one; 0 = 4.
	MaxFlaps int
	// MaxRise caps the damped rise threshold; 0 = 16 × Rise.
	MaxRise int
	// Patience is how long a Patient check may stay late while its
	// progress count moves before it fails; 0 = 10 × Interval.
	Patience time.Duration
	// Progress, when set, is the progress count of the checks that are
	// not Patient (the process's work, e.g. the DNS packets handled): a
	// process starved of CPU is late with every check.
	Progress func() uint64
}

// Defaults.
const (
	DefaultInterval   = 500 * time.Millisecond
	DefaultTimeout    = 300 * time.Millisecond
	DefaultRise       = 3
	DefaultFall       = 2
	DefaultFlapWindow = time.Minute
	DefaultMaxFlaps   = 4
)

// ErrTimeout is the error of a check that did not return within the timeout
// (plus a short grace), or was still running from an earlier round.
var ErrTimeout = errors.New("check timed out")

// Status is a snapshot of the checker.
type Status struct {
	Healthy bool
	Since   time.Time // of the last change of state; zero before the first
	Running bool      // Run is checking
	// Passes and Fails count consecutive passing and failing rounds.
	Passes, Fails int
	Rise          int // rise threshold now, raised by flap damping
	Fall          int
	Flaps         int       // changes of state within the flap window
	LastRound     time.Time // start of the last completed round
	Held          uint64    // rounds held: a check late while busy, none failing
	Checks        []CheckStatus
}

// CheckStatus is the result of one check.
type CheckStatus struct {
	Name    string
	OK      bool
	Error   string        // of the last run; "" when it passed
	LastRun time.Time     // start of the last run; zero before the first
	Latency time.Duration // of the last run
	// Passes and Fails count consecutive passing and failing runs.
	Passes, Fails int
	// Busy: the last round found the check late while its progress
	// count moved (Patient); OK, Passes and Fails are those before.
	Busy bool
}

// Checker runs checks and keeps the debounced state.
type Checker struct {
	cfg     Config
	checks  []Check
	log     *slog.Logger
	changes chan bool
	now     chan struct{}
	busy    []chan struct{} // per check: holds a token while a run is in progress
	m       metrics
	// Per check, of the run in progress or last started (only Run's
	// goroutine uses them): when it started, and two marks of its
	// progress count (the older at least an Interval before the newer):
	// a late run is busy when the count moved since the older one.
	runStart []time.Time
	marks    [][2]mark
	// wasLate: the run that started at runStart had not returned when
	// its round ended; finished holds each check's last returned run,
	// so that the next round still counts a late run's failure.
	wasLate  []bool
	finished []atomic.Pointer[result]

	mu        sync.Mutex
	started   bool
	running   bool
	healthy   bool
	since     time.Time
	passes    int
	fails     int
	flaps     []time.Time // changes of state within the flap window, oldest first
	lastRound time.Time
	held      uint64
	st        []CheckStatus
}

// New validates cfg and the checks and returns a checker that is unhealthy
// until Run has seen Rise passing rounds.
func New(cfg Config, checks []Check, logger *slog.Logger) (*Checker, error) {
	cfg, err := cfg.withDefaults()
	if len(checks) == 0 {
		err = errors.Join(err, errors.New("no checks"))
	}
	seen := make(map[string]bool, len(checks))
	for i, c := range checks {
		switch {
		case c == nil:
			err = errors.Join(err, fmt.Errorf("check %d is nil", i))
		case c.Name() == "":
			err = errors.Join(err, fmt.Errorf("check %d has no name", i))
		case seen[c.Name()]:
			err = errors.Join(err, fmt.Errorf("check name %q used twice", c.Name()))
		default:
			seen[c.Name()] = true
		}
	}
	if err != nil {
		return nil, fmt.Errorf("health: %w", err)
	}
	c := &Checker{
		cfg:      cfg,
		checks:   append([]Check(nil), checks...),
		log:      logger.With("component", "health"),
		changes:  make(chan bool, 1),
		now:      make(chan struct{}, 1),
		busy:     make([]chan struct{}, len(checks)),
		runStart: make([]time.Time, len(checks)),
		marks:    make([][2]mark, len(checks)),
		wasLate:  make([]bool, len(checks)),
		finished: make([]atomic.Pointer[result], len(checks)),
		m:        newMetrics(),
		st:       make([]CheckStatus, len(checks)),
	}
	for i, ch := range c.checks {
		c.busy[i] = make(chan struct{}, 1)
		c.st[i].Name = ch.Name()
		c.m.seconds.WithLabelValues(ch.Name())
		c.m.failures.WithLabelValues(ch.Name())
		c.m.late.WithLabelValues(ch.Name())
	}
	c.m.rise.Set(float64(cfg.Rise))
	return c, nil
}

func (cfg Config) withDefaults() (Config, error) {
	var errs []error
	if cfg.Interval < 0 {
		errs = append(errs, fmt.Errorf("interval must not be negative, got %s", cfg.Interval))
	}
	if cfg.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout must not be negative, got %s", cfg.Timeout))
	}
	if cfg.Rise < 0 {
		errs = append(errs, fmt.Errorf("rise must not be negative, got %d", cfg.Rise))
	}
	if cfg.Fall < 0 {
		errs = append(errs, fmt.Errorf("fall must not be negative, got %d", cfg.Fall))
	}
	if cfg.MaxFlaps < 0 {
		errs = append(errs, fmt.Errorf("max flaps must not be negative, got %d", cfg.MaxFlaps))
	}
	if cfg.Patience < 0 {
		errs = append(errs, fmt.Errorf("patience must not be negative, got %s", cfg.Patience))
	}
	if cfg.MaxRise < 0 {
		errs = append(errs, fmt.Errorf("max rise must not be negative, got %d", cfg.MaxRise))
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = min(DefaultTimeout, cfg.Interval)
	}
	if cfg.Timeout > cfg.Interval && cfg.Interval > 0 {
		errs = append(errs, fmt.Errorf("timeout (%s) must not exceed interval (%s)", cfg.Timeout, cfg.Interval))
	}
	if cfg.Rise == 0 {
		cfg.Rise = DefaultRise
	}
	if cfg.Fall == 0 {
		cfg.Fall = DefaultFall
	}
	if cfg.FlapWindow == 0 {
		cfg.FlapWindow = DefaultFlapWindow
	}
	if cfg.MaxFlaps == 0 {
		cfg.MaxFlaps = DefaultMaxFlaps
	}
	if cfg.MaxRise == 0 {
		cfg.MaxRise = 16 * cfg.Rise
	}
	if cfg.Patience == 0 {
		cfg.Patience = 10 * cfg.Interval
	}
	if cfg.MaxRise < cfg.Rise && cfg.Rise > 0 {
		errs = append(errs, fmt.Errorf("max rise (%d) must be at least rise (%d)", cfg.MaxRise, cfg.Rise))
	}
	return cfg, errors.Join(errs...)
}

// Healthy reports the debounced state.
func (c *Checker) Healthy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.healthy
}

// Changes delivers the new state after each change. It keeps only the
// latest: a reader that falls behind gets the current state and may miss
// intermediate ones, which is what a reader that applies the state needs.
func (c *Checker) Changes() <-chan bool { return c.changes }

// CheckNow asks Run for a round at once (e.g. after an operator command).
// It does not block; requests made while one is pending are merged.
func (c *Checker) CheckNow() {
	select {
	case c.now <- struct{}{}:
	default:
	}
}

// Status returns a snapshot of the state and of every check.
func (c *Checker) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Status{
		Healthy:   c.healthy,
		Since:     c.since,
		Running:   c.running,
		Passes:    c.passes,
		Fails:     c.fails,
		Rise:      c.riseLocked(time.Now()),
		Fall:      c.cfg.Fall,
		Flaps:     len(c.flaps),
		LastRound: c.lastRound,
		Held:      c.held,
		Checks:    append([]CheckStatus(nil), c.st...),
	}
}

// Run checks every Interval until ctx is done, then turns unhealthy and
// returns nil. It may be called once.
func (c *Checker) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return errors.New("run health checker: already started")
	}
	c.started, c.running = true, true
	c.mu.Unlock()

	names := make([]string, len(c.checks))
	for i, ch := range c.checks {
		names[i] = ch.Name()
	}
	c.log.Info("health checker started", "checks", names, "interval", c.cfg.Interval,
		"timeout", c.cfg.Timeout, "rise", c.cfg.Rise, "fall", c.cfg.Fall)

	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		c.round(ctx)
		select {
		case <-ctx.Done():
			c.stop()
			c.wait()
			return nil
		case <-t.C:
		case <-c.now:
			t.Reset(c.cfg.Interval)
		}
	}
}

func (c *Checker) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.running = false
	if c.healthy {
		c.transitionLocked(false, time.Now(), "checker stopped")
	}
	c.log.Info("health checker stopped")
}

// wait gives checks still running up to Timeout to return, so that Run
// leaves no goroutines behind unless a check ignores its context.
func (c *Checker) wait() {
	t := time.NewTimer(c.cfg.Timeout)
	defer t.Stop()
	for _, b := range c.busy {
		select {
		case b <- struct{}{}:
		case <-t.C:
			c.log.Warn("checks still running after stop")
			return
		}
	}
}

type result struct {
	i       int
	err     error
	start   time.Time
	latency time.Duration
	skipped bool // not started: still running from an earlier round
	late    bool // no result in time (or skipped): err is a timeout
	busy    bool // late, but Patient and its progress moved: not a failure
}

// round runs every check once and applies the outcome. A round cut short by
// ctx is not counted.
func (c *Checker) round(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	res := make([]result, len(c.checks))
	carried := make([]error, len(c.checks)) // failures of late runs that returned since
	done := make(chan result, len(c.checks))
	pending := 0
	for i, ch := range c.checks {
		res[i] = result{i: i, start: start}
		select {
		case c.busy[i] <- struct{}{}:
		default:
			res[i].err = fmt.Errorf("%w: still running from an earlier round", ErrTimeout)
			res[i].skipped = true
			continue
		}
		pending++
		if c.wasLate[i] {
			if f := c.finished[i].Load(); f != nil && f.start.Equal(c.runStart[i]) && f.err != nil {
				carried[i] = fmt.Errorf("late run of %s: %w", c.runStart[i].Format(time.TimeOnly), f.err)
			}
			c.wasLate[i] = false
		}
		c.runStart[i] = start
		if p := c.progress(i); p != nil {
			m := mark{start, p()}
			c.marks[i] = [2]mark{m, m}
		}
		go func() {
			t0 := time.Now()
			err := ch.Check(rctx)
			r := result{i: i, err: err, start: start, latency: time.Since(t0)}
			c.finished[i].Store(&r)
			<-c.busy[i]
			r.start = t0
			done <- r
		}()
	}
	// Checks that honour ctx return right after the deadline with an error
	// that says what they were doing; give them a moment to do so.
	grace := time.NewTimer(c.cfg.Timeout + c.cfg.Timeout/10)
	defer grace.Stop()
	late := make([]bool, len(c.checks))
	for i := range late {
		late[i] = res[i].err == nil
	}
collect:
	for pending > 0 {
		select {
		case r := <-done:
			res[r.i], late[r.i] = r, false
			pending--
		case <-grace.C:
			break collect
		case <-ctx.Done():
			return
		}
	}
	for i, l := range late {
		if l {
			res[i].err = fmt.Errorf("%w: no result after %s", ErrTimeout, c.cfg.Timeout)
			res[i].latency = time.Since(start)
			res[i].late = true
		}
		if res[i].skipped {
			res[i].late = true
		}
		if res[i].late {
			c.wasLate[i] = true
			c.excuse(&res[i])
		}
		if carried[i] != nil && (res[i].err == nil || res[i].busy) {
			res[i].err, res[i].busy = carried[i], false
		}
	}
	if ctx.Err() != nil {
		return
	}
	c.apply(start, res)
}

// mark is a progress count at a time.
type mark struct {
	t time.Time
	n uint64
}

// progress returns the progress count of check i: its own (Patient), else
// Config.Progress; nil when it has none.
func (c *Checker) progress(i int) func() uint64 {
	if p, ok := c.checks[i].(Patient); ok {
		return p.Progress
	}
	return c.cfg.Progress
}

// excuse marks a late result busy when its check has a progress count
// that moved within the last Interval or more (since the run started, at
// first), and the run started less than Patience ago.
func (c *Checker) excuse(r *result) {
	p := c.progress(r.i)
	if p == nil {
		return
	}
	since := time.Since(c.runStart[r.i])
	now := mark{time.Now(), p()}
	m := &c.marks[r.i]
	moved := now.n > m[0].n
	if now.t.Sub(m[1].t) >= c.cfg.Interval {
		m[0], m[1] = m[1], now
	}
	if moved && since < c.cfg.Patience {
		r.busy = true
		return
	}
	if moved {
		r.err = fmt.Errorf("%w: late for %s although busy (patience %s)", ErrTimeout, since.Round(time.Millisecond), c.cfg.Patience)
	} else {
		r.err = fmt.Errorf("%w, and no progress since it started %s ago", r.err, since.Round(time.Millisecond))
	}
}

// apply records the results of one round and moves the state machine.
func (c *Checker) apply(start time.Time, res []result) {
	ok, held := true, false
	for _, r := range res {
		name := c.checks[r.i].Name()
		if !r.skipped {
			c.m.seconds.WithLabelValues(name).Observe(r.latency.Seconds())
		}
		switch {
		case r.busy:
			held = true
			c.m.late.WithLabelValues(name).Inc()
		case r.err != nil:
			ok = false
			c.m.failures.WithLabelValues(name).Inc()
		}
	}
	held = held && ok

	c.mu.Lock()
	defer c.mu.Unlock()
	var failing []string
	for _, r := range res {
		st := &c.st[r.i]
		wasOK, first, oldErr, oldFails, wasBusy := st.OK, st.LastRun.IsZero(), st.Error, st.Fails, st.Busy
		st.LastRun, st.Latency, st.Busy = r.start, r.latency, r.busy
		if r.busy {
			if !wasBusy {
				c.log.Warn("check late, but the server is busy: round held", "check", st.Name, "latency", r.latency)
			}
			continue
		}
		if r.err == nil {
			st.OK, st.Error = true, ""
			st.Passes++
			st.Fails = 0
			if !wasOK && !first {
				c.log.Info("check passes", "check", st.Name, "after_failures", oldFails, "latency", r.latency)
			}
			continue
		}
		st.OK, st.Error = false, r.err.Error()
		st.Fails++
		st.Passes = 0
		failing = append(failing, st.Name+": "+st.Error)
		if wasOK || first {
			c.log.Warn("check fails", "check", st.Name, "error", st.Error, "latency", r.latency)
		} else if st.Error != oldErr {
			c.log.Debug("check still fails", "check", st.Name, "error", st.Error, "failures", st.Fails)
		}
	}
	c.lastRound = start
	if held {
		c.held++
		c.m.held.Inc()
		return
	}
	if ok {
		c.passes++
		c.fails = 0
	} else {
		c.fails++
		c.passes = 0
	}
	now := time.Now()
	rise := c.riseLocked(now)
	c.m.rise.Set(float64(rise))
	switch {
	case !c.healthy && ok && c.passes >= rise:
		c.transitionLocked(true, now, fmt.Sprintf("%d consecutive passing rounds", c.passes))
	case c.healthy && !ok && c.fails >= c.cfg.Fall:
		c.transitionLocked(false, now, fmt.Sprintf("%d consecutive failing rounds: %v", c.fails, failing))
	}
}

// riseLocked returns the rise threshold at now after flap damping, and
// forgets changes that have left the window.
func (c *Checker) riseLocked(now time.Time) int {
	if c.cfg.FlapWindow < 0 {
		return c.cfg.Rise
	}
	i := 0
	for i < len(c.flaps) && now.Sub(c.flaps[i]) >= c.cfg.FlapWindow {
		i++
	}
	c.flaps = c.flaps[i:]
	rise := c.cfg.Rise
	for n := len(c.flaps) - c.cfg.MaxFlaps; n > 0 && rise < c.cfg.MaxRise; n-- {
		rise *= 2
	}
	return min(rise, c.cfg.MaxRise)
}

func (c *Checker) transitionLocked(healthy bool, now time.Time, reason string) {
	c.healthy, c.since = healthy, now
	if c.cfg.FlapWindow >= 0 {
		c.flaps = append(c.flaps, now)
	}
	c.m.transitions.Inc()
	if healthy {
		c.m.healthy.Set(1)
		c.log.Info("healthy", "reason", reason, "flaps", len(c.flaps))
	} else {
		c.m.healthy.Set(0)
		c.log.Warn("unhealthy", "reason", reason, "flaps", len(c.flaps))
	}
	// Latest wins: replace an unread value. Only the holder of c.mu sends,
	// so after the drain the send cannot block.
	select {
	case <-c.changes:
	default:
	}
	c.changes <- healthy
}

type metrics struct {
	healthy     prometheus.Gauge
	rise        prometheus.Gauge
	transitions prometheus.Counter
	held        prometheus.Counter
	seconds     *prometheus.HistogramVec
	failures    *prometheus.CounterVec
	late        *prometheus.CounterVec
}

func newMetrics() metrics {
	const ns, sub = "anycastd", "health"
	return metrics{
		healthy: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "healthy",
			Help: "1 while the node is healthy and may announce its prefixes."}),
		rise: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "rise_threshold",
			Help: "Passing rounds needed to become healthy, raised by flap damping."}),
		transitions: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "transitions_total",
			Help: "Changes between healthy and unhealthy."}),
		held: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "held_rounds_total",
			Help: "Rounds that moved neither count: a check was late while the server made progress (busy, e.g. flooded), none failed."}),
		late: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "check_late_busy_total",
			Help: "Check runs late while the server made progress: excused, not failures."}, []string{"check"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "check_seconds",
			Help:    "Duration of each check run.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}},
			[]string{"check"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "check_failures_total",
			Help: "Check runs that failed or timed out."}, []string{"check"}),
	}
}

// Collectors returns the checker's Prometheus collectors, for the caller to
// register: anycastd_health_healthy, anycastd_health_rise_threshold,
// anycastd_health_transitions_total, anycastd_health_held_rounds_total,
// anycastd_health_check_seconds{check},
// anycastd_health_check_failures_total{check} and
// anycastd_health_check_late_busy_total{check}.
func (c *Checker) Collectors() []prometheus.Collector {
	return []prometheus.Collector{c.m.healthy, c.m.rise, c.m.transitions, c.m.held, c.m.seconds, c.m.failures, c.m.late}
}
