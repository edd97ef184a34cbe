package zone

import (
	"hash/maphash"
	"math/bits"
	"slices"
)

// The name index of a zone is a persistent hash array mapped trie in the
// CHAMP layout: each trie node has 64 slots, chosen by 6 bits of the name's
// hash, and keeps the zone nodes of its slots (dmap, data) apart from its
// sub-tries (nmap, kids), both in slot order. A new version of a zone
// copies the trie nodes on the paths to the names that changed and shares
// every other one with the old version. The layout is canonical (a slot
// with one name holds it directly; a sub-trie has at least two names), so
// two tries with the same names have the same shape, whatever the order
// they were built in; Diff walks two of them side by side and skips the
// sub-tries they share.
//
// Below trieMaxDepth levels (60 bits of hash) names whose hashes are equal
// so far share a collision node: no bitmaps, the nodes in data.
type trie struct {
	dmap uint64 // slots that hold a zone node
	nmap uint64 // slots that hold a sub-trie
	data []*Node
	kids []*trie
}

const (
	trieBits     = 6
	trieMaxDepth = 10
)

// hashSeed is the one seed of the process: every version of every zone
// hashes names the same way.
var hashSeed = maphash.MakeSeed()

func hashName(name []byte) uint64 { return maphash.Bytes(hashSeed, name) }

// rehash is hashName where the trie needs the hash of a name it holds;
// tests replace it to make names collide.
var rehash = hashName

// get returns the node named name (lower-cased wire form), or nil.
func (t *trie) get(name []byte) *Node { return t.find(hashName(name), name) }

// find is get with the name's hash.
func (t *trie) find(h uint64, name []byte) *Node {
	for {
		bit := uint64(1) << (h & 63)
		if t.dmap&bit != 0 {
			n := t.data[bits.OnesCount64(t.dmap&(bit-1))]
			if string(n.Name) == string(name) {
				return n
			}
			return nil
		}
		if t.nmap&bit == 0 {
			if t.dmap|t.nmap == 0 {
				return t.collision(name) // or the empty trie
			}
			return nil
		}
		t = t.kids[bits.OnesCount64(t.nmap&(bit-1))]
		h >>= trieBits
	}
}

func (t *trie) collision(name []byte) *Node {
	for _, n := range t.data {
		if string(n.Name) == string(name) {
			return n
		}
	}
	return nil
}

// walk calls fn for every node, in no particular order.
func (t *trie) walk(fn func(*Node)) {
	for _, n := range t.data {
		fn(n)
	}
	for _, k := range t.kids {
		k.walk(fn)
	}
}

// insertMut adds n, whose name is not in the trie and hashes to h shifted
// by depth levels, modifying t in place: the zone builder owns every trie
// node while it builds, and alloc gives it new ones from a slab.
func (t *trie) insertMut(h uint64, depth int, n *Node, alloc func() *trie) {
	for {
		if depth == trieMaxDepth {
			t.data = append(t.data, n)
			return
		}
		bit := uint64(1) << (h & 63)
		switch {
		case t.dmap&bit != 0:
			i := bits.OnesCount64(t.dmap & (bit - 1))
			e := t.data[i]
			t.data = slices.Delete(t.data, i, i+1)
			t.dmap &^= bit
			k := alloc()
			k.insertMut(rehash(e.Name)>>(trieBits*(depth+1)), depth+1, e, alloc)
			k.insertMut(h>>trieBits, depth+1, n, alloc)
			t.nmap |= bit
			t.kids = slices.Insert(t.kids, bits.OnesCount64(t.nmap&(bit-1)), k)
			return
		case t.nmap&bit != 0:
			t = t.kids[bits.OnesCount64(t.nmap&(bit-1))]
			h >>= trieBits
			depth++
		default:
			t.dmap |= bit
			t.data = slices.Insert(t.data, bits.OnesCount64(t.dmap&(bit-1)), n)
			return
		}
	}
}

// trieOp is one change to a trie: set the node of name to n, or delete the
// name when n is nil. h is the name's full hash.
type trieOp struct {
	h    uint64
	name []byte
	n    *Node
}

func (o *trieOp) slot(depth int) int { return int(o.h >> (trieBits * depth) & 63) }

// update returns a trie with the changes of ops made, sharing every
// sub-trie the changes do not reach with t, which is not modified. The
// names of ops are distinct; deleting a name that is absent does nothing.
// ops is reordered.
func (t *trie) update(ops []trieOp, depth int) *trie {
	if depth == trieMaxDepth {
		data := slices.Clone(t.data)
		for _, o := range ops {
			i := slices.IndexFunc(data, func(n *Node) bool { return string(n.Name) == string(o.name) })
			switch {
			case i >= 0 && o.n != nil:
				data[i] = o.n
			case i >= 0:
				data = slices.Delete(data, i, i+1)
			case o.n != nil:
				data = append(data, o.n)
			}
		}
		return &trie{data: slices.Clip(data)}
	}
	slices.SortFunc(ops, func(a, b trieOp) int { return a.slot(depth) - b.slot(depth) })
	var leaves [64]*Node
	var subs [64]*trie
	nt := &trie{}
	ndata, nkids := 0, 0
	for s := range 64 {
		bit := uint64(1) << s
		j := 0
		for j < len(ops) && ops[j].slot(depth) == s {
			j++
		}
		group := ops[:j]
		ops = ops[j:]
		var leaf *Node
		var sub *trie
		switch {
		case len(group) == 0:
			if t.dmap&bit != 0 {
				leaf = t.data[bits.OnesCount64(t.dmap&(bit-1))]
			} else if t.nmap&bit != 0 {
				sub = t.kids[bits.OnesCount64(t.nmap&(bit-1))]
			}
		case t.nmap&bit != 0:
			sub = t.kids[bits.OnesCount64(t.nmap&(bit-1))].update(group, depth+1)
		default:
			if t.dmap&bit != 0 {
				e := t.data[bits.OnesCount64(t.dmap&(bit-1))]
				if !slices.ContainsFunc(group, func(o trieOp) bool { return string(o.name) == string(e.Name) }) {
					group = append(slices.Clip(group), trieOp{h: rehash(e.Name), name: e.Name, n: e})
				}
			}
			live := 0
			for _, o := range group {
				if o.n != nil {
					live++
					leaf = o.n
				}
			}
			if live > 1 {
				leaf = nil
				sub = (&trie{}).update(group, depth+1)
			}
		}
		// Keep the layout canonical: a sub-trie left with one node
		// gives it to this slot; an empty one goes.
		if sub != nil {
			switch {
			case sub.dmap|sub.nmap == 0 && len(sub.data) == 0:
				sub = nil
			case sub.nmap == 0 && len(sub.data) == 1:
				leaf, sub = sub.data[0], nil
			}
		}
		switch {
		case leaf != nil:
			nt.dmap |= bit
			leaves[ndata] = leaf
			ndata++
		case sub != nil:
			nt.nmap |= bit
			subs[nkids] = sub
			nkids++
		}
	}
	if ndata > 0 {
		nt.data = slices.Clone(leaves[:ndata])
	}
	if nkids > 0 {
		nt.kids = slices.Clone(subs[:nkids])
	}
	return nt
}

// trieDiff calls fn for every name whose node differs between a and b (old
// nil: added; new nil: deleted), skipping the sub-tries the two share.
func trieDiff(a, b *trie, depth int, fn func(old, new *Node)) {
	if a == b {
		return
	}
	if depth == trieMaxDepth || a.dmap|a.nmap == 0 && b.dmap|b.nmap == 0 {
		diffLists(a.data, b.data, fn)
		return
	}
	for s := range 64 {
		bit := uint64(1) << s
		switch {
		case a.nmap&bit != 0 && b.nmap&bit != 0:
			trieDiff(a.kids[bits.OnesCount64(a.nmap&(bit-1))], b.kids[bits.OnesCount64(b.nmap&(bit-1))], depth+1, fn)
		case a.dmap&bit != 0 && b.dmap&bit != 0:
			x, y := a.data[bits.OnesCount64(a.dmap&(bit-1))], b.data[bits.OnesCount64(b.dmap&(bit-1))]
			switch {
			case x == y:
			case string(x.Name) == string(y.Name):
				fn(x, y)
			default:
				fn(x, nil)
				fn(nil, y)
			}
		case (a.dmap|a.nmap|b.dmap|b.nmap)&bit != 0:
			diffLists(a.slotNodes(bit), b.slotNodes(bit), fn)
		}
	}
}

// slotNodes returns the nodes under one slot.
func (t *trie) slotNodes(bit uint64) []*Node {
	switch {
	case t.dmap&bit != 0:
		return []*Node{t.data[bits.OnesCount64(t.dmap&(bit-1))]}
	case t.nmap&bit != 0:
		var out []*Node
		t.kids[bits.OnesCount64(t.nmap&(bit-1))].walk(func(n *Node) { out = append(out, n) })
		return out
	}
	return nil
}

// diffLists is trieDiff for two lists of nodes.
func diffLists(a, b []*Node, fn func(old, new *Node)) {
	inB := make(map[string]*Node, len(b))
	for _, n := range b {
		inB[string(n.Name)] = n
	}
	for _, x := range a {
		y := inB[string(x.Name)]
		delete(inB, string(x.Name))
		if x != y {
			fn(x, y)
		}
	}
	for _, y := range b {
		if _, ok := inB[string(y.Name)]; ok {
			fn(nil, y)
		}
	}
}
