package monitor

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/apiclient"
	"github.com/anycastdns/anycastdns/internal/fleet"
	"github.com/anycastdns/anycastdns/internal/steer"
)

// The pools' endpoint checks (issue #14): with a report section the
// monitor reads every pool of every zone from the control plane's API
// (the report's URL and token) every poolRefresh, and probes each
// endpoint of each pool that has a check, on the check's interval, with
// its timeout, rise and fall. Each endpoint starts unknown, is up after
// rise passing probes in a row and down after fall failing ones. The
// states, the last RTT and the load (check.load) go to the control plane
// in the same report as the PoPs; a change of state sends a report at
// once, so that it does not wait for the next PoP round.

// poolRefresh is how often the monitor re-reads the pools.
const poolRefresh = 5 * time.Second

// maxBody is how much of an HTTP check's (or load source's) body is read.
const maxBody = 64 << 10

// epTarget is one endpoint of one pool to probe.
type epTarget struct {
	zone, pool string // pool: "owner/TYPE"
	ep         steer.Endpoint
	check      steer.Check // with defaults
}

func (t epTarget) id() string { return t.zone + " " + t.pool + " " + t.ep.Key() }

// same reports whether t and o probe alike.
func (t epTarget) same(o epTarget) bool {
	a, _ := json.Marshal(t.check)
	b, _ := json.Marshal(o.check)
	return string(a) == string(b) && t.ep.Address == o.ep.Address && t.ep.Name == o.ep.Name
}

// epState is what the monitor knows of one endpoint of one pool.
type epState struct {
	t         epTarget
	cancel    context.CancelFunc
	state     string
	ok, bad   int // passing or failing probes in a row
	rtt       time.Duration
	load      *float64
	lastError string
}

// endpoints runs the endpoint checks.
type endpoints struct {
	m  *Monitor
	hc *http.Client // the load sources'

	mu      sync.Mutex
	targets map[string]*epState
}

func newEndpoints(m *Monitor) *endpoints {
	return &endpoints{m: m, targets: map[string]*epState{},
		hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, IdleConnTimeout: time.Minute}}}
}

// run re-reads the pools every poolRefresh until ctx ends.
func (e *endpoints) run(ctx context.Context) {
	var failing int
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			e.mu.Lock()
			for id, s := range e.targets {
				s.cancel()
				delete(e.targets, id)
			}
			e.mu.Unlock()
			return
		case <-t.C:
		}
		targets, err := e.fetch(ctx)
		switch {
		case ctx.Err() != nil:
			continue
		case err != nil:
			failing++
			if failing == 1 || failing%12 == 0 {
				e.m.log.Warn("reading the pools from the control plane failed; the endpoint checks keep the last ones", "err", err, "failed_in_a_row", failing)
			}
		default:
			if failing > 0 {
				e.m.log.Info("pools read from the control plane again", "failed", failing)
			}
			failing = 0
			e.set(ctx, targets)
		}
		t.Reset(poolRefresh)
	}
}

// fetch reads every pool with a check from the control plane's API.
func (e *endpoints) fetch(ctx context.Context) ([]epTarget, error) {
	rc := e.m.config().Report
	if rc == nil {
		return nil, nil
	}
	c, err := apiclient.New(rc.URL, rc.Token, nil)
	if err != nil {
		return nil, fmt.Errorf("the control plane's API: %w", err)
	}
	fctx, cancel := context.WithTimeout(ctx, poolRefresh)
	defer cancel()
	zones, err := c.ListZones(fctx)
	if err != nil {
		return nil, fmt.Errorf("list the zones: %w", err)
	}
	var out []epTarget
	for _, z := range zones {
		pools, err := c.Pools(fctx, z.Name)
		if errors.Is(err, apiclient.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("pools of zone %s: %w", z.Name, err)
		}
		for _, p := range pools {
			if p.Check == nil {
				continue
			}
			chk := p.Check.WithDefaults()
			for _, ep := range p.Endpoints {
				out = append(out, epTarget{zone: z.Name, pool: dns.Fqdn(p.Name) + "/" + p.Type, ep: ep, check: chk})
			}
		}
	}
	return out, nil
}

// set makes targets the endpoints probed: new ones start, gone ones stop,
// changed ones start over.
func (e *endpoints) set(ctx context.Context, targets []epTarget) {
	e.mu.Lock()
	defer e.mu.Unlock()
	want := map[string]epTarget{}
	for _, t := range targets {
		want[t.id()] = t
	}
	for id, s := range e.targets {
		if t, ok := want[id]; !ok || !t.same(s.t) {
			s.cancel()
			delete(e.targets, id)
		}
	}
	for id, t := range want {
		if _, ok := e.targets[id]; ok {
			continue
		}
		pctx, cancel := context.WithCancel(ctx)
		s := &epState{t: t, cancel: cancel, state: StateUnknown}
		e.targets[id] = s
		go e.probeLoop(pctx, s)
	}
}

// probeLoop probes one endpoint every interval until ctx ends.
func (e *endpoints) probeLoop(ctx context.Context, s *epState) {
	t := time.NewTicker(s.t.check.Interval.Duration)
	defer t.Stop()
	for {
		rtt, err := probeEndpoint(ctx, s.t)
		var load *float64
		if l := s.t.check.Load; l != nil && err == nil {
			v, lerr := e.readLoad(ctx, s.t)
			if lerr == nil {
				load = &v
			} else if ctx.Err() == nil {
				e.m.log.Debug("endpoint load", "pool", s.t.pool, "endpoint", s.t.ep.Key(), "err", lerr)
			}
		}
		if ctx.Err() != nil {
			return
		}
		if changed := e.record(s, rtt, load, err); changed {
			e.m.log.Info("endpoint "+s.state, "zone", s.t.zone, "pool", s.t.pool, "endpoint", s.t.ep.Key(), "error", errString(err))
			e.m.reportNow()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// record applies one probe's result with rise and fall; it reports
// whether the state changed.
func (e *endpoints) record(s *epState, rtt time.Duration, load *float64, err error) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	before := s.state
	if err == nil {
		s.ok, s.bad = s.ok+1, 0
		s.rtt, s.lastError = rtt, ""
		if s.ok >= s.t.check.Rise {
			s.state = StateUp
		}
	} else {
		s.ok, s.bad = 0, s.bad+1
		s.lastError = truncate(strings.ReplaceAll(err.Error(), "\n", "; "), 500)
		if s.bad >= s.t.check.Fall {
			s.state = StateDown
		}
	}
	s.load = load
	return s.state != before
}

// reports are the endpoints for a report, in a stable order.
func (e *endpoints) reports() []fleet.EndpointReport {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]fleet.EndpointReport, 0, len(e.targets))
	for _, s := range e.targets {
		out = append(out, fleet.EndpointReport{Zone: s.t.zone, Pool: s.t.pool, Endpoint: s.t.ep.Key(), State: s.state,
			Quorum: s.t.check.Quorum, RTTms: ms(s.rtt), Load: s.load, Error: s.lastError})
	}
	slices.SortFunc(out, func(a, b fleet.EndpointReport) int {
		return strings.Compare(a.Zone+" "+a.Pool+" "+a.Endpoint, b.Zone+" "+b.Pool+" "+b.Endpoint)
	})
	return out
}

// host is where a probe of t connects: the endpoint's address or name.
func (t epTarget) host() string {
	if t.ep.Address.IsValid() {
		return t.ep.Address.String()
	}
	return strings.TrimSuffix(t.ep.Name, ".")
}

// probeEndpoint runs t's check once, bounded by its timeout, and returns
// the time it took.
func probeEndpoint(ctx context.Context, t epTarget) (time.Duration, error) {
	c := t.check
	ctx, cancel := context.WithTimeout(ctx, c.Timeout.Duration)
	defer cancel()
	addr := net.JoinHostPort(t.host(), strconv.Itoa(int(c.Port)))
	start := time.Now()
	var err error
	switch c.Type {
	case "tcp":
		var conn net.Conn
		conn, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err == nil {
			_ = conn.Close()
		}
	case "dns":
		err = probeDNS(ctx, addr, c)
	case "http", "https":
		err = probeHTTP(ctx, addr, t)
	default:
		err = fmt.Errorf("check type %q", c.Type)
	}
	if err != nil {
		return 0, fmt.Errorf("%s check of %s: %w", c.Type, addr, err)
	}
	return time.Since(start), nil
}

func probeDNS(ctx context.Context, addr string, c steer.Check) error {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(c.Query), dns.StringToType[strings.ToUpper(c.QueryType)])
	q.RecursionDesired = false
	r, _, err := (&dns.Client{Net: "udp"}).ExchangeContext(ctx, q, addr)
	if err != nil {
		return err
	}
	if r.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("%s %s: rcode %s", c.Query, c.QueryType, dns.RcodeToString[r.Rcode])
	}
	return nil
}

func probeHTTP(ctx context.Context, addr string, t epTarget) error {
	c := t.check
	host := c.Host
	if host == "" {
		host = t.host()
	}
	// A transport per probe: no connection is reused, so each probe sees
	// whether the endpoint accepts one now.
	tr := &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}
	if c.Type == "https" {
		sni := host
		if h, _, err := net.SplitHostPort(host); err == nil {
			sni = h
		}
		tr.TLSClientConfig = &tls.Config{ServerName: sni, InsecureSkipVerify: c.Insecure, MinVersion: tls.VersionTLS12} //nolint:gosec // the pool's check asks for it
	}
	defer tr.CloseIdleConnections()
	u := c.Type + "://" + (&netHost{host}).String() + c.Path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "anycastd-monitor")
	resp, err := (&http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}).Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("read the body: %w", err)
	}
	if resp.StatusCode != c.Status {
		return fmt.Errorf("status %d, want %d", resp.StatusCode, c.Status)
	}
	if c.Body != "" && !strings.Contains(string(body), c.Body) {
		return fmt.Errorf("body does not hold %q", c.Body)
	}
	return nil
}

// netHost writes a host for a URL (an IPv6 address in brackets).
type netHost struct{ h string }

func (n *netHost) String() string {
	if a, err := netip.ParseAddr(n.h); err == nil && a.Is6() {
		return "[" + n.h + "]"
	}
	return n.h
}

// readLoad reads the endpoint's load from the pool's load source.
func (e *endpoints) readLoad(ctx context.Context, t epTarget) (float64, error) {
	l := t.check.Load
	ctx, cancel := context.WithTimeout(ctx, t.check.Timeout.Duration)
	defer cancel()
	u := strings.ReplaceAll(l.URL, "{address}", (&netHost{t.host()}).String())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, fmt.Errorf("load %s: %w", u, err)
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("load %s: %w", u, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, fmt.Errorf("load %s: read: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("load %s: status %d", u, resp.StatusCode)
	}
	if l.Type == "prometheus" {
		return promGauge(body, l.Metric)
	}
	return jsonField(body, l.Field)
}

// jsonField reads the number at a dotted path of a JSON document.
func jsonField(body []byte, field string) (float64, error) {
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		return 0, fmt.Errorf("load: not JSON: %w", err)
	}
	for _, part := range strings.Split(field, ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			return 0, fmt.Errorf("load: field %s: %q is not inside an object", field, part)
		}
		if v, ok = obj[part]; !ok {
			return 0, fmt.Errorf("load: field %s: no %q", field, part)
		}
	}
	f, ok := v.(float64)
	if !ok || f < 0 {
		return 0, fmt.Errorf("load: field %s: not a number of 0 or more", field)
	}
	return f, nil
}

// promGauge reads the sample of metric (its name with its labels, as
// written in the exposition format) from a Prometheus text exposition.
func promGauge(body []byte, metric string) (float64, error) {
	for line := range strings.SplitSeq(string(body), "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, metric) {
			continue
		}
		rest := line[len(metric):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
			continue // another metric sharing the prefix
		}
		fields := strings.Fields(rest)
		f, err := strconv.ParseFloat(fields[0], 64)
		if err != nil || f < 0 || f != f {
			return 0, fmt.Errorf("load: metric %s: value %q is not a number of 0 or more", metric, fields[0])
		}
		return f, nil
	}
	return 0, fmt.Errorf("load: no sample of %s", metric)
}
