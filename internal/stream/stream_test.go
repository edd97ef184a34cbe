package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// fakeSource is a Source whose transfers are one message naming what it
// carries: "zone from→to" or "zone full→to".
type fakeSource struct {
	mu      sync.Mutex
	serials map[string]uint32
	subs    []chan Event
	catalog string
	fail    map[string]bool // zones whose Transfer fails
}

func newFakeSource(serials map[string]uint32) *fakeSource {
	return &fakeSource{serials: serials}
}

func (f *fakeSource) Zones(context.Context) (map[string]uint32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.serials), nil
}

func (f *fakeSource) Subscribe() (<-chan Event, func()) {
	ch := make(chan Event, 100)
	f.mu.Lock()
	f.subs = append(f.subs, ch)
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.subs = slices.DeleteFunc(f.subs, func(c chan Event) bool { return c == ch })
	}
}

func (f *fakeSource) set(zone string, serial uint32) {
	f.mu.Lock()
	f.serials[zone] = serial
	subs := slices.Clone(f.subs)
	f.mu.Unlock()
	for _, ch := range subs {
		ch <- Event{Zone: zone, Serial: serial}
	}
}

func (f *fakeSource) Transfer(_ context.Context, zone string, from uint32, full bool, send func([]byte) error) (uint32, bool, error) {
	f.mu.Lock()
	cur, ok := f.serials[zone]
	fail := f.fail[zone]
	f.mu.Unlock()
	if !ok || fail {
		return 0, false, fmt.Errorf("zone %s: no such zone", zone)
	}
	if !full && from == cur {
		return cur, false, nil
	}
	what := fmt.Sprintf("%s %d→%d", zone, from, cur)
	if full {
		what = fmt.Sprintf("%s full→%d", zone, cur)
	}
	if err := send([]byte(what)); err != nil {
		return 0, false, err
	}
	return cur, true, nil
}

func (f *fakeSource) Catalog() string { return f.catalog }

// fakeRegistry records what the server tells it.
type fakeRegistry struct {
	mu        sync.Mutex
	revoked   map[string]bool
	joins     []Member
	stops     map[string]func(string)
	beats     []Heartbeat
	serials   map[string]uint32
	pushed    map[string]uint32
	left      []error
	joinedCh  chan string
	heartbeat chan Heartbeat
}

func newFakeRegistry() *fakeRegistry {
	return &fakeRegistry{revoked: map[string]bool{}, stops: map[string]func(string){}, serials: map[string]uint32{},
		pushed: map[string]uint32{}, joinedCh: make(chan string, 10), heartbeat: make(chan Heartbeat, 100)}
}

func (r *fakeRegistry) Admit(node, _ string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.revoked[node] {
		return fmt.Errorf("node %s is revoked", node)
	}
	return nil
}

func (r *fakeRegistry) Join(m Member, stop func(string)) Session {
	r.mu.Lock()
	r.joins = append(r.joins, m)
	r.stops[m.Node] = stop
	maps.Copy(r.serials, m.Zones)
	r.mu.Unlock()
	r.joinedCh <- m.Node
	return &fakeSession{r}
}

type fakeSession struct{ r *fakeRegistry }

func (s *fakeSession) Heartbeat(hb Heartbeat) {
	s.r.mu.Lock()
	s.r.beats = append(s.r.beats, hb)
	maps.Copy(s.r.serials, hb.Serials)
	s.r.mu.Unlock()
	select {
	case s.r.heartbeat <- hb:
	default:
	}
}

func (s *fakeSession) Serial(zone string, serial uint32) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.r.serials[zone] = serial
}

func (s *fakeSession) Unfollow(zone string) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	delete(s.r.serials, zone)
}

func (s *fakeSession) Pushed(zone string, serial uint32) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.r.pushed[zone] = serial
}

func (s *fakeSession) Leave(err error) {
	s.r.mu.Lock()
	defer s.r.mu.Unlock()
	s.r.left = append(s.r.left, err)
}

// fakeZones is a node's zones: it records every transfer applied and
// takes the serial a transfer names.
type fakeZones struct {
	mu       sync.Mutex
	serials  map[string]uint32
	applied  []string
	refuse   map[string]int    // zone → refusals left
	adds     map[string]string // catalog zone → zone it adds when applied
	resets   map[string]bool   // catalog zone → applying it drops the data of every other zone
	catalog  string
	refresh  []string
	appliedC chan string
}

func newFakeZones(serials map[string]uint32) *fakeZones {
	return &fakeZones{serials: serials, refuse: map[string]int{}, adds: map[string]string{}, appliedC: make(chan string, 100)}
}

func (z *fakeZones) Serials() map[string]uint32 {
	z.mu.Lock()
	defer z.mu.Unlock()
	return maps.Clone(z.serials)
}

func (z *fakeZones) CatalogZone() string { return z.catalog }

func (z *fakeZones) Refresh(zone string) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.refresh = append(z.refresh, zone)
	return nil
}

func (z *fakeZones) ApplyPushed(_ context.Context, zone string, msgs [][]byte, _ string) (PushResult, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	cur, ok := z.serials[zone]
	if !ok {
		return PushResult{Unknown: true}, nil
	}
	what := string(msgs[0])
	var name string
	var from, to uint32
	full := strings.Contains(what, "full")
	if full {
		_, _ = fmt.Sscanf(what, "%s full→%d", &name, &to)
	} else {
		_, _ = fmt.Sscanf(what, "%s %d→%d", &name, &from, &to)
	}
	if z.refuse[zone] > 0 {
		z.refuse[zone]--
		return PushResult{Serial: cur}, errors.New("refused by the test")
	}
	if !full && from != cur {
		return PushResult{Serial: cur, NeedFull: cur == 0}, fmt.Errorf("difference from %d, we hold %d", from, cur)
	}
	z.serials[zone] = to
	z.applied = append(z.applied, what)
	if add := z.adds[zone]; add != "" {
		z.serials[add] = 0
	}
	if z.resets[zone] {
		for other := range z.serials {
			if other != zone {
				z.serials[other] = 0
			}
		}
	}
	select {
	case z.appliedC <- what:
	default:
	}
	return PushResult{Serial: to, Applied: true}, nil
}

func (z *fakeZones) appliedList() []string {
	z.mu.Lock()
	defer z.mu.Unlock()
	return slices.Clone(z.applied)
}

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// harness is a stream server on loopback.
type harness struct {
	t    *testing.T
	src  *fakeSource
	reg  *fakeRegistry
	srv  *Server
	addr string
	stop func()
}

func startServer(t *testing.T, src *fakeSource, reg *fakeRegistry, addr string) *harness {
	t.Helper()
	return startServerWith(t, src, reg, reg, addr)
}

// startServerWith is startServer with a registry of the test's own around
// fake.
func startServerWith(t *testing.T, src *fakeSource, fake *fakeRegistry, reg Registry, addr string) *harness {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for range 50 { // a restart may find the port in TIME_WAIT briefly
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(ServerConfig{Name: "ctl", Keys: map[string][]byte{"node-key.": testSecret}, Heartbeat: 100 * time.Millisecond}, src, reg, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, nil, nil) }()
	h := &harness{t: t, src: src, reg: fake, srv: srv, addr: ln.Addr().String()}
	stopped := false
	h.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}
	t.Cleanup(h.stop)
	return h
}

func startClient(t *testing.T, addr, node string, secret []byte, zones Zones) *Client {
	t.Helper()
	c, err := NewClient(ClientConfig{URL: "http://" + addr, KeyName: "node-key", Secret: secret, Node: node, PoP: "pop-" + node, Version: "test"},
		zones, func() Status { return Status{Health: "healthy", Zones: 2, Queries: 1000} }, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("client Run: %v", err)
		}
	})
	return c
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStreamSyncAndPush: a node that connects gets what it misses of the
// zones it follows (a difference from its serial, the whole zone for one
// it has no data of), nothing of the others, then each change as it is
// committed; its heartbeats reach the registry.
func TestStreamSyncAndPush(t *testing.T) {
	src := newFakeSource(map[string]uint32{"a.": 3, "b.": 5, "c.": 1, "same.": 7})
	h := startServer(t, src, newFakeRegistry(), "")
	zones := newFakeZones(map[string]uint32{"a.": 1, "b.": 0, "same.": 7, "elsewhere.": 4})
	c := startClient(t, h.addr, "n1", testSecret, zones)
	waitFor(t, "the initial sync", func() bool { return len(zones.appliedList()) == 2 })
	waitFor(t, "the stream to be live", c.Live)
	src.set("a.", 4)
	waitFor(t, "the change", func() bool { return len(zones.appliedList()) == 3 })
	src.set("c.", 2) // not followed
	src.set("a.", 5)
	waitFor(t, "the second change", func() bool { return len(zones.appliedList()) == 4 })
	want := []string{"a. 1→3", "b. full→5", "a. 3→4", "a. 4→5"}
	got := zones.appliedList()
	slices.Sort(want[:2])
	slices.Sort(got[:2])
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	var hb Heartbeat
	select {
	case hb = <-h.reg.heartbeat:
	case <-time.After(5 * time.Second):
		t.Fatal("no heartbeat")
	}
	if hb.Health != "healthy" || hb.Zones != 2 {
		t.Errorf("heartbeat %+v", hb)
	}
	h.reg.mu.Lock()
	j := h.reg.joins[0]
	h.reg.mu.Unlock()
	if j.Node != "n1" || j.PoP != "pop-n1" || j.Key != "node-key." || j.Version != "test" {
		t.Errorf("joined %+v", j)
	}
	waitFor(t, "the acks in the registry", func() bool {
		h.reg.mu.Lock()
		defer h.reg.mu.Unlock()
		return h.reg.serials["a."] == 5 && h.reg.serials["b."] == 5
	})
}

// TestStreamRefusedPushResent: a transfer the node refuses is sent again
// from the serial the node holds, and the node's own refresh is started.
func TestStreamRefusedPushResent(t *testing.T) {
	src := newFakeSource(map[string]uint32{"a.": 3})
	h := startServer(t, src, newFakeRegistry(), "")
	zones := newFakeZones(map[string]uint32{"a.": 1})
	zones.refuse["a."] = 1
	startClient(t, h.addr, "n1", testSecret, zones)
	waitFor(t, "the resent transfer", func() bool { return len(zones.appliedList()) == 1 })
	if got := zones.appliedList(); got[0] != "a. 1→3" {
		t.Errorf("applied %v", got)
	}
	zones.mu.Lock()
	refresh := slices.Clone(zones.refresh)
	zones.mu.Unlock()
	if !slices.Equal(refresh, []string{"a."}) {
		t.Errorf("refreshes %v, want a.", refresh)
	}
}

// TestStreamCatalogFollow: a catalog that adds a member makes the server
// send the new member at once.
func TestStreamCatalogFollow(t *testing.T) {
	src := newFakeSource(map[string]uint32{"cat.": 1, "a.": 1})
	src.catalog = "cat."
	h := startServer(t, src, newFakeRegistry(), "")
	zones := newFakeZones(map[string]uint32{"cat.": 1, "a.": 1})
	zones.catalog = "cat."
	zones.adds["cat."] = "new."
	c := startClient(t, h.addr, "n1", testSecret, zones)
	waitFor(t, "the stream", c.Live)
	src.set("new.", 9) // created: the node does not follow it yet
	src.set("cat.", 2) // the catalog lists it
	waitFor(t, "the new member", func() bool { return len(zones.appliedList()) == 2 })
	if diff := cmp.Diff([]string{"cat. 1→2", "new. full→9"}, zones.appliedList()); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
}

// TestStreamResume: after the control plane restarts, the node reconnects
// and resumes from its serial: nothing lost, nothing applied twice.
func TestStreamResume(t *testing.T) {
	src := newFakeSource(map[string]uint32{"a.": 1})
	reg := newFakeRegistry()
	h := startServer(t, src, reg, "")
	zones := newFakeZones(map[string]uint32{"a.": 1})
	c := startClient(t, h.addr, "n1", testSecret, zones)
	waitFor(t, "the stream", c.Live)
	src.set("a.", 2)
	waitFor(t, "change 2", func() bool { return len(zones.appliedList()) == 1 })
	h.stop()
	waitFor(t, "the stream to end", func() bool { return !c.Live() })
	src.mu.Lock()
	src.serials["a."] = 4 // two changes while the node was cut off
	src.mu.Unlock()
	startServer(t, src, reg, h.addr)
	waitFor(t, "the resumed sync", func() bool { return len(zones.appliedList()) == 2 })
	src.set("a.", 5)
	waitFor(t, "change 5", func() bool { return len(zones.appliedList()) == 3 })
	if diff := cmp.Diff([]string{"a. 1→2", "a. 2→4", "a. 4→5"}, zones.appliedList()); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	reg.mu.Lock()
	joins := len(reg.joins)
	reg.mu.Unlock()
	if joins != 2 {
		t.Errorf("%d joins, want 2", joins)
	}
}

// TestStreamRefusals: a wrong secret, an unknown key, a revoked node and
// HTTP/1 get no stream.
func TestStreamRefusals(t *testing.T) {
	reg := newFakeRegistry()
	reg.revoked["gone"] = true
	h := startServer(t, newFakeSource(map[string]uint32{}), reg, "")
	tests := []struct {
		name, node string
		secret     []byte
		key        string
		want       string
	}{
		{"wrong secret", "n1", []byte("another secret of 32 bytes......"), "node-key", "does not hold key"},
		{"unknown key", "n1", testSecret, "other-key", "401"},
		{"revoked", "gone", testSecret, "node-key", "revoked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClient(ClientConfig{URL: "http://" + h.addr, KeyName: tt.key, Secret: tt.secret, Node: tt.node},
				newFakeZones(map[string]uint32{}), func() Status { return Status{} }, testLogger())
			if err != nil {
				t.Fatal(err)
			}
			established, err := c.session(context.Background())
			if established || err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("session: established %v, %v; want an error with %q", established, err, tt.want)
			}
			if tt.name == "revoked" && !errors.Is(err, ErrRevoked) {
				t.Errorf("%v is not ErrRevoked", err)
			}
		})
	}
	resp, err := http.Post("http://"+h.addr+Path, ContentType, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusHTTPVersionNotSupported {
		t.Errorf("HTTP/1: %s %s", resp.Status, body)
	}
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if len(reg.joins) != 0 {
		t.Errorf("joins %+v, want none", reg.joins)
	}
}

// TestStreamRevoke: the registry's stop ends the stream with its
// reason; a revoked node waits before it tries again.
func TestStreamRevoke(t *testing.T) {
	reg := newFakeRegistry()
	h := startServer(t, newFakeSource(map[string]uint32{}), reg, "")
	c := startClient(t, h.addr, "n1", testSecret, newFakeZones(map[string]uint32{}))
	waitFor(t, "the stream", c.Live)
	reg.mu.Lock()
	reg.revoked["n1"] = true
	stop := reg.stops["n1"]
	reg.mu.Unlock()
	stop(ByeRevoked)
	waitFor(t, "the stream to end", func() bool { return !c.Live() })
	waitFor(t, "the error", func() bool { return strings.Contains(c.State().LastError, "revoked") })
	time.Sleep(500 * time.Millisecond)
	reg.mu.Lock()
	joins := len(reg.joins)
	reg.mu.Unlock()
	if joins != 1 {
		t.Errorf("%d joins; want 1 (no reconnection attempt right after a revocation)", joins)
	}
}

// TestStreamFollowAnew: a zone the node follows anew without data (a
// catalog member re-created under a new id) is sent whole, even though
// the node held a newer serial of it before.
func TestStreamFollowAnew(t *testing.T) {
	src := newFakeSource(map[string]uint32{"cat.": 1, "a.": 50})
	src.catalog = "cat."
	h := startServer(t, src, newFakeRegistry(), "")
	zones := newFakeZones(map[string]uint32{"cat.": 1, "a.": 50})
	zones.catalog = "cat."
	c := startClient(t, h.addr, "n1", testSecret, zones)
	waitFor(t, "the stream", c.Live)
	// The zone is deleted and created again: serial 1 on the control
	// plane; the catalog's new version drops the node's data of it.
	zones.mu.Lock()
	zones.resets = map[string]bool{"cat.": true}
	zones.mu.Unlock()
	src.mu.Lock()
	src.serials["a."] = 1
	src.mu.Unlock()
	src.set("cat.", 2)
	waitFor(t, "the re-created zone", func() bool { return len(zones.appliedList()) == 2 })
	if diff := cmp.Diff([]string{"cat. 1→2", "a. full→1"}, zones.appliedList()); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
}
