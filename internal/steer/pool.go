// Package steer is the pure policy of steered answers (issue #14): a pool of
// endpoints for an owner name and type, a chain of filters (up, geo,
// latency, least-load, weighted, first-n) that picks the endpoints one
// client gets, and the ECS scope that choice depended on.
//
// A decision reads the pool, the client and an immutable State (health,
// RTT, load, the prefix→region map) and nothing else: the same inputs give
// the same answer at every PoP. It does no I/O, no logging, and allocates
// nothing (BenchmarkDecide).
package steer

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// TypePool is the private-use RR type (RFC 6895 §3.1: 65280–65534) that
// carries pools in a zone: one record per steered type at the owner, its
// rdata the steered type (2 bytes), the format version (1 byte) and the
// pool as JSON. It travels with the zone (AXFR, IXFR, the change stream)
// like any record, so every PoP holding the zone holds the same pools; the
// node never answers it to clients.
const TypePool uint16 = 65320

// formatVersion is the version byte of the pool rdata.
const formatVersion = 1

// MaxEndpoints bounds the endpoints of a pool.
const MaxEndpoints = 64

// MaxRegions bounds the prefixes of a pool's region map (the pool record
// must fit in 65,535 octets).
const MaxRegions = 1000

// Policy names, in the order a chain applies them as written.
const (
	PolicyUp        = "up"
	PolicyGeo       = "geo"
	PolicyLatency   = "latency"
	PolicyLeastLoad = "least-load"
	PolicyWeighted  = "weighted"
	PolicyFirstN    = "first-n"
)

// Policies lists every policy name.
var Policies = []string{PolicyUp, PolicyGeo, PolicyLatency, PolicyLeastLoad, PolicyWeighted, PolicyFirstN}

// MaxTTL is the largest pool TTL (RFC 2181 §8).
const MaxTTL = 1<<31 - 1

// Pool is a steered RRset: its endpoints and the chain of policies that
// picks among them, with the TTL of the answers.
type Pool struct {
	TTL uint32 `json:"ttl"`
	// Policy is the chain, applied in order; empty means all endpoints.
	Policy []string `json:"policy"`
	// FirstN is how many endpoints first-n keeps (default 1).
	FirstN    int        `json:"first_n,omitempty"`
	Endpoints []Endpoint `json:"endpoints"`
	// Regions maps client prefixes to regions for geo and latency
	// ("198.51.100.0/24": "eu"), longest prefix first. It travels with
	// the pool, so every PoP places a client alike; without it the
	// node's State.Geo is used.
	Regions map[string]string `json:"regions,omitempty"`
	// Check is how the monitors probe the endpoints (nil: not probed, so
	// never known to be down).
	Check *Check `json:"check,omitempty"`
}

// Endpoint is one server of a pool: an address (answered as A or AAAA) or a
// name (answered as a CNAME to it).
type Endpoint struct {
	Address netip.Addr `json:"address,omitzero"`
	Name    string     `json:"name,omitempty"`
	// Weight for the weighted policy (default 1; 0 never picked unless all are 0).
	Weight *uint32 `json:"weight,omitempty"`
	// Region is where the endpoint is, for geo and latency.
	Region string `json:"region,omitempty"`
	// Capacity is what least-load divides the endpoint's load by (0: the load alone).
	Capacity float64 `json:"capacity,omitempty"`
}

// Key identifies the endpoint in a State: its address, or its name in
// lower case with the final dot.
func (e Endpoint) Key() string {
	if e.Address.IsValid() {
		return e.Address.String()
	}
	return strings.ToLower(dns.Fqdn(e.Name))
}

// weight is the endpoint's weight with the default.
func (e Endpoint) weight() uint32 {
	if e.Weight == nil {
		return 1
	}
	return *e.Weight
}

// Errors of pools.
var (
	ErrInvalid = errors.New("invalid pool")
	ErrFormat  = errors.New("bad pool record")
)

// Validate checks p as the pool of type t (A or AAAA), naming the field at
// fault; every problem found is returned.
func (p *Pool) Validate(t uint16) error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...)))
	}
	if t != dns.TypeA && t != dns.TypeAAAA {
		bad("type %s: a pool steers A or AAAA", dns.TypeToString[t])
	}
	if p.TTL > MaxTTL {
		bad("ttl %d: at most %d", p.TTL, MaxTTL)
	}
	seen := map[string]bool{}
	for i, name := range p.Policy {
		if !isPolicy(name) {
			bad("policy[%d] %q: unknown (one of %s)", i, name, strings.Join(Policies, ", "))
			continue
		}
		if seen[name] {
			bad("policy[%d] %q: given twice", i, name)
		}
		seen[name] = true
	}
	if p.FirstN < 0 || p.FirstN > MaxEndpoints {
		bad("first_n %d: 0 to %d", p.FirstN, MaxEndpoints)
	}
	if len(p.Regions) > MaxRegions {
		bad("regions: %d prefixes, at most %d", len(p.Regions), MaxRegions)
	}
	for prefix, region := range p.Regions {
		pr, err := netip.ParsePrefix(prefix)
		switch {
		case err != nil:
			bad("regions %q: not a prefix (like 198.51.100.0/24 or 2001:db8::/32)", prefix)
		case pr.Masked() != pr || pr.Addr().Is4In6() || pr.Addr().Zone() != "":
			bad("regions %q: host bits set or not a plain IPv4/IPv6 prefix (%s?)", prefix, pr.Masked())
		case region == "" || len(region) > 63:
			bad("regions %q: region %q: 1 to 63 characters", prefix, region)
		}
	}
	if p.Check != nil {
		p.Check.validate(bad)
	}
	if len(p.Endpoints) == 0 || len(p.Endpoints) > MaxEndpoints {
		bad("endpoints: %d given, 1 to %d allowed", len(p.Endpoints), MaxEndpoints)
	}
	keys := map[string]int{}
	for i, e := range p.Endpoints {
		switch {
		case e.Address.IsValid() && e.Name != "":
			bad("endpoints[%d]: address and name both given", i)
		case e.Address.IsValid():
			if e.Address.Zone() != "" {
				bad("endpoints[%d].address %s: no zone allowed", i, e.Address)
			}
			if t == dns.TypeA && !e.Address.Is4() || t == dns.TypeAAAA && (!e.Address.Is6() || e.Address.Is4In6()) {
				bad("endpoints[%d].address %s: not an address of type %s", i, e.Address, dns.TypeToString[t])
			}
		case e.Name != "":
			if _, ok := dns.IsDomainName(e.Name); !ok || strings.Contains(e.Name, "\\") || strings.HasPrefix(e.Name, "*") {
				bad("endpoints[%d].name %q: not a domain name", i, e.Name)
			}
		default:
			bad("endpoints[%d]: an address or a name is needed", i)
			continue
		}
		if j, dup := keys[e.Key()]; dup {
			bad("endpoints[%d]: %s is endpoints[%d] already", i, e.Key(), j)
		}
		keys[e.Key()] = i
		if e.Capacity < 0 || e.Capacity != e.Capacity {
			bad("endpoints[%d].capacity %v: must be 0 or more", i, e.Capacity)
		}
		if len(e.Region) > 63 {
			bad("endpoints[%d].region: longer than 63 characters", i)
		}
	}
	return errors.Join(errs...)
}

func isPolicy(name string) bool {
	for _, p := range Policies {
		if p == name {
			return true
		}
	}
	return false
}

// Encode returns the rdata of the TypePool record of p for type t, after
// validating p. Names are written fully qualified.
func Encode(t uint16, p Pool) ([]byte, error) {
	if err := p.Validate(t); err != nil {
		return nil, err
	}
	for i := range p.Endpoints {
		if p.Endpoints[i].Name != "" {
			p.Endpoints[i].Name = dns.Fqdn(p.Endpoints[i].Name)
		}
	}
	js, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode pool: %w", err)
	}
	out := binary.BigEndian.AppendUint16(make([]byte, 0, 3+len(js)), t)
	out = append(out, formatVersion)
	return append(out, js...), nil
}

// RdataType returns the type a TypePool rdata steers (0 when too short).
func RdataType(rd []byte) uint16 {
	if len(rd) < 3 {
		return 0
	}
	return binary.BigEndian.Uint16(rd)
}

// Decode reads a TypePool rdata: the type it steers and the pool, validated.
func Decode(rd []byte) (uint16, Pool, error) {
	var p Pool
	if len(rd) < 3 {
		return 0, p, fmt.Errorf("%w: %d bytes", ErrFormat, len(rd))
	}
	t := binary.BigEndian.Uint16(rd)
	if rd[2] != formatVersion {
		return t, p, fmt.Errorf("%w: format version %d, this node reads %d", ErrFormat, rd[2], formatVersion)
	}
	if err := json.Unmarshal(rd[3:], &p); err != nil {
		return t, p, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	if err := p.Validate(t); err != nil {
		return t, p, err
	}
	return t, p, nil
}
