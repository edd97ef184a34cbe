// Package geodb reads a geolocation database in the MaxMind DB format
// (GeoLite2 or GeoIP2 Country or City, or any database of that format whose
// records carry country.iso_code, registered_country.iso_code or
// continent.code) into the networks of a steer.GeoMap, mapped to the
// operator's regions. The database is read once, at load time, and closed:
// the query path never touches it (steer.NewGeoMapDB keeps the networks as
// a table of address ranges that is looked up without allocating).
package geodb

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/anycastdns/anycastdns/internal/steer"
	"github.com/oschwald/maxminddb-golang/v2"
)

// Mapping says which region a network is in: its country's (ISO 3166-1
// alpha-2 code: country.iso_code, else registered_country.iso_code), else
// its continent's (continent.code: AF, AN, AS, EU, NA, OC, SA). A network
// whose codes map to no region is left out.
type Mapping struct {
	Countries  map[string]string
	Continents map[string]string
}

// Info describes a database that was read.
type Info struct {
	Type      string    // the database_type of its metadata, e.g. GeoLite2-Country
	Built     time.Time // its build_epoch
	Networks  int       // networks with data in it
	Mapped    int       // of which in a region of the Mapping
	Countries int       // distinct country codes met
}

// record is what the database tells of a network; the decoder reads only
// these fields.
type record struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	RegisteredCountry struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
	Continent struct {
		Code string `maxminddb:"code"`
	} `maxminddb:"continent"`
}

// Load reads the database at path and returns its networks that m maps to
// a region. Every error names the file.
func Load(path string, m Mapping) ([]steer.GeoNetwork, Info, error) {
	var info Info
	r, err := maxminddb.Open(path)
	if err != nil {
		return nil, info, fmt.Errorf("geo database %s: %w", path, err)
	}
	defer func() { _ = r.Close() }() // read-only: nothing is lost
	info.Type = r.Metadata.DatabaseType
	info.Built = r.Metadata.BuildTime()
	// Many networks share one record (all of a country's, in a Country
	// database): decode each record once.
	regionAt := map[uintptr]string{}
	countries := map[string]bool{}
	var out []steer.GeoNetwork
	for res := range r.Networks() {
		if err := res.Err(); err != nil {
			return nil, info, fmt.Errorf("geo database %s: reading the networks: %w", path, err)
		}
		p := res.Prefix()
		if !p.IsValid() || p.Addr().Is4In6() {
			continue // an alias of the IPv4 networks, met once as IPv4
		}
		info.Networks++
		region, seen := regionAt[res.Offset()]
		if !seen {
			var rec record
			if err := res.Decode(&rec); err != nil {
				return nil, info, fmt.Errorf("geo database %s: network %s: %w", path, p, err)
			}
			country := rec.Country.ISOCode
			if country == "" {
				country = rec.RegisteredCountry.ISOCode
			}
			if country != "" {
				countries[country] = true
			}
			region = m.Countries[country]
			if region == "" {
				region = m.Continents[rec.Continent.Code]
			}
			regionAt[res.Offset()] = region
		}
		if region != "" {
			out = append(out, steer.GeoNetwork{Prefix: netip.PrefixFrom(p.Addr(), p.Bits()), Region: region})
			info.Mapped++
		}
	}
	info.Countries = len(countries)
	if info.Networks == 0 {
		return nil, info, fmt.Errorf("geo database %s: %w", path, ErrEmpty)
	}
	return out, info, nil
}

// ErrEmpty is a database without a network that has data.
var ErrEmpty = errors.New("no network with data")
