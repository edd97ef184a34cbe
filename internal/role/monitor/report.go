package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/fleet"
)

// The report to the control plane (config report): after each round the
// monitor hands what it sees to a reporter goroutine, which POSTs it to
// the control plane's /v1/fleet/observations. The reporter holds only the
// newest report: a slow or absent control plane never delays a round, and
// a report it could not send is replaced by the next one rather than
// queued. Failures are counted (anycastd_monitor_reports_total) and
// logged: the first of a run at once, then once a minute, and the
// recovery.

// reportLogEvery is how often a run of failing reports is logged.
const reportLogEvery = time.Minute

// reporter sends the reports.
type reporter struct {
	m       *Monitor
	hc      *http.Client
	pending chan fleet.Report // the newest report not yet sent
	results *prometheus.CounterVec

	// The sender's own.
	failing  int // reports failed in a row
	loggedAt time.Time
}

func newReporter(m *Monitor) *reporter {
	return &reporter{m: m, hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute}},
		pending: make(chan fleet.Report, 1),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "anycastd", Name: "monitor_reports_total",
			Help: "Reports sent to the control plane, by result (ok, error)."}, []string{"result"})}
}

// offer replaces the pending report with rep, without blocking.
func (r *reporter) offer(rep fleet.Report) {
	for {
		select {
		case r.pending <- rep:
			return
		default:
		}
		select {
		case <-r.pending:
		default:
		}
	}
}

// run sends each report handed to it until ctx ends.
func (r *reporter) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case rep := <-r.pending:
			cfg := r.m.config()
			if cfg.Report == nil {
				continue // reloaded without a report section
			}
			// A report is worth no more than an interval: by then the
			// next one replaces it.
			sctx, cancel := context.WithTimeout(ctx, max(cfg.Interval, 100*time.Millisecond))
			err := r.send(sctx, cfg.Report, rep)
			cancel()
			if ctx.Err() != nil {
				return
			}
			r.record(err, cfg.Report.URL)
		}
	}
}

// record counts a report and logs the failures, rate-limited.
func (r *reporter) record(err error, url string) {
	now := time.Now()
	if err == nil {
		r.results.WithLabelValues("ok").Inc()
		if r.failing > 0 {
			r.m.log.Info("reports reach the control plane again", "url", url, "failed", r.failing)
		}
		r.failing = 0
		return
	}
	r.results.WithLabelValues("error").Inc()
	r.failing++
	if r.failing == 1 || now.Sub(r.loggedAt) >= reportLogEvery {
		r.loggedAt = now
		r.m.log.Warn("report to the control plane failed; probing goes on", "url", url, "failed_in_a_row", r.failing, "err", err)
	}
}

// send POSTs one report.
func (r *reporter) send(ctx context.Context, rc *config.MonitorReport, rep fleet.Report) error {
	body, err := json.Marshal(rep)
	if err != nil {
		return fmt.Errorf("encode the report: %w", err)
	}
	u := strings.TrimSuffix(rc.URL, "/") + fleet.PathObservations
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+rc.Token)
	resp, err := r.hc.Do(req)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		text := strings.TrimSpace(string(msg))
		if json.Unmarshal(msg, &e) == nil && e.Error != "" {
			text = e.Error
		}
		return fmt.Errorf("report: %s: %s", resp.Status, text)
	}
	return nil
}

// report builds the report of the round that ended at now; m.mu is held.
func (m *Monitor) reportLocked(now time.Time) fleet.Report {
	c := m.cfg
	rep := fleet.Report{Vantage: c.Vantage, Time: now, IntervalMS: max(c.Interval.Milliseconds(), 1),
		PoPs: make([]fleet.PoPReport, 0, len(m.pops))}
	for _, p := range m.pops {
		pr := fleet.PoPReport{PoP: p.cfg.Name, State: p.state,
			RTTp50ms: ms(p.udp.quantile(0.5)), RTTp95ms: ms(p.udp.quantile(0.95))}
		if p.load != nil && p.loadErr == "" {
			qps, conns, cpu := p.load.QueriesPerSecond, int(p.load.TCPConnections), p.load.CPU
			limited := p.load.DroppedPerSecond + p.load.RRLDroppedPerSecond + p.load.RRLSlippedPerSecond
			pr.QPS, pr.TCPConns, pr.CPU, pr.Limited = &qps, &conns, &cpu, &limited
		}
		if err := errors.Join(p.udp.last.Err, p.tcp.last.Err); err != nil {
			pr.Error = truncate(strings.ReplaceAll(err.Error(), "\n", "; "), 500)
		}
		rep.PoPs = append(rep.PoPs, pr)
	}
	rep.Endpoints = m.eps.reports()
	return rep
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
