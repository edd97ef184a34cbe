package anycastctl

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/anycastdns/anycastdns/internal/fleet"
)

// WriteFleet prints the fleet as a table, a member a line: its PoP and
// name, state, health, announcement, how far it is behind, load, the age
// of its last heartbeat and its version; with zone set, the serial it
// holds of that zone instead of its lag. The PoPs follow (writePoPs) when
// monitors report or levels are decided.
func WriteFleet(w io.Writer, v fleet.View, zone string) error {
	ew := &errWriter{w: w}
	writeMembers(ew, v, zone)
	writePoPs(ew, v)
	return ew.err
}

func writeMembers(ew *errWriter, v fleet.View, zone string) {
	connected := 0
	for _, m := range v.Members {
		if m.State == fleet.StateConnected {
			connected++
		}
	}
	ew.printf("%d members, %d connected; %d zones on the control plane\n", len(v.Members), connected, v.Zones)
	if len(v.Members) == 0 {
		ew.printf("no node has joined: start anycastd node with control.servers naming this control plane's stream.listen and a key of its xfr.tsig_keys\n")
		return
	}
	var tb table
	lagHead := "LAG"
	if zone != "" {
		lagHead = "SERIAL " + zone
	}
	tb.row("POP", "NODE", "STATE", "HEALTH", "ANNOUNCED", lagHead, "Q/S", "TCP", "ZONES", "HEARTBEAT", "VERSION")
	for _, m := range v.Members {
		lag := fleetLag(m)
		if zone != "" {
			lag = "-"
			if z := m.Zone; z != nil {
				lag = zoneSerial(*z)
			}
		}
		qps, tcp := "-", "-"
		if m.State == fleet.StateConnected {
			qps, tcp = strconv.FormatFloat(m.QPS, 'f', 1, 64), strconv.Itoa(m.TCPConns)
		}
		zones := strconv.Itoa(m.ZonesServed)
		if m.ZonesExpired > 0 {
			zones += fmt.Sprintf(" (%d expired)", m.ZonesExpired)
		}
		tb.row(orDash(m.PoP), m.Node, m.State, fleetHealth(m), fleetAnnounced(m), lag, qps, tcp, zones, heartbeatAge(m.HeartbeatAgeSeconds), orDash(m.Version))
	}
	tb.writeTo(ew, "")
	for _, m := range v.Members {
		if m.State != fleet.StateConnected && m.LastError != "" {
			ew.printf("%s: last stream ended: %s\n", m.Node, m.LastError)
		}
	}
}

// writePoPs prints the PoPs × vantage points: each PoP's level, since
// when, whether it is pinned, its connected nodes, what each vantage point
// sees of it (state, RTT p50/p95, load; stale reports marked) and why it
// has its level; then the monitors and the age of their last report.
func writePoPs(ew *errWriter, v fleet.View) {
	if len(v.Monitors) == 0 && v.Levels == nil {
		return // no monitor reports here: nothing to show but the members' PoPs
	}
	ew.printf("\n")
	if l := v.Levels; l != nil {
		ew.printf("PoP levels: decided every %s from the monitors' reports (quorum %d, hold %s); a node keeps its level %s without a refresh\n",
			msText(l.IntervalMS), l.Quorum, msText(l.HoldMS), msText(l.ValidityMS))
	} else {
		ew.printf("PoP levels: not decided by this control plane (no levels section); the monitors' reports are shown\n")
	}
	var vantages []string
	for _, m := range v.Monitors {
		vantages = append(vantages, m.Vantage)
	}
	for _, p := range v.PoPs {
		for _, o := range p.Vantages {
			if !slices.Contains(vantages, o.Vantage) {
				vantages = append(vantages, o.Vantage)
			}
		}
	}
	slices.Sort(vantages)
	if len(v.PoPs) > 0 {
		var tb table
		head := []string{"POP", "LEVEL", "SINCE", "NODES"}
		head = append(head, vantages...)
		tb.row(append(head, "WHY")...)
		for _, p := range v.PoPs {
			lvl := orDash(p.Level)
			if p.Pinned {
				lvl += " (pinned)"
			}
			since := "-"
			if !p.Since.IsZero() {
				age := v.Generated.Sub(p.Since).Seconds()
				since = heartbeatAge(&age)
			}
			row := []string{p.PoP, lvl, since, strconv.Itoa(p.Nodes)}
			for _, vp := range vantages {
				cell := "-"
				for _, o := range p.Vantages {
					if o.Vantage == vp {
						cell = vantageCell(o)
					}
				}
				row = append(row, cell)
			}
			why := orDash(p.Reason)
			if p.Pinned && p.Decided != "" {
				why += " (decided: " + p.Decided + ")"
			}
			tb.row(append(row, why)...)
		}
		tb.writeTo(ew, "")
	}
	if len(v.Monitors) > 0 {
		ew.printf("\n")
		var tb table
		tb.row("VANTAGE", "LAST REPORT", "INTERVAL", "POPS", "REPORTS", "REMOTE")
		for _, m := range v.Monitors {
			last := heartbeatAge(&m.AgeSeconds)
			if m.Stale {
				last += " (stale: ignored)"
			}
			tb.row(m.Vantage, last, msText(m.IntervalMS), strconv.Itoa(m.PoPs), strconv.FormatUint(m.Reports, 10), orDash(m.Remote))
		}
		tb.writeTo(ew, "")
	}
}

// vantageCell is what one vantage point sees of a PoP: its state, RTT
// p50/p95 and load, "stale" before it when the report is too old to count.
func vantageCell(o fleet.VantageView) string {
	s := o.State
	if o.State == "up" && (o.RTTp50ms > 0 || o.RTTp95ms > 0) {
		s += fmt.Sprintf(" %s/%sms", strconv.FormatFloat(o.RTTp50ms, 'f', 1, 64), strconv.FormatFloat(o.RTTp95ms, 'f', 1, 64))
	}
	if o.QPS != nil {
		s += fmt.Sprintf(" %.0fq/s", *o.QPS)
	}
	if o.Stale {
		s = "stale: " + s
	}
	return s
}

// msText prints milliseconds as a duration.
func msText(ms int64) string { return (time.Duration(ms) * time.Millisecond).String() }

func fleetHealth(m fleet.MemberView) string {
	switch {
	case m.State != fleet.StateConnected:
		return "-"
	case m.Drained:
		return "drained"
	}
	return orDash(m.Health)
}

func fleetAnnounced(m fleet.MemberView) string {
	switch {
	case m.State != fleet.StateConnected:
		return "-"
	case !m.BGP:
		return "no bgp"
	case len(m.Announced) == 0:
		return "withdrawn"
	}
	parts := make([]string, len(m.Announced))
	for i, p := range m.Announced {
		parts[i] = p.String()
	}
	s := strings.Join(parts, ",")
	if m.Level != "" && m.Level != "normal" {
		s += " (" + m.Level + ")"
	}
	return s
}

// fleetLag says how far a member is behind: "in sync", or the zones behind
// and missing, the largest serial difference and the age of the oldest
// change not acknowledged.
func fleetLag(m fleet.MemberView) string {
	behind := m.ZonesBehind + m.ZonesMissing
	if behind == 0 {
		return "in sync"
	}
	s := fmt.Sprintf("%d behind", behind)
	if m.MaxSerialLag > 0 {
		s += fmt.Sprintf(", max %d", m.MaxSerialLag)
	}
	if m.LagSeconds > 0 {
		s += fmt.Sprintf(", %.1fs", m.LagSeconds)
	}
	return s
}

func zoneSerial(z fleet.ZoneLag) string {
	switch {
	case z.Missing:
		return "not followed"
	case z.Current == 0 && z.Serial == 0:
		return "-"
	case z.Lag > 0 || z.Serial == 0:
		return fmt.Sprintf("%d (current %d)", z.Serial, z.Current)
	}
	return strconv.FormatUint(uint64(z.Serial), 10)
}

func heartbeatAge(s *float64) string {
	switch {
	case s == nil:
		return "never"
	case *s < 1:
		return "now"
	case *s < 120:
		return fmt.Sprintf("%.0fs ago", *s)
	case *s < 7200:
		return fmt.Sprintf("%.0fm ago", *s/60)
	}
	return fmt.Sprintf("%.0fh ago", *s/3600)
}
