package zonesync

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/anycastdns/anycastdns/internal/tsig"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// Manager keeps the secondary zones of a node in step with their primaries.
// Create it with New (which loads the persisted zones, so that Zones answers
// at once), then Run it. All methods are safe for concurrent use.
type Manager struct {
	cfg      Config
	log      *slog.Logger
	ring     *tsig.Keyring
	client   *client
	store    *store
	sem      chan struct{}
	reserved map[string]bool
	catName  string // canonical name of the catalog zone; "" = none
	catPrim  []Primary

	mu      sync.RWMutex
	zones   map[string]*secondary // configured zones, the catalog and its members
	runCtx  context.Context       // nil until Run
	running sync.WaitGroup

	// unreached holds the primaries whose last connection attempt
	// failed (see States).
	reachMu   sync.Mutex
	unreached map[netip.AddrPort]bool

	fnMu       sync.Mutex
	onChange   []func()
	streamLive func() bool // SetStreamLive
	changed    chan struct{}

	met *metricsSet
}

// New validates cfg, creates the data directory and loads every persisted
// zone (the configured ones, the catalog and its members), so that Zones
// returns them before Run contacts any primary.
func New(cfg Config, logger *slog.Logger) (*Manager, error) {
	ring, err := cfg.check()
	if err != nil {
		return nil, err
	}
	cfg.Timers.defaults()
	cfg.MaxTransfers = cmp.Or(cfg.MaxTransfers, 8)
	cfg.MaxRecords = cmp.Or(cfg.MaxRecords, 10_000_000)
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = d.DialContext
	}
	st, err := newStore(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	m := &Manager{
		cfg: cfg, log: logger.With("component", "zonesync"), ring: ring,
		client:   &client{dial: cfg.Dial, ring: ring, timers: cfg.Timers, maxRecords: cfg.MaxRecords},
		store:    st,
		sem:      make(chan struct{}, cfg.MaxTransfers),
		reserved: map[string]bool{},
		zones:    map[string]*secondary{},
		changed:  make(chan struct{}, 1),
		met:      newMetrics(),
	}
	for _, r := range cfg.Reserved {
		m.reserved[dns.CanonicalName(r)] = true
	}
	var initial []*secondary
	for _, z := range cfg.Zones {
		s := m.newSecondary(dns.CanonicalName(z.Name), z.Primaries)
		m.zones[s.name] = s
		initial = append(initial, s)
	}
	var cat *secondary
	if cfg.Catalog != nil {
		m.catName, m.catPrim = dns.CanonicalName(cfg.Catalog.Zone), cfg.Catalog.Primaries
		cat = m.newSecondary(m.catName, m.catPrim)
		cat.isCatalog = true
		m.zones[cat.name] = cat
		initial = append(initial, cat)
	}
	m.loadAll(initial)
	catalogKnown := false
	if cat != nil && cat.z != nil {
		catalogKnown = m.syncCatalog(cat.z) == nil
	}
	if cfg.Catalog == nil || catalogKnown {
		m.removeStaleMembers()
	}
	return m, nil
}

// loadAll loads the persisted copies of zones in parallel.
func (m *Manager) loadAll(zones []*secondary) {
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, s := range zones {
		g.Go(func() error {
			s.loadPersisted()
			return nil
		})
	}
	_ = g.Wait()
}

// removeStaleMembers deletes the files of catalog members that are no
// longer members (removed while the node was down, or of a catalog that is
// no longer configured).
func (m *Manager) removeStaleMembers() {
	states, err := m.store.states()
	if err != nil {
		m.log.Warn("listing persisted zones failed", "err", err)
		return
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, st := range states {
		if st.Catalog == "" {
			continue
		}
		if s := m.zones[st.Zone]; s != nil && s.memberOf == st.Catalog {
			continue
		}
		if s := m.zones[st.Zone]; s != nil && s.memberOf == "" {
			continue // now a configured zone: its files are its own
		}
		m.log.Info("deleting zone no longer in the catalog", "zone", st.Zone, "catalog", st.Catalog)
		if err := m.store.remove(st.Zone); err != nil {
			m.log.Warn("deleting zone files failed", "zone", st.Zone, "err", err)
		}
	}
}

// Run refreshes the zones until ctx is done, then waits for every
// transfer in progress to stop.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.runCtx != nil {
		m.mu.Unlock()
		return errors.New("zonesync: Run called twice")
	}
	m.runCtx = ctx
	for _, s := range m.zones {
		m.start(s)
	}
	m.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			m.running.Wait()
			m.mu.RLock()
			for _, s := range m.zones {
				s.waitPersisted() // what the loops left to write
			}
			m.mu.RUnlock()
			return nil
		case <-m.changed:
			start := time.Now()
			m.fnMu.Lock()
			fns := slices.Clone(m.onChange)
			m.fnMu.Unlock()
			for _, f := range fns {
				f()
			}
			// A callback rebuilds the node's whole zone set: with
			// 10,000 zones arriving, back-to-back rebuilds took a core
			// from the transfers. When changes came in during the
			// callback (a burst), pausing for a multiple of its cost
			// bounds it to a fifth of a core; changes meanwhile are
			// coalesced into the next call. A change that comes alone
			// is not delayed at all, however long the last callback
			// took (on a loaded machine, a callback's wall time can be
			// tens of milliseconds, which would hold up the next change
			// a stream pushes).
			select {
			case <-m.changed:
				m.notifyChange() // for the next round
				if pause := min(4*time.Since(start), maxChangePause); pause >= time.Millisecond {
					select {
					case <-ctx.Done():
					case <-time.After(pause):
					}
				}
			default:
			}
		}
	}
}

// maxChangePause bounds the pause between two OnChange calls.
const maxChangePause = 100 * time.Millisecond

// start runs s's refresh loop; m.mu is held.
func (m *Manager) start(s *secondary) {
	if m.runCtx == nil || s.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(m.runCtx)
	s.cancel, s.done = cancel, make(chan struct{})
	m.running.Add(1)
	go func() {
		defer m.running.Done()
		s.run(ctx)
	}()
}

// OnChange registers f to be called after the set of served zones changed:
// a new version, a zone expired or unexpired, added or removed. Calls come
// one at a time from Run's goroutine, and bursts of changes are coalesced;
// f reads the new set with Zones.
func (m *Manager) OnChange(f func()) {
	m.fnMu.Lock()
	m.onChange = append(m.onChange, f)
	m.fnMu.Unlock()
}

func (m *Manager) notifyChange() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// Zones returns the secondary zones to serve: those with data that have not
// expired (the catalog zone is not served), in no particular order: the
// caller puts them in a zone.Set, and with 10,000 zones sorting them on
// every change cost more than the transfers.
func (m *Manager) Zones() []*zone.Zone {
	served, _ := m.ZoneSets()
	return served
}

// ZoneSets returns, from one snapshot, the secondary zones to serve and
// those past their SOA expire, in no particular order. The expired ones
// belong in the served set marked expired (zone.Set.WithExpired): they
// answer SERVFAIL, and fail alone.
func (m *Manager) ZoneSets() (served, expired []*zone.Zone) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	served = make([]*zone.Zone, 0, len(m.zones))
	for _, s := range m.zones {
		if s.isCatalog {
			continue
		}
		s.mu.Lock()
		switch {
		case s.z == nil:
		case s.expired:
			expired = append(expired, s.z)
		default:
			served = append(served, s.z)
		}
		s.mu.Unlock()
	}
	return served, expired
}

// Names returns every secondary zone the node should serve (configured and
// catalog members, not the catalog itself), sorted: what the node's health
// check wants loaded.
func (m *Manager) Names() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.zones))
	for name, s := range m.zones {
		if !s.isCatalog {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// CatalogPending returns the name of the configured catalog zone while it
// has no data (never transferred, nothing on disk), "" otherwise. Until the
// catalog is known the node cannot know which zones it should serve, so
// health counts the catalog as a zone not loaded.
func (m *Manager) CatalogPending() string {
	if m.catName == "" {
		return ""
	}
	m.mu.RLock()
	s := m.zones[m.catName]
	m.mu.RUnlock()
	if s == nil || s.current() != nil {
		return ""
	}
	return m.catName
}

// ZoneState is the state of a secondary zone that has data.
type ZoneState struct {
	Serial uint32
	// Expired: past its SOA expire without a refresh; it is answered
	// SERVFAIL.
	Expired bool
	// Unconfirmed: found expired on disk at start-up, and no refresh
	// attempt has ended since.
	Unconfirmed bool
}

// States returns the state of every secondary zone that has data, for the
// node's health check. A zone that never had data is absent (the check
// reports it as not loaded).
//
// A zone found expired on disk at start-up is Unconfirmed until its first
// refresh attempt ends, or until every one of its primaries has been found
// unreachable by some zone's attempt: a node restarted after a long absence
// does not announce a zone its primary would confirm a moment later, and a
// node restarted while the primaries are away does not wait for the queue
// of attempts of thousands of zones.
func (m *Manager) States() map[string]ZoneState {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make(map[string]ZoneState, len(m.zones))
	for name, s := range m.zones {
		if s.isCatalog {
			continue
		}
		s.mu.Lock()
		if s.z != nil {
			st := ZoneState{Serial: s.z.Serial, Expired: s.expired}
			st.Unconfirmed = s.expired && !s.attempted && !m.unreachable(s.primaries)
			out[name] = st
		}
		s.mu.Unlock()
	}
	return out
}

// reached records whether a refresh could connect to p.
func (m *Manager) reached(p netip.AddrPort, ok bool) {
	m.reachMu.Lock()
	defer m.reachMu.Unlock()
	switch {
	case ok:
		delete(m.unreached, p)
	case m.unreached == nil:
		m.unreached = map[netip.AddrPort]bool{p: true}
	default:
		m.unreached[p] = true
	}
}

// unreachable reports whether the last attempt to connect to each of ps
// failed.
func (m *Manager) unreachable(ps []Primary) bool {
	m.reachMu.Lock()
	defer m.reachMu.Unlock()
	for _, p := range ps {
		if !m.unreached[p.Addr] {
			return false
		}
	}
	return len(ps) > 0
}

// counts returns how many secondary zones (not the catalog) are served and
// pending (no data yet), and the names of the expired ones, without
// building their status.
func (m *Manager) counts() (served, pending int, expired []string) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for name, s := range m.zones {
		if s.isCatalog {
			continue
		}
		s.mu.Lock()
		switch {
		case s.z == nil:
			pending++
		case s.expired:
			expired = append(expired, name)
		default:
			served++
		}
		s.mu.Unlock()
	}
	return served, pending, expired
}

// ZoneStatus is the state of one secondary zone for the admin API.
type ZoneStatus struct {
	Name        string    `json:"name"`
	Catalog     bool      `json:"catalog,omitempty"`   // this is the catalog zone (not served)
	MemberOf    string    `json:"member_of,omitempty"` // catalog that provisioned it
	Loaded      bool      `json:"loaded"`
	Serial      uint32    `json:"serial"`
	Expired     bool      `json:"expired"`
	Primary     string    `json:"primary,omitempty"` // the primary of the served version
	LastRefresh time.Time `json:"last_refresh"`      // last time a primary confirmed the serial
	LastAttempt time.Time `json:"last_attempt"`
	LastError   string    `json:"last_error,omitempty"` // of the last attempt; "" when it succeeded
	NextRefresh time.Time `json:"next_refresh"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// Status returns the state of every secondary zone and the catalog, sorted
// by name.
func (m *Manager) Status() []ZoneStatus {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]ZoneStatus, 0, len(m.zones))
	for _, s := range m.zones {
		out = append(out, s.status())
	}
	slices.SortFunc(out, func(a, b ZoneStatus) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Refresh makes the zone check its primaries now (as a NOTIFY does).
func (m *Manager) Refresh(name string) error {
	m.mu.RLock()
	s := m.zones[dns.CanonicalName(name)]
	m.mu.RUnlock()
	if s == nil {
		return fmt.Errorf("refresh %s: %w", name, fs.ErrNotExist)
	}
	s.kick()
	return nil
}

// Collectors returns the Prometheus collectors of the manager.
func (m *Manager) Collectors() []prometheus.Collector {
	return append(m.met.collectors(), &zonesCollector{m})
}

// syncCatalog makes the member zones follow the catalog z. It returns an
// error (and changes nothing) when z is not an acceptable catalog.
func (m *Manager) syncCatalog(z *zone.Zone) error {
	members, problems, err := catalogMembers(z)
	if err != nil {
		m.met.catalogErrors.Inc()
		m.log.Error("catalog rejected, members unchanged", "catalog", z.Origin, "serial", z.Serial, "err", err)
		return err
	}
	for _, p := range problems {
		m.log.Warn("catalog member skipped", "catalog", z.Origin, "serial", z.Serial, "problem", p)
	}
	want := make(map[string]member, len(members))
	for _, mb := range members {
		want[mb.name] = mb
	}
	var removed, added []*secondary
	m.mu.Lock()
	for name, s := range m.zones {
		if s.memberOf == "" {
			continue
		}
		if mb, ok := want[name]; !ok || mb.id != s.memberID {
			// Gone, or re-added under a new unique id, which resets the
			// zone's state (RFC 9432 §5.6): it is transferred afresh.
			delete(m.zones, name)
			removed = append(removed, s)
		}
	}
	for _, mb := range members {
		if s, ok := m.zones[mb.name]; ok {
			if s.memberOf == "" && !s.isCatalog {
				m.log.Warn("catalog member is also a configured zone; the configuration wins", "zone", mb.name, "catalog", z.Origin)
			}
			continue
		}
		if m.reserved[mb.name] || mb.name == m.catName {
			m.log.Warn("catalog member is served from a file or is the catalog; ignored", "zone", mb.name, "catalog", z.Origin)
			continue
		}
		s := m.newSecondary(mb.name, m.catPrim)
		s.memberOf, s.memberID = z.Origin, mb.id
		if m.streaming() {
			s.firstDelay = StreamGrace // the stream sends it next (push.go)
		}
		m.zones[mb.name] = s
		added = append(added, s)
	}
	m.mu.Unlock()

	for _, s := range removed {
		s.stop()
		if err := m.store.remove(s.name); err != nil {
			m.log.Warn("deleting zone files failed", "zone", s.name, "err", err)
		}
		m.log.Info("catalog member removed", "zone", s.name, "catalog", z.Origin)
	}
	// Members known from disk start serving at once, before their first
	// refresh.
	m.loadAll(added)
	m.mu.Lock()
	for _, s := range added {
		if m.zones[s.name] == s {
			m.start(s)
		}
		m.log.Info("catalog member added", "zone", s.name, "catalog", z.Origin, "id", s.memberID, "loaded", s.current() != nil)
	}
	m.mu.Unlock()
	if len(removed)+len(added) > 0 {
		m.notifyChange()
	}
	return nil
}
