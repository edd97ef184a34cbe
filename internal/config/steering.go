package config

import (
	"net/netip"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Steering places the clients of steered answers (docs/steering.md) for
// the geo and latency policies of the pools that have no region map of
// their own: an operator's prefix→region map and, for the clients none
// of its prefixes holds, a geolocation database in the MaxMind DB format
// whose countries and continents map to regions. The node reads the
// database at start and on every reload (SIGHUP); a database that cannot
// be read stops the start, or keeps the running map on reload.
//
// Every PoP must be given the same map, or one client gets different
// answers at different PoPs: the node's status shows a digest of the map
// in force (steering.geo.digest) to compare.
type Steering struct {
	// Regions maps client prefixes (masked) to regions, longest prefix
	// first; they win over the database. At most MaxSteeringRegions.
	Regions map[netip.Prefix]string
	// GeoDatabase is a MaxMind DB file: GeoLite2 or GeoIP2 Country or
	// City, or another database of that format ("" = none); relative to
	// the configuration's directory.
	GeoDatabase string
	// Countries maps ISO 3166-1 alpha-2 country codes (DE) to regions; a
	// network's country is its country, else its registered country.
	Countries map[string]string
	// Continents maps continent codes (AF AN AS EU NA OC SA) to regions,
	// for the networks whose country is not in Countries.
	Continents map[string]string
}

// MaxSteeringRegions bounds steering.regions.
const MaxSteeringRegions = 100000

// maxRegionName is the longest region name, as in a pool (steer.Validate).
const maxRegionName = 63

var continents = map[string]bool{"AF": true, "AN": true, "AS": true, "EU": true, "NA": true, "OC": true, "SA": true}

func (d *decoder) steering(n *yaml.Node, path string, s *Steering) {
	d.mapping(n, path, []field{
		{"regions", func(n *yaml.Node, p string) {
			s.Regions = map[netip.Prefix]string{}
			d.pairs(n, p, func(k *yaml.Node, kp, key, value string) {
				pr, err := parsePrefix(key)
				if err != nil {
					d.errorAt(k, kp, "%v", err)
					return
				}
				if _, dup := s.Regions[pr]; dup {
					d.errorAt(k, kp, "prefix %s given twice", pr)
					return
				}
				s.Regions[pr] = value
			})
		}},
		{"geo_database", func(n *yaml.Node, p string) { d.file(n, p, &s.GeoDatabase) }},
		{"countries", func(n *yaml.Node, p string) {
			s.Countries = map[string]string{}
			d.pairs(n, p, func(_ *yaml.Node, _, key, value string) { s.Countries[key] = value })
		}},
		{"continents", func(n *yaml.Node, p string) {
			s.Continents = map[string]string{}
			d.pairs(n, p, func(_ *yaml.Node, _, key, value string) { s.Continents[key] = value })
		}},
	})
}

// pairKey is the path of a free key (a prefix, a country code) of the
// mapping at path: always quoted, as it is data and not a field.
func pairKey(path, key string) string { return path + "[" + strconv.Quote(key) + "]" }

// pairs decodes a mapping of free keys to strings, calling set with each
// key node, its path, the key and the value; duplicate keys are reported.
func (d *decoder) pairs(n *yaml.Node, path string, set func(k *yaml.Node, kp, key, value string)) {
	if n = d.value(n, path); n == nil {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorAt(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	first := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
			d.errorAt(k, path, "a key must be a plain string, got %s", describe(k))
			continue
		}
		kp := pairKey(path, k.Value)
		if line, dup := first[k.Value]; dup {
			d.errorAt(k, kp, "duplicate key (first at line %d)", line)
			continue
		}
		first[k.Value] = k.Line
		d.src.pos[kp] = position{k.Line, k.Column}
		var value string
		d.str(v, kp, &value)
		if d.stopped {
			return
		}
		set(k, kp, k.Value, value)
	}
}

func (v *validator) steering(s *Steering) {
	if len(s.Regions) > MaxSteeringRegions {
		v.add("steering.regions", "%d prefixes, at most %d", len(s.Regions), MaxSteeringRegions)
	}
	for p, region := range s.Regions {
		kp := pairKey("steering.regions", p.String())
		switch {
		case !p.IsValid() || p.Addr().Is4In6() || p.Addr().Zone() != "":
			v.add(kp, "not a plain IPv4 or IPv6 prefix")
		case p.Masked() != p:
			v.add(kp, "host bits set (did you mean %s?)", p.Masked())
		}
		v.regionName(kp, region)
	}
	for code, region := range s.Countries {
		kp := pairKey("steering.countries", code)
		if len(code) != 2 || code[0] < 'A' || code[0] > 'Z' || code[1] < 'A' || code[1] > 'Z' {
			v.add(kp, "%q is not an ISO 3166-1 alpha-2 country code in capitals (like DE, US)", code)
		}
		v.regionName(kp, region)
	}
	for code, region := range s.Continents {
		kp := pairKey("steering.continents", code)
		if !continents[code] {
			v.add(kp, "%q is not a continent code (AF, AN, AS, EU, NA, OC, SA)", code)
		}
		v.regionName(kp, region)
	}
	mapped := len(s.Countries)+len(s.Continents) > 0
	switch {
	case s.GeoDatabase == "" && len(s.Countries) > 0:
		v.add("steering.countries", "needs steering.geo_database, where the countries come from")
	case s.GeoDatabase == "" && len(s.Continents) > 0:
		v.add("steering.continents", "needs steering.geo_database, where the continents come from")
	case s.GeoDatabase != "" && !mapped:
		v.add("steering.geo_database", "maps nothing: set steering.countries or steering.continents to regions")
	}
}

func (v *validator) regionName(path, region string) {
	if region == "" || len(region) > maxRegionName {
		v.add(path, "region %q: 1 to %d characters", region, maxRegionName)
	}
}
