package steer

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Client is who an answer is for: an address and how many of its leading
// bits a decision may look at. From an ECS option (RFC 7871) the address
// is the option's, cut to its source prefix and to the privacy limit
// (MaxV4Bits, MaxV6Bits); without one it is the resolver's, cut likewise.
type Client struct {
	Addr netip.Addr // masked to Bits
	Bits uint8
	ECS  bool // the address came from an ECS option
}

// Source is what a query says about its client, kept raw until a steered
// answer needs it (Client): the resolver's address, and the ECS option's
// fields when the query had one.
type Source struct {
	Resolver  netip.Addr
	HasECS    bool
	ECSFamily uint16 // 1 IPv4, 2 IPv6
	ECSBits   uint8  // SOURCE PREFIX-LENGTH
	ECSAddr   []byte // ADDRESS, ceil(ECSBits/8) octets
}

// Client returns the client a decision is for: the ECS subnet when the
// query had one with a source prefix, else the resolver (a SOURCE
// PREFIX-LENGTH of 0 asks that the client's address not be used, RFC 7871
// §7.1.2), cut to the privacy limits.
func (s *Source) Client() Client {
	if !s.HasECS || s.ECSBits == 0 {
		return NewClient(s.Resolver, 128, false)
	}
	var a [16]byte
	copy(a[:], s.ECSAddr)
	addr := netip.AddrFrom16(a)
	if s.ECSFamily == 1 {
		addr = netip.AddrFrom4([4]byte(a[:4]))
	}
	return NewClient(addr, int(s.ECSBits), true)
}

// Privacy limits: the most of a client address a decision ever uses.
const (
	MaxV4Bits = 24
	MaxV6Bits = 56
)

// NewClient returns the client for addr with at most bits leading bits,
// cut to the privacy limit of its family.
func NewClient(addr netip.Addr, bits int, ecs bool) Client {
	addr = addr.Unmap()
	limit := MaxV6Bits
	if addr.Is4() {
		limit = MaxV4Bits
	}
	bits = max(min(bits, limit), 0)
	p, err := addr.Prefix(bits)
	if err != nil {
		return Client{}
	}
	return Client{Addr: p.Addr(), Bits: uint8(bits), ECS: ecs}
}

// EndpointState is what the monitors know of one endpoint.
type EndpointState struct {
	Down    bool    // a quorum of vantage points sees it down
	Load    float64 // connections or requests in flight
	HasLoad bool
}

// State is the input of decisions besides the pool and the client. It is
// immutable once given to an Engine: an update builds a new one.
type State struct {
	// Endpoints by Endpoint.Key; an endpoint missing is up, load unknown.
	Endpoints map[string]EndpointState
	// RTT from a region (of clients) to an endpoint (by key).
	RTT map[string]map[string]time.Duration
	// Geo maps client prefixes to regions; nil maps nothing.
	Geo *GeoMap
}

// GeoMap is an operator's prefix→region map, looked up by longest prefix,
// and optionally the networks of a geolocation database (NewGeoMapDB) for
// the clients no prefix of the map holds.
type GeoMap struct {
	byLen map[int]map[geoKey]geoEntry
	lens4 []int // prefix lengths present, longest first
	lens6 []int
	// The database's networks as sorted, disjoint ranges of the 16-byte
	// address space (IPv4 as ::ffff:a.b.c.d), apart from every prefix of
	// the map, adjacent ranges of one region merged.
	spans4, spans6   []geoSpan
	bucket4, bucket6 []uint32 // the ranges by the first 16 bits of their first address (buckets)
	regions          []string // a span's region by index
	digest           string
}

// geoKey is a masked prefix's address as two words: a cheaper map key
// than netip.Prefix, whose hash covers its zone handle too.
type geoKey struct{ hi, lo uint64 }

func keyOf(p netip.Prefix) geoKey {
	a := p.Masked().Addr().As16()
	return geoKey{hi: binary.BigEndian.Uint64(a[:8]), lo: binary.BigEndian.Uint64(a[8:])}
}

type geoEntry struct {
	region string
	nested bool // a longer prefix of the map lies inside this one
}

// NewGeoMap builds a map from prefix to region. Prefixes must be masked
// (no host bits) and given once.
func NewGeoMap(m map[netip.Prefix]string) (*GeoMap, error) {
	return NewGeoMapDB(m, nil)
}

// NewGeoMapDB builds a map from prefix to region, as NewGeoMap, that places
// the clients none of its prefixes holds by the networks of a
// geolocation database: masked, disjoint (as a MaxMind database's leaves
// are), each with its region. The prefixes of m win over the networks.
func NewGeoMapDB(m map[netip.Prefix]string, db []GeoNetwork) (*GeoMap, error) {
	g := &GeoMap{byLen: map[int]map[geoKey]geoEntry{}}
	for p, region := range m {
		if !p.IsValid() || p.Masked() != p || p.Addr().Is4In6() {
			return nil, fmt.Errorf("geo map: prefix %s: not a masked IPv4 or IPv6 prefix", p)
		}
		if region == "" {
			return nil, fmt.Errorf("geo map: prefix %s: empty region", p)
		}
		l := p.Bits()
		if p.Addr().Is6() {
			l += 1000 // keep the families apart
		}
		if g.byLen[l] == nil {
			g.byLen[l] = map[geoKey]geoEntry{}
			if p.Addr().Is4() {
				g.lens4 = append(g.lens4, p.Bits())
			} else {
				g.lens6 = append(g.lens6, p.Bits())
			}
		}
		g.byLen[l][keyOf(p)] = geoEntry{region: region}
	}
	slices.Sort(g.lens4)
	slices.Reverse(g.lens4)
	slices.Sort(g.lens6)
	slices.Reverse(g.lens6)
	if err := g.addNetworks(m, db); err != nil {
		return nil, err
	}
	g.digest = g.sum(m)
	// Mark the prefixes that have a longer one inside.
	for p := range m {
		lens, off := g.lens4, 0
		if p.Addr().Is6() {
			lens, off = g.lens6, 1000
		}
		for _, shorter := range lens {
			if shorter >= p.Bits() {
				continue
			}
			outer := keyOf(netip.PrefixFrom(p.Addr(), shorter))
			if e, ok := g.byLen[shorter+off][outer]; ok {
				e.nested = true
				g.byLen[shorter+off][outer] = e
			}
		}
	}
	return g, nil
}

// maskKey keeps the first bits of the 128-bit address hi:lo.
func maskKey(hi, lo uint64, bits int) geoKey {
	switch {
	case bits <= 0:
		return geoKey{}
	case bits < 64:
		return geoKey{hi: hi &^ (^uint64(0) >> bits)}
	case bits == 64:
		return geoKey{hi: hi}
	case bits < 128:
		return geoKey{hi: hi, lo: lo &^ (^uint64(0) >> (bits - 64))}
	}
	return geoKey{hi: hi, lo: lo}
}

// Lookup returns the region of c and the number of leading bits of c's
// address that the result depends on (its ECS scope); ok is false when no
// prefix of the map holds c. It looks only at c.Bits bits.
func (g *GeoMap) Lookup(c Client) (region string, scope uint8, ok bool) {
	if g == nil || !c.Addr.IsValid() {
		return "", c.Bits, false
	}
	if region, scope, ok := g.lookupPrefix(c); ok {
		return region, scope, true
	}
	a := c.Addr.As16()
	hi, lo := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])
	if region, scope, ok := g.lookupSpan(hi, lo, c, c.Addr.Is4()); ok {
		return region, scope, true
	}
	// Neither a prefix nor a range of the database holds c's address: the
	// same for every address that shares its bits.
	return "", c.Bits, false
}

// lookupPrefix is Lookup by the operator's prefixes alone.
func (g *GeoMap) lookupPrefix(c Client) (region string, scope uint8, ok bool) {
	lens, off := g.lens4, 0
	a := c.Addr.As16()
	hi, lo := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])
	if c.Addr.Is6() {
		lens, off = g.lens6, 1000
	}
	for _, l := range lens {
		if l > int(c.Bits) {
			continue
		}
		bits := l
		if off == 0 {
			bits += 96 // IPv4 in the low 32 bits of the 16-byte form
		}
		if e, found := g.byLen[l+off][maskKey(hi, lo, bits)]; found {
			if e.nested {
				// A longer prefix inside could match another client of
				// this one: the answer holds for c's bits only.
				return e.region, c.Bits, true
			}
			return e.region, uint8(l), true
		}
	}
	return "", 0, false
}
