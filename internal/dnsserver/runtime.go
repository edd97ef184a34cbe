package dnsserver

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anycastdns/anycastdns/internal/listen"
	"github.com/anycastdns/anycastdns/internal/ratelimit"
	"github.com/anycastdns/anycastdns/internal/steer"
	"github.com/anycastdns/anycastdns/internal/tsig"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// Settings are the reloadable settings of the DNS server. A reload builds
// new ones whole (SetSettings); nothing changes them in place.
type Settings struct {
	Identity Identity
	// MaxUDP is the largest EDNS UDP payload sent, 512..4096; another
	// value means 1232.
	MaxUDP int
	// RRL limits UDP answers; nil: no response rate limiting.
	RRL *ratelimit.RRL
	// Source limits the UDP queries of each source prefix before they
	// are parsed or answered; nil: no per-source limit.
	Source *ratelimit.SourceLimiter
	// Cookies answer DNS COOKIE options (RFC 7873, 9018); nil: the
	// options are ignored, as by a server without cookies.
	Cookies *ratelimit.Cookies
	// TSIG holds the keys (RFC 8945) that signed queries are checked and
	// answered with: the node's keyring (tsig_keys, the one the secondary
	// zones use). A query signed with a key it does not hold, with a
	// wrong MAC or at a time outside its fudge gets NOTAUTH with BADKEY,
	// BADSIG or BADTIME; a valid one gets a signed answer. nil: no keys.
	TSIG *tsig.Keyring
	// TCP are the limits of the TCP connections (zero fields take the
	// defaults of TCPLimits).
	TCP TCPLimits
	// Steer decides steered answers (the pools in the zones) from its
	// state; nil: an engine of the handler's own with no state (every
	// endpoint up, no region map, RTT or load).
	Steer *steer.Engine
	// Tap gets a copy of the answered queries (tap.go): dnstap and the
	// query log; nil: none. TapEvery > 1 hands it 1 in TapEvery of them,
	// at random, sampled by each worker before any work is done for
	// them; 0 or 1: every one.
	Tap      Tap
	TapEvery int
}

// TCPLimits are the limits of the TCP connections; zero fields take the
// defaults shown.
type TCPLimits struct {
	MaxConns   int           // open connections at most (1024)
	Idle       time.Duration // idle timeout (10s)
	MaxQueries int           // queries per connection (0: unlimited)
	// PerSource bounds the open connections of one source prefix
	// (SourceV4, SourceV6 bits) (64).
	PerSource int
	SourceV4  int // 32
	SourceV6  int // 64
	// BusyIdle replaces Idle while more than half of MaxConns are open
	// (1s); it is never longer than Idle.
	BusyIdle time.Duration
}

// NotifyFunc answers a NOTIFY message (RFC 1996): it gets the raw request
// and its source and returns the raw response, or nil to drop it. It runs on
// the query path, so it must hand real work to another goroutine.
type NotifyFunc func(req []byte, src netip.AddrPort) []byte

// Runtime is the immutable snapshot a query is answered from: the
// settings, the zones and the NOTIFY handler, with what derives from them.
// Each query loads it once; every change builds a new one and swaps it in
// with one pointer.
type Runtime struct {
	settings Settings
	zones    *zone.Set
	notify   NotifyFunc  // nil: NOTIFY is NOTIMP
	forward  ForwardFunc // nil: UPDATE is NOTIMP
	steer    *steer.Engine
	// Derived from settings.
	maxUDP int
	nsid   []byte           // NSID option data, nil when off
	tcp    listen.TCPLimits // the TCP limits as the listener applies them
}

// Settings returns the settings of the snapshot.
func (rt *Runtime) Settings() Settings { return rt.settings }

// Zones returns the zones of the snapshot.
func (rt *Runtime) Zones() *zone.Set { return rt.zones }

// maxUDPLimit is the largest UDP payload the configuration may ask for,
// the capacity of the UDP response buffers.
const maxUDPLimit = 4096

// Defaults of the TCP limits.
const (
	defaultTCPMaxConns  = 1024
	defaultTCPIdle      = 10 * time.Second
	defaultTCPPerSource = 64
	defaultTCPSourceV4  = 32
	defaultTCPSourceV6  = 64
	defaultTCPBusyIdle  = time.Second
)

// derive fills in what the snapshot derives from its settings; engine is the
// steering engine when the settings name none.
func (rt *Runtime) derive(engine *steer.Engine) {
	s := rt.settings
	rt.steer = s.Steer
	if rt.steer == nil {
		rt.steer = engine
	}
	rt.maxUDP = s.MaxUDP
	if rt.maxUDP < minUDP || rt.maxUDP > maxUDPLimit {
		rt.maxUDP = defaultUDP
	}
	rt.nsid = nil
	if s.Identity.NSID && s.Identity.Name != "" {
		rt.nsid = []byte(s.Identity.Name)
	}
	def := func(v, d int) int {
		if v <= 0 {
			return d
		}
		return v
	}
	defd := func(v, d time.Duration) time.Duration {
		if v <= 0 {
			return d
		}
		return v
	}
	t := s.TCP
	rt.tcp = listen.TCPLimits{
		MaxConns:   def(t.MaxConns, defaultTCPMaxConns),
		PerSource:  def(t.PerSource, defaultTCPPerSource),
		SourceV4:   def(t.SourceV4, defaultTCPSourceV4),
		SourceV6:   def(t.SourceV6, defaultTCPSourceV6),
		Idle:       defd(t.Idle, defaultTCPIdle),
		BusyIdle:   defd(t.BusyIdle, defaultTCPBusyIdle),
		MaxQueries: t.MaxQueries,
		// A new connection is never refused for want of room.
		Evict: true,
	}.WithDefaults()
}

// Handler answers queries from its current Runtime. It is safe for
// concurrent use; per-goroutine scratch state lives in a Worker.
type Handler struct {
	mu    sync.Mutex // one writer at a time: each builds on the current snapshot
	rt    atomic.Pointer[Runtime]
	stats *Stats
	steer *steer.Engine // when the settings name none
	// forwards bounds the UPDATEs received over UDP being forwarded.
	forwards chan struct{}
}

// NewHandler returns a handler with settings s that answers from an empty
// zone set until SetZones is called.
func NewHandler(s Settings, stats *Stats) *Handler {
	h := &Handler{stats: stats, steer: steer.NewEngine(), forwards: make(chan struct{}, maxForwards)}
	rt := &Runtime{settings: s, zones: zone.NewSet()}
	rt.derive(h.steer)
	h.rt.Store(rt)
	return h
}

// Runtime returns the current snapshot.
func (h *Handler) Runtime() *Runtime { return h.rt.Load() }

// update swaps in a new snapshot: a copy of the current one changed by
// change.
func (h *Handler) update(change func(rt *Runtime)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	next := *h.rt.Load()
	change(&next)
	next.derive(h.steer)
	h.rt.Store(&next)
}

// SetSettings replaces the settings (a reload) in one swap; the zones and
// the NOTIFY handler stay. Queries in progress finish with the old ones.
func (h *Handler) SetSettings(s Settings) { h.update(func(rt *Runtime) { rt.settings = s }) }

// Settings returns the settings in force.
func (h *Handler) Settings() Settings { return h.rt.Load().settings }

// Set replaces the settings and the zones in one swap: a reload of both.
func (h *Handler) Set(s Settings, zones *zone.Set) {
	h.update(func(rt *Runtime) { rt.settings, rt.zones = s, zones })
}

// SetZones replaces the served zones; the settings stay.
func (h *Handler) SetZones(zones *zone.Set) { h.update(func(rt *Runtime) { rt.zones = zones }) }

// Zones returns the served zones.
func (h *Handler) Zones() *zone.Set { return h.rt.Load().zones }

// SetNotify installs the NOTIFY handler; without one NOTIFY is NOTIMP.
func (h *Handler) SetNotify(f NotifyFunc) { h.update(func(rt *Runtime) { rt.notify = f }) }
