package node

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/anycastdns/anycastdns/internal/announce"
	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/dnsserver"
	"github.com/anycastdns/anycastdns/internal/fleet/level"
	"github.com/anycastdns/anycastdns/internal/health"
)

// anycast ties health to routing: the prefixes are announced exactly while
// the node is healthy, not drained by an operator and not shutting down,
// at the level of levels (the operator's pin, else the control plane's
// level while valid, else normal; withdrawn announces nothing).
type anycast struct {
	log      *slog.Logger
	speaker  *announce.Speaker
	checker  *health.Checker
	prefixes []netip.Prefix
	levels   *levels

	mu        sync.Mutex
	drained   bool
	stopping  bool
	announced bool        // the prefixes are given to the speaker
	level     level.Level // as last given to the speaker
	setErrors prometheus.Counter
	flooded   prometheus.CounterFunc // the DNS check's runs passed as flooded
}

// dnsCheckZones bounds how many zones one health round queries; with more
// zones the check walks through them round by round, so a node with 10,000
// zones still finishes a round well inside its timeout.
const dnsCheckZones = 32

// sampler returns a function giving the next window of at most n names from
// all(), wrapping around.
func sampler(all func() []string, n int) func() []string {
	var mu sync.Mutex
	next := 0
	return func() []string {
		names := all()
		if len(names) <= n {
			return names
		}
		mu.Lock()
		defer mu.Unlock()
		out := make([]string, 0, n)
		for range n {
			out = append(out, names[next%len(names)])
			next++
		}
		next %= len(names)
		return out
	}
}

// servedOf returns the wanted zones that are loaded and not expired: the
// ones the DNS check may expect answers for. A zone not loaded yet (a new
// catalog member before its first transfer) is the zone check's business;
// asking for it would fail the DNS check on an answer that is right.
func servedOf(want func() []string, loaded func() map[string]health.ZoneState) func() []string {
	return func() []string {
		st := loaded()
		names := want()
		out := make([]string, 0, len(names))
		for _, name := range names {
			if z, ok := st[dns.CanonicalName(name)]; ok && !z.Expired {
				out = append(out, name)
			}
		}
		return out
	}
}

// expiredOf returns the wanted zones past their SOA expire (loaded, not
// unconfirmed): the ones the DNS check asks, expecting SERVFAIL, when no
// zone is served.
func expiredOf(want func() []string, loaded func() map[string]health.ZoneState) func() []string {
	return func() []string {
		st := loaded()
		names := want()
		var out []string
		for _, name := range names {
			if z, ok := st[dns.CanonicalName(name)]; ok && z.Expired && !z.Unconfirmed {
				out = append(out, name)
			}
		}
		return out
	}
}

// healthPaths are what the DNS check needs of the node's server besides its
// address: the handler to ask in process, and the counts that show it
// working on each transport (health.DNSCheck, docs/ddos.md).
type healthPaths struct {
	handler *dnsserver.Handler
	stats   *dnsserver.Stats
	src     netip.AddrPort // the source the in-process queries come from

	mu     sync.Mutex
	worker *dnsserver.Worker // made on first use; one query at a time
	asked  atomic.Uint64     // in-process queries, answered as TCP: not TCP progress
}

// direct answers req with the node's handler, in process: the queries of
// the health check that no flood can queue behind. It asks as TCP, which
// neither the per-source limit nor RRL applies to (both are for UDP).
func (p *healthPaths) direct(req *dns.Msg) (*dns.Msg, error) {
	wire, err := req.Pack()
	if err != nil {
		return nil, fmt.Errorf("pack the query: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.worker == nil {
		p.worker = p.handler.NewWorker()
	}
	p.asked.Add(1)
	resp, _ := p.worker.Handle(wire, p.src, dnsserver.TCP)
	if resp == nil {
		return nil, nil
	}
	m := new(dns.Msg)
	if err := m.Unpack(resp); err != nil {
		return nil, fmt.Errorf("unpack the answer: %w", err)
	}
	return m, nil
}

// udpProgress counts the UDP packets the server handled.
func (p *healthPaths) udpProgress() uint64 { return p.stats.UDPHandled() }

// tcpProgress counts what the server did over TCP: queries answered (not
// the in-process ones), connections evicted or refused, messages cut
// short.
func (p *healthPaths) tcpProgress() uint64 {
	q, _, _, _ := p.stats.Snapshot()
	var n uint64
	for _, c := range q {
		if c.Transport == dnsserver.TCP.String() {
			n += c.N
		}
	}
	n -= min(n, p.asked.Load())
	return n + p.stats.TCPEvicted.Load() + p.stats.TCPRefuse.Load() + p.stats.Malformed.Load()
}

// pressure counts the signs of a flood (health.DNSCheck.Pressure): what the
// kernel dropped for full socket queues in the node's namespace, and the
// TCP connections the server evicted or refused for its caps. A kernel
// without the counters adds nothing.
func (p *healthPaths) pressure() uint64 {
	n, err := health.KernelPressure()
	if err != nil {
		n = 0
	}
	return n + p.stats.TCPEvicted.Load() + p.stats.TCPRefuse.Load()
}

// newAnycast builds the speaker and the checker of a node with BGP.
// want lists the zones the node must serve, loaded their state.
func newAnycast(cfg *config.Node, want func() []string, loaded func() map[string]health.ZoneState, paths *healthPaths, logger *slog.Logger) (*anycast, error) {
	sp, err := announce.New(speakerConfig(cfg.BGP), logger)
	if err != nil {
		return nil, fmt.Errorf("bgp: %w", err)
	}
	dc := &health.DNSCheck{Addr: cfg.Health.QueryAddr, Zones: sampler(servedOf(want, loaded), dnsCheckZones),
		Expired: sampler(expiredOf(want, loaded), dnsCheckZones),
		Direct:  paths.direct, UDPProgress: paths.udpProgress, TCPProgress: paths.tcpProgress, Pressure: paths.pressure,
		TCPAcceptQueue: func() (int, error) { return health.AcceptQueue(cfg.Health.QueryAddr) }}
	checks := []health.Check{&health.ZoneCheck{Want: want, Loaded: loaded}, dc}
	if cfg.Health.MaintenanceFile != "" {
		checks = append(checks, &health.FileCheck{Path: cfg.Health.MaintenanceFile})
	}
	hcfg := healthConfig(cfg.Health)
	// Starved of CPU by a flood, the process is late with every check:
	// while the server works, that holds the round (health, "Late but
	// busy").
	hcfg.Progress = func() uint64 { return paths.udpProgress() + paths.tcpProgress() }
	hc, err := health.New(hcfg, checks, logger)
	if err != nil {
		return nil, fmt.Errorf("health: %w", err)
	}
	a := &anycast{
		log: logger.With("component", "anycast"), speaker: sp, checker: hc, prefixes: prefixes(cfg.BGP),
		setErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "anycastd", Name: "announce_errors_total",
			Help: "Failed attempts to change what is announced.",
		}),
		flooded: prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "anycastd", Subsystem: "health", Name: "flooded_total",
			Help: "DNS check runs that passed as flooded: queries over a transport went unanswered while the server's count for it moved (docs/ddos.md).",
		}, func() float64 { return float64(dc.Flooded.Load()) }),
	}
	a.levels = newLevels(a.log, a.apply)
	return a, nil
}

// apply converges the announcement to the wanted state: the prefixes
// while healthy, not drained and not stopping, at the level of a.levels.
func (a *anycast) apply(reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	want := a.checker.Healthy() && !a.drained && !a.stopping
	lvl, source, why := a.levels.current()
	if want == a.announced && lvl == a.level {
		return
	}
	// Withdrawing: first, so no announcement goes out at a new level
	// just before. Announcing: after the level, so the first UPDATE
	// carries its attributes. Between two announced levels the speaker
	// replaces the routes in place.
	if !want && a.announced && !a.set(false, reason) {
		return
	}
	if lvl != a.level {
		if err := a.speaker.SetLevel(lvl); err != nil {
			a.setErrors.Inc()
			a.log.Error("changing the level failed", "level", lvl, "err", err)
			return
		}
		log := a.log.Info
		if lvl == level.Withdrawn {
			log = a.log.Warn
		}
		log("level", "level", lvl, "was", a.level, "source", source, "why", why, "announcing", want, "reason", reason)
		a.level = lvl
	}
	if want && !a.announced {
		a.set(true, reason)
	}
}

// set gives the speaker the prefixes (or none) and logs it; a.mu is held.
func (a *anycast) set(want bool, reason string) bool {
	var err error
	if want {
		err = a.speaker.Set(a.prefixes)
	} else {
		err = a.speaker.Set(nil)
	}
	if err != nil {
		a.setErrors.Inc()
		a.log.Error("changing announcements failed", "announce", want, "err", err)
		return false
	}
	a.announced = want
	switch {
	case want && a.level == level.Withdrawn:
		a.log.Warn("healthy, but the level is withdrawn: announcing nothing", "prefixes", fmt.Sprint(a.prefixes), "reason", reason)
	case want:
		a.log.Info("announcing", "prefixes", fmt.Sprint(a.prefixes), "level", a.level, "reason", reason)
	default:
		a.log.Warn("withdrawn", "prefixes", fmt.Sprint(a.prefixes), "reason", reason)
	}
	return true
}

// follow turns health transitions into announcements until ctx is done.
func (a *anycast) follow(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case healthy := <-a.checker.Changes():
			reason := "health check failed"
			if healthy {
				reason = "healthy"
			}
			a.apply(reason)
		}
	}
}

func (a *anycast) setDrained(d bool) {
	a.mu.Lock()
	a.drained = d
	a.mu.Unlock()
	reason := "operator undrain"
	if d {
		reason = "operator drain"
	}
	a.apply(reason)
}

// withdraw is the first step of shutdown.
func (a *anycast) withdraw() {
	a.mu.Lock()
	a.stopping = true
	a.mu.Unlock()
	a.apply("shutting down")
}

func (a *anycast) state() (drained, announced bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.drained, a.announced
}
