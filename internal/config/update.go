package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
	"go.yaml.in/yaml/v3"
)

// XfrUpdate configures DNS UPDATE (RFC 2136) on the transfer listener:
// every UPDATE must be signed with a key of xfr.tsig_keys, and each of its
// changes granted to that key by a rule of Policy, as BIND's
// update-policy grants them.
type XfrUpdate struct {
	// From are the sources that may send UPDATE (the nodes that forward
	// them included); empty: any source.
	From   []netip.Prefix
	Policy []UpdateRule
}

// UpdateRule grants the holder of Key the right to change the records of
// Types (empty: every type but SOA, NS and the DNSSEC types) whose owner
// matches Name by Match, in Zones (empty: every zone).
type UpdateRule struct {
	Key   string   // canonical name of a key of xfr.tsig_keys
	Zones []string // canonical
	// Match is "name" (the owner is Name), "subdomain" (Name or below),
	// "wildcard" (Name is *.parent: any name below parent) or "zone"
	// (any name of the zone; no Name).
	Match string
	Name  string   // canonical
	Types []uint16 // from type names (TXT, A, ...)
}

// updateMatches are the values of UpdateRule.Match.
var updateMatches = []string{"name", "subdomain", "wildcard", "zone"}

func (d *decoder) xfrUpdate(n *yaml.Node, path string, x *Xfr) {
	if isNull(n) {
		return
	}
	u := &XfrUpdate{}
	x.Update = u
	d.mapping(n, path, []field{
		{"from", func(n *yaml.Node, p string) {
			items := d.sequence(n, p)
			u.From = make([]netip.Prefix, len(items))
			for i, item := range items {
				u.From[i], _ = parseScalar(d, item, indexPath(p, i), parsePrefixOrAddr)
			}
		}},
		{"policy", func(n *yaml.Node, p string) {
			items := d.sequence(n, p)
			u.Policy = make([]UpdateRule, len(items))
			for i, item := range items {
				r := &u.Policy[i]
				d.mapping(item, indexPath(p, i), []field{
					{"key", func(n *yaml.Node, p string) { r.Key, _ = parseScalar(d, n, p, parseXfrKeyName) }},
					{"zones", func(n *yaml.Node, p string) {
						zs := d.sequence(n, p)
						r.Zones = make([]string, len(zs))
						for j, z := range zs {
							r.Zones[j], _ = parseScalar(d, z, indexPath(p, j), canonicalZoneName)
						}
					}},
					{"match", func(n *yaml.Node, p string) {
						r.Match, _ = parseScalar(d, n, p, func(s string) (string, error) {
							if !slices.Contains(updateMatches, s) {
								return "", fmt.Errorf("invalid match %q (want one of %s)", s, strings.Join(updateMatches, ", "))
							}
							return s, nil
						})
					}},
					{"name", func(n *yaml.Node, p string) { r.Name, _ = parseScalar(d, n, p, parseUpdateName) }},
					{"types", func(n *yaml.Node, p string) {
						ts := d.sequence(n, p)
						r.Types = make([]uint16, len(ts))
						for j, t := range ts {
							r.Types[j], _ = parseScalar(d, t, indexPath(p, j), parseUpdateType)
						}
					}},
				})
			}
		}},
	})
}

// parseUpdateName canonicalizes the name of an update rule: a domain name
// (underscores and a leading "*." allowed), lower case, fully qualified.
func parseUpdateName(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	n := dns.CanonicalName(s)
	if _, ok := dns.IsDomainName(n); !ok || strings.Contains(n, "..") {
		return "", fmt.Errorf("invalid domain name %q", s)
	}
	return n, nil
}

// parseUpdateType reads a type name (TXT, AAAA, TYPE65534).
func parseUpdateType(s string) (uint16, error) {
	u := strings.ToUpper(s)
	t, ok := dns.StringToType[u]
	if !ok {
		var n uint16
		if _, err := fmt.Sscanf(u, "TYPE%d", &n); err != nil || fmt.Sprintf("TYPE%d", n) != u {
			return 0, fmt.Errorf("unknown record type %q", s)
		}
		t = n
	}
	switch t {
	case 0, dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR, dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeMAILA, dns.TypeMAILB:
		return 0, fmt.Errorf("%s is not a type of zone data", s)
	}
	return t, nil
}

func (v *validator) xfrUpdate(x *Xfr, keys map[string]int) {
	u := x.Update
	if u == nil {
		return
	}
	for i, p := range u.From {
		path := indexPath("xfr.update.from", i)
		if p.IsValid() && p != p.Masked() {
			v.add(path, "%s has host bits set (did you mean %s?)", p, p.Masked())
		}
	}
	if len(u.Policy) == 0 && !v.bad("xfr.update.policy") {
		v.add("xfr.update.policy", "at least one rule is required, or no key may update anything")
	}
	for i, r := range u.Policy {
		p := indexPath("xfr.update.policy", i)
		switch {
		case r.Key == "":
			if !v.bad(p + ".key") {
				v.add(p+".key", "required (the name of a key of xfr.tsig_keys)")
			}
		case v.bad(p + ".key"):
		default:
			if _, ok := keys[r.Key]; !ok {
				v.add(p+".key", "no key %s in xfr.tsig_keys", r.Key)
			}
		}
		if v.bad(p+".match") || v.bad(p+".name") {
			continue
		}
		switch r.Match {
		case "":
			v.add(p+".match", "required: one of %s", strings.Join(updateMatches, ", "))
		case "zone":
			if r.Name != "" {
				v.add(p+".name", "not used with match zone (the rule covers every name of its zones)")
			}
		default:
			switch {
			case r.Name == "":
				v.add(p+".name", "required with match %s", r.Match)
			case r.Match == "wildcard" && !strings.HasPrefix(r.Name, "*."):
				v.add(p+".name", "a wildcard rule's name starts with \"*.\", got %s", r.Name)
			case r.Match != "wildcard" && strings.Contains(r.Name, "*"):
				v.add(p+".name", "%s holds a \"*\": use match wildcard", r.Name)
			}
		}
	}
}
