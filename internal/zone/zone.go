// Package zone is the core data model: an immutable Zone built once from
// records and never modified afterwards, and a Set of zones that is swapped as
// a whole. Queries read snapshots without locks.
//
// Names are kept as lower-cased uncompressed wire names; record data as
// uncompressed rdata, ready to be copied into responses by package wire.
//
// The package does no I/O beyond reading zone files in Load and no logging.
package zone

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"iter"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/wire"
)

// RRset is all records of one type at one name.
//
// The records are kept in one byte slice, each as a 2-byte big-endian length
// and the rdata: a 1,000,000-name zone is then a few large allocations
// instead of several small ones per record. All, First and Len read them.
type RRset struct {
	Type uint16
	file uint16 // where the first record came from, for error messages
	TTL  uint32
	line uint32 // of the first record
	n    uint32 // number of records in data
	data []byte // the records: uncompressed rdata, each after its length
	// sigs holds the RRSIG records covering this type, nil if there are none.
	sigs *sigList
}

type sigList struct {
	ttl  uint32
	n    uint32
	data []byte // as RRset.data
}

// NewRRset makes an RRset of type t from rdata, e.g. to print records with
// RRs.
func NewRRset(t uint16, ttl uint32, rdata ...[]byte) RRset {
	s := RRset{Type: t, TTL: ttl, n: uint32(len(rdata))}
	for _, rd := range rdata {
		s.data = appendRecord(s.data, rd)
	}
	return s
}

func appendRecord(data, rd []byte) []byte {
	data = append(data, byte(len(rd)>>8), byte(len(rd)))
	return append(data, rd...)
}

// Len returns the number of records.
func (s *RRset) Len() int { return int(s.n) }

// First returns the rdata of the first record (nil for an empty set).
func (s *RRset) First() []byte {
	rd, _ := nextRecord(s.data)
	return rd
}

// All yields the rdata of each record. The slices alias the zone's memory and
// must not be modified.
func (s *RRset) All() iter.Seq[[]byte] { return records(s.data) }

// Head returns the first record's rdata (nil for an empty set) and the
// records after it, for a loop on the query path that neither allocates
// nor keeps an iterator in memory:
//
//	for rd, rest := set.Head(); rd != nil; rd, rest = zone.Tail(rest) {
//		use(rd)
//	}
//
// The slices alias the zone's memory and must not be modified.
func (s *RRset) Head() (rd, rest []byte) { return nextRecord(s.data) }

// SigHead is Head for the covering RRSIG records.
func (s *RRset) SigHead() (rd, rest []byte) {
	if s.sigs == nil {
		return nil, nil
	}
	return nextRecord(s.sigs.data)
}

// Tail returns the next record's rdata (nil at the end) and the records
// after it; see Head.
func Tail(rest []byte) (rd, next []byte) { return nextRecord(rest) }

// SigLen returns the number of RRSIG records covering the set.
func (s *RRset) SigLen() int {
	if s.sigs == nil {
		return 0
	}
	return int(s.sigs.n)
}

// SigTTL returns the TTL of the RRSIG records covering the set.
func (s *RRset) SigTTL() uint32 {
	if s.sigs == nil {
		return 0
	}
	return s.sigs.ttl
}

// Sigs yields the rdata of each RRSIG record covering the set.
func (s *RRset) Sigs() iter.Seq[[]byte] {
	if s.sigs == nil {
		return records(nil)
	}
	return records(s.sigs.data)
}

// WithoutSigs returns a copy of the set without its RRSIGs.
func (s *RRset) WithoutSigs() RRset {
	c := *s
	c.sigs = nil
	return c
}

// SigSet returns the RRSIGs covering the set as an RRset of type RRSIG (for
// printing with RRs).
func (s *RRset) SigSet() RRset {
	if s.sigs == nil {
		return RRset{Type: dns.TypeRRSIG}
	}
	return RRset{Type: dns.TypeRRSIG, TTL: s.sigs.ttl, n: s.sigs.n, data: s.sigs.data}
}

func records(data []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for rd, rest := nextRecord(data); rd != nil; rd, rest = nextRecord(rest) {
			if !yield(rd) {
				return
			}
		}
	}
}

// nextRecord splits the first record off data; rd is nil at the end.
func nextRecord(data []byte) (rd, rest []byte) {
	if len(data) < 2 {
		return nil, nil
	}
	n := int(data[0])<<8 | int(data[1])
	data = data[2:]
	if n > len(data) {
		return nil, nil
	}
	return data[:n:n], data[n:]
}

// Node is one owner name in a zone, possibly an empty non-terminal.
type Node struct {
	Name []byte // lower-cased uncompressed wire name
	Sets []RRset
	// Cut is the delegation point (a non-apex node with NS) at or above this
	// node, the highest one; nil when the node is not at or below a cut.
	Cut *Node
	// DNAME is the closest ancestor (not the node itself) owning a DNAME,
	// nil if there is none and the node is not below a cut.
	DNAME *Node
	// Wildcard is the "*" child of this node, if any.
	Wildcard *Node
}

// Get returns the RRset of type t, or nil.
func (n *Node) Get(t uint16) *RRset {
	for i := range n.Sets {
		if n.Sets[i].Type == t {
			return &n.Sets[i]
		}
	}
	return nil
}

// Empty reports whether the node is an empty non-terminal.
func (n *Node) Empty() bool { return len(n.Sets) == 0 }

// NSEC3Param describes the NSEC3 chain of a zone.
type NSEC3Param struct {
	Hash       uint8
	Iterations uint16
	Salt       []byte
}

type nsec3Entry struct {
	hash []byte // raw hash, owner's first label decoded
	node *Node
}

// Zone is an immutable authoritative zone: one version of it. A new
// version (Apply) shares every node the change does not touch with the
// version it came from, and so do the indexes: the names, the
// canonical order and the NSEC and NSEC3 chains (see names.go and
// btree.go). Readers use a version without locks.
type Zone struct {
	Origin string    // presentation form, lower case, fully qualified
	origin []byte    // wire form
	names  nameIndex // every node by name
	// order holds every node in canonical order (transfers, Diff's
	// output, Apply) and the in-zone name servers of delegations (glue
	// checks). Load and queries do not need it: it is built on first use
	// for a zone from Build, and carried on by Apply.
	orderOnce sync.Once
	order     *orderIndex
	Apex      *Node
	Serial    uint32
	// NegTTL is min(SOA TTL, SOA MINIMUM) (RFC 2308 §5).
	NegTTL uint32
	// Signed is true when the apex carries a DNSKEY RRset and signatures.
	Signed bool
	// nsec holds every node with an NSEC RRset in canonical order.
	nsec btree[*Node]
	// NSEC3 is the chain's parameters when the zone uses NSEC3.
	NSEC3   *NSEC3Param
	nsec3   btree[nsec3Entry]
	Records int // number of records, for metrics and logs
	Source  string
	// files names the places RRsets came from (RRset.file) in errors.
	files []string
	// lineage is the same for a built zone and every version Apply made
	// from it, directly or not (Derived).
	lineage uint64
}

// lineages numbers the zones Build makes.
var lineages atomic.Uint64

// Derived reports whether z and old are versions of one built zone, one
// made from the other by Apply (directly or through versions between):
// then DiffWire of the two costs what differs, not the zone.
func (z *Zone) Derived(old *Zone) bool {
	return z != nil && old != nil && z.lineage != 0 && z.lineage == old.lineage
}

// orderIndex is the part of a zone's indexes that Build leaves to first
// use.
type orderIndex struct {
	canon btree[*Node] // every node, canonical order
	glue  btree[nsRef] // delegations' in-zone name servers, by name server
}

// nsRef says that the delegation at cut names the in-zone name server
// target, which lies outside the delegation itself (glue below the cut
// itself is checked from the cut's side).
type nsRef struct {
	target []byte
	cut    []byte
}

// Lookup returns the node for a lower-cased wire name, or nil.
func (z *Zone) Lookup(name []byte) *Node { return z.names.get(name) }

// OriginWire returns the origin in wire form.
func (z *Zone) OriginWire() []byte { return z.origin }

// Len returns the number of nodes, empty non-terminals included.
func (z *Zone) Len() int { return z.names.count }

// Nodes calls fn for every node in canonical order.
func (z *Zone) Nodes(fn func(*Node)) {
	z.index().canon.ascend(nil, func(n *Node) bool { fn(n); return true })
}

// Prepare builds the indexes that Build leaves to first use: the
// canonical order, which transfers, Apply and a DiffWire of unrelated
// versions need (about 0.4 s for a 1,000,000-name zone). A secondary or
// a store that expects changes calls it after a load, off the query path,
// so that the first change does not wait for it. Versions made by Apply
// have it already.
func (z *Zone) Prepare() { z.index() }

// index returns the order index, building it on first use.
func (z *Zone) index() *orderIndex {
	z.orderOnce.Do(func() {
		if z.order != nil {
			return
		}
		all := make([]*Node, 0, z.names.count)
		z.names.walk(func(n *Node) { all = append(all, n) })
		sortCanonical(all)
		z.order = &orderIndex{canon: bulkTree(all), glue: glueIndex(z.origin, all)}
	})
	return z.order
}

// nodeProbe compares nodes with name in canonical order.
func nodeProbe(name []byte) probe[*Node] {
	return func(n *Node) int { return Compare(n.Name, name) }
}

// CoveringNSEC returns the node whose NSEC record covers name (the last NSEC
// owner that sorts at or before name), or nil if the zone has no NSEC chain.
func (z *Zone) CoveringNSEC(name []byte) *Node {
	if z.nsec.Len() == 0 {
		return nil
	}
	if n, ok := z.nsec.lastAtOrBefore(func(n *Node) int { return Compare(n.Name, name) }); ok {
		return n
	}
	n, _ := z.nsec.last()
	return n
}

// NSEC3Match returns the node owning the NSEC3 record whose hash equals h, and
// the node whose NSEC3 record covers h (its hash is the last one before h, with
// wrap-around). Either may be nil when the zone has no NSEC3 chain.
func (z *Zone) NSEC3Match(h []byte) (match, cover *Node) {
	if z.nsec3.Len() == 0 {
		return nil, nil
	}
	p := func(e nsec3Entry) int { return bytes.Compare(e.hash, h) }
	if e, ok := z.nsec3.get(p); ok {
		match = e.node
	}
	e, ok := z.nsec3.lastBefore(p)
	if !ok {
		e, _ = z.nsec3.last()
	}
	return match, e.node
}

// HashName computes the NSEC3 hash of a wire name with the zone's parameters
// (nil without NSEC3). The query path uses NSEC3Lookup, which does not
// allocate.
func (z *Zone) HashName(name []byte) []byte {
	p := z.NSEC3
	if p == nil {
		return nil
	}
	h := nsec3Hash(name, p.Iterations, p.Salt)
	return h[:]
}

// NSEC3Lookup is NSEC3Match of the hash of a wire name: the node owning the
// NSEC3 record of name, and the node whose NSEC3 record covers its hash.
// Both are nil without an NSEC3 chain.
func (z *Zone) NSEC3Lookup(name []byte) (match, cover *Node) {
	p := z.NSEC3
	if p == nil {
		return nil, nil
	}
	h := nsec3Hash(name, p.Iterations, p.Salt)
	return z.NSEC3Match(h[:])
}

// Compare orders two lower-cased wire names canonically (RFC 4034 §6.1):
// label by label from the right, each label as a byte string.
func Compare(a, b []byte) int {
	var la, lb [128]int
	na := labelStarts(a, la[:0])
	nb := labelStarts(b, lb[:0])
	for i, j := len(na)-1, len(nb)-1; i >= 0 && j >= 0; i, j = i-1, j-1 {
		x := a[na[i]+1 : na[i]+1+int(a[na[i]])]
		y := b[nb[j]+1 : nb[j]+1+int(b[nb[j]])]
		if c := bytes.Compare(x, y); c != 0 {
			return c
		}
	}
	return len(na) - len(nb)
}

func labelStarts(n []byte, dst []int) []int {
	for i := 0; i < len(n) && n[i] != 0; i += int(n[i]) + 1 {
		dst = append(dst, i)
	}
	return dst
}

// SerialLess compares two SOA serials with RFC 1982 arithmetic.
func SerialLess(a, b uint32) bool {
	return a != b && (a < b && b-a < 1<<31 || a > b && a-b > 1<<31)
}

// Set is an immutable collection of zones, looked up by the longest match.
//
// A zone of the set may be marked expired (WithExpired): a secondary zone
// that no primary confirmed within its SOA expire. It stays in the set, so
// that queries below it still find it (and are answered SERVFAIL, not
// REFUSED or from a parent zone), but its data must not be served.
type Set struct {
	zones map[string]*Zone
	// expired holds the origins (wire form) of the expired zones; nil
	// when there are none, so the query path checks one length.
	expired map[string]struct{}
}

// NewSet builds a Set from zones; later zones replace earlier ones of the same
// origin.
func NewSet(zones ...*Zone) *Set {
	s := &Set{zones: make(map[string]*Zone, len(zones))}
	for _, z := range zones {
		s.zones[string(z.origin)] = z
	}
	return s
}

// With returns a new Set with z added or replaced; z is not expired.
func (s *Set) With(z *Zone) *Set {
	n := &Set{zones: make(map[string]*Zone, len(s.zones)+1)}
	for k, v := range s.zones {
		n.zones[k] = v
	}
	n.zones[string(z.origin)] = z
	n.copyExpired(s, string(z.origin))
	return n
}

// Without returns a new Set without the zone of the given origin (wire form).
func (s *Set) Without(origin []byte) *Set {
	n := &Set{zones: make(map[string]*Zone, len(s.zones))}
	for k, v := range s.zones {
		if k != string(origin) {
			n.zones[k] = v
		}
	}
	n.copyExpired(s, string(origin))
	return n
}

// WithExpired returns a new Set with the zones added (or replaced) and
// marked expired: Find and Get still return them, Expired reports them.
func (s *Set) WithExpired(zones ...*Zone) *Set {
	n := &Set{zones: make(map[string]*Zone, s.Len()+len(zones))}
	if s != nil {
		for k, v := range s.zones {
			n.zones[k] = v
		}
		n.copyExpired(s, "")
	}
	for _, z := range zones {
		if n.expired == nil {
			n.expired = make(map[string]struct{}, len(zones))
		}
		n.zones[string(z.origin)] = z
		n.expired[string(z.origin)] = struct{}{}
	}
	return n
}

// copyExpired copies the expired marks of from, but the one of skip.
func (s *Set) copyExpired(from *Set, skip string) {
	for k := range from.expired {
		if k == skip {
			continue
		}
		if s.expired == nil {
			s.expired = make(map[string]struct{}, len(from.expired))
		}
		s.expired[k] = struct{}{}
	}
}

// Expired reports whether z, a zone of the set, is marked expired.
func (s *Set) Expired(z *Zone) bool {
	if s == nil || len(s.expired) == 0 || z == nil {
		return false
	}
	_, ok := s.expired[string(z.origin)]
	return ok
}

// ExpiredLen returns the number of expired zones.
func (s *Set) ExpiredLen() int {
	if s == nil {
		return 0
	}
	return len(s.expired)
}

// Find returns the zone with the longest origin at or above name (lower-cased
// wire form), or nil.
func (s *Set) Find(name []byte) *Zone {
	if s == nil {
		return nil
	}
	for {
		if z, ok := s.zones[string(name)]; ok {
			return z
		}
		if len(name) == 0 || name[0] == 0 {
			return nil
		}
		name = wire.Parent(name)
	}
}

// Get returns the zone of exactly this origin (presentation form).
func (s *Set) Get(origin string) *Zone {
	if s == nil {
		return nil
	}
	w, err := NameWire(origin)
	if err != nil {
		return nil
	}
	return s.zones[string(w)]
}

// Zones returns the zones sorted by origin, expired ones included.
func (s *Set) Zones() []*Zone {
	if s == nil {
		return nil
	}
	out := make([]*Zone, 0, len(s.zones))
	for _, z := range s.zones {
		out = append(out, z)
	}
	slices.SortFunc(out, func(a, b *Zone) int { return Compare(a.origin, b.origin) })
	return out
}

// Len returns the number of zones, expired ones included.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.zones)
}

// NameWire converts a presentation name to lower-cased uncompressed wire form.
func NameWire(name string) ([]byte, error) {
	buf := make([]byte, wire.MaxName+1)
	n, err := dns.PackDomainName(dns.Fqdn(name), buf, 0, nil, false)
	if err != nil {
		return nil, fmt.Errorf("name %q: %w", name, err)
	}
	out := buf[:n]
	return wire.LowerName(out, out), nil
}

// NameString converts a wire name to presentation form.
func NameString(name []byte) string {
	s, _, err := dns.UnpackDomainName(name, 0)
	if err != nil {
		return fmt.Sprintf("<bad name %x>", name)
	}
	return s
}

// RRs returns the records of the set as miekg/dns values with the given
// owner, the covering RRSIGs after them, for transfers, printing and tests.
func (s *RRset) RRs(owner string) ([]dns.RR, error) {
	out := make([]dns.RR, 0, s.Len()+s.SigLen())
	for rd := range s.All() {
		rr, err := unpackRdata(owner, s.Type, s.TTL, rd)
		if err != nil {
			return nil, err
		}
		out = append(out, rr)
	}
	for rd := range s.Sigs() {
		rr, err := unpackRdata(owner, dns.TypeRRSIG, s.SigTTL(), rd)
		if err != nil {
			return nil, err
		}
		out = append(out, rr)
	}
	return out, nil
}

func unpackRdata(owner string, t uint16, ttl uint32, rd []byte) (dns.RR, error) {
	msg := make([]byte, 0, len(owner)+12+len(rd))
	ow, err := NameWire(owner)
	if err != nil {
		return nil, err
	}
	msg = append(msg, ow...)
	msg = binary.BigEndian.AppendUint16(msg, t)
	msg = binary.BigEndian.AppendUint16(msg, dns.ClassINET)
	msg = binary.BigEndian.AppendUint32(msg, ttl)
	msg = binary.BigEndian.AppendUint16(msg, uint16(len(rd)))
	msg = append(msg, rd...)
	rr, _, err := dns.UnpackRR(msg, 0)
	return rr, err
}

// RRSIGCovered returns the type covered by an RRSIG rdata.
func RRSIGCovered(rd []byte) uint16 {
	if len(rd) < 2 {
		return 0
	}
	return binary.BigEndian.Uint16(rd)
}
