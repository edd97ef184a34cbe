package lab

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/apiclient"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// The zone the propagation scenario creates through the control plane's
// API, and the name whose record each change replaces.
const (
	PropagationZone = "dyn.example."
	propagationName = "probe." + PropagationZone
)

// popPoller asks one PoP, from inside its own namespace and at its unicast
// address, until the answer shows what the scenario waits for; the time
// of that answer is when the PoP serves the change. Asking from the PoP's
// namespace keeps the network out of the measure: what is measured is the
// control plane to PoP path, not the client to PoP one.
type popPoller struct {
	pop  string
	dst  netip.AddrPort
	conn *net.UDPConn
	buf  []byte
}

func (l *Lab) newPoller(n *Node) (*popPoller, error) {
	dst := netip.AddrPortFrom(n.Addr4, DNSPort)
	var conn *net.UDPConn
	err := inNamespace(namespacePath(n.Namespace), func() error {
		var err error
		conn, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("poller for %s: %w", n.Name, err)
	}
	return &popPoller{pop: n.Name, dst: dst, conn: conn, buf: make([]byte, 4096)}, nil
}

func (p *popPoller) close() { _ = p.conn.Close() }

// runningPollers opens a poller for every PoP whose anycastd runs and
// returns them with their PoPs, in topology order, and a function that
// closes them all. what names the caller in the error when no PoP runs
// anycastd. On an error nothing is left open.
func (l *Lab) runningPollers(what string) ([]*popPoller, []*Node, func(), error) {
	var pollers []*popPoller
	var pops []*Node
	closeAll := func() {
		for _, p := range pollers {
			p.close()
		}
	}
	for _, n := range l.NodesByRole(RolePoP) {
		if p := l.NodeProcess(n.Name); p == nil || !p.Running() {
			continue
		}
		p, err := l.newPoller(n)
		if err != nil {
			closeAll()
			return nil, nil, nil, err
		}
		pollers = append(pollers, p)
		pops = append(pops, n)
	}
	if len(pollers) == 0 {
		return nil, nil, nil, fmt.Errorf("%s: no PoP runs anycastd", what)
	}
	return pollers, pops, closeAll, nil
}

// pollEvery is the interval between two queries of a poller: the
// resolution of the measure.
const pollEvery = time.Millisecond

// waitFor queries qname/qtype every pollEvery until match accepts an
// answer, and returns when that answer arrived. It gives up at deadline.
func (p *popPoller) waitFor(ctx context.Context, qname string, qtype uint16, match func(*dns.Msg) bool, deadline time.Time) (time.Time, error) {
	q := new(dns.Msg)
	q.SetQuestion(qname, qtype)
	q.RecursionDesired = false
	var last string
	for {
		if err := ctx.Err(); err != nil {
			return time.Time{}, err
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s: not answered in time (last answer: %s)", p.pop, orDash(last))
		}
		q.Id = uint16(rand.Uint32()) //nolint:gosec // a query ID on a socket of our own, not a secret
		wire, err := q.Pack()
		if err != nil {
			return time.Time{}, err
		}
		sent := time.Now()
		if _, err := p.conn.Write(wire); err != nil {
			return time.Time{}, fmt.Errorf("%s: %w", p.pop, err)
		}
		_ = p.conn.SetReadDeadline(sent.Add(50 * time.Millisecond))
		for {
			n, err := p.conn.Read(p.buf)
			if err != nil {
				break // lost or late: ask again
			}
			recv := time.Now()
			m := new(dns.Msg)
			if m.Unpack(p.buf[:n]) != nil || m.Id != q.Id {
				continue
			}
			if match(m) {
				return recv, nil
			}
			last = summarize(m)
			break
		}
		if d := time.Until(sent.Add(pollEvery)); d > 0 {
			time.Sleep(d)
		}
	}
}

func summarize(m *dns.Msg) string {
	s := dns.RcodeToString[m.Rcode]
	for _, rr := range m.Answer {
		s += " " + strings.ReplaceAll(rr.String(), "\t", " ")
	}
	return s
}

// servesSOA matches an authoritative answer with the zone's SOA at serial
// or later.
func servesSOA(serial uint32) func(*dns.Msg) bool {
	return func(m *dns.Msg) bool {
		if m.Rcode != dns.RcodeSuccess || !m.Authoritative {
			return false
		}
		for _, rr := range m.Answer {
			if soa, ok := rr.(*dns.SOA); ok && !zone.SerialLess(soa.Serial, serial) {
				return true
			}
		}
		return false
	}
}

// servesTXT matches an authoritative answer carrying the TXT text.
func servesTXT(text string) func(*dns.Msg) bool {
	return func(m *dns.Msg) bool {
		if m.Rcode != dns.RcodeSuccess || !m.Authoritative {
			return false
		}
		for _, rr := range m.Answer {
			if t, ok := rr.(*dns.TXT); ok && len(t.Txt) == 1 && t.Txt[0] == text {
				return true
			}
		}
		return false
	}
}

// waitAllPoPs runs waitFor on every poller at once and returns each PoP's
// time from t0, and the error of those that did not see it.
func waitAllPoPs(ctx context.Context, pollers []*popPoller, t0 time.Time, qname string, qtype uint16, match func(*dns.Msg) bool, wait time.Duration) ([]time.Duration, []error) {
	ds := make([]time.Duration, len(pollers))
	errs := make([]error, len(pollers))
	var wg sync.WaitGroup
	for i, p := range pollers {
		wg.Go(func() {
			at, err := p.waitFor(ctx, qname, qtype, match, t0.Add(wait))
			ds[i], errs[i] = at.Sub(t0), err
		})
	}
	wg.Wait()
	return ds, errs
}

// propagationStats summarizes one PoP's (or every PoP's) propagation
// times: nil entries did not propagate in time.
type propagationStats struct {
	n, ok         int
	p50, p95, max time.Duration
}

func statsOf(ds []*time.Duration) propagationStats {
	st := propagationStats{n: len(ds)}
	var got []time.Duration
	for _, d := range ds {
		if d != nil {
			got = append(got, *d)
		}
	}
	st.ok = len(got)
	if len(got) > 0 {
		st.p50, st.p95, st.max = percentile(got, 50), percentile(got, 95), percentile(got, 100)
	}
	return st
}

// allPoPs is, per change, the time until every PoP served it: the largest
// of the PoPs' times, nil when one of them never did.
func allPoPs(per [][]*time.Duration) []*time.Duration {
	if len(per) == 0 {
		return nil
	}
	out := make([]*time.Duration, len(per[0]))
	for i := range out {
		var worst time.Duration
		ok := true
		for _, ds := range per {
			if ds[i] == nil {
				ok = false
				break
			}
			worst = max(worst, *ds[i])
		}
		if ok {
			out[i] = &worst
		}
	}
	return out
}

// propagation creates a zone through the control plane's API, waits until
// every PoP serves it (catalog, then AXFR), then makes o.Changes changes
// to one record, one after the other, and measures for each the time
// from the API call's return to the new record being answered by each
// PoP. The zone is deleted at the end.
func (l *Lab) propagation(ctx context.Context, o ScenarioOptions) (_ *Result, err error) {
	if l.ctl == nil {
		return nil, ErrNoControl
	}
	run := newRun("propagation", o.Progress)
	c, err := l.Control()
	if err != nil {
		return nil, err
	}
	pollers, pops, closePollers, err := l.runningPollers("propagation")
	if err != nil {
		return nil, err
	}
	defer closePollers()
	const wait = 10 * time.Second

	// The clients query the anycast address all along: provisioning a zone
	// and changing records must not disturb what is served (no PoP may
	// withdraw while a new zone loads).
	streams, err := l.startStreams(o)
	if err != nil {
		return nil, err
	}
	defer func() {
		if streams != nil {
			stopAll(streams)
		}
	}()

	// A clean start: a zone left by an interrupted run goes first.
	if err := c.DeleteZone(ctx, PropagationZone); err != nil && !errors.Is(err, apiclient.ErrNotFound) {
		return nil, fmt.Errorf("propagation: delete old %s: %w", PropagationZone, err)
	}
	info, err := c.CreateZone(ctx, api.CreateZone{Name: PropagationZone, Records: []string{
		"@ 3600 IN SOA ns1 hostmaster 1 3600 600 604800 60",
		"@ 3600 IN NS ns1",
		"ns1 3600 IN A 192.0.2.53",
		"probe 60 IN TXT \"change-0\"",
	}})
	if err != nil {
		return nil, fmt.Errorf("propagation: create %s: %w", PropagationZone, err)
	}
	t0 := time.Now()
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if derr := c.DeleteZone(dctx, PropagationZone); derr != nil {
			err = errors.Join(err, fmt.Errorf("propagation: delete %s: %w", PropagationZone, derr))
		}
	}()
	ds, errs := waitAllPoPs(ctx, pollers, t0, PropagationZone, dns.TypeSOA, servesSOA(info.Serial), 30*time.Second)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("propagation: new zone %s not served by every PoP: %w", PropagationZone, err)
	}
	var slowest time.Duration
	for _, d := range ds {
		slowest = max(slowest, d)
	}
	run.notef("zone %s created through the API on %s; every PoP served it %.1f ms after the call returned (catalog, then AXFR)", PropagationZone, l.ctl.Node, float64(slowest.Microseconds())/1000)

	rtts := make([]time.Duration, len(pops))
	for i, n := range pops {
		r, err := l.Ping(ctx, l.ctl.Node, n.Addr4, 5, 20*time.Millisecond, time.Second)
		if err != nil {
			return nil, fmt.Errorf("propagation: ping %s: %w", n.Name, err)
		}
		rtts[i] = r.Min()
	}

	// The zone's first change after its creation meets the nodes still
	// settling the transfer (indexes built, the version written to disk):
	// it is reported on its own and not counted among the changes, which
	// measure a zone in service.
	{
		const text = "change-first"
		if _, err := c.SetRRset(ctx, PropagationZone, propagationName, "TXT", api.RRset{TTL: 60, Records: []string{`"` + text + `"`}}, ""); err != nil {
			return nil, fmt.Errorf("propagation: first change: %w", err)
		}
		ds, errs := waitAllPoPs(ctx, pollers, time.Now(), propagationName, dns.TypeTXT, servesTXT(text), wait)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var worst time.Duration
		for i := range pops {
			if errs[i] != nil {
				return nil, fmt.Errorf("propagation: first change not served by %s: %w", pops[i].Name, errs[i])
			}
			worst = max(worst, ds[i])
		}
		run.notef("the zone's first change after its creation served everywhere after %.1f ms (not counted below)", float64(worst.Microseconds())/1000)
	}

	per := make([][]*time.Duration, len(pops))
	for i := range per {
		per[i] = make([]*time.Duration, o.Changes)
	}
	for k := range o.Changes {
		text := fmt.Sprintf("change-%d", k+1)
		if _, err := c.SetRRset(ctx, PropagationZone, propagationName, "TXT", api.RRset{TTL: 60, Records: []string{`"` + text + `"`}}, ""); err != nil {
			return nil, fmt.Errorf("propagation: change %d: %w", k+1, err)
		}
		t0 := time.Now()
		ds, errs := waitAllPoPs(ctx, pollers, t0, propagationName, dns.TypeTXT, servesTXT(text), wait)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var worst time.Duration
		for i := range pops {
			if errs[i] != nil {
				run.notef("change %d: %v", k+1, errs[i])
				continue
			}
			d := ds[i]
			per[i][k] = &d
			worst = max(worst, d)
		}
		if (k+1)%10 == 0 || k == 0 {
			printf(o.Progress, "%s propagation: change %d/%d served everywhere after %.1f ms\n", run.at(time.Now()), k+1, o.Changes, float64(worst.Microseconds())/1000)
		}
	}

	if err := streamsErr(streams); err != nil {
		return nil, err
	}
	answers := stopAll(streams)
	clientLines, steady := steadyLines(l.clientNames(), answers, o)
	streams = nil

	transport := "notify+ixfr"
	if l.ctl.Stream {
		transport = "stream"
	}
	line := func(pop string, st propagationStats, rtt *float64) Line {
		n := st.n
		ln := Line{Scenario: "propagation", Client: l.ctl.Node, Transport: transport, PoP: pop, Sent: st.n, Lost: st.n - st.ok,
			Changes: &n, RTTMS: rtt}
		if st.ok > 0 {
			ln.P50MS, ln.P95MS, ln.MaxMS = ms(st.p50), ms(st.p95), ms(st.max)
		}
		return ln
	}
	var floor []string
	var farthest time.Duration
	for i, n := range pops {
		st := statsOf(per[i])
		run.res.Lines = append(run.res.Lines, line(n.Name, st, ms(rtts[i])))
		f := rtts[i] * 3 / 2
		if l.ctl.Stream {
			f = rtts[i] / 2
		}
		farthest = max(farthest, rtts[i])
		floor = append(floor, fmt.Sprintf("%s %.1f ms (p50 %+.1f ms)", n.Name, float64(f.Microseconds())/1000, float64((st.p50-f).Microseconds())/1000))
	}
	all := statsOf(allPoPs(per))
	run.res.Lines = append(run.res.Lines, line("all", all, nil))
	run.res.Lines = append(run.res.Lines, clientLines...)
	run.notef("steady queries to the anycast address meanwhile (%d q/s per client): %s", o.Rate, steady)
	run.notef("%d changes through the API; each waited for until every PoP answered it (polled every %s from the PoP's own namespace); time from the API call's return", o.Changes, pollEvery)
	if l.ctl.Stream {
		run.notef("the network's floor for a change pushed over the stream, one way, RTT / 2: %s", strings.Join(floor, ", "))
		if all.ok > 0 {
			run.notef("every PoP: p50 %.1f ms against 0.6 x the farthest RTT + 5 ms = %.1f ms; max %.1f ms against 2 x p50 = %.1f ms",
				float64(all.p50.Microseconds())/1000, float64((farthest*6/10+5*time.Millisecond).Microseconds())/1000,
				float64(all.max.Microseconds())/1000, float64((2*all.p50).Microseconds())/1000)
		}
	} else {
		run.notef("the network's floor for NOTIFY then one IXFR round trip over UDP, 1.5 x RTT: %s", strings.Join(floor, ", "))
	}
	if all.ok > 0 {
		run.notef("every PoP: p50 %.1f ms, p95 %.1f ms, max %.1f ms", float64(all.p50.Microseconds())/1000, float64(all.p95.Microseconds())/1000, float64(all.max.Microseconds())/1000)
	}
	return run.done(), nil
}

// steadyLines summarizes each client's steady queries: sent, lost, and the
// answers by PoP.
func steadyLines(clients []string, answers [][]Answer, o ScenarioOptions) ([]Line, string) {
	var lines []Line
	var parts []string
	for i, c := range clients {
		ln := Line{Scenario: "propagation", Client: c, Transport: "udp4", PoPsAfter: map[string]int{}}
		if o.IPv6 {
			ln.Transport = "udp6"
		}
		for _, a := range answers[i] {
			ln.Sent++
			if !a.OK() {
				ln.Lost++
				continue
			}
			ln.PoP = a.PoP
			ln.PoPsAfter[a.PoP]++
		}
		lines = append(lines, ln)
		parts = append(parts, fmt.Sprintf("%s %d sent, %d lost, answered by %s", c, ln.Sent, ln.Lost, fmtCounts(ln.PoPsAfter)))
	}
	return lines, strings.Join(parts, "; ")
}
