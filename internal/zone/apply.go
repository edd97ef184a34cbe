package zone

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/wire"
)

// ErrNoRecord marks a change that deletes a record the zone does not have:
// it was made against another version of the zone.
var ErrNoRecord = errors.New("record to delete is not in the zone")

// Apply returns a new version of the zone: z with the records of del
// deleted, then those of add added (RFC 1995; the SOA is one of them, the
// old one deleted and the new one added). z is not modified and stays the
// one to serve when Apply fails.
//
// Records compare as RRKey compares them: owner, type and rdata, names in
// rdata without case where RFC 4034 §6.2 says so, TTL excluded. Deleting a
// record the zone does not have fails with ErrNoRecord. Adding one it has
// (and the change does not delete) is a duplicate, an RRSIG too (Build
// takes repeated RRSIGs). Records added to an RRset lower its TTL to
// theirs, as in Build; their rdata is kept as packing its parsed form
// gives it. The result is validated as Build validates a zone, with
// Build's messages, but only where the change can have made it invalid:
// the names changed, their parents, the delegations they lie in or that
// name them as name servers. It fails with ErrInvalid.
//
// The work and the memory are those of the names changed (and of the
// subtree below a changed delegation or DNAME): the new version shares
// every other node, and most of its indexes, with z.
func (z *Zone) Apply(del, add []RR) (*Zone, error) { return z.apply(del, add, nil, "") }

// ApplyNamed is Apply with the records named in errors as a writer names
// them: name(i) is the place of the i-th added record ("records[3]", as
// a file:line names a loaded one), and kept names every RRset the change
// does not make, here and in the errors of later changes ("in the
// zone").
func (z *Zone) ApplyNamed(del, add []RR, name func(i int) string, kept string) (*Zone, error) {
	return z.apply(del, add, name, kept)
}

// apply is Apply where label(i), when label is not nil, gives the place
// of the i-th added record in errors, and kept, when not empty, the place
// of every other RRset.
func (z *Zone) apply(del, add []RR, label func(int) string, kept string) (*Zone, error) {
	if len(del) == 0 && len(add) == 0 {
		return z, nil
	}
	e := &editor{z: z, label: label, kept: kept, owners: map[string]*owner{}}
	for i := range del {
		if err := e.delete(&del[i]); err != nil {
			return nil, fmt.Errorf("zone %s: %w", z.Origin, err)
		}
	}
	for i := range add {
		e.add(i, &add[i])
	}
	e.attachSigs()
	e.compose()
	e.restructure()
	if len(e.errs) == 0 {
		e.settle()
	}
	if len(e.errs) > 0 {
		if len(e.errs) >= maxErrors {
			e.errs = append(e.errs, fmt.Errorf("too many errors, stopped after %d", maxErrors))
		}
		return nil, fmt.Errorf("zone %s: %w: %w", z.Origin, ErrInvalid, errors.Join(e.errs...))
	}
	return e.nz, nil
}

// settle gives the RRsets this change made their place for later errors:
// kept when the change has it, else the name of their first record. Until
// then, their line holds fresh and the index of that name in e.labels.
func (e *editor) settle() {
	files := e.z.files
	index := func(f string) uint16 {
		if i := slices.Index(files, f); i >= 0 {
			return uint16(i)
		}
		if len(files) >= maxFiles {
			return maxFiles
		}
		files = append(slices.Clip(files), f)
		return uint16(len(files) - 1)
	}
	for _, a := range e.list {
		if a.node == nil || !a.touched {
			continue
		}
		for i := range a.node.Sets {
			s := &a.node.Sets[i]
			if s.line&fresh == 0 {
				continue
			}
			name := e.kept
			if name == "" {
				name = e.labels[s.line&^fresh]
			}
			s.file, s.line = index(name), 0
		}
	}
	e.nz.files = files
}

// fresh marks the line of an RRset this change starts: the rest is the
// index of its first record's place in editor.labels.
const fresh = 1 << 31

// editor is one Apply.
type editor struct {
	z      *Zone
	label  func(int) string
	owners map[string]*owner // the names the records change
	order  []*owner          // in the order of their first record
	errs   []error
	labels []string // places of the added records that start RRsets
	kept   string   // names the RRsets of z when not empty
	delta  int      // records added less records deleted
	nz     *Zone

	// restructure's state
	aff   map[string]*affected
	list  []*affected
	keep  map[string]bool // existing names that get a new name below
	edit  uint64
	names nameIndex
}

// owner is a name whose records change.
type owner struct {
	name    []byte // lower case
	old     *Node  // in z, nil for a new name
	sets    []wset
	sigAdds []sigAdd
	done    []RRset // the RRsets of the new version
}

// wset is an RRset being changed.
type wset struct {
	RRset
	owned    bool // data was allocated by this edit
	sigOwned bool // so were sigs
}

type sigAdd struct {
	i     int // in add
	ttl   uint32
	rdata []byte
}

func (e *editor) errorf(format string, args ...any) {
	if len(e.errs) < maxErrors {
		e.errs = append(e.errs, fmt.Errorf(format, args...))
	}
}

// pos returns the place of the i-th added record, "" if unknown.
func (e *editor) pos(i int) string {
	if e.label == nil {
		return ""
	}
	return e.label(i)
}

// recErrorf reports a problem with the i-th added record.
func (e *editor) recErrorf(i int, name []byte, t uint16, format string, args ...any) {
	msg := fmt.Sprintf("%s %s: %s", NameString(name), dns.TypeToString[t], fmt.Sprintf(format, args...))
	if p := e.pos(i); p != "" {
		msg = p + ": " + msg
	}
	e.errorf("%s", msg)
}

// setPos returns where the RRset's first record came from.
func (e *editor) setPos(s *RRset) string {
	if s.line&fresh != 0 {
		return e.labels[s.line&^fresh]
	}
	if e.kept != "" {
		return e.kept
	}
	r := Record{Line: int(s.line)}
	if int(s.file) < len(e.z.files) {
		r.File = e.z.files[s.file]
	}
	if r.File == "" && r.Line == 0 {
		return ""
	}
	return r.Pos()
}

// setErrorf reports a problem with the RRset of type t at n, as the
// builder's setErrorf does.
func (e *editor) setErrorf(n *Node, t uint16, format string, args ...any) {
	msg := fmt.Sprintf("%s %s: %s", NameString(n.Name), dns.TypeToString[t], fmt.Sprintf(format, args...))
	if s := n.Get(t); s != nil {
		if p := e.setPos(s); p != "" {
			msg = p + ": " + msg
		}
	}
	e.errorf("%s", msg)
}

// start returns the place to keep in a new RRset, file and line, for the
// i-th added record (see fresh).
func (e *editor) start(i int) (uint16, uint32) {
	e.labels = append(e.labels, e.pos(i))
	return 0, fresh | uint32(len(e.labels)-1)
}

// record checks a record of the change and returns its owner in lower
// case and its rdata as the zone keeps it; problems are reported with
// report.
func (e *editor) record(r *RR, report func(format string, args ...any)) (name, rdata []byte, ok bool) {
	if n := nameLen(r.Name); n < 0 || n != len(r.Name) {
		report("bad owner name %x", r.Name)
		return nil, nil, false
	}
	name = wire.LowerName(make([]byte, len(r.Name)), r.Name)
	if !wire.IsSubdomain(name, e.z.origin) {
		report("out-of-zone data (not in %s)", e.z.Origin)
		return nil, nil, false
	}
	switch r.Type {
	case dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeIXFR, dns.TypeAXFR, dns.TypeANY:
		report("meta type not allowed in a zone")
		return nil, nil, false
	}
	if len(r.Rdata) == 0 && !emptyRdataOK(r.Type) {
		report("record has no data")
		return nil, nil, false
	}
	// The rdata as packing its parsed form gives it, which is how a
	// loaded or transferred record is kept: uncompressed, and no bytes
	// the type does not define.
	rr, err := unpackRdata(".", r.Type, r.TTL, r.Rdata)
	if err != nil {
		report("bad record data: %v", err)
		return nil, nil, false
	}
	buf := make([]byte, dns.Len(rr)+16)
	off, err := dns.PackRR(rr, buf, 0, nil, false)
	if err != nil || off < 11 {
		report("cannot encode record: %v", err)
		return nil, nil, false
	}
	return name, buf[11:off:off], true
}

func (e *editor) owner(name []byte) *owner {
	if o, ok := e.owners[string(name)]; ok {
		return o
	}
	o := &owner{name: name, old: e.z.names.get(name)}
	if o.old != nil {
		o.name = o.old.Name
		o.sets = make([]wset, len(o.old.Sets), len(o.old.Sets)+1)
		for i := range o.old.Sets {
			o.sets[i] = wset{RRset: o.old.Sets[i]}
		}
	}
	e.owners[string(o.name)] = o
	e.order = append(e.order, o)
	return o
}

func (o *owner) set(t uint16) *wset {
	for i := range o.sets {
		if o.sets[i].Type == t {
			return &o.sets[i]
		}
	}
	return nil
}

// delete takes one record out; a record the zone does not have is an
// error at once (ErrNoRecord): the change does not fit this version.
func (e *editor) delete(r *RR) error {
	var problem error
	name, rdata, ok := e.record(r, func(format string, args ...any) {
		problem = fmt.Errorf("delete %s %s: %s", NameString(r.Name), dns.TypeToString[r.Type], fmt.Sprintf(format, args...))
	})
	if !ok {
		return fmt.Errorf("%w: %w", ErrInvalid, problem)
	}
	missing := fmt.Errorf("delete %s: %w", r, ErrNoRecord)
	if e.z.names.get(name) == nil && e.owners[string(name)] == nil {
		return missing
	}
	o := e.owner(name)
	covered := r.Type
	if r.Type == dns.TypeRRSIG {
		covered = RRSIGCovered(rdata)
	}
	s := o.set(covered)
	if s == nil {
		return missing
	}
	if r.Type == dns.TypeRRSIG {
		if s.sigs == nil {
			return missing
		}
		data, ok := withoutRecord(s.sigs.data, dns.TypeRRSIG, rdata)
		if !ok {
			return missing
		}
		if s.sigs.n == 1 {
			s.sigs = nil
		} else {
			s.sigs = &sigList{ttl: s.sigs.ttl, n: s.sigs.n - 1, data: data}
		}
		s.sigOwned = s.sigs != nil
	} else {
		data, ok := withoutRecord(s.data, r.Type, rdata)
		if !ok {
			return missing
		}
		s.data, s.n, s.owned = data, s.n-1, true
	}
	e.delta--
	return nil
}

// withoutRecord returns a copy of length-prefixed records without the one
// equal to rd.
func withoutRecord(data []byte, t uint16, rd []byte) ([]byte, bool) {
	off := 0
	for cur, rest := nextRecord(data); cur != nil; cur, rest = nextRecord(rest) {
		if rdataEqual(t, cur, rd) {
			out := make([]byte, 0, len(data)-2-len(cur))
			out = append(out, data[:off]...)
			return append(out, rest...), true
		}
		off += 2 + len(cur)
	}
	return nil, false
}

// add puts in the i-th added record; problems are collected.
func (e *editor) add(i int, r *RR) {
	name, rdata, ok := e.record(r, func(format string, args ...any) {
		e.recErrorf(i, r.Name, r.Type, format, args...)
	})
	if !ok {
		return
	}
	o := e.owner(name)
	if r.Type == dns.TypeRRSIG {
		o.sigAdds = append(o.sigAdds, sigAdd{i: i, ttl: r.TTL, rdata: rdata})
		return
	}
	s := o.set(r.Type)
	switch {
	case s == nil:
		f, l := e.start(i)
		o.sets = append(o.sets, wset{RRset: RRset{Type: r.Type, TTL: r.TTL, file: f, line: l}})
		s = &o.sets[len(o.sets)-1]
	case s.n == 0:
		// Emptied by the deletions: the set starts again with this
		// record, as it would in a zone built from the records.
		s.TTL = r.TTL
		s.file, s.line = e.start(i)
	}
	for old := range records(s.data) {
		if rdataEqual(r.Type, old, rdata) {
			e.recErrorf(i, name, r.Type, "duplicate record (first at %s)", e.firstAt(&s.RRset))
			return
		}
	}
	s.TTL = min(s.TTL, r.TTL)
	if !s.owned {
		s.data = slices.Clip(s.data)
		s.owned = true
	}
	s.data = appendRecord(s.data, rdata)
	s.n++
	e.delta++
}

func (e *editor) firstAt(s *RRset) string {
	if p := e.setPos(s); p != "" {
		return p
	}
	return "(input)"
}

// attachSigs puts the added RRSIGs on the RRsets they cover.
func (e *editor) attachSigs() {
	for _, o := range e.order {
		for _, p := range o.sigAdds {
			covered := RRSIGCovered(p.rdata)
			s := o.set(covered)
			if s == nil || s.n == 0 {
				e.recErrorf(p.i, o.name, dns.TypeRRSIG, "RRSIG covers %s, which has no RRset here", dns.TypeToString[covered])
				continue
			}
			if s.sigs == nil {
				s.sigs = &sigList{ttl: p.ttl}
				s.sigOwned = true
			}
			for old := range records(s.sigs.data) {
				if rdataEqual(dns.TypeRRSIG, old, p.rdata) {
					e.recErrorf(p.i, o.name, dns.TypeRRSIG, "duplicate record")
					break
				}
			}
			if !s.sigOwned {
				s.sigs = &sigList{ttl: s.sigs.ttl, n: s.sigs.n, data: slices.Clip(s.sigs.data)}
				s.sigOwned = true
			}
			s.sigs.data = appendRecord(s.sigs.data, p.rdata)
			s.sigs.n++
			e.delta++
		}
	}
}

// compose drops the RRsets left empty and sorts the rest by type.
func (e *editor) compose() {
	for _, o := range e.order {
		sets := make([]RRset, 0, len(o.sets))
		for i := range o.sets {
			s := &o.sets[i]
			if s.n == 0 {
				// RRSIGs left without the records they cover: one
				// problem each, as Build reports them.
				if s.sigs != nil {
					for range s.sigs.n {
						msg := fmt.Sprintf("%s %s: RRSIG covers %s, which has no RRset here", NameString(o.name), dns.TypeToString[dns.TypeRRSIG], dns.TypeToString[s.Type])
						if p := e.setPos(&s.RRset); p != "" {
							msg = p + ": " + msg
						}
						e.errorf("%s", msg)
					}
				}
				continue
			}
			sets = append(sets, s.RRset)
		}
		slices.SortFunc(sets, func(a, b RRset) int { return int(a.Type) - int(b.Type) })
		if len(sets) == 0 {
			sets = nil
		}
		o.sets, o.sigAdds, o.done = nil, nil, sets
	}
}

// affected is a name whose node the new version replaces: its records
// change, or a link to or from it (parent, wildcard child, delegation,
// DNAME) does, or it appears or goes.
type affected struct {
	name    []byte
	old     *Node   // in z, nil for a new name
	sets    []RRset // in the new version
	touched bool    // its records change
	node    *Node   // in the new version, nil when the name goes
	gone    bool
}

func (e *editor) affect(name []byte) *affected {
	if a, ok := e.aff[string(name)]; ok {
		return a
	}
	a := &affected{name: name, old: e.z.names.get(name)}
	if a.old != nil {
		a.name, a.sets = a.old.Name, a.old.Sets
	}
	e.aff[string(a.name)] = a
	e.list = append(e.list, a)
	return a
}

// resolve returns the node of name in the new version, nil if there is
// none.
func (e *editor) resolve(name []byte) *Node {
	if a, ok := e.aff[string(name)]; ok {
		return a.node
	}
	return e.z.names.get(name)
}

func hasType(sets []RRset, t uint16) bool {
	for i := range sets {
		if sets[i].Type == t {
			return true
		}
	}
	return false
}

// restructure builds the new version from the changed names: nodes,
// empty non-terminals, links, indexes, then the checks.
func (e *editor) restructure() {
	z := e.z
	idx := z.index()
	e.aff = make(map[string]*affected, len(e.order)*2)
	e.keep = map[string]bool{}
	e.edit = newEdit()
	origin := z.origin
	for _, o := range e.order {
		a := e.affect(o.name)
		a.sets, a.touched = o.done, true
	}
	if a, ok := e.aff[string(origin)]; ok && len(a.sets) == 0 {
		// As Build: nothing else is checked then.
		e.errorf("no records at the zone apex %s (SOA and NS required)", z.Origin)
		return
	}
	// New names get their missing ancestors as empty non-terminals.
	for _, a := range slices.Clone(e.list) {
		if a.old != nil || len(a.sets) == 0 {
			continue
		}
		for p := wire.Parent(a.name); len(p) >= len(origin); p = wire.Parent(p) {
			if pa, ok := e.aff[string(p)]; ok {
				if pa.old != nil {
					e.keep[string(pa.name)] = true
				}
				break
			}
			if n := z.names.get(p); n != nil {
				e.keep[string(n.Name)] = true
				break
			}
			e.affect(slices.Clone(p))
		}
	}
	// Names left without records go unless something remains below
	// them; then their parents may go too. Deepest first.
	var byDepth [wire.MaxName/2 + 2][]*affected
	for _, a := range e.list {
		if a.old != nil && len(a.sets) == 0 && a.old != z.Apex {
			d := wire.Labels(a.name)
			byDepth[d] = append(byDepth[d], a)
		}
	}
	for d := len(byDepth) - 1; d > 0; d-- {
		for _, a := range byDepth[d] {
			if e.keep[string(a.name)] || e.hasDescendant(idx, a.name) {
				continue
			}
			a.gone = true
			p := wire.Parent(a.name)
			if len(p) <= len(origin) {
				continue
			}
			pa, ok := e.aff[string(p)]
			if !ok {
				if n := z.names.get(p); n != nil && n.Empty() {
					pa = e.affect(n.Name)
					byDepth[d-1] = append(byDepth[d-1], pa)
				}
				continue
			}
			if len(pa.sets) == 0 && !slices.Contains(byDepth[d-1], pa) {
				byDepth[d-1] = append(byDepth[d-1], pa)
			}
		}
	}
	// Links: a wildcard's parent points to it; the nodes below a
	// delegation or DNAME point to it.
	for i := 0; i < len(e.list); i++ {
		a := e.list[i]
		if isWildcard(a.name) {
			e.affect(wire.Parent(a.name))
		}
		if !a.gone && e.linkTarget(a) {
			idx.canon.ascend(nodeProbe(a.name), func(n *Node) bool {
				if len(n.Name) == len(a.name) {
					return true // a itself
				}
				if !wire.IsSubdomain(n.Name, a.name) {
					return false
				}
				e.affect(n.Name)
				return true
			})
		}
	}
	// The new nodes, then their links, parents before children.
	live := 0
	for _, a := range e.list {
		if !a.gone {
			live++
		}
	}
	slab := make([]Node, live)
	nodes := make([]*Node, 0, live)
	for _, a := range e.list {
		if a.gone {
			continue
		}
		n := &slab[len(nodes)]
		n.Name, n.Sets = a.name, a.sets
		a.node = n
		nodes = append(nodes, n)
	}
	sortCanonical(nodes)
	wbuf := make([]byte, 0, wire.MaxName+2)
	for _, n := range nodes {
		if len(n.Name) > len(origin) {
			link(n, e.resolve(wire.Parent(n.Name)))
		}
		if len(n.Name) <= wire.MaxName-2 {
			wbuf = append(append(wbuf[:0], 1, '*'), n.Name...)
			n.Wildcard = e.resolve(wbuf)
		}
	}
	e.index()
	e.check()
}

// hasDescendant reports whether a name of z keeps a name below it in the
// new version.
func (e *editor) hasDescendant(idx *orderIndex, name []byte) bool {
	found := false
	idx.canon.ascend(nodeProbe(name), func(n *Node) bool {
		if len(n.Name) == len(name) {
			return true
		}
		if !wire.IsSubdomain(n.Name, name) {
			return false
		}
		if a, ok := e.aff[string(n.Name)]; ok && a.gone {
			return true
		}
		found = true
		return false
	})
	return found
}

// linkTarget reports whether nodes below a's name point to it, in z or in
// the new version: it owns a DNAME or, below the apex, NS records.
func (e *editor) linkTarget(a *affected) bool {
	apex := len(a.name) == len(e.z.origin)
	if a.old != nil && (a.old.Get(dns.TypeDNAME) != nil || !apex && a.old.Get(dns.TypeNS) != nil) {
		return true
	}
	return hasType(a.sets, dns.TypeDNAME) || !apex && hasType(a.sets, dns.TypeNS)
}

// index makes the new version's indexes from z's.
func (e *editor) index() {
	z := e.z
	idx := z.index()
	ops := make([]nameOp, 0, len(e.list))
	order := &orderIndex{canon: idx.canon, glue: idx.glue}
	nsec, nsec3 := z.nsec, z.nsec3
	for _, a := range e.list {
		ops = append(ops, nameOp{h: hashName(a.name), name: a.name, n: a.node})
		switch {
		case a.gone:
			order.canon.delete(nodeProbe(a.name), e.edit)
		default:
			order.canon.set(a.node, nodeProbe(a.name), e.edit)
		}
		var had, has bool
		if a.old != nil {
			had = a.old.Get(dns.TypeNSEC) != nil
		}
		if a.node != nil {
			has = a.node.Get(dns.TypeNSEC) != nil
		}
		switch {
		case has:
			nsec.set(a.node, nodeProbe(a.name), e.edit)
		case had:
			nsec.delete(nodeProbe(a.name), e.edit)
		}
		e.indexNSEC3(a, &nsec3)
		e.indexGlue(a, &order.glue)
	}
	e.names = z.names.update(ops)
	apex := e.resolve(z.origin)
	nz := &Zone{
		Origin: z.Origin, origin: z.origin, names: e.names, order: order,
		Apex: apex, nsec: nsec, nsec3: nsec3, Records: z.Records + e.delta, Source: z.Source, files: z.files,
		lineage: z.lineage,
	}
	if apex != nil {
		nz.Signed, nz.NSEC3 = apexChain(apex)
	}
	e.nz = nz
}

func (e *editor) indexNSEC3(a *affected, tree *btree[nsec3Entry]) {
	var had, has bool
	if a.old != nil {
		had = a.old.Get(dns.TypeNSEC3) != nil
	}
	if a.node != nil {
		has = a.node.Get(dns.TypeNSEC3) != nil
	}
	if !had && !has {
		return
	}
	h, ok := nsec3Owner(a.name)
	switch {
	case has && !ok:
		e.setErrorf(a.node, dns.TypeNSEC3, "NSEC3 owner is not a base32hex hash")
	case has:
		tree.set(nsec3Entry{hash: h, node: a.node}, func(x nsec3Entry) int { return bytes.Compare(x.hash, h) }, e.edit)
	case ok:
		tree.delete(func(x nsec3Entry) int { return bytes.Compare(x.hash, h) }, e.edit)
	}
}

// indexGlue replaces the name server references of a's delegation.
func (e *editor) indexGlue(a *affected, tree *btree[nsRef]) {
	var oldNS, newNS *RRset
	if a.old != nil {
		oldNS = a.old.Get(dns.TypeNS)
	}
	if a.node != nil {
		newNS = a.node.Get(dns.TypeNS)
	}
	if len(a.name) == len(e.z.origin) || oldNS == nil && newNS == nil ||
		oldNS != nil && newNS != nil && bytes.Equal(oldNS.data, newNS.data) {
		return
	}
	if oldNS != nil {
		for _, r := range nsRefs(e.z.origin, a.name, oldNS) {
			tree.delete(refProbe(r), e.edit)
		}
	}
	if newNS != nil {
		for _, r := range nsRefs(e.z.origin, a.name, newNS) {
			tree.set(r, refProbe(r), e.edit)
		}
	}
}

// nsRefs returns the references of the delegation at cut with the name
// servers ns to in-zone name servers outside the delegation.
func nsRefs(origin, cut []byte, ns *RRset) []nsRef {
	var out []nsRef
	for rd := range ns.All() {
		if nameLen(rd) != len(rd) {
			continue
		}
		target := rd
		if !isLower(rd) {
			target = wire.LowerName(make([]byte, len(rd)), rd)
		}
		if wire.IsSubdomain(target, origin) && !wire.IsSubdomain(target, cut) {
			out = append(out, nsRef{target: target, cut: cut})
		}
	}
	return out
}

func isLower(b []byte) bool {
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return true
}

func compareRefs(a, b nsRef) int {
	if c := Compare(a.target, b.target); c != 0 {
		return c
	}
	return bytes.Compare(a.cut, b.cut)
}

func refProbe(r nsRef) probe[nsRef] { return func(x nsRef) int { return compareRefs(x, r) } }

// glueIndex builds the name server references of every delegation.
func glueIndex(origin []byte, canon []*Node) btree[nsRef] {
	var refs []nsRef
	for _, n := range canon {
		if len(n.Name) == len(origin) {
			continue
		}
		if ns := n.Get(dns.TypeNS); ns != nil {
			refs = append(refs, nsRefs(origin, n.Name, ns)...)
		}
	}
	slices.SortFunc(refs, compareRefs)
	refs = slices.CompactFunc(refs, func(a, b nsRef) bool { return compareRefs(a, b) == 0 })
	return bulkTree(refs)
}

// check validates the new version where the change can have made it
// invalid; nodes are the new nodes in canonical order.
func (e *editor) check() {
	z, nz := e.z, e.nz
	e.checkApex()
	for _, a := range e.list {
		if a.touched && a.node != nil {
			checkNodeSets(a.node, a.node == nz.Apex, e.setErrorf)
		}
	}
	// Glue: the delegations changed, those naming a changed name as a
	// name server, and those naming a name below a new delegation.
	cuts := map[*Node]bool{}
	addCut := func(n *Node) {
		if n != nil && n.Cut == n {
			cuts[n] = true
		}
	}
	refs := nz.order.glue
	named := func(target []byte, below bool) {
		refs.ascend(func(r nsRef) int { return Compare(r.target, target) }, func(r nsRef) bool {
			if below && !wire.IsSubdomain(r.target, target) || !below && !bytes.Equal(r.target, target) {
				return false
			}
			addCut(e.resolve(r.cut))
			return true
		})
	}
	for _, a := range e.list {
		named(a.name, false)
		if a.node == nil {
			addCut(cutAbove(&e.names, a.name, z.origin))
			continue
		}
		addCut(a.node.Cut)
		if a.node.Cut == a.node && (a.old == nil || a.old.Cut != a.old) {
			named(a.name, true)
		}
	}
	var check []*Node
	for n := range cuts {
		check = append(check, n)
	}
	sortCanonical(check)
	for _, n := range check {
		for rd := range n.Get(dns.TypeNS).All() {
			target := wire.LowerName(make([]byte, len(rd)), rd)
			if wire.IsSubdomain(target, z.origin) && missingGlue(z.origin, &e.names, target) {
				e.setErrorf(n, dns.TypeNS, "missing glue: name server %s is inside the delegation but has no A or AAAA record", NameString(target))
			}
		}
	}
	if nz.NSEC3 == nil && nz.nsec3.Len() > 0 {
		e.errorf("NSEC3 records without an NSEC3PARAM at the apex")
	}
}

// checkApex checks the SOA and NS at the apex and takes the serial and
// negative TTL from the SOA.
func (e *editor) checkApex() {
	nz := e.nz
	apex := nz.Apex
	soa := apex.Get(dns.TypeSOA)
	switch {
	case soa == nil:
		e.errorf("no SOA record at the zone apex %s", nz.Origin)
	case soa.Len() > 1:
		e.setErrorf(apex, dns.TypeSOA, "more than one SOA record at the apex")
	default:
		nz.Serial, nz.NegTTL = soaFields(soa)
	}
	if apex.Get(dns.TypeNS) == nil {
		e.errorf("no NS records at the zone apex %s", nz.Origin)
	}
}

// soaFields returns the serial and the negative TTL (RFC 2308 §5) of an
// SOA RRset.
func soaFields(soa *RRset) (serial, negTTL uint32) {
	rd := soa.First()
	if len(rd) < 20 {
		return 0, 0
	}
	tail := rd[len(rd)-20:]
	return binary.BigEndian.Uint32(tail), min(soa.TTL, binary.BigEndian.Uint32(tail[16:]))
}
