package lab

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestServiceAddr: a region's endpoints sit at host 10, 11… of its first
// client's IPv4 network; past the network, or without a client, is an
// error naming the region.
func TestServiceAddr(t *testing.T) {
	topo, err := SteeringTopology()
	if err != nil {
		t.Fatal(err)
	}
	p := newPlan("t", topo)
	for _, c := range []struct {
		region string
		i      int
		node   string
		addr   string
		err    string
	}{
		{"A", 0, "A-client", "198.51.100.10", ""},
		{"B", 1, "B-client", "198.51.100.75", ""},
		{"C", 0, "C-client", "198.51.100.138", ""},
		{"A", 22, "", "", "outside A-client's network 198.51.100.0/27"},
		{"Z", 0, "", "", "region Z"},
	} {
		n, a, err := p.serviceAddr(c.region, c.i)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("serviceAddr(%s, %d): err %v, want one with %q", c.region, c.i, err, c.err)
			}
			continue
		}
		if err != nil || n.Name != c.node || a.String() != c.addr {
			t.Errorf("serviceAddr(%s, %d) = %v %s %v, want %s %s", c.region, c.i, n, a, err, c.node, c.addr)
		}
	}
}

// TestServiceHandler: /health follows SetHealthy with the body the pools'
// check looks for, /load SetLoad in the field their load source reads.
func TestServiceHandler(t *testing.T) {
	s := &Service{Name: "B1"}
	s.SetHealthy(true)
	s.SetLoad(42.5)
	srv := httptest.NewServer(s)
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path) //nolint:noctx // a test server
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(ServiceHealthPath); code != 200 || !strings.Contains(body, "ok") {
		t.Errorf("healthy: %d %q", code, body)
	}
	s.SetHealthy(false)
	if code, body := get(ServiceHealthPath); code != 503 || strings.Contains(body, "ok") {
		t.Errorf("failing: %d %q, want 503 without \"ok\"", code, body)
	}
	code, body := get(ServiceLoadPath)
	var doc map[string]float64
	if err := json.Unmarshal([]byte(body), &doc); code != 200 || err != nil || doc[ServiceLoadField] != 42.5 {
		t.Errorf("load: %d %q (%v), want {%q: 42.5}", code, body, err, ServiceLoadField)
	}
	if code, _ := get("/other"); code != 404 {
		t.Errorf("/other: %d, want 404", code)
	}
	if s.Hits() != 4 {
		t.Errorf("%d hits, want 4", s.Hits())
	}
}

// TestAnalyzeEvent: the switch is the first answer after the event that
// shows it, answers after that which do not are flaps, the recovery the
// first answer as before once the event ended; lost queries count.
func TestAnalyzeEvent(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)
	t1 := t0.Add(3 * time.Second)
	old, nw := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")}, []netip.Addr{netip.MustParseAddr("192.0.2.1")}
	ans := func(at time.Duration, addrs []netip.Addr) steerAnswer {
		return steerAnswer{sent: t0.Add(at), recv: t0.Add(at + time.Millisecond), addrs: addrs, scope: -1}
	}
	lost := steerAnswer{sent: t0.Add(500 * time.Millisecond), err: "timeout", scope: -1}
	as := []steerAnswer{
		ans(-time.Second, old),
		ans(100*time.Millisecond, old),
		lost,
		ans(800*time.Millisecond, nw),
		ans(900*time.Millisecond, old), // a flap
		ans(time.Second, nw),
		ans(3100*time.Millisecond, nw),
		ans(3700*time.Millisecond, old),
	}
	isNew := func(a steerAnswer) bool { return a.ok() && a.set() == "192.0.2.1" }
	isOld := func(a steerAnswer) bool { return a.ok() && a.set() == "192.0.2.1,192.0.2.2" }
	o := analyzeEvent(as, t0, t1, isNew, isOld)
	if o.queries != 5 || o.lost != 1 || o.flaps != 1 || o.before != "192.0.2.1,192.0.2.2" || o.during != "192.0.2.1" || o.after != "192.0.2.1,192.0.2.2" {
		t.Errorf("outcome %+v", o)
	}
	if o.switched == nil || *o.switched != 801 || o.recovered == nil || *o.recovered != 701 {
		t.Errorf("switched %v, recovered %v; want 801 and 701 ms", fmtMS(o.switched), fmtMS(o.recovered))
	}
	if o := analyzeEvent(as[:3], t0, t1, isNew, isOld); o.switched != nil || o.recovered != nil {
		t.Errorf("no switch: %+v", o)
	}
}

// TestServiceLineJSON: a service line carries the keys issue #14 names,
// switch_ms and recover_ms null when nothing switched; the table prints
// it under its scenario.
func TestServiceLineJSON(t *testing.T) {
	r := &Result{Scenario: "steer-geo", Service: []ServiceLine{{Scenario: "steer-geo", Client: "A-client", Resolver: "B-client", ECS: "2001:db8:a::/56",
		Answer: "198.51.100.10", Expected: "198.51.100.10", Queries: 20, OK: true, Scope: "48", ExpectedScope: "48"}}}
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"scenario", "client", "answer", "expected", "queries", "ok", "scope", "switch_ms", "recover_ms"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in %s", k, b.String())
		}
	}
	if m["switch_ms"] != nil || m["ok"] != true || m["queries"] != 20.0 {
		t.Errorf("line %s", b.String())
	}
	b.Reset()
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "A-client via B-client") || !strings.Contains(b.String(), "48/48") {
		t.Errorf("table:\n%s", b.String())
	}
}

// TestNearestService: the expected endpoint of steer-latency by path
// delay follows the links' delays, and a tie has none.
func TestNearestService(t *testing.T) {
	topo, err := SteeringTopology()
	if err != nil {
		t.Fatal(err)
	}
	l := &Lab{plan: newPlan("t", topo)}
	e := &svcEnv{l: l}
	svcs := []*Service{{Node: "A-client", Addr: netip.MustParseAddr("198.51.100.10")}, {Node: "C-client", Addr: netip.MustParseAddr("198.51.100.138")}}
	if got := e.nearestService("B-client", svcs); got != "" {
		t.Errorf("A—B and B—C alike: B-client's nearest %q, want a tie", got)
	}
	if got := e.nearestService("A-client", svcs); got != "198.51.100.10" {
		t.Errorf("A-client's nearest %q", got)
	}
	k, err := l.routerLink("B", "C")
	if err != nil {
		t.Fatal(err)
	}
	k.Spec.Delay = 15 * time.Millisecond
	if got := e.nearestService("B-client", svcs); got != "198.51.100.10" {
		t.Errorf("B—C slower: B-client's nearest %q, want A's", got)
	}
	// B-client's monitor: A's endpoint 1 ms away (one way), C's 15 ms.
	if !e.rttsFresh("B-client", map[string]float64{"198.51.100.10": 4.1, "198.51.100.138": 62}, svcs) {
		t.Error("RTTs of 4.1 and 62 ms over paths of 1 and 15 ms one way: not fresh")
	}
	if e.rttsFresh("B-client", map[string]float64{"198.51.100.10": 4.1, "198.51.100.138": 7}, svcs) {
		t.Error("an RTT of 7 ms over a path of 15 ms one way (measured before the change): fresh")
	}
	if e.rttsFresh("B-client", map[string]float64{"198.51.100.10": 4.1}, svcs) {
		t.Error("an endpoint without RTT: fresh")
	}
	if got := lowestOf(map[string]float64{"a": 3, "b": 1.5, "c": 9}); got != "b" {
		t.Errorf("lowestOf = %q", got)
	}
}
