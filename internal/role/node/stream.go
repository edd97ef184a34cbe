package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/fleet/level"
	"github.com/anycastdns/anycastdns/internal/stream"
	"github.com/anycastdns/anycastdns/internal/tsig"
	"github.com/anycastdns/anycastdns/internal/zonesync"
)

// The node's streams to its control planes (config control, package
// stream): one client per control plane, started once the zones are
// loaded and stopped before the secondary zones. They only ever add: a
// control plane that goes away leaves the node on NOTIFY, IXFR and its SOA
// timers, and never makes it withdraw.

// newStreams builds a client per configured control plane.
func (n *Node) newStreams(cfg *config.Node) error {
	c := cfg.Control
	if c == nil {
		return nil
	}
	k := streamKey(cfg)
	if k.Name == "" {
		return fmt.Errorf("control.key: no tsig_keys entry %s", c.Key)
	}
	secret, err := base64.StdEncoding.DecodeString(k.Secret)
	if err != nil {
		return fmt.Errorf("control.key: %w", err)
	}
	var tlsConfig *tls.Config
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return fmt.Errorf("control.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("control.ca_file %s: no PEM certificate in it", c.CAFile)
		}
		tlsConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	pop := c.PoP
	if pop == "" {
		pop = cfg.Identity.Name
	}
	var zones stream.Zones = noZones{}
	if n.zs != nil {
		zones = streamZones{n.zs}
	}
	for _, u := range c.Servers {
		cl, err := stream.NewClient(stream.ClientConfig{
			URL: u, KeyName: c.Key, Secret: secret, Node: cfg.Identity.Name, PoP: pop, Version: Version, TLS: tlsConfig,
			OnLevel:    func(l stream.Level) { n.applyStreamLevel(pop, l, time.Now()) },
			OnSteering: n.applySteering,
		}, zones, n.streamStatus, n.root)
		if err != nil {
			return fmt.Errorf("control.servers: %w", err)
		}
		n.streams = append(n.streams, cl)
	}
	if n.zs != nil {
		n.zs.SetStreamLive(n.streamLive)
	}
	n.metrics.Registry.MustRegister(streamCollector{n})
	return nil
}

var (
	streamUpDesc = prometheus.NewDesc("anycastd_stream_up",
		"1 while the stream to the control plane is established and heard from, else 0.", []string{"control"}, nil)
	streamPushesDesc = prometheus.NewDesc("anycastd_stream_pushes_total",
		"Transfers the control plane pushed over the stream.", []string{"control"}, nil)
)

// streamCollector reports the streams at scrape time.
type streamCollector struct{ n *Node }

func (c streamCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- streamUpDesc
	ch <- streamPushesDesc
}

func (c streamCollector) Collect(ch chan<- prometheus.Metric) {
	for _, cl := range c.n.streams {
		st := cl.State()
		up := 0.0
		if cl.Live() {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(streamUpDesc, prometheus.GaugeValue, up, st.URL)
		ch <- prometheus.MustNewConstMetric(streamPushesDesc, prometheus.CounterValue, float64(st.Pushes), st.URL)
	}
}

// streamKey is the tsig_keys entry of control.key, zero when there is none.
func streamKey(cfg *config.Node) tsig.Key {
	for _, k := range cfg.TSIGKeys {
		if cfg.Control != nil && k.Name == cfg.Control.Key {
			return k
		}
	}
	return tsig.Key{}
}

// streamLive reports whether a stream is delivering changes.
func (n *Node) streamLive() bool {
	for _, c := range n.streams {
		if c.Live() {
			return true
		}
	}
	return false
}

// runStreams runs the clients until ctx ends and returns a function that
// waits for them.
func (n *Node) runStreams(ctx context.Context) (wait func()) {
	var wg sync.WaitGroup
	for _, c := range n.streams {
		wg.Go(func() { _ = c.Run(ctx) }) // Run logs its failures and never gives up
	}
	return wg.Wait
}

// StreamStates returns the state of each stream to a control plane.
func (n *Node) StreamStates() []stream.ClientState {
	out := make([]stream.ClientState, 0, len(n.streams))
	for _, c := range n.streams {
		out = append(out, c.State())
	}
	return out
}

// streamStatus is what the heartbeats report.
func (n *Node) streamStatus() stream.Status {
	st := stream.Status{Health: "healthy", TCPConns: int(n.stats.TCPConns.Load())}
	queries, _, _, _ := n.stats.Snapshot()
	for _, q := range queries {
		st.Queries += q.N
	}
	if !n.started.IsZero() {
		st.UptimeSeconds = time.Since(n.started).Seconds()
	}
	st.Zones = len(n.servedZones())
	if n.zs != nil {
		_, expired := n.zs.ZoneSets()
		st.Expired = len(expired)
	}
	if a := n.anycast; a != nil {
		st.BGP = true
		if !a.checker.Healthy() {
			st.Health = "unhealthy"
		}
		st.Drained, _ = a.state()
		st.Announced = a.speaker.Status().Announced
		lv := a.levelStatus()
		st.Level, st.LevelSource = lv.Level.String(), lv.Source
	}
	switch {
	case n.stopping.Load():
		st.Health = "stopping"
	case !isClosed(n.ready):
		st.Health = "starting"
	}
	return st
}

// streamZones is the secondary zones as the stream client sees them.
type streamZones struct{ m *zonesync.Manager }

func (z streamZones) Serials() map[string]uint32 { return z.m.Serials() }
func (z streamZones) CatalogZone() string        { return z.m.CatalogZone() }
func (z streamZones) Refresh(zone string) error  { return z.m.Refresh(zone) }
func (z streamZones) ApplyPushed(ctx context.Context, zone string, msgs [][]byte, source string) (stream.PushResult, error) {
	r, err := z.m.ApplyPushed(ctx, zone, msgs, source)
	return stream.PushResult(r), err
}

// noZones is a node without secondary zones: it reports heartbeats and
// follows nothing.
type noZones struct{}

func (noZones) Serials() map[string]uint32 { return map[string]uint32{} }
func (noZones) CatalogZone() string        { return "" }
func (noZones) Refresh(string) error       { return errors.New("no secondary zones") }
func (noZones) ApplyPushed(context.Context, string, [][]byte, string) (stream.PushResult, error) {
	return stream.PushResult{Unknown: true}, nil
}

// levelLogLimit rate-limits the log of levels that cannot apply.
type levelLogLimit struct {
	mu     sync.Mutex
	noBGP  bool      // the "no BGP" line was logged
	lastAt time.Time // of the last other line
}

// allow reports whether a line may be logged now: the one without BGP
// once, the others once a minute.
func (l *levelLogLimit) allow(noBGP bool, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if noBGP {
		was := l.noBGP
		l.noBGP = true
		return !was
	}
	if now.Sub(l.lastAt) < time.Minute {
		return false
	}
	l.lastAt = now
	return true
}

// applyStreamLevel applies the level the control plane sent for the
// node's PoP (pop) at now: it holds for the level's validity from now
// unless renewed, then the node returns to normal (SetRemoteLevel). A node
// without BGP ignores it (logged once).
func (n *Node) applyStreamLevel(pop string, l stream.Level, now time.Time) {
	if n.anycast == nil {
		if n.levelLog.allow(true, now) {
			n.log.Info("the control plane sends PoP levels, but this node has no BGP: they are ignored", "pop", pop, "level", l.Level)
		}
		return
	}
	lv, err := level.Parse(l.Level)
	switch {
	case l.PoP != pop:
		err = fmt.Errorf("the level is for PoP %q, this node is of %q", l.PoP, pop)
	case err != nil:
	case l.Valid() <= 0:
		err = fmt.Errorf("validity %d ms", l.ValidMS)
	default:
		err = n.SetRemoteLevel(lv, l.Reason, now.Add(l.Valid()))
	}
	if err != nil && n.levelLog.allow(false, now) {
		n.log.Warn("a PoP level from the control plane was not applied", "level", l.Level, "err", err)
	}
}
