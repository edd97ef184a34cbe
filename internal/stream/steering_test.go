package stream

import (
	"context"
	"reflect"
	"sync"
	"testing"
	"time"
)

// steerRegistry is a fakeRegistry whose sessions carry steering states,
// the first one in the channel before the writer starts (as the fleet does
// for a node that joins while a state exists).
type steerRegistry struct {
	*fakeRegistry
	mu       sync.Mutex
	sessions map[string]chan Steering
	first    Steering
}

func (r *steerRegistry) Join(m Member, stop func(string)) Session {
	s := r.fakeRegistry.Join(m, stop).(*fakeSession)
	ch := make(chan Steering, 1)
	ch <- r.first
	r.mu.Lock()
	r.sessions[m.Node] = ch
	r.mu.Unlock()
	return &steerSession{s, ch}
}

type steerSession struct {
	*fakeSession
	ch chan Steering
}

func (s *steerSession) Steering() <-chan Steering { return s.ch }

// TestSteeringFrames: a node that takes steering states gets the current
// one on join and every later one, whole; a node of an older version gets
// none and its stream stays up.
func TestSteeringFrames(t *testing.T) {
	load := 3.5
	reg := &steerRegistry{fakeRegistry: newFakeRegistry(), sessions: map[string]chan Steering{},
		first: Steering{Version: 7, Endpoints: map[string]SteeringEndpoint{"192.0.2.1": {Down: true}, "192.0.2.2": {Load: &load}},
			RTTms: map[string]map[string]float64{"eu": {"192.0.2.2": 4}}}}
	h := startServerWith(t, newFakeSource(map[string]uint32{}), reg.fakeRegistry, reg, "")
	got := make(chan Steering, 10)
	c, err := NewClient(ClientConfig{URL: "http://" + h.addr, KeyName: "node-key", Secret: testSecret, Node: "a", PoP: "pop-a",
		OnSteering: func(s Steering) { got <- s }}, newFakeZones(map[string]uint32{}), func() Status { return Status{Health: "healthy"} }, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	next := func() Steering {
		t.Helper()
		select {
		case s := <-got:
			return s
		case <-time.After(5 * time.Second):
			t.Fatal("no steering frame within 5s")
		}
		return Steering{}
	}
	if s := next(); !reflect.DeepEqual(s, reg.first) {
		t.Errorf("first state %+v, want %+v", s, reg.first)
	}
	second := Steering{Version: 8, Endpoints: map[string]SteeringEndpoint{"192.0.2.1": {}}}
	reg.mu.Lock()
	ch := reg.sessions["a"]
	reg.mu.Unlock()
	ch <- second
	if s := next(); !reflect.DeepEqual(s, second) {
		t.Errorf("second state %+v, want %+v", s, second)
	}
	waitFor(t, "the client's count", func() bool { return c.State().Steering == 2 })

	old := startClient(t, h.addr, "b", testSecret, newFakeZones(map[string]uint32{}))
	waitFor(t, "the old node's stream", old.Live)
	time.Sleep(300 * time.Millisecond)
	reg.mu.Lock()
	och := reg.sessions["b"]
	reg.mu.Unlock()
	if len(och) != 1 {
		t.Error("the server took a steering state for a node that does not take them")
	}
	if !old.Live() || old.State().Steering != 0 {
		t.Errorf("old node: live %v, steering %d; want live, 0", old.Live(), old.State().Steering)
	}
}
