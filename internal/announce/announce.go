// Package announce is the node's BGP speaker: it announces the anycast
// prefixes this node may serve to its routers and withdraws them on demand.
//
// It is the only package that imports GoBGP. The node role calls Set with the
// prefixes that should be announced (nil withdraws everything) and SetLevel
// with the PoP's level (normal, shed-1..3: announced with what
// Config.Levels adds; withdrawn: nothing announced); Run owns the BGP server
// for the lifetime of its context and withdraws everything before it
// returns.
//
// A change of level re-announces each prefix with its new attributes: one
// UPDATE that replaces the route at the router (an implicit withdrawal of
// the old path, RFC 4271 §3.1), never a withdrawal first, so the route is
// never missing while the catchment moves.
package announce

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/anycastdns/anycastdns/internal/fleet/level"
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrUnknownPrefix is returned by Set for a prefix that is not in Config.Announce.
	ErrUnknownPrefix = errors.New("prefix not in the announce list")
	// ErrStopped is returned by Set and Run once Run has returned.
	ErrStopped = errors.New("speaker stopped")
)

// Config is the speaker's configuration, converted from the node's config file.
type Config struct {
	ASN      uint32
	RouterID netip.Addr // must be IPv4 (BGP identifier)
	// ListenPort is the TCP port to accept BGP connections on; 0 = do not listen.
	ListenPort int32
	Peers      []Peer
	// Announce lists the prefixes this node may announce, with their attributes.
	Announce []Announcement
	// Levels are what the shed levels add to every announcement: [0] for
	// shed-1, [1] shed-2, [2] shed-3. The zero value adds nothing.
	Levels [3]Attributes
}

// Attributes are what a shed level adds to an announcement.
type Attributes struct {
	// Prepend more copies of the local ASN, after the announcement's own
	// (eBGP only, like Announcement.Prepend).
	Prepend          uint8
	Communities      []uint32    // added to the announcement's (once each)
	LargeCommunities [][3]uint32 // added to the announcement's (once each)
	MED              *uint32     // replaces the announcement's; nil = keep it
}

// Peer is one BGP neighbour (a router of this PoP).
type Peer struct {
	Address      netip.Addr
	LocalAddress netip.Addr // invalid = chosen by the kernel
	ASN          uint32
	Port         uint16 // TCP port to connect to; 0 = 179
	// Passive peers are not connected to; they must connect to ListenPort.
	Passive   bool
	HoldTime  time.Duration // 0 = 90 s; else at least 3 s, whole seconds
	Keepalive time.Duration // 0 = HoldTime/3
	Password  string        // TCP MD5 signature (RFC 2385)
	Multihop  uint8         // eBGP multihop TTL; 0 = directly connected
	BFD       BFD
}

// BFD configures single-hop BFD (RFC 5880/5881) for a peer.
type BFD struct {
	Enabled bool
	// Interval is both our desired minimum transmit interval and our required
	// minimum receive interval. 0 = 300 ms.
	Interval time.Duration
	// Multiplier is the detection multiplier. 0 = 3.
	Multiplier uint8
}

// Announcement is a prefix this node may announce, with its attributes.
type Announcement struct {
	Prefix netip.Prefix
	// NextHop is the next hop to announce; invalid = the session's local
	// address ("next hop self"). An IPv6 prefix sent over an IPv4 session (or
	// an IPv4 prefix over an IPv6 session) needs an explicit next hop of the
	// prefix's family.
	NextHop          netip.Addr
	Communities      []uint32 // RFC 1997, high 16 bits ASN, low 16 bits value
	LargeCommunities [][3]uint32
	MED              *uint32
	// Prepend repeats the local ASN this many extra times in the AS path
	// (eBGP only: GoBGP adds the one mandatory copy itself).
	Prepend uint8
}

// Status is a snapshot of the speaker's state.
type Status struct {
	Running   bool
	Sessions  []Session
	Announced []netip.Prefix // prefixes currently in the BGP RIB, sorted
	Level     level.Level    // as last set; the announced prefixes carry its attributes
}

// Session is the state of one BGP neighbour.
type Session struct {
	Peer     netip.Addr
	ASN      uint32
	State    string        // BGP FSM state: idle, connect, active, opensent, openconfirm, established
	Uptime   time.Duration // time since the session was established; 0 when not established
	BFD      string        // BFD session state: "" (BFD disabled), down, init, up, admin_down
	Restarts int           // number of times the peer was re-created after a session loss
}

const (
	defaultBFDInterval   = 300 * time.Millisecond
	defaultBFDMultiplier = 3
	defaultHoldTime      = 90 * time.Second
)

// Speaker announces a subset of the configured prefixes to every peer.
type Speaker struct {
	cfg    Config
	logger *slog.Logger
	known  map[netip.Prefix]Announcement
	ready  chan struct{}
	// bfdPort is the UDP port of BFD control packets, ours and the peers';
	// RFC 5881 fixes it at 3784, tests use others.
	bfdPort int

	mu        sync.Mutex
	desired   map[netip.Prefix]struct{}
	level     level.Level
	announced map[netip.Prefix]level.Level // with the level whose attributes it carries
	rt        *runtime                     // nil unless Run is between start and stop
	started   bool                         // Run was called
	stopped   bool                         // Run has returned
}

// New validates cfg and returns a speaker that announces nothing until Set is
// called and Run is running.
func New(cfg Config, logger *slog.Logger) (*Speaker, error) {
	if logger == nil {
		return nil, errors.New("new speaker: nil logger")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("new speaker: %w", err)
	}
	cfg = cfg.withDefaults()
	known := make(map[netip.Prefix]Announcement, len(cfg.Announce))
	for _, a := range cfg.Announce {
		known[a.Prefix] = a
	}
	return &Speaker{
		cfg:       cfg,
		logger:    logger.With("component", "announce"),
		known:     known,
		ready:     make(chan struct{}),
		bfdPort:   bfdPort,
		desired:   map[netip.Prefix]struct{}{},
		announced: map[netip.Prefix]level.Level{},
	}, nil
}

// Validate reports every problem in the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.ASN == 0 {
		errs = append(errs, errors.New("asn: must be set"))
	}
	if !c.RouterID.Is4() {
		errs = append(errs, fmt.Errorf("router id %v: must be an IPv4 address", c.RouterID))
	}
	if c.ListenPort < 0 || c.ListenPort > 65535 {
		errs = append(errs, fmt.Errorf("listen port %d: out of range", c.ListenPort))
	}
	if len(c.Peers) == 0 {
		errs = append(errs, errors.New("peers: at least one is needed"))
	}
	seenPeer := map[netip.Addr]bool{}
	for i, p := range c.Peers {
		where := fmt.Sprintf("peer %d (%v)", i, p.Address)
		if !p.Address.IsValid() || p.Address.Zone() != "" {
			errs = append(errs, fmt.Errorf("%s: address must be a valid address without zone", where))
			continue
		}
		if seenPeer[p.Address.Unmap()] {
			errs = append(errs, fmt.Errorf("%s: duplicate peer", where))
		}
		seenPeer[p.Address.Unmap()] = true
		if p.LocalAddress.IsValid() && p.LocalAddress.Is4() != p.Address.Unmap().Is4() {
			errs = append(errs, fmt.Errorf("%s: local address %v is of another family", where, p.LocalAddress))
		}
		if p.ASN == 0 {
			errs = append(errs, fmt.Errorf("%s: asn must be set", where))
		}
		if p.Passive && c.ListenPort == 0 {
			errs = append(errs, fmt.Errorf("%s: passive peer needs a listen port", where))
		}
		if p.HoldTime != 0 && (p.HoldTime < 3*time.Second || p.HoldTime%time.Second != 0 || p.HoldTime > 65535*time.Second) {
			errs = append(errs, fmt.Errorf("%s: hold time %v must be whole seconds in 3s..65535s", where, p.HoldTime))
		}
		if p.Keepalive != 0 && (p.Keepalive < time.Second || p.Keepalive%time.Second != 0) {
			errs = append(errs, fmt.Errorf("%s: keepalive %v must be whole seconds, at least 1s", where, p.Keepalive))
		}
		hold := p.HoldTime
		if hold == 0 {
			hold = defaultHoldTime
		}
		if p.Keepalive != 0 && p.Keepalive >= hold {
			errs = append(errs, fmt.Errorf("%s: keepalive %v must be below the hold time %v", where, p.Keepalive, hold))
		}
		if p.BFD.Enabled {
			if p.BFD.Interval != 0 && (p.BFD.Interval < 10*time.Millisecond || p.BFD.Interval > 10*time.Second) {
				errs = append(errs, fmt.Errorf("%s: bfd interval %v must be in 10ms..10s", where, p.BFD.Interval))
			}
			if p.Multihop > 1 {
				errs = append(errs, fmt.Errorf("%s: bfd is single-hop only (RFC 5881), not with multihop %d", where, p.Multihop))
			}
		}
	}
	seenPrefix := map[netip.Prefix]bool{}
	for i, a := range c.Announce {
		where := fmt.Sprintf("announce %d (%v)", i, a.Prefix)
		if !a.Prefix.IsValid() {
			errs = append(errs, fmt.Errorf("%s: invalid prefix", where))
			continue
		}
		if a.Prefix != a.Prefix.Masked() {
			errs = append(errs, fmt.Errorf("%s: host bits set, want %v", where, a.Prefix.Masked()))
		}
		if a.Prefix.Addr().Is4In6() {
			errs = append(errs, fmt.Errorf("%s: IPv4-mapped prefix, write it as IPv4", where))
		}
		if seenPrefix[a.Prefix] {
			errs = append(errs, fmt.Errorf("%s: duplicate prefix", where))
		}
		seenPrefix[a.Prefix] = true
		v4 := a.Prefix.Addr().Is4()
		if a.NextHop.IsValid() {
			if a.NextHop.Is4() != v4 || a.NextHop.Zone() != "" || a.NextHop.IsUnspecified() {
				errs = append(errs, fmt.Errorf("%s: next hop %v must be a specified address of the prefix's family", where, a.NextHop))
			}
		} else {
			// Next hop self: sent only over sessions of the prefix's own
			// family; at least one must exist.
			carried := false
			for _, p := range c.Peers {
				if p.Address.IsValid() && p.Address.Unmap().Is4() == v4 {
					carried = true
				}
			}
			if !carried && len(c.Peers) > 0 {
				errs = append(errs, fmt.Errorf("%s: next hop self needs a session of the prefix's family, and every peer is of the other: set a next hop", where))
			}
		}
		if a.Prepend > 0 {
			for _, p := range c.Peers {
				if p.ASN == c.ASN {
					errs = append(errs, fmt.Errorf("%s: prepend is eBGP only, but peer %v is iBGP", where, p.Address))
				}
			}
		}
	}
	for i, l := range c.Levels {
		where := fmt.Sprintf("level %v", level.Level(i+1))
		if l.Prepend == 0 {
			continue
		}
		for _, p := range c.Peers {
			if p.ASN == c.ASN {
				errs = append(errs, fmt.Errorf("%s: prepend is eBGP only, but peer %v is iBGP", where, p.Address))
			}
		}
		for _, a := range c.Announce {
			// One AS_SEQUENCE segment holds at most 255 ASNs.
			if int(a.Prepend)+int(l.Prepend) > 254 {
				errs = append(errs, fmt.Errorf("%s: prepend %d with announce %v's %d is more than 254", where, l.Prepend, a.Prefix, a.Prepend))
			}
		}
	}
	return errors.Join(errs...)
}

// at returns a as announced at level l (normal or shed-1..3).
func (a Announcement) at(l level.Level, levels *[3]Attributes) Announcement {
	if l < level.Shed1 || l > level.Shed3 {
		return a
	}
	x := levels[l-level.Shed1]
	a.Prepend += x.Prepend
	a.Communities = appendNew(slices.Clone(a.Communities), x.Communities)
	a.LargeCommunities = appendNew(slices.Clone(a.LargeCommunities), x.LargeCommunities)
	if x.MED != nil {
		a.MED = x.MED
	}
	return a
}

// appendNew appends the values of add that s does not hold yet.
func appendNew[T comparable](s, add []T) []T {
	for _, v := range add {
		if !slices.Contains(s, v) {
			s = append(s, v)
		}
	}
	return s
}

func (c Config) withDefaults() Config {
	peers := make([]Peer, len(c.Peers))
	for i, p := range c.Peers {
		p.Address = p.Address.Unmap()
		p.LocalAddress = p.LocalAddress.Unmap()
		if p.HoldTime == 0 {
			p.HoldTime = defaultHoldTime
		}
		if p.Keepalive == 0 {
			p.Keepalive = (p.HoldTime / 3).Truncate(time.Second)
		}
		if p.BFD.Enabled {
			if p.BFD.Interval == 0 {
				p.BFD.Interval = defaultBFDInterval
			}
			if p.BFD.Multiplier == 0 {
				p.BFD.Multiplier = defaultBFDMultiplier
			}
		}
		peers[i] = p
	}
	c.Peers = peers
	return c
}

// Ready is closed once Run has started the BGP server and added the peers.
func (s *Speaker) Ready() <-chan struct{} { return s.ready }

// Set converges the announced prefixes to exactly prefixes, which must all be
// in Config.Announce; nil withdraws everything. It may be called before Run
// (the set is applied when Run starts), is idempotent and safe for concurrent
// use.
func (s *Speaker) Set(prefixes []netip.Prefix) error {
	want := make(map[netip.Prefix]struct{}, len(prefixes))
	var unknown []error
	for _, p := range prefixes {
		if _, ok := s.known[p]; !ok {
			unknown = append(unknown, fmt.Errorf("set %v: %w", p, ErrUnknownPrefix))
			continue
		}
		want[p] = struct{}{}
	}
	if len(unknown) > 0 {
		return errors.Join(unknown...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		if len(want) == 0 {
			return nil
		}
		return fmt.Errorf("set %d prefixes: %w", len(want), ErrStopped)
	}
	s.desired = want
	if s.rt == nil {
		return nil
	}
	return s.reconcileLocked()
}

// SetLevel sets the level the prefixes given to Set are announced at:
// normal with their own attributes, shed-1..3 with what Config.Levels adds,
// withdrawn not at all. A prefix already announced is announced again with
// the new attributes, which replaces its route at the routers in one UPDATE
// (make-before-break); from or to withdrawn, the prefixes are announced or
// withdrawn. Like Set, it may be called before Run and after it returned,
// and is safe for concurrent use.
func (s *Speaker) SetLevel(l level.Level) error {
	if !l.Valid() {
		return fmt.Errorf("set level %v: not a level", l)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.level = l
	if s.rt == nil {
		return nil
	}
	return s.reconcileLocked()
}

// reconcileLocked makes the RIB match s.desired at s.level. s.mu must be
// held.
func (s *Speaker) reconcileLocked() error {
	want := s.desired
	if s.level == level.Withdrawn {
		want = nil
	}
	var errs []error
	for _, p := range sortedPrefixes(s.announced) {
		if _, ok := want[p]; ok {
			continue
		}
		if err := s.rt.withdraw(s.known[p]); err != nil {
			errs = append(errs, fmt.Errorf("withdraw %v: %w", p, err))
			continue
		}
		delete(s.announced, p)
		s.logger.Info("withdrawn", "prefix", p, "level", s.level)
	}
	for _, p := range sortedPrefixes(want) {
		was, ok := s.announced[p]
		if ok && was == s.level {
			continue
		}
		a := s.known[p].at(s.level, &s.cfg.Levels)
		// Adding a path for a prefix already announced replaces it.
		if err := s.rt.announce(a); err != nil {
			errs = append(errs, fmt.Errorf("announce %v at %v: %w", p, s.level, err))
			continue
		}
		s.announced[p] = s.level
		if ok {
			s.logger.Info("announced again with the attributes of the new level", "prefix", p, "level", s.level, "was", was, "prepend", a.Prepend)
		} else {
			s.logger.Info("announced", "prefix", p, "level", s.level, "prepend", a.Prepend)
		}
	}
	return errors.Join(errs...)
}

// Status returns the sessions and the announced prefixes.
func (s *Speaker) Status() Status {
	s.mu.Lock()
	rt := s.rt
	st := Status{Running: rt != nil, Announced: sortedPrefixes(s.announced), Level: s.level}
	s.mu.Unlock()
	if rt != nil {
		st.Sessions = rt.sessions()
	}
	return st
}

func sortedPrefixes[V any](m map[netip.Prefix]V) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return out
}
