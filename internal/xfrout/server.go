package xfrout

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

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

	ready chan struct{}
	mu    sync.Mutex
	addrs []netip.AddrPort
	udp   []*net.UDPConn
	tcp   []*net.TCPListener
	conns map[net.Conn]struct{}
	done  bool

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
		cfg:   cfg,
		src:   src,
		log:   logger.With("component", "xfrout"),
		met:   newMetrics(),
		xfrs:  make(chan struct{}, cfg.MaxTransfers),
		ready: make(chan struct{}),
		conns: map[net.Conn]struct{}{},
	}
	if cfg.Catalog != "" {
		s.cat = newCatalog(cfg.Catalog, cfg.CatalogJournal, cfg.Now)
	}
	s.pol.Store(&policy{ring: ring, allow: cfg.AllowTransfer})
	s.notify = newNotifier(cfg, ring, s.log, s.met, s.currentSOA)
	return s, nil
}

// Ready is closed once Run has bound every address, built the catalog and
// serves.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addrs returns the bound addresses (with the real port when 0 was asked),
// once Ready is closed.
func (s *Server) Addrs() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.addrs)
}

// Collectors returns the server's Prometheus collectors, to register.
func (s *Server) Collectors() []prometheus.Collector {
	return append(s.met.collectors(), &catalogCollector{s.cat})
}

// Run binds every address, builds the catalog, serves and sends NOTIFYs
// until ctx is done or the source's subscription ends (an error: the source
// was closed under the server). At start it sends NOTIFY for every zone,
// as a primary does when it loads its zones.
func (s *Server) Run(ctx context.Context) error {
	defer s.closeAll()
	for _, ap := range s.cfg.Listen {
		if err := s.bind(ctx, ap); err != nil {
			return err
		}
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
	errc := make(chan error, len(s.udp)+len(s.tcp))
	for _, u := range s.udp {
		wg.Go(func() { errc <- s.serveUDP(ctx, u) })
	}
	for _, l := range s.tcp {
		wg.Go(func() { errc <- s.serveTCP(ctx, l, &wg) })
	}
	wg.Go(func() { s.notify.run(ctx) })
	s.log.Info("transfer server listening", "addrs", fmt.Sprint(s.Addrs()), "catalog", s.cfg.Catalog,
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

// bind opens the UDP socket and TCP listener of one address. For port 0,
// the port the UDP socket got may be taken for TCP: then it tries others.
func (s *Server) bind(ctx context.Context, ap netip.AddrPort) error {
	for try := 1; ; try++ {
		err := s.bindOnce(ctx, ap)
		if err == nil || ap.Port() != 0 || try == 10 || !errors.Is(err, syscall.EADDRINUSE) {
			return err
		}
	}
}

func (s *Server) bindOnce(ctx context.Context, ap netip.AddrPort) error {
	var lc net.ListenConfig
	unet, tnet := "udp4", "tcp4"
	if ap.Addr().Is6() && !ap.Addr().Is4In6() {
		unet, tnet = "udp6", "tcp6"
	}
	pc, err := lc.ListenPacket(ctx, unet, ap.String())
	if err != nil {
		return fmt.Errorf("xfrout: listen udp %s: %w", ap, err)
	}
	u := pc.(*net.UDPConn)
	if ap.Port() == 0 {
		ap = netip.AddrPortFrom(ap.Addr(), uint16(u.LocalAddr().(*net.UDPAddr).Port))
	}
	ln, err := lc.Listen(ctx, tnet, ap.String())
	if err != nil {
		_ = u.Close()
		return fmt.Errorf("xfrout: listen tcp %s: %w", ap, err)
	}
	s.mu.Lock()
	s.udp = append(s.udp, u)
	s.tcp = append(s.tcp, ln.(*net.TCPListener))
	s.addrs = append(s.addrs, ap)
	s.mu.Unlock()
	return nil
}

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = true
	for _, u := range s.udp {
		_ = u.Close()
	}
	for _, l := range s.tcp {
		_ = l.Close()
	}
	for c := range s.conns {
		_ = c.Close()
	}
}

func (s *Server) closing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.done
}

func (s *Server) serveUDP(ctx context.Context, u *net.UDPConn) error {
	stop := context.AfterFunc(ctx, s.closeAll)
	defer stop()
	buf := make([]byte, 65535)
	for {
		n, src, err := u.ReadFromUDPAddrPort(buf)
		if err != nil {
			if s.closing() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("xfrout: udp read %s: %w", u.LocalAddr(), err)
		}
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		s.handle(ctx, buf[:n], src, false, func(frame []byte) error {
			_, err := u.WriteToUDPAddrPort(frame[2:], src)
			return err
		})
	}
}

func (s *Server) serveTCP(ctx context.Context, l *net.TCPListener, wg *sync.WaitGroup) error {
	stop := context.AfterFunc(ctx, s.closeAll)
	defer stop()
	for {
		c, err := l.AcceptTCP()
		if err != nil {
			if s.closing() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("xfrout: tcp accept %s: %w", l.Addr(), err)
		}
		// Only secondaries in allow_transfer have anything to ask: others
		// are closed before a byte is read, so that they cannot hold the
		// connection slots (a request from an allowed prefix still needs
		// the key its entry names).
		if src, ok := remoteAddr(c); !ok || !s.mayConnect(src) {
			_ = c.SetLinger(0)
			_ = c.Close()
			s.met.connsDenied.Inc()
			s.log.Debug("tcp connection from a source outside allow_transfer closed", "src", c.RemoteAddr())
			continue
		}
		s.mu.Lock()
		if s.done || len(s.conns) >= s.cfg.MaxConns {
			s.mu.Unlock()
			_ = c.Close()
			s.met.connsRefused.Inc()
			continue
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		wg.Go(func() {
			s.serveConn(ctx, c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		})
	}
}

// remoteAddr is the unmapped source address of a connection.
func remoteAddr(c *net.TCPConn) (netip.Addr, bool) {
	ta, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok {
		return netip.Addr{}, false
	}
	a, ok := netip.AddrFromSlice(ta.IP)
	return a.Unmap(), ok
}

// mayConnect reports whether addr is in the prefix of an allow_transfer
// entry of the current policy (a reload may have changed it), whatever the
// entry's key.
func (s *Server) mayConnect(addr netip.Addr) bool {
	for _, a := range s.pol.Load().allow {
		if a.Prefix.Contains(addr) {
			return true
		}
	}
	return false
}

// serveConn answers the queries of one TCP connection in turn.
func (s *Server) serveConn(ctx context.Context, c *net.TCPConn) {
	defer func() { _ = c.Close() }()
	remote, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	r := bufio.NewReaderSize(c, 1024)
	msg := make([]byte, 512)
	var lenb [2]byte
	for {
		if err := c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout)); err != nil {
			return
		}
		if _, err := io.ReadFull(r, lenb[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(lenb[:]))
		if n > cap(msg) {
			msg = make([]byte, n)
		}
		msg = msg[:n]
		if _, err := io.ReadFull(r, msg); err != nil {
			return
		}
		ok := s.handle(ctx, msg, remote, true, func(frame []byte) error {
			if err := c.SetWriteDeadline(time.Now().Add(s.cfg.IdleTimeout)); err != nil {
				return err
			}
			_, err := c.Write(frame)
			return err
		})
		if !ok {
			return
		}
	}
}
