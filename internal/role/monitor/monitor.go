// Package monitor is the "anycastd monitor" role: one vantage point that
// probes every PoP through the PoP's own unicast address and keeps what it
// sees — per PoP up or down, RTT quantiles, the node's load — to serve it
// as JSON (GET /v1/view), Prometheus metrics (/metrics) and probes
// (/healthz, /readyz) on its HTTP listener.
//
// Each interval, every PoP gets three probes at once, each bounded by
// timeout: the SOA of the canary zone over UDP and over TCP (package
// probe), and GET /v1/load from the node. A round passes when both DNS
// probes pass; the load does not count. A PoP starts "unknown", is "up"
// after rise passing rounds in a row and "down" after fall failing ones;
// in between it keeps its state. RTT p50 and p95 are over the passing
// probes of the last window.
//
// Reload (SIGHUP, a value on Run's reload channel) re-reads the
// configuration; one that fails to load is logged with its file:line and
// changes nothing. A valid one applies at the next round: PoPs kept
// (same name and DNS address) keep their state and samples, new ones start
// unknown, removed ones are forgotten. A changed listen address is logged
// as needing a restart. SIGTERM ends the current round and stops the
// listener.
//
// With a report section, each round's view is also sent to the control
// plane (POST /v1/fleet/observations, report.go), which decides the PoPs'
// levels from the reports of every vantage point; the report never delays
// the probes.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/anycastdns/anycastdns/internal/admin"
	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/fleet"
	"github.com/anycastdns/anycastdns/internal/httpprobe"
	"github.com/anycastdns/anycastdns/internal/metrics"
	"github.com/anycastdns/anycastdns/internal/probe"
	"github.com/anycastdns/anycastdns/internal/version"
)

// Prober runs the probes of one PoP; the monitor's is the network's, tests
// give their own.
type Prober interface {
	// DNS asks addr for the SOA of zone over network ("udp" or "tcp").
	DNS(ctx context.Context, addr netip.AddrPort, network, zone string) probe.Result
	// Load reads GET /v1/load from the node at base (a URL).
	Load(ctx context.Context, base string) (admin.Load, error)
}

// netProber is the Prober of the network.
type netProber struct{ hc *http.Client }

func (p netProber) DNS(ctx context.Context, addr netip.AddrPort, network, zone string) probe.Result {
	return probe.DNS{Addr: addr.String(), Net: network, Zone: zone}.Probe(ctx)
}

func (p netProber) Load(ctx context.Context, base string) (admin.Load, error) {
	return admin.NewClient(base, p.hc).Load(ctx)
}

// Monitor is a running monitor.
type Monitor struct {
	log    *slog.Logger // component=monitor
	root   *slog.Logger
	load   func() (*config.Monitor, error) // nil: reload has nothing to re-read
	level  *slog.LevelVar
	prober Prober
	reg    *prometheus.Registry
	reload *prometheus.CounterVec
	rep    *reporter  // sends the reports (config report), report.go
	eps    *endpoints // the pools' endpoint checks, endpoints.go

	ready    chan struct{} // closed after the first round
	stopping atomic.Bool
	addr     atomic.Pointer[netip.AddrPort]

	mu   sync.Mutex
	cfg  *config.Monitor
	pops []*popState // in the configuration's order
}

// Option configures New.
type Option func(*Monitor)

// WithReload makes a reload call load for the new configuration.
func WithReload(load func() (*config.Monitor, error)) Option {
	return func(m *Monitor) { m.load = load }
}

// WithLogLevel makes a reload set level to the new log.level.
func WithLogLevel(level *slog.LevelVar) Option { return func(m *Monitor) { m.level = level } }

// WithProber replaces the network's probes (tests).
func WithProber(p Prober) Option { return func(m *Monitor) { m.prober = p } }

// New prepares a monitor from a configuration, which it validates.
func New(cfg *config.Monitor, logger *slog.Logger, opts ...Option) (*Monitor, error) {
	if cfg == nil {
		return nil, errors.New("monitor: no configuration")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m := &Monitor{
		log: logger.With("component", "monitor"), root: logger, ready: make(chan struct{}),
		// Keep-alives: a round reads every node's load each interval.
		prober: netProber{hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute}}},
		reg:    prometheus.NewRegistry(),
		reload: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "anycastd", Name: "reloads_total", Help: "Configuration reloads by result (ok, config_error).",
		}, []string{"result"}),
	}
	for _, o := range opts {
		o(m)
	}
	m.rep = newReporter(m)
	m.eps = newEndpoints(m)
	m.apply(cfg)
	m.reg.MustRegister(m.reload, m.rep.results, metrics.BuildInfo(version.Get()),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&viewCollector{m})
	return m, nil
}

// Ready is closed once the first round is done.
func (m *Monitor) Ready() <-chan struct{} { return m.ready }

// Addr is the bound HTTP address, zero before Run binds it.
func (m *Monitor) Addr() netip.AddrPort {
	if a := m.addr.Load(); a != nil {
		return *a
	}
	return netip.AddrPort{}
}

// Readiness is /readyz: ready once every PoP was probed once, until the
// shutdown starts.
func (m *Monitor) Readiness() error {
	select {
	case <-m.ready:
	default:
		return errors.New("the first probe round is not done")
	}
	if m.stopping.Load() {
		return errors.New("shutting down")
	}
	return nil
}

// Handler serves /v1/view, /metrics, /healthz and /readyz.
func (m *Monitor) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET "+PathView, http.HandlerFunc(m.serveView))
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg}))
	return httpprobe.Wrap(mux, m.Readiness)
}

// Run binds the listener, probes every interval and serves until ctx is
// done. Each value on reload triggers a reload (nil: none).
func (m *Monitor) Run(ctx context.Context, reload <-chan struct{}) error {
	m.mu.Lock()
	listen := m.cfg.Listen
	m.mu.Unlock()
	ln, err := net.Listen("tcp", listen.String())
	if err != nil {
		return fmt.Errorf("monitor: listen: %w", err)
	}
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil {
		m.addr.Store(&ap)
	}
	srv := &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(m.log.Handler(), slog.LevelWarn)}
	httpDone := make(chan error, 1)
	go func() { httpDone <- srv.Serve(ln) }()
	m.log.Info("monitor listening", "addr", ln.Addr().String(), "vantage", m.config().Vantage, "pops", len(m.config().PoPs))

	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	loopDone := make(chan struct{})
	go func() { defer close(loopDone); m.loop(loopCtx, reload) }()
	repDone := make(chan struct{})
	go func() { defer close(repDone); m.rep.run(loopCtx) }()
	epsDone := make(chan struct{})
	go func() { defer close(epsDone); m.eps.run(loopCtx) }()

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-httpDone:
		runErr = fmt.Errorf("monitor: http: %w", err)
		httpDone <- nil
	}
	m.stopping.Store(true)
	m.log.Info("shutting down")
	stopLoop()
	<-loopDone
	<-repDone
	<-epsDone
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := <-httpDone; err != nil && !errors.Is(err, http.ErrServerClosed) && runErr == nil {
		runErr = fmt.Errorf("monitor: http: %w", err)
	}
	m.log.Info("stopped")
	return runErr
}

// loop runs a round at once and then every interval until ctx is done,
// and reloads on each value of reload.
func (m *Monitor) loop(ctx context.Context, reload <-chan struct{}) {
	interval := m.config().Interval
	t := time.NewTicker(interval)
	defer t.Stop()
	m.round(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-reload:
			m.Reload()
			if iv := m.config().Interval; iv != interval {
				interval = iv
				t.Reset(iv)
			}
		case <-t.C:
			m.round(ctx)
		}
	}
}

func (m *Monitor) config() *config.Monitor {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg
}

// round probes every PoP at once and records the results.
func (m *Monitor) round(ctx context.Context) {
	m.mu.Lock()
	cfg, pops := m.cfg, slices.Clone(m.pops)
	m.mu.Unlock()
	rctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	results := make([]roundResult, len(pops))
	var wg sync.WaitGroup
	for i, p := range pops {
		r := &results[i]
		wg.Go(func() { r.udp = m.prober.DNS(rctx, p.cfg.DNS, "udp", cfg.CanaryZone) })
		wg.Go(func() { r.tcp = m.prober.DNS(rctx, p.cfg.DNS, "tcp", cfg.CanaryZone) })
		if p.cfg.Load != "" {
			wg.Go(func() { r.load, r.loadErr = m.prober.Load(rctx, p.cfg.Load) })
		}
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // cut short by the shutdown: not the PoPs' fault
	}
	now := time.Now()
	m.mu.Lock()
	for i, p := range pops {
		if change := p.record(now, results[i], cfg); change != "" {
			m.log.Info("pop "+change, "pop", p.cfg.Name, "udp_error", errString(results[i].udp.Err), "tcp_error", errString(results[i].tcp.Err))
		}
	}
	var rep *fleet.Report
	if m.cfg.Report != nil {
		r := m.reportLocked(now)
		rep = &r
	}
	m.mu.Unlock()
	if rep != nil {
		m.rep.offer(*rep) // never waits for the control plane
	}
	select {
	case <-m.ready:
	default:
		close(m.ready)
	}
}

// reportNow sends a report of what the monitor sees now (an endpoint
// changed state), without waiting for the next round.
func (m *Monitor) reportNow() {
	m.mu.Lock()
	if m.cfg.Report == nil {
		m.mu.Unlock()
		return
	}
	rep := m.reportLocked(time.Now())
	m.mu.Unlock()
	m.rep.offer(rep)
}

// Reload re-reads the configuration; one that fails to load keeps the
// running one.
func (m *Monitor) Reload() {
	if m.load == nil {
		m.log.Info("reload: no configuration to re-read")
		return
	}
	nc, err := m.load()
	if err != nil {
		m.log.Error("reload: configuration rejected, keeping the running one", "err", err)
		m.reload.WithLabelValues("config_error").Inc()
		return
	}
	old := m.config()
	var restart []string
	if nc.Listen != old.Listen {
		restart = append(restart, "listen")
	}
	if nc.Log.Format != old.Log.Format {
		restart = append(restart, "log.format")
	}
	if len(restart) > 0 {
		m.log.Warn("reload: these settings changed but apply only after a restart", "settings", strings.Join(restart, ","))
	}
	if m.level != nil {
		m.level.Set(nc.Log.Level)
	}
	m.apply(nc)
	m.reload.WithLabelValues("ok").Inc()
	m.log.Info("reloaded", "pops", len(nc.PoPs), "interval", nc.Interval)
}

// apply makes cfg the configuration in force, keeping the state of the
// PoPs whose name and DNS address are unchanged. The listen address stays.
func (m *Monitor) apply(cfg *config.Monitor) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cfg != nil {
		c := *cfg
		c.Listen = m.cfg.Listen
		cfg = &c
	}
	byName := map[string]*popState{}
	for _, p := range m.pops {
		byName[p.cfg.Name] = p
	}
	pops := make([]*popState, 0, len(cfg.PoPs))
	for _, pc := range cfg.PoPs {
		if p, ok := byName[pc.Name]; ok && p.cfg.DNS == pc.DNS {
			p.cfg = pc
			pops = append(pops, p)
			continue
		}
		pops = append(pops, &popState{cfg: pc, state: StateUnknown})
	}
	m.cfg, m.pops = cfg, pops
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
