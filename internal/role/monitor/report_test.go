package monitor

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/fleet"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

const reportToken = "0123456789abcdef-monitor"

// runMonitor runs m's rounds and reporter until the test ends.
func runMonitor(t *testing.T, m *Monitor) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { m.loop(ctx, nil) })
	wg.Go(func() { m.rep.run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
}

func reportConfig(url string) *config.Monitor {
	cfg := testConfig()
	cfg.Interval, cfg.Timeout, cfg.Rise, cfg.Fall = 50*time.Millisecond, 40*time.Millisecond, 1, 1
	cfg.Report = &config.MonitorReport{URL: url, Token: reportToken}
	return cfg
}

// TestReportReachesControl: each round's view reaches a control plane's
// API (the real handler over a fleet) with the PoPs' states, RTTs and
// load, and the fleet view shows the vantage point.
func TestReportReachesControl(t *testing.T) {
	reg, err := fleet.New(fleet.Config{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler(nil, api.Config{Tokens: []string{reportToken}, Fleet: reg}, nil))
	defer srv.Close()
	f := &fakeProber{down: map[netip.AddrPort]bool{addrB: true}, rtt: map[netip.AddrPort]time.Duration{addrA: 2 * time.Millisecond}, qps: 42}
	m, err := New(reportConfig(srv.URL+"/"), nil, WithProber(f))
	if err != nil {
		t.Fatal(err)
	}
	runMonitor(t, m)
	deadline := time.Now().Add(5 * time.Second)
	for {
		v, err := reg.View(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]fleet.VantageView{}
		for _, p := range v.PoPs {
			for _, o := range p.Vantages {
				got[p.PoP] = o
			}
		}
		a, b := got["A"], got["B"]
		if len(v.Monitors) == 1 && v.Monitors[0].Reports >= 3 && a.State == "up" && b.State == "down" {
			if a.Vantage != "v1" || a.RTTp95ms < 2 || a.QPS == nil || *a.QPS != 42 || a.Stale {
				t.Errorf("A from v1: %+v", a)
			}
			if b.QPS != nil || !strings.Contains(b.Error, "timed out") {
				t.Errorf("B from v1 (load broken, DNS down): %+v", b)
			}
			if m := v.Monitors[0]; m.IntervalMS != 50 || m.PoPs != 2 {
				t.Errorf("monitor: %+v", m)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the control plane did not get the reports: %+v", v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReportNeverDelaysProbing: a control plane that hangs or refuses the
// token costs the monitor no round; the failures are counted and logged
// once, not once a round.
func TestReportNeverDelaysProbing(t *testing.T) {
	for _, tt := range []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"hangs", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body) // then the request's context ends with the client's connection
			<-r.Context().Done()
		}, "context deadline exceeded"},
		{"refuses", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error": "missing or invalid bearer token"}`))
		}, "401 Unauthorized: missing or invalid bearer token"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.handler)
			t.Cleanup(srv.Close) // after the monitor's cleanup stops it
			f := &fakeProber{down: map[netip.AddrPort]bool{}, rtt: map[netip.AddrPort]time.Duration{}}
			var logs testkit.Buffer
			m, err := New(reportConfig(srv.URL), slog.New(slog.NewTextHandler(&logs, nil)), WithProber(f))
			if err != nil {
				t.Fatal(err)
			}
			runMonitor(t, m)
			time.Sleep(time.Second)
			a := popView(t, m, "A")
			if n := a.UDP.Passed + a.UDP.Failed; n < 15 {
				t.Errorf("%d rounds in 1s at an interval of 50ms: the reports delay the probes", n)
			}
			if n := strings.Count(logs.String(), "report to the control plane failed"); n != 1 {
				t.Errorf("%d failure lines in 1s, want 1 (rate-limited):\n%s", n, logs.String())
			}
			if !strings.Contains(logs.String(), tt.want) {
				t.Errorf("the log does not say %q:\n%s", tt.want, logs.String())
			}
			mfs, err := m.reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			failed := 0.0
			for _, mf := range mfs {
				if mf.GetName() == "anycastd_monitor_reports_total" {
					for _, mt := range mf.GetMetric() {
						if mt.GetLabel()[0].GetValue() == "error" {
							failed = mt.GetCounter().GetValue()
						}
					}
				}
			}
			if failed < 3 {
				t.Errorf("anycastd_monitor_reports_total{result=error} = %v after 1s of failures", failed)
			}
		})
	}
}
