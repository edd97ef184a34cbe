package zone

import (
	"slices"
	"sync/atomic"
)

// btree is a persistent B+tree of items in an order given by the caller
// (canonical order of names, NSEC3 hashes): leaves hold the items, inner
// nodes the first item under each child. It keeps a zone's nodes in
// canonical order (transfers, the NSEC chain, the subtree below a name)
// where the name index has none.
//
// A change copies the tree nodes on its path and shares the rest with the
// version it came from. The changes of one edit (one Zone.Apply) copy a
// tree node once: the copy carries the edit's number and later changes of
// the same edit modify it in place. Nodes of finished versions are never
// modified.
type btree[T any] struct {
	root *bnode[T]
	n    int
}

type bnode[T any] struct {
	items []T         // leaf: the items
	kids  []*bnode[T] // inner node: the children
	mins  []T         // inner node: the first item under each child
	edit  uint64      // the edit that made this node, 0 for bulk-built ones
}

const (
	bMax = 64
	bMin = bMax / 4 // a node with fewer is merged with or refilled from a sibling
)

// edits numbers the edits, so that a tree node knows whether the running
// edit made it.
var edits atomic.Uint64

func newEdit() uint64 { return edits.Add(1) }

// probe compares an item with the key being looked for: negative when the
// item sorts before it, 0 when it is the key.
type probe[T any] func(item T) int

func (n *bnode[T]) leaf() bool { return n.kids == nil }

func (n *bnode[T]) first() T {
	if n.leaf() {
		return n.items[0]
	}
	return n.mins[0]
}

func (n *bnode[T]) size() int {
	if n.leaf() {
		return len(n.items)
	}
	return len(n.kids)
}

// bulkTree builds a tree from items already in order, its nodes full.
func bulkTree[T any](items []T) btree[T] {
	if len(items) == 0 {
		return btree[T]{}
	}
	var level []*bnode[T]
	for i := 0; i < len(items); i += bMax {
		level = append(level, &bnode[T]{items: slices.Clone(items[i:min(i+bMax, len(items))])})
	}
	for len(level) > 1 {
		var up []*bnode[T]
		for i := 0; i < len(level); i += bMax {
			kids := slices.Clone(level[i:min(i+bMax, len(level))])
			mins := make([]T, len(kids))
			for j, k := range kids {
				mins[j] = k.first()
			}
			up = append(up, &bnode[T]{kids: kids, mins: mins})
		}
		level = up
	}
	return btree[T]{root: level[0], n: len(items)}
}

// Len returns the number of items.
func (t *btree[T]) Len() int { return t.n }

// childFor returns the index of the child of inner node n whose range
// holds the key: the last one whose first item is not after it (0 when
// the key sorts before every item).
func (n *bnode[T]) childFor(p probe[T]) int {
	lo, hi := 1, len(n.mins)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if p(n.mins[m]) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo - 1
}

// childLower returns the index of the child of inner node n that holds the
// first item not before the key, or the child before it: the last one
// whose first item is before the key (0 when none is).
func (n *bnode[T]) childLower(p probe[T]) int {
	lo, hi := 1, len(n.mins)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if p(n.mins[m]) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo - 1
}

// find returns the position in leaf n of the first item not before the
// key and whether that item is the key.
func (n *bnode[T]) find(p probe[T]) (int, bool) {
	lo, hi := 0, len(n.items)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if p(n.items[m]) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(n.items) && p(n.items[lo]) == 0
}

// get returns the item equal to the key.
func (t *btree[T]) get(p probe[T]) (T, bool) {
	n := t.root
	if n == nil {
		var zero T
		return zero, false
	}
	for !n.leaf() {
		n = n.kids[n.childFor(p)]
	}
	i, ok := n.find(p)
	if !ok {
		var zero T
		return zero, false
	}
	return n.items[i], true
}

// lastAtOrBefore returns the last item not after the key; ok is false when
// the key sorts before every item.
func (t *btree[T]) lastAtOrBefore(p probe[T]) (item T, ok bool) {
	n := t.root
	if n == nil {
		return item, false
	}
	for !n.leaf() {
		n = n.kids[n.childFor(p)]
	}
	// The leaf chosen holds the last item not after the key, unless the
	// key sorts before its first item (only for the first leaf).
	lo, hi := 0, len(n.items)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if p(n.items[m]) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return item, false
	}
	return n.items[lo-1], true
}

// lastBefore returns the last item strictly before the key.
func (t *btree[T]) lastBefore(p probe[T]) (item T, ok bool) {
	n := t.root
	if n == nil || p(n.first()) >= 0 {
		return item, false
	}
	// Every subtree on the way down starts before the key.
	for !n.leaf() {
		n = n.kids[n.childLower(p)]
	}
	i, _ := n.find(p)
	return n.items[i-1], true
}

func (t *btree[T]) lastIn(n *bnode[T]) (item T, ok bool) {
	if n == nil {
		return item, false
	}
	for !n.leaf() {
		n = n.kids[len(n.kids)-1]
	}
	return n.items[len(n.items)-1], true
}

// last returns the last item.
func (t *btree[T]) last() (T, bool) { return t.lastIn(t.root) }

// ascend calls fn for the items from the first one not before the key
// (every item when p is nil) on, in order, until fn returns false.
func (t *btree[T]) ascend(p probe[T], fn func(T) bool) {
	if t.root != nil {
		t.root.ascend(p, fn)
	}
}

func (n *bnode[T]) ascend(p probe[T], fn func(T) bool) bool {
	if n.leaf() {
		i := 0
		if p != nil {
			i, _ = n.find(p)
		}
		for _, it := range n.items[i:] {
			if !fn(it) {
				return false
			}
		}
		return true
	}
	i := 0
	if p != nil {
		i = n.childLower(p)
	}
	if !n.kids[i].ascend(p, fn) {
		return false
	}
	for _, k := range n.kids[i+1:] {
		if !k.ascend(nil, fn) {
			return false
		}
	}
	return true
}

// mut returns n itself when the edit made it, else a copy for the edit.
func (n *bnode[T]) mut(edit uint64) *bnode[T] {
	if n.edit == edit {
		return n
	}
	c := &bnode[T]{edit: edit}
	if n.leaf() {
		c.items = make([]T, len(n.items), min(len(n.items)+1, bMax+1))
		copy(c.items, n.items)
	} else {
		c.kids = make([]*bnode[T], len(n.kids), min(len(n.kids)+1, bMax+1))
		copy(c.kids, n.kids)
		c.mins = make([]T, len(n.mins), min(len(n.mins)+1, bMax+1))
		copy(c.mins, n.mins)
	}
	return c
}

// set inserts item, or replaces the item equal to it (p compares with
// item), as part of the edit.
func (t *btree[T]) set(item T, p probe[T], edit uint64) {
	if t.root == nil {
		t.root = &bnode[T]{items: []T{item}, edit: edit}
		t.n = 1
		return
	}
	root, right, added := t.root.set(item, p, edit)
	if added {
		t.n++
	}
	if right != nil {
		root = &bnode[T]{kids: []*bnode[T]{root, right}, mins: []T{root.first(), right.first()}, edit: edit}
	}
	t.root = root
}

func (n *bnode[T]) set(item T, p probe[T], edit uint64) (nn, right *bnode[T], added bool) {
	nn = n.mut(edit)
	if nn.leaf() {
		i, found := nn.find(p)
		if found {
			nn.items[i] = item
			return nn, nil, false
		}
		nn.items = slices.Insert(nn.items, i, item)
		added = true
	} else {
		i := nn.childFor(p)
		k, r, a := nn.kids[i].set(item, p, edit)
		added = a
		nn.kids[i], nn.mins[i] = k, k.first()
		if r != nil {
			nn.kids = slices.Insert(nn.kids, i+1, r)
			nn.mins = slices.Insert(nn.mins, i+1, r.first())
		}
	}
	if nn.size() > bMax {
		return nn.split(edit)
	}
	return nn, nil, added
}

// split halves a node one item or child over the limit.
func (n *bnode[T]) split(edit uint64) (left, right *bnode[T], added bool) {
	h := n.size() / 2
	r := &bnode[T]{edit: edit}
	if n.leaf() {
		r.items = make([]T, n.size()-h, bMax+1)[:n.size()-h]
		copy(r.items, n.items[h:])
		clear(n.items[h:])
		n.items = n.items[:h]
	} else {
		r.kids = append(make([]*bnode[T], 0, bMax+1), n.kids[h:]...)
		r.mins = append(make([]T, 0, bMax+1), n.mins[h:]...)
		clear(n.kids[h:])
		clear(n.mins[h:])
		n.kids, n.mins = n.kids[:h], n.mins[:h]
	}
	return n, r, true
}

// delete removes the item equal to the key, if there is one, as part of
// the edit.
func (t *btree[T]) delete(p probe[T], edit uint64) {
	if t.root == nil {
		return
	}
	root, removed := t.root.delete(p, edit)
	if !removed {
		return
	}
	t.n--
	switch {
	case root.size() == 0:
		root = nil
	case !root.leaf() && len(root.kids) == 1:
		root = root.kids[0]
	}
	t.root = root
}

func (n *bnode[T]) delete(p probe[T], edit uint64) (*bnode[T], bool) {
	if n.leaf() {
		i, found := n.find(p)
		if !found {
			return n, false
		}
		nn := n.mut(edit)
		nn.items = slices.Delete(nn.items, i, i+1)
		return nn, true
	}
	i := n.childFor(p)
	k, removed := n.kids[i].delete(p, edit)
	if !removed {
		return n, false
	}
	nn := n.mut(edit)
	nn.kids[i] = k
	if k.size() == 0 {
		nn.kids = slices.Delete(nn.kids, i, i+1)
		nn.mins = slices.Delete(nn.mins, i, i+1)
		return nn, true
	}
	nn.mins[i] = k.first()
	if k.size() < bMin && len(nn.kids) > 1 {
		j := i + 1 // the sibling to merge with or take from
		if j == len(nn.kids) {
			i, j = i-1, i
		}
		nn.rebalance(i, j, edit)
	}
	return nn, true
}

// rebalance merges children i and i+1 of n when they fit in one node, or
// shares their items or children out evenly.
func (n *bnode[T]) rebalance(i, j int, edit uint64) {
	a, b := n.kids[i], n.kids[j]
	if a.size()+b.size() <= bMax {
		m := a.mut(edit)
		if m.leaf() {
			m.items = append(m.items, b.items...)
		} else {
			m.kids = append(m.kids, b.kids...)
			m.mins = append(m.mins, b.mins...)
		}
		n.kids[i], n.mins[i] = m, m.first()
		n.kids = slices.Delete(n.kids, j, j+1)
		n.mins = slices.Delete(n.mins, j, j+1)
		return
	}
	l, r := &bnode[T]{edit: edit}, &bnode[T]{edit: edit}
	if a.leaf() {
		all := append(slices.Clone(a.items), b.items...)
		h := len(all) / 2
		l.items = append(make([]T, 0, bMax+1), all[:h]...)
		r.items = append(make([]T, 0, bMax+1), all[h:]...)
	} else {
		kids := append(slices.Clone(a.kids), b.kids...)
		mins := append(slices.Clone(a.mins), b.mins...)
		h := len(kids) / 2
		l.kids, l.mins = append(make([]*bnode[T], 0, bMax+1), kids[:h]...), append(make([]T, 0, bMax+1), mins[:h]...)
		r.kids, r.mins = append(make([]*bnode[T], 0, bMax+1), kids[h:]...), append(make([]T, 0, bMax+1), mins[h:]...)
	}
	n.kids[i], n.mins[i] = l, l.first()
	n.kids[j], n.mins[j] = r, r.first()
}
