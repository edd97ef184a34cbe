package fleet

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/anycastdns/anycastdns/internal/fleet/level"
	"github.com/anycastdns/anycastdns/internal/stream"
)

func ptr[T any](v T) *T { return &v }

// TestReportValidate: a bad report is refused with the field that is
// wrong.
func TestReportValidate(t *testing.T) {
	good := func() Report {
		return Report{Vantage: "region-a", Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), IntervalMS: 250,
			PoPs: []PoPReport{{PoP: "A-pop", State: "up", RTTp50ms: 1.2, RTTp95ms: 3.4, QPS: ptr(1234.5), TCPConns: ptr(3)},
				{PoP: "B-pop", State: "down", Error: "udp: timeout"}},
			Endpoints: []EndpointReport{{Zone: "example.com.", Pool: "svc.example.com./A", Endpoint: "192.0.2.1", State: "up", Quorum: 2, RTTms: 1}}}
	}
	tests := []struct {
		name   string
		change func(*Report)
		want   string // "" = valid
	}{
		{"good", func(*Report) {}, ""},
		{"no pops", func(r *Report) { r.PoPs = nil }, ""},
		{"no vantage", func(r *Report) { r.Vantage = "" }, "vantage: required"},
		{"vantage chars", func(r *Report) { r.Vantage = "a b" }, `vantage: "a b" may contain only`},
		{"vantage long", func(r *Report) { r.Vantage = strings.Repeat("a", 64) }, "vantage: at most 63 characters, got 64"},
		{"no time", func(r *Report) { r.Time = time.Time{} }, "time: required"},
		{"interval 0", func(r *Report) { r.IntervalMS = 0 }, "interval_ms: must be between 1 and 3600000, got 0"},
		{"interval huge", func(r *Report) { r.IntervalMS = 4e6 }, "interval_ms: must be between"},
		{"pop name", func(r *Report) { r.PoPs[1].PoP = "" }, "pops[1].pop: required"},
		{"pop dup", func(r *Report) { r.PoPs[1].PoP = "A-pop" }, "pops[1].pop: duplicate PoP A-pop (also pops[0])"},
		{"state", func(r *Report) { r.PoPs[0].State = "UP" }, `pops[0].state: want up, down or unknown, got "UP"`},
		{"state empty", func(r *Report) { r.PoPs[1].State = "" }, `pops[1].state: want up, down or unknown, got ""`},
		{"rtt negative", func(r *Report) { r.PoPs[0].RTTp95ms = -1 }, "pops[0].rtt_p95_ms: must be a number from 0 to 1e12, got -1"},
		{"rtt NaN", func(r *Report) { r.PoPs[0].RTTp50ms = math.NaN() }, "pops[0].rtt_p50_ms: must be a number"},
		{"qps inf", func(r *Report) { r.PoPs[0].QPS = ptr(math.Inf(1)) }, "pops[0].qps: must be a number"},
		{"cpu negative", func(r *Report) { r.PoPs[0].CPU = ptr(-0.5) }, "pops[0].cpu: must be a number"},
		{"conns negative", func(r *Report) { r.PoPs[0].TCPConns = ptr(-1) }, "pops[0].tcp_conns: must not be negative, got -1"},
		{"error long", func(r *Report) { r.PoPs[1].Error = strings.Repeat("x", 600) }, "pops[1].error: at most 512 bytes, got 600"},
		{"no endpoints", func(r *Report) { r.Endpoints = nil }, ""},
		{"endpoint state", func(r *Report) { r.Endpoints[0].State = "fine" }, `endpoints[0].state: want up, down or unknown, got "fine"`},
		{"endpoint quorum", func(r *Report) { r.Endpoints[0].Quorum = 0 }, "endpoints[0].quorum: 1 to 100, got 0"},
		{"endpoint load", func(r *Report) { r.Endpoints[0].Load = ptr(-1.0) }, "endpoints[0].load: must be a number"},
		{"endpoint no pool", func(r *Report) { r.Endpoints[0].Pool = "" }, "endpoints[0].pool: 1 to 300 characters"},
		{"endpoint dup", func(r *Report) { r.Endpoints = append(r.Endpoints, r.Endpoints[0]) }, "endpoints[1]: endpoint 192.0.2.1 of pool svc.example.com./A given twice"},
		{"too many", func(r *Report) { r.PoPs = make([]PoPReport, MaxReportPoPs+1) }, "pops: at most 1000 PoPs, got 1001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := good()
			tt.change(&rep)
			err := rep.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate: %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrInvalidReport)):
				t.Errorf("Validate: %v, want an ErrInvalidReport containing %q", err, tt.want)
			}
		})
	}
}

// levelHarness is a registry with levels, its clock and nodes joined.
type levelHarness struct {
	t   *testing.T
	clk *clock
	r   *Registry
	ses map[string]*session
}

func newLevelHarness(t *testing.T, file string) *levelHarness {
	t.Helper()
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	r, err := New(Config{File: file, Now: clk.now, Levels: &LevelsConfig{
		Engine:   level.Config{Quorum: 2, Stale: 2 * time.Second, Hold: 10 * time.Second, MaxShed: 1, MinNormal: 1},
		Interval: 250 * time.Millisecond, Validity: 10 * time.Second,
	}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return &levelHarness{t: t, clk: clk, r: r, ses: map[string]*session{}}
}

func (h *levelHarness) join(node, pop string) {
	h.t.Helper()
	var st stops
	h.ses[node] = h.r.Join(stream.Member{Node: node, PoP: pop, Zones: map[string]uint32{}}, st.fn(node)).(*session)
}

// report sends a report of vantage where each PoP has the state given.
func (h *levelHarness) report(vantage string, states map[string]string) {
	h.t.Helper()
	rep := Report{Vantage: vantage, Time: h.clk.now(), IntervalMS: 250}
	for pop, s := range states {
		rep.PoPs = append(rep.PoPs, PoPReport{PoP: pop, State: s, RTTp95ms: 2})
	}
	if err := h.r.Observe(rep, "192.0.2.9:1234"); err != nil {
		h.t.Fatal(err)
	}
}

// sent returns the level waiting in node's stream, "" when none.
func (h *levelHarness) sent(node string) string {
	select {
	case l := <-h.ses[node].levels:
		if l.ValidMS != 10000 {
			h.t.Errorf("level for %s valid %d ms, want 10000", node, l.ValidMS)
		}
		return l.Level
	default:
		return ""
	}
}

func (h *levelHarness) popLevel(pop string) PoPView {
	h.t.Helper()
	v, err := h.r.View(context.Background(), "")
	if err != nil {
		h.t.Fatal(err)
	}
	for _, p := range v.PoPs {
		if p.PoP == pop {
			return p
		}
	}
	h.t.Fatalf("no PoP %s in %+v", pop, v.PoPs)
	return PoPView{}
}

// TestLevelDecisions: the decision loop over reports from three vantage
// points (quorum 2): one vantage point seeing a PoP down moves nothing; two
// withdraw it and its nodes are told at once, the others only at the
// refresh; a node that joins gets its PoP's level at once; a monitor that
// stops reporting is ignored, not trusted; a pin overrides the decisions
// and its lifting restores them.
func TestLevelDecisions(t *testing.T) {
	h := newLevelHarness(t, "")
	h.join("a1", "A")
	h.join("b1", "B")
	h.join("b2", "B")
	all := map[string]string{"A": "up", "B": "up", "C": "up"}
	for _, v := range []string{"v1", "v2", "v3"} {
		h.report(v, all)
	}
	h.r.Step(true)
	for _, n := range []string{"a1", "b1", "b2"} {
		if got := h.sent(n); got != "normal" {
			t.Errorf("first refresh to %s: %q, want normal", n, got)
		}
	}

	// One monitor's own view (its partition) moves nothing.
	h.clk.add(250 * time.Millisecond)
	h.report("v1", map[string]string{"A": "down", "B": "down", "C": "down"})
	h.r.Step(false)
	if got := h.popLevel("B"); got.Level != "normal" {
		t.Errorf("B after one vantage point saw it down: %+v", got)
	}
	if got := h.sent("b1"); got != "" {
		t.Errorf("b1 was sent %q without a change", got)
	}

	// Two of three: withdrawn, B's nodes told at once, A's not.
	h.clk.add(250 * time.Millisecond)
	h.report("v1", map[string]string{"A": "up", "B": "down", "C": "up"})
	h.report("v2", map[string]string{"A": "up", "B": "down", "C": "up"})
	h.r.Step(false)
	b := h.popLevel("B")
	if b.Level != "withdrawn" || !strings.Contains(b.Reason, "down from 2 of 3 vantage points") || !b.Since.Equal(h.clk.now()) {
		t.Errorf("B after two of three saw it down: %+v", b)
	}
	for n, want := range map[string]string{"b1": "withdrawn", "b2": "withdrawn", "a1": ""} {
		if got := h.sent(n); got != want {
			t.Errorf("%s was sent %q, want %q", n, got, want)
		}
	}
	// The refresh sends every PoP's level.
	h.r.Step(true)
	for n, want := range map[string]string{"b1": "withdrawn", "a1": "normal"} {
		if got := h.sent(n); got != want {
			t.Errorf("refresh: %s was sent %q, want %q", n, got, want)
		}
	}
	// A node of B that joins now is told at once.
	h.join("b3", "B")
	if got := h.sent("b3"); got != "withdrawn" {
		t.Errorf("b3 joining was sent %q, want withdrawn", got)
	}

	// v1 and v2 stop reporting; v3 keeps saying B is up. Their reports
	// go stale and are ignored: B comes back after the hold.
	for range 3 {
		h.clk.add(time.Second)
		h.report("v3", all)
		h.r.Step(true)
	}
	if got := h.popLevel("B"); got.Level != "withdrawn" {
		t.Errorf("B before the hold has passed: %+v", got)
	}
	v, _ := h.r.View(context.Background(), "")
	stale := map[string]bool{}
	for _, m := range v.Monitors {
		stale[m.Vantage] = m.Stale
	}
	if !stale["v1"] || !stale["v2"] || stale["v3"] {
		t.Errorf("monitors stale %v, want v1 and v2", stale)
	}
	for range 10 {
		h.clk.add(time.Second)
		h.report("v3", all)
		h.r.Step(false)
	}
	if got := h.popLevel("B"); got.Level != "normal" || !strings.Contains(got.Reason, "available again") {
		t.Errorf("B with only v3 fresh, after the hold: %+v", got)
	}

	// A pin wins over the decisions, at once; lifting it restores them.
	h.sent("b1")
	if err := h.r.Pin("B", level.Shed2, "maintenance"); err != nil {
		t.Fatal(err)
	}
	if got := h.sent("b1"); got != "shed-2" {
		t.Errorf("b1 after the pin was sent %q, want shed-2", got)
	}
	p := h.popLevel("B")
	if p.Level != "shed-2" || !p.Pinned || p.Pin == nil || p.Pin.Reason != "maintenance" || p.Decided != "normal" ||
		p.Reason != "pinned by the operator: maintenance" {
		t.Errorf("pinned B: %+v", p)
	}
	h.clk.add(time.Second)
	h.report("v3", all)
	h.report("v1", map[string]string{"A": "up", "B": "down", "C": "up"})
	h.report("v2", map[string]string{"A": "up", "B": "down", "C": "up"})
	h.r.Step(false)
	if p := h.popLevel("B"); p.Level != "shed-2" || p.Decided != "withdrawn" {
		t.Errorf("pinned B seen down by two: %+v, want shed-2 (decided withdrawn)", p)
	}
	if err := h.r.Unpin("B"); err != nil {
		t.Fatal(err)
	}
	if got := h.sent("b1"); got != "withdrawn" {
		t.Errorf("b1 after the unpin was sent %q, want withdrawn", got)
	}
	if err := h.r.Unpin("B"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Unpin: %v, want ErrNotFound", err)
	}
	for _, bad := range []struct {
		pop string
		l   level.Level
	}{{"", level.Normal}, {"a b", level.Normal}, {"B", level.Level(9)}} {
		if err := h.r.Pin(bad.pop, bad.l, ""); !errors.Is(err, ErrInvalid) {
			t.Errorf("Pin(%q, %d): %v, want ErrInvalid", bad.pop, bad.l, err)
		}
	}

	// The metrics: B's level and its changes (normal, then → withdrawn →
	// normal → shed-2 → withdrawn).
	if p := h.popLevel("B"); p.Changes != 4 {
		t.Errorf("B's changes in the view: %d, want 4", p.Changes)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(h.r.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	for k, want := range map[string]float64{
		"anycastd_fleet_pop_level,pop=A": 0, "anycastd_fleet_pop_level,pop=B": 4, "anycastd_fleet_pop_level,pop=C": 0,
		"anycastd_fleet_level_changes_total,pop=B": 4, "anycastd_fleet_reports_total,result=ok": 22,
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", k, v, ok, want)
		}
	}
}

// TestPinSurvivesRestart: pins are kept in the state file; without levels
// a pin is refused.
func TestPinSurvivesRestart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "fleet.json")
	h := newLevelHarness(t, file)
	if err := h.r.Pin("C", level.Withdrawn, "fibre cut"); err != nil {
		t.Fatal(err)
	}
	h2 := newLevelHarness(t, file)
	h2.join("c1", "C")
	h2.r.Step(true)
	if got := h2.sent("c1"); got != "withdrawn" {
		t.Errorf("after a restart c1 was sent %q, want the pinned withdrawn", got)
	}
	if err := h2.r.Unpin("C"); err != nil {
		t.Fatal(err)
	}
	// Unpinned before any decision: back to normal.
	if got := h2.sent("c1"); got != "normal" {
		t.Errorf("after the unpin c1 was sent %q, want normal", got)
	}

	r, err := New(Config{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Pin("C", level.Shed1, ""); !errors.Is(err, ErrNoLevels) {
		t.Errorf("Pin without levels: %v, want ErrNoLevels", err)
	}
	// Reports are kept and shown without levels, and nothing is sent.
	var st stops
	s := r.Join(stream.Member{Node: "c1", PoP: "C"}, st.fn("c1")).(*session)
	if err := r.Observe(Report{Vantage: "v", Time: time.Now(), IntervalMS: 1000, PoPs: []PoPReport{{PoP: "C", State: "down"}}}, ""); err != nil {
		t.Fatal(err)
	}
	r.Step(true)
	if len(s.levels) != 0 {
		t.Error("a level was sent without levels")
	}
	v, _ := r.View(context.Background(), "")
	if v.Levels != nil || len(v.PoPs) != 1 || len(v.PoPs[0].Vantages) != 1 || v.PoPs[0].Vantages[0].State != "down" || v.PoPs[0].Level != "" {
		t.Errorf("view without levels: %+v", v)
	}
}

// TestRunLevelsStepsOnReport: the loop steps as soon as a report arrives,
// not only at the interval.
func TestRunLevelsStepsOnReport(t *testing.T) {
	r, err := New(Config{Levels: &LevelsConfig{Engine: level.Config{Quorum: 1, Stale: time.Hour, Hold: time.Hour},
		Interval: time.Hour, Validity: 2 * time.Hour}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var st stops
	s := r.Join(stream.Member{Node: "b1", PoP: "B"}, st.fn("b1")).(*session)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.RunLevels(ctx) }()
	defer func() { cancel(); <-done }()
	if err := r.Observe(Report{Vantage: "v", Time: time.Now(), IntervalMS: 1000,
		PoPs: []PoPReport{{PoP: "A", State: "up"}, {PoP: "B", State: "down"}}}, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case l := <-s.levels:
		if l.Level != "withdrawn" || l.PoP != "B" {
			t.Errorf("level %+v, want B withdrawn", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no level within 5s of the report (the interval is an hour)")
	}
}

// TestForgetSilentMonitors: a vantage point silent for an hour is
// forgotten with its observations, levels or not.
func TestForgetSilentMonitors(t *testing.T) {
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	r, err := New(Config{Now: clk.now}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	obs := func(v string) {
		if err := r.Observe(Report{Vantage: v, Time: clk.now(), IntervalMS: 1000, PoPs: []PoPReport{{PoP: "P-" + v, State: "up"}}}, ""); err != nil {
			t.Fatal(err)
		}
	}
	obs("old")
	clk.add(time.Hour + time.Second)
	obs("new")
	v, _ := r.View(context.Background(), "")
	if len(v.Monitors) != 1 || v.Monitors[0].Vantage != "new" || len(v.PoPs) != 1 || v.PoPs[0].PoP != "P-new" {
		t.Errorf("after an hour of silence: monitors %+v, pops %+v; want only new", v.Monitors, v.PoPs)
	}
}
