package lab

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Scenarios anycastlab can run, in the order of the usage text.
var Scenarios = []string{"catchment", "latency", "drain", "crash", "hang", "dns-failure", "scale-out", "propagation", "join", "control-outage",
	"gray-failure", "overload", "monitor-partition", "all-hot",
	"steer-failover", "steer-geo", "steer-latency", "steer-weighted", "steer-least-load", "steer-consistent", "flood",
	"control-failover", "dnssec-rollover"}

// SteeringScenarios are the scenarios of application-layer anycast: they
// need the monitors and the control plane's levels (Options.Monitors,
// Options.Levels), and run on the steering topology unless told otherwise.
var SteeringScenarios = []string{"gray-failure", "overload", "monitor-partition", "all-hot",
	"steer-failover", "steer-geo", "steer-latency", "steer-weighted", "steer-least-load", "steer-consistent"}

// Line is one client's outcome in a scenario: one JSON object per line
// with -json. Fields that do not apply to a scenario are left out, except
// switch_ms and recover_ms, which are null when nothing switched or
// recovered.
type Line struct {
	Scenario  string `json:"scenario"`
	Client    string `json:"client"`
	Transport string `json:"transport"`
	// PoP served the client's last good answer, by NSID.
	PoP  string `json:"pop"`
	Sent int    `json:"sent"`
	Lost int    `json:"lost"`
	// Late counts the lost queries whose answer came after the timeout.
	Late int `json:"late"`
	// SwitchMS is the time from the injected event to the first answer
	// from another PoP (scale-out: from the new PoP's start to its first
	// answer to this client).
	SwitchMS *float64 `json:"switch_ms"`
	// RecoverMS is the time from the end of the event (undrain, restart,
	// resume, repair) to the first answer again from the original PoP.
	RecoverMS *float64 `json:"recover_ms"`

	// Failover scenarios: the PoP the event hit and the one that served
	// the client before it.
	Target    string `json:"target,omitempty"`
	PoPBefore string `json:"pop_before,omitempty"`
	// PoPAfter is the PoP that served the client last before the event
	// ended: the one it moved to, or PoPBefore when it did not move (the
	// steering scenarios).
	PoPAfter string `json:"pop_after,omitempty"`
	// Monitor: the steering scenarios' monitors and level decisions were
	// running (false: plain anycast, the monitors stopped).
	Monitor *bool `json:"monitor,omitempty"`
	// Steering scenarios: the target PoP's level changes during the run
	// (every PoP's in all-hot and monitor-partition), the levels it went
	// through, the shortest time between two of its changes, and whether
	// any PoP was withdrawn.
	LevelChanges *int     `json:"level_changes,omitempty"`
	Levels       string   `json:"levels,omitempty"`
	MinGapMS     *float64 `json:"min_change_gap_ms,omitempty"`
	Withdrawn    *bool    `json:"withdrawn,omitempty"`
	// Overload: the share of the offered load of the hot PoP's clients
	// that other PoPs answered once it shed (over the last seconds of the
	// load), and this client's query time p95 while the PoP was hot before
	// its first level change and in the last seconds of the load.
	ShedShare   *float64 `json:"shed_share,omitempty"`
	P95MSBefore *float64 `json:"p95_ms_before,omitempty"`
	P95MSAfter  *float64 `json:"p95_ms_after,omitempty"`
	// PoPDuring is the PoP the client switched to.
	PoPDuring string `json:"pop_during,omitempty"`
	// Catchment: the PoPs nearest to the client by link delay (several
	// when they tie, comma-separated).
	Nearest string `json:"nearest,omitempty"`
	// Latency: query times to the anycast address and to one PoP's
	// unicast address.
	AnycastP50 *float64 `json:"anycast_p50_ms,omitempty"`
	AnycastP95 *float64 `json:"anycast_p95_ms,omitempty"`
	UnicastPoP string   `json:"unicast_pop,omitempty"`
	UnicastP50 *float64 `json:"unicast_p50_ms,omitempty"`
	UnicastP95 *float64 `json:"unicast_p95_ms,omitempty"`
	// Scale-out: ECMP in the routers, the PoP added, and the answers per
	// PoP before it started and in the last seconds of the run.
	ECMP       *bool          `json:"ecmp,omitempty"`
	NewPoP     string         `json:"new_pop,omitempty"`
	PoPsBefore map[string]int `json:"pops_before,omitempty"`
	PoPsAfter  map[string]int `json:"pops_after,omitempty"`
	// Propagation: the changes made through the control plane's API and
	// the time from each API call's return to the new data being answered
	// by the PoP (pop "all": by every PoP), with the round trip between
	// the control plane and the PoP beside it.
	Changes *int     `json:"changes,omitempty"`
	P50MS   *float64 `json:"p50_ms,omitempty"`
	P95MS   *float64 `json:"p95_ms,omitempty"`
	MaxMS   *float64 `json:"max_ms,omitempty"`
	RTTMS   *float64 `json:"rtt_ms,omitempty"`
	// Join: the PoP that joined (new_pop), the time from its anycastd's
	// start to its first heartbeat at the control plane (heartbeat_ms),
	// from that heartbeat to the fleet listing it (listed_ms), and to its
	// answering every zone of the control plane (served_ms, from the
	// start); the control plane's zones and how many the PoP served; and
	// whether the control plane's configuration stayed as it was.
	HeartbeatMS            *float64 `json:"heartbeat_ms,omitempty"`
	ListedMS               *float64 `json:"listed_ms,omitempty"`
	ServedMS               *float64 `json:"served_ms,omitempty"`
	Zones                  *int     `json:"zones,omitempty"`
	ZonesServed            *int     `json:"zones_served,omitempty"`
	ControlConfigUnchanged *bool    `json:"control_config_unchanged,omitempty"`
}

// OutageLine is one PoP's outcome in the control-outage scenario: one JSON
// object per line with -json.
type OutageLine struct {
	Scenario string `json:"scenario"`
	PoP      string `json:"pop"`
	// Announced: at the end of the outage the PoP announced every anycast
	// prefix (its admin API) and its router had the PoP's route to each.
	Announced bool `json:"announced"`
	// The rcodes of SOA queries to the PoP's unicast address, at the end
	// of the outage, for the zone that expired and for a zone with
	// ordinary timers transferred from the same control plane.
	ExpiredZoneRcode string `json:"expired_zone_rcode"`
	OtherZoneRcode   string `json:"other_zone_rcode"`
	ExpiredZone      string `json:"expired_zone"`
	OtherZone        string `json:"other_zone"`
	// FileZoneRcode is the rcode for the lab's zone served from a file.
	FileZoneRcode string `json:"file_zone_rcode"`
	// ExpiredMS is the time from the control plane's stop to the PoP's
	// first SERVFAIL for the expired zone; RecoveredMS from its restart
	// to the PoP answering that zone again (null: it did not).
	ExpiredMS   *float64 `json:"expired_ms"`
	RecoveredMS *float64 `json:"recovered_ms"`
	// ClientAnswers counts the clients' steady queries to the anycast
	// address this PoP answered while the control plane was down;
	// ClientLost those lost of the clients it served before.
	ClientAnswers int `json:"client_answers"`
	ClientLost    int `json:"client_lost"`
}

// Result is the outcome of one scenario.
type Result struct {
	Scenario string
	// Notes is the timeline and what was measured besides the lines.
	Notes []string
	Lines []Line
	// Outage holds the control-outage scenario's lines (one per PoP), in
	// place of Lines.
	Outage []OutageLine
	// Service holds the service-steering scenarios' lines (ServiceLine),
	// in place of Lines.
	Service []ServiceLine
	// Flood holds the flood scenario's lines, in place of Lines.
	Flood *FloodResult
	// ControlFailover holds the control-failover scenario's line, in
	// place of Lines.
	ControlFailover *ControlFailoverLine
	// Failures are the bounds the scenario checks and missed: its
	// outcome is written, and then the run fails.
	Failures []string
	// Rollover holds the dnssec-rollover scenario's lines (one per
	// rollover), in place of Lines.
	Rollover []RolloverLine
	Duration time.Duration
}

func (r *Result) notef(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// WriteJSON writes one JSON object per line.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	for _, l := range r.Lines {
		if err := enc.Encode(l); err != nil {
			return err
		}
	}
	for _, l := range r.Outage {
		if err := enc.Encode(l); err != nil {
			return err
		}
	}
	for _, l := range r.Service {
		if err := enc.Encode(l); err != nil {
			return err
		}
	}
	if r.ControlFailover != nil {
		if err := enc.Encode(r.ControlFailover); err != nil {
			return err
		}
	}
	for _, l := range r.Rollover {
		if err := enc.Encode(l); err != nil {
			return err
		}
	}
	if r.Flood != nil {
		for _, l := range r.Flood.Lines {
			if err := enc.Encode(l); err != nil {
				return err
			}
		}
		for _, l := range r.Flood.PoPs {
			if err := enc.Encode(l); err != nil {
				return err
			}
		}
	}
	return nil
}

// errWriter keeps the first error of its writer, so that a function that
// prints a report checks once, at the end.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	e.err = err
	return n, err
}

// printf writes to w: an errWriter, which keeps the error, or a progress
// sink, whose failures cost nothing but the progress.
func printf(w io.Writer, format string, args ...any) { _, _ = fmt.Fprintf(w, format, args...) }

func ms(d time.Duration) *float64 {
	v := math.Round(float64(d.Microseconds())/100) / 10
	return &v
}

func fmtMS(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f", *v)
}

func fmtCounts(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// WriteTable prints the result as a table under a heading with the notes.
func (r *Result) WriteTable(out io.Writer) error {
	w := &errWriter{w: out}
	printf(w, "\n== %s (%.1fs)\n", r.Scenario, r.Duration.Seconds())
	for _, n := range r.Notes {
		printf(w, "   %s\n", n)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	switch r.Scenario {
	case "catchment":
		printf(tw, "CLIENT\tTRANSPORT\tPOP (NSID)\tNEAREST\tANSWERED\t"+"\n")
		for _, l := range r.Lines {
			mark := ""
			if !slices.Contains(strings.Split(l.Nearest, ","), l.PoP) {
				mark = "  <- not the nearest"
			}
			printf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\n", l.Client, l.Transport, orDash(l.PoP), l.Nearest, l.Sent-l.Lost, l.Sent, mark)
		}
	case "latency":
		printf(tw, "CLIENT\tANYCAST POP\tANYCAST p50/p95 ms\tUNICAST POP\tUNICAST p50/p95 ms\tLOST\t"+"\n")
		for _, l := range r.Lines {
			printf(tw, "%s\t%s\t%s / %s\t%s\t%s / %s\t%d/%d\t\n", l.Client, orDash(l.PoP), fmtMS(l.AnycastP50), fmtMS(l.AnycastP95),
				l.UnicastPoP, fmtMS(l.UnicastP50), fmtMS(l.UnicastP95), l.Lost, l.Sent)
		}
	case "scale-out":
		printf(tw, "ECMP\tCLIENT\tTRANSPORT\tBEFORE (answers by PoP)\tAFTER (last 2 s)\tNEW POP FIRST ms\tSENT\tLOST\t"+"\n")
		for _, l := range r.Lines {
			printf(tw, "%v\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t\n", l.ECMP != nil && *l.ECMP, l.Client, l.Transport, fmtCounts(l.PoPsBefore), fmtCounts(l.PoPsAfter),
				fmtMS(l.SwitchMS), l.Sent, l.Lost)
		}
	case "propagation":
		printf(tw, "FROM\tPOP\tCHANGES\tPROPAGATED\tp50 ms\tp95 ms\tmax ms\tRTT ms\t"+"\n")
		for _, l := range r.Lines {
			if l.Changes == nil {
				continue // a client's steady queries: in the notes
			}
			n := *l.Changes
			printf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t\n", l.Client, l.PoP, n, l.Sent-l.Lost, fmtMS(l.P50MS), fmtMS(l.P95MS), fmtMS(l.MaxMS), fmtMS(l.RTTMS))
		}
	case "join":
		printf(tw, "NEW POP\tFIRST HEARTBEAT ms\tLISTED AFTER IT ms\tZONES SERVED\tALL SERVED ms\tCONTROL CONFIG\t"+"\n")
		for _, l := range r.Lines {
			cfg := "CHANGED"
			if l.ControlConfigUnchanged != nil && *l.ControlConfigUnchanged {
				cfg = "unchanged"
			}
			printf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\t\n", l.PoP, fmtMS(l.HeartbeatMS), fmtMS(l.ListedMS), derefInt(l.ZonesServed), derefInt(l.Zones), fmtMS(l.ServedMS), cfg)
		}
	case "gray-failure", "overload", "monitor-partition", "all-hot":
		printf(tw, "CLIENT\tMONITOR\tPOP BEFORE\tPOP AFTER\tPOP AT END\tSENT\tLOST\tSWITCH ms\tRECOVER ms\tLEVELS\tSHED SHARE\tp95 BEFORE/AFTER ms\t"+"\n")
		for _, l := range r.Lines {
			mon := "-"
			if l.Monitor != nil {
				mon = fmt.Sprint(*l.Monitor)
			}
			share := "-"
			if l.ShedShare != nil {
				share = fmt.Sprintf("%.2f", *l.ShedShare)
			}
			printf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s / %s\t\n", l.Client, mon, orDash(l.PoPBefore), orDash(l.PoPAfter), orDash(l.PoP),
				l.Sent, l.Lost, fmtMS(l.SwitchMS), fmtMS(l.RecoverMS), orDash(l.Levels), share, fmtMS(l.P95MSBefore), fmtMS(l.P95MSAfter))
		}
	case "steer-failover", "steer-geo", "steer-latency", "steer-weighted", "steer-least-load", "steer-consistent":
		writeServiceTable(tw, r.Service)
	case "flood":
		if r.Flood != nil {
			writeFloodTable(tw, r.Flood)
		}
	case "control-failover":
		if r.ControlFailover != nil {
			writeControlFailoverTable(tw, r.ControlFailover)
		}
	case "dnssec-rollover":
		writeRolloverTable(tw, r.Rollover)
	case "control-outage":
		printf(tw, "POP\tANNOUNCED\tEXPIRED ZONE\tOTHER ZONE\tFILE ZONE\tSERVFAIL AFTER ms\tRECOVERED ms\tCLIENT ANSWERS\tCLIENT LOST\t"+"\n")
		for _, l := range r.Outage {
			printf(tw, "%s\t%v\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t\n", l.PoP, l.Announced, l.ExpiredZoneRcode, l.OtherZoneRcode, l.FileZoneRcode,
				fmtMS(l.ExpiredMS), fmtMS(l.RecoveredMS), l.ClientAnswers, l.ClientLost)
		}
	default:
		printf(tw, "CLIENT\tTRANSPORT\tPOP BEFORE\tPOP DURING\tPOP AFTER\tSENT\tLOST\tSWITCH ms\tRECOVER ms\t"+"\n")
		for _, l := range r.Lines {
			printf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t\n", l.Client, l.Transport, orDash(l.PoPBefore), orDash(l.PoPDuring), orDash(l.PoP),
				l.Sent, l.Lost, fmtMS(l.SwitchMS), fmtMS(l.RecoverMS))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, f := range r.Failures {
		printf(w, "   FAILED: %s\n", f)
	}
	return w.err
}

func derefInt(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// failover is what one client saw around an event: the PoP before it, the
// first answer from another PoP after it, the first answer from the
// original PoP after the event ended.
type failover struct {
	sent, lost int
	late       int
	// firstLost and lastLost are when the first and the last lost
	// queries were sent.
	firstLost, lastLost time.Time
	before              string // PoP of the last good answer received before the event
	during              string // PoP of the first answer from another PoP after it
	last                string // PoP of the last good answer
	switched            time.Duration
	recovered           time.Duration
	didSwitch           bool
	didRecover          bool
}

// analyzeFailover reads a stream's answers around an event that began at
// event and ended at end.
func analyzeFailover(qs []Answer, event, end time.Time) failover {
	var f failover
	f.sent = len(qs)
	for _, a := range qs {
		if !a.OK() {
			f.lost++
			if f.firstLost.IsZero() {
				f.firstLost = a.Sent
			}
			f.lastLost = a.Sent
		}
		if a.Err == "late" {
			f.late++
		}
	}
	// Answers in the order they arrived.
	ok := make([]Answer, 0, len(qs))
	for _, a := range qs {
		if a.OK() {
			ok = append(ok, a)
		}
	}
	sort.SliceStable(ok, func(i, j int) bool { return ok[i].Recv.Before(ok[j].Recv) })
	for _, a := range ok {
		if a.Recv.Before(event) {
			f.before = a.PoP
		}
		f.last = a.PoP
	}
	for _, a := range ok {
		if !a.Recv.Before(event) && a.PoP != f.before && f.before != "" {
			f.switched, f.didSwitch, f.during = a.Recv.Sub(event), true, a.PoP
			break
		}
	}
	if f.didSwitch {
		for _, a := range ok {
			if !a.Recv.Before(end) && a.PoP == f.before {
				f.recovered, f.didRecover = a.Recv.Sub(end), true
				break
			}
		}
	}
	return f
}

// percentile returns the p-th percentile (0..100) of ds by the
// nearest-rank method; 0 when ds is empty.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// delays returns the one-way delay of the lowest-delay path from node to
// every other node, over the plan's links. A path crosses no stub region's
// router from one router to another (a stub gives no transit), unless it
// starts in that region.
func (p *plan) delays(from string) map[string]time.Duration {
	dist := map[string]time.Duration{from: 0}
	stub := map[string]bool{}
	for _, r := range p.topo.Regions {
		stub[r.Name] = r.Stub
	}
	origin := p.byName[from]
	transit := func(via, to string) bool {
		v, t := p.byName[via], p.byName[to]
		return v.Role == RoleRouter && t.Role == RoleRouter && stub[v.Region] && (origin == nil || origin.Region != v.Region)
	}
	for range p.nodes { // Bellman-Ford: the graph is tiny
		changed := false
		for _, k := range p.links {
			for _, e := range [][2]string{{k.A.Node, k.B.Node}, {k.B.Node, k.A.Node}} {
				if transit(e[0], e[1]) {
					continue
				}
				if d, ok := dist[e[0]]; ok {
					if old, ok := dist[e[1]]; !ok || d+k.Spec.Delay < old {
						dist[e[1]] = d + k.Spec.Delay
						changed = true
					}
				}
			}
		}
		if !changed {
			break
		}
	}
	return dist
}

// nearestPoPs returns the PoPs with the lowest path delay from a node, in
// plan order (several when they tie).
func (p *plan) nearestPoPs(from string) []string {
	dist := p.delays(from)
	var best []string
	var bestD time.Duration
	for _, n := range p.nodes {
		d, ok := dist[n.Name]
		if n.Role != RolePoP || !ok {
			continue
		}
		switch {
		case len(best) == 0 || d < bestD:
			best, bestD = []string{n.Name}, d
		case d == bestD:
			best = append(best, n.Name)
		}
	}
	return best
}

// centralPoP is the PoP whose worst path delay to any client is lowest:
// the best place for a single unicast server, and the PoP the failover
// scenarios hit by default.
func (p *plan) centralPoP() string {
	best, bestD := "", time.Duration(-1)
	for _, n := range p.nodes {
		if n.Role != RolePoP {
			continue
		}
		dist := p.delays(n.Name)
		var worst time.Duration
		for _, c := range p.nodes {
			if c.Role == RoleClient {
				worst = max(worst, dist[c.Name])
			}
		}
		if bestD < 0 || worst < bestD {
			best, bestD = n.Name, worst
		}
	}
	return best
}
