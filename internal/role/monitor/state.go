package monitor

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/anycastdns/anycastdns/internal/admin"
	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/probe"
)

// PathView is the path of the monitor's view.
const PathView = "/v1/view"

// States of a PoP.
const (
	StateUnknown = "unknown" // not yet rise passing or fall failing rounds
	StateUp      = "up"
	StateDown    = "down"
)

// roundResult is what one round saw of one PoP.
type roundResult struct {
	udp, tcp probe.Result
	load     admin.Load
	loadErr  error
}

type sample struct {
	t   time.Time
	rtt time.Duration
}

// transport is the record of one DNS transport of a PoP.
type transport struct {
	last    probe.Result
	samples []sample // passing probes, oldest first, within the window
	ok, bad uint64   // probes so far
}

func (t *transport) record(r probe.Result, now time.Time, window time.Duration) {
	t.last = r
	if r.OK() {
		t.ok++
		t.samples = append(t.samples, sample{now, r.RTT})
	} else {
		t.bad++
	}
	cut := 0
	for cut < len(t.samples) && now.Sub(t.samples[cut].t) > window {
		cut++
	}
	t.samples = slices.Delete(t.samples, 0, cut)
}

// quantile is the nearest-rank q-quantile of the RTTs in the window; 0
// without samples.
func (t *transport) quantile(q float64) time.Duration {
	if len(t.samples) == 0 {
		return 0
	}
	rtts := make([]time.Duration, len(t.samples))
	for i, s := range t.samples {
		rtts[i] = s.rtt
	}
	slices.Sort(rtts)
	rank := int(q*float64(len(rtts))+0.999999999) - 1
	return rtts[min(max(rank, 0), len(rtts)-1)]
}

// popState is what the monitor knows of one PoP.
type popState struct {
	cfg           config.MonitorPoP
	state         string
	since         time.Time // of state; zero while unknown
	passes, fails int       // rounds in a row
	lastRound     time.Time
	udp, tcp      transport
	load          *admin.Load // the last one read, nil before
	loadErr       string      // of the last read
	loadAt        time.Time   // when the last one was read
}

// record adds a round and returns the state change it made ("up" or
// "down"), or "".
func (p *popState) record(now time.Time, r roundResult, cfg *config.Monitor) string {
	p.lastRound = now
	p.udp.record(r.udp, now, cfg.Window)
	p.tcp.record(r.tcp, now, cfg.Window)
	if p.cfg.Load != "" {
		if r.loadErr != nil {
			p.loadErr = r.loadErr.Error()
		} else {
			l := r.load
			p.load, p.loadErr, p.loadAt = &l, "", now
		}
	}
	if r.udp.OK() && r.tcp.OK() {
		p.passes++
		p.fails = 0
	} else {
		p.fails++
		p.passes = 0
	}
	switch {
	case p.state != StateUp && p.passes >= cfg.Rise:
		p.state, p.since = StateUp, now
		return "up"
	case p.state != StateDown && p.fails >= cfg.Fall:
		p.state, p.since = StateDown, now
		return "down"
	}
	return ""
}

// View is the monitor's view, as GET /v1/view gives it.
type View struct {
	Vantage         string    `json:"vantage"`
	Time            time.Time `json:"time"`
	IntervalSeconds float64   `json:"interval_seconds"`
	TimeoutSeconds  float64   `json:"timeout_seconds"`
	Rise            int       `json:"rise"`
	Fall            int       `json:"fall"`
	WindowSeconds   float64   `json:"window_seconds"`
	CanaryZone      string    `json:"canary_zone"`
	PoPs            []PoPView `json:"pops"`
}

// PoPView is one PoP in the view.
type PoPView struct {
	Name  string         `json:"name"`
	DNS   netip.AddrPort `json:"dns"`
	State string         `json:"state"` // unknown, up, down
	// Since is when the PoP entered State; absent while unknown.
	Since time.Time `json:"since,omitzero"`
	// LastProbe is the end of the last round; absent before the first.
	LastProbe time.Time     `json:"last_probe,omitzero"`
	Passes    int           `json:"passes"` // rounds in a row that passed
	Fails     int           `json:"fails"`  // rounds in a row that failed
	UDP       TransportView `json:"udp"`
	TCP       TransportView `json:"tcp"`
	// Load is the node's last load read, absent before the first (or
	// without a load URL); LoadError is the error of the last read.
	Load      *admin.Load `json:"load,omitempty"`
	LoadTime  time.Time   `json:"load_time,omitzero"`
	LoadError string      `json:"load_error,omitempty"`
}

// TransportView is one DNS transport of a PoP in the view. RTTs are in
// milliseconds.
type TransportView struct {
	OK      bool    `json:"ok"`               // the last probe passed
	Error   string  `json:"error,omitempty"`  // of the last probe
	Serial  uint32  `json:"serial,omitempty"` // SOA serial of the last passing probe
	RTTms   float64 `json:"rtt_ms"`           // of the last probe
	P50ms   float64 `json:"p50_ms"`           // over the window's passing probes
	P95ms   float64 `json:"p95_ms"`
	Samples int     `json:"samples"` // passing probes in the window
	Passed  uint64  `json:"passed"`  // probes so far
	Failed  uint64  `json:"failed"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (t *transport) view() TransportView {
	return TransportView{
		OK: t.last.OK() && !t.last.Start.IsZero(), Error: errString(t.last.Err), Serial: t.last.Serial,
		RTTms: ms(t.last.RTT), P50ms: ms(t.quantile(0.5)), P95ms: ms(t.quantile(0.95)),
		Samples: len(t.samples), Passed: t.ok, Failed: t.bad,
	}
}

// View returns what the monitor sees now.
func (m *Monitor) View() View {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.cfg
	v := View{
		Vantage: c.Vantage, Time: time.Now(), IntervalSeconds: c.Interval.Seconds(), TimeoutSeconds: c.Timeout.Seconds(),
		Rise: c.Rise, Fall: c.Fall, WindowSeconds: c.Window.Seconds(), CanaryZone: c.CanaryZone,
		PoPs: make([]PoPView, 0, len(m.pops)),
	}
	for _, p := range m.pops {
		pv := PoPView{
			Name: p.cfg.Name, DNS: p.cfg.DNS, State: p.state, Since: p.since, LastProbe: p.lastRound,
			Passes: p.passes, Fails: p.fails, UDP: p.udp.view(), TCP: p.tcp.view(),
			LoadTime: p.loadAt, LoadError: p.loadErr,
		}
		if p.load != nil {
			l := *p.load
			pv.Load = &l
		}
		v.PoPs = append(v.PoPs, pv)
	}
	return v
}

func (m *Monitor) serveView(w http.ResponseWriter, _ *http.Request) {
	b, err := json.MarshalIndent(m.View(), "", "  ")
	if err != nil {
		http.Error(w, "encode view: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(append(b, '\n'))
}

var (
	upDesc = prometheus.NewDesc("anycastd_monitor_pop_up", "1 when the PoP is up from this vantage point, 0 when down or not yet known.",
		[]string{"vantage", "pop"}, nil)
	rttDesc = prometheus.NewDesc("anycastd_monitor_pop_rtt_seconds", "RTT quantiles of the passing SOA probes over the window.",
		[]string{"vantage", "pop", "transport", "quantile"}, nil)
	probesDesc = prometheus.NewDesc("anycastd_monitor_probes_total", "SOA probes by result.",
		[]string{"vantage", "pop", "transport", "result"}, nil)
	qpsDesc = prometheus.NewDesc("anycastd_monitor_pop_queries_per_second", "The node's queries per second, as last read from its /v1/load.",
		[]string{"vantage", "pop"}, nil)
	cpuDesc = prometheus.NewDesc("anycastd_monitor_pop_cpu", "The node's CPU use in cores, as last read from its /v1/load.",
		[]string{"vantage", "pop"}, nil)
)

// viewCollector exposes the view at scrape time.
type viewCollector struct{ m *Monitor }

func (c *viewCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{upDesc, rttDesc, probesDesc, qpsDesc, cpuDesc} {
		ch <- d
	}
}

func (c *viewCollector) Collect(ch chan<- prometheus.Metric) {
	v := c.m.View()
	for _, p := range v.PoPs {
		up := 0.0
		if p.State == StateUp {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, up, v.Vantage, p.Name)
		for _, t := range []struct {
			name string
			tv   TransportView
		}{{"udp", p.UDP}, {"tcp", p.TCP}} {
			ch <- prometheus.MustNewConstMetric(rttDesc, prometheus.GaugeValue, t.tv.P50ms/1000, v.Vantage, p.Name, t.name, "0.5")
			ch <- prometheus.MustNewConstMetric(rttDesc, prometheus.GaugeValue, t.tv.P95ms/1000, v.Vantage, p.Name, t.name, "0.95")
			ch <- prometheus.MustNewConstMetric(probesDesc, prometheus.CounterValue, float64(t.tv.Passed), v.Vantage, p.Name, t.name, "ok")
			ch <- prometheus.MustNewConstMetric(probesDesc, prometheus.CounterValue, float64(t.tv.Failed), v.Vantage, p.Name, t.name, "fail")
		}
		if p.Load != nil {
			ch <- prometheus.MustNewConstMetric(qpsDesc, prometheus.GaugeValue, p.Load.QueriesPerSecond, v.Vantage, p.Name)
			ch <- prometheus.MustNewConstMetric(cpuDesc, prometheus.GaugeValue, p.Load.CPU, v.Vantage, p.Name)
		}
	}
}
