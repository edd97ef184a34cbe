package zone

import (
	"bytes"
	"hash/maphash"
	"slices"
)

// nameIndex finds a zone's nodes by name. It is a persistent extendible
// hash table: a directory of 2^depth slots, chosen by the low bits of a
// name's hash, points to pages, open-addressed tables placed by the high
// bits. A page with local depth L holds the names whose hashes end in
// the L bits of its first slot, and 2^(depth-L) slots point to it.
//
// A lookup reads the directory (small: it stays in the cache) and one
// page, as a Go map reads one group. A new version copies the pages its
// changes touch and the directory chunks that point to them, and shares
// every other one. A page that fills up splits in two; the directory
// doubles when a page that splits has the directory's depth, that is when
// the zone has about doubled.
type nameIndex struct {
	depth uint8
	dir   []*dirChunk // 2^depth slots, in chunks of dirChunkSize (one chunk below that)
	count int
}

type dirChunk [dirChunkSize]pageRef

// pageRef is a directory slot: a page and its local depth.
type pageRef struct {
	e     []tentry // power-of-two length; a nil node is a free slot
	n     int32    // entries in use
	depth uint8
}

// tentry is a zone node with the hash of its name: a lookup that meets
// another name knows without reading the node.
type tentry struct {
	h uint64
	n *Node
}

const (
	dirChunkBits = 7
	dirChunkSize = 1 << dirChunkBits
	pageMin      = 8
	pageMax      = 512 // entries; a page over 3/4 full at this size splits
	maxDepth     = 32  // pages that collide on this many bits grow instead
)

// hashSeed is the one seed of the process: every version of every zone
// hashes names the same way.
var hashSeed = maphash.MakeSeed()

func hashName(name []byte) uint64 { return maphash.Bytes(hashSeed, name) }

// newNameIndex returns an empty index.
func newNameIndex() nameIndex {
	c := new(dirChunk)
	c[0] = pageRef{e: make([]tentry, pageMin)}
	return nameIndex{dir: []*dirChunk{c}}
}

func (x *nameIndex) slot(i uint64) *pageRef {
	return &x.dir[i>>dirChunkBits][i&(dirChunkSize-1)]
}

// get returns the node named name (lower-cased wire form), or nil.
func (x *nameIndex) get(name []byte) *Node {
	h := hashName(name)
	// find, written out here: the query path saves a call.
	i := h & (1<<x.depth - 1)
	e := x.dir[i>>dirChunkBits][i&(dirChunkSize-1)].e
	m := uint64(len(e) - 1)
	for j := h >> 32 & m; ; j = (j + 1) & m {
		t := &e[j]
		if t.n == nil {
			return nil
		}
		if t.h == h && string(t.n.Name) == string(name) {
			return t.n
		}
	}
}

// find is get with the name's hash.
func (x *nameIndex) find(h uint64, name []byte) *Node {
	i := h & (1<<x.depth - 1)
	e := x.dir[i>>dirChunkBits][i&(dirChunkSize-1)].e
	m := uint64(len(e) - 1)
	for j := h >> 32 & m; ; j = (j + 1) & m {
		t := &e[j]
		if t.n == nil {
			return nil
		}
		if t.h == h && string(t.n.Name) == string(name) {
			return t.n
		}
	}
}

// pages calls fn for every page once, with its first slot.
func (x *nameIndex) pages(fn func(i uint64, p *pageRef)) {
	for i := range uint64(1) << x.depth {
		p := x.slot(i)
		if i < 1<<p.depth {
			fn(i, p)
		}
	}
}

// walk calls fn for every node, in no particular order.
func (x *nameIndex) walk(fn func(*Node)) {
	x.pages(func(_ uint64, p *pageRef) {
		for _, t := range p.e {
			if t.n != nil {
				fn(t.n)
			}
		}
	})
}

// pagePut stores t in table e, which has room, replacing the entry of the
// same name; it reports whether the name is new.
func pagePut(e []tentry, t tentry) bool {
	m := uint64(len(e) - 1)
	for j := t.h >> 32 & m; ; j = (j + 1) & m {
		switch {
		case e[j].n == nil:
			e[j] = t
			return true
		case e[j].h == t.h && string(e[j].n.Name) == string(t.n.Name):
			e[j] = t
			return false
		}
	}
}

// pageIndex returns where table e holds name, or -1.
func pageIndex(e []tentry, h uint64, name []byte) int {
	m := uint64(len(e) - 1)
	for j := h >> 32 & m; ; j = (j + 1) & m {
		switch {
		case e[j].n == nil:
			return -1
		case e[j].h == h && string(e[j].n.Name) == string(name):
			return int(j)
		}
	}
}

// pageDelete removes the entry of name from table e (backward-shift
// deletion keeps the probe sequences whole); it reports whether there was
// one.
func pageDelete(e []tentry, h uint64, name []byte) bool {
	m := uint64(len(e) - 1)
	j := h >> 32 & m
	for {
		if e[j].n == nil {
			return false
		}
		if e[j].h == h && string(e[j].n.Name) == string(name) {
			break
		}
		j = (j + 1) & m
	}
	for {
		e[j] = tentry{}
		k := j
		for {
			k = (k + 1) & m
			if e[k].n == nil {
				return true
			}
			home := e[k].h >> 32 & m
			// e[k] may move to j when j lies cyclically in [home, k).
			if (k-home)&m >= (k-j)&m {
				e[j] = e[k]
				j = k
				break
			}
		}
	}
}

// pageSize returns the table size for n entries: at most 3/4 full.
func pageSize(n int) int {
	s := pageMin
	for n*4 > s*3 {
		s *= 2
	}
	return s
}

// fits reports whether entries may share one page of local depth: they
// are few enough, or no split can part them (their hashes agree up to
// maxDepth bits; with 64-bit hashes, not seen in practice).
func fits(entries []tentry, depth uint8) bool {
	if len(entries)*4 <= pageMax*3 || depth >= maxDepth {
		return true
	}
	var differ uint64
	for _, t := range entries[1:] {
		differ |= t.h ^ entries[0].h
	}
	return differ&(1<<maxDepth-1)>>depth == 0
}

// newPage makes a page of the entries.
func newPage(entries []tentry, depth uint8) pageRef {
	e := make([]tentry, pageSize(len(entries)))
	for _, t := range entries {
		pagePut(e, t)
	}
	return pageRef{e: e, n: int32(len(entries)), depth: depth}
}

// indexEditor changes a copy of an index; chunks it copied are its own.
type indexEditor struct {
	x     nameIndex
	owned []bool // by chunk: copied by this edit (or, building, always)
	build bool
}

func (ed *indexEditor) ownChunk(c uint64) *dirChunk {
	if !ed.build && !ed.owned[c] {
		cp := *ed.x.dir[c]
		ed.x.dir[c] = &cp
		ed.owned[c] = true
	}
	return ed.x.dir[c]
}

// setPage points every slot of the page whose first slot is i0 at p.
func (ed *indexEditor) setPage(i0 uint64, p pageRef) {
	x := &ed.x
	for i := i0; i < 1<<x.depth; i += 1 << p.depth {
		ed.ownChunk(i >> dirChunkBits)[i&(dirChunkSize-1)] = p
	}
}

// double doubles the directory: slot i+2^depth points where slot i does.
func (ed *indexEditor) double() {
	x := &ed.x
	n := uint64(1) << x.depth
	if x.depth < dirChunkBits {
		c := ed.ownChunk(0)
		copy(c[n:2*n], c[:n])
	} else {
		// The new half's chunks are copies: later changes tell the
		// halves apart.
		for c := range len(x.dir) {
			cp := *x.dir[c]
			x.dir = append(x.dir, &cp)
		}
		ed.owned = slices.Grow(ed.owned, len(x.dir))[:len(x.dir)]
		for c := len(x.dir) / 2; c < len(x.dir); c++ {
			ed.owned[c] = true
		}
	}
	x.depth++
}

// place stores entries, which all belong to the page whose first slot is
// i0 at local depth, splitting them over as many pages as they need.
func (ed *indexEditor) place(entries []tentry, i0 uint64, depth uint8) {
	if fits(entries, depth) {
		ed.setPage(i0, newPage(entries, depth))
		return
	}
	if depth == ed.x.depth {
		ed.double()
	}
	var lo, hi []tentry
	for _, t := range entries {
		if t.h>>depth&1 == 0 {
			lo = append(lo, t)
		} else {
			hi = append(hi, t)
		}
	}
	ed.place(lo, i0, depth+1)
	ed.place(hi, i0|1<<depth, depth+1)
}

// insertMut adds t, whose name is not in the index, modifying x in place:
// the zone builder owns every page while it builds.
func (x *nameIndex) insertMut(t tentry) {
	ed := indexEditor{x: *x, build: true}
	i := t.h & (1<<x.depth - 1)
	p := x.slot(i)
	switch {
	case int(p.n+1)*4 <= len(p.e)*3:
		pagePut(p.e, t)
		// Every slot of the page holds its count, not this one alone.
		ed.setPage(i&(1<<p.depth-1), pageRef{e: p.e, n: p.n + 1, depth: p.depth})
		ed.x.count++
	default:
		entries := make([]tentry, 0, p.n+1)
		for _, e := range p.e {
			if e.n != nil {
				entries = append(entries, e)
			}
		}
		entries = append(entries, t)
		ed.x.count++
		ed.place(entries, i&(1<<p.depth-1), p.depth)
	}
	*x = ed.x
}

// nameOp is one change to an index: set the node of name to n, or delete
// the name when n is nil. h is the name's hash.
type nameOp struct {
	h    uint64
	name []byte
	n    *Node
}

// update returns an index with the changes of ops made, sharing every page
// and directory chunk the changes do not reach with x, which is not
// modified. The names of ops are distinct; deleting a name that is absent
// does nothing. ops is reordered.
func (x *nameIndex) update(ops []nameOp) nameIndex {
	ed := indexEditor{x: nameIndex{depth: x.depth, dir: slices.Clone(x.dir), count: x.count}, owned: make([]bool, len(x.dir))}
	mask := uint64(1)<<x.depth - 1
	slices.SortFunc(ops, func(a, b nameOp) int {
		switch ai, bi := a.h&mask, b.h&mask; {
		case ai < bi:
			return -1
		case ai > bi:
			return 1
		}
		return 0
	})
	// The ops of one page are adjacent in the order of their slots only
	// when it has the directory's depth: group by the page's first slot.
	groups := map[uint64][]nameOp{}
	var firsts []uint64
	for _, o := range ops {
		i := o.h & mask
		i0 := i & (1<<x.slot(i).depth - 1)
		if _, ok := groups[i0]; !ok {
			firsts = append(firsts, i0)
		}
		groups[i0] = append(groups[i0], o)
	}
	for _, i0 := range firsts {
		p := x.slot(i0)
		e := slices.Clone(p.e)
		n := int(p.n)
		var extra []tentry
		for _, o := range groups[i0] {
			switch {
			case o.n == nil:
				if pageDelete(e, o.h, o.name) {
					n--
				}
			case (n+1)*4 <= len(e)*3:
				if pagePut(e, tentry{o.h, o.n}) {
					n++
				}
			case pageIndex(e, o.h, o.name) >= 0:
				pagePut(e, tentry{o.h, o.n}) // a new node for a name it has
			default:
				extra = append(extra, tentry{o.h, o.n}) // no room: made again below
			}
		}
		ed.x.count += n + len(extra) - int(p.n)
		if len(extra) == 0 && (len(e) == pageMin || n*8 > len(e)) {
			ed.setPage(i0, pageRef{e: e, n: int32(n), depth: p.depth})
			continue
		}
		entries := make([]tentry, 0, n+len(extra))
		for _, t := range e {
			if t.n != nil {
				entries = append(entries, t)
			}
		}
		ed.place(append(entries, extra...), i0, p.depth)
	}
	return ed.x
}

// samePage reports whether two slots point to the same page.
func samePage(a, b *pageRef) bool {
	return a.n == b.n && a.depth == b.depth && len(a.e) == len(b.e) && &a.e[0] == &b.e[0]
}

// diffIndex calls fn for every name whose node differs between a and b
// (old nil: added; new nil: deleted), skipping the pages and directory
// chunks the two share.
func diffIndex(a, b *nameIndex, fn func(old, new *Node)) {
	big := max(a.depth, b.depth)
	ma, mb := uint64(1)<<a.depth-1, uint64(1)<<b.depth-1
	pa, pb := map[*tentry]*pageRef{}, map[*tentry]*pageRef{}
	for i := uint64(0); i < 1<<big; i++ {
		if i&(dirChunkSize-1) == 0 && a.depth == b.depth && a.dir[i>>dirChunkBits] == b.dir[i>>dirChunkBits] {
			i += dirChunkSize - 1
			continue
		}
		x, y := a.slot(i&ma), b.slot(i&mb)
		if samePage(x, y) {
			continue
		}
		pa[&x.e[0]], pb[&y.e[0]] = x, y
	}
	if len(pa) == 0 {
		return
	}
	// The names of the pages that differ on either side, compared in
	// the order of their hashes.
	ea, eb := entriesOf(pa), entriesOf(pb)
	for len(ea) > 0 || len(eb) > 0 {
		var c int
		switch {
		case len(ea) == 0:
			c = 1
		case len(eb) == 0:
			c = -1
		default:
			c = compareEntries(ea[0], eb[0])
		}
		switch {
		case c < 0:
			fn(ea[0].n, nil)
			ea = ea[1:]
		case c > 0:
			fn(nil, eb[0].n)
			eb = eb[1:]
		default:
			if ea[0].n != eb[0].n {
				fn(ea[0].n, eb[0].n)
			}
			ea, eb = ea[1:], eb[1:]
		}
	}
}

// entriesOf returns the entries of pages sorted by hash and name.
func entriesOf(pages map[*tentry]*pageRef) []tentry {
	var out []tentry
	for _, p := range pages {
		for _, t := range p.e {
			if t.n != nil {
				out = append(out, t)
			}
		}
	}
	slices.SortFunc(out, compareEntries)
	return out
}

func compareEntries(a, b tentry) int {
	switch {
	case a.h < b.h:
		return -1
	case a.h > b.h:
		return 1
	}
	return bytes.Compare(a.n.Name, b.n.Name)
}
