package lab

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// ServiceScenarios are the scenarios of service steering (issue #14): the
// answers of a pool of service endpoints, steered by their health, the
// client's place, the monitors' RTT, the endpoints' load and weights. They
// run on the steering lab (SteeringScenarios holds them too).
var ServiceScenarios = []string{"steer-failover", "steer-geo", "steer-latency", "steer-weighted", "steer-least-load", "steer-consistent"}

// ServiceLine is one outcome of a service-steering scenario: one JSON
// object per line with -json. Answer and Expected are sets of endpoint
// addresses, comma-separated (or, for a count over many queries, the
// shares); OK says whether every query of the line got what it should.
type ServiceLine struct {
	Scenario string `json:"scenario"`
	// Client is the namespace the queries came from (the resolver's, when
	// they carried ECS for another client: Resolver says which).
	Client   string `json:"client"`
	Answer   string `json:"answer"`
	Expected string `json:"expected"`
	Queries  int    `json:"queries"`
	OK       bool   `json:"ok"`
	// Lost counts the queries without an answer in time.
	Lost int `json:"lost"`
	// PoP is the PoP asked, at its unicast address ("all": each of them).
	PoP string `json:"pop,omitempty"`
	// Resolver is the namespace that sent the queries with ECS for Client.
	Resolver string `json:"resolver,omitempty"`
	// ECS is the client subnet the queries carried ("" none).
	ECS string `json:"ecs,omitempty"`
	// Scope is the ECS scope of the answers ("none": no ECS option;
	// several, comma-separated, when they differed) and ExpectedScope
	// what it must be.
	Scope         string `json:"scope,omitempty"`
	ExpectedScope string `json:"expected_scope,omitempty"`
	// Target is the endpoint the scenario's event hit (steer-failover,
	// steer-least-load).
	Target string `json:"target,omitempty"`
	// SwitchMS is the time from the event (a failing check, a load that
	// rose, a link delay changed) to the PoP's first answer that followed
	// it; RecoverMS from the event's end to the first answer with the
	// target again. Null when nothing switched or recovered.
	SwitchMS  *float64 `json:"switch_ms"`
	RecoverMS *float64 `json:"recover_ms"`
	// BoundMS is the bound SwitchMS is held to (steer-failover: 2 probe
	// intervals + 1 s) and MinRecoverMS the least RecoverMS can be (rise
	// passing probes).
	BoundMS      *float64 `json:"bound_ms,omitempty"`
	MinRecoverMS *float64 `json:"min_recover_ms,omitempty"`
	// Flaps counts answers after the switch that went back on it.
	Flaps *int `json:"flaps,omitempty"`
	// Phase names the link delays of a steer-latency line ("A-B 1ms,
	// B-C 15ms"); RTTMS the monitor RTT of each endpoint from the client's
	// region, by address.
	Phase string             `json:"phase,omitempty"`
	RTTMS map[string]float64 `json:"rtt_ms,omitempty"`
	// Shares is steer-weighted's share of the answers of each endpoint.
	Shares map[string]float64 `json:"shares,omitempty"`
	// Subnets is the number of client subnets asked (steer-weighted,
	// steer-consistent); Mismatches those whose answers differed between
	// PoPs (steer-consistent).
	Subnets    int  `json:"subnets,omitempty"`
	Mismatches *int `json:"mismatches,omitempty"`
	// Why says what was wrong when OK is false.
	Why string `json:"why,omitempty"`
}

// writeServiceTable prints service-steering lines.
func writeServiceTable(tw *tabwriter.Writer, lines []ServiceLine) {
	printf(tw, "CLIENT\tPOP\tECS\tANSWER\tEXPECTED\tSCOPE/WANT\tQUERIES\tLOST\tSWITCH ms\tRECOVER ms\tOK\t"+"\n")
	for _, l := range lines {
		client := l.Client
		if l.Resolver != "" {
			client += " via " + l.Resolver
		}
		if l.Phase != "" {
			client += " [" + l.Phase + "]"
		}
		scope := "-"
		if l.Scope != "" || l.ExpectedScope != "" {
			scope = orDash(l.Scope) + "/" + orDash(l.ExpectedScope)
		}
		ok := fmt.Sprint(l.OK)
		if !l.OK && l.Why != "" {
			ok += " (" + l.Why + ")"
		}
		printf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t\n", client, orDash(l.PoP), orDash(l.ECS), orDash(l.Answer), orDash(l.Expected), scope,
			l.Queries, l.Lost, fmtMS(l.SwitchMS), fmtMS(l.RecoverMS), ok)
	}
}

// fmtShares writes shares as "198.51.100.74 70.1%, 198.51.100.75 29.9%".
func fmtShares(m map[string]float64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %.1f%%", k, 100*m[k]))
	}
	return strings.Join(parts, ", ")
}
