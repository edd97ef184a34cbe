package anycastctl

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/anycastdns/anycastdns/internal/fleet"
)

// WriteFleet prints the fleet as a table, a member a line: its PoP and
// name, state, health, announcement, how far it is behind, load, the age
// of its last heartbeat and its version; with zone set, the serial it
// holds of that zone instead of its lag.
func WriteFleet(w io.Writer, v fleet.View, zone string) error {
	ew := &errWriter{w: w}
	connected := 0
	for _, m := range v.Members {
		if m.State == fleet.StateConnected {
			connected++
		}
	}
	ew.printf("%d members, %d connected; %d zones on the control plane\n", len(v.Members), connected, v.Zones)
	if len(v.Members) == 0 {
		ew.printf("no node has joined: start anycastd node with control.servers naming this control plane's stream.listen and a key of its xfr.tsig_keys\n")
		return ew.err
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
	return ew.err
}

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
