package steer

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Check is how the monitors probe a pool's endpoints (issue #14 item 2):
// what a probe asks, how often, and how many vantage points must agree.
// It is part of the pool, so it reaches the control plane's monitors with
// the pool; this package only defines and validates it.
type Check struct {
	// Type is http, https, tcp or dns.
	Type string `json:"type"`
	// Port to probe (default 80 for http, 443 for https, 53 for dns;
	// required for tcp).
	Port uint16 `json:"port,omitempty"`
	// Path and Host of an http(s) request (default "/" and the endpoint's
	// name or address); Status the status wanted (default 200); Body a
	// substring the body must hold; Insecure skips TLS verification.
	Path     string `json:"path,omitempty"`
	Host     string `json:"host,omitempty"`
	Status   int    `json:"status,omitempty"`
	Body     string `json:"body,omitempty"`
	Insecure bool   `json:"insecure,omitempty"`
	// Query is the name a dns check asks for (type SOA unless QueryType).
	Query     string `json:"query,omitempty"`
	QueryType string `json:"query_type,omitempty"`
	// Interval between probes (default 5s), Timeout of one (default 2s,
	// less than Interval).
	Interval Duration `json:"interval,omitzero"`
	Timeout  Duration `json:"timeout,omitzero"`
	// Rise passing probes make an endpoint up, Fall failing ones down
	// (default 2 and 3).
	Rise int `json:"rise,omitempty"`
	Fall int `json:"fall,omitempty"`
	// Quorum is how many vantage points must see an endpoint down for it
	// to be down (default 2).
	Quorum int `json:"quorum,omitempty"`
	// Load is where an endpoint's load is read, when it exposes one.
	Load *LoadSource `json:"load,omitempty"`
}

// LoadSource is an endpoint's load: a number in an HTTP JSON document
// (Field, a dotted path) or a Prometheus gauge (Metric, with labels as
// in the exposition format), at URL; "{address}" in URL stands for the
// endpoint's address.
type LoadSource struct {
	Type   string `json:"type"` // json or prometheus
	URL    string `json:"url"`
	Field  string `json:"field,omitempty"`
	Metric string `json:"metric,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("250ms").
type Duration struct{ time.Duration }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New("a duration is a string such as \"5s\" or \"250ms\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	d.Duration = v
	return nil
}

// Check defaults and bounds.
const (
	DefaultInterval = 5 * time.Second
	DefaultTimeout  = 2 * time.Second
	MinInterval     = 100 * time.Millisecond
	MaxInterval     = time.Hour
	DefaultRise     = 2
	DefaultFall     = 3
	DefaultQuorum   = 2
)

// WithDefaults returns c with its defaults filled in.
func (c Check) WithDefaults() Check {
	if c.Port == 0 {
		c.Port = map[string]uint16{"http": 80, "https": 443, "dns": 53}[c.Type]
	}
	if (c.Type == "http" || c.Type == "https") && c.Path == "" {
		c.Path = "/"
	}
	if (c.Type == "http" || c.Type == "https") && c.Status == 0 {
		c.Status = 200
	}
	if c.Type == "dns" && c.QueryType == "" {
		c.QueryType = "SOA"
	}
	if c.Interval.Duration == 0 {
		c.Interval.Duration = DefaultInterval
	}
	if c.Timeout.Duration == 0 {
		c.Timeout.Duration = min(DefaultTimeout, c.Interval.Duration/2)
	}
	if c.Rise == 0 {
		c.Rise = DefaultRise
	}
	if c.Fall == 0 {
		c.Fall = DefaultFall
	}
	if c.Quorum == 0 {
		c.Quorum = DefaultQuorum
	}
	return c
}

// validate reports every problem of c, each naming its field under check.
func (c *Check) validate(bad func(format string, args ...any)) {
	d := c.WithDefaults()
	switch c.Type {
	case "http", "https":
		if !strings.HasPrefix(d.Path, "/") || strings.ContainsAny(d.Path, " \r\n") {
			bad("check.path %q: an absolute path without spaces", c.Path)
		}
		if d.Status < 100 || d.Status > 599 {
			bad("check.status %d: an HTTP status, 100 to 599", c.Status)
		}
	case "tcp":
		if c.Port == 0 {
			bad("check.port: required for a tcp check")
		}
	case "dns":
		if c.Query == "" {
			bad("check.query: the name a dns check asks for is required")
		} else if _, ok := dns.IsDomainName(c.Query); !ok {
			bad("check.query %q: not a domain name", c.Query)
		}
		if _, ok := dns.StringToType[strings.ToUpper(d.QueryType)]; !ok {
			bad("check.query_type %q: unknown type", c.QueryType)
		}
	default:
		bad("check.type %q: http, https, tcp or dns", c.Type)
	}
	if c.Type != "http" && c.Type != "https" && (c.Path != "" || c.Host != "" || c.Status != 0 || c.Body != "" || c.Insecure) {
		bad("check: path, host, status, body and insecure are for http and https checks")
	}
	if c.Type != "dns" && (c.Query != "" || c.QueryType != "") {
		bad("check: query and query_type are for dns checks")
	}
	if d.Interval.Duration < MinInterval || d.Interval.Duration > MaxInterval {
		bad("check.interval %v: %v to %v", d.Interval.Duration, MinInterval, MaxInterval)
	}
	if d.Timeout.Duration <= 0 || d.Timeout.Duration >= d.Interval.Duration {
		bad("check.timeout %v: more than 0 and less than the interval (%v)", d.Timeout.Duration, d.Interval.Duration)
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"rise", d.Rise}, {"fall", d.Fall}, {"quorum", d.Quorum}} {
		if v.n < 1 || v.n > 100 {
			bad("check.%s %d: 1 to 100", v.name, v.n)
		}
	}
	if l := c.Load; l != nil {
		u, err := url.Parse(strings.ReplaceAll(l.URL, "{address}", "192.0.2.1"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("check.load.url %q: an http or https URL", l.URL)
		}
		switch l.Type {
		case "json":
			if l.Field == "" || l.Metric != "" {
				bad("check.load: a json load needs field (a dotted path to a number), not metric")
			}
		case "prometheus":
			if l.Metric == "" || l.Field != "" {
				bad("check.load: a prometheus load needs metric (a gauge, with labels if any), not field")
			}
		default:
			bad("check.load.type %q: json or prometheus", l.Type)
		}
	}
}
