package lab

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The lab's monitors (Options.Monitors): one `anycastd monitor` per region
// that has a PoP, in that region's client namespace, its vantage point
// named after the region. Each probes every PoP at the PoP's unicast
// address (the SOA of the lab zone over UDP and TCP) and reads the node's
// GET /v1/load from its metrics listener on the same address, then reports
// what it saw to the control plane's API (POST /v1/fleet/observations),
// which the monitors reach at the control plane's own address.
const (
	// MonitorPort is each monitor's HTTP listener (GET /v1/view), on the
	// loopback of its namespace.
	MonitorPort = 8055
	// MonitorInterval is the monitors' probe round; MonitorTimeout bounds
	// each probe, MonitorRise/MonitorFall are the rounds in a row that
	// make a PoP up or down, MonitorWindow the period of the RTT p95.
	MonitorInterval = 250 * time.Millisecond
	MonitorTimeout  = 200 * time.Millisecond
	MonitorRise     = 2
	MonitorFall     = 2
	MonitorWindow   = 5 * time.Second
	monitorToken    = "monitor.token"
)

// Levels is the control plane's levels section (how it decides each PoP's
// level from the monitors' reports; see examples/control.yaml).
type Levels struct {
	Interval  time.Duration
	Quorum    int
	Stale     time.Duration
	Validity  time.Duration
	Hold      time.Duration
	HighQPS   float64
	LowQPS    float64
	HighRTT   time.Duration
	LowRTT    time.Duration
	MaxShed   int
	MinNormal int
}

// SteeringLevels are the levels the steering scenarios run with: a decision
// every 250 ms, a PoP withdrawn when 2 of the 3 vantage points see it down,
// shed one step when the median over the vantage points of their RTT p95
// exceeds 80 ms and one step back after 8 s below 40 ms, one change per PoP
// per 8 s, one PoP shed at a time. The hold outlasts the monitors' RTT
// window (5 s), so that a step is judged on what came after the step
// before. The bounds sit well above what an idle PoP shows (a few ms over
// 1 ms links, some tens of ms when the machine is busy) and well below
// what a PoP throttled by the overload scenarios' CPU quota shows (up to
// its 100 ms period).
var SteeringLevels = Levels{
	Interval:  250 * time.Millisecond,
	Quorum:    2,
	Stale:     time.Second,
	Validity:  5 * time.Second,
	Hold:      8 * time.Second,
	HighRTT:   80 * time.Millisecond,
	LowRTT:    40 * time.Millisecond,
	MaxShed:   1,
	MinNormal: 1,
}

// SteeringNodeTiming is the nodes' self-check in the steering scenarios:
// slower to give up than DefaultNodeTiming (a check waits up to 400 ms,
// three must fail in a row), so that a PoP the overload scenarios slow
// down with a CPU quota keeps announcing: what to do about a slow PoP is
// the monitors' and the control plane's call, not its own.
var SteeringNodeTiming = NodeTiming{
	HealthInterval: 500 * time.Millisecond,
	HealthTimeout:  400 * time.Millisecond,
	Rise:           3,
	Fall:           3,
	DrainPeriod:    1500 * time.Millisecond,
}

// ControlLevels is the levels section as the control plane's configuration
// spells it.
type ControlLevels struct {
	Interval  string  `yaml:"interval"`
	Quorum    int     `yaml:"quorum"`
	Stale     string  `yaml:"stale"`
	Validity  string  `yaml:"validity"`
	Hold      string  `yaml:"hold"`
	HighQPS   float64 `yaml:"high_qps"`
	LowQPS    float64 `yaml:"low_qps"`
	HighRTT   string  `yaml:"high_rtt"`
	LowRTT    string  `yaml:"low_rtt"`
	MaxShed   int     `yaml:"max_shed"`
	MinNormal int     `yaml:"min_normal"`
}

func (lv Levels) section() *ControlLevels {
	return &ControlLevels{
		Interval: lv.Interval.String(), Quorum: lv.Quorum, Stale: lv.Stale.String(), Validity: lv.Validity.String(),
		Hold: lv.Hold.String(), HighQPS: lv.HighQPS, LowQPS: lv.LowQPS, HighRTT: lv.HighRTT.String(), LowRTT: lv.LowRTT.String(),
		MaxShed: lv.MaxShed, MinNormal: lv.MinNormal,
	}
}

// MonitorConfig is anycastd's monitor configuration as the lab writes it
// (see examples/monitor.yaml for every key).
type MonitorConfig struct {
	Vantage    string            `yaml:"vantage"`
	Listen     string            `yaml:"listen"`
	CanaryZone string            `yaml:"canary_zone"`
	Interval   string            `yaml:"interval"`
	Timeout    string            `yaml:"timeout"`
	Rise       int               `yaml:"rise"`
	Fall       int               `yaml:"fall"`
	Window     string            `yaml:"window"`
	PoPs       []MonitorPoP      `yaml:"pops"`
	Report     *MonitorReport    `yaml:"report,omitempty"`
	Log        map[string]string `yaml:"log"`
}

// MonitorPoP is one PoP a monitor probes.
type MonitorPoP struct {
	Name string `yaml:"name"`
	DNS  string `yaml:"dns"`
	Load string `yaml:"load"`
}

// MonitorReport is where a monitor reports.
type MonitorReport struct {
	URL       string `yaml:"url"`
	TokenFile string `yaml:"token_file"`
}

// Monitor is one of the lab's monitors: its vantage point (a region) and
// the client namespace it runs in.
type Monitor struct {
	Vantage string
	Node    string
}

// popName is the name a PoP node goes by in the fleet: its region's
// ("B" for B-pop and B-pop2), which the node gives in its stream's hello
// and the monitors use in their reports.
func popName(node string) string {
	if i := strings.LastIndex(node, "-"); i > 0 {
		return node[:i]
	}
	return node
}

// monitors lists the lab's monitors: one per region with a PoP and a
// client namespace, in topology order.
func (p *plan) monitors() []Monitor {
	var out []Monitor
	for _, r := range p.topo.Regions {
		if len(r.PoPs) == 0 || len(r.Clients) == 0 {
			continue
		}
		out = append(out, Monitor{Vantage: r.Name, Node: nodeName(r.Name, r.Clients[0].Name)})
	}
	return out
}

// monitorConfig builds the configuration of the monitor at vantage: every
// PoP (the first node of each, by the name the fleet knows it by) at its
// unicast IPv4 address, DNS and load, and the control plane to report to
// (none when ctl is nil).
func (p *plan) monitorConfig(m Monitor, ctl *controlPlan) MonitorConfig {
	cfg := MonitorConfig{
		Vantage:    m.Vantage,
		Listen:     netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), MonitorPort).String(),
		CanaryZone: ZoneName,
		Interval:   MonitorInterval.String(),
		Timeout:    MonitorTimeout.String(),
		Rise:       MonitorRise,
		Fall:       MonitorFall,
		Window:     MonitorWindow.String(),
		Log:        map[string]string{"level": "info", "format": "text"},
	}
	seen := map[string]bool{}
	for _, n := range p.nodes {
		if n.Role != RolePoP || seen[popName(n.Name)] {
			continue
		}
		seen[popName(n.Name)] = true
		cfg.PoPs = append(cfg.PoPs, MonitorPoP{
			Name: popName(n.Name),
			DNS:  netip.AddrPortFrom(n.Addr4, DNSPort).String(),
			Load: "http://" + netip.AddrPortFrom(n.Addr4, MetricsPort).String(),
		})
	}
	if ctl != nil {
		cfg.Report = &MonitorReport{URL: "http://" + ctl.apiAddr().String(), TokenFile: monitorToken}
	}
	return cfg
}

// renderMonitorConfig renders a monitor's configuration file.
func (p *plan) renderMonitorConfig(m Monitor, ctl *controlPlan) ([]byte, error) {
	body, err := yaml.Marshal(p.monitorConfig(m, ctl))
	if err != nil {
		return nil, fmt.Errorf("monitor config for %s: %w", m.Vantage, err)
	}
	head := fmt.Sprintf("# Generated by anycastlab for lab %s: `anycastd monitor -config` in %s,\n# vantage point %s.\n", p.id, m.Node, m.Vantage)
	return append([]byte(head), body...), nil
}
