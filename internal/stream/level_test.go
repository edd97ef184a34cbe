package stream

import (
	"context"
	"sync"
	"testing"
	"time"
)

// levelRegistry is a fakeRegistry whose sessions carry levels: each
// session's channel is filled before the stream's writer starts, as the
// fleet does for a PoP that has a level when its node joins.
type levelRegistry struct {
	*fakeRegistry
	mu       sync.Mutex
	sessions map[string]chan Level
	first    Level
}

func (r *levelRegistry) Join(m Member, stop func(string)) Session {
	s := r.fakeRegistry.Join(m, stop).(*fakeSession)
	ch := make(chan Level, 1)
	ch <- r.first
	r.mu.Lock()
	r.sessions[m.Node] = ch
	r.mu.Unlock()
	return &levelSession{s, ch}
}

func (r *levelRegistry) send(t *testing.T, node string, l Level) {
	t.Helper()
	r.mu.Lock()
	ch := r.sessions[node]
	r.mu.Unlock()
	select {
	case ch <- l:
	case <-time.After(5 * time.Second):
		t.Fatalf("the stream of %s does not take levels", node)
	}
}

type levelSession struct {
	*fakeSession
	ch chan Level
}

func (s *levelSession) Levels() <-chan Level { return s.ch }

// TestLevelFrames: a node that takes levels gets its PoP's level as soon
// as its stream is up, then every level sent, in order; a node of an older
// version (no OnLevel: its hello does not offer levels) gets none, and its
// stream stays up (it would end on a frame type it does not know).
func TestLevelFrames(t *testing.T) {
	reg := &levelRegistry{fakeRegistry: newFakeRegistry(), sessions: map[string]chan Level{},
		first: Level{PoP: "pop-a", Level: "shed-1", Reason: "hot", ValidMS: 1000}}
	h := startServerWith(t, newFakeSource(map[string]uint32{}), reg.fakeRegistry, reg, "")
	got := make(chan Level, 10)
	c, err := NewClient(ClientConfig{URL: "http://" + h.addr, KeyName: "node-key", Secret: testSecret, Node: "a", PoP: "pop-a",
		OnLevel: func(l Level) { got <- l }}, newFakeZones(map[string]uint32{}), func() Status { return Status{Health: "healthy"} }, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	next := func() Level {
		t.Helper()
		select {
		case l := <-got:
			return l
		case <-time.After(5 * time.Second):
			t.Fatal("no level frame within 5s")
		}
		return Level{}
	}
	if l := next(); l != reg.first {
		t.Errorf("first level %+v, want %+v", l, reg.first)
	}
	want := []Level{{PoP: "pop-a", Level: "withdrawn", Reason: "down from 2 of 3", ValidMS: 2000}, {PoP: "pop-a", Level: "normal", ValidMS: 500}}
	for _, w := range want {
		reg.send(t, "a", w)
		if l := next(); l != w {
			t.Errorf("level %+v, want %+v", l, w)
		}
	}
	if l := want[0]; l.Valid() != 2*time.Second {
		t.Errorf("Valid() = %v, want 2s", l.Valid())
	}
	waitFor(t, "the client's count of levels", func() bool { return c.State().Levels == 3 })

	old := startClient(t, h.addr, "b", testSecret, newFakeZones(map[string]uint32{}))
	waitFor(t, "the old node's stream", old.Live)
	// The old node's session holds a level that is never taken.
	var ch chan Level
	waitFor(t, "the old node's session", func() bool {
		reg.mu.Lock()
		defer reg.mu.Unlock()
		ch = reg.sessions["b"]
		return ch != nil
	})
	time.Sleep(300 * time.Millisecond) // three heartbeats
	if len(ch) != 1 {
		t.Errorf("the server took the level of a node that does not take levels")
	}
	if !old.Live() || old.State().Levels != 0 {
		t.Errorf("old node: live %v, levels %d; want live, 0", old.Live(), old.State().Levels)
	}
}
