package zone

import (
	"bytes"
	"crypto/sha1" //nolint:gosec // NSEC3 is defined with SHA-1 (RFC 5155)
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unsafe"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/wire"
)

// maxErrors bounds how many problems one load reports.
const maxErrors = 50

// maxFiles bounds the places (files, or labels such as "records[3]") a
// zone names; RRsets from beyond have none (RRset.file is this index).
const maxFiles = 1<<16 - 1

// Slab sizes: nodes, RRsets, names and rdata are carved out of large
// allocations (the zone is immutable, so nothing is freed one by one).
const (
	nodeSlab  = 1024
	setSlab   = 2048
	arenaSize = 1 << 20
)

type builder struct {
	originName string
	origin     []byte
	names      nameIndex // every node by name
	all        []*Node   // every node, in the order of creation
	files      []string
	fileIdx    map[string]uint16
	noLines    bool
	errs       []error
	records    int
	pend       []pendingSig
	buf        []byte
	name       []byte // scratch for addWire
	// The node whose records are arriving and its RRsets so far; they are
	// copied into the slabs when the next owner begins (flush).
	cur  *Node
	sets []pendingSet
	// Slabs.
	nodeMem []Node
	setMem  []RRset
	arena   []byte
	// lastFile caches fileIndex.
	lastFile    string
	lastFileIdx uint16
}

// pendingSet is an RRset of the current node being built; data is scratch
// memory reused from node to node.
type pendingSet struct {
	typ  uint16
	file uint16
	ttl  uint32
	line uint32
	n    uint32
	data []byte
}

func (b *builder) errorf(r Record, format string, args ...any) {
	if len(b.errs) >= maxErrors {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if r.RR != nil {
		h := r.RR.Header()
		msg = fmt.Sprintf("%s: %s %s: %s", r.Pos(), h.Name, dns.TypeToString[h.Rrtype], msg)
	} else if r.File != "" {
		msg = r.Pos() + ": " + msg
	}
	b.errs = append(b.errs, errors.New(msg))
}

// setErrorf reports a problem with the RRset of type t at n, naming the
// place of its first record.
func (b *builder) setErrorf(n *Node, t uint16, format string, args ...any) {
	r := Record{}
	if s := n.Get(t); s != nil && int(s.file) < len(b.files) {
		r.File = b.files[s.file]
		if !b.noLines {
			r.Line = int(s.line)
		}
	}
	msg := fmt.Sprintf(format, args...)
	b.errorf(r, "%s %s: %s", NameString(n.Name), dns.TypeToString[t], msg)
}

func (b *builder) fileIndex(f string) uint16 {
	if f == b.lastFile && len(b.files) > 0 {
		return b.lastFileIdx
	}
	i, ok := b.fileIdx[f]
	if !ok {
		if len(b.files) >= maxFiles {
			return maxFiles // past the limit, records have no place
		}
		i = uint16(len(b.files))
		b.files = append(b.files, f)
		b.fileIdx[f] = i
	}
	b.lastFile, b.lastFileIdx = f, i
	return i
}

// Build validates records and builds an immutable zone for origin.
//
// It rejects: a missing or repeated SOA, SOA below the apex, missing apex NS,
// CNAME beside other data (RRSIG/NSEC excepted) or repeated, several DNAMEs at
// one name, out-of-zone records, classes other than IN, duplicate records,
// records without data, missing glue for name servers inside an in-zone
// delegation, and RRSIGs covering no RRset. Every error names the record's
// file and line.
func Build(origin string, recs []Record) (*Zone, error) {
	b, err := newBuilder(origin, len(recs))
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		b.addRecord(r)
	}
	return b.build()
}

// newBuilder starts a zone for origin; sizeHint is the expected number of
// names (0 if unknown).
func newBuilder(origin string, sizeHint int) (*builder, error) {
	ow, err := NameWire(origin)
	if err != nil {
		return nil, fmt.Errorf("zone %s: %w", origin, err)
	}
	return &builder{
		originName: strings.ToLower(dns.Fqdn(origin)),
		origin:     ow,
		names:      newNameIndex(),
		all:        make([]*Node, 0, sizeHint),
		fileIdx:    make(map[string]uint16),
		buf:        make([]byte, 65536),
		name:       make([]byte, wire.MaxName+1),
	}, nil
}

// addRecord adds one parsed record; problems are collected.
func (b *builder) addRecord(r Record) {
	if r.RR == nil {
		if r.Line < 0 {
			b.noLines = true
		}
		return
	}
	var nameBuf [wire.MaxName + 1]byte
	ow := b.origin
	h := r.RR.Header()
	if h.Class != dns.ClassINET {
		b.errorf(r, "class %s not supported (only IN)", dns.ClassToString[h.Class])
		return
	}
	n, err := dns.PackDomainName(h.Name, nameBuf[:], 0, nil, false)
	if err != nil {
		b.errorf(r, "bad owner name: %v", err)
		return
	}
	name := wire.LowerName(nameBuf[:n], nameBuf[:n])
	if !wire.IsSubdomain(name, ow) {
		b.errorf(r, "out-of-zone data (not in %s)", b.originName)
		return
	}
	switch h.Rrtype {
	case dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeIXFR, dns.TypeAXFR, dns.TypeANY:
		b.errorf(r, "meta type not allowed in a zone")
		return
	}
	off, err := dns.PackRR(r.RR, b.buf, 0, nil, false)
	if err != nil {
		b.errorf(r, "cannot encode record: %v", err)
		return
	}
	rdata := b.buf[n+10 : off]
	if len(rdata) == 0 && !emptyRdataOK(h.Rrtype) {
		b.errorf(r, "record has no data")
		return
	}
	node := b.node(name)
	if h.Rrtype == dns.TypeRRSIG {
		b.pend = append(b.pend, pendingSig{node: node, rec: r, ttl: h.Ttl, rdata: bytes.Clone(rdata)})
		return
	}
	b.add(node, r, h.Rrtype, h.Ttl, rdata)
}

// addWire adds one record given in wire form (owner in any letter case) from
// the fast master-file parser. It does what addRecord does for the types the
// fast parser produces; they are never meta types or empty.
func (b *builder) addWire(owner []byte, t uint16, ttl uint32, rdata []byte, file string, line int) {
	name := wire.LowerName(b.name[:len(owner)], owner)
	r := Record{File: file, Line: line}
	if !wire.IsSubdomain(name, b.origin) {
		b.errorf(r, "%s: out-of-zone data (not in %s)", NameString(name), b.originName)
		return
	}
	var node *Node
	if b.cur != nil && bytes.Equal(b.cur.Name, name) {
		node = b.cur
	} else {
		node = b.node(name)
	}
	if t == dns.TypeRRSIG {
		b.pend = append(b.pend, pendingSig{node: node, rec: r, ttl: ttl, rdata: bytes.Clone(rdata)})
		return
	}
	b.add(node, r, t, ttl, rdata)
}

// build finishes the zone once every record was added.
func (b *builder) build() (*Zone, error) {
	b.flush()
	origin := b.originName
	for _, p := range b.pend {
		covered := RRSIGCovered(p.rdata)
		set := p.node.Get(covered)
		if set == nil {
			b.errorf(p.rec, "RRSIG covers %s, which has no RRset here", dns.TypeToString[covered])
			continue
		}
		if set.sigs == nil {
			set.sigs = &sigList{ttl: p.ttl}
		}
		set.sigs.data = appendRecord(set.sigs.data, p.rdata)
		set.sigs.n++
		b.records++
	}
	b.pend = nil
	z := &Zone{Origin: origin, origin: b.origin, Records: b.records, files: b.files, lineage: lineages.Add(1)}
	z.Apex = b.names.get(b.origin)
	b.finish(z)
	z.names = b.names // with the empty non-terminals finish added
	if len(b.errs) > 0 {
		if len(b.errs) >= maxErrors {
			b.errs = append(b.errs, fmt.Errorf("too many errors, stopped after %d", maxErrors))
		}
		return nil, fmt.Errorf("zone %s: %w: %w", origin, ErrInvalid, errors.Join(b.errs...))
	}
	return z, nil
}

// emptyRdataOK reports whether a type may have zero-length rdata: NULL, APL,
// and types unknown to the parser (RFC 3597 "\\# 0").
func emptyRdataOK(t uint16) bool {
	if t == dns.TypeNULL || t == dns.TypeAPL {
		return true
	}
	_, known := dns.TypeToRR[t]
	return !known
}

type pendingSig struct {
	node  *Node
	rec   Record
	ttl   uint32
	rdata []byte
}

// alloc returns n bytes of the arena.
func (b *builder) alloc(n int) []byte {
	if cap(b.arena)-len(b.arena) < n {
		b.arena = make([]byte, 0, max(n, arenaSize))
	}
	l := len(b.arena)
	b.arena = b.arena[:l+n]
	return b.arena[l : l+n : l+n]
}

func (b *builder) node(name []byte) *Node {
	if n := b.names.get(name); n != nil {
		return n
	}
	if len(b.nodeMem) == cap(b.nodeMem) {
		b.nodeMem = make([]Node, 0, nodeSlab)
	}
	b.nodeMem = append(b.nodeMem, Node{Name: b.alloc(len(name))})
	n := &b.nodeMem[len(b.nodeMem)-1]
	copy(n.Name, name)
	b.names.insertMut(tentry{hashName(n.Name), n})
	b.all = append(b.all, n)
	return n
}

// add adds a record to node, which becomes the current node.
func (b *builder) add(node *Node, r Record, t uint16, ttl uint32, rdata []byte) {
	if node != b.cur {
		b.flush()
		b.begin(node)
	}
	var set *pendingSet
	for i := range b.sets {
		if b.sets[i].typ == t {
			set = &b.sets[i]
			break
		}
	}
	if set == nil {
		line := r.Line
		if line < 0 || line > math.MaxUint32 {
			line = 0
		}
		set = b.newSet(t, ttl, b.fileIndex(r.File), uint32(line))
	}
	for old := range records(set.data) {
		if rdataEqual(t, old, rdata) {
			first := Record{Line: int(set.line)}
			if int(set.file) < len(b.files) {
				first.File = b.files[set.file]
			}
			b.errorf(r, "duplicate record (first at %s)", first.Pos())
			return
		}
	}
	if ttl < set.ttl {
		// RFC 2181 §5.2: all TTLs of an RRset must match; serve the lowest.
		set.ttl = ttl
	}
	set.data = appendRecord(set.data, rdata)
	set.n++
	b.records++
}

func (b *builder) newSet(t uint16, ttl uint32, file uint16, line uint32) *pendingSet {
	if len(b.sets) < cap(b.sets) {
		b.sets = b.sets[:len(b.sets)+1]
		s := &b.sets[len(b.sets)-1]
		*s = pendingSet{typ: t, ttl: ttl, file: file, line: line, data: s.data[:0]}
		return s
	}
	b.sets = append(b.sets, pendingSet{typ: t, ttl: ttl, file: file, line: line})
	return &b.sets[len(b.sets)-1]
}

// begin makes node the current one, taking up the RRsets it already has
// (its records need not be adjacent in the file).
func (b *builder) begin(node *Node) {
	b.cur = node
	b.sets = b.sets[:0]
	for i := range node.Sets {
		s := &node.Sets[i]
		p := b.newSet(s.Type, s.TTL, s.file, s.line)
		p.n = s.n
		p.data = append(p.data, s.data...)
	}
}

// flush stores the current node's RRsets, sorted by type, in the slabs.
func (b *builder) flush() {
	if b.cur == nil {
		return
	}
	k := len(b.sets)
	if k > cap(b.setMem)-len(b.setMem) {
		b.setMem = make([]RRset, 0, max(k, setSlab))
	}
	l := len(b.setMem)
	b.setMem = b.setMem[:l+k]
	sets := b.setMem[l : l+k : l+k]
	for i := range b.sets {
		p := &b.sets[i]
		data := b.alloc(len(p.data))
		copy(data, p.data)
		sets[i] = RRset{Type: p.typ, file: p.file, TTL: p.ttl, line: p.line, n: p.n, data: data}
	}
	slices.SortFunc(sets, func(a, b RRset) int { return int(a.Type) - int(b.Type) })
	b.cur.Sets = sets
	b.cur = nil
	b.sets = b.sets[:0]
}

// rdataEqual compares rdata as RRKey does: the names that canonical form
// lower-cases (rdataNames) compare without case, every other byte exactly.
func rdataEqual(t uint16, a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	if len(a) != len(b) {
		return false
	}
	if _, _, ok := rdataNames(t, a); !ok {
		return false
	}
	return bytes.Equal(canonicalRdata(t, a), canonicalRdata(t, b))
}

// canonicalRdata returns a copy of rdata with the names rdataNames finds
// lower-cased and every other byte untouched, or rd itself for types
// without such names.
func canonicalRdata(t uint16, rd []byte) []byte {
	if _, _, ok := rdataNames(t, rd); !ok {
		return rd
	}
	out := bytes.Clone(rd)
	lowerRdata(t, out)
	return out
}

// lowerRdata lower-cases in place the names of rd that canonical form
// lower-cases. Malformed rdata is left as far as it could be read.
func lowerRdata(t uint16, rd []byte) {
	prefix, names, ok := rdataNames(t, rd)
	if !ok || len(rd) < prefix {
		return
	}
	off := prefix
	for range names {
		if off = lowerNameAt(rd, off); off < 0 {
			return
		}
	}
}

// lowerNameAt lower-cases the uncompressed wire name at b[off:] in place
// and returns the offset after it, or -1 if the name runs out of b or is
// compressed.
func lowerNameAt(b []byte, off int) int {
	for off < len(b) && b[off] != 0 {
		l := int(b[off])
		if l&0xC0 != 0 || off+1+l > len(b) {
			return -1
		}
		wire.LowerName(b[off+1:off+1+l], b[off+1:off+1+l])
		off += 1 + l
	}
	if off >= len(b) {
		return -1
	}
	return off + 1 // the root label
}

// rdataNames says where, in rdata rd of type t, the domain names sit that
// the canonical form of RFC 4034 §6.2 lower-cases: names of them in a row,
// prefix bytes from the start. ok is false for every other type (their
// names, if any, keep their case, RFC 3597 §7).
func rdataNames(t uint16, rd []byte) (prefix, names int, ok bool) {
	switch t {
	case dns.TypeNS, dns.TypeMD, dns.TypeMF, dns.TypeCNAME, dns.TypeMB, dns.TypeMG, dns.TypeMR,
		dns.TypePTR, dns.TypeDNAME, dns.TypeNSEC:
		return 0, 1, true
	case dns.TypeSOA, dns.TypeMINFO, dns.TypeRP:
		return 0, 2, true
	case dns.TypeMX, dns.TypeAFSDB, dns.TypeRT, dns.TypeKX:
		return 2, 1, true
	case dns.TypePX:
		return 2, 2, true
	case dns.TypeSRV:
		return 6, 1, true // priority, weight, port
	case dns.TypeRRSIG:
		return 18, 1, true // the signer's name; the signature follows it
	case dns.TypeNAPTR:
		// Order and preference, then flags, services and regexp as
		// <character-string>s (their case is kept), then the replacement.
		off := 4
		for range 3 {
			if off >= len(rd) {
				return 0, 0, false
			}
			off += 1 + int(rd[off])
		}
		return off, 1, true
	}
	return 0, 0, false
}

func (b *builder) finish(z *Zone) {
	ow := b.origin
	apex := z.Apex
	if apex == nil {
		b.errorf(Record{}, "no records at the zone apex %s (SOA and NS required)", z.Origin)
		return
	}
	soa := apex.Get(dns.TypeSOA)
	switch {
	case soa == nil:
		b.errorf(Record{}, "no SOA record at the zone apex %s", z.Origin)
	case soa.Len() > 1:
		b.setErrorf(apex, dns.TypeSOA, "more than one SOA record at the apex")
	default:
		rd := soa.First()
		if len(rd) >= 20 {
			tail := rd[len(rd)-20:]
			z.Serial = be32(tail[0:])
			z.NegTTL = min(soa.TTL, be32(tail[16:]))
		}
	}
	if apex.Get(dns.TypeNS) == nil {
		b.errorf(Record{}, "no NS records at the zone apex %s", z.Origin)
	}
	// Create empty non-terminals so that every ancestor up to the apex
	// exists; the answer algorithm relies on it (RFC 4592 §2.2.2). b.all
	// grows while this runs; the new nodes' ancestors exist already.
	for i, end := 0, len(b.all); i < end; i++ {
		n := b.all[i]
		for p := wire.Parent(n.Name); len(p) >= len(ow); p = wire.Parent(p) {
			if b.names.get(p) != nil {
				break
			}
			b.node(p)
			if len(p) == len(ow) {
				break
			}
		}
	}
	all := b.all
	b.all = nil
	// Parents before children: in order of label count.
	for _, n := range byDepth(all, len(ow)) {
		if n == apex {
			continue
		}
		p := b.names.get(wire.Parent(n.Name))
		link(n, p)
		if isWildcard(n.Name) {
			p.Wildcard = n
		}
	}
	// The checks run in creation order; when they find problems they run
	// again in canonical order, which makes error reports deterministic
	// and readable.
	nerr := len(b.errs)
	nsec, nsec3 := b.check(z, all)
	if len(b.errs) > nerr {
		b.errs = b.errs[:nerr]
		sortCanonical(all)
		nsec, nsec3 = b.check(z, all)
	}
	sortCanonical(nsec)
	slices.SortFunc(nsec3, func(a, b nsec3Entry) int { return bytes.Compare(a.hash, b.hash) })
	z.nsec, z.nsec3 = bulkTree(nsec), bulkTree(nsec3)
	z.Signed, z.NSEC3 = apexChain(apex)
	if z.NSEC3 == nil && len(nsec3) > 0 {
		b.errorf(Record{}, "NSEC3 records without an NSEC3PARAM at the apex")
	}
}

// link sets the delegation and DNAME links of n, a node below the apex,
// from its parent p.
func link(n, p *Node) {
	n.Cut, n.DNAME = nil, nil
	switch {
	case p.Cut != nil:
		n.Cut = p.Cut
	case n.Get(dns.TypeNS) != nil:
		n.Cut = n
	}
	switch {
	case p.DNAME != nil:
		n.DNAME = p.DNAME
	case p.Get(dns.TypeDNAME) != nil:
		n.DNAME = p
	}
}

// isWildcard reports whether a wire name's first label is "*".
func isWildcard(name []byte) bool { return len(name) > 1 && name[0] == 1 && name[1] == '*' }

// apexChain reads from the apex whether the zone is signed and its NSEC3
// parameters.
func apexChain(apex *Node) (signed bool, param *NSEC3Param) {
	signed = apex.Get(dns.TypeDNSKEY) != nil
	if p := apex.Get(dns.TypeNSEC3PARAM); p != nil && len(p.First()) >= 5 {
		rd := p.First()
		slen := int(rd[4])
		if len(rd) >= 5+slen {
			param = &NSEC3Param{Hash: rd[0], Iterations: uint16(rd[2])<<8 | uint16(rd[3]), Salt: bytes.Clone(rd[5 : 5+slen])}
		}
	}
	return signed, param
}

// check validates every node and collects the NSEC and NSEC3 owners.
func (b *builder) check(z *Zone, all []*Node) (nsec []*Node, nsec3 []nsec3Entry) {
	for _, n := range all {
		b.checkNode(z, n)
	}
	b.checkGlue(z, all)
	for _, n := range all {
		if n.Get(dns.TypeNSEC) != nil {
			nsec = append(nsec, n)
		}
		if n.Get(dns.TypeNSEC3) != nil {
			h, ok := nsec3Owner(n.Name)
			if !ok {
				b.setErrorf(n, dns.TypeNSEC3, "NSEC3 owner is not a base32hex hash")
				continue
			}
			nsec3 = append(nsec3, nsec3Entry{hash: h, node: n})
		}
	}
	return nsec, nsec3
}

// nsec3Owner decodes the hash in the first label of an NSEC3 owner.
func nsec3Owner(name []byte) ([]byte, bool) {
	label := strings.ToUpper(string(name[1 : 1+name[0]]))
	h, err := base32.HexEncoding.WithPadding(base32.NoPadding).DecodeString(label)
	return h, err == nil
}

// byDepth returns the nodes ordered by their number of labels below the
// origin (originLen bytes long), a stable counting sort.
func byDepth(nodes []*Node, originLen int) []*Node {
	depth := func(n *Node) int {
		d := 0
		for i := 0; i < len(n.Name)-originLen; i += int(n.Name[i]) + 1 {
			d++
		}
		return d
	}
	var count [wire.MaxName + 2]int
	for _, n := range nodes {
		count[depth(n)+1]++
	}
	for i := 1; i < len(count); i++ {
		count[i] += count[i-1]
	}
	out := make([]*Node, len(nodes))
	for _, n := range nodes {
		d := depth(n)
		out[count[d]] = n
		count[d]++
	}
	return out
}

func (b *builder) checkNode(z *Zone, n *Node) {
	checkNodeSets(n, n == z.Apex, func(n *Node, t uint16, format string, args ...any) {
		b.setErrorf(n, t, format, args...)
	})
}

// checkNodeSets checks the RRsets of one node: SOA only at the apex, CNAME
// alone (RRSIG and NSEC aside) and single, DNAME single.
func checkNodeSets(n *Node, apex bool, report func(n *Node, t uint16, format string, args ...any)) {
	if !apex && n.Get(dns.TypeSOA) != nil {
		report(n, dns.TypeSOA, "SOA record not at the zone apex")
	}
	if c := n.Get(dns.TypeCNAME); c != nil {
		if c.Len() > 1 {
			report(n, dns.TypeCNAME, "more than one CNAME record")
		}
		for _, s := range n.Sets {
			switch s.Type {
			case dns.TypeCNAME, dns.TypeRRSIG, dns.TypeNSEC:
			default:
				report(n, s.Type, "CNAME and other data at the same name")
			}
		}
	}
	if d := n.Get(dns.TypeDNAME); d != nil && d.Len() > 1 {
		report(n, dns.TypeDNAME, "more than one DNAME record")
	}
}

// checkGlue requires an address for every name server of a delegation that
// lies inside the zone at or below a cut, where only glue can reach it.
func (b *builder) checkGlue(z *Zone, all []*Node) {
	for _, n := range all {
		if n.Cut != n {
			continue
		}
		ns := n.Get(dns.TypeNS)
		for rd := range ns.All() {
			target := wire.LowerName(make([]byte, len(rd)), rd)
			if !wire.IsSubdomain(target, z.origin) {
				continue
			}
			if missingGlue(z.origin, &b.names, target) {
				b.setErrorf(n, dns.TypeNS, "missing glue: name server %s is inside the delegation but has no A or AAAA record", NameString(target))
			}
		}
	}
}

// missingGlue reports whether the in-zone name server target lies at or
// below a delegation, where only glue can give its address, and has no A
// or AAAA record.
func missingGlue(origin []byte, names *nameIndex, target []byte) bool {
	t := names.get(target)
	var cut *Node
	if t != nil {
		cut = t.Cut
	} else {
		cut = cutAbove(names, target, origin)
	}
	if cut == nil {
		return false // served authoritatively from this zone
	}
	return t == nil || (t.Get(dns.TypeA) == nil && t.Get(dns.TypeAAAA) == nil)
}

// cutAbove returns the delegation of the closest existing ancestor of a
// name that does not exist.
func cutAbove(names *nameIndex, name, origin []byte) *Node {
	for p := name; len(p) > len(origin); p = wire.Parent(p) {
		if n := names.get(p); n != nil {
			return n.Cut
		}
	}
	return nil
}

func be32(p []byte) uint32 {
	return uint32(p[0])<<24 | uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3])
}

// nsec3Hash computes the RFC 5155 §5 hash of a lower-cased wire name. It
// works in a buffer on the stack and returns the hash by value, so that the
// NSEC3 proofs of the query path allocate nothing.
func nsec3Hash(name []byte, iterations uint16, salt []byte) [sha1.Size]byte {
	// A wire name and a salt are at most 255 octets each.
	var buf [255 + 255]byte
	n := copy(buf[:], name)
	n += copy(buf[n:], salt)
	h := sha1.Sum(buf[:n]) //nolint:gosec // mandated by RFC 5155
	for range iterations {
		copy(buf[:], h[:])
		m := sha1.Size + copy(buf[sha1.Size:], salt)
		h = sha1.Sum(buf[:m]) //nolint:gosec // mandated by RFC 5155
	}
	return h
}

// HashToLabel renders a raw NSEC3 hash as the base32hex owner label.
func HashToLabel(h []byte) string {
	return strings.ToLower(base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(h))
}

// sortCanonical sorts nodes in canonical order (RFC 4034 §6.1) through a key
// per node that bytes.Compare orders the same way: the labels from the
// right, each followed by 0x00, with 0x00 and 0x01 inside labels escaped as
// 0x01 0x01 and 0x01 0x02. Names are lower case already. The keys share one
// buffer; the bytes every key starts with (the origin's labels) are
// skipped, and the next 8, as a number, are radix sorted; keys that tie on
// them are sorted on the rest.
func sortCanonical(nodes []*Node) {
	if len(nodes) < 2 {
		return
	}
	if len(nodes) > 1<<14 {
		// Read the names in the order they lie in memory, not in the
		// caller's (hash order, say): far fewer cache misses.
		byAddress(nodes)
	}
	total := 0
	for _, n := range nodes {
		total += len(n.Name) + 8
	}
	arena := make([]byte, 0, total)
	keys := make([][]byte, len(nodes))
	var starts [128]int
	for i, n := range nodes {
		from := len(arena)
		ls := labelStarts(n.Name, starts[:0])
		for j := len(ls) - 1; j >= 0; j-- {
			l := n.Name[ls[j]+1 : ls[j]+1+int(n.Name[ls[j]])]
			if bytes.IndexByte(l, 0) < 0 && bytes.IndexByte(l, 1) < 0 {
				arena = append(arena, l...)
			} else {
				for _, c := range l {
					switch c {
					case 0:
						arena = append(arena, 1, 1)
					case 1:
						arena = append(arena, 1, 2)
					default:
						arena = append(arena, c)
					}
				}
			}
			arena = append(arena, 0)
		}
		keys[i] = arena[from:len(arena):len(arena)]
	}
	common := len(keys[0])
	for _, k := range keys[1:] {
		common = min(common, len(k))
		for common > 0 && string(k[:common]) != string(keys[0][:common]) {
			common--
		}
	}
	ks := make([]sortKey, len(nodes))
	for i, k := range keys {
		k = k[common:]
		var p [8]byte
		copy(p[:], k)
		ks[i] = sortKey{binary.BigEndian.Uint64(p[:]), uint32(i)}
		keys[i] = k[min(len(k), 8):]
	}
	radixSort(ks)
	// Equal prefixes mean equal first 8 bytes: a key ends in 0x00 and no
	// 0x00 follows a 0x00, so zero padding never ties a shorter key with a
	// longer one.
	for i := 0; i < len(ks); {
		j := i + 1
		for j < len(ks) && ks[j].prefix == ks[i].prefix {
			j++
		}
		if j-i > 1 {
			slices.SortFunc(ks[i:j], func(a, b sortKey) int { return bytes.Compare(keys[a.i], keys[b.i]) })
		}
		i = j
	}
	sorted := make([]*Node, len(nodes))
	for i := range ks {
		sorted[i] = nodes[ks[i].i]
	}
	copy(nodes, sorted)
}

// byAddress sorts nodes by their address in memory.
func byAddress(nodes []*Node) {
	ks := make([]sortKey, len(nodes))
	for i, n := range nodes {
		ks[i] = sortKey{uint64(uintptr(unsafe.Pointer(n))), uint32(i)}
	}
	radixSort(ks)
	sorted := make([]*Node, len(nodes))
	for i := range ks {
		sorted[i] = nodes[ks[i].i]
	}
	copy(nodes, sorted)
}

type sortKey struct {
	prefix uint64
	i      uint32
}

// radixSort sorts keys by prefix, least significant byte first, skipping
// the bytes every prefix has alike.
func radixSort(ks []sortKey) {
	tmp := make([]sortKey, len(ks))
	src, dst := ks, tmp
	for shift := uint(0); shift < 64; shift += 8 {
		var count [256]int
		for _, k := range src {
			count[byte(k.prefix>>shift)]++
		}
		if count[byte(src[0].prefix>>shift)] == len(src) {
			continue
		}
		sum := 0
		for b, c := range count {
			count[b] = sum
			sum += c
		}
		for _, k := range src {
			b := byte(k.prefix >> shift)
			dst[count[b]] = k
			count[b]++
		}
		src, dst = dst, src
	}
	if &src[0] != &ks[0] {
		copy(ks, src)
	}
}
