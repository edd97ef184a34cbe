// Package fleet is the control plane's registry of its nodes: every node
// that holds one of the control plane's keys and opens a stream (package
// stream) is a member, with no per-node configuration. The registry
// records each member's heartbeats (health, announcements, load, version)
// and the serial it holds of every zone, computes how far each member lags
// behind the control plane, and lets an operator revoke a member. Members
// and revocations are kept in a file, so that a restarted control plane
// still lists the members that have not come back yet.
//
// The registry is read through View (GET /v1/fleet, anycastctl fleet, the
// fleet page) and Prometheus (anycastd_fleet_*).
package fleet

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/anycastdns/anycastdns/internal/fleet/level"
	"github.com/anycastdns/anycastdns/internal/stream"
)

// Errors of the registry, matched with errors.Is.
var (
	// ErrNotFound: no member of that name.
	ErrNotFound = errors.New("no such member")
	// ErrConnected: the member is connected (forget a member only once it
	// is gone; revoke it to send it away).
	ErrConnected = errors.New("member is connected")
	// ErrRevoked: the member was revoked.
	ErrRevoked = errors.New("member revoked")
)

// States of a member.
const (
	StateConnected    = "connected"
	StateDisconnected = "disconnected"
	StateRevoked      = "revoked"
)

// Serials returns the control plane's current serial of every zone, the
// catalog included (stream.Source.Zones).
type Serials func(ctx context.Context) (map[string]uint32, error)

// Registry is the fleet. Its methods are safe for concurrent use.
type Registry struct {
	path    string // the state file; "" = kept in memory only
	serials Serials
	catalog string
	log     *slog.Logger
	now     func() time.Time

	lv     *LevelsConfig // nil = no decisions
	engine *level.Engine
	kick   chan struct{} // a report came: step now
	met    *levelMetrics

	mu       sync.Mutex
	members  map[string]*member
	revoked  map[string]time.Time
	monitors map[string]*monitor                // vantage → its last report
	obs      map[string]map[string]*observation // PoP → vantage → latest
	pops     map[string]*popLevel               // PoP → level in force
	pins     map[string]*pin                    // PoP → operator's pin

	eps           map[string]map[string]*epObs // endpoint of a pool → vantage → latest (steering.go)
	steering      *stream.Steering             // the state in force, nil before one
	steerVersion  uint64
	steeringSince time.Time

	saveMu sync.Mutex // one save at a time, so the newest state is the one written
}

// member is one node as the registry knows it.
type member struct {
	node, pop, key, version string
	firstSeen               time.Time
	lastSeen                time.Time // last frame or stream end
	since                   time.Time // of the current state

	// The live stream; nil when disconnected.
	sess *session
	// What the last heartbeat said, and when.
	status    stream.Status
	heartbeat time.Time
	firstBeat time.Time // first heartbeat of the current stream
	remote    string
	lastError string // why the last stream ended

	serials map[string]uint32    // zone → serial held (0: no data)
	pending map[string]pushState // zone → pushed, not yet acknowledged
}

type pushState struct {
	serial uint32
	at     time.Time
}

// Config configures a Registry.
type Config struct {
	// File keeps the members and revocations across restarts; "" = none.
	File string
	// Serials gives the control plane's current serials, for the lag.
	Serials Serials
	// Catalog is the control plane's catalog zone: a member that follows
	// it should follow every zone, and the zones it does not are missing.
	Catalog string
	// Now replaces time.Now in tests.
	Now func() time.Time
	// Levels, when set, makes the registry decide the PoPs' levels from
	// the monitors' reports and send them to the nodes (levels.go).
	Levels *LevelsConfig
}

// New returns a registry, with the members and revocations of cfg.File
// when it exists.
func New(cfg Config, logger *slog.Logger) (*Registry, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Serials == nil {
		cfg.Serials = func(context.Context) (map[string]uint32, error) { return nil, nil }
	}
	r := &Registry{path: cfg.File, serials: cfg.Serials, catalog: cfg.Catalog, log: logger.With("component", "fleet"), now: cfg.Now,
		members: map[string]*member{}, revoked: map[string]time.Time{},
		monitors: map[string]*monitor{}, obs: map[string]map[string]*observation{}, pops: map[string]*popLevel{}, pins: map[string]*pin{},
		eps:  map[string]map[string]*epObs{},
		kick: make(chan struct{}, 1), met: newLevelMetrics()}
	if cfg.Levels != nil {
		if cfg.Levels.Interval <= 0 || cfg.Levels.Validity <= cfg.Levels.Interval || cfg.Levels.Engine.Stale <= 0 {
			return nil, fmt.Errorf("fleet: levels: want an interval, a validity above it and a stale bound, got %+v", *cfg.Levels)
		}
		lv := *cfg.Levels
		r.lv, r.engine = &lv, level.New(lv.Engine)
	}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

// Admit refuses a revoked node (stream.Registry).
func (r *Registry) Admit(node, _ string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if at, ok := r.revoked[node]; ok {
		return fmt.Errorf("%w: node %s was revoked at %s; an operator can undo it (anycastctl fleet unrevoke %s)", ErrRevoked, node, at.Format(time.RFC3339), node)
	}
	return nil
}

// Join records a member's new stream (stream.Registry). A stream of the
// same node that is still open is ended: the newer one is the node's.
func (r *Registry) Join(m stream.Member, stop func(reason string)) stream.Session {
	now := r.now()
	r.mu.Lock()
	mb := r.members[m.Node]
	isNew := mb == nil
	if isNew {
		mb = &member{node: m.Node, firstSeen: now}
		r.members[m.Node] = mb
	}
	old := mb.sess
	changed := isNew || mb.pop != m.PoP || mb.key != m.Key || mb.version != m.Version
	mb.pop, mb.key, mb.version, mb.remote = m.PoP, m.Key, m.Version, m.Remote
	mb.since, mb.lastSeen = now, now
	mb.heartbeat, mb.firstBeat = time.Time{}, time.Time{}
	mb.serials = maps.Clone(m.Zones)
	mb.pending = map[string]pushState{}
	s := &session{r: r, m: mb, stop: stop, levels: make(chan stream.Level, 1), steering: make(chan stream.Steering, 1)}
	mb.sess = s
	if r.steering != nil {
		s.sendSteering(*r.steering) // the state at once, on join
	}
	if pl := r.pops[m.PoP]; r.lv != nil && pl != nil && pl.known {
		s.sendLevel(r.levelMsg(m.PoP, pl)) // the PoP's level at once, before its first refresh
	}
	r.mu.Unlock()
	if old != nil {
		old.stop(stream.ByeReplaced)
	}
	if isNew {
		r.log.Info("new member", "node", m.Node, "pop", m.PoP, "key", m.Key, "version", m.Version, "remote", m.Remote)
	} else {
		r.log.Info("member connected", "node", m.Node, "pop", m.PoP, "remote", m.Remote)
	}
	if changed {
		r.save()
	}
	return s
}

// session is one stream of a member (stream.Session).
type session struct {
	r        *Registry
	m        *member
	stop     func(reason string)
	levels   chan stream.Level    // the newest level not yet sent
	steering chan stream.Steering // the newest steering state not yet sent
}

func (s *session) live() bool { return s.m.sess == s }

func (s *session) Heartbeat(hb stream.Heartbeat) {
	now := s.r.now()
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if !s.live() {
		return
	}
	m := s.m
	if m.firstBeat.IsZero() {
		m.firstBeat = now
	}
	m.status, m.heartbeat, m.lastSeen = hb.Status, now, now
	for z, serial := range hb.Serials {
		m.setSerial(z, serial)
	}
	for _, z := range hb.Removed {
		delete(m.serials, z)
		delete(m.pending, z)
	}
}

func (m *member) setSerial(zone string, serial uint32) {
	m.serials[zone] = serial
	if p, ok := m.pending[zone]; ok && serial != 0 && !serialLess(serial, p.serial) {
		delete(m.pending, zone)
	}
}

func (s *session) Serial(zone string, serial uint32) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if s.live() {
		s.m.setSerial(zone, serial)
		s.m.lastSeen = s.r.now()
	}
}

func (s *session) Unfollow(zone string) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if s.live() {
		delete(s.m.serials, zone)
		delete(s.m.pending, zone)
	}
}

func (s *session) Pushed(zone string, serial uint32) {
	now := s.r.now()
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	if !s.live() {
		return
	}
	if _, ok := s.m.pending[zone]; !ok {
		s.m.pending[zone] = pushState{serial: serial, at: now}
	} else {
		p := s.m.pending[zone]
		p.serial = serial // keep the time of the oldest change not acknowledged
		s.m.pending[zone] = p
	}
}

func (s *session) Leave(err error) {
	now := s.r.now()
	s.r.mu.Lock()
	if !s.live() {
		s.r.mu.Unlock()
		return
	}
	m := s.m
	m.sess = nil
	m.since, m.lastSeen = now, now
	m.pending = map[string]pushState{}
	m.lastError = ""
	if err != nil {
		m.lastError = err.Error()
	}
	s.r.mu.Unlock()
	s.r.log.Info("member disconnected", "node", m.node, "pop", m.pop, "err", err)
	s.r.save()
}

// Revoke revokes a member: its stream ends now and it is refused until
// Unrevoke. The revocation is kept across restarts. A node that was never
// seen can be revoked too (before it connects).
func (r *Registry) Revoke(node string) error {
	if node == "" {
		return fmt.Errorf("%w: no node name", ErrNotFound)
	}
	r.mu.Lock()
	r.revoked[node] = r.now()
	var sess *session
	if m := r.members[node]; m != nil {
		sess = m.sess
	}
	r.mu.Unlock()
	if sess != nil {
		sess.stop(stream.ByeRevoked)
	}
	r.log.Warn("member revoked", "node", node, "connected", sess != nil)
	return r.saveErr()
}

// Unrevoke lets a revoked node connect again.
func (r *Registry) Unrevoke(node string) error {
	r.mu.Lock()
	_, ok := r.revoked[node]
	delete(r.revoked, node)
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s is not revoked", ErrNotFound, node)
	}
	r.log.Info("member revocation lifted", "node", node)
	return r.saveErr()
}

// Forget removes a member that is not connected from the registry (a PoP
// taken down for good). Its revocation, if any, stays.
func (r *Registry) Forget(node string) error {
	r.mu.Lock()
	m := r.members[node]
	switch {
	case m == nil:
		r.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrNotFound, node)
	case m.sess != nil:
		r.mu.Unlock()
		return fmt.Errorf("%w: %s (revoke it first)", ErrConnected, node)
	}
	delete(r.members, node)
	r.mu.Unlock()
	r.log.Info("member forgotten", "node", node)
	return r.saveErr()
}

// serialLess is RFC 1982 "a is older than b".
func serialLess(a, b uint32) bool { return a != b && (b-a) < 1<<31 }

// serialLag is how many serials b is ahead of a (RFC 1982), 0 when it is
// not.
func serialLag(a, b uint32) uint32 {
	if serialLess(a, b) {
		return b - a
	}
	return 0
}

// ZoneLag is one zone of a member that is behind, or the zone asked for.
type ZoneLag struct {
	Zone    string `json:"zone"`
	Serial  uint32 `json:"serial"`  // held by the member (0: no data)
	Current uint32 `json:"current"` // the control plane's
	Lag     uint32 `json:"lag"`     // serials behind (RFC 1982 difference)
	// Missing: the member follows the catalog but not this zone (yet).
	Missing bool `json:"missing,omitempty"`
}

// MemberView is one member as the API shows it.
type MemberView struct {
	Node    string `json:"node"`
	PoP     string `json:"pop"`
	Key     string `json:"key"`
	Version string `json:"version"`
	Remote  string `json:"remote,omitempty"`
	// State is connected, disconnected or revoked, since Since.
	State     string    `json:"state"`
	Since     time.Time `json:"since"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// LastHeartbeat and its age; FirstHeartbeat of the current stream.
	LastHeartbeat       time.Time `json:"last_heartbeat,omitzero"`
	FirstHeartbeat      time.Time `json:"first_heartbeat,omitzero"`
	HeartbeatAgeSeconds *float64  `json:"heartbeat_age_seconds"`
	// From the last heartbeat.
	Health        string         `json:"health"`
	Drained       bool           `json:"drained"`
	BGP           bool           `json:"bgp"`
	Announced     []netip.Prefix `json:"announced"`
	Level         string         `json:"level"`        // normal, shed-1..3, withdrawn; "" without BGP
	LevelSource   string         `json:"level_source"` // what set it: health, drain, pin, control, ...
	QPS           float64        `json:"qps"`
	TCPConns      int            `json:"tcp_conns"`
	ZonesServed   int            `json:"zones_served"`
	ZonesExpired  int            `json:"zones_expired"`
	UptimeSeconds float64        `json:"uptime_seconds"`
	// Lag behind the control plane: zones followed and behind (or
	// missing), the largest serial difference, and the age of the oldest
	// change pushed and not yet acknowledged.
	ZonesFollowed int       `json:"zones_followed"`
	ZonesBehind   int       `json:"zones_behind"`
	ZonesMissing  int       `json:"zones_missing"`
	MaxSerialLag  uint32    `json:"max_serial_lag"`
	LagSeconds    float64   `json:"lag_seconds"`
	Behind        []ZoneLag `json:"behind"` // the first MaxBehind, by name
	// Zone is the zone asked for (View's zone), when there is one.
	Zone      *ZoneLag `json:"zone,omitempty"`
	LastError string   `json:"last_error,omitempty"`
}

// View is the fleet as the API shows it.
type View struct {
	Generated time.Time    `json:"generated"`
	Zones     int          `json:"zones"` // zones of the control plane, the catalog included
	Members   []MemberView `json:"members"`
	// Levels are the decisions' settings, null when the control plane
	// decides no levels; PoPs every PoP known from members, reports,
	// decisions or pins; Monitors every vantage point that reported.
	Levels   *LevelsView   `json:"levels"`
	PoPs     []PoPView     `json:"pops"`
	Monitors []MonitorView `json:"monitors"`
	// Steering is the steering state sent to the nodes and the pools'
	// endpoints as the monitors see them (steering.go).
	Steering SteeringView `json:"steering"`
}

// MaxBehind bounds the zones listed as behind per member.
const MaxBehind = 20

// View returns every member and revoked node, sorted by PoP and node. With
// zone set, each member's Zone says what it holds of it.
func (r *Registry) View(ctx context.Context, zone string) (View, error) {
	cur, err := r.serials(ctx)
	if err != nil {
		return View{}, fmt.Errorf("fleet: current serials: %w", err)
	}
	sv := r.SteeringView("")
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	v := View{Generated: now, Zones: len(cur), Members: []MemberView{}}
	for _, m := range r.members {
		v.Members = append(v.Members, r.viewOf(m, cur, zone, now))
	}
	for node, at := range r.revoked {
		if r.members[node] == nil {
			v.Members = append(v.Members, MemberView{Node: node, State: StateRevoked, Since: at, Announced: []netip.Prefix{}, Behind: []ZoneLag{}})
		}
	}
	slices.SortFunc(v.Members, func(a, b MemberView) int {
		return cmp.Or(cmp.Compare(a.PoP, b.PoP), cmp.Compare(a.Node, b.Node))
	})
	v.Levels = r.levelsView()
	v.PoPs, v.Monitors = r.popsView(now)
	v.Steering = sv
	return v, nil
}

// viewOf builds a member's view; r.mu is held.
func (r *Registry) viewOf(m *member, cur map[string]uint32, zone string, now time.Time) MemberView {
	mv := MemberView{
		Node: m.node, PoP: m.pop, Key: m.key, Version: m.version, Remote: m.remote,
		State: StateDisconnected, Since: m.since, FirstSeen: m.firstSeen, LastSeen: m.lastSeen,
		LastHeartbeat: m.heartbeat, FirstHeartbeat: m.firstBeat,
		Health: m.status.Health, Drained: m.status.Drained, BGP: m.status.BGP, Announced: slices.Clone(m.status.Announced),
		Level: m.status.Level, LevelSource: m.status.LevelSource,
		QPS: m.status.QPS, TCPConns: m.status.TCPConns, ZonesServed: m.status.Zones, ZonesExpired: m.status.Expired,
		UptimeSeconds: m.status.UptimeSeconds, LastError: m.lastError, Behind: []ZoneLag{},
	}
	if mv.Announced == nil {
		mv.Announced = []netip.Prefix{}
	}
	if m.sess != nil {
		mv.State, mv.LastError = StateConnected, ""
	} else {
		mv.Health, mv.QPS, mv.TCPConns, mv.Level, mv.LevelSource = "unknown", 0, 0, "", ""
	}
	if at, ok := r.revoked[m.node]; ok {
		mv.State, mv.Since = StateRevoked, at
	}
	// A member not heard from since the control plane started ages from
	// when it was last seen.
	if last := cmp.Or(m.heartbeat, m.lastSeen); !last.IsZero() {
		age := now.Sub(last).Seconds()
		mv.HeartbeatAgeSeconds = &age
	}
	for z, serial := range m.serials {
		c, ok := cur[z]
		if !ok {
			continue // a zone of another primary
		}
		mv.ZonesFollowed++
		if lag := serialLag(serial, c); lag > 0 || serial == 0 {
			mv.ZonesBehind++
			mv.MaxSerialLag = max(mv.MaxSerialLag, lag)
			mv.Behind = append(mv.Behind, ZoneLag{Zone: z, Serial: serial, Current: c, Lag: lag})
		}
	}
	if _, follows := m.serials[r.catalog]; follows && r.catalog != "" {
		for z, c := range cur {
			if _, ok := m.serials[z]; !ok {
				mv.ZonesMissing++
				mv.Behind = append(mv.Behind, ZoneLag{Zone: z, Current: c, Lag: c, Missing: true})
			}
		}
	}
	slices.SortFunc(mv.Behind, func(a, b ZoneLag) int { return cmp.Compare(a.Zone, b.Zone) })
	if len(mv.Behind) > MaxBehind {
		mv.Behind = mv.Behind[:MaxBehind]
	}
	if m.sess != nil {
		for _, p := range m.pending {
			mv.LagSeconds = max(mv.LagSeconds, now.Sub(p.at).Seconds())
		}
	}
	if zone != "" {
		c, known := cur[zone]
		serial, follows := m.serials[zone]
		zl := &ZoneLag{Zone: zone, Serial: serial, Current: c, Lag: serialLag(serial, c), Missing: known && !follows}
		mv.Zone = zl
	}
	return mv
}

// The state file.

type fileState struct {
	Members []fileMember         `json:"members"`
	Revoked map[string]time.Time `json:"revoked"`
	Pins    map[string]*pin      `json:"pins,omitempty"` // PoP → operator's level
}

type fileMember struct {
	Node      string    `json:"node"`
	PoP       string    `json:"pop"`
	Key       string    `json:"key"`
	Version   string    `json:"version"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	LastError string    `json:"last_error,omitempty"`
}

func (r *Registry) load() error {
	if r.path == "" {
		return nil
	}
	b, err := os.ReadFile(r.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fleet: read %s: %w", r.path, err)
	}
	var st fileState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("fleet: %s: %w", r.path, err)
	}
	for _, fm := range st.Members {
		if fm.Node == "" {
			continue
		}
		r.members[fm.Node] = &member{node: fm.Node, pop: fm.PoP, key: fm.Key, version: fm.Version,
			firstSeen: fm.FirstSeen, lastSeen: fm.LastSeen, since: fm.LastSeen, lastError: fm.LastError,
			serials: map[string]uint32{}, pending: map[string]pushState{}}
	}
	maps.Copy(r.revoked, st.Revoked)
	for pop, p := range st.Pins {
		if p != nil && p.Level.Valid() && checkName(pop) == nil {
			r.pins[pop] = p
		}
	}
	return nil
}

// save writes the state file, logging a failure.
func (r *Registry) save() {
	if err := r.saveErr(); err != nil {
		r.log.Error("saving the fleet failed", "file", r.path, "err", err)
	}
}

func (r *Registry) saveErr() error {
	if r.path == "" {
		return nil
	}
	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	r.mu.Lock()
	st := fileState{Revoked: maps.Clone(r.revoked), Members: []fileMember{}, Pins: maps.Clone(r.pins)}
	for _, m := range r.members {
		st.Members = append(st.Members, fileMember{Node: m.node, PoP: m.pop, Key: m.key, Version: m.version,
			FirstSeen: m.firstSeen, LastSeen: m.lastSeen, LastError: m.lastError})
	}
	r.mu.Unlock()
	slices.SortFunc(st.Members, func(a, b fileMember) int { return cmp.Compare(a.Node, b.Node) })
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(r.path), ".fleet-*.json")
	if err != nil {
		return fmt.Errorf("fleet: save: %w", err)
	}
	_, werr := tmp.Write(append(b, '\n'))
	if err := errors.Join(werr, tmp.Sync(), tmp.Close()); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("fleet: save %s: %w", r.path, err)
	}
	if err := os.Rename(tmp.Name(), r.path); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("fleet: save %s: %w", r.path, err)
	}
	return nil
}
