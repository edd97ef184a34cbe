// Package lab builds an anycast network on one Linux machine from network
// namespaces: routers running BIRD 2, PoPs that announce the anycast service
// over BGP with BFD (anycastd node, or BIRD standing in for it), and
// clients, joined by point-to-point links that carry configurable delay and
// loss. It runs the scenarios that show the service at work — catchment,
// latency, drain, crash, hang, DNS failure, scale-out, propagation from a
// control plane the PoPs follow, and that control plane's outage — with
// steady query
// streams from the clients that learn the answering PoP from NSID.
// anycastlab and the end-to-end tests use it; examples/lab/README.md is the
// user's guide.
package lab

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ErrInvalidTopology is wrapped by every validation error.
var ErrInvalidTopology = errors.New("invalid topology")

//go:embed default.yaml
var defaultTopology []byte

// DefaultTopologyYAML returns the embedded default topology, the same text as
// examples/lab/default.yaml.
func DefaultTopologyYAML() []byte { return bytes.Clone(defaultTopology) }

//go:embed steering.yaml
var steeringTopology []byte

// SteeringTopologyYAML returns the embedded topology of the steering
// scenarios (gray-failure, overload, monitor-partition, all-hot), the same
// text as examples/lab/steering.yaml.
func SteeringTopologyYAML() []byte { return bytes.Clone(steeringTopology) }

// SteeringTopology parses the embedded steering topology: the default's
// three regions plus two stub networks in B's catchment that a shed B-pop
// loses one at a time.
func SteeringTopology() (*Topology, error) {
	return ParseTopology("steering.yaml", steeringTopology)
}

// DefaultTopology parses the embedded default topology.
func DefaultTopology() (*Topology, error) {
	return ParseTopology("default.yaml", defaultTopology)
}

// Topology describes the lab network. Delays are one way.
type Topology struct {
	Name string `yaml:"name"`
	// ECMP installs every equally good BGP path (BIRD "merge paths" and
	// kernel multipath routes) instead of the single best one.
	ECMP bool `yaml:"ecmp"`
	// Anycast are the service prefixes the PoPs announce.
	Anycast []netip.Prefix `yaml:"anycast"`
	// LinkPool4 and LinkPool6 give every link a /31 and a /127, in order.
	LinkPool4 netip.Prefix `yaml:"link_pool4"`
	LinkPool6 netip.Prefix `yaml:"link_pool6"`
	BGP       BGPTimers    `yaml:"bgp"`
	BFD       BFD          `yaml:"bfd"`
	Regions   []Region     `yaml:"regions"`
	// Links join the routers of two regions.
	Links []RegionLink `yaml:"links"`
}

// BGPTimers apply to every BGP session in the lab.
type BGPTimers struct {
	HoldTime  time.Duration `yaml:"hold_time"`
	Keepalive time.Duration `yaml:"keepalive"`
}

// BFD parameters for the sessions between a router and its PoPs.
type BFD struct {
	Interval   time.Duration `yaml:"interval"`
	Multiplier int           `yaml:"multiplier"`
}

// Region is one router with the PoPs and clients attached to it.
type Region struct {
	Name      string     `yaml:"name"`
	ASN       uint32     `yaml:"asn"`
	Loopback4 netip.Addr `yaml:"loopback4"` // also the BIRD router id
	Loopback6 netip.Addr `yaml:"loopback6"`
	// Link is the default for links between the router and its PoPs and
	// clients; each of those may override it.
	Link    LinkSpec `yaml:"link"`
	PoPs    []PoP    `yaml:"pops"`
	Clients []Client `yaml:"clients"`
	// Stub makes the router a customer network that gives no transit: it
	// exports only its own networks (loopback, clients) to the routers it
	// links to, not what it learned from one of them. A stub region has
	// no PoPs. Linked to two regions, its clients reach the anycast
	// service through either, whichever offers the shorter AS path.
	Stub bool `yaml:"stub"`
}

// PoP is a namespace that will run anycastd node; it peers eBGP with BFD with
// its region's router.
type PoP struct {
	Name     string     `yaml:"name"`
	ASN      uint32     `yaml:"asn"`
	Unicast4 netip.Addr `yaml:"unicast4"`
	Unicast6 netip.Addr `yaml:"unicast6"`
	Link     *LinkSpec  `yaml:"link"`
}

// Client is a namespace holding a client network that its router advertises.
// The first address of each network is the client's own address.
type Client struct {
	Name     string       `yaml:"name"`
	Network4 netip.Prefix `yaml:"network4"`
	Network6 netip.Prefix `yaml:"network6"`
	Link     *LinkSpec    `yaml:"link"`
}

// LinkSpec is the impairment of a link, applied in each direction. A zero
// LinkSpec is a plain veth pair; anything else is carried by a wire.
type LinkSpec struct {
	Delay time.Duration `yaml:"delay"`
	// Loss is the probability, 0 to 1, that a packet is dropped.
	Loss float64 `yaml:"loss"`
}

// Impaired reports whether the link needs a wire.
func (s LinkSpec) Impaired() bool { return s.Delay > 0 || s.Loss > 0 }

// RegionLink joins the routers of regions A and B.
type RegionLink struct {
	A        string `yaml:"a"`
	B        string `yaml:"b"`
	LinkSpec `yaml:",inline"`
	// Prepend is how many more times each router puts its own AS number
	// in front of the AS path of every route it exports over this link
	// (0 to 10): the link costs that many more AS hops, so that paths of
	// different lengths can be built.
	Prepend int `yaml:"prepend"`
}

// Defaults used where the topology leaves a field out.
const (
	defaultHoldTime      = 9 * time.Second
	defaultKeepalive     = 3 * time.Second
	defaultBFDInterval   = 100 * time.Millisecond
	defaultBFDMultiplier = 3
	maxDelay             = 10 * time.Second
	maxLinkPrepend       = 10
)

var (
	defaultLinkPool4 = netip.MustParsePrefix("100.64.0.0/16")
	defaultLinkPool6 = netip.MustParsePrefix("2001:db8:ffff::/48")
	// documentation ranges every lab address must come from (RFC 5737, 3849)
	docRanges = []netip.Prefix{
		netip.MustParsePrefix("192.0.2.0/24"),
		netip.MustParsePrefix("198.51.100.0/24"),
		netip.MustParsePrefix("203.0.113.0/24"),
		netip.MustParsePrefix("2001:db8::/32"),
	}
	sharedRange = netip.MustParsePrefix("100.64.0.0/10") // RFC 6598, links only
	regionName  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]{0,7}$`)
	memberName  = regexp.MustCompile(`^[a-z][a-z0-9]{0,5}$`)
)

// LoadTopology reads and validates a topology file.
func LoadTopology(path string) (*Topology, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read topology: %w", err)
	}
	return ParseTopology(path, data)
}

// ParseTopology decodes data strictly (unknown keys are errors), fills in
// defaults and validates the result. name is used in error messages.
func ParseTopology(name string, data []byte) (*Topology, error) {
	var t Topology
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&t); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: %w: empty document", name, ErrInvalidTopology)
		}
		return nil, fmt.Errorf("%s: %w: %w", name, ErrInvalidTopology, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w: more than one YAML document", name, ErrInvalidTopology)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", name, ErrInvalidTopology, err)
	}
	t.setDefaults()
	var errs []error
	for _, p := range t.problems() {
		line := lineOf(&root, p.path)
		errs = append(errs, fmt.Errorf("%s:%d: %s: %s", filepath.Base(name), line, formatPath(p.path), p.msg))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalidTopology, errors.Join(errs...))
	}
	return &t, nil
}

// Validate checks a topology built in Go (ParseTopology already did).
func (t *Topology) Validate() error {
	var errs []error
	for _, p := range t.problems() {
		errs = append(errs, fmt.Errorf("%s: %s", formatPath(p.path), p.msg))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidTopology, errors.Join(errs...))
	}
	return nil
}

func (t *Topology) setDefaults() {
	if !t.LinkPool4.IsValid() {
		t.LinkPool4 = defaultLinkPool4
	}
	if !t.LinkPool6.IsValid() {
		t.LinkPool6 = defaultLinkPool6
	}
	if t.BGP.HoldTime == 0 {
		t.BGP.HoldTime = defaultHoldTime
	}
	if t.BGP.Keepalive == 0 {
		t.BGP.Keepalive = defaultKeepalive
	}
	if t.BFD.Interval == 0 {
		t.BFD.Interval = defaultBFDInterval
	}
	if t.BFD.Multiplier == 0 {
		t.BFD.Multiplier = defaultBFDMultiplier
	}
}

// NumLinks is the number of links the topology needs.
func (t *Topology) NumLinks() int {
	n := len(t.Links)
	for _, r := range t.Regions {
		n += len(r.PoPs) + len(r.Clients)
	}
	return n
}

type problem struct {
	path []any // string keys and int indexes into the YAML document
	msg  string
}

type checker struct {
	probs []problem
	nets  []struct { // prefixes that must not overlap
		p    netip.Prefix
		path string
	}
	asns map[uint32]string
}

func (c *checker) add(msg string, path ...any) {
	c.probs = append(c.probs, problem{path: path, msg: msg})
}

func inDocRange(p netip.Prefix) bool {
	for _, r := range docRanges {
		if r.Bits() <= p.Bits() && r.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

func privateASN(a uint32) bool {
	return (a >= 64512 && a <= 65534) || (a >= 4200000000 && a <= 4294967294)
}

// prefix checks that p is set, masked, of the wanted family and inside the
// documentation ranges, and that it overlaps nothing seen before.
func (c *checker) prefix(p netip.Prefix, v6 bool, path ...any) {
	switch {
	case !p.IsValid():
		c.add("missing", path...)
		return
	case p.Addr().Is6() != v6:
		c.add(fmt.Sprintf("%s is not an %s prefix", p, family(v6)), path...)
		return
	case p != p.Masked():
		c.add(fmt.Sprintf("%s has host bits set (did you mean %s?)", p, p.Masked()), path...)
		return
	case !inDocRange(p):
		c.add(fmt.Sprintf("%s is outside the documentation ranges 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32", p), path...)
		return
	}
	here := formatPath(path)
	for _, n := range c.nets {
		if n.p.Overlaps(p) {
			c.add(fmt.Sprintf("%s overlaps %s of %s", p, n.p, n.path), path...)
			return
		}
	}
	c.nets = append(c.nets, struct {
		p    netip.Prefix
		path string
	}{p, here})
}

// addr is prefix for a single address that must also be unique.
func (c *checker) addr(a netip.Addr, v6 bool, path ...any) {
	if !a.IsValid() {
		c.add("missing", path...)
		return
	}
	c.prefix(netip.PrefixFrom(a, a.BitLen()), v6, path...)
}

func (c *checker) asn(a uint32, path ...any) {
	switch {
	case a == 0:
		c.add("missing", path...)
	case !privateASN(a):
		c.add(fmt.Sprintf("%d is not a private ASN (64512-65534 or 4200000000-4294967294)", a), path...)
	case c.asns[a] != "":
		c.add(fmt.Sprintf("ASN %d is already used by %s", a, c.asns[a]), path...)
	default:
		c.asns[a] = formatPath(path)
	}
}

func (c *checker) link(s LinkSpec, path ...any) {
	if s.Delay < 0 || s.Delay > maxDelay {
		c.add(fmt.Sprintf("delay %s is outside 0..%s", s.Delay, maxDelay), append(path, "delay")...)
	}
	if s.Loss < 0 || s.Loss >= 1 {
		c.add(fmt.Sprintf("loss %g is outside [0, 1)", s.Loss), append(path, "loss")...)
	}
}

func family(v6 bool) string {
	if v6 {
		return "IPv6"
	}
	return "IPv4"
}

func (t *Topology) problems() []problem {
	c := &checker{asns: map[uint32]string{}}
	if len(t.Anycast) == 0 {
		c.add("at least one anycast prefix is needed", "anycast")
	}
	for i, p := range t.Anycast {
		c.prefix(p, p.Addr().Is6(), "anycast", i)
	}
	if !t.LinkPool4.Addr().Is4() || !sharedRange.Contains(t.LinkPool4.Addr()) || t.LinkPool4.Bits() < sharedRange.Bits() || t.LinkPool4 != t.LinkPool4.Masked() {
		c.add(fmt.Sprintf("%s is not a masked prefix inside %s", t.LinkPool4, sharedRange), "link_pool4")
	} else if need, have := t.NumLinks(), 1<<(31-t.LinkPool4.Bits()); need > have {
		c.add(fmt.Sprintf("%s holds %d /31 links, the topology needs %d", t.LinkPool4, have, need), "link_pool4")
	}
	c.prefix(t.LinkPool6, true, "link_pool6")
	if t.LinkPool6.IsValid() && t.LinkPool6.Addr().Is6() && t.LinkPool6.Bits() > 120 {
		c.add(fmt.Sprintf("%s is too small for /127 links", t.LinkPool6), "link_pool6")
	}
	if t.BGP.HoldTime < 3*time.Second || t.BGP.HoldTime%time.Second != 0 {
		c.add(fmt.Sprintf("hold_time %s must be whole seconds, at least 3s", t.BGP.HoldTime), "bgp", "hold_time")
	}
	if t.BGP.Keepalive < time.Second || t.BGP.Keepalive%time.Second != 0 || t.BGP.Keepalive >= t.BGP.HoldTime {
		c.add(fmt.Sprintf("keepalive %s must be whole seconds, at least 1s and below hold_time", t.BGP.Keepalive), "bgp", "keepalive")
	}
	if t.BFD.Interval < 10*time.Millisecond || t.BFD.Interval%time.Millisecond != 0 {
		c.add(fmt.Sprintf("interval %s must be whole milliseconds, at least 10ms", t.BFD.Interval), "bfd", "interval")
	}
	if t.BFD.Multiplier < 1 || t.BFD.Multiplier > 255 {
		c.add(fmt.Sprintf("multiplier %d is outside 1..255", t.BFD.Multiplier), "bfd", "multiplier")
	}
	if len(t.Regions) == 0 {
		c.add("at least one region is needed", "regions")
	}
	regions := map[string]bool{}
	for i, r := range t.Regions {
		switch {
		case !regionName.MatchString(r.Name):
			c.add(fmt.Sprintf("name %q must be a letter and up to 7 letters or digits", r.Name), "regions", i, "name")
		case regions[r.Name]:
			c.add(fmt.Sprintf("region %q is defined twice", r.Name), "regions", i, "name")
		}
		regions[r.Name] = true
		c.asn(r.ASN, "regions", i, "asn")
		c.addr(r.Loopback4, false, "regions", i, "loopback4")
		c.addr(r.Loopback6, true, "regions", i, "loopback6")
		c.link(r.Link, "regions", i, "link")
		members := map[string]bool{"router": true}
		member := func(name string, path ...any) {
			switch {
			case !memberName.MatchString(name):
				c.add(fmt.Sprintf("name %q must be a lower-case letter and up to 5 lower-case letters or digits", name), path...)
			case members[name]:
				c.add(fmt.Sprintf("name %q is already used in region %s", name, r.Name), path...)
			}
			members[name] = true
		}
		if r.Stub && len(r.PoPs) > 0 {
			c.add("a stub region has no PoPs", "regions", i, "stub")
		}
		for j, p := range r.PoPs {
			member(p.Name, "regions", i, "pops", j, "name")
			c.asn(p.ASN, "regions", i, "pops", j, "asn")
			c.addr(p.Unicast4, false, "regions", i, "pops", j, "unicast4")
			c.addr(p.Unicast6, true, "regions", i, "pops", j, "unicast6")
			if p.Link != nil {
				c.link(*p.Link, "regions", i, "pops", j, "link")
			}
		}
		for j, cl := range r.Clients {
			member(cl.Name, "regions", i, "clients", j, "name")
			c.prefix(cl.Network4, false, "regions", i, "clients", j, "network4")
			c.prefix(cl.Network6, true, "regions", i, "clients", j, "network6")
			if cl.Link != nil {
				c.link(*cl.Link, "regions", i, "clients", j, "link")
			}
		}
	}
	pairs := map[[2]string]bool{}
	adj := map[string][]string{}
	for i, l := range t.Links {
		ok := true
		for _, end := range []struct{ key, name string }{{"a", l.A}, {"b", l.B}} {
			if !regions[end.name] {
				c.add(fmt.Sprintf("unknown region %q", end.name), "links", i, end.key)
				ok = false
			}
		}
		pair := [2]string{min(l.A, l.B), max(l.A, l.B)}
		switch {
		case ok && l.A == l.B:
			c.add(fmt.Sprintf("links region %s to itself", l.A), "links", i)
		case ok && pairs[pair]:
			c.add(fmt.Sprintf("regions %s and %s are already linked", l.A, l.B), "links", i)
		case ok:
			pairs[pair] = true
			adj[l.A] = append(adj[l.A], l.B)
			adj[l.B] = append(adj[l.B], l.A)
		}
		c.link(l.LinkSpec, "links", i)
		if l.Prepend < 0 || l.Prepend > maxLinkPrepend {
			c.add(fmt.Sprintf("prepend %d is outside 0..%d", l.Prepend, maxLinkPrepend), "links", i, "prepend")
		}
	}
	if len(t.Regions) > 1 && len(c.probs) == 0 {
		seen := map[string]bool{t.Regions[0].Name: true}
		queue := []string{t.Regions[0].Name}
		for len(queue) > 0 {
			r := queue[0]
			queue = queue[1:]
			for _, n := range adj[r] {
				if !seen[n] {
					seen[n] = true
					queue = append(queue, n)
				}
			}
		}
		for _, r := range t.Regions {
			if !seen[r.Name] {
				c.add(fmt.Sprintf("region %s cannot be reached from region %s", r.Name, t.Regions[0].Name), "links")
			}
		}
	}
	return c.probs
}

func formatPath(path []any) string {
	var b strings.Builder
	for _, p := range path {
		switch p := p.(type) {
		case int:
			b.WriteString("[" + strconv.Itoa(p) + "]")
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(p)
		}
	}
	return b.String()
}

// lineOf finds the line of the deepest node on path that exists in doc.
func lineOf(doc *yaml.Node, path []any) int {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, p := range path {
		var next *yaml.Node
		switch p := p.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == p {
						next = n.Content[i+1]
						line = n.Content[i].Line
						break
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && p < len(n.Content) {
				next = n.Content[p]
				line = next.Line
			}
		}
		if next == nil {
			break
		}
		n = next
	}
	return line
}
