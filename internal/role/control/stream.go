package control

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/fleet"
	"github.com/anycastdns/anycastdns/internal/fleet/level"
	"github.com/anycastdns/anycastdns/internal/stream"
	"github.com/anycastdns/anycastdns/internal/version"
	"github.com/anycastdns/anycastdns/internal/xfrout"
)

// FleetFile is the fleet's state in the data directory.
const FleetFile = "fleet.json"

// streamPart is the control plane's stream listener (package stream) and
// the fleet of the nodes that join through it (package fleet). It pushes
// what the transfer server serves, so it exists only beside one.
type streamPart struct {
	reg   *fleet.Registry
	srv   *stream.Server
	lns   []net.Listener
	addrs []netip.AddrPort
	tls   *tls.Config
}

// streamKeys are the keys nodes may join with: stream.keys of the
// xfr.tsig_keys, or all of them.
func streamKeys(cfg *config.Control) map[string][]byte {
	out := map[string][]byte{}
	for _, k := range cfg.Xfr.TSIGKeys {
		if len(cfg.Stream.Keys) > 0 && !slices.Contains(cfg.Stream.Keys, k.Name) {
			continue
		}
		if b, err := base64.StdEncoding.DecodeString(k.Secret); err == nil { // validated with the configuration
			out[dns.CanonicalName(k.Name)] = b
		}
	}
	return out
}

// openStream binds the stream listeners and builds the fleet; nothing is
// served until run.
func openStream(cfg *config.Control, xfr *xfrout.Server, logger *slog.Logger) (*streamPart, error) {
	src := xfr.StreamSource()
	reg, err := fleet.New(fleet.Config{File: filepath.Join(cfg.DataDir, FleetFile), Serials: src.Zones, Catalog: src.Catalog(),
		Levels: levelsConfig(cfg.Levels)}, logger)
	if err != nil {
		return nil, err
	}
	srv, err := stream.NewServer(stream.ServerConfig{Name: "anycastd control", Keys: streamKeys(cfg), Heartbeat: cfg.Stream.Heartbeat,
		Version: version.Get().Version}, src, reg, logger)
	if err != nil {
		return nil, err
	}
	p := &streamPart{reg: reg, srv: srv}
	if cfg.Stream.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.Stream.TLSCert, cfg.Stream.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("stream.tls_cert, stream.tls_key: %w", err)
		}
		p.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	}
	for _, a := range cfg.Stream.Listen {
		ln, err := net.Listen("tcp", a.String())
		if err != nil {
			p.close()
			return nil, fmt.Errorf("stream: %w", err)
		}
		p.lns = append(p.lns, ln)
		ap, _ := netip.ParseAddrPort(ln.Addr().String())
		p.addrs = append(p.addrs, ap)
	}
	return p, nil
}

// levelsConfig is the fleet's view of the levels section, nil without one.
func levelsConfig(l *config.Levels) *fleet.LevelsConfig {
	if l == nil {
		return nil
	}
	return &fleet.LevelsConfig{
		Engine: level.Config{Quorum: l.Quorum, Stale: l.Stale, HighQPS: l.HighQPS, LowQPS: l.LowQPS, HighRTT: l.HighRTT, LowRTT: l.LowRTT,
			Hold: l.Hold, MaxShed: l.MaxShed, MinNormal: l.MinNormal,
			ShedUnderAttack: l.ShedUnderAttack},
		Interval: l.Interval, Validity: l.Validity,
	}
}

func (p *streamPart) close() {
	for _, ln := range p.lns {
		_ = ln.Close()
	}
}

// run serves the streams on every listener until ctx ends; then every
// stream is told the control plane stops. A listener that fails is logged:
// the nodes fall back to NOTIFY and IXFR, which keep working.
func (p *streamPart) run(ctx context.Context, readiness func() error, logger *slog.Logger) {
	var wg sync.WaitGroup
	for _, ln := range p.lns {
		wg.Go(func() {
			if err := p.srv.Serve(ctx, ln, p.tls, readiness); err != nil && !errors.Is(err, context.Canceled) {
				logger.Error("stream listener failed; nodes fall back to NOTIFY and IXFR", "addr", ln.Addr().String(), "err", err)
			}
		})
	}
	wg.Wait()
}

// StreamAddrs returns the bound stream addresses, once ready.
func (c *Control) StreamAddrs() []netip.AddrPort {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stream == nil {
		return nil
	}
	return slices.Clone(c.stream.addrs)
}

// Fleet returns the fleet, nil without a stream listener or before Ready.
func (c *Control) Fleet() *fleet.Registry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stream == nil {
		return nil
	}
	return c.stream.reg
}

// apiFleet is the fleet as the API takes it: a nil interface without one.
func (c *Control) apiFleet() api.Fleet {
	if f := c.Fleet(); f != nil {
		return f
	}
	return nil
}
