package zonesync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/anycastdns/anycastdns/internal/zone"
)

// secondary keeps one zone in step with its primaries. Its loop (run) owns
// the transitions; the fields under mu are read by the Manager's accessors.
type secondary struct {
	m         *Manager
	name      string // canonical
	primaries []Primary
	isCatalog bool
	memberOf  string // catalog zone that provisioned it; "" = configured
	memberID  string
	trigger   chan struct{} // NOTIFY and Refresh; capacity 1 coalesces bursts
	push      chan *pushReq // transfers pushed by a control plane's stream (push.go)
	// firstDelay holds back the first refresh of a member that a catalog
	// pushed over a live stream: the stream sends its data next.
	firstDelay time.Duration

	// Set by Manager.start under Manager.mu.
	cancel context.CancelFunc
	done   chan struct{}

	mu          sync.Mutex
	z           *zone.Zone // latest accepted version, kept when expired (IXFR base)
	expired     bool       // past its SOA expire: served as SERVFAIL
	attempted   bool       // a refresh attempt ended since the start
	primary     string
	lastRefresh time.Time
	lastAttempt time.Time
	nextRefresh time.Time
	expiresAt   time.Time
	lastErr     string
	failures    int

	// Also under mu. unverified: z was loaded from a state without a checksum (an
	// earlier version's): served, but never the base of an IXFR; the
	// next refresh transfers the whole zone.
	unverified bool
	// fileSum, fileRecords and fileBytes describe the zone file on disk,
	// for the state written after a refresh that changed nothing;
	// savedZone is the version on disk, the zone file's with its journal
	// of journalBytes applied (journal.go). Written by the persister
	// (persist.go).
	fileSum      string
	fileRecords  int
	fileBytes    int64
	journalBytes int64
	savedZone    *zone.Zone

	persister persister
}

func (m *Manager) newSecondary(name string, primaries []Primary) *secondary {
	return &secondary{m: m, name: name, primaries: primaries, trigger: make(chan struct{}, 1), push: make(chan *pushReq)}
}

// kick asks for a refresh now. It never blocks.
func (s *secondary) kick() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// stop ends the loop and waits for it.
func (s *secondary) stop() {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	s.waitPersisted()
}

// loadPersisted serves the copy in the data directory, if there is one.
func (s *secondary) loadPersisted() {
	m := s.m
	z, st, err := m.store.load(s.name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return
	case errors.Is(err, errCorrupt):
		m.met.persistErrors.Inc()
		m.log.Warn("persisted zone discarded: its file does not match the checksum or record count of its state; transferring it again (AXFR)",
			"zone", s.name, "err", err)
		return
	case err != nil:
		m.met.persistErrors.Inc()
		m.log.Error("persisted zone unusable, waiting for a transfer", "zone", s.name, "err", err)
		return
	case s.memberOf != "" && st.MemberID != s.memberID:
		m.log.Info("catalog member has a new unique id; dropping its old data", "zone", s.name, "old_id", st.MemberID, "id", s.memberID)
		if err := m.store.remove(s.name); err != nil {
			m.log.Warn("deleting zone files failed", "zone", s.name, "err", err)
		}
		return
	}
	_, _, expire := m.cfg.Timers.soaTimers(z.SOA())
	now := time.Now()
	s.mu.Lock()
	s.z, s.primary, s.lastRefresh = z, st.Primary, st.LastRefresh
	s.expiresAt = st.LastRefresh.Add(expire)
	s.expired = !now.Before(s.expiresAt)
	s.unverified, s.fileSum, s.fileRecords, s.savedZone = st.SHA256 == "", st.SHA256, st.Records, z
	s.fileBytes, s.journalBytes = st.FileBytes, st.JournalBytes
	s.mu.Unlock()
	if s.unverified {
		// Written by an earlier version (temporary file, fsync, rename):
		// served, but the first refresh transfers the whole zone rather
		// than apply differences to a copy nothing vouches for.
		m.log.Info("persisted zone has no checksum (an earlier version wrote it): served, and transferred in full at its first refresh",
			"zone", s.name, "serial", z.Serial, "file", m.store.zonePath(s.name))
	}
	if s.expired {
		m.log.Warn("persisted zone is past its expire time; answered SERVFAIL until a primary confirms it",
			"zone", s.name, "serial", z.Serial, "last_refresh", st.LastRefresh)
	} else {
		m.log.Info("zone loaded from disk", "zone", s.name, "serial", z.Serial, "records", z.Records, "last_refresh", st.LastRefresh)
	}
}

func (s *secondary) status() ZoneStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := ZoneStatus{
		Name: s.name, Catalog: s.isCatalog, MemberOf: s.memberOf,
		Loaded: s.z != nil, Expired: s.expired, Primary: s.primary,
		LastRefresh: s.lastRefresh, LastAttempt: s.lastAttempt, LastError: s.lastErr,
		NextRefresh: s.nextRefresh, ExpiresAt: s.expiresAt,
	}
	if s.z != nil {
		st.Serial = s.z.Serial
	}
	return st
}

// serving returns the current version and whether it is expired.
func (s *secondary) serving() (*zone.Zone, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.z, s.expired
}

func (s *secondary) current() *zone.Zone {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.z
}

// run is the zone's loop: refresh at once, then on the refresh timer (retry
// timer after a failure) and on every kick; expire when no primary has
// confirmed the zone for its expire time. Transfers pushed over a stream
// are applied here too, so that they and the refreshes take turns.
func (s *secondary) run(ctx context.Context) {
	defer close(s.done)
	refresh := time.NewTimer(s.firstDelay)
	defer refresh.Stop()
	expire := time.NewTimer(time.Hour)
	expire.Stop()
	defer expire.Stop()
	s.armExpire(expire)
	for {
		select {
		case <-ctx.Done():
			return
		case <-expire.C:
			s.expire()
			continue
		case req := <-s.push:
			if next, ok := s.applyPush(req); ok {
				refresh.Reset(next)
			}
			s.armExpire(expire)
			continue
		case <-s.trigger:
		case <-refresh.C:
		}
		next := s.refresh(ctx)
		if ctx.Err() != nil {
			return
		}
		refresh.Reset(next)
		s.armExpire(expire)
	}
}

// armExpire sets the expire timer to the zone's expire time.
func (s *secondary) armExpire(t *time.Timer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.z == nil || s.expired {
		t.Stop()
		return
	}
	t.Reset(time.Until(s.expiresAt))
}

func (s *secondary) expire() {
	s.mu.Lock()
	if s.z == nil || s.expired || time.Now().Before(s.expiresAt) {
		s.mu.Unlock()
		return
	}
	s.expired = true
	serial, last := s.z.Serial, s.lastRefresh
	s.mu.Unlock()
	s.m.log.Error("zone expired: no primary confirmed it within its SOA expire; answered SERVFAIL until one does",
		"zone", s.name, "serial", serial, "last_refresh", last)
	if !s.isCatalog {
		s.m.notifyChange()
	}
}

// refresh checks the primaries in order and transfers a newer version. It
// returns the delay until the next refresh.
//
// Only the exchanges with the primaries count against MaxTransfers: the
// new version is persisted (fsync) after the slot is given back, so that
// the disk does not hold up the transfers of other zones.
func (s *secondary) refresh(ctx context.Context) time.Duration {
	m := s.m
	select {
	case m.sem <- struct{}{}:
	case <-ctx.Done():
		return 0
	}
	// A NOTIFY that came while this refresh waited for its slot is
	// answered by it: without this, a new node that is sent NOTIFYs for
	// the zones it is still fetching asks for each of them twice.
	select {
	case <-s.trigger:
	default:
	}
	p, updated, err := s.pullFromPrimaries(ctx)
	<-m.sem
	switch {
	case err == nil:
		return s.succeeded(p, updated)
	case ctx.Err() != nil:
		return 0
	}
	return s.failed(err)
}

// pullFromPrimaries tries the primaries in order until one answers; it
// returns that primary and whether it gave a new version.
func (s *secondary) pullFromPrimaries(ctx context.Context) (Primary, bool, error) {
	rctx, cancel := context.WithTimeout(ctx, s.m.cfg.Timers.Timeout)
	defer cancel()
	s.mu.Lock()
	s.lastAttempt = time.Now()
	s.mu.Unlock()
	var errs []error
	for _, p := range s.primaries {
		updated, err := s.refreshFrom(rctx, p)
		if err == nil || !errors.Is(err, errUnreachable) {
			s.m.reached(p.Addr, true)
		} else if ctx.Err() == nil {
			s.m.reached(p.Addr, false)
		}
		if err == nil {
			return p, updated, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", p.Addr, err))
		if ctx.Err() != nil {
			return Primary{}, false, ctx.Err()
		}
	}
	return Primary{}, false, errors.Join(errs...)
}

// succeeded records a refresh that reached a primary and returns the
// refresh interval.
func (s *secondary) succeeded(p Primary, updated bool) time.Duration {
	return s.confirmed(p.Addr.String(), updated, true)
}

// confirmed records that from (a primary's address, or a stream) confirmed
// the zone, with a new version when updated, and returns the refresh
// interval. The version is persisted before it returns with wait, in the
// background without (persist.go).
func (s *secondary) confirmed(from string, updated, wait bool) time.Duration {
	m := s.m
	now := time.Now()
	s.mu.Lock()
	refresh, _, expire := m.cfg.Timers.soaTimers(s.z.SOA())
	refresh = m.cfg.Timers.jitter(refresh)
	wasExpired := s.expired
	s.expired, s.attempted = false, true
	s.lastRefresh, s.expiresAt, s.nextRefresh = now, now.Add(expire), now.Add(refresh)
	if s.failures > 0 {
		m.log.Info("zone refresh recovered", "zone", s.name, "primary", from, "failures", s.failures)
	}
	s.lastErr, s.failures = "", 0
	s.primary = from
	st := s.stateLocked()
	z := s.z
	s.mu.Unlock()
	if updated {
		m.met.refreshes.WithLabelValues("updated").Inc()
	} else {
		m.met.refreshes.WithLabelValues("unchanged").Inc()
	}
	s.persist(z, st, wait)
	if wasExpired {
		m.log.Info("zone confirmed by a primary; served again", "zone", s.name, "serial", z.Serial)
		if !s.isCatalog {
			m.notifyChange()
		}
	}
	return refresh
}

func (s *secondary) stateLocked() state {
	return state{
		Zone: s.name, Serial: s.z.Serial, LastRefresh: s.lastRefresh, Primary: s.primary,
		Catalog: s.memberOf, MemberID: s.memberID, SHA256: s.fileSum, Records: s.fileRecords,
	}
}

// failed records a refresh that reached no primary (or got nothing usable)
// and returns the retry interval.
func (s *secondary) failed(err error) time.Duration {
	m := s.m
	m.met.refreshes.WithLabelValues("failed").Inc()
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures++
	s.attempted = true
	var retry time.Duration
	if s.z != nil {
		_, retry, _ = m.cfg.Timers.soaTimers(s.z.SOA())
	} else {
		retry = m.cfg.Timers.Initial << min(s.failures-1, 20)
		retry = min(retry, m.cfg.Timers.MaxRetry)
	}
	retry = m.cfg.Timers.jitter(retry)
	s.nextRefresh = now.Add(retry)
	msg := err.Error()
	if len(msg) > 2000 {
		msg = msg[:2000] + "..."
	}
	repeat := s.failures > 1 && msg == s.lastErr
	s.lastErr = msg
	serial := uint32(0)
	if s.z != nil {
		serial = s.z.Serial
	}
	// A primary that stays down fails every zone on every retry: with
	// thousands of zones, one warning per zone per retry buries the rest
	// of the log. The first failure and each new error are warnings, the
	// same error again is debug, and the recovery is logged (succeeded).
	level := slog.LevelWarn
	if repeat {
		level = slog.LevelDebug
	}
	m.log.Log(context.Background(), level, "zone refresh failed", "zone", s.name, "serial", serial, "loaded", s.z != nil,
		"failures", s.failures, "retry_in", retry, "err", err)
	return retry
}

// refreshFrom asks p for its serial and transfers a newer version. It
// returns whether a new version was installed.
//
// Without a version, or with an unverified one, it transfers the zone at
// once (AXFR). With one, it
// first asks for the differences over UDP (RFC
// 1995 §2): one round trip, no TCP handshake, when they fit in a message;
// that answer also says whether there is anything newer, so it stands in
// for the SOA query. A newer SOA alone sends it straight to a transfer over
// TCP; no usable answer over UDP falls back to the SOA query and transfer
// over TCP.
func (s *secondary) refreshFrom(ctx context.Context, p Primary) (bool, error) {
	m := s.m
	s.mu.Lock()
	cur, unverified := s.z, s.unverified
	s.mu.Unlock()
	if cur == nil || unverified {
		// Nothing to compare a serial with, or a copy from disk that no
		// checksum vouches for and that no IXFR may build on: the AXFR
		// is the first question (half the exchanges of a new node).
		return s.update(ctx, p, nil)
	}
	if p.TLS == nil { // over TLS, nothing goes in clear (RFC 9103 §9)
		done, updated, err := s.refreshUDP(ctx, p, cur)
		if done {
			return updated, err
		}
	}
	serial, err := m.client.soa(ctx, p, s.name)
	if err != nil {
		return false, fmt.Errorf("soa query: %w", err)
	}
	if !s.newer(p, cur, serial) {
		return false, nil
	}
	return s.update(ctx, p, cur)
}

// update pulls a newer version than cur (nil: none) from p and installs
// it; it reports whether it did.
func (s *secondary) update(ctx context.Context, p Primary, cur *zone.Zone) (bool, error) {
	nz, err := s.pull(ctx, p, cur)
	if err != nil || nz == nil {
		return false, err
	}
	s.install(nz)
	return true, nil
}

// newer reports whether the primary's serial is newer than cur's, and
// warns when it is older.
func (s *secondary) newer(p Primary, cur *zone.Zone, serial uint32) bool {
	if zone.SerialLess(cur.Serial, serial) {
		return true
	}
	if serial != cur.Serial {
		s.m.log.Warn("primary has an older serial than ours; keeping ours", "zone", s.name, "primary", p.Addr, "primary_serial", serial, "serial", cur.Serial)
	}
	return false
}

// refreshUDP is the UDP step of refreshFrom. done reports whether the
// refresh is over (updated or not, or failed for good); otherwise the TCP
// path follows.
func (s *secondary) refreshUDP(ctx context.Context, p Primary, cur *zone.Zone) (done, updated bool, err error) {
	m := s.m
	res, err := m.client.ixfrUDP(ctx, p, s.name, cur.SOA())
	switch {
	case errors.Is(err, errNeedTCP):
		updated, err := s.update(ctx, p, cur)
		return true, updated, err
	case err != nil:
		if ctx.Err() != nil {
			return true, false, ctx.Err()
		}
		m.log.Debug("ixfr over udp failed; asking over tcp", "zone", s.name, "primary", p.Addr, "err", err)
		return false, false, nil
	case res.kind == kindUpToDate:
		s.newer(p, cur, res.first.Serial) // only to warn: up to date means not newer
		return true, false, nil
	}
	nz, err := s.build(res, cur, p)
	if err != nil {
		m.met.transfers.WithLabelValues(res.kind.String()+"_udp", resultOf(err)).Inc()
		m.log.Warn("ixfr over udp did not apply; transferring over tcp", "zone", s.name, "primary", p.Addr, "serial", cur.Serial, "err", err)
		return false, false, nil
	}
	m.met.transfers.WithLabelValues(res.kind.String()+"_udp", "ok").Inc()
	s.install(nz)
	return true, true, nil
}

// pull transfers a new version from p: IXFR when we have a version, AXFR
// when we have none or the IXFR fails in any way. It returns nil, nil when
// the primary has nothing newer after all.
func (s *secondary) pull(ctx context.Context, p Primary, cur *zone.Zone) (*zone.Zone, error) {
	m := s.m
	if cur != nil {
		soa := cur.SOA()
		res, err := m.client.transfer(ctx, p, s.name, soa)
		if err == nil && res.kind == kindUpToDate {
			return nil, nil
		}
		if err == nil {
			var nz *zone.Zone
			nz, err = s.build(res, cur, p)
			if err == nil {
				m.met.transfers.WithLabelValues(res.kind.String(), "ok").Inc()
				return nz, nil
			}
			m.met.transfers.WithLabelValues(res.kind.String(), resultOf(err)).Inc()
		} else {
			m.met.transfers.WithLabelValues("ixfr", resultOf(err)).Inc()
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("ixfr: %w", err)
		}
		m.log.Warn("ixfr failed; falling back to axfr", "zone", s.name, "primary", p.Addr, "serial", cur.Serial, "err", err)
	}
	res, err := m.client.transfer(ctx, p, s.name, nil)
	if err != nil {
		m.met.transfers.WithLabelValues("axfr", resultOf(err)).Inc()
		return nil, fmt.Errorf("axfr: %w", err)
	}
	nz, err := s.build(res, nil, p)
	if err != nil {
		m.met.transfers.WithLabelValues("axfr", resultOf(err)).Inc()
		if errors.Is(err, zone.ErrInvalid) {
			m.log.Error("transferred zone failed validation; previous version keeps serving", "zone", s.name, "primary", p.Addr, "err", err)
		}
		return nil, fmt.Errorf("axfr: %w", err)
	}
	m.met.transfers.WithLabelValues("axfr", "ok").Inc()
	return nz, nil
}

func resultOf(err error) string {
	if errors.Is(err, zone.ErrInvalid) {
		return "invalid"
	}
	return "failed"
}

// build turns a complete transfer into a validated zone.
func (s *secondary) build(res *xfrParser, cur *zone.Zone, p Primary) (*zone.Zone, error) {
	return s.buildFrom(res, cur, p.Addr.String())
}

// buildFrom is build for a transfer from anywhere (a primary's address, a
// stream), which the new version's Source names.
func (s *secondary) buildFrom(res *xfrParser, cur *zone.Zone, from string) (*zone.Zone, error) {
	source := fmt.Sprintf("%s from %s", res.kind, from)
	switch res.kind {
	case kindFull:
		nz, err := zone.FromRecords(s.name, res.full, source)
		if err != nil {
			return nil, err
		}
		// The canonical order, which the next IXFR needs, is built now
		// rather than when that IXFR waits for it.
		nz.Prepare()
		return nz, nil
	case kindDelta:
		nz, err := applySteps(cur, res.deltas)
		if err != nil {
			return nil, err
		}
		nz.Source = source // a new version, not yet seen by anyone else
		return nz, nil
	}
	return nil, fmt.Errorf("%w: nothing to build from a %s reply", ErrStream, res.kind)
}

// install serves a new version. A catalog's members follow it before the
// version becomes visible: once the catalog has data, CatalogPending no
// longer holds the node's announcement back, and the health check wants
// exactly Names() loaded; members added after that would let an empty node
// announce between the two.
func (s *secondary) install(nz *zone.Zone) {
	if s.isCatalog {
		_ = s.m.syncCatalog(nz) // rejected catalogs are logged and counted there
	}
	s.mu.Lock()
	old := s.z
	s.z, s.unverified = nz, false
	s.mu.Unlock()
	oldSerial := uint32(0)
	if old != nil {
		oldSerial = old.Serial
	}
	s.m.log.Info("zone updated", "zone", s.name, "serial", nz.Serial, "previous", oldSerial, "records", nz.Records, "source", nz.Source)
	if !s.isCatalog {
		s.m.notifyChange()
	}
}
