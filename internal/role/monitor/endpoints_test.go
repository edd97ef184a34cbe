package monitor

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/fleet"
	"github.com/anycastdns/anycastdns/internal/steer"
)

// fakeControl is a control plane's API as the monitor uses it: the zones
// and their pools, and the reports it receives.
type fakeControl struct {
	mu      sync.Mutex
	pools   []api.Pool
	reports []fleet.Report
}

func (f *fakeControl) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+reportToken {
		http.Error(w, `{"error":"token"}`, http.StatusUnauthorized)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/zones":
		_ = json.NewEncoder(w).Encode(api.ZoneList{Zones: []api.ZoneInfo{{Name: "example.com."}}})
	case r.Method == http.MethodGet && r.URL.Path == "/v1/zones/example.com./pools":
		_ = json.NewEncoder(w).Encode(api.PoolList{Pools: f.pools})
	case r.Method == http.MethodPost && r.URL.Path == fleet.PathObservations:
		var rep fleet.Report
		if err := json.NewDecoder(r.Body).Decode(&rep); err != nil || rep.Validate() != nil {
			http.Error(w, `{"error":"bad report"}`, http.StatusBadRequest)
			return
		}
		f.reports = append(f.reports, rep)
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

// last is the newest report's endpoint states by endpoint key.
func (f *fakeControl) last() map[string]fleet.EndpointReport {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]fleet.EndpointReport{}
	if len(f.reports) == 0 {
		return out
	}
	for _, e := range f.reports[len(f.reports)-1].Endpoints {
		out[e.Endpoint] = e
	}
	return out
}

// switchable is an HTTP endpoint whose check can be made to fail.
type switchable struct {
	fail atomic.Bool
	srv  *httptest.Server
}

func newSwitchable(t *testing.T) *switchable {
	s := &switchable{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/load" {
			_, _ = fmt.Fprintln(w, `# TYPE conns gauge`)
			_, _ = fmt.Fprintln(w, `conns{pool="x"} 17`)
			return
		}
		if s.fail.Load() {
			http.Error(w, "broken", http.StatusServiceUnavailable)
			return
		}
		_, _ = fmt.Fprint(w, "service ok")
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *switchable) port() uint16 {
	return netip.MustParseAddrPort(s.srv.Listener.Addr().String()).Port()
}

// TestEndpointChecks: the monitor reads the pools from the control plane's
// API and reports each endpoint's state with rise and fall, its RTT and
// its load, in the same report as the PoPs; an endpoint failing its check
// is down after fall probes and up again after rise passing ones.
func TestEndpointChecks(t *testing.T) {
	svc := newSwitchable(t)
	// A check has one port for every endpoint: the second endpoint is a
	// server of its own on 127.0.0.2, same port.
	other := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = fmt.Fprint(w, "service ok") }))
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.2:%d", svc.port()))
	if err != nil {
		t.Skipf("127.0.0.2 on the test port: %v", err)
	}
	other.Listener = ln
	other.Start()
	t.Cleanup(other.Close)

	fc := &fakeControl{pools: []api.Pool{{Name: "svc.example.com.", Type: "A", Pool: steer.Pool{
		TTL: 5, Policy: []string{"up"},
		Check: &steer.Check{Type: "http", Port: svc.port(), Path: "/health", Body: "ok",
			Interval: steer.Duration{Duration: 100 * time.Millisecond}, Timeout: steer.Duration{Duration: 80 * time.Millisecond},
			Rise: 2, Fall: 2, Quorum: 1,
			Load: &steer.LoadSource{Type: "prometheus", URL: fmt.Sprintf("http://{address}:%d/load", svc.port()), Metric: `conns{pool="x"}`}},
		Endpoints: []steer.Endpoint{{Address: netip.MustParseAddr("127.0.0.1")}, {Address: netip.MustParseAddr("127.0.0.2")}},
	}}}}
	cp := httptest.NewServer(fc)
	defer cp.Close()
	m, err := New(reportConfig(cp.URL), nil, WithProber(&fakeProber{}))
	if err != nil {
		t.Fatal(err)
	}
	runMonitor(t, m)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.eps.run(ctx) }()
	defer func() { cancel(); <-done }()

	waitFor := func(what string, ok func(map[string]fleet.EndpointReport) bool) time.Duration {
		t.Helper()
		start := time.Now()
		for time.Since(start) < 5*time.Second {
			if ok(fc.last()) {
				return time.Since(start)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("%s: last endpoints reported %+v", what, fc.last())
		return 0
	}
	waitFor("both up", func(e map[string]fleet.EndpointReport) bool {
		return e["127.0.0.1"].State == StateUp && e["127.0.0.2"].State == StateUp
	})
	e := fc.last()["127.0.0.1"]
	if e.Zone != "example.com." || e.Pool != "svc.example.com./A" || e.Quorum != 1 || e.RTTms <= 0 || e.Load == nil || *e.Load != 17 {
		t.Errorf("endpoint report %+v: want zone, pool, quorum 1, an RTT and load 17", e)
	}
	svc.fail.Store(true)
	took := waitFor("127.0.0.1 down", func(e map[string]fleet.EndpointReport) bool {
		return e["127.0.0.1"].State == StateDown && e["127.0.0.2"].State == StateUp
	})
	if took > 2*100*time.Millisecond+time.Second {
		t.Errorf("down reported after %v, want within fall intervals", took)
	}
	if got := fc.last()["127.0.0.1"].Error; !strings.Contains(got, "status 503") {
		t.Errorf("error %q, want the status", got)
	}
	svc.fail.Store(false)
	waitFor("127.0.0.1 up again", func(e map[string]fleet.EndpointReport) bool { return e["127.0.0.1"].State == StateUp })
	// The pool removed: its endpoints leave the reports.
	fc.mu.Lock()
	fc.pools = nil
	fc.mu.Unlock()
	m.eps.set(ctx, nil)
	m.reportNow()
	waitFor("no endpoints", func(e map[string]fleet.EndpointReport) bool { return len(e) == 0 })
}

// TestProbeTypes: each check type passes against a live service and fails
// against a dead or wrong one, naming why.
func TestProbeTypes(t *testing.T) {
	https := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = fmt.Fprint(w, "fine") }))
	defer https.Close()
	hport := netip.MustParseAddrPort(https.Listener.Addr().String()).Port()
	dnsSrv := startDNS(t)
	dead := freePort(t)
	lo := steer.Endpoint{Address: netip.MustParseAddr("127.0.0.1")}
	ck := func(c steer.Check) epTarget {
		c.Timeout = steer.Duration{Duration: 500 * time.Millisecond}
		return epTarget{ep: lo, check: c.WithDefaults()}
	}
	for _, tc := range []struct {
		name  string
		t     epTarget
		error string // "" passes
	}{
		{"tcp up", ck(steer.Check{Type: "tcp", Port: hport}), ""},
		{"tcp dead", ck(steer.Check{Type: "tcp", Port: dead}), "refused"},
		{"https self-signed refused", ck(steer.Check{Type: "https", Port: hport}), "certificate"},
		{"https insecure", ck(steer.Check{Type: "https", Port: hport, Insecure: true, Body: "fine"}), ""},
		{"https body missing", ck(steer.Check{Type: "https", Port: hport, Insecure: true, Body: "other"}), `does not hold "other"`},
		{"https status", ck(steer.Check{Type: "https", Port: hport, Insecure: true, Status: 204}), "status 200, want 204"},
		{"dns up", ck(steer.Check{Type: "dns", Port: dnsSrv, Query: "ok.test"}), ""},
		{"dns refused", ck(steer.Check{Type: "dns", Port: dnsSrv, Query: "bad.test"}), "REFUSED"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rtt, err := probeEndpoint(context.Background(), tc.t)
			switch {
			case tc.error == "" && err != nil:
				t.Fatalf("failed: %v", err)
			case tc.error == "" && rtt <= 0:
				t.Fatalf("rtt %v", rtt)
			case tc.error != "" && (err == nil || !strings.Contains(err.Error(), tc.error)):
				t.Fatalf("error %v, want %q", err, tc.error)
			}
		})
	}
}

func freePort(t *testing.T) uint16 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := netip.MustParseAddrPort(ln.Addr().String()).Port()
	_ = ln.Close()
	return p
}

// startDNS serves NOERROR for ok.test and REFUSED otherwise over UDP.
func startDNS(t *testing.T) uint16 {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		r := new(dns.Msg)
		r.SetReply(q)
		if q.Question[0].Name != "ok.test." {
			r.Rcode = dns.RcodeRefused
		}
		_ = w.WriteMsg(r)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return netip.MustParseAddrPort(pc.LocalAddr().String()).Port()
}

// TestLoadSources: the JSON field and Prometheus gauge readers.
func TestLoadSources(t *testing.T) {
	if v, err := jsonField([]byte(`{"stats":{"conns":12.5}}`), "stats.conns"); err != nil || v != 12.5 {
		t.Errorf("json: %v %v", v, err)
	}
	for _, bad := range []string{`{"stats":{}}`, `{"stats":3}`, `{"stats":{"conns":"x"}}`, `not json`} {
		if _, err := jsonField([]byte(bad), "stats.conns"); err == nil {
			t.Errorf("json %s: no error", bad)
		}
	}
	text := "# TYPE a gauge\na_total 9\na 3\na{x=\"1\"} 4 1700000000\n"
	for metric, want := range map[string]float64{"a": 3, `a{x="1"}`: 4, "a_total": 9} {
		if v, err := promGauge([]byte(text), metric); err != nil || v != want {
			t.Errorf("prometheus %s: %v %v, want %v", metric, v, err, want)
		}
	}
	if _, err := promGauge([]byte(text), "b"); err == nil {
		t.Error("prometheus: a missing metric read")
	}
}
