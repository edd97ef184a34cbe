package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/anycastdns/anycastdns/internal/admin"
	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/probe"
)

// fakeProber answers from a table: a PoP address that is "down" times out
// (it waits for the round's deadline); others answer after rtt.
type fakeProber struct {
	mu   sync.Mutex
	down map[netip.AddrPort]bool
	rtt  map[netip.AddrPort]time.Duration
	qps  float64
}

func (f *fakeProber) DNS(ctx context.Context, addr netip.AddrPort, network, zone string) probe.Result {
	start := time.Now()
	f.mu.Lock()
	down, rtt := f.down[addr], f.rtt[addr]
	f.mu.Unlock()
	if down {
		<-ctx.Done()
		return probe.Result{Start: start, RTT: time.Since(start), Err: probe.ErrTimeout}
	}
	select {
	case <-time.After(rtt):
	case <-ctx.Done():
		return probe.Result{Start: start, RTT: time.Since(start), Err: ctx.Err()}
	}
	return probe.Result{Start: start, RTT: time.Since(start), Serial: 7}
}

func (f *fakeProber) Load(ctx context.Context, base string) (admin.Load, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.Contains(base, "broken") {
		return admin.Load{}, errors.New("load broken")
	}
	return admin.Load{Node: base, Time: time.Now(), Interval: time.Second, QueriesPerSecond: f.qps}, nil
}

func (f *fakeProber) set(addr netip.AddrPort, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down[addr] = down
}

var (
	addrA = netip.MustParseAddrPort("192.0.2.1:53")
	addrB = netip.MustParseAddrPort("192.0.2.2:53")
)

func testConfig() *config.Monitor {
	return &config.Monitor{
		Vantage: "v1", Listen: netip.MustParseAddrPort("127.0.0.1:8055"), CanaryZone: "example.com.",
		Interval: time.Second, Timeout: 500 * time.Millisecond, Rise: 2, Fall: 3, Window: 10 * time.Second,
		PoPs: []config.MonitorPoP{
			{Name: "A", DNS: addrA, Load: "http://a"},
			{Name: "B", DNS: addrB, Load: "http://broken"},
		},
		Log: config.Log{Format: config.LogText},
	}
}

func popView(t *testing.T, m *Monitor, name string) PoPView {
	t.Helper()
	for _, p := range m.View().PoPs {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no PoP %s in the view", name)
	return PoPView{}
}

// TestRiseFall: a PoP is up after rise passing rounds, down after fall
// failing ones, and in between keeps its state; RTT quantiles and load
// come along.
func TestRiseFall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeProber{down: map[netip.AddrPort]bool{}, rtt: map[netip.AddrPort]time.Duration{addrA: 10 * time.Millisecond, addrB: 30 * time.Millisecond}, qps: 42}
		m, err := New(testConfig(), nil, WithProber(f))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); m.loop(ctx, nil) }()
		defer func() { cancel(); <-done }()

		// Rounds at 0, 1 s, 2 s...; each takes its RTT.
		time.Sleep(100 * time.Millisecond)
		if err := m.Readiness(); err != nil {
			t.Fatalf("not ready after the first round: %v", err)
		}
		if p := popView(t, m, "A"); p.State != StateUnknown || p.Passes != 1 {
			t.Fatalf("after 1 round: %+v, want unknown with 1 pass", p)
		}
		time.Sleep(time.Second) // round 2
		a := popView(t, m, "A")
		if a.State != StateUp || a.UDP.P50ms != 10 || a.TCP.P95ms != 10 || a.UDP.Serial != 7 {
			t.Fatalf("after 2 rounds: %+v, want up with 10 ms RTTs", a)
		}
		if a.Load == nil || a.Load.QueriesPerSecond != 42 || a.LoadError != "" {
			t.Errorf("load of A: %+v (error %q)", a.Load, a.LoadError)
		}
		b := popView(t, m, "B")
		if b.State != StateUp || b.UDP.P95ms != 30 || b.Load != nil || b.LoadError != "load broken" {
			t.Errorf("B: %+v, want up, p95 30 ms, a load error and no load", b)
		}

		// A stops answering: still up after 2 failing rounds, down after 3.
		f.set(addrA, true)
		time.Sleep(2500 * time.Millisecond) // failing rounds end 500 ms after their start, at 2.5 s and 3.5 s
		a = popView(t, m, "A")
		if a.State != StateUp || a.Fails != 2 {
			t.Fatalf("after 2 failing rounds: %+v, want still up with 2 fails", a)
		}
		if !strings.Contains(a.UDP.Error, "timed out") || a.UDP.OK {
			t.Errorf("udp of A: %+v, want a timeout", a.UDP)
		}
		time.Sleep(time.Second)
		a = popView(t, m, "A")
		if a.State != StateDown || a.Fails != 3 {
			t.Fatalf("after 3 failing rounds: %+v, want down", a)
		}
		downSince := a.Since
		// One passing round is not enough to come back.
		f.set(addrA, false)
		time.Sleep(time.Second)
		if a = popView(t, m, "A"); a.State != StateDown || !a.Since.Equal(downSince) {
			t.Fatalf("after 1 passing round: %+v, want still down since %v", a, downSince)
		}
		time.Sleep(time.Second)
		if a = popView(t, m, "A"); a.State != StateUp {
			t.Fatalf("after 2 passing rounds: %+v, want up", a)
		}
		// The samples of the failing rounds are not in the quantiles; the
		// window drops the old ones.
		if a.UDP.Samples != 4 || a.UDP.Passed != 4 || a.UDP.Failed != 3 {
			t.Errorf("udp counts of A: %+v", a.UDP)
		}
		time.Sleep(20 * time.Second)
		if a = popView(t, m, "A"); a.UDP.Samples != 10 && a.UDP.Samples != 11 {
			t.Errorf("samples in a 10 s window of 1 s rounds: %d", a.UDP.Samples)
		}
	})
}

// TestReload: a reload keeps the state of the PoPs that stay, starts new
// ones unknown, drops removed ones, and a bad configuration changes nothing.
func TestReload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeProber{down: map[netip.AddrPort]bool{}, rtt: map[netip.AddrPort]time.Duration{}}
		next := testConfig()
		var loadErr error
		m, err := New(testConfig(), nil, WithProber(f), WithReload(func() (*config.Monitor, error) { return next, loadErr }))
		if err != nil {
			t.Fatal(err)
		}
		reload := make(chan struct{})
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); m.loop(ctx, reload) }()
		defer func() { cancel(); <-done }()
		time.Sleep(1500 * time.Millisecond)
		if p := popView(t, m, "A"); p.State != StateUp {
			t.Fatalf("A: %+v", p)
		}
		loadErr = errors.New("bad file")
		reload <- struct{}{}
		synctest.Wait()
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		if want := `anycastd_reloads_total{result="config_error"} 1`; !strings.Contains(rec.Body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
		loadErr = nil
		next = testConfig()
		next.Interval = 2 * time.Second
		next.PoPs = []config.MonitorPoP{next.PoPs[0], {Name: "C", DNS: netip.MustParseAddrPort("192.0.2.3:53")}}
		reload <- struct{}{}
		synctest.Wait()
		v := m.View()
		if len(v.PoPs) != 2 || v.PoPs[0].State != StateUp || v.PoPs[1].Name != "C" || v.PoPs[1].State != StateUnknown || v.IntervalSeconds != 2 {
			t.Fatalf("view after reload: %+v", v)
		}
		// The next round comes 2 s after the reload.
		before := v.PoPs[0].LastProbe
		time.Sleep(1900 * time.Millisecond)
		if p := popView(t, m, "A"); !p.LastProbe.Equal(before) {
			t.Errorf("a round ran %v after a reload to a 2 s interval", p.LastProbe.Sub(before))
		}
		time.Sleep(200 * time.Millisecond)
		if p := popView(t, m, "C"); p.Passes != 1 {
			t.Errorf("C after one round: %+v", p)
		}
	})
}

// TestHandler: the view as JSON, the metrics, the probes.
func TestHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeProber{down: map[netip.AddrPort]bool{addrB: true}, rtt: map[netip.AddrPort]time.Duration{addrA: 2 * time.Millisecond}, qps: 5}
		m, err := New(testConfig(), nil, WithProber(f))
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		if rec.Code != http.StatusServiceUnavailable {
			t.Errorf("/readyz before the first round: %d", rec.Code)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { defer close(done); m.loop(ctx, nil) }()
		time.Sleep(3600 * time.Millisecond) // 4 rounds done
		cancel()
		<-done
		checkHandler(t, m)
	})
}

func checkHandler(t *testing.T, m *Monitor) {
	for _, tt := range []struct {
		path, want string
		code       int
	}{
		{"/healthz", "ok", 200},
		{"/readyz", "ready", 200},
		{"/v1/view", `"state": "down"`, 200},
		{"/metrics", `anycastd_monitor_pop_up{pop="A",vantage="v1"} 1`, 200},
		{"/metrics", `anycastd_monitor_pop_up{pop="B",vantage="v1"} 0`, 200},
		{"/metrics", `anycastd_monitor_pop_rtt_seconds{pop="A",quantile="0.95",transport="udp",vantage="v1"} 0.002`, 200},
		{"/metrics", `anycastd_monitor_probes_total{pop="B",result="fail",transport="tcp",vantage="v1"} 4`, 200},
		{"/metrics", `anycastd_monitor_pop_queries_per_second{pop="A",vantage="v1"} 5`, 200},
		{"/metrics", `anycastd_build_info{`, 200},
		{"/nothing", "404", 404},
	} {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
		if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.want) {
			t.Errorf("GET %s: %d, want %d with %q in:\n%s", tt.path, rec.Code, tt.code, tt.want, rec.Body)
		}
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/view", nil))
	var v View
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatal(err)
	}
	if v.Vantage != "v1" || len(v.PoPs) != 2 || v.PoPs[0].State != StateUp || v.PoPs[0].Load == nil || v.PoPs[1].State != StateDown {
		t.Errorf("view: %+v", v)
	}
}

func TestQuantile(t *testing.T) {
	var tr transport
	now := time.Unix(0, 0)
	for i := 1; i <= 20; i++ {
		tr.record(probe.Result{Start: now, RTT: time.Duration(i) * time.Millisecond}, now, time.Minute)
	}
	if p50, p95 := tr.quantile(0.5), tr.quantile(0.95); p50 != 10*time.Millisecond || p95 != 19*time.Millisecond {
		t.Errorf("p50 %v p95 %v of 1..20 ms, want 10ms 19ms", p50, p95)
	}
	var empty transport
	if q := empty.quantile(0.95); q != 0 {
		t.Errorf("quantile without samples: %v", q)
	}
}
