package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ScenarioOptions tune the scenarios; zero values take the defaults.
type ScenarioOptions struct {
	// Target is the PoP the failover scenarios hit (default: the central
	// PoP, whose worst delay to any client is lowest).
	Target string
	// Rate is the steady queries per second of each client (default 100)
	// and Timeout the time an answer may take (default 200ms).
	Rate    int
	Timeout time.Duration
	// IPv6 runs the steady queries to the IPv6 anycast address.
	IPv6 bool
	// Baseline is how long clients query before the event (default 1s);
	// Hold how long the event lasts after every client switched (default
	// 1s); SwitchWait and RecoverWait bound the waits for the switch and
	// the return (default 5s and 20s).
	Baseline, Hold          time.Duration
	SwitchWait, RecoverWait time.Duration
	// Samples is the number of latency queries per client and target
	// (default 25).
	Samples int
	// Changes is the number of record changes the propagation scenario
	// makes (default 100).
	Changes int
	// ProbeCommand, when set, runs the clients' streams in a process of
	// their own, ProbeCommand + flags (`anycastlab stream`), in a session
	// of its own at the lab's priority, so that load in the caller's
	// session does not delay them (see ServeStreams). Empty: in this
	// process.
	ProbeCommand []string
	// Flood tunes the flood scenario (flood.go).
	Flood FloodOptions
	// Progress receives the timeline as it happens (default: discarded).
	Progress io.Writer
}

func (o ScenarioOptions) withDefaults(l *Lab) ScenarioOptions {
	if o.Target == "" {
		o.Target = l.plan.centralPoP()
	}
	if o.Rate == 0 {
		o.Rate = 100
	}
	if o.Timeout == 0 {
		o.Timeout = 200 * time.Millisecond
	}
	if o.Baseline == 0 {
		o.Baseline = time.Second
	}
	if o.Hold == 0 {
		o.Hold = time.Second
	}
	if o.SwitchWait == 0 {
		o.SwitchWait = 5 * time.Second
	}
	if o.RecoverWait == 0 {
		o.RecoverWait = 20 * time.Second
	}
	if o.Samples == 0 {
		o.Samples = 25
	}
	if o.Changes == 0 {
		o.Changes = 100
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return o
}

// scenarioRun is one scenario in progress: its result and its clock.
type scenarioRun struct {
	res   *Result
	start time.Time
	out   io.Writer
}

func newRun(name string, out io.Writer) *scenarioRun {
	return &scenarioRun{res: &Result{Scenario: name}, start: time.Now(), out: out}
}

// at is a time relative to the scenario's start, for notes.
func (r *scenarioRun) at(t time.Time) string { return fmt.Sprintf("%6.2fs", t.Sub(r.start).Seconds()) }

// notef records a note and shows it as progress.
func (r *scenarioRun) notef(format string, args ...any) {
	r.res.notef(format, args...)
	printf(r.out, "%s %s: %s\n", r.at(time.Now()), r.res.Scenario, fmt.Sprintf(format, args...))
}

func (r *scenarioRun) done() *Result {
	r.res.Duration = time.Since(r.start)
	return r.res
}

// RunScenario runs one scenario on the lab, which must run anycastd on its
// PoPs (Options.Anycastd). Every failover scenario leaves the lab as it
// found it: the PoP it hit announces again. scale-out adds a PoP for good.
func (l *Lab) RunScenario(ctx context.Context, name string, o ScenarioOptions) (*Result, error) {
	if l.opts.Anycastd == "" && (name != "flood" || !l.opts.Speakers) { // flood can compare NSD, Knot
		return nil, ErrNoAnycastd
	}
	o = o.withDefaults(l)
	if n, err := l.plan.node(o.Target); err != nil || n.Role != RolePoP {
		return nil, fmt.Errorf("scenario %s: target %q is not a PoP of the lab", name, o.Target)
	}
	switch name {
	case "catchment":
		return l.catchment(ctx, o)
	case "latency":
		return l.latency(ctx, o)
	case "scale-out":
		return l.scaleOut(ctx, o)
	case "propagation":
		return l.propagation(ctx, o)
	case "join":
		return l.join(ctx, o)
	case "control-outage":
		return l.controlOutage(ctx, o)
	case "gray-failure":
		return l.grayFailure(ctx, o)
	case "overload":
		return l.overload(ctx, o)
	case "monitor-partition":
		return l.monitorPartition(ctx, o)
	case "all-hot":
		return l.allHot(ctx, o)
	case "steer-failover", "steer-geo", "steer-latency", "steer-weighted", "steer-least-load", "steer-consistent":
		return l.serviceScenario(ctx, name, o)
	case "flood":
		return l.flood(ctx, o)
	case "control-failover":
		return l.controlFailover(ctx, o)
	case "dnssec-rollover":
		return l.dnssecRollover(ctx, o)
	}
	f, err := l.fault(name, o.Target)
	if err != nil {
		return nil, err
	}
	return l.failover(ctx, name, f, o)
}

// WaitSettled waits until every PoP announces with BFD up and every router
// with a PoP of its own prefers it: the state every scenario starts from.
func (l *Lab) WaitSettled(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	if err := l.WaitAnnounced(ctx, timeout); err != nil {
		return err
	}
	for {
		bad, err := l.localPreferred(ctx)
		if err != nil {
			return err
		}
		if len(bad) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("lab not settled after %s: %s", timeout, strings.Join(bad, "; "))
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// clientNames returns the lab's clients.
func (l *Lab) clientNames() []string {
	var out []string
	for _, n := range l.NodesByRole(RoleClient) {
		out = append(out, n.Name)
	}
	return out
}

func (l *Lab) anycastAddr(v6 bool) (netip.Addr, error) {
	for _, p := range l.plan.topo.Anycast {
		if p.Addr().Is6() == v6 {
			return p.Addr(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("the lab has no %s anycast prefix", family(v6))
}

// catchment asks, from every client, which PoP answers the anycast
// addresses over UDP and TCP, IPv4 and IPv6, beside the nearest PoP by link
// delay.
func (l *Lab) catchment(ctx context.Context, o ScenarioOptions) (*Result, error) {
	r := newRun("catchment", o.Progress)
	if err := l.WaitSettled(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	const perTransport = 3
	type job struct {
		client, network string
		dst             netip.Addr
	}
	var jobs []job
	for _, c := range l.clientNames() {
		for _, v6 := range []bool{false, true} {
			dst, err := l.anycastAddr(v6)
			if err != nil {
				continue
			}
			for _, network := range []string{"udp", "tcp"} {
				jobs = append(jobs, job{c, network, dst})
			}
		}
	}
	lines := make([]Line, len(jobs))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() {
			line := Line{Scenario: "catchment", Client: j.client, Transport: TransportTo(j.network, j.dst),
				Nearest: strings.Join(l.plan.nearestPoPs(j.client), ",")}
			pops := map[string]int{}
			for range perTransport {
				a, err := l.Query(ctx, j.client, j.network, j.dst, time.Second)
				if err != nil {
					errs[i] = err
					return
				}
				line.Sent++
				if !a.OK() {
					line.Lost++
					continue
				}
				pops[a.PoP]++
				line.PoP = a.PoP
			}
			if len(pops) > 1 {
				line.PoP = strings.Join(slices.Sorted(maps.Keys(pops)), ",")
			}
			lines[i] = line
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	r.res.Lines = lines
	agree := 0
	for _, ln := range lines {
		if slices.Contains(strings.Split(ln.Nearest, ","), ln.PoP) {
			agree++
		}
	}
	r.notef("%d of %d client/transport pairs are served by their nearest PoP (%d queries each, NSID)", agree, len(lines), perTransport)
	return r.done(), nil
}

// latency measures, from every client, the query time to the anycast
// address beside the time to the unicast address of one PoP (the central
// one: what a single unicast server would give), with two streams per
// client at 20 queries per second.
func (l *Lab) latency(ctx context.Context, o ScenarioOptions) (*Result, error) {
	r := newRun("latency", o.Progress)
	if err := l.WaitSettled(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	uni := l.plan.centralPoP()
	un, _ := l.plan.node(uni)
	anycast, err := l.anycastAddr(o.IPv6)
	if err != nil {
		return nil, err
	}
	unicast := un.Addr4
	if o.IPv6 {
		unicast = un.Addr6
	}
	const rate = 20
	var specs []StreamSpec
	for _, c := range l.clientNames() {
		for _, dst := range []netip.Addr{anycast, unicast} {
			nsPath, src, err := l.probeSource(c, dst)
			if err != nil {
				return nil, err
			}
			specs = append(specs, StreamSpec{Client: c, NS: nsPath, Src: src, Dst: dst})
		}
	}
	lo := o
	lo.Timeout = time.Second
	streams, err := l.startStreamsOf(lo, specs, rate)
	if err != nil {
		return nil, err
	}
	d := time.Duration(o.Samples) * time.Second / rate
	serr := sleep(ctx, d-time.Second/(2*rate))
	all := stopAll(streams)
	if serr != nil {
		return nil, serr
	}
	if err := streamsErr(streams); err != nil {
		return nil, err
	}
	// Streams come in pairs per client: anycast, then unicast.
	for i := 0; i+1 < len(streams); i += 2 {
		line := Line{Scenario: "latency", Client: streams[i].Client, Transport: streams[i].Transport, UnicastPoP: uni}
		for j, out := range [2][2]**float64{{&line.AnycastP50, &line.AnycastP95}, {&line.UnicastP50, &line.UnicastP95}} {
			var rtts []time.Duration
			var last time.Time
			for _, a := range all[i+j] {
				line.Sent++
				if !a.OK() {
					line.Lost++
					continue
				}
				rtts = append(rtts, a.RTT())
				if j == 0 && a.Recv.After(last) {
					last, line.PoP = a.Recv, a.PoP
				}
			}
			if len(rtts) > 0 {
				*out[0], *out[1] = ms(percentile(rtts, 50)), ms(percentile(rtts, 95))
			}
		}
		r.res.Lines = append(r.res.Lines, line)
	}
	r.notef("%d UDP queries per client to anycast %s and to %s's unicast %s, %d q/s each", o.Samples, anycast, uni, unicast, rate)
	return r.done(), nil
}

// fault is an event a failover scenario injects into one PoP and ends.
type fault struct {
	what    string // "drained (admin API POST /v1/drain)"
	undo    string // "undrained"
	end     string // what ends it, for the summary: "undrain"
	inject  func(ctx context.Context) error
	restore func(ctx context.Context) error
}

// faultTable is the nftables table the dns-failure scenario creates in a
// PoP's namespace.
const faultTable = "anycastlab_fault"

func (l *Lab) fault(name, pop string) (fault, error) {
	switch name {
	case "drain":
		c, err := l.Admin(pop)
		if err != nil {
			return fault{}, err
		}
		return fault{
			what: "drained (admin API POST /v1/drain, as anycastctl drain)", undo: "undrained (POST /v1/undrain)", end: "undrain",
			inject: func(ctx context.Context) error {
				st, err := c.Drain(ctx)
				if err == nil && !st.Drained {
					err = errors.New("drain: the node does not report drained")
				}
				return err
			},
			restore: func(ctx context.Context) error { _, err := c.Undrain(ctx); return err },
		}, nil
	case "crash":
		return fault{
			what: "anycastd killed (SIGKILL)", undo: "anycastd restarted", end: "restart",
			inject: func(context.Context) error {
				p := l.NodeProcess(pop)
				if p == nil {
					return fmt.Errorf("no anycastd on %s", pop)
				}
				if err := p.Signal(syscall.SIGKILL); err != nil {
					return err
				}
				select {
				case <-p.Done():
					return nil
				case <-time.After(3 * time.Second):
					return fmt.Errorf("anycastd on %s survived SIGKILL", pop)
				}
			},
			restore: func(context.Context) error { _, err := l.StartNode(pop); return err },
		}, nil
	case "hang":
		sig := func(s syscall.Signal) func(context.Context) error {
			return func(context.Context) error {
				p := l.NodeProcess(pop)
				if p == nil {
					return fmt.Errorf("no anycastd on %s", pop)
				}
				return p.Signal(s)
			}
		}
		return fault{what: "anycastd frozen (SIGSTOP)", undo: "anycastd resumed (SIGCONT)", end: "resume",
			inject: sig(syscall.SIGSTOP), restore: sig(syscall.SIGCONT)}, nil
	case "dns-failure":
		var rules []string
		for _, p := range l.plan.topo.Anycast {
			ip := "ip"
			if p.Addr().Is6() {
				ip = "ip6"
			}
			rules = append(rules, fmt.Sprintf("\t\t%s daddr %s meta l4proto { udp, tcp } th dport %d drop", ip, p, DNSPort))
		}
		ruleset := fmt.Sprintf("table inet %s {\n\tchain input {\n\t\ttype filter hook input priority -10; policy accept;\n%s\n\t}\n}\n", faultTable, strings.Join(rules, "\n"))
		path := filepath.Join(l.Dir, pop+".fault.nft")
		return fault{
			what: fmt.Sprintf("DNS to the anycast addresses dropped in %s's namespace (nftables table inet %s)", pop, faultTable),
			undo: "nftables table deleted", end: "repair",
			inject: func(ctx context.Context) error {
				if err := os.WriteFile(path, []byte(ruleset), 0o644); err != nil {
					return err
				}
				_, err := l.Exec(ctx, pop, "nft", "-f", path)
				return err
			},
			restore: func(ctx context.Context) error {
				_, err := l.Exec(ctx, pop, "nft", "delete", "table", "inet", faultTable)
				return err
			},
		}, nil
	}
	return fault{}, fmt.Errorf("unknown scenario %q (want one of %s)", name, strings.Join(Scenarios, ", "))
}

// startStreams starts a steady stream from every client to the anycast
// address.
func (l *Lab) startStreams(o ScenarioOptions) ([]*Stream, error) {
	dst, err := l.anycastAddr(o.IPv6)
	if err != nil {
		return nil, err
	}
	var specs []StreamSpec
	for _, c := range l.clientNames() {
		nsPath, src, err := l.probeSource(c, dst)
		if err != nil {
			return nil, err
		}
		specs = append(specs, StreamSpec{Client: c, NS: nsPath, Src: src, Dst: dst})
	}
	return l.startStreamsOf(o, specs, o.Rate)
}

// startStreamsOf starts one stream per spec, in a probe process when the
// options name one.
func (l *Lab) startStreamsOf(o ScenarioOptions, specs []StreamSpec, rate int) ([]*Stream, error) {
	if len(o.ProbeCommand) > 0 {
		return l.startProbeProcess(o.ProbeCommand, specs, rate, o.Timeout)
	}
	var streams []*Stream
	for _, sp := range specs {
		s, err := startLocalStream(sp, rate, o.Timeout, nil)
		if err != nil {
			stopAll(streams)
			return nil, err
		}
		streams = append(streams, s)
	}
	return streams, nil
}

// streamsErr is the first failure of the streams' probe process.
func streamsErr(streams []*Stream) error {
	for _, s := range streams {
		if err := s.Err(); err != nil {
			return err
		}
	}
	return nil
}

// stopAll stops the streams together and returns their answers.
func stopAll(streams []*Stream) [][]Answer {
	out := make([][]Answer, len(streams))
	var wg sync.WaitGroup
	for i, s := range streams {
		wg.Go(func() { out[i] = s.Stop() })
	}
	wg.Wait()
	return out
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// waitAll polls until cond holds for every stream or timeout passes; it
// reports whether cond held.
func waitAll(ctx context.Context, streams []*Stream, timeout time.Duration, cond func(*Stream) bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		all := true
		for _, s := range streams {
			all = all && cond(s)
		}
		if all {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitAny polls until cond holds for some stream or timeout passes.
func waitAny(ctx context.Context, streams []*Stream, timeout time.Duration, cond func(*Stream) bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		for _, s := range streams {
			if cond(s) {
				return true
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// failover runs steady queries from every client while a fault hits the
// target PoP: baseline, inject, wait for every client of the target to be
// answered by another PoP, hold, restore, wait for them to come back.
func (l *Lab) failover(ctx context.Context, name string, f fault, o ScenarioOptions) (_ *Result, err error) {
	r := newRun(name, o.Progress)
	if err := l.WaitSettled(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	streams, err := l.startStreams(o)
	if err != nil {
		return nil, err
	}
	injected, restored := false, false
	defer func() {
		// On any failure, undo the fault so the lab stays usable.
		if injected && !restored {
			if rerr := f.restore(context.WithoutCancel(ctx)); rerr != nil {
				err = errors.Join(err, fmt.Errorf("undo %s: %w", name, rerr))
			}
		}
		stopAll(streams)
	}()
	r.notef("%d clients send %d q/s each over %s to the anycast address, %s timeout", len(streams), o.Rate, streams[0].Transport, o.Timeout)
	if err := sleep(ctx, o.Baseline); err != nil {
		return nil, err
	}
	var affected []*Stream
	for _, s := range streams {
		if s.Last().PoP == o.Target {
			affected = append(affected, s)
		}
	}
	event := time.Now()
	if err := f.inject(ctx); err != nil {
		return nil, fmt.Errorf("%s: inject: %w", name, err)
	}
	injected = true
	r.notef("%s: %s at %s", o.Target, f.what, r.at(event))
	switched := waitAll(ctx, affected, o.SwitchWait, func(s *Stream) bool {
		a := s.Last()
		return a.Recv.After(event) && a.PoP != o.Target
	})
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}
	if !switched {
		r.notef("not every client of %s switched within %s", o.Target, o.SwitchWait)
	}
	if err := sleep(ctx, o.Hold); err != nil {
		return nil, err
	}
	end := time.Now()
	if err := f.restore(ctx); err != nil {
		return nil, fmt.Errorf("%s: restore: %w", name, err)
	}
	restored = true
	r.notef("%s: %s at %s", o.Target, f.undo, r.at(end))
	back := waitAll(ctx, affected, o.RecoverWait, func(s *Stream) bool {
		a := s.Last()
		return a.Recv.After(end) && a.PoP == o.Target
	})
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}
	if !back {
		r.notef("not every client came back to %s within %s", o.Target, o.RecoverWait)
	}
	if err := sleep(ctx, 500*time.Millisecond); err != nil {
		return nil, err
	}
	stopped := stopAll(streams)
	if err := streamsErr(streams); err != nil {
		return nil, err
	}
	lostWhen := map[string]string{}
	for i, s := range streams {
		qs := stopped[i]
		fo := analyzeFailover(qs, event, end)
		if fo.lost > 0 {
			lostWhen[s.Client] = fmt.Sprintf("sent %s–%s", strings.TrimSpace(r.at(fo.firstLost)), strings.TrimSpace(r.at(fo.lastLost)))
		}
		line := Line{Scenario: name, Client: s.Client, Transport: s.Transport, PoP: fo.last, Sent: fo.sent, Lost: fo.lost, Late: fo.late,
			Target: o.Target, PoPBefore: fo.before, PoPDuring: fo.during}
		if fo.didSwitch {
			line.SwitchMS = ms(fo.switched)
		}
		if fo.didRecover {
			line.RecoverMS = ms(fo.recovered)
		}
		r.res.Lines = append(r.res.Lines, line)
	}
	for _, ln := range r.res.Lines {
		if ln.PoPBefore != o.Target {
			if ln.Lost > 0 {
				r.res.notef("%s lost %d of %d queries (%d answered late, %s) though the event was not on its path", ln.Client, ln.Lost, ln.Sent, ln.Late, lostWhen[ln.Client])
			}
			continue
		}
		lost := fmt.Sprintf("%d of %d queries lost", ln.Lost, ln.Sent)
		if ln.Lost > 0 {
			lost += fmt.Sprintf(" (%d answered late, %s)", ln.Late, lostWhen[ln.Client])
		}
		switch {
		case ln.SwitchMS == nil:
			r.res.notef("%s stayed on %s: %s", ln.Client, o.Target, lost)
		case ln.RecoverMS == nil:
			r.res.notef("%s: %s → %s after %s ms and never back; %s", ln.Client, o.Target, ln.PoPDuring, fmtMS(ln.SwitchMS), lost)
		default:
			r.res.notef("%s: %s → %s after %s ms, back %s ms after the %s; %s", ln.Client, o.Target, ln.PoPDuring,
				fmtMS(ln.SwitchMS), fmtMS(ln.RecoverMS), f.end, lost)
		}
	}
	r.checkSessions(ctx, l, o.Target)
	return r.done(), nil
}

// checkSessions notes every PoP other than skip whose BGP sessions are
// younger than the scenario: their session dropped meanwhile (a BFD
// timeout of a starved process, usually), which moves traffic on its own.
func (r *scenarioRun) checkSessions(ctx context.Context, l *Lab, skip string) {
	age := time.Since(r.start)
	for _, n := range l.NodesByRole(RolePoP) {
		if n.Name == skip {
			continue
		}
		c, err := l.Admin(n.Name)
		if err != nil {
			continue
		}
		st, err := c.Status(ctx)
		if err != nil {
			r.res.notef("%s: status: %v", n.Name, err)
			continue
		}
		for _, s := range st.Sessions {
			if s.Uptime < age {
				r.res.notef("%s: BGP session to %s restarted during the scenario (up %s, now %s, bfd %s)", n.Name, s.Peer, s.Uptime.Round(time.Millisecond), s.State, s.BFD)
			}
		}
	}
}

// scaleOut adds a PoP to the target's region while every client queries
// steadily, starts its node, and reports when the new PoP first answers
// and how the catchment looks before and after.
func (l *Lab) scaleOut(ctx context.Context, o ScenarioOptions) (_ *Result, err error) {
	r := newRun("scale-out", o.Progress)
	if err := l.WaitSettled(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	tn, _ := l.plan.node(o.Target)
	pop, err := l.NewPoP(tn.Region)
	if err != nil {
		return nil, err
	}
	streams, err := l.startStreams(o)
	if err != nil {
		return nil, err
	}
	defer stopAll(streams)
	ecmp := l.plan.topo.ECMP
	r.notef("ECMP %v; %d clients send %d q/s each over %s, %s timeout", ecmp, len(streams), o.Rate, streams[0].Transport, o.Timeout)
	if err := sleep(ctx, o.Baseline); err != nil {
		return nil, err
	}
	t0 := time.Now()
	n, err := l.AddPoP(ctx, tn.Region, pop)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	r.notef("%s added to region %s (namespace, link, BIRD reconfigured) in %s", n.Name, tn.Region, start.Sub(t0).Round(time.Millisecond))
	if _, err := l.StartNode(n.Name); err != nil {
		return nil, err
	}
	r.notef("%s: anycastd started at %s", n.Name, r.at(start))
	if err := l.WaitAnnounced(ctx, 20*time.Second, n.Name); err != nil {
		return nil, err
	}
	announced := time.Now()
	r.notef("%s announces (admin status) %s after its start", n.Name, announced.Sub(start).Round(time.Millisecond))
	// Give the routers a moment to use the new PoP (an ECMP router
	// spreads flows to it at once; a router without ECMP may keep its
	// old best path), then watch the catchment for two seconds.
	waitAny(ctx, streams, 3*time.Second, func(s *Stream) bool {
		for _, a := range s.Answers() {
			if a.OK() && a.PoP == n.Name {
				return true
			}
		}
		return false
	})
	if err := sleep(ctx, 2*time.Second); err != nil {
		return nil, err
	}
	stop := time.Now()
	first := time.Duration(-1)
	stopped := stopAll(streams)
	if err := streamsErr(streams); err != nil {
		return nil, err
	}
	for i, s := range streams {
		qs := stopped[i]
		line := Line{Scenario: "scale-out", Client: s.Client, Transport: s.Transport, Sent: len(qs), ECMP: &ecmp, NewPoP: n.Name,
			PoPsBefore: map[string]int{}, PoPsAfter: map[string]int{}}
		var last time.Time
		for _, a := range qs {
			if !a.OK() {
				line.Lost++
				continue
			}
			if a.Recv.After(last) {
				last, line.PoP = a.Recv, a.PoP
			}
			switch {
			case a.Sent.Before(start):
				line.PoPsBefore[a.PoP]++
			case a.Sent.After(stop.Add(-2 * time.Second)):
				line.PoPsAfter[a.PoP]++
			}
			if a.PoP == n.Name && line.SwitchMS == nil {
				line.SwitchMS = ms(a.Recv.Sub(start))
				if first < 0 || a.Recv.Sub(start) < first {
					first = a.Recv.Sub(start)
				}
			}
		}
		if line.PoPBefore == "" {
			for p := range line.PoPsBefore {
				line.PoPBefore = p
			}
		}
		r.res.Lines = append(r.res.Lines, line)
	}
	if first >= 0 {
		r.notef("%s first answered a client %s after its anycastd started", n.Name, first.Round(time.Millisecond))
	} else {
		r.notef("%s answered no client", n.Name)
	}
	return r.done(), nil
}

// ProbeStats is what a client's steady stream saw (Lab.Probe).
type ProbeStats struct {
	Client, Transport string
	Sent, Lost, Late  int
	P50, P99, Max     time.Duration // of the answered queries
	PoPs              map[string]int
	// Stalls are the starts of runs of late or lost queries, as offsets
	// from the start of the stream.
	Stalls []time.Duration
}

// Probe sends steady streams from every client for d and returns what each
// saw: a check of the lab itself, with no event.
func (l *Lab) Probe(ctx context.Context, d time.Duration, o ScenarioOptions) ([]ProbeStats, error) {
	o = o.withDefaults(l)
	streams, err := l.startStreams(o)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	serr := sleep(ctx, d)
	all := stopAll(streams)
	if serr != nil {
		return nil, serr
	}
	if err := streamsErr(streams); err != nil {
		return nil, err
	}
	var out []ProbeStats
	for i, s := range streams {
		st := ProbeStats{Client: s.Client, Transport: s.Transport, PoPs: map[string]int{}}
		var rtts []time.Duration
		inStall := false
		for _, a := range all[i] {
			st.Sent++
			if a.Err == "late" {
				st.Late++
			}
			if !a.OK() {
				st.Lost++
				if !inStall {
					st.Stalls = append(st.Stalls, a.Sent.Sub(start).Round(time.Millisecond))
				}
				inStall = true
				continue
			}
			inStall = false
			st.PoPs[a.PoP]++
			rtts = append(rtts, a.RTT())
		}
		st.P50, st.P99, st.Max = percentile(rtts, 50), percentile(rtts, 99), percentile(rtts, 100)
		out = append(out, st)
	}
	return out, nil
}
