package lab

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/apiclient"
	"github.com/anycastdns/anycastdns/internal/steer"
)

// The service-steering scenarios (issue #14, "the lab must prove it"): a
// pool of the lab's service endpoints (StartServices) defined through the
// control plane's API in ServiceZone, checked by the lab's monitors (one
// per region, reporting to the control plane, which streams the steering
// state to every PoP), and asked for at every PoP's unicast address from
// the clients' namespaces, with and without EDNS Client Subnet.
//
// The clients' IPv4 networks share one /24 (198.51.100.0/24), the most of
// an IPv4 client address a decision may use (steer.MaxV4Bits): over IPv4
// the clients of A, B and C are one client. Their IPv6 networks
// (2001:db8:a::/64, …) differ within the IPv6 limit (/56), so the pools'
// region maps place clients by their IPv6 /48 and the scenarios that need
// a client's place ask over IPv6 (or carry an IPv6 ECS subnet).

// ServiceZone is the zone of the scenarios' pools.
const ServiceZone = "service.example."

// The endpoint checks of the scenarios' pools.
const (
	svcInterval = 500 * time.Millisecond
	svcTimeout  = 300 * time.Millisecond
	svcRise     = 2
	svcFall     = 2
	svcQuorum   = 2
	// svcRegionBits is the length of the region map's prefixes (each
	// client's IPv6 network cut to it), and so the ECS scope of an answer
	// that depended on the client's region.
	svcRegionBits = 48
	// svcAskTimeout bounds one steered query.
	svcAskTimeout = time.Second
)

// svcBound is the bound of a change of state reaching every PoP: 2 probe
// intervals + 1 s (issue #14).
const svcBound = 2*svcInterval + time.Second

// svcEnv is what every service-steering scenario works with.
type svcEnv struct {
	l    *Lab
	r    *scenarioRun
	c    *apiclient.Client
	pops []*Node
	o    ScenarioOptions
}

// serviceScenario runs one service-steering scenario.
func (l *Lab) serviceScenario(ctx context.Context, name string, o ScenarioOptions) (*Result, error) {
	if l.ctl == nil || !l.opts.Monitors {
		return nil, fmt.Errorf("%s needs the control plane and the monitors (anycastlab scenario does it; lab.Options Control and Monitors)", name)
	}
	r := newRun(name, o.Progress)
	if err := l.WaitSettled(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	for _, m := range l.Monitors() {
		l.mu.Lock()
		p := l.monitors[m.Vantage]
		l.mu.Unlock()
		if p == nil || !p.Running() {
			if _, err := l.StartMonitor(ctx, m.Vantage); err != nil {
				return nil, err
			}
		}
	}
	c, err := l.Control()
	if err != nil {
		return nil, err
	}
	if _, err := c.Pools(ctx, ServiceZone); errors.Is(err, apiclient.ErrNotFound) {
		if _, err := c.CreateZone(ctx, api.CreateZone{Name: ServiceZone, Records: []string{
			"@ 3600 IN SOA ns1 hostmaster 1 3600 600 604800 60",
			"@ 3600 IN NS ns1",
			"ns1 3600 IN A 192.0.2.53",
		}}); err != nil {
			return nil, fmt.Errorf("%s: create %s: %w", name, ServiceZone, err)
		}
		r.notef("zone %s created through the control plane's API", ServiceZone)
	} else if err != nil {
		return nil, fmt.Errorf("%s: pools of %s: %w", name, ServiceZone, err)
	}
	e := &svcEnv{l: l, r: r, c: c, pops: l.NodesByRole(RolePoP), o: o}
	switch name {
	case "steer-failover":
		err = e.failover(ctx)
	case "steer-geo":
		err = e.geo(ctx)
	case "steer-latency":
		err = e.latency(ctx)
	case "steer-weighted":
		err = e.weighted(ctx)
	case "steer-least-load":
		err = e.leastLoad(ctx)
	case "steer-consistent":
		err = e.consistent(ctx)
	default:
		err = fmt.Errorf("no service-steering scenario %q", name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return r.done(), nil
}

// stopServices stops the scenario's endpoints, noting a failure.
func (e *svcEnv) stopServices(svcs []*Service) {
	if err := StopServices(svcs); err != nil {
		e.r.notef("%v", err)
	}
}

// regionMap places clients by their IPv6 network cut to svcRegionBits:
// every region with a client.
func (e *svcEnv) regionMap() map[string]string {
	m := map[string]string{}
	for _, n := range e.l.NodesByRole(RoleClient) {
		m[netip.PrefixFrom(n.Network6.Addr(), svcRegionBits).Masked().String()] = n.Region
	}
	return m
}

// check is the endpoints' HTTP check, with the load source when load.
func svcCheck(load bool) *steer.Check {
	c := &steer.Check{Type: "http", Port: ServicePort, Path: ServiceHealthPath, Body: "ok",
		Interval: steer.Duration{Duration: svcInterval}, Timeout: steer.Duration{Duration: svcTimeout},
		Rise: svcRise, Fall: svcFall, Quorum: svcQuorum}
	if load {
		c.Load = &steer.LoadSource{Type: "json", URL: fmt.Sprintf("http://{address}:%d%s", ServicePort, ServiceLoadPath), Field: ServiceLoadField}
	}
	return c
}

func weight(w uint32) *uint32 { return &w }

// setPool defines the pool at owner (under ServiceZone) and returns its
// name and a function that deletes it.
func (e *svcEnv) setPool(ctx context.Context, owner string, p steer.Pool) (string, func(), error) {
	name := owner + "." + ServiceZone
	if _, err := e.c.SetPool(ctx, ServiceZone, name, "A", p); err != nil {
		return "", nil, fmt.Errorf("define pool %s: %w", name, err)
	}
	var eps []string
	for _, ep := range p.Endpoints {
		eps = append(eps, ep.Key())
	}
	e.r.notef("pool %s A: policy %s, endpoints %s, through the control plane's API", name, strings.Join(p.Policy, " → "), strings.Join(eps, " "))
	return name, func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := e.c.DeletePool(dctx, ServiceZone, name, "A"); err != nil {
			e.r.notef("delete pool %s: %v", name, err)
		}
	}, nil
}

// endpointsOf lists services as pool endpoints in their regions.
func endpointsOf(svcs []*Service) []steer.Endpoint {
	var out []steer.Endpoint
	for _, s := range svcs {
		out = append(out, steer.Endpoint{Address: s.Addr, Region: s.Region})
	}
	return out
}

func addrsOf(svcs ...*Service) string {
	var as []netip.Addr
	for _, s := range svcs {
		as = append(as, s.Addr)
	}
	slices.SortFunc(as, netip.Addr.Compare)
	return joinAddrs(as)
}

// popAsk is a PoP asked at one unicast address from one client.
type popAsk struct {
	pop    *Node
	client string
	dst    netip.Addr
	a      *dnsAsker
}

// popAskers opens, for every PoP, an asker in the client namespace of the
// PoP's region that asks the PoP's unicast address of the family.
func (e *svcEnv) popAskers(v6 bool) ([]*popAsk, error) {
	var out []*popAsk
	for _, p := range e.pops {
		client := nodeName(p.Region, "client")
		a, err := e.l.newAsker(client, v6)
		if err != nil {
			closeAskers(out)
			return nil, err
		}
		dst := p.Addr4
		if v6 {
			dst = p.Addr6
		}
		out = append(out, &popAsk{pop: p, client: client, dst: dst, a: a})
	}
	return out, nil
}

func closeAskers(ps []*popAsk) {
	for _, p := range ps {
		p.a.Close()
	}
}

// waitAll waits until every PoP's answer to qname satisfies ok, and
// returns the last answer of each.
func (e *svcEnv) waitAll(ctx context.Context, ps []*popAsk, qname string, ok func(steerAnswer) bool, timeout time.Duration, what string) error {
	deadline := time.Now().Add(timeout)
	for _, p := range ps {
		for {
			a, err := p.a.ask(p.dst, qname, netip.Prefix{}, svcAskTimeout)
			if err != nil {
				return err
			}
			if ok(a) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %s answers %s %q (%s), still after %s", what, p.pop.Name, qname, a.set(), orDash(a.err), timeout)
			}
			if err := sleep(ctx, 50*time.Millisecond); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitSteering waits until every PoP's node holds a steering state in
// which ok holds for each of keys.
func (e *svcEnv) waitSteering(ctx context.Context, keys []string, ok func(down bool, load *float64, key string) bool, timeout time.Duration, what string) error {
	deadline := time.Now().Add(timeout)
	for _, p := range e.pops {
		c, err := e.l.Admin(p.Name)
		if err != nil {
			return err
		}
		for {
			st, err := c.Status(ctx)
			why := ""
			switch {
			case err != nil:
				why = err.Error()
			case st.Steering == nil:
				why = "no steering state"
			default:
				have := map[string]int{}
				for i, ep := range st.Steering.Endpoints {
					have[ep.Endpoint] = i
				}
				for _, k := range keys {
					i, found := have[k]
					if !found {
						why = k + " not in its steering state"
						break
					}
					if ep := st.Steering.Endpoints[i]; !ok(ep.Down, ep.Load, k) {
						why = fmt.Sprintf("%s down %v load %v", k, ep.Down, fmtLoad(ep.Load))
						break
					}
				}
			}
			if why == "" {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %s: %s after %s", what, p.Name, why, timeout)
			}
			if err := sleep(ctx, 100*time.Millisecond); err != nil {
				return err
			}
		}
	}
	return nil
}

func fmtLoad(v *float64) string {
	if v == nil {
		return "none"
	}
	return fmt.Sprint(*v)
}

// popWatch asks every PoP for qname every 20 ms, each on its own
// goroutine with its own asker, and keeps what each got.
type popWatch struct {
	mu   sync.Mutex
	out  [][]steerAnswer
	errs []error
	done chan struct{}
	wg   sync.WaitGroup
}

func watchPoPs(ps []*popAsk, qname string) *popWatch {
	w := &popWatch{out: make([][]steerAnswer, len(ps)), errs: make([]error, len(ps)), done: make(chan struct{})}
	for i, p := range ps {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for {
				select {
				case <-w.done:
					return
				default:
				}
				a, err := p.a.ask(p.dst, qname, netip.Prefix{}, svcAskTimeout)
				w.mu.Lock()
				if err != nil {
					w.errs[i] = err
					w.mu.Unlock()
					return
				}
				w.out[i] = append(w.out[i], a)
				w.mu.Unlock()
				select {
				case <-w.done:
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
	}
	return w
}

// followed tells whether every PoP's last answer, sent at since or later,
// satisfies ok.
func (w *popWatch) followed(since time.Time, ok func(steerAnswer) bool) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, as := range w.out {
		if len(as) == 0 {
			return false
		}
		a := as[len(as)-1]
		if a.sent.Before(since) || !ok(a) {
			return false
		}
	}
	return true
}

// stop ends the watch and returns what each PoP answered.
func (w *popWatch) stop() ([][]steerAnswer, error) {
	close(w.done)
	w.wg.Wait()
	return w.out, errors.Join(w.errs...)
}

// eventOutcome is what one PoP's answers show around an event from t0 to
// t1: when the first answer came that reflects it (isNew), how many
// answers after that did not (flaps), and when the first answer came after
// t1 that is as before (isOld).
type eventOutcome struct {
	queries, lost int
	switched      *float64
	recovered     *float64
	flaps         int
	during        string // the last answer of the event
	before, after string // the last answer before t0, the last one of all
	switchedAt    time.Time
}

func analyzeEvent(as []steerAnswer, t0, t1 time.Time, isNew, isOld func(steerAnswer) bool) eventOutcome {
	var o eventOutcome
	for _, a := range as {
		if a.sent.Before(t0) {
			if a.ok() {
				o.before = a.set()
			}
			continue
		}
		if a.sent.Before(t1) {
			o.queries++
			if !a.ok() {
				o.lost++
				continue
			}
			switch {
			case o.switched == nil && isNew(a):
				o.switched, o.switchedAt = ms(a.recv.Sub(t0)), a.recv
			case o.switched != nil && !isNew(a):
				o.flaps++
			}
			o.during = a.set()
			continue
		}
		if !a.ok() {
			continue
		}
		o.after = a.set()
		if o.recovered == nil && !a.recv.Before(t1) && isOld(a) {
			o.recovered = ms(a.recv.Sub(t1))
		}
	}
	return o
}

// eventRun starts the services' pool, waits for the state it starts from,
// then runs inject (at t0) and restore (at t1) while every PoP is asked,
// and returns each PoP's answers with t0 and t1. hold is how long the
// event lasts once every PoP followed it (at most wait after t0).
func (e *svcEnv) eventRun(ctx context.Context, ps []*popAsk, qname string, isNew func(steerAnswer) bool,
	inject, restore func(), hold, wait time.Duration) ([][]steerAnswer, time.Time, time.Time, error) {
	w := watchPoPs(ps, qname)
	if err := sleep(ctx, time.Second); err != nil {
		_, _ = w.stop()
		return nil, time.Time{}, time.Time{}, err
	}
	t0 := time.Now()
	inject()
	// Until every PoP followed, or wait passed.
	for deadline := t0.Add(wait); time.Now().Before(deadline) && !w.followed(t0, isNew); {
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			restore()
			_, _ = w.stop()
			return nil, time.Time{}, time.Time{}, err
		}
	}
	if err := sleep(ctx, hold); err != nil {
		restore()
		_, _ = w.stop()
		return nil, time.Time{}, time.Time{}, err
	}
	t1 := time.Now()
	restore()
	err := sleep(ctx, wait)
	all, serr := w.stop()
	return all, t0, t1, errors.Join(err, serr)
}

// failover: a pool with `up` over one endpoint in each of A, B and C; the
// endpoint of the target PoP's region fails its HTTP check. It must be gone
// from every PoP's answers within 2 probe intervals + 1 s, stay gone while
// it fails, and come back once rise probes passed again (never sooner than
// rise-1 intervals, less one probe's timeout, after the repair).
func (e *svcEnv) failover(ctx context.Context) error {
	svcs, err := e.l.StartServices(ServiceSpec{"A", 1}, ServiceSpec{"B", 1}, ServiceSpec{"C", 1})
	if err != nil {
		return err
	}
	defer e.stopServices(svcs)
	tn, err := e.l.plan.node(e.o.Target)
	if err != nil {
		return err
	}
	var target *Service
	var rest []*Service
	for _, s := range svcs {
		if s.Region == tn.Region {
			target = s
		} else {
			rest = append(rest, s)
		}
	}
	if target == nil {
		return fmt.Errorf("no service endpoint in %s's region %s", e.o.Target, tn.Region)
	}
	qname, del, err := e.setPool(ctx, "failover", steer.Pool{TTL: 5, Policy: []string{steer.PolicyUp}, Endpoints: endpointsOf(svcs), Check: svcCheck(false)})
	if err != nil {
		return err
	}
	defer del()
	ps, err := e.popAskers(false)
	if err != nil {
		return err
	}
	defer closeAskers(ps)
	all, without := addrsOf(svcs...), addrsOf(rest...)
	if err := e.waitAll(ctx, ps, qname, func(a steerAnswer) bool { return a.ok() && a.set() == all }, 30*time.Second, "pool served"); err != nil {
		return err
	}
	var keys []string
	for _, s := range svcs {
		keys = append(keys, s.Addr.String())
	}
	// The monitors read the pools every 5 s; every endpoint must be
	// known up before the event.
	if err := e.waitSteering(ctx, keys, func(down bool, _ *float64, _ string) bool { return !down }, 30*time.Second, "endpoints checked up"); err != nil {
		return err
	}
	e.r.notef("every PoP answers %s with %s; every endpoint is up in every PoP's steering state (check: http %s every %s, timeout %s, rise %d, fall %d, quorum %d of %d monitors)",
		qname, all, ServiceHealthPath, svcInterval, svcTimeout, svcRise, svcFall, svcQuorum, len(e.l.Monitors()))
	isNew := func(a steerAnswer) bool { return a.ok() && a.set() == without }
	isOld := func(a steerAnswer) bool { return a.ok() && a.set() == all }
	answers, t0, t1, err := e.eventRun(ctx, ps, qname, isNew,
		func() { target.SetHealthy(false) }, func() { target.SetHealthy(true) }, time.Second, 3*svcBound)
	target.SetHealthy(true)
	if err != nil {
		return err
	}
	e.r.notef("%s (%s) failed its check at %s and passed again at %s", target.Name, target.Addr, e.r.at(t0), e.r.at(t1))
	bound := ms(svcBound)
	minRecover := ms(time.Duration(svcRise-1)*svcInterval - svcTimeout)
	for i, p := range ps {
		o := analyzeEvent(answers[i], t0, t1, isNew, isOld)
		flaps := o.flaps
		ln := ServiceLine{Scenario: e.r.res.Scenario, Client: p.client, PoP: p.pop.Name, Target: target.Addr.String(),
			Answer: o.during, Expected: without, Queries: o.queries, Lost: o.lost, SwitchMS: o.switched, RecoverMS: o.recovered,
			BoundMS: bound, MinRecoverMS: minRecover, Flaps: &flaps}
		var why []string
		switch {
		case o.switched == nil:
			why = append(why, "the endpoint never left the answers")
		case *o.switched > *bound:
			why = append(why, fmt.Sprintf("gone after %.0f ms, bound %.0f ms", *o.switched, *bound))
		}
		if flaps > 0 {
			why = append(why, fmt.Sprintf("%d answers with it again while it failed", flaps))
		}
		if o.during != without {
			why = append(why, "last answer while it failed: "+o.during)
		}
		switch {
		case o.recovered == nil:
			why = append(why, "it did not come back")
		case *o.recovered < *minRecover:
			why = append(why, fmt.Sprintf("back after %.0f ms, before rise (%.0f ms)", *o.recovered, *minRecover))
		}
		ln.OK, ln.Why = len(why) == 0, strings.Join(why, "; ")
		e.r.res.Service = append(e.r.res.Service, ln)
	}
	return nil
}

// svcAsk is one steered query to make: from a client's namespace, to a
// PoP, with or without an ECS subnet.
type svcAsk struct {
	from string
	v6   bool
	dst  netip.Addr
	pop  string
	ecs  netip.Prefix
}

// askMany makes each query n times, at most workers at once per client
// and family, and returns the answers in the order of qs (n per query).
// A query lost is asked again, up to 3 times.
func (e *svcEnv) askMany(ctx context.Context, qs []svcAsk, qname string, n, workers int) ([][]steerAnswer, error) {
	out := make([][]steerAnswer, len(qs))
	type key struct {
		from string
		v6   bool
	}
	groups := map[key][]int{}
	for i, q := range qs {
		k := key{q.from, q.v6}
		groups[k] = append(groups[k], i)
		out[i] = make([]steerAnswer, n)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	// Every socket first: a failure then leaves no worker behind.
	askers := map[key][]*dnsAsker{}
	for k := range groups {
		for range workers {
			a, err := e.l.newAsker(k.from, k.v6)
			if err != nil {
				for _, as := range askers {
					for _, a := range as {
						a.Close()
					}
				}
				return nil, err
			}
			askers[k] = append(askers[k], a)
		}
	}
	for k, idx := range groups {
		jobs := make(chan [2]int)
		for _, a := range askers[k] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer a.Close()
				for j := range jobs {
					q := qs[j[0]]
					var ans steerAnswer
					for try := 0; try < 3; try++ {
						var err error
						ans, err = a.ask(q.dst, qname, q.ecs, svcAskTimeout)
						if err != nil {
							mu.Lock()
							errs = append(errs, err)
							mu.Unlock()
							break
						}
						if ans.err != "timeout" {
							break
						}
					}
					out[j[0]][j[1]] = ans
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(jobs)
			for _, i := range idx {
				for r := range n {
					select {
					case jobs <- [2]int{i, r}:
					case <-ctx.Done():
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return out, errors.Join(errs...)
}

// summarize is the answers' sets and scopes, and how many were lost.
func summarizeSteer(as []steerAnswer) (sets, scopes []string, lost int) {
	for _, a := range as {
		if !a.ok() {
			lost++
			continue
		}
		if s := a.set(); !slices.Contains(sets, s) {
			sets = append(sets, s)
		}
		if s := scopeString(a.scope); !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	slices.Sort(sets)
	slices.Sort(scopes)
	return sets, scopes, lost
}

// regionClients are the client namespaces of the regions with a monitor
// (A, B, C), in topology order.
func (e *svcEnv) regionClients() []*Node {
	var out []*Node
	for _, m := range e.l.Monitors() {
		if n, err := e.l.plan.node(m.Node); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// geo: a pool with `geo` over one endpoint in each of A, B and C and the
// map of the clients' IPv6 /48s to their regions. Each client of A, B and
// C is asked for at every PoP's unicast IPv6 address and at the anycast
// address three ways: through a resolver in the next region that sends
// the client's subnet as ECS (answer: the client's region's endpoint,
// scope 48, though the resolver is elsewhere); from the client itself
// without ECS (its region's endpoint, no ECS option in the answer); from
// the client with an ECS source prefix of 0 (RFC 7871 §7.1.2: the
// resolver's address decides, scope 0).
func (e *svcEnv) geo(ctx context.Context) error {
	svcs, err := e.l.StartServices(ServiceSpec{"A", 1}, ServiceSpec{"B", 1}, ServiceSpec{"C", 1})
	if err != nil {
		return err
	}
	defer e.stopServices(svcs)
	qname, del, err := e.setPool(ctx, "geo", steer.Pool{TTL: 5, Policy: []string{steer.PolicyGeo}, Endpoints: endpointsOf(svcs), Regions: e.regionMap()})
	if err != nil {
		return err
	}
	defer del()
	byRegion := map[string]*Service{}
	for _, s := range svcs {
		byRegion[s.Region] = s
	}
	clients := e.regionClients()
	// Every PoP serves the pool before the scenario asks.
	ps, err := e.popAskers(true)
	if err != nil {
		return err
	}
	defer closeAskers(ps)
	if err := e.waitAll(ctx, ps, qname, func(a steerAnswer) bool { return a.ok() && len(a.addrs) == 1 }, 30*time.Second, "pool served"); err != nil {
		return err
	}
	anycast, err := e.l.anycastAddr(true)
	if err != nil {
		return err
	}
	dsts := []svcAsk{}
	for _, p := range e.pops {
		dsts = append(dsts, svcAsk{dst: p.Addr6, pop: p.Name})
	}
	dsts = append(dsts, svcAsk{dst: anycast, pop: "anycast"})
	type lineSpec struct {
		client, resolver string
		ecs              netip.Prefix
		want             *Service
		scope            string
	}
	var specs []lineSpec
	for i, c := range clients {
		want := byRegion[c.Region]
		if want == nil {
			return fmt.Errorf("no endpoint in region %s", c.Region)
		}
		resolver := clients[(i+1)%len(clients)].Name
		subnet := netip.PrefixFrom(c.Network6.Addr(), steer.MaxV6Bits).Masked()
		specs = append(specs,
			lineSpec{c.Name, resolver, subnet, want, fmt.Sprint(svcRegionBits)},
			lineSpec{c.Name, "", netip.Prefix{}, want, "none"},
			lineSpec{c.Name, "", netip.PrefixFrom(netip.IPv6Unspecified(), 0), want, "0"},
		)
	}
	const n = 5
	var qs []svcAsk
	for _, sp := range specs {
		from := sp.client
		if sp.resolver != "" {
			from = sp.resolver
		}
		for _, d := range dsts {
			qs = append(qs, svcAsk{from: from, v6: true, dst: d.dst, pop: d.pop, ecs: sp.ecs})
		}
	}
	answers, err := e.askMany(ctx, qs, qname, n, 2)
	if err != nil {
		return err
	}
	for i, sp := range specs {
		var as []steerAnswer
		for j := range dsts {
			as = append(as, answers[i*len(dsts)+j]...)
		}
		sets, scopes, lost := summarizeSteer(as)
		ecs := ""
		if sp.ecs.IsValid() {
			ecs = sp.ecs.String()
		}
		ln := ServiceLine{Scenario: e.r.res.Scenario, Client: sp.client, Resolver: sp.resolver, PoP: "all", ECS: ecs,
			Answer: strings.Join(sets, " | "), Expected: sp.want.Addr.String(), Queries: len(as), Lost: lost,
			Scope: strings.Join(scopes, ","), ExpectedScope: sp.scope}
		var why []string
		if lost > 0 {
			why = append(why, fmt.Sprintf("%d lost", lost))
		}
		if len(sets) != 1 || sets[0] != ln.Expected {
			why = append(why, "answer "+ln.Answer)
		}
		if len(scopes) != 1 || scopes[0] != sp.scope {
			why = append(why, "scope "+ln.Scope)
		}
		ln.OK, ln.Why = len(why) == 0, strings.Join(why, "; ")
		e.r.res.Service = append(e.r.res.Service, ln)
	}
	e.r.notef("asked %d times each at %d addresses (every PoP's unicast IPv6, the anycast IPv6); the IPv4 networks of A, B and C share one /24, the IPv4 privacy limit, so the clients are placed by IPv6", n, len(dsts))
	return nil
}

// weighted: a pool with `weighted` 70/30 over two endpoints in B, asked
// 10,000 times, each with a different IPv6 /56 as ECS, through resolvers
// in A, B and C, at every PoP's unicast IPv6 address in turn: the shares
// land within ±2 points of 70/30, and every answer's scope is the /56.
func (e *svcEnv) weighted(ctx context.Context) error {
	tn, err := e.l.plan.node(e.o.Target)
	if err != nil {
		return err
	}
	svcs, err := e.l.StartServices(ServiceSpec{tn.Region, 2})
	if err != nil {
		return err
	}
	defer e.stopServices(svcs)
	eps := endpointsOf(svcs)
	eps[0].Weight, eps[1].Weight = weight(70), weight(30)
	want := map[string]float64{svcs[0].Addr.String(): 0.7, svcs[1].Addr.String(): 0.3}
	qname, del, err := e.setPool(ctx, "weighted", steer.Pool{TTL: 5, Policy: []string{steer.PolicyWeighted}, Endpoints: eps})
	if err != nil {
		return err
	}
	defer del()
	ps, err := e.popAskers(true)
	if err != nil {
		return err
	}
	defer closeAskers(ps)
	if err := e.waitAll(ctx, ps, qname, func(a steerAnswer) bool { return a.ok() && len(a.addrs) == 1 }, 30*time.Second, "pool served"); err != nil {
		return err
	}
	const subnets = 10000
	clients := e.regionClients()
	qs := make([]svcAsk, subnets)
	for i := range qs {
		// 2001:db8:4000::/56, 2001:db8:4000:100::/56, … 2001:db8:4027:f00::/56
		var a [16]byte
		copy(a[:], netip.MustParseAddr("2001:db8:4000::").AsSlice())
		a[4], a[5] = 0x40+byte(i>>8>>8), byte(i>>8)
		a[6] = byte(i)
		p := e.pops[i%len(e.pops)]
		qs[i] = svcAsk{from: clients[i%len(clients)].Name, v6: true, dst: p.Addr6, pop: p.Name, ecs: netip.PrefixFrom(netip.AddrFrom16(a), steer.MaxV6Bits)}
	}
	start := time.Now()
	answers, err := e.askMany(ctx, qs, qname, 1, 8)
	if err != nil {
		return err
	}
	took := time.Since(start)
	counts := map[string]int{}
	perPoP := map[string]map[string]int{}
	var all []steerAnswer
	bad := 0
	for i, as := range answers {
		a := as[0]
		all = append(all, a)
		if !a.ok() {
			continue
		}
		if len(a.addrs) != 1 {
			bad++
			continue
		}
		counts[a.set()]++
		if perPoP[qs[i].pop] == nil {
			perPoP[qs[i].pop] = map[string]int{}
		}
		perPoP[qs[i].pop][a.set()]++
	}
	_, scopes, lost := summarizeSteer(all)
	answered := subnets - lost - bad
	shares := map[string]float64{}
	for k, v := range counts {
		shares[k] = math.Round(float64(v)/float64(max(answered, 1))*10000) / 10000
	}
	ln := ServiceLine{Scenario: e.r.res.Scenario, Client: strings.Join(nodeNames(clients), ","), PoP: "all", ECS: fmt.Sprintf("%d IPv6 /56s", subnets),
		Answer: fmtShares(shares), Expected: fmtShares(want) + " (±2 points)", Queries: subnets, Lost: lost, Shares: shares, Subnets: subnets,
		Scope: strings.Join(scopes, ","), ExpectedScope: fmt.Sprint(steer.MaxV6Bits)}
	var why []string
	if lost > 0 || bad > 0 {
		why = append(why, fmt.Sprintf("%d lost, %d answers not of one endpoint", lost, bad))
	}
	for k, w := range want {
		if math.Abs(shares[k]-w) > 0.02 {
			why = append(why, fmt.Sprintf("%s got %.1f%%, want %.0f%% ±2", k, 100*shares[k], 100*w))
		}
	}
	if len(shares) != len(want) {
		why = append(why, "answers of other endpoints: "+ln.Answer)
	}
	if len(scopes) != 1 || scopes[0] != ln.ExpectedScope {
		why = append(why, "scope "+ln.Scope)
	}
	ln.OK, ln.Why = len(why) == 0, strings.Join(why, "; ")
	e.r.res.Service = append(e.r.res.Service, ln)
	for _, p := range slices.Sorted(maps.Keys(perPoP)) {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(perPoP[p])) {
			parts = append(parts, fmt.Sprintf("%s %d", k, perPoP[p][k]))
		}
		e.r.notef("%s answered %s", p, strings.Join(parts, ", "))
	}
	e.r.notef("%d queries in %s (%.0f/s)", subnets, took.Round(time.Millisecond), float64(subnets)/took.Seconds())
	return nil
}

func nodeNames(ns []*Node) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.Name)
	}
	return out
}

// leastLoad: a pool with `up` and `least-load` over two endpoints in the
// target's region, their load read by the monitors from each endpoint's
// GET /load. The first starts less loaded and gets every answer; its load
// rises above the second's and every PoP's answers move to the second
// within 2 probe intervals + 1 s; it falls again and they come back.
func (e *svcEnv) leastLoad(ctx context.Context) error {
	tn, err := e.l.plan.node(e.o.Target)
	if err != nil {
		return err
	}
	svcs, err := e.l.StartServices(ServiceSpec{tn.Region, 2})
	if err != nil {
		return err
	}
	defer e.stopServices(svcs)
	const low, other, high = 10, 40, 90
	hot, cool := svcs[0], svcs[1]
	hot.SetLoad(low)
	cool.SetLoad(other)
	eps := endpointsOf(svcs)
	for i := range eps {
		eps[i].Capacity = 100
	}
	qname, del, err := e.setPool(ctx, "least-load", steer.Pool{TTL: 5, Policy: []string{steer.PolicyUp, steer.PolicyLeastLoad}, Endpoints: eps, Check: svcCheck(true)})
	if err != nil {
		return err
	}
	defer del()
	ps, err := e.popAskers(false)
	if err != nil {
		return err
	}
	defer closeAskers(ps)
	loads := map[string]float64{hot.Addr.String(): low, cool.Addr.String(): other}
	if err := e.waitSteering(ctx, slices.Collect(maps.Keys(loads)), func(down bool, load *float64, key string) bool {
		return !down && load != nil && *load == loads[key]
	}, 30*time.Second, "loads known"); err != nil {
		return err
	}
	if err := e.waitAll(ctx, ps, qname, func(a steerAnswer) bool { return a.ok() && a.set() == hot.Addr.String() }, 10*time.Second, "least loaded answered"); err != nil {
		return err
	}
	e.r.notef("every PoP answers %s with %s (load %d of 100) rather than %s (load %d of 100)", qname, hot.Addr, low, cool.Addr, other)
	isNew := func(a steerAnswer) bool { return a.ok() && a.set() == cool.Addr.String() }
	isOld := func(a steerAnswer) bool { return a.ok() && a.set() == hot.Addr.String() }
	answers, t0, t1, err := e.eventRun(ctx, ps, qname, isNew,
		func() { hot.SetLoad(high) }, func() { hot.SetLoad(low) }, time.Second, 3*svcBound)
	if err != nil {
		return err
	}
	e.r.notef("%s's load rose from %d to %d at %s and fell back at %s", hot.Addr, low, high, e.r.at(t0), e.r.at(t1))
	bound := ms(svcBound)
	for i, p := range ps {
		o := analyzeEvent(answers[i], t0, t1, isNew, isOld)
		flaps := o.flaps
		ln := ServiceLine{Scenario: e.r.res.Scenario, Client: p.client, PoP: p.pop.Name, Target: hot.Addr.String(),
			Answer: o.during, Expected: cool.Addr.String(), Queries: o.queries, Lost: o.lost, SwitchMS: o.switched, RecoverMS: o.recovered,
			BoundMS: bound, Flaps: &flaps}
		var why []string
		switch {
		case o.switched == nil:
			why = append(why, "answers did not move")
		case *o.switched > *bound:
			why = append(why, fmt.Sprintf("moved after %.0f ms, bound %.0f ms", *o.switched, *bound))
		}
		if flaps > 0 {
			why = append(why, fmt.Sprintf("%d answers back on the loaded endpoint", flaps))
		}
		if o.before != hot.Addr.String() {
			why = append(why, "before the load: "+o.before)
		}
		if o.recovered == nil {
			why = append(why, "answers did not come back once its load fell")
		}
		ln.OK, ln.Why = len(why) == 0, strings.Join(why, "; ")
		e.r.res.Service = append(e.r.res.Service, ln)
	}
	return nil
}

// consistent: a pool with `up`, `geo` and `weighted` over two endpoints in
// each of A, B and C. Every client namespace, as a resolver, asks every
// PoP's unicast address for the same subnets (IPv6 /56s inside and outside
// the region map, the three IPv4 documentation /24s, and its own address
// without ECS over IPv4 and IPv6): each subnet gets the same answer, and
// the same scope, from every PoP.
func (e *svcEnv) consistent(ctx context.Context) error {
	svcs, err := e.l.StartServices(ServiceSpec{"A", 2}, ServiceSpec{"B", 2}, ServiceSpec{"C", 2})
	if err != nil {
		return err
	}
	defer e.stopServices(svcs)
	eps := endpointsOf(svcs)
	for i := range eps {
		eps[i].Weight = weight(uint32(1 + 2*(i%2)))
	}
	qname, del, err := e.setPool(ctx, "consistent", steer.Pool{TTL: 5, Policy: []string{steer.PolicyUp, steer.PolicyGeo, steer.PolicyWeighted},
		Endpoints: eps, Regions: e.regionMap(), Check: svcCheck(false)})
	if err != nil {
		return err
	}
	defer del()
	var keys []string
	for _, s := range svcs {
		keys = append(keys, s.Addr.String())
	}
	if err := e.waitSteering(ctx, keys, func(down bool, _ *float64, _ string) bool { return !down }, 30*time.Second, "endpoints checked up"); err != nil {
		return err
	}
	// One steering state everywhere before asking.
	versions := map[uint64][]string{}
	for _, p := range e.pops {
		c, err := e.l.Admin(p.Name)
		if err != nil {
			return err
		}
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		if st.Steering != nil {
			versions[st.Steering.Version] = append(versions[st.Steering.Version], p.Name)
		}
	}
	for v, pops := range versions {
		e.r.notef("steering state version %d at %s", v, strings.Join(pops, ", "))
	}
	var subnets []netip.Prefix
	rm := e.regionMap()
	var inMap []netip.Prefix
	for _, k := range slices.Sorted(maps.Keys(rm)) {
		inMap = append(inMap, netip.MustParsePrefix(k))
	}
	for i := range 30 {
		base := inMap[i%len(inMap)].Addr().As16()
		base[6], base[7] = byte(i), 0
		subnets = append(subnets, netip.PrefixFrom(netip.AddrFrom16(base), steer.MaxV6Bits))
	}
	for i := range 10 {
		a := netip.MustParseAddr("2001:db8:5000::").As16()
		a[5] = byte(i)
		subnets = append(subnets, netip.PrefixFrom(netip.AddrFrom16(a), steer.MaxV6Bits))
	}
	for _, s := range []string{"192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"} {
		subnets = append(subnets, netip.MustParsePrefix(s))
	}
	type ask struct {
		client string
		ecs    netip.Prefix
		v6     bool
	}
	var asks []ask
	var qs []svcAsk
	for _, c := range e.l.NodesByRole(RoleClient) {
		for _, sn := range subnets {
			asks = append(asks, ask{c.Name, sn, true})
		}
		asks = append(asks, ask{c.Name, netip.Prefix{}, false}, ask{c.Name, netip.Prefix{}, true})
	}
	for _, a := range asks {
		for _, p := range e.pops {
			dst := p.Addr4
			if a.v6 {
				dst = p.Addr6
			}
			qs = append(qs, svcAsk{from: a.client, v6: a.v6, dst: dst, pop: p.Name, ecs: a.ecs})
		}
	}
	answers, err := e.askMany(ctx, qs, qname, 1, 4)
	if err != nil {
		return err
	}
	type acc struct {
		queries, lost, subnets, mismatches int
		own                                []string
		why                                []string
	}
	byClient := map[string]*acc{}
	for i, a := range asks {
		c := byClient[a.client]
		if c == nil {
			c = &acc{}
			byClient[a.client] = c
		}
		c.subnets++
		seen := map[string][]string{}
		for j, p := range e.pops {
			ans := answers[i*len(e.pops)+j][0]
			c.queries++
			if !ans.ok() {
				c.lost++
				continue
			}
			k := ans.set() + " scope " + scopeString(ans.scope)
			seen[k] = append(seen[k], p.Name)
		}
		if len(seen) > 1 {
			c.mismatches++
			var parts []string
			for k, ps := range seen {
				parts = append(parts, strings.Join(ps, "+")+": "+k)
			}
			slices.Sort(parts)
			what := "no ECS"
			if a.ecs.IsValid() {
				what = a.ecs.String()
			}
			c.why = append(c.why, what+" → "+strings.Join(parts, " / "))
		}
		if !a.ecs.IsValid() {
			for k := range seen {
				fam := "IPv4"
				if a.v6 {
					fam = "IPv6"
				}
				c.own = append(c.own, fam+" "+strings.TrimSuffix(k, " scope none"))
			}
		}
	}
	for _, c := range e.l.NodesByRole(RoleClient) {
		a := byClient[c.Name]
		mm := a.mismatches
		ln := ServiceLine{Scenario: e.r.res.Scenario, Client: c.Name, PoP: "all", ECS: fmt.Sprintf("%d subnets and none", len(subnets)),
			Answer: strings.Join(a.own, "; "), Expected: "one answer per subnet from " + strings.Join(nodeNames(e.pops), ", "),
			Queries: a.queries, Lost: a.lost, Subnets: a.subnets, Mismatches: &mm}
		var why []string
		if a.lost > 0 {
			why = append(why, fmt.Sprintf("%d lost", a.lost))
		}
		if mm > 0 {
			why = append(why, fmt.Sprintf("%d subnets answered differently: %s", mm, strings.Join(a.why[:min(3, len(a.why))], "; ")))
		}
		ln.OK, ln.Why = len(why) == 0, strings.Join(why, "; ")
		e.r.res.Service = append(e.r.res.Service, ln)
	}
	return nil
}

// latency: a pool with `up` and `latency` over one endpoint in A and one
// in C, and the region map. The monitors' HTTP checks measure each
// endpoint's RTT from each region; a client gets the endpoint with the
// lowest RTT from its region. A's clients are next to A's endpoint and C's
// to C's; B's sit between, and follow the link delays: with A—B 1 ms and
// B—C 25 ms they get A's endpoint, with A—B 25 ms and B—C 1 ms C's, and
// back. Every client is asked over IPv6 (placed by its /48) at every PoP's
// unicast address; the expected endpoint is the lowest monitor RTT from
// its region, which must also be the lowest path delay of the lab's links.
func (e *svcEnv) latency(ctx context.Context) error {
	svcs, err := e.l.StartServices(ServiceSpec{"A", 1}, ServiceSpec{"C", 1})
	if err != nil {
		return err
	}
	defer e.stopServices(svcs)
	ab, err := e.l.LinkDelay("A", "B")
	if err != nil {
		return err
	}
	bc, err := e.l.LinkDelay("B", "C")
	if err != nil {
		return err
	}
	defer func() {
		for _, r := range []struct {
			a, b string
			d    time.Duration
		}{{"A", "B", ab}, {"B", "C", bc}} {
			if err := e.l.SetLinkDelay(r.a, r.b, r.d); err != nil {
				e.r.notef("restore the delay of %s—%s: %v", r.a, r.b, err)
			}
		}
	}()
	const near, far = time.Millisecond, 25 * time.Millisecond
	phases := []struct{ ab, bc time.Duration }{{near, far}, {far, near}, {near, far}}
	if err := e.setDelays(ctx, phases[0].ab, phases[0].bc); err != nil {
		return err
	}
	qname, del, err := e.setPool(ctx, "latency", steer.Pool{TTL: 5, Policy: []string{steer.PolicyUp, steer.PolicyLatency}, Endpoints: endpointsOf(svcs),
		Regions: e.regionMap(), Check: svcCheck(false)})
	if err != nil {
		return err
	}
	defer del()
	clients := e.regionClients()
	prev := map[string]string{}
	for pi, ph := range phases {
		phase := fmt.Sprintf("A-B %s, B-C %s", ph.ab, ph.bc)
		// The time of the change: setDelays checks it with a ping after.
		t0 := time.Now()
		if pi > 0 {
			if err := e.setDelays(ctx, ph.ab, ph.bc); err != nil {
				return err
			}
		}
		// Wait until the monitors' RTTs agree with the links and every
		// client's answer follows, at every PoP.
		wait := 30 * time.Second
		if pi > 0 {
			wait = 15 * time.Second
		}
		deadline := t0.Add(wait)
		followed := map[string]*float64{}
		var rtts map[string]map[string]float64
		var want map[string]string
		for {
			rtts, err = e.endpointRTTs(ctx, qname)
			if err != nil {
				return err
			}
			want = map[string]string{}
			agree := true
			for _, c := range clients {
				byRTT := lowestOf(rtts[c.Region])
				byPath := e.nearestService(c.Name, svcs)
				want[c.Name] = byRTT
				agree = agree && byRTT == byPath && e.rttsFresh(c.Name, rtts[c.Region], svcs)
			}
			if agree {
				for _, c := range clients {
					if followed[c.Name] != nil {
						continue
					}
					as, err := e.askEvery(c.Name, qname)
					if err != nil {
						return err
					}
					all := true
					for _, a := range as {
						all = all && a.ok() && a.set() == want[c.Name]
					}
					if all {
						followed[c.Name] = ms(time.Since(t0))
					}
				}
			}
			if len(followed) == len(clients) {
				break
			}
			if time.Now().After(deadline) {
				break
			}
			if err := sleep(ctx, 100*time.Millisecond); err != nil {
				return err
			}
		}
		// The figures: every client asks every PoP 10 times.
		for _, c := range clients {
			var as []steerAnswer
			for range 10 {
				x, err := e.askEvery(c.Name, qname)
				if err != nil {
					return err
				}
				as = append(as, x...)
			}
			sets, _, lost := summarizeSteer(as)
			rtt := map[string]float64{}
			for k, v := range rtts[c.Region] {
				rtt[k] = v
			}
			ln := ServiceLine{Scenario: e.r.res.Scenario, Client: c.Name, PoP: "all", Phase: phase, Answer: strings.Join(sets, " | "),
				Expected: want[c.Name], Queries: len(as), Lost: lost, RTTMS: rtt}
			if pi > 0 && prev[c.Name] != want[c.Name] {
				ln.SwitchMS = followed[c.Name]
			}
			var why []string
			if byPath := e.nearestService(c.Name, svcs); want[c.Name] != byPath {
				why = append(why, fmt.Sprintf("lowest monitor RTT %s, lowest path delay %s", orDash(want[c.Name]), byPath))
			}
			if lost > 0 {
				why = append(why, fmt.Sprintf("%d lost", lost))
			}
			if len(sets) != 1 || sets[0] != want[c.Name] {
				why = append(why, "answer "+ln.Answer)
			}
			if followed[c.Name] == nil {
				why = append(why, fmt.Sprintf("did not follow within %s", wait))
			}
			ln.OK, ln.Why = len(why) == 0, strings.Join(why, "; ")
			e.r.res.Service = append(e.r.res.Service, ln)
			prev[c.Name] = want[c.Name]
		}
	}
	return nil
}

// setDelays sets the delays of the links A—B and B—C and checks them with
// a ping from A's client to C's (the sum, both ways).
func (e *svcEnv) setDelays(ctx context.Context, ab, bc time.Duration) error {
	if err := e.l.SetLinkDelay("A", "B", ab); err != nil {
		return err
	}
	if err := e.l.SetLinkDelay("B", "C", bc); err != nil {
		return err
	}
	c, err := e.l.plan.node(nodeName("C", "client"))
	if err != nil {
		return err
	}
	// Packets queued under the old delay drain first.
	if err := sleep(ctx, 100*time.Millisecond); err != nil {
		return err
	}
	pr, err := e.l.Ping(ctx, nodeName("A", "client"), c.Addr4, 3, 20*time.Millisecond, time.Second)
	if err != nil {
		return err
	}
	if len(pr.RTTs) == 0 {
		return errors.New("no ping answer from C-client to A-client after the delays changed")
	}
	e.r.notef("links A—B %s and B—C %s one way: ping A-client → C-client min %s (want at least %s)", ab, bc, pr.Min().Round(100*time.Microsecond), 2*(ab+bc))
	if pr.Min() < 2*(ab+bc) {
		return fmt.Errorf("ping A-client → C-client %s, below the links' %s: the delays did not change", pr.Min(), 2*(ab+bc))
	}
	return nil
}

// askEvery asks every PoP's unicast IPv6 address once from client.
func (e *svcEnv) askEvery(client, qname string) ([]steerAnswer, error) {
	a, err := e.l.newAsker(client, true)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	var out []steerAnswer
	for _, p := range e.pops {
		x, err := a.ask(p.Addr6, qname, netip.Prefix{}, svcAskTimeout)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, nil
}

// endpointRTTs is the monitors' RTT to each endpoint of the pool at qname,
// by vantage point (region) and endpoint, from the control plane's fleet
// view.
func (e *svcEnv) endpointRTTs(ctx context.Context, qname string) (map[string]map[string]float64, error) {
	v, err := e.c.Fleet(ctx, ServiceZone)
	if err != nil {
		return nil, fmt.Errorf("fleet view: %w", err)
	}
	out := map[string]map[string]float64{}
	for _, p := range v.Steering.Pools {
		if p.Pool != qname+"/A" {
			continue
		}
		for _, vt := range p.Vantages {
			if vt.Stale || vt.State != "up" || vt.RTTms <= 0 {
				continue
			}
			if out[vt.Vantage] == nil {
				out[vt.Vantage] = map[string]float64{}
			}
			out[vt.Vantage][p.Endpoint] = vt.RTTms
		}
	}
	return out, nil
}

// rttsFresh tells whether the monitor at node has an RTT to every
// service of at least the round trip of the path to it: an HTTP check
// takes one round trip at least, so an RTT under it was measured before
// the link delays changed.
func (e *svcEnv) rttsFresh(node string, rtt map[string]float64, svcs []*Service) bool {
	e.l.mu.Lock()
	dist := e.l.plan.delays(node)
	e.l.mu.Unlock()
	for _, s := range svcs {
		v, ok := rtt[s.Addr.String()]
		if !ok || time.Duration(v*float64(time.Millisecond)) < 2*dist[s.Node] {
			return false
		}
	}
	return true
}

// lowestOf is the key with the lowest value ("" for none).
func lowestOf(m map[string]float64) string {
	best := ""
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if best == "" || m[k] < m[best] {
			best = k
		}
	}
	return best
}

// nearestService is the address of the service with the lowest path delay
// from node over the lab's links ("" on a tie).
func (e *svcEnv) nearestService(node string, svcs []*Service) string {
	e.l.mu.Lock()
	dist := e.l.plan.delays(node)
	e.l.mu.Unlock()
	var best *Service
	var bestD time.Duration
	tie := false
	for _, s := range svcs {
		d, ok := dist[s.Node]
		switch {
		case !ok:
		case best == nil || d < bestD:
			best, bestD, tie = s, d, false
		case d == bestD:
			tie = true
		}
	}
	if best == nil || tie {
		return ""
	}
	return best.Addr.String()
}
