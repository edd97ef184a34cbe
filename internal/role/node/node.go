// Package node wires the components of a PoP: zones, the DNS server,
// metrics, and (when configured) secondary zones, health checks and the BGP
// speaker. Its parts run under one lifecycle.Runner.
//
// Start-up order: load zones → dnstap and query log outputs → DNS
// listeners → secondary zones → BGP
// speaker → health checks (the prefixes are announced only once they pass)
// → metrics and admin endpoints (bound before anything starts, so an
// address in use stops the start-up) → reloads. Shutdown order: reloads
// stop → withdraw → drain period while still answering (not after a
// failure) → health checks and DNS stop → the tap's outputs write what
// is queued → secondary zones → BGP →
// admin and metrics. Reload (SIGHUP) re-reads the configuration and every
// zone; anything that fails to load keeps its previous version serving.
package node

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"reflect"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/anycastdns/anycastdns/internal/admin"
	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/dnsserver"
	"github.com/anycastdns/anycastdns/internal/dnstap"
	"github.com/anycastdns/anycastdns/internal/health"
	"github.com/anycastdns/anycastdns/internal/httpprobe"
	"github.com/anycastdns/anycastdns/internal/lifecycle"
	"github.com/anycastdns/anycastdns/internal/listen"
	"github.com/anycastdns/anycastdns/internal/metrics"
	"github.com/anycastdns/anycastdns/internal/steer"
	"github.com/anycastdns/anycastdns/internal/stream"
	"github.com/anycastdns/anycastdns/internal/update"
	"github.com/anycastdns/anycastdns/internal/zone"
	"github.com/anycastdns/anycastdns/internal/zonesync"
)

// Node is a running PoP.
type Node struct {
	path         string       // config file, empty when built from flags
	log          *slog.Logger // with component=node
	root         *slog.Logger // as given to New: for the parts that name their own component
	level        *slog.LevelVar
	mu           sync.Mutex
	cfg          *config.Node
	stats        *dnsserver.Stats
	handler      *dnsserver.Handler
	server       *dnsserver.Server
	metrics      *metrics.Node
	load         *loadMeter            // for GET /v1/load
	anycast      *anycast              // nil without BGP
	zs           *zonesync.Manager     // nil without secondary zones
	primaryCerts []*listen.Certificate // client certificates of primaries over TLS, re-read on reload
	streams      []*stream.Client      // one per control plane followed (stream.go)
	// levelLog limits the log lines of PoP levels that cannot apply
	// (stream.go): once without BGP, once a minute otherwise.
	levelLog levelLogLimit
	ready    chan struct{}
	steering *steering   // the steering engine and its state (steering.go)
	tap      *dnstap.Tap // dnstap and the query log; in the DNS settings only while one is on
	started  time.Time
	runner   *lifecycle.Runner // of Run

	stopping atomic.Bool // the shutdown has started

	setMu     sync.Mutex
	fileZones []*zone.Zone // the zones loaded from files, published with zs's
	// served lists the zones of the published set, each origin once, in
	// no particular order: metrics and health read it instead of sorting
	// the set's zones.
	served atomic.Pointer[[]*zone.Zone]
}

// New prepares a node from a validated configuration. path is the file to
// re-read on reload ("" = keep cfg). level, if not nil, is adjusted when the
// reloaded configuration changes the log level.
func New(cfg *config.Node, path string, logger *slog.Logger, level *slog.LevelVar) (*Node, error) {
	stats := &dnsserver.Stats{}
	settings, err := dnsSettings(cfg, nil, dnsserver.Settings{}, logger.With("component", "node"))
	if err != nil {
		return nil, err
	}
	sr := newSteering()
	settings.Steer = sr.engine
	geo, geoInfo, err := geoMap(cfg.Steering, time.Now())
	if err != nil {
		return nil, err
	}
	sr.setGeo(geo, geoInfo)
	tap := dnstap.New(logger)
	applyTap(tap, cfg, &settings)
	h := dnsserver.NewHandler(settings, stats)
	srv, err := dnsserver.New(serverConfig(cfg), h, logger)
	if err != nil {
		return nil, err
	}
	n := &Node{
		path: path, cfg: cfg, log: logger.With("component", "node"), root: logger, level: level,
		stats: stats, handler: h, server: srv, ready: make(chan struct{}), steering: sr, tap: tap,
	}
	n.metrics = metrics.NewNode(stats, n.servedZones)
	n.metrics.Registry.MustRegister(tap.Collectors()...)
	n.load = newLoadMeter(stats)
	n.logAdvice(cfg)
	if hasSecondaries(cfg) {
		zc, certs, err := secondaryConfig(cfg)
		if err != nil {
			return nil, fmt.Errorf("secondary zones: %w", err)
		}
		n.primaryCerts = certs
		zs, err := zonesync.New(zc, logger)
		if err != nil {
			return nil, fmt.Errorf("secondary zones: %w", err)
		}
		n.zs = zs
		h.SetNotify(zs.Notify)
		// UPDATEs go to the primaries, as the transfers come from them.
		fwd := &update.Forwarder{Primaries: updatePrimaries(cfg, zs.Names), Log: logger.With("component", "update")}
		h.SetForward(fwd.Forward)
		zs.OnChange(func() { n.publish(nil) })
		n.metrics.Registry.MustRegister(zs.Collectors()...)
	}
	if cfg.BGP != nil {
		paths := &healthPaths{handler: h, stats: stats, src: netip.AddrPortFrom(cfg.Health.QueryAddr.Addr(), 0)}
		a, err := newAnycast(cfg, n.wantZones, n.zoneStates, paths, logger)
		if err != nil {
			return nil, err
		}
		n.anycast = a
		n.metrics.Registry.MustRegister(a.checker.Collectors()...)
		n.metrics.Registry.MustRegister(a.setErrors, a.flooded, &bgpCollector{a.speaker}, levelCollector{a})
	}
	if err := n.newStreams(cfg); err != nil {
		return nil, err
	}
	return n, nil
}

// Ready is closed when zones are loaded and the DNS listeners answer.
func (n *Node) Ready() <-chan struct{} { return n.ready }

// Addrs returns the DNS listen addresses actually bound.
func (n *Node) Addrs() []string {
	var out []string
	for _, a := range n.server.Addrs() {
		out = append(out, a.String())
	}
	return out
}

// Run starts the node and serves until ctx is done, in the orders of the
// package documentation. Each value received on reload triggers a reload.
// It returns the errors of every part that failed, each with the part's
// name, once every part has stopped.
func (n *Node) Run(ctx context.Context, reload <-chan struct{}) error {
	n.started = time.Now()
	n.setFileZones(n.loadZones(n.cfg, nil))
	n.publish(nil)
	set := n.handler.Zones()
	n.log.Info("zones loaded", "zones", set.Len(), "configured", len(n.cfg.Zones), "duration", time.Since(n.started).Round(time.Millisecond))

	// The HTTP listeners are bound before anything starts: an address in
	// use ends the start-up at once.
	var metricsLn, adminLn net.Listener
	var err error
	if a := n.cfg.Metrics.Listen; a.IsValid() {
		if metricsLn, err = net.Listen("tcp", a.String()); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	if a := n.cfg.Admin.Listen; a.IsValid() {
		if adminLn, err = net.Listen("tcp", a.String()); err != nil {
			if metricsLn != nil {
				_ = metricsLn.Close()
			}
			return fmt.Errorf("admin: %w", err)
		}
	}
	n.runner = n.parts(reload, metricsLn, adminLn)
	err = n.runner.Run(ctx, func() {
		close(n.ready)
		n.log.Info("node ready", "startup", time.Since(n.started).Round(time.Millisecond), "addrs", n.Addrs(), "bgp", n.anycast != nil)
	})
	n.log.Info("stopped")
	return err
}

// parts are the node's tasks in their start order, and its stop order.
func (n *Node) parts(reload <-chan struct{}, metricsLn, adminLn net.Listener) *lifecycle.Runner {
	r := lifecycle.New(n.log)
	have := map[string]bool{}
	add := func(name string, t lifecycle.Task) {
		r.Add(name, t)
		have[name] = true
	}
	// The tap's outputs start before the DNS listeners and stop after
	// them, writing what the last queries queued.
	add("tap", lifecycle.Func(n.tap.Run))
	add("dns", n.server)
	if n.zs != nil {
		add("zonesync", n.zs)
	}
	if len(n.streams) > 0 {
		add("streams", lifecycle.Func(func(ctx context.Context) error {
			wait := n.runStreams(ctx)
			<-ctx.Done()
			wait()
			return nil
		}))
	}
	if a := n.anycast; a != nil {
		add("bgp", a.speaker)
		add("health", a.checker)
		add("follow", lifecycle.Func(func(ctx context.Context) error {
			a.follow(ctx)
			return nil
		}))
	}
	add("load", lifecycle.Func(func(ctx context.Context) error {
		n.load.run(ctx)
		return nil
	}))
	if metricsLn != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", n.metrics.Handler())
		mux.Handle(admin.PathLoad, admin.LoadHandler(n))
		h := httpprobe.Wrap(mux, n.Readiness)
		add("metrics", lifecycle.Func(func(ctx context.Context) error { return metrics.Serve(ctx, metricsLn, h, n.root) }))
	}
	if adminLn != nil {
		add("admin", lifecycle.Func(func(ctx context.Context) error { return admin.Serve(ctx, adminLn, n, n.root) }))
	}
	add("reload", lifecycle.Func(func(ctx context.Context) error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-reload:
				n.Reload()
			}
		}
	}))
	stop := func(names ...string) lifecycle.Stage {
		var present []string
		for _, name := range names {
			if have[name] {
				present = append(present, name)
			}
		}
		return lifecycle.Stop(present...)
	}
	r.StopOrder(
		stop("reload"),
		lifecycle.Do("withdraw and drain", n.withdraw),
		stop("health", "follow", "dns"),
		stop("tap"),
		lifecycle.Do("levels", func(error) {
			if a := n.anycast; a != nil {
				a.levels.close()
			}
		}),
		stop("streams"),
		stop("zonesync"),
		stop("bgp"),
		stop("admin", "metrics", "load"),
	)
	return r
}

// withdraw is the first step of the shutdown: /readyz turns 503, the
// prefixes are withdrawn and, unless a part failed, the node keeps
// answering for the drain period while the routers converge elsewhere.
func (n *Node) withdraw(cause error) {
	n.stopping.Store(true)
	n.log.Info("shutting down")
	a := n.anycast
	if a == nil {
		return
	}
	a.withdraw()
	n.mu.Lock()
	drain := n.cfg.DrainPeriod
	n.mu.Unlock()
	if cause == nil && drain > 0 {
		n.log.Info("draining: still answering", "drain_period", drain)
		time.Sleep(drain)
	}
}

// Reload re-reads the configuration (when the node has a file) and every
// zone. A configuration that fails to load or validate keeps the old one; a
// zone that fails keeps its previous version.
func (n *Node) Reload() {
	n.mu.Lock()
	defer n.mu.Unlock()
	cfg := n.cfg
	// next are the DNS server's settings of the new configuration, swapped
	// in with the reloaded zones in one step; nil keeps the running ones.
	var next *dnsserver.Settings
	if n.path != "" {
		c, err := config.LoadNode(n.path)
		var s dnsserver.Settings
		if err == nil {
			s, err = dnsSettings(c, cfg, n.handler.Settings(), n.log)
		}
		// The map of client places is built again on every reload, so
		// that a database replaced in place is read.
		var geo *steer.GeoMap
		var geoInfo admin.SteeringGeo
		if err == nil {
			geo, geoInfo, err = geoMap(c.Steering, time.Now())
		}
		if err == nil {
			applyTap(n.tap, c, &s)
		}
		if err != nil {
			n.log.Error("reload: configuration rejected, keeping the running one", "err", err)
			n.metrics.Reloads.WithLabelValues("config_error").Inc()
		} else {
			n.warnRestartOnly(cfg, c)
			if n.level != nil {
				n.level.Set(c.Log.Level)
			}
			if c.Limits.RRL != cfg.Limits.RRL {
				// A new table starts every bucket afresh.
				n.log.Info("response rate limiting changed", "rate", c.Limits.RRL.Rate, "slip", c.Limits.RRL.Slip)
			}
			if !slices.Equal(c.TSIGKeys, cfg.TSIGKeys) {
				n.log.Info("tsig keys changed", "keys", len(c.TSIGKeys))
			}
			if c.Limits.Cookies != cfg.Limits.Cookies {
				n.log.Info("dns cookies changed", "enabled", c.Limits.Cookies.Enabled)
			}
			n.logAdvice(c)
			if old := n.steering.geoDigest(); old != geoInfo.Digest {
				n.log.Info("steering map of client places changed", "digest", geoInfo.Digest, "prefixes", geoInfo.Prefixes,
					"ranges", geoInfo.Ranges, "database", geoInfo.Database)
			}
			n.steering.setGeo(geo, geoInfo)
			cfg, next = c, &s
			n.cfg = c
		}
	}
	for _, c := range n.primaryCerts {
		// Client certificates of mutual TLS with primaries: a renewed
		// one reaches the next transfer.
		if err := c.Reload(); err != nil {
			n.log.Error("reload: a primary's tls client certificate did not load; the old one stays", "err", err)
		}
	}
	zones, failed := n.loadZonesFailed(cfg, n.handler.Zones())
	n.setFileZones(zones)
	n.publish(next)
	result := "ok"
	if failed > 0 {
		result = "zone_error"
	}
	n.metrics.Reloads.WithLabelValues(result).Inc()
	n.log.Info("reloaded", "zones", n.handler.Zones().Len(), "failed", failed)
}

// warnRestartOnly logs the changed settings that a reload cannot apply.
func (n *Node) warnRestartOnly(old, c *config.Node) {
	var changed []string
	if !slices.Equal(c.Listen, old.Listen) {
		changed = append(changed, "listen")
	}
	if c.Limits.UDPReaders != old.Limits.UDPReaders {
		changed = append(changed, "limits.udp_readers")
	}
	if c.Metrics != old.Metrics {
		changed = append(changed, "metrics")
	}
	if c.Admin != old.Admin {
		changed = append(changed, "admin")
	}
	if !reflect.DeepEqual(c.BGP, old.BGP) {
		changed = append(changed, "bgp")
	}
	if c.Health != old.Health {
		changed = append(changed, "health")
	}
	if c.Log.Format != old.Log.Format {
		changed = append(changed, "log.format")
	}
	if !reflect.DeepEqual(c.Control, old.Control) {
		changed = append(changed, "control")
	} else if c.Control != nil && streamKey(c) != streamKey(old) {
		changed = append(changed, "tsig_keys (the secret of control.key)")
	}
	if len(changed) > 0 {
		n.log.Warn("reload: these settings changed but apply only after a restart", "settings", strings.Join(changed, ","))
	}
}

// loadGCPercent is the GC target while zones load.
const loadGCPercent = 40

// loadZones is loadZonesFailed without the count.
func (n *Node) loadZones(cfg *config.Node, old *zone.Set) []*zone.Zone {
	zones, _ := n.loadZonesFailed(cfg, old)
	return zones
}

// loadZonesFailed loads every configured file zone in parallel and
// returns them with the number that failed. A zone that fails keeps its
// version from old (if any).
func (n *Node) loadZonesFailed(cfg *config.Node, old *zone.Set) ([]*zone.Zone, int) {
	// Loading a zone through miekg/dns's ZoneParser (zone.Load's fallback)
	// makes much short-lived garbage (a dns.RR per record) beside the
	// long-lived zone: a tighter GC target while loading keeps the peak
	// memory near what the zones need. The fast parser makes little
	// garbage: with it, GC percent 100 instead of 40 loaded the 1M-name
	// bench zone as fast (2.2 s both) with 8 MiB more peak memory.
	prev := debug.SetGCPercent(loadGCPercent)
	defer debug.SetGCPercent(prev)
	type result struct {
		z   *zone.Zone
		err error
	}
	results := make([]result, len(cfg.Zones))
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, zc := range cfg.Zones {
		if zc.Secondary() {
			continue // transferred by zonesync
		}
		g.Go(func() error {
			z, err := zone.Load(zc.Name, zc.File)
			results[i] = result{z, err}
			return nil
		})
	}
	_ = g.Wait()
	var zones []*zone.Zone
	failed := 0
	for i, r := range results {
		zc := cfg.Zones[i]
		if zc.Secondary() {
			continue
		}
		if r.err != nil {
			failed++
			n.metrics.LoadErrors.WithLabelValues(zc.Name).Inc()
			if prev := old.Get(zc.Name); prev != nil {
				n.log.Error("zone load failed, previous version keeps serving", "zone", zc.Name, "serial", prev.Serial, "err", r.err)
				zones = append(zones, prev)
			} else {
				n.log.Error("zone load failed, zone not served", "zone", zc.Name, "err", r.err)
			}
			continue
		}
		n.log.Info("zone loaded", "zone", zc.Name, "serial", r.z.Serial, "records", r.z.Records, "file", zc.File)
		zones = append(zones, r.z)
	}
	return zones, failed
}

// setFileZones records the file zones for publish.
func (n *Node) setFileZones(zones []*zone.Zone) {
	n.setMu.Lock()
	n.fileZones = zones
	n.setMu.Unlock()
}

// publish swaps in the set of file zones and secondary zones as one, with
// settings when they are not nil (a reload), in the same snapshot.
// Secondary zones past their SOA expire are in the set, marked expired:
// they answer SERVFAIL.
func (n *Node) publish(settings *dnsserver.Settings) {
	n.setMu.Lock()
	defer n.setMu.Unlock()
	zones := append([]*zone.Zone(nil), n.fileZones...)
	var expired []*zone.Zone
	if n.zs != nil {
		var served []*zone.Zone
		served, expired = n.zs.ZoneSets()
		zones = append(zones, served...)
	}
	// A later zone of the same origin replaces an earlier one, as in
	// zone.NewSet.
	at := make(map[string]int, len(zones))
	unique := zones[:0]
	for _, z := range zones {
		if i, ok := at[z.Origin]; ok {
			unique[i] = z
			continue
		}
		at[z.Origin] = len(unique)
		unique = append(unique, z)
	}
	set := zone.NewSet(unique...)
	if len(expired) > 0 {
		// A file zone of the same origin (config forbids it) wins.
		kept := expired[:0]
		for _, z := range expired {
			if _, ok := at[z.Origin]; !ok {
				kept = append(kept, z)
			}
		}
		set = set.WithExpired(kept...)
	}
	if settings != nil {
		n.handler.Set(*settings, set)
	} else {
		n.handler.SetZones(set)
	}
	n.served.Store(&unique)
}

// servedZones returns the zones of the published set in no particular
// order, without the expired ones.
func (n *Node) servedZones() []*zone.Zone {
	if p := n.served.Load(); p != nil {
		return *p
	}
	return nil
}

// wantZones lists every zone the node should serve: configured file zones,
// configured secondaries and catalog members.
func (n *Node) wantZones() []string {
	n.mu.Lock()
	cfg := n.cfg
	n.mu.Unlock()
	var out []string
	for _, z := range cfg.Zones {
		if !z.Secondary() {
			out = append(out, z.Name)
		}
	}
	if n.zs != nil {
		out = append(out, n.zs.Names()...)
		// Without its catalog the node does not know its member zones
		// yet: it must not announce what it has.
		if c := n.zs.CatalogPending(); c != "" {
			out = append(out, c)
		}
	}
	return out
}

// zoneStates reports the served zones for the health check; a secondary's
// own state (expired) wins over its absence from the set.
func (n *Node) zoneStates() map[string]health.ZoneState {
	out := make(map[string]health.ZoneState)
	for _, z := range n.servedZones() {
		out[z.Origin] = health.ZoneState{Serial: z.Serial}
	}
	if n.zs != nil {
		for name, st := range n.zs.States() {
			out[name] = health.ZoneState{Serial: st.Serial, Expired: st.Expired, Unconfirmed: st.Unconfirmed}
		}
	}
	return out
}

// logAdvice logs the warnings about a valid configuration (response rate
// limiting off on a public address, an anycast PoP without a cookie
// secret).
func (n *Node) logAdvice(cfg *config.Node) {
	for _, a := range cfg.Advice() {
		n.log.Warn("configuration: "+a.Msg, "setting", a.Path, "at", a.Pos)
	}
}
