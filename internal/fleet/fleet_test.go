package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/anycastdns/anycastdns/internal/stream"
)

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type stops struct {
	mu      sync.Mutex
	reasons []string
}

func (s *stops) fn(node string) func(string) {
	return func(reason string) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.reasons = append(s.reasons, node+":"+reason)
	}
}

func (s *stops) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.reasons...)
}

func newTestRegistry(t *testing.T, file string, cur map[string]uint32, clk *clock) *Registry {
	t.Helper()
	r, err := New(Config{File: file, Catalog: "cat.", Now: clk.now,
		Serials: func(context.Context) (map[string]uint32, error) { return cur, nil }}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func memberOf(t *testing.T, r *Registry, node, zone string) MemberView {
	t.Helper()
	v, err := r.View(context.Background(), zone)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range v.Members {
		if m.Node == node {
			return m
		}
	}
	t.Fatalf("%s not in the view %+v", node, v)
	return MemberView{}
}

// TestRegistryLag: a member's heartbeats and acknowledgements give its
// state, the zones it is behind on or misses, and the age of the oldest
// change not acknowledged.
func TestRegistryLag(t *testing.T) {
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	cur := map[string]uint32{"cat.": 7, "a.": 10, "b.": 20, "c.": 5}
	r := newTestRegistry(t, "", cur, clk)
	var st stops
	s := r.Join(stream.Member{Node: "n1", PoP: "A", Version: "v1", Key: "k.", Remote: "192.0.2.1:1234",
		Zones: map[string]uint32{"cat.": 7, "a.": 10, "b.": 18, "other.": 3}}, st.fn("n1"))
	clk.add(100 * time.Millisecond)
	s.Heartbeat(stream.Heartbeat{Status: stream.Status{Health: "healthy", BGP: true, Announced: []netip.Prefix{netip.MustParsePrefix("192.0.2.53/32")},
		QPS: 12.5, TCPConns: 3, Zones: 3, Level: "shed-1", LevelSource: "control"}})
	m := memberOf(t, r, "n1", "b.")
	want := MemberView{
		Node: "n1", PoP: "A", Key: "k.", Version: "v1", Remote: "192.0.2.1:1234", State: StateConnected,
		Since: clk.t.Add(-100 * time.Millisecond), FirstSeen: clk.t.Add(-100 * time.Millisecond), LastSeen: clk.t,
		LastHeartbeat: clk.t, FirstHeartbeat: clk.t, HeartbeatAgeSeconds: new(float64),
		Health: "healthy", BGP: true, Announced: []netip.Prefix{netip.MustParsePrefix("192.0.2.53/32")}, QPS: 12.5, TCPConns: 3, ZonesServed: 3,
		Level: "shed-1", LevelSource: "control",
		ZonesFollowed: 3, ZonesBehind: 1, ZonesMissing: 1, MaxSerialLag: 2,
		Behind: []ZoneLag{{Zone: "b.", Serial: 18, Current: 20, Lag: 2}, {Zone: "c.", Current: 5, Lag: 5, Missing: true}},
		Zone:   &ZoneLag{Zone: "b.", Serial: 18, Current: 20, Lag: 2},
	}
	if diff := cmp.Diff(want, m, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("view (-want +got):\n%s", diff)
	}

	// A push not yet acknowledged ages; its acknowledgement clears it.
	s.Pushed("b.", 20)
	clk.add(250 * time.Millisecond)
	if m := memberOf(t, r, "n1", ""); m.LagSeconds != 0.25 {
		t.Errorf("lag %v s, want 0.25", m.LagSeconds)
	}
	s.Serial("b.", 20)
	s.Heartbeat(stream.Heartbeat{Serials: map[string]uint32{"c.": 5}})
	if m := memberOf(t, r, "n1", ""); m.LagSeconds != 0 || m.ZonesBehind != 0 || m.ZonesMissing != 0 || m.MaxSerialLag != 0 {
		t.Errorf("after the acknowledgement: lag %v s, %d behind, %d missing, max lag %d; want all 0", m.LagSeconds, m.ZonesBehind, m.ZonesMissing, m.MaxSerialLag)
	}

	s.Leave(errors.New("read: EOF"))
	clk.add(2 * time.Second)
	m = memberOf(t, r, "n1", "")
	if m.State != StateDisconnected || m.Health != "unknown" || m.LastError != "read: EOF" || *m.HeartbeatAgeSeconds != 2 {
		t.Errorf("after leaving: %+v", m)
	}
	// A late call of the ended session changes nothing.
	s.Heartbeat(stream.Heartbeat{Status: stream.Status{Health: "healthy"}})
	if m := memberOf(t, r, "n1", ""); m.State != StateDisconnected || m.Health != "unknown" {
		t.Errorf("a heartbeat of an ended stream counted: %+v", m)
	}
}

// TestRegistryRevoke: a revoked member's stream is stopped, it is refused
// until the revocation is lifted, and both the member and the revocation
// survive a restart of the control plane; a second stream of a node
// replaces the first.
func TestRegistryRevoke(t *testing.T) {
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	file := filepath.Join(t.TempDir(), "fleet.json")
	r := newTestRegistry(t, file, map[string]uint32{}, clk)
	var st stops
	r.Join(stream.Member{Node: "n1", PoP: "A"}, st.fn("n1#1"))
	r.Join(stream.Member{Node: "n1", PoP: "A"}, st.fn("n1#2"))
	r.Join(stream.Member{Node: "n2", PoP: "B"}, st.fn("n2"))
	if err := r.Admit("n1", "k."); err != nil {
		t.Fatal(err)
	}
	if err := r.Revoke("n1"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"n1#1:" + stream.ByeReplaced, "n1#2:" + stream.ByeRevoked}, st.list()); diff != "" {
		t.Errorf("stops (-want +got):\n%s", diff)
	}
	if err := r.Admit("n1", "k."); !errors.Is(err, ErrRevoked) || !strings.Contains(err.Error(), "unrevoke n1") {
		t.Errorf("Admit after the revocation: %v", err)
	}
	if err := r.Forget("n2"); !errors.Is(err, ErrConnected) {
		t.Errorf("Forget of a connected member: %v", err)
	}
	if err := r.Revoke("ghost"); err != nil {
		t.Fatal(err)
	}

	r2 := newTestRegistry(t, file, map[string]uint32{}, clk)
	v, err := r2.View(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range v.Members {
		got = append(got, m.Node+"/"+m.PoP+"/"+m.State)
	}
	if diff := cmp.Diff([]string{"ghost//revoked", "n1/A/revoked", "n2/B/disconnected"}, got); diff != "" {
		t.Errorf("after a restart (-want +got):\n%s", diff)
	}
	if err := r2.Admit("n1", "k."); !errors.Is(err, ErrRevoked) {
		t.Errorf("revocation lost in the restart: %v", err)
	}
	if err := r2.Unrevoke("n1"); err != nil {
		t.Fatal(err)
	}
	if err := r2.Admit("n1", "k."); err != nil {
		t.Errorf("Admit after Unrevoke: %v", err)
	}
	if err := r2.Unrevoke("n1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Unrevoke: %v", err)
	}
	if err := r2.Forget("n2"); err != nil {
		t.Fatal(err)
	}
	if err := r2.Forget("n2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Forget: %v", err)
	}
}

func TestCollector(t *testing.T) {
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	r := newTestRegistry(t, "", map[string]uint32{"a.": 10}, clk)
	s := r.Join(stream.Member{Node: "n1", PoP: "A", Zones: map[string]uint32{"a.": 7}}, func(string) {})
	s.Heartbeat(stream.Heartbeat{})
	s.Pushed("a.", 10)
	clk.add(1500 * time.Millisecond)
	r.Join(stream.Member{Node: "n2", PoP: "B", Zones: map[string]uint32{"a.": 10}}, func(string) {}).Leave(nil)
	want := []string{
		`anycastd_fleet_connected{node="n1",pop="A"} 1`,
		`anycastd_fleet_connected{node="n2",pop="B"} 0`,
		`anycastd_fleet_heartbeat_age_seconds{node="n1",pop="A"} 1.5`,
		`anycastd_fleet_heartbeat_age_seconds{node="n2",pop="B"} 0`,
		`anycastd_fleet_lag_seconds{node="n1",pop="A"} 1.5`,
		`anycastd_fleet_lag_seconds{node="n2",pop="B"} 0`,
		`anycastd_fleet_members{state="connected"} 1`,
		`anycastd_fleet_members{state="disconnected"} 1`,
		`anycastd_fleet_members{state="revoked"} 0`,
		`anycastd_fleet_serial_lag{node="n1",pop="A"} 3`,
		`anycastd_fleet_serial_lag{node="n2",pop="B"} 0`,
		`anycastd_fleet_zones_behind{node="n1",pop="A"} 1`,
		`anycastd_fleet_zones_behind{node="n2",pop="B"} 0`,
	}
	if diff := cmp.Diff(want, gather(t, r.Collector())); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}

// gather returns the collector's samples as `name{labels} value`, sorted.
func gather(t *testing.T, c prometheus.Collector) []string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			out = append(out, fmt.Sprintf("%s{%s} %v", mf.GetName(), strings.Join(labels, ","), m.GetGauge().GetValue()))
		}
	}
	slices.Sort(out)
	return out
}
