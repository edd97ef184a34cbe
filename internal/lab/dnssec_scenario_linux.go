package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/apiclient"
)

// rolloverWait bounds one rollover, from the call that starts it to the
// old keys' leaving every PoP.
const rolloverWait = 2 * time.Minute

// newKeyWait bounds the wait for a rollover's first new key after the
// API call that starts it: longer than the signing task's longest sleep.
const newKeyWait = 75 * time.Second

// findUnbound returns the unbound binary: on $PATH, else Debian's.
func findUnbound() (string, error) {
	if p, err := exec.LookPath("unbound"); err == nil {
		return p, nil
	}
	const debian = "/usr/sbin/unbound"
	if _, err := os.Stat(debian); err == nil {
		return debian, nil
	}
	return "", errors.New("dnssec-rollover needs the validating resolver unbound (Debian package unbound)")
}

// rolloverDriver plays the parent's operator and watches the child's keys.
type rolloverDriver struct {
	l    *Lab
	c    *apiclient.Client
	pops []*Node
	run  *scenarioRun
	// parentDS is the DS RRset the parent publishes for the child.
	parentDS []string
	// Counts for the line of the rollover under way.
	dsUpdates, dsSeen int
}

// dnssecRollover is the dnssec-rollover scenario (see dnssec_scenario.go).
func (l *Lab) dnssecRollover(ctx context.Context, o ScenarioOptions) (_ *Result, err error) {
	const name = "dnssec-rollover"
	if l.ctl == nil {
		return nil, ErrNoControl
	}
	unbound, err := findUnbound()
	if err != nil {
		return nil, err
	}
	run := newRun(name, o.Progress)
	if err := l.WaitSettled(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	c, err := l.Control()
	if err != nil {
		return nil, err
	}
	anycast, err := l.anycastAddr(false)
	if err != nil {
		return nil, err
	}
	d := &rolloverDriver{l: l, c: c, run: run}
	for _, n := range l.NodesByRole(RolePoP) {
		if p := l.NodeProcess(n.Name); p != nil && p.Running() {
			d.pops = append(d.pops, n)
		}
	}
	if len(d.pops) == 0 {
		return nil, fmt.Errorf("%s: no PoP runs anycastd", name)
	}
	clients := l.clientNames()
	if len(clients) == 0 {
		return nil, fmt.Errorf("%s: the lab has no client to run the resolver in", name)
	}

	// A clean start: zones left by an interrupted run go first.
	for _, z := range []string{DNSSECZone, DNSSECParentZone} {
		if err := c.DeleteZone(ctx, z); err != nil && !errors.Is(err, apiclient.ErrNotFound) {
			return nil, fmt.Errorf("%s: delete old %s: %w", name, z, err)
		}
	}
	parentRecs, childRecs := rolloverZones(anycast)
	for _, z := range []struct {
		name string
		recs []string
	}{{DNSSECParentZone, parentRecs}, {DNSSECZone, childRecs}} {
		if _, err := c.CreateZone(ctx, api.CreateZone{Name: z.name, Records: z.recs}); err != nil {
			return nil, fmt.Errorf("%s: create %s: %w", name, z.name, err)
		}
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for _, z := range []string{DNSSECZone, DNSSECParentZone} {
			if derr := c.DeleteZone(dctx, z); derr != nil {
				err = errors.Join(err, fmt.Errorf("%s: delete %s: %w", name, z, derr))
			}
		}
	}()
	pp, err := parentPolicy()
	if err != nil {
		return nil, err
	}
	pst, err := c.SetDNSSEC(ctx, DNSSECParentZone, api.PutDNSSEC{Enabled: true, Settings: pp})
	if err != nil {
		return nil, fmt.Errorf("%s: sign %s: %w", name, DNSSECParentZone, err)
	}
	anchor, err := parentAnchor(pst)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cp, err := rolloverPolicy(rolloverAlgorithms[0], 0, 0)
	if err != nil {
		return nil, err
	}
	cst, err := c.SetDNSSEC(ctx, DNSSECZone, api.PutDNSSEC{Enabled: true, Settings: cp})
	if err != nil {
		return nil, fmt.Errorf("%s: sign %s: %w", name, DNSSECZone, err)
	}
	t0 := time.Now()
	for _, st := range []api.DNSSECStatus{pst, cst} {
		if err := d.waitPoPs(ctx, st.Zone, dns.TypeSOA, servesSOA(st.Serial), 30*time.Second); err != nil {
			return nil, fmt.Errorf("%s: signed %s not served by every PoP: %w", name, st.Zone, err)
		}
	}
	if err := d.followCDS(ctx); err != nil {
		return nil, fmt.Errorf("%s: the parent's first DS: %w", name, err)
	}
	run.notef("%s (CSK, the resolver's trust anchor) and %s (KSK %s + ZSK %s, CDS) signed through the API, TTLs %s; the parent's DS, from the child's CDS, served by every PoP %s later",
		DNSSECParentZone, DNSSECZone, keysOf(cst, "ksk"), keysOf(cst, "zsk"), rolloverTTL, time.Since(t0).Round(time.Millisecond))

	// A validating resolver in every client's namespace: each reaches the
	// anycast address at the PoP its client's catchment gives.
	anchorFile := filepath.Join(l.Dir, "unbound.anchor")
	if err := os.WriteFile(anchorFile, []byte(anchor+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("%s: trust anchor: %w", name, err)
	}
	rs := &resolvers{}
	defer func() {
		if serr := rs.stop(); serr != nil {
			err = errors.Join(err, fmt.Errorf("%s: %w", name, serr))
		}
	}()
	for _, client := range clients {
		r, err := l.startResolver(ctx, unbound, client, anycast, anchorFile)
		if r != nil {
			rs.all = append(rs.all, r)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	run.notef("unbound in %s validates %s from the anchor %s, stubs to %s, cache TTLs ≤ %s; %d queries/s to each from its client",
		strings.Join(clients, ", "), DNSSECZone, anchor, anycast, rolloverTTL, rolloverRate)
	for _, r := range rs.all {
		r.rc.start(rolloverRate)
	}

	alg := rolloverAlgorithms[0]
	steady, err := rolloverPolicy(alg, 0, 0)
	if err != nil {
		return nil, err
	}
	for _, kind := range Rollovers {
		var start json.RawMessage
		var old func(api.DNSSECKey) bool
		switch kind {
		case "zsk":
			start, err = rolloverPolicy(alg, rolloverLifetime, 0)
			old = func(k api.DNSSECKey) bool { return k.Role == "zsk" }
		case "ksk":
			start, err = rolloverPolicy(alg, 0, rolloverLifetime)
			old = func(k api.DNSSECKey) bool { return k.Role == "ksk" }
		case "algorithm":
			alg = rolloverAlgorithms[1]
			start, err = rolloverPolicy(alg, 0, 0)
			steady = nil
			old = func(api.DNSSECKey) bool { return true }
		}
		if err != nil {
			return nil, err
		}
		line, err := d.rollover(ctx, rs, kind, start, steady, old)
		if errors.Is(err, errRolloverRefused) {
			run.notef("%s rollover: %v; no line", kind, err)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %s rollover: %w", name, kind, err)
		}
		line.Client = strings.Join(clients, ",")
		run.res.Rollover = append(run.res.Rollover, line)
	}
	for _, r := range rs.all {
		if err := r.rc.err(); err != nil {
			return nil, fmt.Errorf("%s: resolver client in %s: %w", name, r.client, err)
		}
		if n := countLines(r.ub.Log, "validation failure"); n > 0 {
			run.notef("unbound in %s logged %d validation failures (val-log-level 2, %s)", r.client, n, r.ub.Log)
		} else {
			run.notef("unbound in %s logged no validation failure (val-log-level 2)", r.client)
		}
	}
	return run.done(), nil
}

// resolver is unbound in a client's namespace and the client asking it.
type resolver struct {
	client string
	ub     *Process
	rc     *resolverClient
}

// resolvers are the scenario's resolvers.
type resolvers struct{ all []*resolver }

// results returns the outcomes of every resolver's queries so far.
func (rs *resolvers) results() []resolverResult {
	var out []resolverResult
	for _, r := range rs.all {
		out = append(out, r.rc.results()...)
	}
	return out
}

// stop ends the queries and stops every unbound (by its PID).
func (rs *resolvers) stop() error {
	var errs []error
	for _, r := range rs.all {
		if r.rc != nil {
			r.rc.stop()
			r.rc.close()
		}
		if err := r.ub.Stop(3 * time.Second); err != nil {
			errs = append(errs, fmt.Errorf("stop unbound in %s (pid %d): %w", r.client, r.ub.PID, err))
		}
	}
	return errors.Join(errs...)
}

// startResolver writes unbound's configuration for client, checks it,
// starts unbound in the client's namespace and waits until it validates
// the child. The resolver it returns (also with an error, once unbound
// runs) must be stopped.
func (l *Lab) startResolver(ctx context.Context, unbound, client string, anycast netip.Addr, anchorFile string) (*resolver, error) {
	conf := filepath.Join(l.Dir, "unbound."+client+".conf")
	if err := os.WriteFile(conf, []byte(unboundConfig(l.Dir, client, anycast, anchorFile)), 0o644); err != nil {
		return nil, fmt.Errorf("unbound config: %w", err)
	}
	if chk, err := exec.LookPath("unbound-checkconf"); err == nil {
		if out, err := exec.CommandContext(ctx, chk, conf).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("unbound-checkconf %s: %w: %s", conf, err, out)
		}
	}
	ub, err := l.startIn(client, "process", []string{unbound, "-d", "-c", conf})
	if ub == nil {
		return nil, fmt.Errorf("unbound in %s: %w", client, err)
	}
	r := &resolver{client: client, ub: ub}
	if err != nil {
		return r, fmt.Errorf("unbound in %s: %w", client, err)
	}
	if r.rc, err = l.newResolverClient(client); err != nil {
		return r, err
	}
	if err := r.rc.waitValidated(ctx, ub, 20*time.Second); err != nil {
		return r, fmt.Errorf("unbound in %s (log %s): %w", client, ub.Log, err)
	}
	return r, nil
}

// errRolloverRefused: the control plane would not start the rollover (an
// algorithm change it does not roll).
var errRolloverRefused = errors.New("the control plane refuses the policy change")

// rollover runs one rollover: the policy start (then steady, when given,
// so that one rollover runs and not one per lifetime), the parent
// following the CDS and the DS confirmed as the keys ask, until the keys
// old selects and their signatures have left every PoP; then one TTL
// more.
func (d *rolloverDriver) rollover(ctx context.Context, rs *resolvers, kind string, start, steady json.RawMessage, old func(api.DNSSECKey) bool) (RolloverLine, error) {
	line := RolloverLine{Scenario: "dnssec-rollover", Rollover: kind}
	d.dsUpdates, d.dsSeen = 0, 0
	before, err := d.c.DNSSEC(ctx, DNSSECZone)
	if err != nil {
		return line, err
	}
	known := map[uint16]bool{}
	var olds []api.DNSSECKey
	for _, k := range before.Keys {
		known[k.Tag] = true
		if old(k) && k.State != "removed" {
			olds = append(olds, k)
		}
	}
	t0 := time.Now()
	if _, err := d.c.SetDNSSEC(ctx, DNSSECZone, api.PutDNSSEC{Enabled: true, Settings: start}); err != nil {
		if errors.Is(err, apiclient.ErrConflict) || errors.Is(err, apiclient.ErrInvalid) {
			return line, fmt.Errorf("%w: %w", errRolloverRefused, err)
		}
		return line, fmt.Errorf("start: %w", err)
	}
	var news []api.DNSSECKey
	// The signing task starts it at once (an API change wakes it); a
	// control plane whose task does not wake looks within a minute.
	for deadline := time.Now().Add(newKeyWait); len(news) == 0; {
		st, err := d.c.DNSSEC(ctx, DNSSECZone)
		if err != nil {
			return line, err
		}
		for _, k := range st.Keys {
			if !known[k.Tag] {
				news = append(news, k)
			}
		}
		if len(news) > 0 {
			break
		}
		if time.Now().After(deadline) {
			return line, fmt.Errorf("no new key %s after the policy change (next event %v: %s)", newKeyWait, st.NextEvent, st.NextEventKind)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return line, err
		}
	}
	if steady != nil {
		if _, err := d.c.SetDNSSEC(ctx, DNSSECZone, api.PutDNSSEC{Enabled: true, Settings: steady}); err != nil {
			return line, fmt.Errorf("back to lifetimes of 0: %w", err)
		}
	}
	line.Keys = describeKeys(olds) + " → " + describeKeys(news)
	d.run.notef("%s rollover: new %s in the zone's keys %s after the policy change", kind, describeKeys(news), time.Since(t0).Round(time.Millisecond))
	oldTags := map[uint16]bool{}
	for _, k := range olds {
		oldTags[k.Tag] = true
	}
	for deadline := t0.Add(rolloverWait); ; {
		if err := d.followCDS(ctx); err != nil {
			return line, err
		}
		if err := d.confirmDS(ctx); err != nil {
			return line, err
		}
		gone, err := d.goneFromPoPs(ctx, oldTags)
		if err != nil {
			return line, err
		}
		if gone {
			break
		}
		if time.Now().After(deadline) {
			st, _ := d.c.DNSSEC(ctx, DNSSECZone)
			return line, fmt.Errorf("old keys %s still served %s after the start (keys now: %s; next event %v: %s)",
				describeKeys(olds), rolloverWait, describeKeys(st.Keys), st.NextEvent, st.NextEventKind)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return line, err
		}
	}
	// The parent drops the old DS as the CDS does.
	if err := d.followCDS(ctx); err != nil {
		return line, err
	}
	gone := time.Now()
	d.run.notef("%s rollover: %s and their signatures gone from every PoP %s after the start; the parent's DS changed %d times, %d DS confirmed (ds-seen)",
		kind, describeKeys(olds), gone.Sub(t0).Round(time.Millisecond), d.dsUpdates, d.dsSeen)
	// The resolver's caches hold the old RRsets one TTL more.
	if err := sleep(ctx, rolloverTTL+time.Second); err != nil {
		return line, err
	}
	line.DSUpdates, line.DSSeen = d.dsUpdates, d.dsSeen
	for _, f := range tallyRollover(&line, rs.results(), t0, time.Now()) {
		d.run.notef("%s rollover: %s", kind, f)
	}
	return line, nil
}

// followCDS makes the parent follow the child's CDS RRset as a PoP serves
// it: when it differs from the parent's DS RRset, the DS RRset is replaced
// through the API and the call waits until every PoP serves it.
func (d *rolloverDriver) followCDS(ctx context.Context) error {
	m, err := d.l.askPoP(ctx, d.pops[0], DNSSECZone, dns.TypeCDS)
	if err != nil {
		return err
	}
	if m.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("%s CDS from %s: %s", DNSSECZone, d.pops[0].Name, dns.RcodeToString[m.Rcode])
	}
	ds := cdsToDS(m.Answer)
	if len(ds) == 0 || slices.Equal(ds, d.parentDS) {
		return nil
	}
	ttl := uint32(rolloverTTL.Seconds())
	if _, err := d.c.PutRRset(ctx, DNSSECParentZone, DNSSECZone, "DS", api.PutRRset{TTL: &ttl, Records: ds}, ""); err != nil {
		return fmt.Errorf("the parent's DS RRset: %w", err)
	}
	err = d.waitPoPs(ctx, DNSSECZone, dns.TypeDS, func(m *dns.Msg) bool { return slices.Equal(dsRecords(m.Answer), ds) }, 15*time.Second)
	if err != nil {
		return fmt.Errorf("the parent's new DS RRset: %w", err)
	}
	d.parentDS = ds
	d.dsUpdates++
	return nil
}

// confirmDS tells the control plane (ds-seen) of every key that waits for
// its DS once the parent publishes it at every PoP.
func (d *rolloverDriver) confirmDS(ctx context.Context) error {
	st, err := d.c.DNSSEC(ctx, DNSSECZone)
	if err != nil {
		return err
	}
	for _, k := range st.Keys {
		if !strings.Contains(k.State, "waiting for its DS") {
			continue
		}
		rr, err := dns.NewRR(k.DS)
		if err != nil {
			return fmt.Errorf("the DS of key %d (%q): %w", k.Tag, k.DS, err)
		}
		if !slices.Contains(d.parentDS, dsRecords([]dns.RR{rr})[0]) {
			continue // the parent does not have it yet
		}
		if _, err := d.c.DSSeen(ctx, DNSSECZone, k.Tag); err != nil {
			return fmt.Errorf("ds-seen %d: %w", k.Tag, err)
		}
		d.dsSeen++
		d.run.notef("DS of key %d at every PoP of the parent: confirmed (ds-seen)", k.Tag)
	}
	return nil
}

// goneFromPoPs reports whether no PoP serves a key of tags in the child's
// DNSKEY RRset, or a signature by one over the DNSKEY or SOA RRset (an
// algorithm rollover removes the old signatures after the old keys).
func (d *rolloverDriver) goneFromPoPs(ctx context.Context, tags map[uint16]bool) (bool, error) {
	for _, n := range d.pops {
		for _, t := range []uint16{dns.TypeDNSKEY, dns.TypeSOA} {
			m, err := d.l.askPoP(ctx, n, DNSSECZone, t)
			if err != nil {
				return false, err
			}
			for _, rr := range m.Answer {
				switch v := rr.(type) {
				case *dns.DNSKEY:
					if tags[v.KeyTag()] {
						return false, nil
					}
				case *dns.RRSIG:
					if tags[v.KeyTag] {
						return false, nil
					}
				}
			}
		}
	}
	return true, nil
}

// waitPoPs asks every PoP until each answers qname/qtype to match's
// liking, or timeout passes.
func (d *rolloverDriver) waitPoPs(ctx context.Context, qname string, qtype uint16, match func(*dns.Msg) bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	left := slices.Clone(d.pops)
	for {
		var still []*Node
		var last string
		for _, n := range left {
			m, err := d.l.askPoP(ctx, n, qname, qtype)
			switch {
			case err != nil:
				last = fmt.Sprintf("%s: %v", n.Name, err)
			case !match(m):
				last = fmt.Sprintf("%s: %s", n.Name, summarize(m))
			default:
				continue
			}
			still = append(still, n)
		}
		if len(still) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s %s not served as wanted after %s (%s)", qname, dns.TypeToString[qtype], timeout, last)
		}
		left = still
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// askPoP asks a PoP at its unicast address from its own namespace, with
// DNSSEC records (DO) and TCP after a truncated answer.
func (l *Lab) askPoP(ctx context.Context, n *Node, qname string, qtype uint16) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(qname, qtype)
	q.RecursionDesired = false
	q.SetEdns0(4096, true)
	dial := dialIn(namespacePath(n.Namespace))
	addr := netip.AddrPortFrom(n.Addr4, DNSPort).String()
	for _, network := range []string{"udp", "tcp"} {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := dial(cctx, network, addr)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("ask %s over %s: %w", n.Name, network, err)
		}
		co := &dns.Conn{Conn: conn, UDPSize: 4096}
		_ = co.SetDeadline(time.Now().Add(time.Second))
		q.Id = dns.Id()
		err = co.WriteMsg(q)
		var m *dns.Msg
		if err == nil {
			m, err = co.ReadMsg()
		}
		_ = co.Close()
		if err != nil {
			return nil, fmt.Errorf("ask %s %s %s over %s: %w", n.Name, qname, dns.TypeToString[qtype], network, err)
		}
		if !m.Truncated {
			return m, nil
		}
	}
	return nil, fmt.Errorf("ask %s %s %s: truncated over TCP", n.Name, qname, dns.TypeToString[qtype])
}

// dsRecords returns the DS records of rrs as cdsToDS writes them.
func dsRecords(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if ds, ok := rr.(*dns.DS); ok {
			out = append(out, fmt.Sprintf("%d %d %d %s", ds.KeyTag, ds.Algorithm, ds.DigestType, strings.ToUpper(ds.Digest)))
		}
	}
	slices.Sort(out)
	return out
}

// parentAnchor is the trust anchor of the resolver: the DS of the
// parent's CSK, in zone-file form.
func parentAnchor(st api.DNSSECStatus) (string, error) {
	for _, k := range st.Keys {
		if k.DS == "" {
			continue
		}
		rr, err := dns.NewRR(k.DS)
		if err != nil {
			return "", fmt.Errorf("the DS of %s's key %d (%q): %w", st.Zone, k.Tag, k.DS, err)
		}
		ds, ok := rr.(*dns.DS)
		if !ok {
			return "", fmt.Errorf("the DS of %s's key %d is a %s", st.Zone, k.Tag, dns.TypeToString[rr.Header().Rrtype])
		}
		return fmt.Sprintf("%s IN DS %d %d %d %s", st.Zone, ds.KeyTag, ds.Algorithm, ds.DigestType, strings.ToUpper(ds.Digest)), nil
	}
	return "", fmt.Errorf("%s has no key with a DS", st.Zone)
}

// keysOf lists the tags of the keys of a role.
func keysOf(st api.DNSSECStatus, role string) string {
	var ks []api.DNSSECKey
	for _, k := range st.Keys {
		if k.Role == role {
			ks = append(ks, k)
		}
	}
	return describeKeys(ks)
}

// describeKeys writes keys as "zsk 12345/ECDSAP256SHA256, ...".
func describeKeys(ks []api.DNSSECKey) string {
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s %d/%s", k.Role, k.Tag, k.Algorithm))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// countLines counts the lines of a file that hold s.
func countLines(path, s string) int {
	b, err := os.ReadFile(path) //nolint:gosec // a log file of the lab's own
	if err != nil {
		return 0
	}
	return strings.Count(string(b), s)
}

// resolverClient queries the resolver on its namespace's loopback, one
// query at a time, and keeps every outcome.
type resolverClient struct {
	client string
	conn   *net.UDPConn
	buf    []byte
	n      int

	mu   sync.Mutex
	res  []resolverResult
	fail error

	quit, done chan struct{}
}

func (l *Lab) newResolverClient(client string) (*resolverClient, error) {
	n, err := l.plan.node(client)
	if err != nil {
		return nil, err
	}
	var conn *net.UDPConn
	err = inNamespace(namespacePath(n.Namespace), func() error {
		var err error
		conn, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), unboundPort)))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("resolver client in %s: %w", client, err)
	}
	return &resolverClient{client: client, conn: conn, buf: make([]byte, 65535)}, nil
}

func (r *resolverClient) close() { _ = r.conn.Close() }

// resolverTimeout is how long the resolver may take to answer.
const resolverTimeout = 3 * time.Second

// ask sends q (RD, DO and AD set) and classifies the answer; an error
// means it could not be sent.
func (r *resolverClient) ask(q resolverQuery) (resolverResult, error) {
	r.n++
	name := q.name
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		name = fmt.Sprintf("nx%d-%04x.%s", r.n, rand.Uint32()&0xffff, rest) //nolint:gosec // a label that does not exist, not a secret
	}
	m := new(dns.Msg)
	m.SetQuestion(name, q.qtype)
	m.RecursionDesired = true
	m.AuthenticatedData = true
	m.SetEdns0(4096, true)
	m.Id = dns.Id()
	wire, err := m.Pack()
	if err != nil {
		return resolverResult{}, err
	}
	res := resolverResult{sent: time.Now()}
	what := name + " " + dns.TypeToString[q.qtype]
	if _, err := r.conn.Write(wire); err != nil {
		return res, fmt.Errorf("query %s to the resolver: %w", what, err)
	}
	_ = r.conn.SetReadDeadline(res.sent.Add(resolverTimeout))
	var ans *dns.Msg
	for {
		n, err := r.conn.Read(r.buf)
		if err != nil {
			break // timeout (or the resolver's port closed): lost
		}
		a := new(dns.Msg)
		if a.Unpack(r.buf[:n]) == nil && a.Id == m.Id {
			ans = a
			break
		}
	}
	res.outcome = resolverOutcome(q, ans)
	res.detail = what
	if ans != nil {
		res.detail += fmt.Sprintf(": %s ad=%v", dns.RcodeToString[ans.Rcode], ans.AuthenticatedData)
	}
	return res, nil
}

// waitValidated asks for the child's www until an answer validates.
func (r *resolverClient) waitValidated(ctx context.Context, ub *Process, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		select {
		case <-ub.Done():
			return fmt.Errorf("exited: %w", ub.Wait())
		default:
		}
		res, err := r.ask(resolverQueries[0])
		if err != nil {
			last = err.Error()
		} else if res.outcome == outValidated {
			return nil
		} else {
			last = res.outcome + " " + res.detail
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no validated answer after %s (last: %s)", timeout, last)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

// start queries the resolver rate times a second, going through
// resolverQueries, until stop.
func (r *resolverClient) start(rate int) {
	r.quit, r.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(r.done)
		t := time.NewTicker(time.Second / time.Duration(rate))
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-r.quit:
				return
			case <-t.C:
			}
			res, err := r.ask(resolverQueries[i%len(resolverQueries)])
			r.mu.Lock()
			if err != nil {
				r.fail = err
				r.mu.Unlock()
				return
			}
			r.res = append(r.res, res)
			r.mu.Unlock()
		}
	}()
}

// stop ends the queries (once).
func (r *resolverClient) stop() {
	if r.quit == nil {
		return
	}
	select {
	case <-r.quit:
	default:
		close(r.quit)
	}
	<-r.done
}

// results returns the outcomes so far.
func (r *resolverClient) results() []resolverResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.res)
}

// err is why the queries stopped early, if they did.
func (r *resolverClient) err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fail
}
