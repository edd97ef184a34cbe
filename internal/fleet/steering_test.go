package fleet

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/stream"
)

// steerHarness is a registry without levels (the steering state needs
// none), its clock and joined nodes.
type steerHarness struct {
	t   *testing.T
	clk *clock
	r   *Registry
	ses map[string]*session
}

func newSteerHarness(t *testing.T) *steerHarness {
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	r, err := New(Config{Now: clk.now}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return &steerHarness{t: t, clk: clk, r: r, ses: map[string]*session{}}
}

func (h *steerHarness) join(node string) {
	var st stops
	h.ses[node] = h.r.Join(stream.Member{Node: node, PoP: "P-" + node, Zones: map[string]uint32{}}, st.fn(node)).(*session)
}

// report sends vantage's endpoint states: endpoint → "state[:rtt]".
func (h *steerHarness) report(vantage string, eps map[string]string, load *float64) {
	h.t.Helper()
	rep := Report{Vantage: vantage, Time: h.clk.now(), IntervalMS: 250}
	for ep, s := range eps {
		state, rtt, _ := strings.Cut(s, ":")
		e := EndpointReport{Zone: "example.com.", Pool: "svc.example.com./A", Endpoint: ep, State: state, Quorum: 2, Load: load}
		if rtt != "" {
			d, _ := time.ParseDuration(rtt)
			e.RTTms = float64(d) / float64(time.Millisecond)
		}
		rep.Endpoints = append(rep.Endpoints, e)
	}
	if err := h.r.Observe(rep, "192.0.2.9:1"); err != nil {
		h.t.Fatal(err)
	}
}

// sent returns the state waiting in node's stream, nil when none.
func (h *steerHarness) sent(node string) *stream.Steering {
	select {
	case s := <-h.ses[node].steering:
		return &s
	default:
		return nil
	}
}

// TestSteeringQuorum: an endpoint is down only when the pool's quorum of
// fresh vantage points see it down; one monitor alone moves nothing; a
// stale monitor is not counted; each change is a new version sent at once
// to every node, and a node that joins gets the state in force.
func TestSteeringQuorum(t *testing.T) {
	h := newSteerHarness(t)
	h.join("a")
	h.join("b")
	h.report("eu", map[string]string{"192.0.2.1": "up:3ms", "192.0.2.2": "up:9ms"}, nil)
	s1 := h.sent("a")
	if s1 == nil || s1.Endpoints["192.0.2.1"].Down || s1.RTTms["eu"]["192.0.2.1"] != 3 || s1.RTTms["eu"]["192.0.2.2"] != 9 {
		t.Fatalf("first state %+v: want both up, eu RTTs 3 and 9", s1)
	}
	if s := h.sent("b"); s == nil || s.Version != s1.Version {
		t.Fatalf("node b got %+v, want version %d", s, s1.Version)
	}
	// One vantage point sees .1 down: below the quorum of 2, no change.
	h.report("us", map[string]string{"192.0.2.1": "down", "192.0.2.2": "up:20ms"}, nil)
	s2 := h.sent("a")
	if s2 == nil || s2.Endpoints["192.0.2.1"].Down || s2.RTTms["us"]["192.0.2.2"] != 20 {
		t.Fatalf("state %+v: .1 is down from one vantage point only (quorum 2), and us's RTT is new", s2)
	}
	// The same figures again (RTT within 20%): no new version.
	h.report("eu", map[string]string{"192.0.2.1": "up:3.2ms", "192.0.2.2": "up:9ms"}, nil)
	if s := h.sent("a"); s != nil {
		t.Fatalf("a new state %+v for an RTT within the noise", s)
	}
	// A second vantage point sees it down: down, at once.
	h.report("eu", map[string]string{"192.0.2.1": "down", "192.0.2.2": "up:9ms"}, nil)
	s3 := h.sent("a")
	if s3 == nil || !s3.Endpoints["192.0.2.1"].Down || s3.Endpoints["192.0.2.2"].Down || s3.Version != s2.Version+1 {
		t.Fatalf("state %+v: want .1 down from 2 of 2, version %d", s3, s2.Version+1)
	}
	// A node joining now gets it.
	h.join("c")
	if s := h.sent("c"); s == nil || s.Version != s3.Version {
		t.Fatalf("joining node got %+v, want version %d", s, s3.Version)
	}
	// us goes silent: its down vote becomes stale and .1 is up again
	// (fewer than a quorum of fresh vantage points).
	h.clk.add(DefaultStale + time.Second)
	h.report("eu", map[string]string{"192.0.2.1": "down", "192.0.2.2": "up:9ms"}, nil)
	s4 := h.sent("a")
	if s4 == nil || s4.Endpoints["192.0.2.1"].Down {
		t.Fatalf("state %+v: a stale vantage point counted", s4)
	}
	if _, ok := s4.RTTms["us"]; ok {
		t.Errorf("stale us RTTs kept: %+v", s4.RTTms)
	}
	// Load: the highest fresh figure.
	h.report("eu", map[string]string{"192.0.2.1": "down", "192.0.2.2": "up:9ms"}, ptr(12.0))
	if s := h.sent("a"); s == nil || s.Endpoints["192.0.2.2"].Load == nil || *s.Endpoints["192.0.2.2"].Load != 12 {
		t.Fatalf("state %+v: want load 12", s)
	}
	v := h.r.SteeringView("example.com.")
	if len(v.Pools) != 2 || v.Pools[0].Endpoint != "192.0.2.1" || len(v.Pools[0].Vantages) != 2 || !v.Pools[0].Vantages[1].Stale {
		t.Errorf("view %+v: want 2 endpoints, .1 seen by eu and (stale) us", v)
	}
	if v := h.r.SteeringView("other."); len(v.Pools) != 0 {
		t.Errorf("view of another zone: %+v", v)
	}
}

// TestSteeringStaleTick: when every monitor stops, the tick ages the
// reports out and the state falls back to every endpoint up.
func TestSteeringStaleTick(t *testing.T) {
	h := newSteerHarness(t)
	h.join("a")
	h.report("eu", map[string]string{"192.0.2.1": "down"}, nil)
	h.report("us", map[string]string{"192.0.2.1": "down"}, nil)
	for h.sent("a") != nil {
	}
	if !h.r.steering.Endpoints["192.0.2.1"].Down {
		t.Fatal("not down from 2 of 2")
	}
	h.clk.add(DefaultStale + time.Second)
	h.r.stepSteering()
	s := h.sent("a")
	if s == nil || len(s.Endpoints) != 0 {
		t.Fatalf("state %+v after every monitor went stale: want no endpoint listed (all up)", s)
	}
}
