package xfrout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/anycastdns/anycastdns/internal/listen"
	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// Server serves the zones of a ZoneSource to secondaries: SOA queries,
// AXFR and IXFR, with TSIG; it sends them NOTIFY when a zone changes and
// serves the catalog zone. Create it with New, then Run it.
type Server struct {
	cfg    Config // Keys, AllowTransfer and Notify as at New: the current ones are in pol
	src    ZoneSource
	log    *slog.Logger
	pol    atomic.Pointer[policy] // keys and ACL, replaced by Reconfigure
	cat    *catalog               // nil without a catalog
	notify *notifier
	met    *metricsSet
	xfrs   chan struct{} // transfers being written
	// updates bounds the UPDATEs received over UDP being applied: each
	// runs beside the socket's reader, which goes on answering.
	updates  chan struct{}
	updating sync.WaitGroup // the UDP updates being applied; Run waits for them

	ready chan struct{}
	lis   atomic.Pointer[listen.Listener] // nil until Run has bound the sockets
	tlis  atomic.Pointer[listen.Listener] // the TLS listener; nil without one or until bound

	reconfigure sync.Mutex // one Reconfigure at a time

	catSubs catalogSubs // StreamSource's subscribers to catalog versions (push.go)
}

// New checks cfg and returns a Server for the zones of src; nothing is
// bound or sent until Run.
func New(cfg Config, src ZoneSource, logger *slog.Logger) (*Server, error) {
	cfg.defaults()
	ring, err := cfg.check()
	if err != nil {
		return nil, err
	}
	if src == nil {
		return nil, fmt.Errorf("%w: no zone source", ErrConfig)
	}
	s := &Server{
		cfg:     cfg,
		src:     src,
		log:     logger.With("component", "xfrout"),
		met:     newMetrics(),
		xfrs:    make(chan struct{}, cfg.MaxTransfers),
		updates: make(chan struct{}, maxUDPUpdates),
		ready:   make(chan struct{}),
	}
	if cfg.Catalog != "" {
		s.cat = newCatalog(cfg.Catalog, cfg.CatalogJournal, cfg.Now)
	}
	s.pol.Store(newPolicy(ring, cfg))
	s.notify = newNotifier(cfg, ring, s.log, s.met, s.currentSOA)
	return s, nil
}

// Ready is closed once Run has bound every address, built the catalog and
// serves.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addrs returns the bound addresses (with the real port when 0 was asked),
// once Ready is closed.
func (s *Server) Addrs() []netip.AddrPort { return s.lis.Load().Addrs() }

// TLSAddrs returns the bound addresses of the transfer server over TLS,
// once Ready is closed; none without TLSListen.
func (s *Server) TLSAddrs() []netip.AddrPort { return s.tlis.Load().Addrs() }

// Collectors returns the server's Prometheus collectors, to register.
func (s *Server) Collectors() []prometheus.Collector {
	return append(s.met.collectors(), &catalogCollector{s.cat})
}

// Run binds every address, builds the catalog, serves and sends NOTIFYs
// until ctx is done or the source's subscription ends (an error: the source
// was closed under the server). At start it sends NOTIFY for every zone,
// as a primary does when it loads its zones.
func (s *Server) Run(ctx context.Context) error {
	lis, err := listen.Bind(ctx, listen.Config{Listen: s.cfg.Listen})
	if err != nil {
		return fmt.Errorf("xfrout: %w", err)
	}
	defer lis.Close()
	defer s.updating.Wait() // after the readers stopped: no update starts then
	// One slot per connection up to MaxConns, refused beyond (an
	// eviction would cut a transfer in progress), and only sources in
	// allow_transfer (or update.from) get one.
	s.limit(lis)
	s.lis.Store(lis)
	var tlis *listen.Listener
	if len(s.cfg.TLSListen) > 0 {
		if tlis, err = listen.Bind(ctx, listen.Config{Listen: s.cfg.TLSListen, TLS: s.cfg.TLS}); err != nil {
			return fmt.Errorf("xfrout: tls: %w", err)
		}
		defer tlis.Close()
		s.limit(tlis)
		s.tlis.Store(tlis)
	}
	events, unsubscribe := s.src.Subscribe()
	defer unsubscribe()
	if s.cat != nil {
		if _, err := s.refreshCatalog(ctx); err != nil {
			return err
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // before wg.Wait
	context.AfterFunc(ctx, lis.Close)
	udp := lis.UDP()
	errc := make(chan error, len(udp)+2) // UDP, TCP, TLS
	for _, u := range udp {
		wg.Go(func() {
			errc <- lis.ServeUDP(u, func(msg []byte, src netip.AddrPort, reply listen.UDPReply) {
				s.handle(ctx, msg, src, false, func(frame []byte) error { return reply.Send(frame[2:]) })
			})
		})
	}
	serveTCP := func(ctx context.Context) listen.Handler {
		return func(c *listen.Conn, msg []byte) bool {
			return s.handle(ctx, msg, c.Remote(), true, func(frame []byte) error { return c.Write(frame[2:]) })
		}
	}
	wg.Go(func() { errc <- lis.ServeTCP(serveTCP(ctx)) })
	if tlis != nil {
		context.AfterFunc(ctx, tlis.Close)
		tctx := context.WithValue(ctx, tlsKey{}, true)
		wg.Go(func() { errc <- tlis.ServeTCP(serveTCP(tctx)) })
	}
	wg.Go(func() { s.notify.run(ctx) })
	s.log.Info("transfer server listening", "addrs", fmt.Sprint(s.Addrs()), "tls_addrs", fmt.Sprint(s.TLSAddrs()), "catalog", s.cfg.Catalog,
		"notify_targets", len(s.cfg.Notify))
	close(s.ready)

	if err := s.notifyAll(ctx); err != nil {
		s.log.Warn("listing zones for the start-up notify", "err", err)
	}
	// The catalog follows creations and deletions at once, but rebuilds at
	// most once per CatalogDelay: a lone new zone reaches the secondaries
	// without waiting, a bulk import makes a few catalog versions, not one
	// per zone.
	var catalogDue <-chan time.Time
	var lastCatalog time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case ev, ok := <-events:
			if !ok {
				return errors.New("xfrout: the zone source ended the subscription")
			}
			if s.cat != nil && dns.CanonicalName(ev.Zone) == s.cat.name {
				s.log.Warn("a zone has the name of the catalog zone; the catalog is served instead", "zone", ev.Zone)
				continue
			}
			if !ev.Deleted {
				s.notify.enqueue(ev.Zone, ev.Serial)
			}
			if s.cat != nil && (ev.Created || ev.Deleted) && catalogDue == nil {
				catalogDue = time.After(catalogWait(lastCatalog, time.Now(), s.cfg.CatalogDelay))
			}
		case <-catalogDue:
			catalogDue = nil
			lastCatalog = time.Now()
			changed, err := s.refreshCatalog(ctx)
			switch {
			case err != nil:
				s.log.Error("catalog update failed; retrying", "err", err)
				catalogDue = time.After(s.cfg.CatalogDelay)
			case changed:
				z := s.cat.current()
				s.notify.enqueue(z.Origin, z.Serial)
				s.catalogChanged()
			}
		}
	}
}

// tlsKey marks the context of the requests that came over TLS, for the
// ACL entries that want it.
type tlsKey struct{}

// overTLS reports whether the request of ctx came over TLS.
func overTLS(ctx context.Context) bool {
	v, _ := ctx.Value(tlsKey{}).(bool)
	return v
}

// limit sets the connection limits and hooks of a listener of the server:
// one slot per connection up to MaxConns, refused beyond (an eviction
// would cut a transfer in progress), and only sources in allow_transfer
// get one.
func (s *Server) limit(lis *listen.Listener) {
	lis.SetTCPLimits(listen.TCPLimits{MaxConns: s.cfg.MaxConns, Idle: s.cfg.IdleTimeout})
	lis.SetHooks(listen.Hooks{
		Allow: s.mayConnect,
		Denied: func(remote netip.AddrPort) {
			s.met.connsDenied.Inc()
			s.log.Debug("tcp connection from a source outside allow_transfer closed", "src", remote)
		},
		Refused: s.met.connsRefused.Inc,
		HandshakeFailed: func(remote netip.AddrPort, err error) {
			s.log.Info("tls handshake of a transfer connection failed", "src", remote, "err", err)
		},
	})
}

// catalogWait is how long a creation or deletion at now waits for the next
// catalog version when the last one was made at last: nothing when it is
// older than delay, else the rest of delay.
func catalogWait(last, now time.Time, delay time.Duration) time.Duration {
	return max(0, last.Add(delay).Sub(now))
}

// refreshCatalog rebuilds the catalog from the source's zone list.
func (s *Server) refreshCatalog(ctx context.Context) (bool, error) {
	infos, err := s.src.ListZones(ctx)
	if err != nil {
		return false, fmt.Errorf("catalog %s: list zones: %w", s.cat.name, err)
	}
	names := make([]string, 0, len(infos))
	for _, zi := range infos {
		if n := dns.CanonicalName(zi.Name); n != s.cat.name {
			names = append(names, n)
		}
	}
	changed, err := s.cat.update(names)
	if err != nil {
		return false, err
	}
	if changed {
		z := s.cat.current()
		s.log.Info("catalog updated", "zone", z.Origin, "serial", z.Serial, "members", len(names))
	}
	return changed, nil
}

// notifyAll queues a NOTIFY of every zone.
func (s *Server) notifyAll(ctx context.Context) error {
	if len(s.cfg.Notify) == 0 {
		return nil
	}
	if s.cat != nil {
		z := s.cat.current()
		s.notify.enqueue(z.Origin, z.Serial)
	}
	infos, err := s.src.ListZones(ctx)
	if err != nil {
		return err
	}
	for _, zi := range infos {
		if s.cat == nil || dns.CanonicalName(zi.Name) != s.cat.name {
			s.notify.enqueue(zi.Name, zi.Serial)
		}
	}
	return nil
}

// currentZone returns the current version of a zone, the catalog included;
// an error matching store.ErrNotFound when there is none.
func (s *Server) currentZone(ctx context.Context, name string) (*zone.Zone, error) {
	if s.cat != nil && name == s.cat.name {
		if z := s.cat.current(); z != nil {
			return z, nil
		}
		return nil, fmt.Errorf("zone %s: %w", name, store.ErrNotFound)
	}
	return s.src.Zone(ctx, name)
}

func (s *Server) currentSOA(ctx context.Context, name string) (*dns.SOA, error) {
	z, err := s.currentZone(ctx, dns.CanonicalName(name))
	if err != nil {
		return nil, err
	}
	soa := z.SOA()
	if soa == nil {
		return nil, fmt.Errorf("zone %s has no SOA", name)
	}
	return soa, nil
}

// changes is ZoneSource.Changes, the catalog included.
func (s *Server) changes(ctx context.Context, name string, from uint32) ([]store.Change, error) {
	if s.cat != nil && name == s.cat.name {
		return s.cat.changes(from)
	}
	return s.src.Changes(ctx, name, from)
}

// mayConnect reports whether addr is in the prefix of an allow_transfer
// entry of the current policy (a reload may have changed it), whatever the
// entry's key, or may send UPDATE.
func (s *Server) mayConnect(addr netip.Addr) bool {
	pol := s.pol.Load()
	if pol.mayUpdate(addr) {
		return true
	}
	for _, a := range pol.allow {
		if a.Prefix.Contains(addr) {
			return true
		}
	}
	return false
}
