package steer

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
)

// A geolocation database (a MaxMind DB, read by package geodb) places the
// clients that no prefix of the operator's map holds. Its networks become,
// at load time, a sorted table of disjoint address ranges, each with the
// index of its region: the prefixes of the operator's map are cut out of
// them (the map wins), and adjacent ranges of one region are merged (a
// country database of some 500,000 networks mapped to a few regions is a
// few thousand ranges). A lookup is a binary search over that table: no
// map, no allocation, whatever the database.

// GeoNetwork is a network of a geolocation database and the region of the
// clients in it.
type GeoNetwork struct {
	Prefix netip.Prefix
	Region string
}

// geoSpan is a range of the 16-byte address space, first and last
// included.
type geoSpan struct {
	first, last geoKey
	region      uint16
}

var allOnes = geoKey{hi: ^uint64(0), lo: ^uint64(0)}

func less(a, b geoKey) bool { return a.hi < b.hi || a.hi == b.hi && a.lo < b.lo }

func compareKey(a, b geoKey) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

func inc(k geoKey) geoKey {
	lo, carry := bits.Add64(k.lo, 1, 0)
	return geoKey{hi: k.hi + carry, lo: lo}
}

func dec(k geoKey) geoKey {
	lo, borrow := bits.Sub64(k.lo, 1, 0)
	return geoKey{hi: k.hi - borrow, lo: lo}
}

// hostMask has the last 128-n bits set.
func hostMask(n int) geoKey {
	m := geoKey{hi: ^uint64(0) >> n, lo: ^uint64(0)} // a shift by 64 or more gives 0
	if n > 64 {
		m.lo = ^uint64(0) >> (n - 64)
	}
	return m
}

// spanOf is the range of p in the 16-byte address space.
func spanOf(p netip.Prefix, region uint16) geoSpan {
	first := keyOf(p)
	n := p.Bits()
	if p.Addr().Is4() {
		n += 96
	}
	m := hostMask(n)
	return geoSpan{first: first, last: geoKey{hi: first.hi | m.hi, lo: first.lo | m.lo}, region: region}
}

// addNetworks builds the range tables of db, apart from the prefixes of m.
func (g *GeoMap) addNetworks(m map[netip.Prefix]string, db []GeoNetwork) error {
	if len(db) == 0 {
		return nil
	}
	index := map[string]uint16{}
	var raw4, raw6 []geoSpan
	for _, n := range db {
		p := n.Prefix
		if !p.IsValid() || p.Masked() != p || p.Addr().Is4In6() {
			return fmt.Errorf("geo database: network %s: not a masked IPv4 or IPv6 prefix", p)
		}
		if n.Region == "" {
			return fmt.Errorf("geo database: network %s: empty region", p)
		}
		r, ok := index[n.Region]
		if !ok {
			if len(g.regions) > 0xffff {
				return fmt.Errorf("geo database: more than %d regions", 0x10000)
			}
			r = uint16(len(g.regions))
			index[n.Region] = r
			g.regions = append(g.regions, n.Region)
		}
		if p.Addr().Is4() {
			raw4 = append(raw4, spanOf(p, r))
		} else {
			raw6 = append(raw6, spanOf(p, r))
		}
	}
	var cut4, cut6 []geoSpan
	for p := range m {
		if p.Addr().Is4() {
			cut4 = append(cut4, spanOf(p, 0))
		} else {
			cut6 = append(cut6, spanOf(p, 0))
		}
	}
	var err error
	if g.spans4, err = spans(raw4, cut4); err != nil {
		return err
	}
	if g.spans6, err = spans(raw6, cut6); err != nil {
		return err
	}
	g.bucket4, g.bucket6 = buckets(g.spans4, true), buckets(g.spans6, false)
	return nil
}

// bucketOf is the bucket of an address: its first 16 bits.
func bucketOf(k geoKey, v4 bool) int {
	if v4 {
		return int(k.lo>>16) & 0xffff
	}
	return int(k.hi >> 48)
}

// buckets indexes the sorted ranges t by the bucket of their first
// address: the ranges that start in bucket b are t[i[b]:i[b+1]], so that
// a lookup searches a few ranges instead of all of them.
func buckets(t []geoSpan, v4 bool) []uint32 {
	if len(t) == 0 {
		return nil // lookupSpan never reads the index of an empty table
	}
	idx := make([]uint32, 0, 1<<16+1)
	n := 0
	for b := range 1<<16 + 1 {
		for n < len(t) && bucketOf(t[n].first, v4) < b {
			n++
		}
		idx = append(idx, uint32(n))
	}
	return idx
}

func sortSpans(s []geoSpan) {
	slices.SortFunc(s, func(a, b geoSpan) int { return compareKey(a.first, b.first) })
}

// spans sorts the networks raw, refuses overlapping ones, cuts the ranges
// of cut out of them and merges adjacent ranges of one region.
func spans(raw, cut []geoSpan) ([]geoSpan, error) {
	sortSpans(raw)
	for i := 1; i < len(raw); i++ {
		if !less(raw[i-1].last, raw[i].first) {
			return nil, fmt.Errorf("geo database: networks overlap at %s", addrOfKey(raw[i].first))
		}
	}
	// The union of the cuts, sorted and disjoint.
	sortSpans(cut)
	union := cut[:0]
	for _, c := range cut {
		if n := len(union); n > 0 && (union[n-1].last == allOnes || !less(inc(union[n-1].last), c.first)) {
			if less(union[n-1].last, c.last) {
				union[n-1].last = c.last
			}
			continue
		}
		union = append(union, c)
	}
	out := make([]geoSpan, 0, len(raw))
	j := 0
	for _, s := range raw {
		for j < len(union) && less(union[j].last, s.first) {
			j++
		}
		cur, alive := s, true
		for k := j; k < len(union) && !less(s.last, union[k].first); k++ {
			c := union[k]
			if less(cur.first, c.first) {
				out = appendSpan(out, geoSpan{first: cur.first, last: dec(c.first), region: cur.region})
			}
			if !less(c.last, cur.last) {
				alive = false
				break
			}
			cur.first = inc(c.last)
		}
		if alive {
			out = appendSpan(out, cur)
		}
	}
	return slices.Clip(out), nil
}

// appendSpan appends s to out, merged with the last range when they touch
// and share a region.
func appendSpan(out []geoSpan, s geoSpan) []geoSpan {
	if n := len(out); n > 0 && out[n-1].region == s.region && inc(out[n-1].last) == s.first {
		out[n-1].last = s.last
		return out
	}
	return append(out, s)
}

func addrOfKey(k geoKey) netip.Addr {
	var a [16]byte
	binary.BigEndian.PutUint64(a[:8], k.hi)
	binary.BigEndian.PutUint64(a[8:], k.lo)
	return netip.AddrFrom16(a).Unmap()
}

func clz(k geoKey) int {
	if k.hi != 0 {
		return bits.LeadingZeros64(k.hi)
	}
	return 64 + bits.LeadingZeros64(k.lo)
}

func ctz(k geoKey) int {
	if k.lo != 0 {
		return bits.TrailingZeros64(k.lo)
	}
	return 64 + bits.TrailingZeros64(k.hi)
}

// lookupSpan places the client c (its address hi:lo in the 16-byte form)
// by the database's ranges: the region of the range that holds all of c's
// bits, and the shortest prefix of c's address inside that range (every
// client of it is placed alike: the range holds no prefix of the map).
func (g *GeoMap) lookupSpan(hi, lo uint64, c Client, v4 bool) (string, uint8, bool) {
	table, n := g.spans6, int(c.Bits)
	if v4 {
		table, n = g.spans4, n+96
	}
	if len(table) == 0 {
		return "", 0, false
	}
	x := maskKey(hi, lo, n)
	m := hostMask(n)
	end := geoKey{hi: x.hi | m.hi, lo: x.lo | m.lo}
	// Only the ranges that start in x's bucket, or the one before them,
	// can hold x.
	b := bucketOf(x, v4)
	bucket := g.bucket6
	if v4 {
		bucket = g.bucket4
	}
	i, j := int(bucket[b]), int(bucket[b+1])
	for i < j {
		h := int(uint(i+j) >> 1)
		if less(x, table[h].first) {
			j = h
		} else {
			i = h + 1
		}
	}
	if i == 0 || less(table[i-1].last, end) {
		return "", 0, false
	}
	s := &table[i-1]
	// The block of x's first L bits starts at or after s.first from
	// L = min(common prefix with first + 1, 128 - trailing zeros of
	// first) on, and ends at or before s.last from L = min(common prefix
	// with last + 1, 128 - trailing ones of last) on.
	l1 := min(clz(geoKey{x.hi ^ s.first.hi, x.lo ^ s.first.lo})+1, 128-ctz(s.first))
	l2 := min(clz(geoKey{x.hi ^ s.last.hi, x.lo ^ s.last.lo})+1, 128-ctz(geoKey{^s.last.hi, ^s.last.lo}))
	scope := max(l1, l2)
	if v4 {
		scope = max(scope-96, 0)
	}
	return g.regions[s.region], uint8(scope), true
}

// sum is a digest of what the map places where: the prefixes of m and the
// database's ranges with their regions. Two maps with the same digest
// place every client alike.
func (g *GeoMap) sum(m map[netip.Prefix]string) string {
	h := sha256.New()
	prefixes := make([]netip.Prefix, 0, len(m))
	for p := range m {
		prefixes = append(prefixes, p)
	}
	slices.SortFunc(prefixes, func(a, b netip.Prefix) int {
		return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
	})
	var buf [34]byte
	for _, p := range prefixes {
		b, _ := p.MarshalBinary()
		h.Write(b)
		h.Write([]byte(m[p]))
		h.Write([]byte{0})
	}
	for _, table := range [][]geoSpan{g.spans4, g.spans6} {
		h.Write([]byte{0xff})
		for _, s := range table {
			binary.BigEndian.PutUint64(buf[0:], s.first.hi)
			binary.BigEndian.PutUint64(buf[8:], s.first.lo)
			binary.BigEndian.PutUint64(buf[16:], s.last.hi)
			binary.BigEndian.PutUint64(buf[24:], s.last.lo)
			h.Write(buf[:32])
			h.Write([]byte(g.regions[s.region]))
			h.Write([]byte{0})
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// Digest identifies what the map places where (16 hex digits): PoPs whose
// maps have the same digest place every client alike.
func (g *GeoMap) Digest() string {
	if g == nil {
		return ""
	}
	return g.digest
}

// Ranges is the number of address ranges the database's networks became
// (0 without a database).
func (g *GeoMap) Ranges() int {
	if g == nil {
		return 0
	}
	return len(g.spans4) + len(g.spans6)
}

// Prefixes is the number of prefixes of the operator's map.
func (g *GeoMap) Prefixes() int {
	if g == nil {
		return 0
	}
	n := 0
	for _, m := range g.byLen {
		n += len(m)
	}
	return n
}
