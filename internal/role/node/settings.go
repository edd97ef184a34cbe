package node

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/admin"
	"github.com/anycastdns/anycastdns/internal/announce"
	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/dnsserver"
	"github.com/anycastdns/anycastdns/internal/dnstap"
	"github.com/anycastdns/anycastdns/internal/geodb"
	"github.com/anycastdns/anycastdns/internal/health"
	"github.com/anycastdns/anycastdns/internal/listen"
	"github.com/anycastdns/anycastdns/internal/ratelimit"
	"github.com/anycastdns/anycastdns/internal/steer"
	"github.com/anycastdns/anycastdns/internal/tsig"
	"github.com/anycastdns/anycastdns/internal/zonesync"
)

// This file is the one place where the node's configuration becomes the
// settings of its components: they do not import package config, and the
// configuration does not import them (.golangci.yml's depguard keeps it
// so).

// identity is the DNS server's identity of a configuration.
func identity(cfg *config.Node) dnsserver.Identity {
	id := cfg.Identity
	return dnsserver.Identity{
		Name: id.Name, NSID: id.NSID, IDServer: id.IDServer, HostnameBind: id.HostnameBind,
		VersionBind: id.VersionBind, Version: id.Version,
	}
}

// serverConfig is the DNS server's listener configuration, which only a
// restart changes.
func serverConfig(cfg *config.Node) dnsserver.Config {
	return dnsserver.Config{Listen: cfg.Listen, Readers: cfg.Limits.UDPReaders}
}

// dnsSettings builds the DNS server's settings of cfg whole: a reload
// swaps them in at once (dnsserver.Handler.Set). prev and cur are the
// configuration and the settings in force (nil and zero at start): a part
// whose configuration did not change keeps its state — the rate limiter
// its buckets, the cookies their secret, random when none is configured.
func dnsSettings(cfg, prev *config.Node, cur dnsserver.Settings, logger *slog.Logger) (dnsserver.Settings, error) {
	// The steering engine (and its state) is the node's: a reload keeps it.
	s := dnsserver.Settings{Identity: identity(cfg), MaxUDP: cfg.Limits.UDPMaxSize, TCP: tcpLimits(cfg.Limits), Steer: cur.Steer}
	var err error
	if prev != nil && cfg.Limits.RRL == prev.Limits.RRL {
		s.RRL = cur.RRL
	} else if s.RRL, err = rrl(cfg.Limits.RRL); err != nil {
		return s, err
	}
	if prev != nil && slices.Equal(cfg.Limits.Source.Exempt, prev.Limits.Source.Exempt) &&
		sourceScalars(cfg.Limits.Source) == sourceScalars(prev.Limits.Source) {
		s.Source = cur.Source
	} else if s.Source, err = sourceLimiter(cfg.Limits.Source); err != nil {
		return s, err
	}
	if prev != nil && cfg.Limits.Cookies == prev.Limits.Cookies {
		s.Cookies = cur.Cookies
	} else {
		s.Cookies = cookies(cfg.Limits.Cookies, logger)
	}
	if prev != nil && slices.Equal(cfg.TSIGKeys, prev.TSIGKeys) {
		s.TSIG = cur.TSIG
	} else if s.TSIG, err = keyring(cfg); err != nil {
		return s, err
	}
	return s, nil
}

// geoMap is the map of client places of a configuration's steering
// section: its prefixes and, when it names one, the networks of the
// geolocation database in the regions it maps them to; nil when the
// section is empty. The database is read here, whole, and closed: queries
// look up the map built from it.
func geoMap(s config.Steering, now time.Time) (*steer.GeoMap, admin.SteeringGeo, error) {
	info := admin.SteeringGeo{Database: s.GeoDatabase, Loaded: now}
	if len(s.Regions) == 0 && s.GeoDatabase == "" {
		return nil, info, nil
	}
	var nets []steer.GeoNetwork
	if s.GeoDatabase != "" {
		var db geodb.Info
		var err error
		nets, db, err = geodb.Load(s.GeoDatabase, geodb.Mapping{Countries: s.Countries, Continents: s.Continents})
		if err != nil {
			return nil, info, fmt.Errorf("steering.geo_database: %w", err)
		}
		info.DatabaseType, info.Built, info.Networks, info.Mapped = db.Type, db.Built, db.Networks, db.Mapped
	}
	g, err := steer.NewGeoMapDB(s.Regions, nets)
	if err != nil {
		return nil, info, fmt.Errorf("steering: %s: %w", s.GeoDatabase, err)
	}
	info.Digest, info.Prefixes, info.Ranges = g.Digest(), g.Prefixes(), g.Ranges()
	return g, info, nil
}

// CheckSteering reads the geolocation database of a configuration's
// steering section and builds its map, as the node does at start and on
// reload, for anycastd checkconf; nil when the node would take it.
func CheckSteering(s config.Steering) error {
	_, _, err := geoMap(s, time.Time{})
	return err
}

// tcpLimits are the TCP limits of the DNS server in a configuration.
func tcpLimits(l config.Limits) dnsserver.TCPLimits {
	return dnsserver.TCPLimits{
		MaxConns: l.TCPMaxConns, Idle: l.TCPIdleTimeout, MaxQueries: l.TCPMaxQueries,
		PerSource: l.TCPMaxConnsPerSource, SourceV4: l.TCPSourceIPv4Prefix, SourceV6: l.TCPSourceIPv6Prefix,
		BusyIdle: l.TCPBusyIdleTimeout,
	}
}

// rrl returns the response rate limiter of a configuration; nil when off.
func rrl(r config.RRL) (*ratelimit.RRL, error) {
	l, err := ratelimit.NewRRL(ratelimit.RRLConfig{
		Rate: r.Rate, Slip: r.Slip, IPv4Prefix: r.IPv4Prefix, IPv6Prefix: r.IPv6Prefix, Buckets: r.Buckets,
	})
	if err != nil {
		return nil, fmt.Errorf("limits.rrl: %w", err)
	}
	return l, nil
}

// sourceScalars is s without its exempt list, comparable.
func sourceScalars(s config.SourceLimit) [5]int {
	return [5]int{s.Rate, s.Burst, s.IPv4Prefix, s.IPv6Prefix, s.Buckets}
}

// sourceLimiter returns the per-source query limiter of a configuration;
// nil when off.
func sourceLimiter(s config.SourceLimit) (*ratelimit.SourceLimiter, error) {
	l, err := ratelimit.NewSourceLimiter(ratelimit.SourceConfig{
		Rate: s.Rate, Burst: s.Burst, IPv4Prefix: s.IPv4Prefix, IPv6Prefix: s.IPv6Prefix,
		Buckets: s.Buckets, Exempt: s.Exempt,
	})
	if err != nil {
		return nil, fmt.Errorf("limits.source: %w", err)
	}
	return l, nil
}

// cookies returns the DNS Cookies of the configuration, nil when off. The
// secret was validated with the configuration.
func cookies(c config.Cookies, logger *slog.Logger) *ratelimit.Cookies {
	if !c.Enabled {
		return nil
	}
	if c.Secret == "" {
		// A PoP of an anycast set is warned by config.Node.Advice.
		logger.Info("dns cookies on with a random secret (limits.cookies.secret is not set)")
		return ratelimit.NewCookies(ratelimit.RandomCookieSecret())
	}
	secret, err := c.SecretBytes()
	if err != nil {
		logger.Error("dns cookies: bad secret, cookies off", "err", err)
		return nil
	}
	return ratelimit.NewCookies(secret)
}

// keyring is the node's one TSIG keyring (tsig_keys): the secondary zones
// and the DNS server use it; nil without keys.
func keyring(cfg *config.Node) (*tsig.Keyring, error) {
	if len(cfg.TSIGKeys) == 0 {
		return nil, nil
	}
	ring, err := tsig.New(cfg.TSIGKeys)
	if err != nil {
		return nil, fmt.Errorf("tsig_keys: %w", err)
	}
	return ring, nil
}

// hasSecondaries reports whether a configuration has anything for
// zonesync to do: secondary zones or a catalog.
func hasSecondaries(cfg *config.Node) bool {
	if cfg.Catalog != nil {
		return true
	}
	for _, z := range cfg.Zones {
		if z.Secondary() {
			return true
		}
	}
	return false
}

// updatePrimaries returns where the node forwards a DNS UPDATE for a zone
// (RFC 2136 §6): the primaries of the secondary zone of that name, or of
// the catalog for one of its members — those of the configuration the
// node started with, the ones zonesync transfers from. None for a zone
// served from a file or not served.
func updatePrimaries(cfg *config.Node, members func() []string) func(zone string) []netip.AddrPort {
	addrs := func(ps []config.Primary) []netip.AddrPort {
		out := make([]netip.AddrPort, len(ps))
		for i, p := range ps {
			out[i] = p.Addr
		}
		return out
	}
	byZone := map[string][]netip.AddrPort{}
	for _, z := range cfg.Zones {
		if z.Secondary() {
			byZone[dns.CanonicalName(z.Name)] = addrs(z.Primaries)
		}
	}
	var catalog []netip.AddrPort
	if cfg.Catalog != nil {
		catalog = addrs(cfg.Catalog.Primaries)
	}
	return func(zone string) []netip.AddrPort {
		if p, ok := byZone[zone]; ok {
			return p
		}
		if catalog != nil && slices.Contains(members(), zone) {
			return catalog
		}
		return nil
	}
}

// secondaryConfig is the zonesync configuration of a node: its data
// directory, keys, NOTIFY ACL, catalog and every zone that has primaries.
// File zones are Reserved. A primary with a tls section is reached over
// TLS (its CA file read now); the client certificates of mutual TLS are
// returned too, to be re-read on reload.
func secondaryConfig(cfg *config.Node) (zonesync.Config, []*listen.Certificate, error) {
	c := zonesync.Config{DataDir: cfg.DataDir, Keys: cfg.TSIGKeys}
	c.Timers.MinRefresh = cfg.SecondaryTimers.MinRefresh
	c.Timers.MinRetry = cfg.SecondaryTimers.MinRetry
	c.Timers.MinExpire = cfg.SecondaryTimers.MinExpire
	var certs []*listen.Certificate
	var errs []error
	prim := func(ps []config.Primary) []zonesync.Primary {
		out := make([]zonesync.Primary, len(ps))
		for i, p := range ps {
			out[i] = zonesync.Primary{Addr: p.Addr, Key: p.Key}
			if p.TLS != nil {
				conf, cert, err := primaryTLS(p)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				out[i].TLS = conf
				if cert != nil {
					certs = append(certs, cert)
				}
			}
		}
		return out
	}
	for _, z := range cfg.Zones {
		if z.Secondary() {
			c.Zones = append(c.Zones, zonesync.Zone{Name: z.Name, Primaries: prim(z.Primaries)})
		} else {
			c.Reserved = append(c.Reserved, z.Name)
		}
	}
	for _, a := range cfg.NotifyAllow {
		c.NotifyAllow = append(c.NotifyAllow, zonesync.NotifyACL{Prefix: a.Prefix, Key: a.Key})
	}
	if cfg.Catalog != nil {
		c.Catalog = &zonesync.Catalog{Zone: cfg.Catalog.Zone, Primaries: prim(cfg.Catalog.Primaries)}
	}
	if len(errs) > 0 {
		return c, nil, errors.Join(errs...)
	}
	return c, certs, nil
}

// primaryTLS is the TLS client configuration of a primary's tls section:
// its CA (default: the system's roots), the name its certificate must
// carry (default: its address) and, for mutual TLS, a client certificate
// read through a listen.Certificate so that a reload re-reads it.
func primaryTLS(p config.Primary) (*tls.Config, *listen.Certificate, error) {
	t := p.TLS
	conf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if conf.ServerName == "" {
		conf.ServerName = p.Addr.Addr().String()
	}
	if t.CA != "" {
		pool, err := listen.ReadCAs(t.CA)
		if err != nil {
			return nil, nil, fmt.Errorf("primary %s: %w", p.Addr, err)
		}
		conf.RootCAs = pool
	}
	if t.Cert == "" {
		return conf, nil, nil
	}
	cert, err := listen.LoadCertificate(t.Cert, t.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("primary %s: client %w", p.Addr, err)
	}
	conf.GetClientCertificate = cert.GetClientCertificate
	return conf, cert, nil
}

// speakerConfig is the BGP speaker's configuration.
func speakerConfig(b *config.BGP) announce.Config {
	c := announce.Config{ASN: b.ASN, RouterID: b.RouterID, ListenPort: int32(b.ListenPort)}
	for _, p := range b.Peers {
		c.Peers = append(c.Peers, announce.Peer{
			Address: p.Address, LocalAddress: p.LocalAddress, ASN: p.ASN, Passive: p.Passive,
			HoldTime: p.HoldTime, Keepalive: p.Keepalive, Password: p.Password, Multihop: p.Multihop,
			BFD: announce.BFD{Enabled: p.BFD.Enabled, Interval: p.BFD.Interval, Multiplier: p.BFD.Multiplier},
		})
	}
	for _, an := range b.Announce {
		x := announce.Announcement{Prefix: an.Prefix, NextHop: an.NextHop, MED: an.MED, Prepend: an.Prepend}
		for _, cm := range an.Communities {
			x.Communities = append(x.Communities, uint32(cm.ASN)<<16|uint32(cm.Value))
		}
		for _, l := range an.LargeCommunities {
			x.LargeCommunities = append(x.LargeCommunities, [3]uint32{l.ASN, l.Data1, l.Data2})
		}
		c.Announce = append(c.Announce, x)
	}
	for i, l := range b.Levels {
		x := announce.Attributes{Prepend: l.Prepend, MED: l.MED}
		for _, cm := range l.Communities {
			x.Communities = append(x.Communities, uint32(cm.ASN)<<16|uint32(cm.Value))
		}
		for _, lc := range l.LargeCommunities {
			x.LargeCommunities = append(x.LargeCommunities, [3]uint32{lc.ASN, lc.Data1, lc.Data2})
		}
		c.Levels[i] = x
	}
	return c
}

// prefixes are the anycast prefixes a node announces.
func prefixes(b *config.BGP) []netip.Prefix {
	var out []netip.Prefix
	for _, an := range b.Announce {
		out = append(out, an.Prefix)
	}
	return out
}

// healthConfig is the health checker's timing.
func healthConfig(h config.Health) health.Config {
	return health.Config{Interval: h.Interval, Timeout: h.Timeout, Rise: h.Rise, Fall: h.Fall}
}

// tapConfig is the configuration of the node's dnstap output and query
// log; their identity and version are the node's.
func tapConfig(cfg *config.Node) dnstap.Config {
	var c dnstap.Config
	if d := cfg.Dnstap; d != nil {
		to := dnstap.Collector{Network: "unix", Address: d.Socket}
		if d.TCP.IsValid() {
			to = dnstap.Collector{Network: "tcp", Address: d.TCP.String()}
		}
		c.Dnstap = &dnstap.FrameConfig{Collector: to, Identity: cfg.Identity.Name, Version: cfg.Identity.Version,
			Sample: d.Sample, Queue: d.Queue}
	}
	if q := cfg.QueryLog; q != nil {
		c.QueryLog = &dnstap.LogConfig{File: q.File, MaxSize: q.MaxSize, Identity: cfg.Identity.Name,
			Sample: q.Sample, Queue: q.Queue}
	}
	return c
}

// applyTap applies cfg's outputs to tap and sets the DNS server's Tap in
// s: tap while an output is on, with the rate the server samples at; nil
// (not a nil *dnstap.Tap) when both are off, so that the query path pays
// one comparison.
func applyTap(tap *dnstap.Tap, cfg *config.Node, s *dnsserver.Settings) {
	c := tapConfig(cfg)
	tap.Apply(c)
	s.Tap, s.TapEvery = nil, 0
	if c.Enabled() {
		s.Tap, s.TapEvery = tap, tap.Every()
	}
}
