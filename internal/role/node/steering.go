package node

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/anycastdns/anycastdns/internal/admin"
	"github.com/anycastdns/anycastdns/internal/steer"
	"github.com/anycastdns/anycastdns/internal/stream"
)

// The node's steering state (issue #14): the control plane sends the
// state it built from the monitors' endpoint checks down the stream
// (stream.Steering); the node turns it into a steer.State and swaps it
// into its engine with one atomic store (steer.Engine.SetState), so that
// queries never wait for an update nor an update for queries. The engine
// is the DNS handler's (dnsserver.Settings.Steer) and lives as long as the
// node: a reload keeps it and its state. A state older than the one in
// force (another control plane's, or one overtaken) is dropped: every PoP
// ends on the newest version, so every PoP answers a client alike.

// steering is the node's engine and what it knows of the state in force.
type steering struct {
	engine *steer.Engine

	mu       sync.Mutex
	version  uint64
	received time.Time
	state    stream.Steering
	// geo is the node's own map of client places (configuration section
	// steering), the Geo of every state it gives the engine; nil = none.
	geo     *steer.GeoMap
	geoInfo admin.SteeringGeo
}

func newSteering() *steering { return &steering{engine: steer.NewEngine()} }

// apply makes st the state of the engine unless a newer one is in force;
// it reports whether it did.
func (s *steering) apply(st stream.Steering, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.Version <= s.version {
		return false
	}
	s.version, s.received, s.state = st.Version, now, st
	s.engine.SetState(s.current())
	return true
}

// current is the engine's State of the frame in force and the node's map.
// Called with mu held.
func (s *steering) current() *steer.State {
	out := stateOf(s.state)
	out.Geo = s.geo
	return out
}

// setGeo makes g (nil: none) the map of the engine's states from now on.
func (s *steering) setGeo(g *steer.GeoMap, info admin.SteeringGeo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.geo, s.geoInfo = g, info
	s.engine.SetState(s.current())
}

// stateOf is the engine's State of a steering frame.
func stateOf(st stream.Steering) *steer.State {
	out := &steer.State{Endpoints: make(map[string]steer.EndpointState, len(st.Endpoints))}
	for key, e := range st.Endpoints {
		es := steer.EndpointState{Down: e.Down}
		if e.Load != nil {
			es.Load, es.HasLoad = *e.Load, true
		}
		out.Endpoints[key] = es
	}
	if len(st.RTTms) > 0 {
		out.RTT = make(map[string]map[string]time.Duration, len(st.RTTms))
		for region, byKey := range st.RTTms {
			m := make(map[string]time.Duration, len(byKey))
			for key, ms := range byKey {
				m[key] = time.Duration(ms * float64(time.Millisecond))
			}
			out.RTT[region] = m
		}
	}
	return out
}

// geoDigest is the digest of the node's map ("" without one).
func (s *steering) geoDigest() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.geo.Digest()
}

// status is the state in force for the node's status; nil before one.
func (s *steering) status() *admin.Steering {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.version == 0 && s.geo == nil {
		return nil
	}
	out := &admin.Steering{Version: s.version, Received: s.received, Endpoints: []admin.SteeringEndpoint{}}
	if s.geo != nil {
		info := s.geoInfo
		out.Geo = &info
	}
	for key, e := range s.state.Endpoints {
		out.Endpoints = append(out.Endpoints, admin.SteeringEndpoint{Endpoint: key, Down: e.Down, Load: e.Load})
	}
	slices.SortFunc(out.Endpoints, func(a, b admin.SteeringEndpoint) int { return cmp.Compare(a.Endpoint, b.Endpoint) })
	return out
}

// applySteering is the stream's OnSteering.
func (n *Node) applySteering(st stream.Steering) {
	if !n.steering.apply(st, time.Now()) {
		n.log.Debug("steering state dropped: not newer than the one in force", "version", st.Version)
		return
	}
	down := 0
	for _, e := range st.Endpoints {
		if e.Down {
			down++
		}
	}
	n.log.Info("steering state applied", "version", st.Version, "endpoints", len(st.Endpoints), "down", down)
}
