package lab

import (
	"bufio"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

//go:embed flood.yaml
var floodTopology []byte

// FloodTopologyYAML returns the embedded topology of the flood scenario,
// the same text as examples/lab/flood.yaml.
func FloodTopologyYAML() []byte { return slices.Clone(floodTopology) }

// FloodTopology parses the embedded flood topology: the default's three
// regions with every PoP on a plain veth pair to its router, so that a
// flood crosses no user-space wire.
func FloodTopology() (*Topology, error) { return ParseTopology("flood.yaml", floodTopology) }

// The attacks of the flood scenario, in the order it runs them.
const (
	// AttackRandomSubdomain asks for random names under the lab's zone
	// ("water torture"), from sources spread over 256 IPv6 /56s so that
	// the per-source limit does not stop it: every query is looked up
	// and answered NXDOMAIN (or RRL-dropped).
	AttackRandomSubdomain = "random-subdomain"
	// AttackReflection sends queries with the victim's address as source
	// (IP_FREEBIND): the PoP's answers go to the victim.
	AttackReflection = "reflection"
	// AttackTCPConn opens TCP connections at a bounded rate up to a bound
	// of open ones, from sources spread over 256 IPv6 /64s: half stay
	// idle, half send a query a byte at a time (slow senders).
	AttackTCPConn = "tcp-conn"
	// AttackGarbage sends malformed packets of several kinds (garbageKinds)
	// from the spread IPv6 sources.
	AttackGarbage = "garbage"
)

// FloodAttacks are the flood scenario's attacks, in order.
var FloodAttacks = []string{AttackRandomSubdomain, AttackReflection, AttackTCPConn, AttackGarbage}

// FloodOptions tune the flood scenario; zero values take the defaults.
type FloodOptions struct {
	// Duration is how long each attack lasts (default 20s).
	Duration time.Duration
	// Baseline is how long the clients query before the first attack,
	// the "normal" their query times are compared with (default 5s).
	Baseline time.Duration
	// Rate is the packets a second of each UDP attack (default 10,000).
	Rate int
	// TCPRate is the connections a second the tcp-conn attack opens
	// (default 500) and TCPOpen the most it holds open at once (default
	// 2,000: twice anycastd's default limits.tcp_max_conns).
	TCPRate, TCPOpen int
	// Attacks are the attacks to run, in order (default FloodAttacks).
	Attacks []string
	// Sweep, when not empty, also floods A-pop with random-subdomain at
	// each of these rates for SweepStep (default 5s) each, stopping at
	// the first rate at which its clients get less than 99 % answered.
	Sweep     []int
	SweepStep time.Duration
	// Server is the DNS server on every PoP: "anycastd" (default, the
	// lab's nodes), or "nsd" or "knot" with their RRL at the lab's rate
	// and slip, for comparison; those need a lab with BIRD as the PoPs'
	// BGP speakers (Options.Speakers), which announce whatever the
	// server does.
	Server string
}

// FloodServers are the servers the flood scenario can put on the PoPs.
var FloodServers = []string{"anycastd", "nsd", "knot"}

// Bounds of one flood: no option can ask for more.
const (
	maxFloodRate     = 500_000
	maxFloodDuration = 10 * time.Minute
	maxTCPOpen       = 20_000
)

func (f FloodOptions) withDefaults() FloodOptions {
	if f.Duration == 0 {
		f.Duration = 20 * time.Second
	}
	if f.Baseline == 0 {
		f.Baseline = 5 * time.Second
	}
	if f.Rate == 0 {
		f.Rate = 10_000
	}
	if f.TCPRate == 0 {
		f.TCPRate = 500
	}
	if f.TCPOpen == 0 {
		f.TCPOpen = 2000
	}
	if len(f.Attacks) == 0 {
		f.Attacks = FloodAttacks
	}
	if f.SweepStep == 0 {
		f.SweepStep = 5 * time.Second
	}
	if f.Server == "" {
		f.Server = "anycastd"
	}
	return f
}

// Validate checks the options (after defaults): every flood is bounded.
func (f FloodOptions) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"duration", f.Duration}, {"baseline", f.Baseline}, {"sweep step", f.SweepStep}} {
		if d.v < 0 || d.v > maxFloodDuration {
			errs = append(errs, fmt.Errorf("flood %s %s: want 0 to %s", d.name, d.v, maxFloodDuration))
		}
	}
	for _, r := range append([]int{f.Rate, f.TCPRate}, f.Sweep...) {
		if r < 0 || r > maxFloodRate {
			errs = append(errs, fmt.Errorf("flood rate %d: want 0 to %d a second", r, maxFloodRate))
		}
	}
	if f.Server != "" && !slices.Contains(FloodServers, f.Server) {
		errs = append(errs, fmt.Errorf("flood server %q: want one of %s", f.Server, strings.Join(FloodServers, ", ")))
	}
	if f.TCPOpen < 0 || f.TCPOpen > maxTCPOpen {
		errs = append(errs, fmt.Errorf("flood open TCP connections %d: want 0 to %d", f.TCPOpen, maxTCPOpen))
	}
	for _, a := range f.Attacks {
		if !slices.Contains(FloodAttacks, a) {
			errs = append(errs, fmt.Errorf("flood attack %q: want one of %s", a, strings.Join(FloodAttacks, ", ")))
		}
	}
	return errors.Join(errs...)
}

// ParseAttacks reads a comma-separated list of attacks ("" or "all": every
// one).
func ParseAttacks(s string) ([]string, error) {
	if s == "" || s == "all" {
		return slices.Clone(FloodAttacks), nil
	}
	var out []string
	for a := range strings.SplitSeq(s, ",") {
		a = strings.TrimSpace(a)
		if !slices.Contains(FloodAttacks, a) {
			return nil, fmt.Errorf("attack %q: want one of %s", a, strings.Join(FloodAttacks, ", "))
		}
		out = append(out, a)
	}
	return out, nil
}

// ParseRates reads a comma-separated list of rates ("1000,5000,20000").
func ParseRates(s string) ([]int, error) {
	if s == "" {
		return nil, nil
	}
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		var r int
		if _, err := fmt.Sscan(strings.TrimSpace(f), &r); err != nil || r <= 0 || r > maxFloodRate {
			return nil, fmt.Errorf("rate %q: want a number of packets a second, 1 to %d", f, maxFloodRate)
		}
		out = append(out, r)
	}
	return out, nil
}

// FloodLine is what one client saw during one attack: one JSON object per
// line with -json. Attack "none" is the baseline before the first attack.
type FloodLine struct {
	Scenario string `json:"scenario"`
	// Server is the DNS server the PoPs ran (FloodOptions.Server).
	Server string `json:"server"`
	Attack string `json:"attack"`
	Client string `json:"client"`
	Region string `json:"region"`
	// Sweep marks the lines of the rate sweep.
	Sweep bool `json:"sweep,omitempty"`
	// Rate is the attack's packets a second as asked (connections a
	// second for tcp-conn); AttackPPS what the attacker achieved.
	Rate      int     `json:"rate"`
	AttackPPS float64 `json:"attack_pps"`
	// The client's steady UDP queries to the anycast address sent during
	// the attack, those answered in time, and their query time p95 beside
	// the baseline's (p95_ms_normal). The clients are exempt from the
	// limits (lab measuring points), so none is slipped.
	Transport   string   `json:"transport"`
	Sent        int      `json:"sent"`
	Answered    int      `json:"answered"`
	P95MS       *float64 `json:"p95_ms"`
	P95MSNormal *float64 `json:"p95_ms_normal"`
	// ServedBy are the PoPs that answered the client (NSID).
	ServedBy string `json:"served_by"`
	// TCPSent and TCPAnswered are the client's queries over TCP (a new
	// connection each) during the attack.
	TCPSent     int `json:"tcp_sent"`
	TCPAnswered int `json:"tcp_answered"`
	// Reflection: the bytes (UDP payload) the attacker sent and the
	// victim received, and their ratio.
	AttackerBytes *int64   `json:"attacker_bytes,omitempty"`
	VictimBytes   *int64   `json:"victim_bytes,omitempty"`
	Amplification *float64 `json:"amplification,omitempty"`
	// tcp-conn: the attacker's connections opened and those the PoP
	// closed before the attack ended (evicted, or idle past its timeout).
	FloodOpened      *int64 `json:"flood_conns_opened,omitempty"`
	FloodClosedByPoP *int64 `json:"flood_conns_closed_by_pop,omitempty"`
	// PoPCounters are what the attacked PoP did during the attack, from
	// its metrics (popCounters): answers by rcode, drops by reason, TCP
	// connections refused and evicted; the clients' queries and its own
	// health checks are among the answers.
	AttackedPoP string             `json:"attacked_pop,omitempty"`
	PoPCounters map[string]float64 `json:"pop_counters,omitempty"`
}

// FloodPoPLine is one PoP's state over the whole flood scenario.
type FloodPoPLine struct {
	Scenario string `json:"scenario"`
	Server   string `json:"server"`
	PoP      string `json:"pop"`
	// RSS of its server (with its child processes) before the first
	// attack and the most seen.
	RSSMBBefore float64 `json:"rss_mb_before"`
	RSSMBMax    float64 `json:"rss_mb_max"`
	// Announced: every sample of its admin status announced every anycast
	// prefix, and every sample of its router's BIRD preferred its route
	// (NSD and Knot: the router's BIRD alone, every 250 ms).
	Announced bool `json:"announced"`
	// Samples taken (status every 100 ms), those that were not announced,
	// and what the first of them said.
	Samples      int    `json:"samples"`
	NotAnnounced int    `json:"not_announced"`
	FirstProblem string `json:"first_problem,omitempty"`
	// StatusErrors are status queries that failed (the admin API did not
	// answer within a second): no sample.
	StatusErrors int `json:"status_errors"`
}

// FloodResult holds the flood scenario's lines.
type FloodResult struct {
	Lines []FloodLine
	PoPs  []FloodPoPLine
	// AttackRegion is where the attacker sits; Absorbed the highest sweep
	// rate asked for at which its PoP's clients stayed at ≥ 99 % (0: no
	// sweep, or none), AbsorbedPPS the rate the attacker achieved there.
	AttackRegion string
	Absorbed     int
	AbsorbedPPS  float64
	// AbsorbedInTargetPPS is the highest achieved sweep rate at which
	// the attacked region's clients also kept their p95 within
	// FloodMaxP95RiseAttacked of normal (the whole target).
	AbsorbedInTargetPPS float64
}

// The targets of the flood scenario (issue #15).
const (
	// FloodMinAnsweredAttacked is the least share of its queries a client
	// in the attacked region gets answered.
	FloodMinAnsweredAttacked = 0.99
	// FloodMaxP95RiseAttacked is the most its p95 may rise.
	FloodMaxP95RiseAttacked = 20 * time.Millisecond
	// FloodMaxP95RiseOther is the most the p95 of a client elsewhere may
	// rise: "unchanged" within the noise of one machine, where the flood's
	// CPU is every region's CPU. The links that carry B's and C's queries
	// are user-space wires, and a 2,000/s flood into A alone moved every
	// client's p95 by 4-6 ms alike on the 2-core development machine (C's
	// as much as B's, though neither shares a link or a process with the
	// flood): that is the machine, not the network.
	FloodMaxP95RiseOther = 10 * time.Millisecond
	// FloodMaxAmplification bounds victim bytes / attacker bytes.
	FloodMaxAmplification = 1.0
	// FloodMaxRSSRiseMB bounds a PoP's memory growth.
	FloodMaxRSSRiseMB = 50
)

// Violations lists every target the result misses (sweep lines aside: the
// sweep looks for the rate where they are missed).
func (r *FloodResult) Violations() []string {
	var out []string
	for _, l := range r.Lines {
		if l.Sweep || l.Attack == "none" {
			continue
		}
		what := fmt.Sprintf("%s %s", l.Attack, l.Client)
		rise := time.Duration(-1)
		if l.P95MS != nil && l.P95MSNormal != nil {
			rise = time.Duration((*l.P95MS - *l.P95MSNormal) * float64(time.Millisecond))
		}
		if l.Region == r.AttackRegion {
			if l.Sent == 0 || float64(l.Answered) < FloodMinAnsweredAttacked*float64(l.Sent) {
				out = append(out, fmt.Sprintf("%s: %d of %d answered, want ≥ %.0f %%", what, l.Answered, l.Sent, 100*FloodMinAnsweredAttacked))
			}
			if rise > FloodMaxP95RiseAttacked {
				out = append(out, fmt.Sprintf("%s: p95 %s ms, %s above normal, want ≤ %s", what, fmtMS(l.P95MS), rise.Round(100*time.Microsecond), FloodMaxP95RiseAttacked))
			}
		} else {
			if l.Sent == 0 || l.Answered != l.Sent {
				out = append(out, fmt.Sprintf("%s: %d of %d answered, want all", what, l.Answered, l.Sent))
			}
			if rise > FloodMaxP95RiseOther {
				out = append(out, fmt.Sprintf("%s: p95 %s ms, %s above normal, want ≤ %s", what, fmtMS(l.P95MS), rise.Round(100*time.Microsecond), FloodMaxP95RiseOther))
			}
		}
		if l.P95MS == nil {
			out = append(out, what+": no answer, no p95")
		}
		if l.TCPSent > 0 && l.TCPAnswered < l.TCPSent && l.Region != r.AttackRegion {
			out = append(out, fmt.Sprintf("%s: %d of %d TCP queries answered, want all", what, l.TCPAnswered, l.TCPSent))
		}
		if l.Amplification != nil && *l.Amplification > FloodMaxAmplification {
			out = append(out, fmt.Sprintf("%s: amplification %.3f, want ≤ %.1f", what, *l.Amplification, FloodMaxAmplification))
		}
	}
	for _, p := range r.PoPs {
		if !p.Announced {
			out = append(out, fmt.Sprintf("%s: not announced in %d of %d samples (first: %s)", p.PoP, p.NotAnnounced, p.Samples, p.FirstProblem))
		}
		if p.RSSMBMax-p.RSSMBBefore > FloodMaxRSSRiseMB {
			out = append(out, fmt.Sprintf("%s: RSS %.1f MB → %.1f MB, want ≤ +%d MB", p.PoP, p.RSSMBBefore, p.RSSMBMax, FloodMaxRSSRiseMB))
		}
	}
	return out
}

// writeFloodTable prints the flood lines.
func writeFloodTable(tw io.Writer, f *FloodResult) {
	printf(tw, "ATTACK\tRATE\tATTACK pps\tCLIENT\tSERVED BY\tANSWERED\tp95 ms (normal)\tTCP\tAMPLIFICATION\t\n")
	for _, l := range f.Lines {
		amp := "-"
		if l.Amplification != nil {
			amp = fmt.Sprintf("%.3f (%d/%d B)", *l.Amplification, *l.VictimBytes, *l.AttackerBytes)
		}
		attack := l.Attack
		if l.Sweep {
			attack += " (sweep)"
		}
		printf(tw, "%s\t%d\t%.0f\t%s\t%s\t%d/%d\t%s (%s)\t%d/%d\t%s\t\n", attack, l.Rate, l.AttackPPS, l.Client, orDash(l.ServedBy), l.Answered, l.Sent,
			fmtMS(l.P95MS), fmtMS(l.P95MSNormal), l.TCPAnswered, l.TCPSent, amp)
	}
	head := false
	for _, l := range f.Lines {
		if l.Region != f.AttackRegion || l.PoPCounters == nil {
			continue
		}
		if !head {
			printf(tw, "\nATTACK\tRATE\tWHAT THE ATTACKED POP DID (its counters during the attack)\t\n")
			head = true
		}
		printf(tw, "%s\t%d\t%s: %s\t\n", l.Attack, l.Rate, l.AttackedPoP, fmtCountsF(l.PoPCounters))
	}
	printf(tw, "\nPOP\tRSS MB BEFORE\tRSS MB MAX\tANNOUNCED\tNOT ANNOUNCED/SAMPLES\tSTATUS ERRORS\t\n")
	for _, p := range f.PoPs {
		printf(tw, "%s\t%.1f\t%.1f\t%v\t%d/%d\t%d\t%s\n", p.PoP, p.RSSMBBefore, p.RSSMBMax, p.Announced, p.NotAnnounced, p.Samples, p.StatusErrors, p.FirstProblem)
	}
}

// randomSubdomainQuery is the template of the random-subdomain attack: a
// query for a 16-letter label under the lab's zone, type A, EDNS 1232, no
// RD; the label's letters start at randomLabelAt and are replaced for each
// packet (fillRandomLabel).
func randomSubdomainQuery() ([]byte, error) {
	m := new(dns.Msg)
	m.SetQuestion(strings.Repeat("a", randomLabelLen)+"."+ZoneName, dns.TypeA)
	m.RecursionDesired = false
	m.SetEdns0(1232, false)
	return m.Pack()
}

const (
	randomLabelLen = 16
	randomLabelAt  = 13 // 12 bytes of header, 1 of label length
)

// fillRandomLabel gives the query a new ID and a new random label.
func fillRandomLabel(q []byte, rnd *rand.Rand) {
	binary.BigEndian.PutUint16(q, uint16(rnd.Uint32()))
	for i := range randomLabelLen {
		q[randomLabelAt+i] = 'a' + byte(rnd.IntN(26))
	}
}

// reflectionQuery is what the reflection attack sends with the victim's
// address: ANY for the zone's apex with EDNS 4096, the largest answer the
// lab's zone gives.
func reflectionQuery() ([]byte, error) {
	m := new(dns.Msg)
	m.SetQuestion(ZoneName, dns.TypeANY)
	m.RecursionDesired = false
	m.SetEdns0(4096, false)
	return m.Pack()
}

// garbageKinds are the malformed packets of the garbage attack, sent in
// turn; each meets a different defence (docs/ddos.md, "Layers").
var garbageKinds = []string{
	"short",         // fewer bytes than a DNS header: early drop
	"response",      // QR=1: early drop, never answered
	"random",        // random bytes after a query header with QDCOUNT=1: FORMERR
	"bad-label",     // a label length running past the end: FORMERR
	"two-questions", // QDCOUNT=2: FORMERR
	"class-hs",      // a query in class HS: dropped once the question is read
	"opcode-update", // opcode UPDATE: NOTIMP
}

// garbagePacket writes packet i of the garbage attack into buf and returns
// it.
func garbagePacket(buf []byte, i int, rnd *rand.Rand) []byte {
	kind := garbageKinds[i%len(garbageKinds)]
	hdr := func(flags uint16, qd uint16) []byte {
		b := buf[:12]
		binary.BigEndian.PutUint16(b[0:], uint16(rnd.Uint32()))
		binary.BigEndian.PutUint16(b[2:], flags)
		binary.BigEndian.PutUint16(b[4:], qd)
		clear(b[6:12])
		return b
	}
	question := func(b []byte, class uint16) []byte {
		b = append(b, 3, 'w', 'w', 'w', 3, 'l', 'a', 'b', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0)
		return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, dns.TypeA), class)
	}
	switch kind {
	case "short":
		b := buf[:1+rnd.IntN(11)]
		for j := range b {
			b[j] = byte(rnd.Uint32())
		}
		return b
	case "response":
		return question(hdr(0x8400, 1), dns.ClassINET)
	case "random":
		b := hdr(0, 1)
		n := 1 + rnd.IntN(60)
		for range n {
			b = append(b, byte(rnd.Uint32()))
		}
		// Never a valid question by chance: a label length past the
		// end leads it.
		b[12] = 63
		return b
	case "bad-label":
		return append(hdr(0, 1), 40, 'x', 'y', 'z')
	case "two-questions":
		return question(question(hdr(0, 2), dns.ClassINET), dns.ClassINET)
	case "class-hs":
		return question(hdr(0, 1), dns.ClassHESIOD)
	default: // opcode-update
		return question(hdr(5<<11, 1), dns.ClassINET)
	}
}

// floodRoute is a route a router needs towards a network the flood
// scenario adds: via the neighbouring router on the way to the region
// that holds it.
type floodRoute struct {
	Router string
	Via4   netip.Addr
	Via6   netip.Addr
}

// routesTowards returns, for every router other than region's, the next hop
// towards region's router over the router—router links (fewest links).
func (p *plan) routesTowards(region string) ([]floodRoute, error) {
	target := nodeName(region, "router")
	if n, err := p.node(target); err != nil || n.Role != RoleRouter {
		return nil, fmt.Errorf("no router in region %q", region)
	}
	// Breadth-first from the target: a router reached over link k goes
	// via k's end at the router it was reached from.
	via := map[string]LinkEnd{target: {}}
	queue := []string{target}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, k := range p.linksOf(cur) {
			local, remote, _ := k.End(cur)
			peer := p.byName[remote.Node]
			if peer.Role != RoleRouter {
				continue
			}
			if _, seen := via[peer.Name]; seen {
				continue
			}
			via[peer.Name] = local
			queue = append(queue, peer.Name)
		}
	}
	var out []floodRoute
	for _, n := range p.nodes {
		if n.Role != RoleRouter || n.Name == target {
			continue
		}
		end, ok := via[n.Name]
		if !ok {
			return nil, fmt.Errorf("router %s has no path to region %s", n.Name, region)
		}
		out = append(out, floodRoute{Router: n.Name, Via4: end.Addr4, Via6: end.Addr6})
	}
	return out, nil
}

// parseCounters reads the counters popCounters reports from a Prometheus
// text exposition: anycastd_queries_total summed by rcode
// ("answered_NXDOMAIN"), anycastd_dropped_total ("dropped"),
// anycastd_early_drops_total by reason ("early_short"),
// anycastd_rrl_limited_total by action ("rrl_slip"),
// anycastd_tcp_refused_total and anycastd_tcp_evicted_total.
func parseCounters(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		name, labels, _ := strings.Cut(line[:i], "{")
		label := func(k string) string {
			for kv := range strings.SplitSeq(strings.TrimSuffix(labels, "}"), ",") {
				if key, val, ok := strings.Cut(kv, "="); ok && key == k {
					return strings.Trim(val, `"`)
				}
			}
			return ""
		}
		switch name {
		case "anycastd_queries_total":
			out["answered_"+label("rcode")] += v
		case "anycastd_dropped_total":
			out["dropped"] += v
		case "anycastd_early_drops_total":
			out["early_"+label("reason")] += v
		case "anycastd_rrl_limited_total":
			out["rrl_"+label("action")] += v
		case "anycastd_tcp_refused_total":
			out["tcp_refused"] += v
		case "anycastd_tcp_evicted_total":
			out["tcp_evicted"] += v
		}
	}
	return out, sc.Err()
}

func fmtCountsF(m map[string]float64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s:%.0f", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// nsdFloodConf is NSD's configuration for a PoP of the flood scenario: its
// addresses, NSID and identity the PoP's name (the probes learn the PoP
// from NSID), RRL at the lab's rate and slip over /24 and /56 (anycastd's
// prefixes). NSD cannot exempt a source prefix from RRL, only kinds of
// answers: positive answers are whitelisted (rrl-whitelist-ratelimit,
// 2,000 a second per prefix), else the lab's clients, which ask one name
// 100 times a second, would be limited; NXDOMAIN, errors and ANY keep the
// lab's 20 a second.
func nsdFloodConf(dir, pop string, addrs []netip.Addr, zoneFile string) string {
	q := strconv.Quote
	var b strings.Builder
	b.WriteString("server:\n")
	kv := [][2]string{{"server-count", "2"}}
	for _, a := range addrs {
		kv = append(kv, [2]string{"ip-address", a.String()})
	}
	kv = append(kv, [][2]string{
		{"port", strconv.Itoa(DNSPort)},
		{"username", q("")},
		{"chroot", q("")},
		{"zonesdir", q(dir)},
		{"pidfile", q(dir + "/nsd.pid")},
		{"database", q("")},
		{"zonelistfile", q(dir + "/zone.list")},
		{"xfrdfile", q(dir + "/xfrd.state")},
		{"xfrdir", q(dir)},
		{"logfile", q(dir + "/nsd.log")},
		{"verbosity", "1"},
		{"identity", q(pop)},
		{"nsid", q("ascii_" + pop)},
		{"rrl-ratelimit", strconv.Itoa(LabRRLRate)},
		{"rrl-slip", strconv.Itoa(LabRRLSlip)},
		{"rrl-ipv4-prefix-length", "24"},
		{"rrl-ipv6-prefix-length", "56"},
		{"rrl-whitelist-ratelimit", "2000"},
		{"tcp-count", "1024"},
	}...)
	for _, e := range kv {
		fmt.Fprintf(&b, "\t%s: %s\n", e[0], e[1])
	}
	b.WriteString("remote-control:\n\tcontrol-enable: no\n")
	fmt.Fprintf(&b, "zone:\n\tname: %s\n\tzonefile: %s\n\trrl-whitelist: positive\n", q(ZoneName), q(zoneFile))
	return b.String()
}

// knotFloodConf is Knot's configuration for a PoP of the flood scenario:
// its addresses, NSID and identity the PoP's name, mod-rrl at the lab's
// rate and slip with the lab's exempt prefixes whitelisted (as anycastd
// exempts them), workers sized by the CPUs.
func knotFloodConf(dir, pop string, addrs []netip.Addr, zoneFile string, exempt []string) string {
	var listen, white []string
	for _, a := range addrs {
		listen = append(listen, fmt.Sprintf("%s@%d", a, DNSPort))
	}
	white = append(white, exempt...)
	return fmt.Sprintf(`server:
    rundir: %[1]q
    pidfile: %[2]q
    listen: [ %[3]s ]
    identity: %[4]q
    nsid: %[4]q
    tcp-max-clients: 1024
database:
    storage: %[1]q
control:
    listen: %[5]q
log:
  - target: stderr
    any: warning
mod-rrl:
  - id: lab
    rate-limit: %[6]d
    slip: %[7]d
    whitelist: [ %[8]s ]
template:
  - id: default
    storage: %[1]q
    semantic-checks: off
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    global-module: mod-rrl/lab
zone:
  - domain: %[9]q
    file: %[10]q
`, dir, dir+"/knot.pid", strings.Join(listen, ", "), pop, dir+"/knot.sock", LabRRLRate, LabRRLSlip, strings.Join(white, ", "), ZoneName, zoneFile)
}
