package config

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Monitor is the configuration of the "anycastd monitor" role: one vantage
// point that probes every PoP through its unicast address and serves what
// it sees.
//
// The zero Monitor is not valid; LoadMonitor and ParseMonitor return one
// with defaults applied and validated. Compare Monitors with
// cmpopts.IgnoreUnexported(config.Monitor{}).
type Monitor struct {
	// Vantage names this monitor's vantage point (for example the lab
	// region it runs in); required, 1 to 63 characters of a-z A-Z 0-9 - _ .
	Vantage string
	// Listen is the monitor's HTTP address: GET /v1/view, /metrics,
	// /healthz, /readyz (default 127.0.0.1:8055). No authentication: the
	// view says nothing secret.
	Listen netip.AddrPort
	// CanaryZone is the zone whose SOA every probe asks for; each PoP
	// must serve it. Lower-case FQDN.
	CanaryZone string
	// Interval between two probe rounds (default 1s); Timeout bounds each
	// probe (default 500ms, at most Interval).
	Interval time.Duration
	Timeout  time.Duration
	// Rise is how many rounds in a row must pass for a PoP to be up
	// (default 2); Fall, how many must fail for it to be down (default 3).
	// 1 to 100.
	Rise, Fall int
	// Window is the period the RTT quantiles cover (default 1m, at least
	// Interval).
	Window time.Duration
	// PoPs are the PoPs to probe; at least one.
	PoPs []MonitorPoP
	// Report, when set, sends what the monitor sees to a control plane
	// after each round (levels.go); nil = it reports to nobody.
	Report *MonitorReport
	Log    Log

	src *source
}

// MonitorPoP is one PoP the monitor probes.
type MonitorPoP struct {
	// Name is the PoP's name; unique, as Vantage.
	Name string
	// DNS is the PoP's unicast DNS address (not the anycast one).
	DNS netip.AddrPort
	// Load is the base URL (http or https) of the node's listener that
	// serves GET /v1/load: its admin listener (on the same host) or its
	// metrics listener. "" = the load is not read.
	Load string
}

// Defaults and bounds of the monitor role.
const (
	defaultMonitorInterval = time.Second
	defaultMonitorTimeout  = 500 * time.Millisecond
	defaultMonitorRise     = 2
	defaultMonitorFall     = 3
	defaultMonitorWindow   = time.Minute
	maxRiseFall            = 100
	maxMonitorName         = 63
	minMonitorInterval     = 10 * time.Millisecond
)

// DefaultMonitorListen is where the monitor listens unless configured
// otherwise.
var DefaultMonitorListen = netip.MustParseAddrPort("127.0.0.1:8055")

// LoadMonitor reads the monitor configuration at path, decodes it,
// applies defaults and validates it; every problem is reported as
// "path:line:column: field: message".
func LoadMonitor(path string) (*Monitor, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("read monitor config: %w", err)
	}
	return ParseMonitor(data, path)
}

// ParseMonitor is LoadMonitor on data that was read from filename.
func ParseMonitor(data []byte, filename string) (*Monitor, error) {
	d := newDecoder(filename, filepath.Dir(filename), len(data))
	m := d.decodeMonitor(data)
	if m == nil || d.stopped {
		return nil, joinErrors(filename, d.errs)
	}
	v := &validator{src: d.src}
	m.validate(v)
	if err := joinErrors(filename, append(d.errs, v.errs...)); err != nil {
		return nil, err
	}
	return m, nil
}

func (d *decoder) decodeMonitor(data []byte) *Monitor {
	top, fe := parseDocument(data, d.src.file)
	if fe != nil {
		d.errs = append(d.errs, fe)
		return nil
	}
	m := &Monitor{
		Listen: DefaultMonitorListen, Interval: defaultMonitorInterval, Timeout: defaultMonitorTimeout,
		Rise: defaultMonitorRise, Fall: defaultMonitorFall, Window: defaultMonitorWindow,
		Log: defaultLog(), src: d.src,
	}
	d.src.pos[""] = position{1, 1}
	if top == nil {
		return m
	}
	d.mapping(top, "", []field{
		{"vantage", func(n *yaml.Node, p string) { d.str(n, p, &m.Vantage) }},
		{"listen", func(n *yaml.Node, p string) { m.Listen, _ = parseScalar(d, n, p, parseAddrPort) }},
		{"canary_zone", func(n *yaml.Node, p string) { m.CanaryZone, _ = parseScalar(d, n, p, canonicalZoneName) }},
		{"interval", func(n *yaml.Node, p string) { d.duration(n, p, &m.Interval) }},
		{"timeout", func(n *yaml.Node, p string) { d.duration(n, p, &m.Timeout) }},
		{"rise", func(n *yaml.Node, p string) { d.intValue(n, p, &m.Rise) }},
		{"fall", func(n *yaml.Node, p string) { d.intValue(n, p, &m.Fall) }},
		{"window", func(n *yaml.Node, p string) { d.duration(n, p, &m.Window) }},
		{"pops", func(n *yaml.Node, p string) {
			items := d.sequence(n, p)
			m.PoPs = make([]MonitorPoP, len(items))
			for i, item := range items {
				pop := &m.PoPs[i]
				d.mapping(item, indexPath(p, i), []field{
					{"name", func(n *yaml.Node, p string) { d.str(n, p, &pop.Name) }},
					{"dns", func(n *yaml.Node, p string) { pop.DNS, _ = parseScalar(d, n, p, parseAddrPort) }},
					{"load", func(n *yaml.Node, p string) { d.str(n, p, &pop.Load) }},
				})
			}
		}},
		d.reportField(m),
		{"log", func(n *yaml.Node, p string) { d.log(n, p, &m.Log) }},
	})
	return m
}

// Validate reports every problem in m, joined with errors.Join; nil if
// there is none. For a Monitor that was loaded, each problem names the
// file, line and column.
func (m *Monitor) Validate() error {
	v := &validator{src: m.src}
	m.validate(v)
	file := ""
	if m.src != nil {
		file = m.src.file
	}
	return joinErrors(file, v.errs)
}

func (m *Monitor) validate(v *validator) {
	v.monitorName("vantage", m.Vantage)
	switch {
	case v.bad("listen"):
	case !m.Listen.IsValid():
		v.add("listen", "required")
	case m.Listen.Port() == 0:
		v.add("listen", "port must not be 0")
	}
	if m.CanaryZone == "" && !v.bad("canary_zone") {
		v.add("canary_zone", "required: a zone every PoP serves, whose SOA the probes ask for")
	}
	if m.Interval < minMonitorInterval {
		v.add("interval", "must be at least %s, got %s", minMonitorInterval, m.Interval)
	}
	switch {
	case m.Timeout <= 0:
		v.add("timeout", "must be greater than 0, got %s", m.Timeout)
	case m.Timeout > m.Interval && m.Interval >= minMonitorInterval:
		v.add("timeout", "must be at most the interval (%s), got %s", m.Interval, m.Timeout)
	}
	for _, f := range []struct {
		path string
		v    int
	}{{"rise", m.Rise}, {"fall", m.Fall}} {
		if (f.v < 1 || f.v > maxRiseFall) && !v.bad(f.path) {
			v.add(f.path, "%s", rangeMsg(int64(f.v), 1, maxRiseFall))
		}
	}
	if m.Window < m.Interval && !v.bad("window") {
		v.add("window", "must be at least the interval (%s), got %s", m.Interval, m.Window)
	}
	if len(m.PoPs) == 0 && !v.bad("pops") {
		v.add("pops", "at least one PoP is required")
	}
	names := map[string]int{}
	addrs := map[netip.AddrPort]int{}
	for i, p := range m.PoPs {
		path := indexPath("pops", i)
		if v.monitorName(path+".name", p.Name) {
			if j, dup := names[p.Name]; dup {
				v.add(path+".name", "duplicate PoP %s (also pops[%d])", p.Name, j)
			} else {
				names[p.Name] = i
			}
		}
		switch a := p.DNS; {
		case v.bad(path + ".dns"):
		case !a.IsValid():
			v.add(path+".dns", "required: the PoP's unicast DNS address")
		case a.Port() == 0:
			v.add(path+".dns", "port must not be 0")
		case a.Addr().IsUnspecified() || a.Addr().IsMulticast():
			v.add(path+".dns", "%s is not a unicast address", a.Addr())
		default:
			if j, dup := addrs[a]; dup {
				v.add(path+".dns", "%s is also the address of pops[%d]", a, j)
			} else {
				addrs[a] = i
			}
		}
		if p.Load != "" && !v.bad(path+".load") {
			if err := checkLoadURL(p.Load); err != nil {
				v.add(path+".load", "%v", err)
			}
		}
	}
	v.report(m.Report)
	v.log("log", m.Log)
}

// monitorName checks a vantage point or PoP name and reports whether it is
// usable.
func (v *validator) monitorName(path, name string) bool {
	if v.bad(path) {
		return false
	}
	switch {
	case name == "":
		v.add(path, "required")
	case len(name) > maxMonitorName:
		v.add(path, "must be at most %d characters, got %d", maxMonitorName, len(name))
	case strings.IndexFunc(name, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && !strings.ContainsRune("-_.", r)
	}) >= 0:
		v.add(path, "%q may contain only a-z A-Z 0-9 - _ .", name)
	default:
		return true
	}
	return false
}

// checkLoadURL checks the base URL of a node's /v1/load.
func checkLoadURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("invalid URL %q", s)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q: want an http:// or https:// URL, such as http://192.0.2.1:8053", s)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%q has no host", s)
	case u.User != nil:
		return errors.New("credentials in the URL are not supported (the message leaves the URL out)")
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q: want a base URL, without query or fragment", s)
	}
	return nil
}
