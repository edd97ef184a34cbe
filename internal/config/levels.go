package config

import (
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// The loop of application-layer anycast: monitors report what they see
// to the control plane ("report" in the monitor's configuration), which
// decides each PoP's level and sends it down the stream to the PoP's
// nodes ("levels" in the control plane's).

// MonitorReport is where a monitor reports after each probe round.
type MonitorReport struct {
	// URL is the control plane's API base URL (http or https); the
	// monitor POSTs to URL + /v1/fleet/observations.
	URL string
	// Token is a bearer token of the control plane's API: inline, or
	// read from TokenFile (its first line that is not blank or a #
	// comment; the file must not be readable by other users).
	Token     string
	TokenFile string // where Token was read from; "" when inline
}

// Levels configures the control plane's decisions (package
// internal/fleet/level): every Interval it steps the engine over the
// monitors' fresh reports and sends each PoP's level to the PoP's nodes.
type Levels struct {
	// Interval between two decision steps, 10ms..1m (default 250ms).
	Interval time.Duration
	// Quorum is how many vantage points must see a PoP down for it to be
	// withdrawn, 1..100 (default 2).
	Quorum int
	// Stale: a vantage point's report older than this is ignored, at
	// least Interval (default 2s).
	Stale time.Duration
	// Validity is how long a node keeps a level without a refresh before
	// it returns to normal; more than Interval, at most 5m (the node's
	// own bound, node.MaxRemoteValidity; default 10s).
	Validity time.Duration
	// Hold is the least time between two load changes of a PoP, and how
	// long a PoP must be cool (or available again) to come down; 0..1h
	// (default 10s).
	Hold time.Duration
	// HighQPS/LowQPS are the load marks in queries per second; HighQPS 0
	// = the load is not used (then LowQPS must be 0 too). When HighQPS is
	// set, 0 < LowQPS <= HighQPS.
	HighQPS, LowQPS float64
	// HighRTT/LowRTT are the marks on the RTT p95 the monitors measure,
	// as HighQPS/LowQPS.
	HighRTT, LowRTT time.Duration
	// MaxShed caps how many PoPs are shed at once, 0..1000 (0 = no limit;
	// default 1).
	MaxShed int
	// MinNormal is how many other PoPs must be available, normal and not
	// hot for one to be shed, 1..1000 (default 1).
	MinNormal int
	// ShedUnderAttack lets the control plane shed and withdraw a PoP
	// whose nodes are dropping or rate limiting a flood, like any hot or
	// down PoP (default false: a flooded PoP absorbs the flood instead of
	// moving it to its neighbours; level.Config.ShedUnderAttack,
	// docs/ddos.md).
	ShedUnderAttack bool
}

// Defaults and bounds of the levels section.
const (
	defaultLevelsInterval = 250 * time.Millisecond
	defaultLevelsQuorum   = 2
	defaultLevelsStale    = 2 * time.Second
	defaultLevelsValidity = 10 * time.Second
	defaultLevelsHold     = 10 * time.Second
	minLevelsInterval     = 10 * time.Millisecond
	maxLevelsInterval     = time.Minute
	maxLevelsDuration     = time.Hour
	maxLevelsValidity     = 5 * time.Minute // node.MaxRemoteValidity
	maxLevelsCount        = 1000
	maxQuorum             = 100
)

// DefaultLevels returns the levels section with every default, as a
// "levels:" without keys gives.
func DefaultLevels() Levels {
	return Levels{
		Interval: defaultLevelsInterval, Quorum: defaultLevelsQuorum, Stale: defaultLevelsStale,
		Validity: defaultLevelsValidity, Hold: defaultLevelsHold, MaxShed: 1, MinNormal: 1,
	}
}

// levelsField is the control plane's "levels" section.
func (d *decoder) levelsField(c *Control) field {
	return field{"levels", func(n *yaml.Node, p string) {
		l := DefaultLevels()
		c.Levels = &l
		d.mapping(n, p, []field{
			{"interval", func(n *yaml.Node, p string) { d.duration(n, p, &l.Interval) }},
			{"quorum", func(n *yaml.Node, p string) { d.intValue(n, p, &l.Quorum) }},
			{"stale", func(n *yaml.Node, p string) { d.duration(n, p, &l.Stale) }},
			{"validity", func(n *yaml.Node, p string) { d.duration(n, p, &l.Validity) }},
			{"hold", func(n *yaml.Node, p string) { d.duration(n, p, &l.Hold) }},
			{"high_qps", func(n *yaml.Node, p string) { d.float(n, p, &l.HighQPS) }},
			{"low_qps", func(n *yaml.Node, p string) { d.float(n, p, &l.LowQPS) }},
			{"high_rtt", func(n *yaml.Node, p string) { d.duration(n, p, &l.HighRTT) }},
			{"low_rtt", func(n *yaml.Node, p string) { d.duration(n, p, &l.LowRTT) }},
			{"max_shed", func(n *yaml.Node, p string) { d.intValue(n, p, &l.MaxShed) }},
			{"min_normal", func(n *yaml.Node, p string) { d.intValue(n, p, &l.MinNormal) }},
			{"shed_under_attack", func(n *yaml.Node, p string) { d.boolean(n, p, &l.ShedUnderAttack) }},
		})
	}}
}

// float decodes a finite number (an integer is taken as one).
func (d *decoder) float(n *yaml.Node, path string, dst *float64) {
	s := d.scalar(n, path)
	if s == nil {
		return
	}
	if t := s.ShortTag(); t == "!!int" || t == "!!float" {
		if v, err := strconv.ParseFloat(strings.TrimPrefix(s.Value, "+"), 64); err == nil && !math.IsInf(v, 0) && !math.IsNaN(v) {
			*dst = v
			return
		}
	}
	d.errorAt(s, path, "expected a number, got %s", describe(s))
}

func (v *validator) controlLevels(c *Control) {
	l := c.Levels
	if l == nil {
		return
	}
	if !c.Stream.Enabled() {
		v.add("stream.listen", "required when levels is set: the levels go to the nodes down their streams")
	}
	if (l.Interval < minLevelsInterval || l.Interval > maxLevelsInterval) && !v.bad("levels.interval") {
		v.add("levels.interval", "must be between %s and %s, got %s", minLevelsInterval, maxLevelsInterval, l.Interval)
	}
	for _, f := range []struct {
		path   string
		v      int
		lo, hi int
	}{
		{"levels.quorum", l.Quorum, 1, maxQuorum},
		{"levels.max_shed", l.MaxShed, 0, maxLevelsCount},
		{"levels.min_normal", l.MinNormal, 1, maxLevelsCount},
	} {
		if (f.v < f.lo || f.v > f.hi) && !v.bad(f.path) {
			v.add(f.path, "%s", rangeMsg(int64(f.v), int64(f.lo), int64(f.hi)))
		}
	}
	switch {
	case v.bad("levels.stale"):
	case l.Stale < l.Interval:
		v.add("levels.stale", "must be at least the interval (%s), got %s: every report would be stale", l.Interval, l.Stale)
	case l.Stale > maxLevelsDuration:
		v.add("levels.stale", "must be at most %s, got %s", maxLevelsDuration, l.Stale)
	}
	switch {
	case v.bad("levels.validity"):
	case l.Validity <= l.Interval:
		v.add("levels.validity", "must be more than the interval (%s), got %s: the refreshes would not keep a level", l.Interval, l.Validity)
	case l.Validity > maxLevelsValidity:
		v.add("levels.validity", "must be at most %s (the longest a node keeps a level), got %s", maxLevelsValidity, l.Validity)
	}
	if (l.Hold < 0 || l.Hold > maxLevelsDuration) && !v.bad("levels.hold") {
		v.add("levels.hold", "must be between 0s and %s, got %s", maxLevelsDuration, l.Hold)
	}
	marks := func(high, low string, hv, lv float64, show func(float64) string) {
		switch {
		case v.bad(high) || v.bad(low):
		case hv < 0:
			v.add(high, "must not be negative, got %s", show(hv))
		case lv < 0:
			v.add(low, "must not be negative, got %s", show(lv))
		case hv == 0 && lv != 0:
			v.add(low, "set without %s (0 = not used)", strings.TrimPrefix(high, "levels."))
		case hv > 0 && lv == 0:
			v.add(low, "required when %s is set: below it a shed PoP comes down (it would never)", strings.TrimPrefix(high, "levels."))
		case lv > hv:
			v.add(low, "must be at most %s (%s), got %s", strings.TrimPrefix(high, "levels."), show(hv), show(lv))
		}
	}
	qps := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
	dur := func(f float64) string { return time.Duration(f).String() }
	marks("levels.high_qps", "levels.low_qps", l.HighQPS, l.LowQPS, qps)
	marks("levels.high_rtt", "levels.low_rtt", float64(l.HighRTT), float64(l.LowRTT), dur)
}

// reportField is the monitor's "report" section.
func (d *decoder) reportField(m *Monitor) field {
	return field{"report", func(n *yaml.Node, p string) {
		if isNull(n) {
			return
		}
		r := &MonitorReport{}
		m.Report = r
		d.mapping(n, p, []field{
			{"url", func(n *yaml.Node, p string) { d.str(n, p, &r.URL) }},
			{"token", func(n *yaml.Node, p string) { d.str(n, p, &r.Token) }},
			{"token_file", func(n *yaml.Node, p string) { d.file(n, p, &r.TokenFile) }},
		})
		switch {
		case d.present["report.token"] && d.present["report.token_file"]:
			pos := d.src.lookup("report.token_file")
			d.errs = append(d.errs, &FieldError{File: d.src.file, Line: pos.line, Column: pos.col, Path: "report.token_file",
				Msg: "use either report.token or report.token_file, not both"})
			d.src.markBad("report.token_file")
			d.src.markBad("report.token")
		case r.TokenFile != "" && !d.src.suppressed("report.token_file"):
			tokens, _, err := readAPITokenFile(r.TokenFile)
			if err != nil {
				pos := d.src.lookup("report.token_file")
				d.errs = append(d.errs, &FieldError{File: d.src.file, Line: pos.line, Column: pos.col, Path: "report.token_file", Msg: err.Error()})
				d.src.markBad("report.token_file")
				return
			}
			r.Token = tokens[0]
		}
	}}
}

func (v *validator) report(r *MonitorReport) {
	if r == nil {
		return
	}
	switch {
	case v.bad("report.url"):
	case r.URL == "":
		v.add("report.url", "required: the control plane's API base URL, such as http://192.0.2.1:8080")
	default:
		if err := checkLoadURL(r.URL); err != nil {
			v.add("report.url", "%v", err)
		}
	}
	path := "report.token"
	if r.TokenFile != "" {
		path = "report.token_file"
	}
	switch t := r.Token; {
	case v.bad(path):
	case t == "":
		v.add(path, "required: a bearer token of the control plane's API (report.token or report.token_file)")
	case len(t) < minTokenLen || len(t) > maxTokenLen:
		v.add(path, "the token must be %d to %d characters long, got %d", minTokenLen, maxTokenLen, len(t))
	case strings.IndexFunc(t, func(r rune) bool { return !isAPITokenChar(r) }) >= 0:
		v.add(path, "the token may contain only A-Z a-z 0-9 - . _ ~ + / =")
	}
}
