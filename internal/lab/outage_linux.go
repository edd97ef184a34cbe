package lab

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/apiclient"
)

// The zones the control-outage scenario creates through the control
// plane's API: one whose SOA expire is the smallest anycastd accepts (3 s,
// with the lab's floors of 1 s), one with ordinary timers.
const (
	OutageExpiringZone = "expiring.example."
	OutageSteadyZone   = "steady.example."
)

// outageExpire is the expiring zone's SOA expire: refresh 1 s, retry 1 s,
// expire 3 s.
const outageExpire = 3 * time.Second

// StopControl stops the control plane (SIGTERM, SIGKILL after grace) and
// waits for it; StartControl starts it again.
func (l *Lab) StopControl(grace time.Duration) error {
	if l.ctl == nil {
		return ErrNoControl
	}
	l.mu.Lock()
	p := l.control
	l.mu.Unlock()
	if p == nil || !p.Running() {
		return errors.New("the control plane is not running")
	}
	return p.Stop(grace)
}

// StartControl starts the control plane again after StopControl, with
// its data directory as it left it, and waits until its API answers and it
// reaches every PoP.
func (l *Lab) StartControl(ctx context.Context) error {
	if l.ctl == nil {
		return ErrNoControl
	}
	l.mu.Lock()
	p := l.control
	l.mu.Unlock()
	if p != nil && p.Running() {
		return fmt.Errorf("the control plane already runs (pid %d)", p.PID)
	}
	return l.startReplica(ctx, 0)
}

// rcode sends one query from the poller's namespace and returns the
// answer's rcode, asking up to three times if no answer comes.
func (p *popPoller) rcode(ctx context.Context, qname string, qtype uint16) (int, error) {
	q := new(dns.Msg)
	q.SetQuestion(qname, qtype)
	q.RecursionDesired = false
	var lastErr error
	for range 3 {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		q.Id = uint16(rand.Uint32()) //nolint:gosec // a query ID on a socket of our own, not a secret
		wire, err := q.Pack()
		if err != nil {
			return 0, err
		}
		if _, err := p.conn.Write(wire); err != nil {
			return 0, fmt.Errorf("%s: %w", p.pop, err)
		}
		_ = p.conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			n, err := p.conn.Read(p.buf)
			if err != nil {
				lastErr = err
				break
			}
			m := new(dns.Msg)
			if m.Unpack(p.buf[:n]) != nil || m.Id != q.Id {
				continue
			}
			return m.Rcode, nil
		}
	}
	return 0, fmt.Errorf("%s: %s %s unanswered: %w", p.pop, qname, dns.TypeToString[qtype], lastErr)
}

// hasRcode matches an answer with rcode.
func hasRcode(rcode int) func(*dns.Msg) bool {
	return func(m *dns.Msg) bool { return m.Rcode == rcode }
}

// popRoute reports whether the router of pop has the PoP's route to prefix
// and since when (BIRD's time of the route; zero when it cannot be read).
func (l *Lab) popRoute(ctx context.Context, pop string, prefix netip.Prefix) (bool, time.Time, error) {
	var router string
	for _, s := range l.plan.sessions(pop) {
		if s.PeerRole == RoleRouter {
			router = s.Peer
			break
		}
	}
	if router == "" {
		return false, time.Time{}, fmt.Errorf("%s has no router", pop)
	}
	proto := protocolName(pop, prefix.Addr().Is6())
	out, err := l.Birdc(ctx, router, "show", "route", "for", prefix.String(), "protocol", proto)
	if err != nil {
		if strings.Contains(out, "Network not found") {
			return false, time.Time{}, nil
		}
		return false, time.Time{}, fmt.Errorf("birdc on %s: %w: %s", router, err, out)
	}
	i := strings.Index(out, "["+proto+" ")
	if i < 0 {
		return false, time.Time{}, nil
	}
	rest := out[i+len(proto)+2:]
	end := strings.IndexByte(rest, ']')
	if end < 0 {
		return true, time.Time{}, nil
	}
	return true, birdTime(strings.TrimSpace(rest[:end]), time.Now()), nil
}

// birdTime reads the time BIRD shows for a route of today ("15:04:05.000"),
// in local time; zero when it is in another form (an older route shows its
// date).
func birdTime(s string, now time.Time) time.Time {
	t, err := time.ParseInLocation("15:04:05.000", s, now.Location())
	if err != nil {
		return time.Time{}
	}
	t = time.Date(now.Year(), now.Month(), now.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), now.Location())
	if t.After(now.Add(time.Second)) {
		t = t.AddDate(0, 0, -1) // shown before midnight, read after it
	}
	return t
}

// controlOutage creates two zones through the control plane's API, one
// with the smallest SOA expire the PoPs accept and one with ordinary
// timers, waits until every PoP serves both, stops the control plane and
// waits past the expire: every PoP must stay announced, answer SERVFAIL for
// the expired zone and keep answering the others; the clients' steady
// queries to the anycast address meanwhile must go on. Then the control
// plane starts again and every PoP serves the zone again. The zones are
// deleted at the end.
func (l *Lab) controlOutage(ctx context.Context, o ScenarioOptions) (_ *Result, err error) {
	const name = "control-outage"
	if l.ctl == nil {
		return nil, ErrNoControl
	}
	run := newRun(name, o.Progress)
	if err := l.WaitSettled(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	c, err := l.Control()
	if err != nil {
		return nil, err
	}
	pollers, _, closePollers, err := l.runningPollers(name)
	if err != nil {
		return nil, err
	}
	defer closePollers()

	// A clean start: zones left by an interrupted run go first.
	for _, z := range []string{OutageExpiringZone, OutageSteadyZone} {
		if err := c.DeleteZone(ctx, z); err != nil && !errors.Is(err, apiclient.ErrNotFound) {
			return nil, fmt.Errorf("%s: delete old %s: %w", name, z, err)
		}
	}
	serials := map[string]uint32{}
	for _, z := range []struct{ name, soa string }{
		{OutageExpiringZone, fmt.Sprintf("@ 60 IN SOA ns1 hostmaster 1 1 1 %d 60", int(outageExpire.Seconds()))},
		{OutageSteadyZone, "@ 60 IN SOA ns1 hostmaster 1 3600 600 604800 60"},
	} {
		info, err := c.CreateZone(ctx, api.CreateZone{Name: z.name, Records: []string{z.soa, "@ 60 IN NS ns1", "ns1 60 IN A 192.0.2.53"}})
		if err != nil {
			return nil, fmt.Errorf("%s: create %s: %w", name, z.name, err)
		}
		serials[z.name] = info.Serial
	}
	// The control plane is up again by the time this runs (or the
	// deletions fail and say so).
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for _, z := range []string{OutageExpiringZone, OutageSteadyZone} {
			if derr := c.DeleteZone(dctx, z); derr != nil {
				err = errors.Join(err, fmt.Errorf("%s: delete %s: %w", name, z, derr))
			}
		}
	}()
	t0 := time.Now()
	for _, z := range []string{OutageExpiringZone, OutageSteadyZone} {
		_, errs := waitAllPoPs(ctx, pollers, t0, z, dns.TypeSOA, servesSOA(serials[z]), 30*time.Second)
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("%s: new zone %s not served by every PoP: %w", name, z, err)
		}
	}
	run.notef("zones %s (SOA refresh 1, retry 1, expire %d) and %s (expire 1 week) created through the API; every PoP serves both after %s",
		OutageExpiringZone, int(outageExpire.Seconds()), OutageSteadyZone, time.Since(t0).Round(time.Millisecond))

	streams, err := l.startStreams(o)
	if err != nil {
		return nil, err
	}
	defer func() {
		if streams != nil {
			stopAll(streams)
		}
	}()
	if err := sleep(ctx, o.Baseline); err != nil {
		return nil, err
	}
	before := map[string]string{} // client → the PoP that served it
	for _, s := range streams {
		before[s.Client] = s.Last().PoP
	}

	stopped := time.Now()
	if err := l.StopControl(3 * time.Second); err != nil {
		return nil, fmt.Errorf("%s: stop the control plane: %w", name, err)
	}
	restarted := false
	defer func() {
		if !restarted {
			if rerr := l.StartControl(context.WithoutCancel(ctx)); rerr != nil {
				err = errors.Join(err, fmt.Errorf("%s: restart the control plane: %w", name, rerr))
			}
		}
	}()
	run.notef("control plane on %s stopped (SIGTERM) at %s", l.ctl.Node, run.at(stopped))

	expiredAt, errs := waitAllPoPs(ctx, pollers, stopped, OutageExpiringZone, dns.TypeSOA, hasRcode(dns.RcodeServerFailure), outageExpire+15*time.Second)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var slowest time.Duration
	expiredPoPs := 0
	for i, e := range errs {
		if e != nil {
			run.notef("%s: %s never answered SERVFAIL: %v", pollers[i].pop, OutageExpiringZone, e)
			continue
		}
		expiredPoPs++
		slowest = max(slowest, expiredAt[i])
	}
	// Hold: a PoP that withdrew because of the expired zone would do so
	// within its health check's fall (2 × 100 ms) and a BGP update.
	if err := sleep(ctx, time.Second); err != nil {
		return nil, err
	}
	run.notef("%s answered SERVFAIL by %d of %d PoPs (the last %s after the stop); held 1 s", OutageExpiringZone, expiredPoPs, len(pollers), slowest.Round(time.Millisecond))

	lines := make([]OutageLine, len(pollers))
	for i, p := range pollers {
		ln := OutageLine{Scenario: name, PoP: p.pop, ExpiredZone: OutageExpiringZone, OtherZone: OutageSteadyZone}
		if errs[i] == nil {
			ln.ExpiredMS = ms(expiredAt[i])
		}
		for _, q := range []struct {
			zone string
			dst  *string
		}{{OutageExpiringZone, &ln.ExpiredZoneRcode}, {OutageSteadyZone, &ln.OtherZoneRcode}, {ZoneName, &ln.FileZoneRcode}} {
			rc, err := p.rcode(ctx, q.zone, dns.TypeSOA)
			if err != nil {
				*q.dst = "no answer"
				run.notef("%v", err)
				continue
			}
			*q.dst = dns.RcodeToString[rc]
		}
		announced, why, err := l.popAnnounced(ctx, p.pop, stopped)
		if err != nil {
			return nil, err
		}
		ln.Announced = announced
		if why != "" {
			run.notef("%s: %s", p.pop, why)
		}
		lines[i] = ln
	}

	// The clients' queries while the control plane was down.
	outageEnd := time.Now()
	answers := stopAll(streams)
	if err := streamsErr(streams); err != nil {
		return nil, err
	}
	idx := map[string]int{}
	for i, p := range pollers {
		idx[p.pop] = i
	}
	var moved []string
	for i, s := range streams {
		popBefore := before[s.Client]
		for _, a := range answers[i] {
			if a.Sent.Before(stopped) || a.Sent.After(outageEnd) {
				continue
			}
			if !a.OK() {
				if j, ok := idx[popBefore]; ok {
					lines[j].ClientLost++
				}
				continue
			}
			if j, ok := idx[a.PoP]; ok {
				lines[j].ClientAnswers++
			}
			if a.PoP != popBefore && !slices.Contains(moved, s.Client) {
				moved = append(moved, s.Client)
			}
		}
	}
	streams = nil
	if len(moved) > 0 {
		run.notef("clients answered by another PoP than before the outage: %s", strings.Join(moved, ", "))
	} else {
		run.notef("every client's steady queries (%d q/s to the anycast address) stayed with its PoP throughout", o.Rate)
	}

	// The control plane comes back: the expired zone is served again.
	t1 := time.Now()
	if err := l.StartControl(ctx); err != nil {
		return nil, fmt.Errorf("%s: restart the control plane: %w", name, err)
	}
	restarted = true
	back, rerrs := waitAllPoPs(ctx, pollers, t1, OutageExpiringZone, dns.TypeSOA, servesSOA(serials[OutageExpiringZone]), 15*time.Second)
	for i, e := range rerrs {
		if e != nil {
			run.notef("%s: %s not served again after the restart: %v", pollers[i].pop, OutageExpiringZone, e)
			continue
		}
		lines[i].RecoveredMS = ms(back[i])
	}
	run.notef("control plane started again at %s; %s served again by every PoP that recovered", run.at(t1), OutageExpiringZone)
	run.res.Outage = lines
	run.checkSessions(ctx, l, "")
	return run.done(), nil
}

// popAnnounced reports whether pop announces every anycast prefix (its
// admin API) and its router has the PoP's route to each, installed before
// since (so not withdrawn and announced again meanwhile); why says what is
// missing.
func (l *Lab) popAnnounced(ctx context.Context, pop string, since time.Time) (bool, string, error) {
	ac, err := l.Admin(pop)
	if err != nil {
		return false, "", err
	}
	st, err := ac.Status(ctx)
	if err != nil {
		return false, fmt.Sprintf("admin status: %v", err), nil
	}
	var problems []string
	for _, pf := range l.plan.topo.Anycast {
		if !slices.Contains(st.Announced, pf) {
			problems = append(problems, fmt.Sprintf("does not announce %s (healthy %v)", pf, st.Healthy))
			continue
		}
		ok, at, err := l.popRoute(ctx, pop, pf)
		switch {
		case err != nil:
			return false, "", err
		case !ok:
			problems = append(problems, fmt.Sprintf("its router has no route to %s from it", pf))
		case at.IsZero():
			problems = append(problems, fmt.Sprintf("the age of its route to %s is unreadable", pf))
		case at.After(since):
			problems = append(problems, fmt.Sprintf("its route to %s was installed at %s, after the outage began: withdrawn meanwhile", pf, at.Format("15:04:05.000")))
		}
	}
	return len(problems) == 0, strings.Join(problems, "; "), nil
}
