package announce

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"

	"github.com/anycastdns/anycastdns/internal/fleet/level"
)

// ribEvent is one change the test router saw for a prefix: an UPDATE
// received from the speaker ("update"), or a change of its best path
// ("best"; the Loc-RIB).
type ribEvent struct {
	kind     string
	prefix   netip.Prefix
	withdraw bool
	pathLen  int // AS path length, 0 for a withdrawal
	at       time.Time
}

func (e ribEvent) String() string {
	if e.withdraw {
		return fmt.Sprintf("%s %v withdrawn", e.kind, e.prefix)
	}
	return fmt.Sprintf("%s %v path length %d", e.kind, e.prefix, e.pathLen)
}

// ribWatch records the test router's events from when it starts.
type ribWatch struct {
	mu     sync.Mutex
	events []ribEvent
	cancel context.CancelFunc
}

func (p *testPeer) watch() *ribWatch {
	p.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &ribWatch{cancel: cancel}
	record := func(kind string) func([]*apiutil.Path, time.Time) {
		return func(paths []*apiutil.Path, at time.Time) {
			w.mu.Lock()
			defer w.mu.Unlock()
			for _, pa := range paths {
				pfx, err := netip.ParsePrefix(pa.Nlri.String())
				if err != nil {
					continue
				}
				e := ribEvent{kind: kind, prefix: pfx, withdraw: pa.Withdrawal, at: at}
				for _, a := range pa.Attrs {
					if ap, ok := a.(*bgp.PathAttributeAsPath); ok {
						for _, seg := range ap.Value {
							e.pathLen += len(seg.GetAS())
						}
					}
				}
				w.events = append(w.events, e)
			}
		}
	}
	err := p.srv.WatchEvent(ctx, server.WatchEventMessageCallbacks{
		OnPathUpdate: record("update"),
		OnBestPath:   record("best"),
	}, server.WatchUpdate(false, "", ""), server.WatchBestPath(false))
	if err != nil {
		cancel()
		p.t.Fatalf("watch the router's table: %v", err)
	}
	p.t.Cleanup(cancel)
	return w
}

// since returns the events from index i on.
func (w *ribWatch) since(i int) []ribEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.events[min(i, len(w.events)):])
}

func (w *ribWatch) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.events)
}

// levelTestConfig: v4 with prepend 2, MED 50 and communities of its own,
// v6 plain; the levels add prepends, communities, a MED and a large
// community.
func levelTestConfig(port uint16) Config {
	lo := netip.MustParseAddr("127.0.0.1")
	return Config{
		ASN: ourASN, RouterID: netip.MustParseAddr("192.0.2.1"),
		Peers:    []Peer{{Address: lo, ASN: peerASN, Port: port}},
		Announce: []Announcement{v4, v6},
		Levels: [3]Attributes{
			{Prepend: 1, Communities: []uint32{ourASN<<16 | 901, ourASN<<16 | 100}}, // 64512:100 is v4's own already
			{Prepend: 2, Communities: []uint32{ourASN<<16 | 902}, MED: u32(200)},
			{Prepend: 3, LargeCommunities: [][3]uint32{{ourASN, 9, 3}}, MED: u32(300)},
		},
	}
}

// levelRoutes is what the router must hold at each level of levelTestConfig.
func levelRoutes(l level.Level) map[netip.Prefix]route {
	lo := netip.MustParseAddr("127.0.0.1")
	path := func(n int) []uint32 {
		p := make([]uint32, n)
		for i := range p {
			p[i] = ourASN
		}
		return p
	}
	r4 := route{Prefix: v4.Prefix, NextHop: lo, ASPath: path(3), MED: u32(50), Communities: v4.Communities, Large: v4.LargeCommunities}
	r6 := route{Prefix: v6.Prefix, NextHop: v6.NextHop, ASPath: path(1), MED: u32(0), Communities: v6.Communities}
	switch l {
	case level.Shed1:
		r4.ASPath, r6.ASPath = path(4), path(2)
		r4.Communities = append(slices.Clone(v4.Communities), ourASN<<16|901)
		r6.Communities = append(slices.Clone(v6.Communities), ourASN<<16|901, ourASN<<16|100)
	case level.Shed2:
		r4.ASPath, r6.ASPath = path(5), path(3)
		r4.Communities = append(slices.Clone(v4.Communities), ourASN<<16|902)
		r6.Communities = append(slices.Clone(v6.Communities), ourASN<<16|902)
		r4.MED, r6.MED = u32(200), u32(200)
	case level.Shed3:
		r4.ASPath, r6.ASPath = path(6), path(4)
		r4.Large = append(slices.Clone(v4.LargeCommunities), [3]uint32{ourASN, 9, 3})
		r6.Large = [][3]uint32{{ourASN, 9, 3}}
		r4.MED, r6.MED = u32(300), u32(300)
	case level.Withdrawn:
		return map[netip.Prefix]route{}
	}
	return map[netip.Prefix]route{v4.Prefix: r4, v6.Prefix: r6}
}

// TestLevels: the router sees each level's attributes; a change between
// announced levels reaches it as a replacing UPDATE, with no withdrawal and
// no moment without a route in its table; withdrawn withdraws, and a level
// set while withdrawn or before the prefixes is the one they come back with.
func TestLevels(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	port := freePort(t, lo.String())
	router := newTestPeer(t, lo, lo, port, 0)
	w := router.watch()
	s, _, _ := startSpeaker(t, levelTestConfig(port))
	if err := s.Set([]netip.Prefix{v4.Prefix, v6.Prefix}); err != nil {
		t.Fatal(err)
	}
	router.waitRoutes(levelRoutes(level.Normal), 15*time.Second)
	waitEstablished(t, s, time.Second)

	// Up and down the shed levels: every step replaces the routes in place.
	from := w.len()
	steps := []level.Level{level.Shed1, level.Shed2, level.Shed3, level.Shed1, level.Normal, level.Shed2, level.Normal}
	for _, l := range steps {
		t0 := time.Now()
		if err := s.SetLevel(l); err != nil {
			t.Fatalf("SetLevel(%v): %v", l, err)
		}
		router.waitRoutes(levelRoutes(l), 5*time.Second)
		t.Logf("%v: the router holds the new attributes %v after SetLevel", l, time.Since(t0).Round(time.Millisecond))
		if got := s.Status(); got.Level != l || len(got.Announced) != 2 {
			t.Errorf("Status() = level %v, announced %v; want %v and both prefixes", got.Level, got.Announced, l)
		}
	}
	evs := w.since(from)
	var updates, best []ribEvent
	for _, e := range evs {
		if e.withdraw {
			t.Errorf("the router saw %v across the level changes: the route was missing for a moment", e)
		}
		if e.kind == "update" {
			updates = append(updates, e)
		} else {
			best = append(best, e)
		}
	}
	// One UPDATE per prefix per step: the new path, nothing else.
	var wantLens []int
	for _, l := range steps {
		wantLens = append(wantLens, len(levelRoutes(l)[v4.Prefix].ASPath))
	}
	var gotLens []int
	for _, e := range updates {
		if e.prefix == v4.Prefix {
			gotLens = append(gotLens, e.pathLen)
		}
	}
	if d := cmp.Diff(wantLens, gotLens); d != "" {
		t.Errorf("AS path lengths of the UPDATEs for %v the router received (-want +got):\n%s\nall events: %v", v4.Prefix, d, evs)
	}
	if len(best) < len(steps) {
		t.Errorf("%d best-path changes in the router's table for %d level changes: %v", len(best), len(steps), evs)
	}

	// withdrawn withdraws both; the prefixes are still wanted.
	from = w.len()
	if err := s.SetLevel(level.Withdrawn); err != nil {
		t.Fatal(err)
	}
	router.waitRoutes(levelRoutes(level.Withdrawn), 5*time.Second)
	if st := s.Status(); len(st.Announced) != 0 || st.Level != level.Withdrawn {
		t.Errorf("Status() at withdrawn = %+v, want nothing announced", st)
	}
	// Back from withdrawn straight to shed-2: the first path the router
	// gets carries shed-2's attributes.
	if err := s.SetLevel(level.Shed2); err != nil {
		t.Fatal(err)
	}
	router.waitRoutes(levelRoutes(level.Shed2), 5*time.Second)
	var seq []string
	for _, e := range w.since(from) {
		if e.kind == "update" && e.prefix == v4.Prefix {
			seq = append(seq, e.String())
		}
	}
	if want := []string{"update 192.0.2.53/32 withdrawn", "update 192.0.2.53/32 path length 5"}; !slices.Equal(seq, want) {
		t.Errorf("UPDATEs for %v through withdrawn and back at shed-2: %q, want %q", v4.Prefix, seq, want)
	}

	// A level set while nothing is wanted applies when the prefixes are.
	if err := s.Set(nil); err != nil {
		t.Fatal(err)
	}
	router.waitRoutes(levelRoutes(level.Withdrawn), 5*time.Second)
	if err := s.SetLevel(level.Shed3); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]netip.Prefix{v4.Prefix, v6.Prefix}); err != nil {
		t.Fatal(err)
	}
	router.waitRoutes(levelRoutes(level.Shed3), 5*time.Second)

	if err := s.SetLevel(level.Level(9)); err == nil || !strings.Contains(err.Error(), "not a level") {
		t.Errorf("SetLevel(9) = %v, want an error", err)
	}
	router.waitRoutes(levelRoutes(level.Shed3), time.Second)
}

// TestLevelBeforeRun: a level set before Run is the one the first
// announcement carries.
func TestLevelBeforeRun(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	port := freePort(t, lo.String())
	router := newTestPeer(t, lo, lo, port, 0)
	w := router.watch()
	s, err := New(levelTestConfig(port), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetLevel(level.Shed1); err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]netip.Prefix{v4.Prefix, v6.Prefix}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	router.waitRoutes(levelRoutes(level.Shed1), 15*time.Second)
	for _, e := range w.since(0) {
		if e.kind == "update" && e.pathLen != len(levelRoutes(level.Shed1)[e.prefix].ASPath) {
			t.Errorf("the router got %v before the shed-1 path", e)
		}
	}
}

func TestAnnouncementAt(t *testing.T) {
	levels := [3]Attributes{
		{Prepend: 1, Communities: []uint32{1, 2}},
		{Prepend: 2, LargeCommunities: [][3]uint32{{1, 2, 3}, {4, 5, 6}}, MED: u32(7)},
		{},
	}
	a := Announcement{Prefix: v4.Prefix, Prepend: 2, Communities: []uint32{2, 3}, LargeCommunities: [][3]uint32{{4, 5, 6}}, MED: u32(1)}
	tests := []struct {
		l    level.Level
		want Announcement
	}{
		{level.Normal, a},
		{level.Withdrawn, a},
		{level.Shed1, Announcement{Prefix: a.Prefix, Prepend: 3, Communities: []uint32{2, 3, 1}, LargeCommunities: a.LargeCommunities, MED: u32(1)}},
		{level.Shed2, Announcement{Prefix: a.Prefix, Prepend: 4, Communities: a.Communities, LargeCommunities: [][3]uint32{{4, 5, 6}, {1, 2, 3}}, MED: u32(7)}},
		{level.Shed3, a},
	}
	for _, tt := range tests {
		if d := cmp.Diff(tt.want, a.at(tt.l, &levels), netipCmp); d != "" {
			t.Errorf("at(%v) (-want +got):\n%s", tt.l, d)
		}
	}
	// The announcement's own lists are not changed.
	if !slices.Equal(a.Communities, []uint32{2, 3}) || len(a.LargeCommunities) != 1 {
		t.Errorf("at changed the announcement: %+v", a)
	}
}
