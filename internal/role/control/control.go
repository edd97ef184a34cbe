// Package control wires the control plane: the zone store, its REST API and
// the transfer server (AXFR/IXFR, NOTIFY, catalog zone) of package xfrout,
// which also takes DNS UPDATE (package update) when xfr.update is set.
//
// Start-up order: create the data directory → open the store, which loads
// every zone into memory → bind the API listener, the metrics listener and
// the transfer listeners, then the stream listeners with the fleet
// (stream.go; any failure closes what was opened and aborts) → ready.
//
// Reload (SIGHUP, a value on Run's reload channel) re-reads the
// configuration the way the node does: one that fails to load or validate
// is logged with its file:line and changes nothing; a valid one replaces,
// at once, the API tokens and body limit, the transfer keys, ACL and
// NOTIFY targets, the UPDATE sources and policy (xfr.update) and the log
// level. Settings that need their listener or
// the store re-created (data_dir, api.listen, xfr.listen, xfr.catalog,
// metrics.listen, serial_policy, journal_limit, log.format, stream.*,
// levels) are logged as needing a restart and keep their running values.
//
// Shutdown order, when the context ends: reloads stop → /readyz turns
// 503 → the API and metrics listeners stop accepting requests and wait up
// to api.ShutdownTimeout for those in progress, so a write that started is
// committed and answered (no more monitor reports) → the PoP-level
// decisions stop (levels; the nodes keep their last level for
// levels.validity, then return to normal) → every node's stream is told
// the control plane stops and closed (the nodes keep serving and reconnect) → the transfer
// server stops → the store closes (after the write in progress, if any) →
// Run returns. If a part fails (the transfer server, a listener), the others
// stop the same way and Run returns every part's error. The parts run under
// one lifecycle.Runner. A write that was acknowledged has been fsynced
// before its answer was sent, so a crash at any point loses only writes that
// were never acknowledged.
package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/httpprobe"
	"github.com/anycastdns/anycastdns/internal/lifecycle"
	"github.com/anycastdns/anycastdns/internal/listen"
	"github.com/anycastdns/anycastdns/internal/metrics"
	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/update"
	"github.com/anycastdns/anycastdns/internal/xfrout"
)

// DBFile is the name of the zone database in the data directory.
const DBFile = "zones.db"

// Control is a control plane process.
type Control struct {
	log     *slog.Logger // as given to New: the parts name their own component
	clog    *slog.Logger // component=control
	ready   chan struct{}
	load    func() (*config.Control, error) // nil: reload has nothing to re-read
	level   *slog.LevelVar                  // nil: the level stays
	metrics *metrics.Control

	// listener, when set before Run (by tests), is used instead of
	// binding api.listen.
	listener net.Listener

	api      apiSwitch         // the API handler of the current configuration
	stopping atomic.Bool       // the shutdown has started
	reloadMu sync.Mutex        // one reload at a time
	runner   *lifecycle.Runner // of Run

	mu          sync.Mutex
	cfg         *config.Control // the configuration in force
	store       *store.Store
	addr        netip.AddrPort
	metricsAddr netip.AddrPort
	xfr         *xfrout.Server      // nil without a transfer server
	xfrCert     *listen.Certificate // of xfr.tls, re-read on reload; nil without it
	xfrAddrs    []netip.AddrPort
	stream      *streamPart // nil without a stream listener (stream.go)
	// signingWake wakes the signing task after an API signing change.
	signingWake signingWake
}

// Option configures New.
type Option func(*Control)

// WithReload makes a reload call load for the new configuration, such as
// config.LoadControl of the file the control plane was started with.
func WithReload(load func() (*config.Control, error)) Option {
	return func(c *Control) { c.load = load }
}

// WithLogLevel makes a reload set level to the new configuration's
// log.level.
func WithLogLevel(level *slog.LevelVar) Option {
	return func(c *Control) { c.level = level }
}

// XfrAddrs returns the bound transfer addresses, once ready.
func (c *Control) XfrAddrs() []netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]netip.AddrPort(nil), c.xfrAddrs...)
}

// New prepares a control plane from a configuration, which it validates.
// Nothing is opened until Run.
func New(cfg *config.Control, logger *slog.Logger, opts ...Option) (*Control, error) {
	if cfg == nil {
		return nil, errors.New("control: no configuration")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if _, err := signingPolicies(cfg); err != nil {
		return nil, fmt.Errorf("control: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c := &Control{cfg: cfg, log: logger, clog: logger.With("component", "control"), ready: make(chan struct{}),
		metrics: metrics.NewControl(), signingWake: make(signingWake, 1)}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Ready is closed once the store is open and the API listens.
func (c *Control) Ready() <-chan struct{} { return c.ready }

// Readiness is the /readyz of the control plane's HTTP listeners: ready
// from the moment the store is open and every listener is up until the
// shutdown starts.
func (c *Control) Readiness() error {
	select {
	case <-c.ready:
	default:
		return errors.New("opening the store and binding the listeners")
	}
	if c.stopping.Load() {
		return errors.New("shutting down")
	}
	return nil
}

// Store returns the open store, nil before Ready.
func (c *Control) Store() *store.Store {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.store
}

// APIAddr returns the address the API listens on, zero before Ready.
func (c *Control) APIAddr() netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addr
}

// MetricsAddr returns the address the metrics endpoint listens on, zero
// before Ready or without one.
func (c *Control) MetricsAddr() netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.metricsAddr
}

// XfrCollectors returns the transfer server's Prometheus collectors once
// ready, for a process that serves them on a registry of its own
// (standalone); nil without a transfer server.
func (c *Control) XfrCollectors() []prometheus.Collector {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.xfr == nil {
		return nil
	}
	return c.xfr.Collectors()
}

// apiSwitch serves the API handler of the configuration in force.
type apiSwitch struct{ h atomic.Pointer[http.Handler] }

func (s *apiSwitch) ServeHTTP(w http.ResponseWriter, r *http.Request) { (*s.h.Load()).ServeHTTP(w, r) }

func (s *apiSwitch) set(h http.Handler) { s.h.Store(&h) }

// apiHandler is the API of cfg over s.
func (c *Control) apiHandler(s *store.Store, cfg *config.Control) http.Handler {
	ac := apiConfig(cfg)
	ac.Fleet = c.apiFleet()
	return api.Handler(backend{s: s, wake: c.signingWake}, ac, c.log)
}

// Run starts the control plane and serves until ctx is done, then shuts
// down in the order the package documents. Each value received on reload
// triggers a reload (nil: none).
func (c *Control) Run(ctx context.Context, reload <-chan struct{}) error {
	start := time.Now()
	log := c.clog
	c.mu.Lock()
	cfg := c.cfg
	c.mu.Unlock()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("control: data directory: %w", err)
	}
	opts, sealer, err := storeOptions(cfg)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	defer func() { _ = sealer.Close() }() // after the store: the PKCS#11 token
	s, err := openStore(ctx, cfg, c.log, opts...)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	// closeAll closes what was opened when the start-up fails.
	var opened []interface{ Close() error }
	closeAll := func(err error) error {
		for _, o := range slices.Backward(opened) {
			_ = o.Close()
		}
		return errors.Join(err, s.Close())
	}
	ln := c.listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.API.Listen.String()); err != nil {
			return closeAll(fmt.Errorf("control: api: %w", err))
		}
	}
	opened = append(opened, ln)
	addr, err := netip.ParseAddrPort(ln.Addr().String())
	if err != nil {
		return closeAll(fmt.Errorf("control: api: %w", err))
	}
	if !addr.Addr().IsLoopback() {
		log.Warn("the API speaks plain HTTP on a non-loopback address: tokens cross the network in the clear unless a TLS proxy fronts it",
			"addr", addr.String())
	}
	var metricsLn net.Listener
	if cfg.Metrics.Listen.IsValid() {
		if metricsLn, err = net.Listen("tcp", cfg.Metrics.Listen.String()); err != nil {
			return closeAll(fmt.Errorf("control: metrics: %w", err))
		}
		opened = append(opened, metricsLn)
	}
	c.mu.Lock()
	c.store, c.addr = s, addr
	if metricsLn != nil {
		c.metricsAddr, _ = netip.ParseAddrPort(metricsLn.Addr().String())
	}
	c.mu.Unlock()
	c.api.set(c.apiHandler(s, cfg))

	r := lifecycle.New(log)
	var xfr *xfrout.Server
	if hasXfr(cfg) {
		cert, err := xfrCertificate(cfg)
		if err != nil {
			return closeAll(fmt.Errorf("control: xfr: %w", err))
		}
		c.mu.Lock()
		c.xfrCert = cert
		c.mu.Unlock()
		xc, err := c.xfrSettings(cfg, s, cert)
		if err != nil {
			return closeAll(fmt.Errorf("control: %w", err))
		}
		if xfr, err = xfrout.New(xc, s, c.log); err != nil {
			return closeAll(fmt.Errorf("control: xfr: %w", err))
		}
		c.metrics.Registry.MustRegister(xfr.Collectors()...)
		r.Add("xfr", xfr)
		if cfg.Stream.Enabled() {
			sp, err := openStream(cfg, xfr, c.log)
			if err != nil {
				return closeAll(fmt.Errorf("control: %w", err))
			}
			opened = append(opened, closer(sp.close))
			c.mu.Lock()
			c.stream = sp
			c.mu.Unlock()
			c.metrics.Registry.MustRegister(sp.reg.Collector())
			c.metrics.Registry.MustRegister(sp.srv.Collectors()...)
			c.api.set(c.apiHandler(s, cfg)) // with the fleet
			r.Add("stream", lifecycle.Func(func(ctx context.Context) error {
				sp.run(ctx, c.Readiness, c.log)
				return nil
			}))
			if sp.reg.Levels() {
				r.Add("levels", lifecycle.Func(sp.reg.RunLevels))
			}
			r.Add("steering", lifecycle.Func(sp.reg.RunSteering))
		}
	}
	r.Add("signing", lifecycle.Func(func(ctx context.Context) error {
		return runSigning(ctx, s, cfg.Signing.ParentServers, c.signingWake, c.log)
	}))
	r.Add("api", lifecycle.Func(func(ctx context.Context) error {
		return api.Serve(ctx, ln, httpprobe.Wrap(&c.api, c.Readiness), c.log)
	}))
	stopHTTP := lifecycle.Stop("api")
	if metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", c.metrics.Handler())
		h := httpprobe.Wrap(mux, c.Readiness)
		r.Add("metrics", lifecycle.Func(func(ctx context.Context) error { return metrics.Serve(ctx, metricsLn, h, c.log) }))
		stopHTTP = lifecycle.Stop("api", "metrics")
	}
	r.Add("reload", lifecycle.Func(func(ctx context.Context) error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-reload:
				c.Reload(ctx)
			}
		}
	}))
	stages := []lifecycle.Stage{
		lifecycle.Stop("reload"),
		lifecycle.Do("not ready", func(error) {
			c.stopping.Store(true)
			log.Info("shutting down")
		}),
		stopHTTP,
		lifecycle.Stop("signing"), // after the last API write; the store closes after it
	}
	if c.stream != nil {
		if c.stream.reg.Levels() {
			// No decision after the reports stopped coming; the nodes
			// keep the last level for levels.validity, then normal.
			stages = append(stages, lifecycle.Stop("levels"))
		}
		// The steering state stays with the nodes as it was last sent.
		stages = append(stages, lifecycle.Stop("steering"), lifecycle.Stop("stream")) // every node's stream is told; they keep serving and reconnect
	}
	if xfr != nil {
		stages = append(stages, lifecycle.Stop("xfr"))
	}
	r.StopOrder(stages...)
	c.runner = r
	runErr := r.Run(ctx, func() {
		c.mu.Lock()
		if xfr != nil {
			c.xfr, c.xfrAddrs = xfr, xfr.Addrs()
		}
		c.mu.Unlock()
		close(c.ready)
		metricsAt := "off"
		if a := c.MetricsAddr(); a.IsValid() {
			metricsAt = a.String()
		}
		log.Info("control plane ready", "api", addr.String(), "xfr", fmt.Sprint(c.XfrAddrs()), "metrics", metricsAt,
			"data_dir", cfg.DataDir, "startup", time.Since(start).Round(time.Millisecond))
	})
	if runErr != nil {
		runErr = fmt.Errorf("control: %w", runErr)
	}
	for _, o := range opened {
		_ = o.Close() // a listener whose part never started (closing twice is harmless)
	}
	if err := s.Close(); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("control: %w", err))
	}
	log.Info("stopped")
	return runErr
}

// Reload re-reads the configuration and applies it as the package
// documents; one that fails to load keeps the running one. It does
// nothing before Ready.
func (c *Control) Reload(ctx context.Context) {
	c.reloadMu.Lock()
	defer c.reloadMu.Unlock()
	log := c.clog
	select {
	case <-c.ready:
	default:
		log.Warn("reload: the control plane is still starting; ignored")
		return
	}
	if c.load == nil {
		log.Info("reload: no configuration to re-read")
		return
	}
	nc, err := c.load()
	if err != nil {
		log.Error("reload: configuration rejected, keeping the running one", "err", err)
		c.metrics.Reloads.WithLabelValues("config_error").Inc()
		return
	}
	if _, err := signingPolicies(nc); err != nil {
		log.Error("reload: configuration rejected, keeping the running one", "err", err)
		c.metrics.Reloads.WithLabelValues("config_error").Inc()
		return
	}
	c.mu.Lock()
	old, s, srv, sp, cert := c.cfg, c.store, c.xfr, c.stream, c.xfrCert
	c.mu.Unlock()
	restart := restartOnly(old, nc)
	if srv != nil && hasXfr(nc) {
		xc, err := c.xfrSettings(nc, s, cert)
		if err == nil {
			err = srv.Reconfigure(ctx, xc)
		}
		if err != nil {
			log.Error("reload: transfer settings rejected, keeping the running configuration", "err", err)
			c.metrics.Reloads.WithLabelValues("config_error").Inc()
			return
		}
	}
	if cert != nil {
		// A renewed certificate in the same files reaches the next
		// handshake; transfers under way keep theirs.
		if err := cert.Reload(); err != nil {
			log.Error("reload: the xfr.tls certificate did not load; the old one stays", "err", err)
		} else {
			log.Info("reload: xfr.tls certificate re-read", "subject", cert.Leaf().Subject.String(),
				"serial", cert.Leaf().SerialNumber.String(), "not_after", cert.Leaf().NotAfter)
		}
	}
	if sp != nil {
		sp.srv.SetKeys(streamKeys(nc)) // streams already open stay
	}
	c.api.set(c.apiHandler(s, nc))
	if c.level != nil {
		c.level.Set(nc.Log.Level)
	}
	c.mu.Lock()
	c.cfg = nc
	c.mu.Unlock()
	if len(restart) > 0 {
		log.Warn("reload: these settings changed but apply only after a restart", "settings", strings.Join(restart, ","))
	}
	c.metrics.Reloads.WithLabelValues("ok").Inc()
	log.Info("reloaded", "tokens", len(nc.API.Tokens), "allow_transfer", len(nc.Xfr.AllowTransfer),
		"notify_targets", len(nc.Xfr.Notify), "tsig_keys", len(nc.Xfr.TSIGKeys), "log_level", nc.Log.Level.String())
}

// xfrSettings is the transfer server's configuration of cfg with, when
// xfr.update is set, the UPDATE processing of its policy over s.
func (c *Control) xfrSettings(cfg *config.Control, s *store.Store, cert *listen.Certificate) (xfrout.Config, error) {
	xc := xfrConfig(cfg, cert)
	if cfg.Xfr.Update == nil {
		return xc, nil
	}
	u, err := update.New(s, updateRules(cfg), c.log)
	if err != nil {
		return xc, fmt.Errorf("xfr.update: %w", err)
	}
	xc.Update = func(ctx context.Context, m *dns.Msg, key string, src netip.AddrPort) int {
		return u.Apply(ctx, m, key, src).Rcode
	}
	return xc, nil
}

// restartOnly lists the settings of c that differ from old and that a
// reload cannot apply.
func restartOnly(old, c *config.Control) []string {
	var changed []string
	for _, f := range []struct {
		name string
		same bool
	}{
		{"data_dir", c.DataDir == old.DataDir},
		{"api.listen", c.API.Listen == old.API.Listen},
		{"xfr.listen", slices.Equal(c.Xfr.Listen, old.Xfr.Listen)},
		{"xfr.catalog", reflect.DeepEqual(c.Xfr.Catalog, old.Xfr.Catalog)},
		{"xfr.tls", reflect.DeepEqual(c.Xfr.TLS, old.Xfr.TLS)}, // the listen addresses and file names; the files are re-read
		{"metrics.listen", c.Metrics == old.Metrics},
		{"serial_policy", c.SerialPolicy == old.SerialPolicy},
		{"journal_limit", c.JournalLimit == old.JournalLimit},
		{"log.format", c.Log.Format == old.Log.Format},
		{"stream.listen", slices.Equal(c.Stream.Listen, old.Stream.Listen)},
		{"stream.tls_cert", c.Stream.TLSCert == old.Stream.TLSCert && c.Stream.TLSKey == old.Stream.TLSKey},
		{"stream.heartbeat", c.Stream.Heartbeat == old.Stream.Heartbeat},
		{"levels", reflect.DeepEqual(c.Levels, old.Levels)},
		{"signing.key_file", c.Signing.KeyFile == old.Signing.KeyFile},
		{"signing.pkcs11", reflect.DeepEqual(c.Signing.PKCS11, old.Signing.PKCS11)},
		{"signing.parent_servers", reflect.DeepEqual(c.Signing.ParentServers, old.Signing.ParentServers)},
		{"store", reflect.DeepEqual(c.Store, old.Store)},
	} {
		if !f.same {
			changed = append(changed, f.name)
		}
	}
	return changed
}

// closer adapts a close function that reports nothing to the start-up's
// list of what to close on failure.
type closer func()

func (f closer) Close() error { f(); return nil }
