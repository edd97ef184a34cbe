package zone

import (
	"bytes"
	"crypto/sha1" //nolint:gosec // NSEC3 is defined with SHA-1 (RFC 5155)
	"encoding/base32"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"unsafe"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/wire"
)

// maxErrors bounds how many problems one load reports.
const maxErrors = 50

type builder struct {
	originName string
	origin     []byte
	nodes      map[string]*Node
	files      []string
	fileIdx    map[string]uint16
	noLines    bool
	errs       []error
	records    int
	pend       []pendingSig
	buf        []byte
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
	if s := n.Get(t); s != nil {
		r.File = b.files[s.file]
		if !b.noLines {
			r.Line = int(s.line)
		}
	}
	msg := fmt.Sprintf(format, args...)
	b.errorf(r, "%s %s: %s", NameString(n.Name), dns.TypeToString[t], msg)
}

func (b *builder) fileIndex(f string) uint16 {
	if i, ok := b.fileIdx[f]; ok {
		return i
	}
	i := uint16(len(b.files))
	b.files = append(b.files, f)
	b.fileIdx[f] = i
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
	b, err := newBuilder(origin)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		b.addRecord(r)
	}
	return b.build()
}

func newBuilder(origin string) (*builder, error) {
	ow, err := NameWire(origin)
	if err != nil {
		return nil, fmt.Errorf("zone %s: %w", origin, err)
	}
	return &builder{
		originName: strings.ToLower(dns.Fqdn(origin)),
		origin:     ow,
		nodes:      make(map[string]*Node),
		fileIdx:    make(map[string]uint16),
		buf:        make([]byte, 65536),
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
	rdata := bytes.Clone(b.buf[n+10 : off])
	if len(rdata) == 0 && !emptyRdataOK(h.Rrtype) {
		b.errorf(r, "record has no data")
		return
	}
	node := b.node(name)
	if h.Rrtype == dns.TypeRRSIG {
		b.pend = append(b.pend, pendingSig{node: node, rec: r, rdata: rdata})
		return
	}
	b.add(node, r, h.Rrtype, h.Ttl, rdata)
}

// build finishes the zone once every record was added.
func (b *builder) build() (*Zone, error) {
	origin := b.originName
	for _, p := range b.pend {
		covered := RRSIGCovered(p.rdata)
		set := p.node.Get(covered)
		if set == nil {
			b.errorf(p.rec, "RRSIG covers %s, which has no RRset here", dns.TypeToString[covered])
			continue
		}
		if len(set.Sigs) == 0 {
			set.SigTTL = p.rec.RR.Header().Ttl
		}
		set.Sigs = append(set.Sigs, p.rdata)
		b.records++
	}
	b.pend = nil
	z := &Zone{Origin: origin, origin: b.origin, nodes: b.nodes, Records: b.records}
	z.Apex = b.nodes[string(b.origin)]
	b.finish(z)
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
	rdata []byte
}

func (b *builder) node(name []byte) *Node {
	if n, ok := b.nodes[string(name)]; ok {
		return n
	}
	n := &Node{Name: bytes.Clone(name)}
	// The key shares the node's name bytes, which never change.
	b.nodes[unsafe.String(&n.Name[0], len(n.Name))] = n
	return n
}

func (b *builder) add(node *Node, r Record, t uint16, ttl uint32, rdata []byte) {
	set := node.Get(t)
	if set == nil {
		line := r.Line
		if line < 0 || line > math.MaxUint32 {
			line = 0
		}
		node.Sets = append(node.Sets, RRset{Type: t, TTL: ttl, file: b.fileIndex(r.File), line: uint32(line)})
		set = &node.Sets[len(node.Sets)-1]
	}
	for _, old := range set.RData {
		if rdataEqual(t, old, rdata) {
			first := Record{File: b.files[set.file], Line: int(set.line)}
			b.errorf(r, "duplicate record (first at %s)", first.Pos())
			return
		}
	}
	if ttl < set.TTL {
		// RFC 2181 §5.2: all TTLs of an RRset must match; serve the lowest.
		set.TTL = ttl
	}
	set.RData = append(set.RData, rdata)
	b.records++
}

// rdataEqual compares rdata, ignoring case in the names of the RFC 1035 types.
func rdataEqual(t uint16, a, b []byte) bool {
	if _, _, ok := compressibleType(t); ok {
		return bytes.Equal(canonicalRdata(t, a), canonicalRdata(t, b))
	}
	return bytes.Equal(a, b)
}

// canonicalRdata returns rdata with the embedded names of the RFC 1035 types
// lower-cased (RFC 4034 §6.2) and every other byte untouched.
func canonicalRdata(t uint16, rd []byte) []byte {
	prefix, names, ok := compressibleType(t)
	if !ok || len(rd) < prefix {
		return rd
	}
	out := bytes.Clone(rd)
	off := prefix
	for range names {
		for off < len(out) && out[off] != 0 {
			l := int(out[off])
			if l&0xC0 != 0 || off+1+l > len(out) {
				return out
			}
			wire.LowerName(out[off+1:off+1+l], out[off+1:off+1+l])
			off += 1 + l
		}
		off++ // the root label
	}
	return out
}

func compressibleType(t uint16) (int, int, bool) {
	switch t {
	case 2, 3, 4, 5, 7, 8, 9, 12:
		return 0, 1, true
	case 6, 14:
		return 0, 2, true
	case 15:
		return 2, 1, true
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
	case len(soa.RData) > 1:
		b.setErrorf(apex, dns.TypeSOA, "more than one SOA record at the apex")
	default:
		rd := soa.RData[0]
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
	// exists; the answer algorithm relies on it (RFC 4592 §2.2.2).
	names := make([]*Node, 0, len(b.nodes))
	for _, n := range b.nodes {
		names = append(names, n)
	}
	for _, n := range names {
		for p := wire.Parent(n.Name); len(p) >= len(ow); p = wire.Parent(p) {
			if _, ok := b.nodes[string(p)]; ok {
				break
			}
			b.node(p)
			if len(p) == len(ow) {
				break
			}
		}
	}
	all := make([]*Node, 0, len(b.nodes))
	for _, n := range b.nodes {
		all = append(all, n)
		slices.SortFunc(n.Sets, func(a, b RRset) int { return int(a.Type) - int(b.Type) })
	}
	// Canonical order puts parents before children and makes error
	// reports deterministic.
	sortCanonical(all)
	z.ordered = all
	for _, n := range all {
		b.checkNode(z, n)
		if n == apex {
			continue
		}
		p := b.nodes[string(wire.Parent(n.Name))]
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
		if n.Name[0] == 1 && n.Name[1] == '*' {
			p.Wildcard = n
		}
	}
	b.checkGlue(z, all)
	z.Signed = apex.Get(dns.TypeDNSKEY) != nil
	for _, n := range all {
		if n.Get(dns.TypeNSEC) != nil {
			z.nsec = append(z.nsec, n)
		}
		if s := n.Get(dns.TypeNSEC3); s != nil {
			label := strings.ToUpper(string(n.Name[1 : 1+n.Name[0]]))
			h, err := base32.HexEncoding.WithPadding(base32.NoPadding).DecodeString(label)
			if err != nil {
				b.setErrorf(n, dns.TypeNSEC3, "NSEC3 owner is not a base32hex hash")
				continue
			}
			z.nsec3 = append(z.nsec3, nsec3Entry{hash: h, node: n})
		}
	}
	sort.Slice(z.nsec, func(i, j int) bool { return Compare(z.nsec[i].Name, z.nsec[j].Name) < 0 })
	sort.Slice(z.nsec3, func(i, j int) bool { return bytes.Compare(z.nsec3[i].hash, z.nsec3[j].hash) < 0 })
	if p := apex.Get(dns.TypeNSEC3PARAM); p != nil && len(p.RData[0]) >= 5 {
		rd := p.RData[0]
		slen := int(rd[4])
		if len(rd) >= 5+slen {
			z.NSEC3 = &NSEC3Param{Hash: rd[0], Iterations: uint16(rd[2])<<8 | uint16(rd[3]), Salt: bytes.Clone(rd[5 : 5+slen])}
		}
	}
	if z.NSEC3 == nil && len(z.nsec3) > 0 {
		b.errorf(Record{}, "NSEC3 records without an NSEC3PARAM at the apex")
	}
}

func (b *builder) checkNode(z *Zone, n *Node) {
	if n != z.Apex && n.Get(dns.TypeSOA) != nil {
		b.setErrorf(n, dns.TypeSOA, "SOA record not at the zone apex")
	}
	if c := n.Get(dns.TypeCNAME); c != nil {
		if len(c.RData) > 1 {
			b.setErrorf(n, dns.TypeCNAME, "more than one CNAME record")
		}
		for _, s := range n.Sets {
			switch s.Type {
			case dns.TypeCNAME, dns.TypeRRSIG, dns.TypeNSEC:
			default:
				b.setErrorf(n, s.Type, "CNAME and other data at the same name")
			}
		}
	}
	if d := n.Get(dns.TypeDNAME); d != nil && len(d.RData) > 1 {
		b.setErrorf(n, dns.TypeDNAME, "more than one DNAME record")
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
		for _, rd := range ns.RData {
			target := wire.LowerName(make([]byte, len(rd)), rd)
			if !wire.IsSubdomain(target, z.origin) {
				continue
			}
			t := b.nodes[string(target)]
			var cut *Node
			if t != nil {
				cut = t.Cut
			} else {
				cut = b.cutAbove(target, z.origin)
			}
			if cut == nil {
				continue // served authoritatively from this zone
			}
			if t == nil || (t.Get(dns.TypeA) == nil && t.Get(dns.TypeAAAA) == nil) {
				b.setErrorf(n, dns.TypeNS, "missing glue: name server %s is inside the delegation but has no A or AAAA record", NameString(target))
			}
		}
	}
}

func (b *builder) cutAbove(name, origin []byte) *Node {
	for p := name; len(p) > len(origin); p = wire.Parent(p) {
		if n, ok := b.nodes[string(p)]; ok {
			return n.Cut
		}
	}
	return nil
}

func be32(p []byte) uint32 {
	return uint32(p[0])<<24 | uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3])
}

// nsec3Hash computes the RFC 5155 §5 hash of a lower-cased wire name.
func nsec3Hash(name []byte, iterations uint16, salt []byte) []byte {
	h := sha1.New() //nolint:gosec // mandated by RFC 5155
	h.Write(name)
	h.Write(salt)
	sum := h.Sum(nil)
	for range iterations {
		h.Reset()
		h.Write(sum)
		h.Write(salt)
		sum = h.Sum(sum[:0])
	}
	return sum
}

// HashToLabel renders a raw NSEC3 hash as the base32hex owner label.
func HashToLabel(h []byte) string {
	return strings.ToLower(base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(h))
}

// sortCanonical sorts nodes in canonical order (RFC 4034 §6.1) through a key
// per node that bytes.Compare orders the same way: the labels from the
// right, each followed by 0x00, with 0x00 and 0x01 inside labels escaped as
// 0x01 0x01 and 0x01 0x02. Names are lower case already. The keys share one
// buffer.
func sortCanonical(nodes []*Node) {
	type keyed struct {
		key []byte
		n   *Node
	}
	total := 0
	for _, n := range nodes {
		total += len(n.Name) + 8
	}
	arena := make([]byte, 0, total)
	ks := make([]keyed, len(nodes))
	var starts [128]int
	for i, n := range nodes {
		from := len(arena)
		ls := labelStarts(n.Name, starts[:0])
		for j := len(ls) - 1; j >= 0; j-- {
			l := n.Name[ls[j]+1 : ls[j]+1+int(n.Name[ls[j]])]
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
			arena = append(arena, 0)
		}
		ks[i] = keyed{arena[from:len(arena):len(arena)], n}
	}
	slices.SortFunc(ks, func(a, b keyed) int { return bytes.Compare(a.key, b.key) })
	for i := range ks {
		nodes[i] = ks[i].n
	}
}
