package fleet

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// PathObservations is where monitors POST their reports (package
// internal/api serves it).
const PathObservations = "/v1/fleet/observations"

// Report is what one monitor saw of every PoP in one probe round: the body
// of POST /v1/fleet/observations.
type Report struct {
	// Vantage names the monitor's vantage point (its vantage setting).
	Vantage string `json:"vantage"`
	// Time is the end of the round by the monitor's clock. Freshness is
	// judged by when the control plane received the report, so the two
	// clocks need not agree; Time is shown.
	Time time.Time `json:"time"`
	// IntervalMS is the monitor's probe interval.
	IntervalMS int64       `json:"interval_ms"`
	PoPs       []PoPReport `json:"pops"`
	// Endpoints are the pools' endpoints as this vantage point's health
	// checks see them (issue #14). Optional: a monitor of an older
	// version sends none, and a report without them leaves this vantage
	// point with no endpoint observations.
	Endpoints []EndpointReport `json:"endpoints,omitempty"`
}

// EndpointReport is one endpoint of one pool in a report.
type EndpointReport struct {
	// Zone, Pool (the owner name and type, "svc.example.com./A") and
	// Endpoint (steer.Endpoint.Key: its address, or its name) say which.
	Zone     string `json:"zone"`
	Pool     string `json:"pool"`
	Endpoint string `json:"endpoint"`
	// State is up, down or unknown (not yet rise or fall probes).
	State string `json:"state"`
	// Quorum is the pool check's: how many fresh vantage points must see
	// the endpoint down for it to be down.
	Quorum int `json:"quorum"`
	// RTTms is the last passing probe's time, in milliseconds; 0 = none.
	RTTms float64 `json:"rtt_ms"`
	// Load is the endpoint's load as last read (check.load); absent when
	// the pool names no load source or the read failed.
	Load *float64 `json:"load,omitempty"`
	// Error is why the last probe failed, if it did.
	Error string `json:"error,omitempty"`
}

// PoPReport is one PoP in a report.
type PoPReport struct {
	// PoP is the PoP's name: the one its nodes report (node control.pop).
	PoP string `json:"pop"`
	// State is up, down or unknown (not yet rise or fall rounds: it
	// counts as no observation).
	State string `json:"state"`
	// RTTp50ms and RTTp95ms are the monitor's RTT quantiles of the SOA
	// probes over its window, in milliseconds; 0 = none.
	RTTp50ms float64 `json:"rtt_p50_ms"`
	RTTp95ms float64 `json:"rtt_p95_ms"`
	// QPS, TCPConns and CPU are the node's load as the monitor last read
	// it (GET /v1/load); absent when it does not read the load or the
	// read failed.
	QPS      *float64 `json:"qps,omitempty"`
	TCPConns *int     `json:"tcp_conns,omitempty"`
	CPU      *float64 `json:"cpu,omitempty"`
	// Limited is what the node dropped unanswered or rate limited, in
	// queries a second (its load's dropped, RRL dropped and slipped
	// rates): the sign of a flood the levels absorb (level rule 6).
	Limited *float64 `json:"limited_qps,omitempty"`
	// Error is why the last probe failed, if it did.
	Error string `json:"error,omitempty"`
}

// Bounds of a report.
const (
	MaxReportPoPs = 1000
	// MaxReportEndpoints bounds the endpoints of a report.
	MaxReportEndpoints = 10000
	maxName            = 63
	maxReportError     = 512
	maxInterval        = time.Hour
	// forgetAfter drops a vantage point's observations (and the
	// monitor) once nothing came from it for this long.
	forgetAfter = time.Hour
)

// Report states.
const (
	ReportUp      = "up"
	ReportDown    = "down"
	ReportUnknown = "unknown"
)

// ErrInvalidReport marks a report that is refused (the API answers 400).
var ErrInvalidReport = errors.New("invalid report")

// Validate checks a report; the error names the first bad field, as
// "pops[2].state: ...".
func (rep *Report) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidReport, field, fmt.Sprintf(format, args...))
	}
	if err := checkName(rep.Vantage); err != nil {
		return bad("vantage", "%v", err)
	}
	if rep.Time.IsZero() {
		return bad("time", "required (RFC 3339, the end of the round)")
	}
	if rep.IntervalMS <= 0 || rep.IntervalMS > maxInterval.Milliseconds() {
		return bad("interval_ms", "must be between 1 and %d, got %d", maxInterval.Milliseconds(), rep.IntervalMS)
	}
	if len(rep.PoPs) > MaxReportPoPs {
		return bad("pops", "at most %d PoPs, got %d", MaxReportPoPs, len(rep.PoPs))
	}
	seen := make(map[string]int, len(rep.PoPs))
	for i, p := range rep.PoPs {
		f := fmt.Sprintf("pops[%d]", i)
		if err := checkName(p.PoP); err != nil {
			return bad(f+".pop", "%v", err)
		}
		if j, dup := seen[p.PoP]; dup {
			return bad(f+".pop", "duplicate PoP %s (also pops[%d])", p.PoP, j)
		}
		seen[p.PoP] = i
		switch p.State {
		case ReportUp, ReportDown, ReportUnknown:
		default:
			return bad(f+".state", "want up, down or unknown, got %q", p.State)
		}
		for _, n := range []struct {
			field string
			v     *float64
		}{{"rtt_p50_ms", &p.RTTp50ms}, {"rtt_p95_ms", &p.RTTp95ms}, {"qps", p.QPS}, {"cpu", p.CPU}, {"limited_qps", p.Limited}} {
			if n.v != nil && (math.IsNaN(*n.v) || math.IsInf(*n.v, 0) || *n.v < 0 || *n.v > 1e12) {
				return bad(f+"."+n.field, "must be a number from 0 to 1e12, got %v", *n.v)
			}
		}
		if p.TCPConns != nil && *p.TCPConns < 0 {
			return bad(f+".tcp_conns", "must not be negative, got %d", *p.TCPConns)
		}
		if len(p.Error) > maxReportError {
			return bad(f+".error", "at most %d bytes, got %d", maxReportError, len(p.Error))
		}
	}
	return rep.validateEndpoints(bad)
}

// validateEndpoints checks the endpoints of a report.
func (rep *Report) validateEndpoints(bad func(field, format string, args ...any) error) error {
	if len(rep.Endpoints) > MaxReportEndpoints {
		return bad("endpoints", "at most %d, got %d", MaxReportEndpoints, len(rep.Endpoints))
	}
	seen := make(map[string]int, len(rep.Endpoints))
	for i, e := range rep.Endpoints {
		f := fmt.Sprintf("endpoints[%d]", i)
		for _, v := range []struct{ field, s string }{{"zone", e.Zone}, {"pool", e.Pool}, {"endpoint", e.Endpoint}} {
			if v.s == "" || len(v.s) > 300 {
				return bad(f+"."+v.field, "1 to 300 characters, got %d", len(v.s))
			}
		}
		id := endpointID(e)
		if j, dup := seen[id]; dup {
			return bad(f, "endpoint %s of pool %s given twice (also endpoints[%d])", e.Endpoint, e.Pool, j)
		}
		seen[id] = i
		switch e.State {
		case ReportUp, ReportDown, ReportUnknown:
		default:
			return bad(f+".state", "want up, down or unknown, got %q", e.State)
		}
		if e.Quorum < 1 || e.Quorum > 100 {
			return bad(f+".quorum", "1 to 100, got %d", e.Quorum)
		}
		for _, n := range []struct {
			field string
			v     *float64
		}{{"rtt_ms", &e.RTTms}, {"load", e.Load}} {
			if n.v != nil && (math.IsNaN(*n.v) || math.IsInf(*n.v, 0) || *n.v < 0 || *n.v > 1e12) {
				return bad(f+"."+n.field, "must be a number from 0 to 1e12, got %v", *n.v)
			}
		}
		if len(e.Error) > maxReportError {
			return bad(f+".error", "at most %d bytes, got %d", maxReportError, len(e.Error))
		}
	}
	return nil
}

// endpointID names one endpoint of one pool.
func endpointID(e EndpointReport) string { return e.Zone + " " + e.Pool + " " + e.Endpoint }

// checkName checks a vantage point or PoP name: 1 to 63 characters of
// a-z A-Z 0-9 - _ . (as the monitor's configuration).
func checkName(s string) error {
	switch {
	case s == "":
		return errors.New("required")
	case len(s) > maxName:
		return fmt.Errorf("at most %d characters, got %d", maxName, len(s))
	case strings.IndexFunc(s, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && !strings.ContainsRune("-_.", r)
	}) >= 0:
		return fmt.Errorf("%q may contain only a-z A-Z 0-9 and - _ . characters", s)
	}
	return nil
}

// observation is the latest of one PoP from one vantage point.
type observation struct {
	rep      PoPReport
	time     time.Time // the monitor's
	received time.Time // the control plane's
}

// monitor is one vantage point as the registry knows it.
type monitor struct {
	remote   string
	received time.Time
	time     time.Time
	interval time.Duration
	pops     int
	reports  uint64
}

// Observe records a monitor's report (after Validate): for each PoP the
// latest observation of the vantage point replaces the one before. A
// decision step follows at once when levels are on, so that a PoP seen
// down moves without waiting for the next interval.
func (r *Registry) Observe(rep Report, remote string) error {
	if err := rep.Validate(); err != nil {
		r.met.reports.WithLabelValues("invalid").Inc()
		return err
	}
	now := r.now()
	r.mu.Lock()
	r.forgetOld(now)
	m := r.monitors[rep.Vantage]
	if m == nil {
		m = &monitor{}
		r.monitors[rep.Vantage] = m
		r.log.Info("new monitor", "vantage", rep.Vantage, "remote", remote, "pops", len(rep.PoPs))
	}
	m.remote, m.received, m.time = remote, now, rep.Time
	m.interval, m.pops = time.Duration(rep.IntervalMS)*time.Millisecond, len(rep.PoPs)
	m.reports++
	for _, p := range rep.PoPs {
		byVantage := r.obs[p.PoP]
		if byVantage == nil {
			byVantage = map[string]*observation{}
			r.obs[p.PoP] = byVantage
		}
		byVantage[rep.Vantage] = &observation{rep: p, time: rep.Time, received: now}
	}
	r.observeEndpointsLocked(rep.Vantage, rep.Endpoints, now)
	r.mu.Unlock()
	r.met.reports.WithLabelValues("ok").Inc()
	r.stepSteering()
	r.poke()
	return nil
}

// forgetOld drops what came from vantage points silent for forgetAfter;
// r.mu is held.
func (r *Registry) forgetOld(now time.Time) {
	for v, m := range r.monitors {
		if now.Sub(m.received) > forgetAfter {
			delete(r.monitors, v)
			r.log.Info("monitor forgotten: nothing from it for an hour", "vantage", v)
		}
	}
	for pop, byVantage := range r.obs {
		for v, o := range byVantage {
			if now.Sub(o.received) > forgetAfter {
				delete(byVantage, v)
			}
		}
		if len(byVantage) == 0 {
			delete(r.obs, pop)
		}
	}
	for id, byVantage := range r.eps {
		for v, o := range byVantage {
			if now.Sub(o.received) > forgetAfter {
				delete(byVantage, v)
			}
		}
		if len(byVantage) == 0 {
			delete(r.eps, id)
		}
	}
}
