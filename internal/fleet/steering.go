package fleet

import (
	"cmp"
	"context"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/anycastdns/anycastdns/internal/stream"
)

// The steering state (issue #14): from the endpoint checks in the
// monitors' reports the registry builds one state — per endpoint down or
// not and its load, per region (a monitor's vantage point) the RTT to each
// endpoint — names it with a version and sends it whole down the stream of
// every connected node that takes it, at once when it changes and when a
// node joins. Every PoP thus holds the same state, and answers a client
// alike.
//
// An endpoint is down when at least its pool check's quorum of fresh
// vantage points see it down; a report older than the stale bound (the
// levels' Stale, else DefaultStale) counts for nothing, and an endpoint
// only stale or unknown reports speak of is not listed (up). When every
// endpoint of a pool is down the node's `up` policy keeps them all (fail
// open). An endpoint that several pools check is down when one pool's
// quorum says so; its load is the highest fresh one read.

// steeringTick is how often the state is rebuilt without a report, so
// that the reports of a monitor that stopped age out.
const steeringTick = 500 * time.Millisecond

// rttChange is how much an RTT must move (relative, and at least
// rttFloorMS) to make a new state: the RTTs of every report would
// otherwise make a new version each round.
const (
	rttChange  = 0.2
	rttFloorMS = 1.0
)

// epObs is the latest of one endpoint of one pool from one vantage point.
type epObs struct {
	rep      EndpointReport
	received time.Time
}

// observeEndpointsLocked replaces what vantage said of the endpoints;
// r.mu is held.
func (r *Registry) observeEndpointsLocked(vantage string, eps []EndpointReport, now time.Time) {
	for id, byVantage := range r.eps {
		delete(byVantage, vantage)
		if len(byVantage) == 0 {
			delete(r.eps, id)
		}
	}
	for _, e := range eps {
		id := endpointID(e)
		if r.eps[id] == nil {
			r.eps[id] = map[string]*epObs{}
		}
		r.eps[id][vantage] = &epObs{rep: e, received: now}
	}
}

// buildSteeringLocked builds the state from the fresh reports (without
// its version); r.mu is held.
func (r *Registry) buildSteeringLocked(now time.Time) stream.Steering {
	stale := r.stale()
	st := stream.Steering{Endpoints: map[string]stream.SteeringEndpoint{}, RTTms: map[string]map[string]float64{}}
	for _, byVantage := range r.eps {
		var key string
		downs, quorum := 0, 1
		var load *float64
		for v, o := range byVantage {
			if now.Sub(o.received) > stale {
				continue
			}
			key, quorum = o.rep.Endpoint, max(quorum, o.rep.Quorum)
			switch o.rep.State {
			case ReportDown:
				downs++
			case ReportUp:
				if o.rep.RTTms > 0 {
					if st.RTTms[v] == nil {
						st.RTTms[v] = map[string]float64{}
					}
					if cur, ok := st.RTTms[v][key]; !ok || o.rep.RTTms < cur {
						st.RTTms[v][key] = o.rep.RTTms
					}
				}
			}
			if o.rep.Load != nil && (load == nil || *o.rep.Load > *load) {
				l := *o.rep.Load
				load = &l
			}
		}
		if key == "" {
			continue // only stale reports
		}
		e := st.Endpoints[key]
		e.Down = e.Down || downs >= quorum
		if load != nil && (e.Load == nil || *load > *e.Load) {
			e.Load = load
		}
		st.Endpoints[key] = e
	}
	if len(st.RTTms) == 0 {
		st.RTTms = nil
	}
	return st
}

// steeringDiffers reports whether b is a new state for a: an endpoint's
// health or load changed, an endpoint or RTT figure came or went, or an
// RTT moved by more than rttChange.
func steeringDiffers(a, b stream.Steering) bool {
	if !maps.EqualFunc(a.Endpoints, b.Endpoints, func(x, y stream.SteeringEndpoint) bool {
		return x.Down == y.Down && (x.Load == nil) == (y.Load == nil) && (x.Load == nil || *x.Load == *y.Load)
	}) {
		return true
	}
	if len(a.RTTms) != len(b.RTTms) {
		return true
	}
	for region, ra := range a.RTTms {
		rb, ok := b.RTTms[region]
		if !ok || len(ra) != len(rb) {
			return true
		}
		for key, x := range ra {
			y, ok := rb[key]
			if !ok || math.Abs(x-y) > max(rttFloorMS, rttChange*x) {
				return true
			}
		}
	}
	return false
}

// stepSteering rebuilds the state and, when it changed, gives it a new
// version and sends it to every connected node.
func (r *Registry) stepSteering() {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.buildSteeringLocked(now)
	if r.steering != nil && !steeringDiffers(*r.steering, st) {
		return
	}
	if r.steering == nil && len(st.Endpoints) == 0 {
		return // nothing known yet: the nodes' empty state says as much
	}
	// Versions grow across restarts of the control plane: the first one
	// is the time in milliseconds.
	st.Version = r.steerVersion + 1
	if r.steerVersion == 0 {
		st.Version = max(1, uint64(now.UnixMilli()))
	}
	r.steerVersion = st.Version
	r.steering, r.steeringSince = &st, now
	down := 0
	for _, e := range st.Endpoints {
		if e.Down {
			down++
		}
	}
	r.log.Info("steering state", "version", st.Version, "endpoints", len(st.Endpoints), "down", down)
	for _, m := range r.members {
		if m.sess != nil {
			m.sess.sendSteering(st)
		}
	}
}

// RunSteering rebuilds the steering state every steeringTick (reports
// rebuild it at once) until ctx ends, so that stale reports stop counting.
func (r *Registry) RunSteering(ctx context.Context) error {
	t := time.NewTicker(steeringTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			r.stepSteering()
		}
	}
}

// sendSteering hands the stream the newest state, replacing one not yet
// sent; r.mu is held.
func (s *session) sendSteering(st stream.Steering) {
	for {
		select {
		case s.steering <- st:
			return
		default:
		}
		select {
		case <-s.steering:
		default:
		}
	}
}

// Steering implements stream.SteeringSession.
func (s *session) Steering() <-chan stream.Steering { return s.steering }

var _ stream.SteeringSession = (*session)(nil)

// SteeringView is the steering state as the fleet view shows it: its
// version, and per endpoint of each pool what each vantage point sees.
type SteeringView struct {
	Version uint64         `json:"version"`
	Since   time.Time      `json:"since,omitzero"`
	Pools   []EndpointView `json:"endpoints"`
}

// EndpointView is one endpoint of one pool.
type EndpointView struct {
	Zone     string `json:"zone"`
	Pool     string `json:"pool"`
	Endpoint string `json:"endpoint"`
	// Down as in the state sent to the nodes (any pool's quorum).
	Down     bool                  `json:"down"`
	Quorum   int                   `json:"quorum"`
	Load     *float64              `json:"load,omitempty"`
	Vantages []EndpointVantageView `json:"vantages"`
}

// EndpointVantageView is one vantage point's latest of an endpoint.
type EndpointVantageView struct {
	Vantage    string   `json:"vantage"`
	State      string   `json:"state"`
	RTTms      float64  `json:"rtt_ms"`
	Load       *float64 `json:"load,omitempty"`
	Error      string   `json:"error,omitempty"`
	AgeSeconds float64  `json:"age_seconds"`
	Stale      bool     `json:"stale"`
}

// SteeringView returns the steering state and the endpoint observations;
// zone, when set, keeps that zone's endpoints only.
func (r *Registry) SteeringView(zone string) SteeringView {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	stale := r.stale()
	v := SteeringView{Pools: []EndpointView{}}
	var cur stream.Steering
	if r.steering != nil {
		cur, v.Version, v.Since = *r.steering, r.steering.Version, r.steeringSince
	}
	for _, byVantage := range r.eps {
		var ev *EndpointView
		for vt, o := range byVantage {
			if zone != "" && o.rep.Zone != zone {
				break
			}
			if ev == nil {
				e := cur.Endpoints[o.rep.Endpoint]
				ev = &EndpointView{Zone: o.rep.Zone, Pool: o.rep.Pool, Endpoint: o.rep.Endpoint, Down: e.Down, Load: e.Load, Quorum: o.rep.Quorum}
			}
			age := now.Sub(o.received)
			ev.Vantages = append(ev.Vantages, EndpointVantageView{Vantage: vt, State: o.rep.State, RTTms: o.rep.RTTms, Load: o.rep.Load,
				Error: o.rep.Error, AgeSeconds: age.Seconds(), Stale: age > stale})
		}
		if ev != nil {
			slices.SortFunc(ev.Vantages, func(a, b EndpointVantageView) int { return cmp.Compare(a.Vantage, b.Vantage) })
			v.Pools = append(v.Pools, *ev)
		}
	}
	slices.SortFunc(v.Pools, func(a, b EndpointView) int {
		return cmp.Or(cmp.Compare(a.Zone, b.Zone), cmp.Compare(a.Pool, b.Pool), cmp.Compare(a.Endpoint, b.Endpoint))
	})
	return v
}
