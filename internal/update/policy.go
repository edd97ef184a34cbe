package update

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// Match is how a Rule's Name is compared with the owner of a record,
// after BIND's update-policy rule types.
type Match string

// The matches.
const (
	// MatchName: the owner is Name.
	MatchName Match = "name"
	// MatchSubdomain: the owner is Name or a name below it.
	MatchSubdomain Match = "subdomain"
	// MatchWildcard: Name is "*.parent." and the owner is a name below
	// parent (not parent itself), as a DNS wildcard would cover it.
	MatchWildcard Match = "wildcard"
	// MatchZone: any owner in the zone (Name is empty).
	MatchZone Match = "zone"
)

// Matches lists the accepted values of Match.
var Matches = []Match{MatchName, MatchSubdomain, MatchWildcard, MatchZone}

// Rule grants the holder of a TSIG key the right to change records: those
// of the Types (none: every type but SOA, NS and the DNSSEC types, as in
// BIND) whose owner matches Name, in the Zones (none: every zone). An
// UPDATE is applied only when each of its changes is granted by a rule of
// the key it was signed with.
type Rule struct {
	Key   string   // the key's name
	Zones []string // zone names; empty: any zone
	Match Match
	Name  string // a domain name; empty with MatchZone
	Types []uint16
}

// restricted are the types a rule without a type list does not grant.
var restricted = []uint16{dns.TypeSOA, dns.TypeNS, dns.TypeDNSKEY, dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNSEC3,
	dns.TypeNSEC3PARAM, dns.TypeCDS, dns.TypeCDNSKEY}

// Policy holds the validated rules; a nil or empty Policy grants nothing.
type Policy struct {
	rules map[string][]Rule // by canonical key name
}

// NewPolicy checks rules and returns their policy, or every problem, each
// naming the rule by its index ("rules[2]: ...").
func NewPolicy(rules []Rule) (*Policy, error) {
	p := &Policy{rules: map[string][]Rule{}}
	var errs []error
	for i, r := range rules {
		if err := r.check(); err != nil {
			errs = append(errs, fmt.Errorf("rules[%d]: %w", i, err))
			continue
		}
		c := Rule{Key: dns.CanonicalName(r.Key), Match: r.Match, Name: dns.CanonicalName(r.Name), Types: slices.Clone(r.Types)}
		if r.Match == MatchZone {
			c.Name = ""
		}
		for _, z := range r.Zones {
			c.Zones = append(c.Zones, dns.CanonicalName(z))
		}
		p.rules[c.Key] = append(p.rules[c.Key], c)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// check validates one rule.
func (r Rule) check() error {
	if r.Key == "" {
		return errors.New("key: required")
	}
	if !validName(r.Key) {
		return fmt.Errorf("key: invalid name %q", r.Key)
	}
	for j, z := range r.Zones {
		if z == "" || !validName(z) {
			return fmt.Errorf("zones[%d]: invalid zone name %q", j, z)
		}
	}
	switch r.Match {
	case MatchZone:
		if r.Name != "" {
			return errors.New("name: not used with match zone (the rule covers every name of its zones)")
		}
	case MatchName, MatchSubdomain, MatchWildcard:
		if r.Name == "" {
			return fmt.Errorf("name: required with match %s", r.Match)
		}
		if !validName(r.Name) {
			return fmt.Errorf("name: invalid domain name %q", r.Name)
		}
		if r.Match == MatchWildcard && !strings.HasPrefix(r.Name, "*.") {
			return fmt.Errorf("name: %q: a wildcard rule's name starts with \"*.\"", r.Name)
		}
	default:
		return fmt.Errorf("match: %q is not one of %s", r.Match, joinMatches())
	}
	for j, t := range r.Types {
		switch t {
		case 0, dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR, dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeMAILA, dns.TypeMAILB:
			return fmt.Errorf("types[%d]: %s is not a type of zone data", j, dns.Type(t))
		}
	}
	return nil
}

func joinMatches() string {
	s := make([]string, len(Matches))
	for i, m := range Matches {
		s[i] = string(m)
	}
	return strings.Join(s, ", ")
}

// validName reports whether name packs as a domain name.
func validName(name string) bool {
	_, err := dns.PackDomainName(dns.Fqdn(name), make([]byte, 256), 0, nil, false)
	return err == nil
}

// Has reports whether key (canonical) has any rule: UPDATEs signed with
// other keys are refused whatever they change.
func (p *Policy) Has(key string) bool { return p != nil && len(p.rules[key]) > 0 }

// Allows reports whether the key (canonical) may change the records of
// type t at owner (canonical) in zone (canonical).
func (p *Policy) Allows(key, zone, owner string, t uint16) bool {
	if p == nil {
		return false
	}
	for _, r := range p.rules[key] {
		if r.allows(zone, owner, t) {
			return true
		}
	}
	return false
}

func (r *Rule) allows(zone, owner string, t uint16) bool {
	if len(r.Zones) > 0 && !slices.Contains(r.Zones, zone) {
		return false
	}
	if len(r.Types) > 0 {
		if !slices.Contains(r.Types, t) {
			return false
		}
	} else if slices.Contains(restricted, t) {
		return false
	}
	switch r.Match {
	case MatchZone:
		return dns.IsSubDomain(zone, owner)
	case MatchName:
		return owner == r.Name
	case MatchSubdomain:
		return dns.IsSubDomain(r.Name, owner)
	case MatchWildcard:
		parent := r.Name[2:]
		if parent == "" {
			parent = "."
		}
		return owner != parent && dns.IsSubDomain(parent, owner)
	}
	return false
}
