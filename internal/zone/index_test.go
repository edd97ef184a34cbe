package zone

import (
	"cmp"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"slices"
	"testing"
)

// checkTrie verifies the layout of a trie: every node in the slot its hash
// gives, sub-tries with at least two nodes, collision lists only at the
// bottom. It returns the number of nodes.
func checkTrie(t *trie, depth int, prefix uint64, hash func([]byte) uint64) (int, error) {
	if depth == trieMaxDepth {
		if t.dmap|t.nmap != 0 || len(t.kids) != 0 {
			return 0, fmt.Errorf("collision node with bitmaps")
		}
		for _, n := range t.data {
			if h := hash(n.Name); h&(1<<(trieBits*depth)-1) != prefix {
				return 0, fmt.Errorf("%x at depth %d under prefix %x", h, depth, prefix)
			}
		}
		return len(t.data), nil
	}
	if bits.OnesCount64(t.dmap) != len(t.data) || bits.OnesCount64(t.nmap) != len(t.kids) || t.dmap&t.nmap != 0 {
		return 0, fmt.Errorf("bitmaps and slices disagree at depth %d", depth)
	}
	total := 0
	for s := range 64 {
		bit := uint64(1) << s
		p := prefix | uint64(s)<<(trieBits*depth)
		switch {
		case t.dmap&bit != 0:
			n := t.data[bits.OnesCount64(t.dmap&(bit-1))]
			if h := hash(n.Name); h&(1<<(trieBits*(depth+1))-1) != p {
				return 0, fmt.Errorf("node %x in slot %d at depth %d", h, s, depth)
			}
			total++
		case t.nmap&bit != 0:
			k := t.kids[bits.OnesCount64(t.nmap&(bit-1))]
			c, err := checkTrie(k, depth+1, p, hash)
			if err != nil {
				return 0, err
			}
			if c < 2 {
				return 0, fmt.Errorf("sub-trie of %d nodes at depth %d", c, depth+1)
			}
			total += c
		}
	}
	return total, nil
}

// TestTrieModel changes a trie at random, with hashes forced to collide in
// their low bits (and some entirely), and checks it against a map after
// every step, and that old versions do not change.
func TestTrieModel(t *testing.T) {
	for _, collide := range []int{64, 12, 0} {
		t.Run(fmt.Sprintf("hash bits %d", collide), func(t *testing.T) {
			// Hashes with only `collide` significant bits (the rest of a
			// name's hash is 0): the trie must go to the collision nodes.
			hash := func(name []byte) uint64 {
				h := hashName(name)
				if collide < 64 {
					h &= 1<<collide - 1
				}
				return h
			}
			old := rehash
			rehash = hash
			defer func() { rehash = old }()
			r := rand.New(rand.NewPCG(1, uint64(collide)))
			model := map[string]*Node{}
			type version struct {
				t     *trie
				model map[string]*Node
			}
			var versions []version
			tr := &trie{}
			for step := range 300 {
				ops := map[string]trieOp{}
				for range 1 + r.IntN(20) {
					name := fmt.Appendf(nil, "n%d", r.IntN(200))
					var n *Node
					if r.IntN(3) > 0 {
						n = &Node{Name: name}
					}
					ops[string(name)] = trieOp{h: hash(name), name: name, n: n}
				}
				list := make([]trieOp, 0, len(ops))
				for _, o := range ops {
					list = append(list, o)
				}
				tr = tr.update(list, 0)
				next := maps(model)
				for k, o := range ops {
					if o.n == nil {
						delete(next, k)
					} else {
						next[k] = o.n
					}
				}
				model = next
				versions = append(versions, version{tr, model})
				c, err := checkTrie(tr, 0, 0, hash)
				if err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				if c != len(model) {
					t.Fatalf("step %d: %d nodes, want %d", step, c, len(model))
				}
			}
			for i, v := range versions {
				for k := range 200 {
					name := fmt.Appendf(nil, "n%d", k)
					if got, want := v.t.find(hash(name), name), v.model[string(name)]; got != want {
						t.Fatalf("version %d: %s: %p, want %p", i, name, got, want)
					}
				}
			}
			// Diff between versions: exactly the names that differ.
			for i := 1; i < len(versions); i++ {
				a, b := versions[i-1], versions[i]
				got := map[string]bool{}
				trieDiff(a.t, b.t, 0, func(x, y *Node) {
					n := x
					if n == nil {
						n = y
					}
					got[string(n.Name)] = true
				})
				for k := range 200 {
					name := fmt.Sprintf("n%d", k)
					if want := a.model[name] != b.model[name]; got[name] != want {
						t.Fatalf("diff %d: %s reported %v, want %v", i, name, got[name], want)
					}
				}
			}
			// Built by insertion, the same names give the same shape.
			b := &trie{}
			for _, n := range model {
				b.insertMut(hash(n.Name), 0, n, func() *trie { return &trie{} })
			}
			same := true
			trieDiff(b, tr, 0, func(x, y *Node) { same = false })
			if !same {
				t.Error("a trie built by insertion differs from the updated one")
			}
		})
	}
}

func maps(m map[string]*Node) map[string]*Node {
	out := make(map[string]*Node, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// checkBTree verifies a B-tree's shape: every leaf at one depth, no node
// over the limit or empty (nor, with full, under bMin but the root), mins
// matching the children, items in order.
func checkBTree[T any](tr *btree[T], cmpf func(a, b T) int, full bool) ([]T, error) {
	var items []T
	leafDepth := -1
	var walk func(n *bnode[T], depth int, root bool) error
	walk = func(n *bnode[T], depth int, root bool) error {
		if n.size() == 0 || n.size() > bMax || full && !root && n.size() < bMin {
			return fmt.Errorf("node of %d at depth %d", n.size(), depth)
		}
		if n.leaf() {
			if leafDepth >= 0 && depth != leafDepth {
				return fmt.Errorf("leaves at depths %d and %d", leafDepth, depth)
			}
			leafDepth = depth
			items = append(items, n.items...)
			return nil
		}
		if len(n.mins) != len(n.kids) {
			return fmt.Errorf("%d mins for %d children", len(n.mins), len(n.kids))
		}
		for i, k := range n.kids {
			if cmpf(n.mins[i], k.first()) != 0 {
				return fmt.Errorf("min %d does not match its child", i)
			}
			if err := walk(k, depth+1, false); err != nil {
				return err
			}
		}
		return nil
	}
	if tr.root != nil {
		if err := walk(tr.root, 0, true); err != nil {
			return nil, err
		}
	}
	for i := 1; i < len(items); i++ {
		if cmpf(items[i-1], items[i]) >= 0 {
			return nil, fmt.Errorf("items %d and %d out of order", i-1, i)
		}
	}
	if len(items) != tr.Len() {
		return nil, fmt.Errorf("%d items, Len %d", len(items), tr.Len())
	}
	return items, nil
}

// TestBTreeModel changes B-trees at random (edits of many changes and of
// one, bulk-built and grown) against a sorted slice; old versions must
// not change.
func TestBTreeModel(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 3))
	type version struct {
		tr    btree[int]
		items []int
	}
	probeOf := func(k int) probe[int] { return func(x int) int { return cmp.Compare(x, k) } }
	for round := range 4 {
		var model []int
		var tr btree[int]
		if round%2 == 1 {
			for i := range 5000 {
				model = append(model, i*3)
			}
			tr = bulkTree(model)
		}
		var versions []version
		for step := range 200 {
			edit := newEdit()
			next := slices.Clone(model)
			span := []int{1, 50, 400}[r.IntN(3)]
			// Now and then a run of deletions empties a range.
			run, from := 0, 0
			if r.IntN(10) == 0 {
				run, from = 1+r.IntN(2000), r.IntN(20000)
			}
			for j := range 1 + r.IntN(span) + run {
				k := r.IntN(20000)
				if j < run {
					k = from + j
				}
				i, found := slices.BinarySearch(next, k)
				if j >= run && r.IntN(2) == 0 {
					tr.set(k, probeOf(k), edit)
					if !found {
						next = slices.Insert(next, i, k)
					}
				} else {
					tr.delete(probeOf(k), edit)
					if found {
						next = slices.Delete(next, i, i+1)
					}
				}
			}
			model = next
			versions = append(versions, version{tr, model})
			got, err := checkBTree(&tr, cmp.Compare[int], round%2 == 0)
			if err != nil {
				t.Fatalf("round %d step %d: %v", round, step, err)
			}
			if !slices.Equal(got, model) {
				t.Fatalf("round %d step %d: items differ", round, step)
			}
			// Searches.
			for range 20 {
				k := r.IntN(20001) - 1
				i, found := slices.BinarySearch(model, k)
				if v, ok := tr.get(probeOf(k)); ok != found || ok && v != k {
					t.Fatalf("get %d: %v %v", k, v, ok)
				}
				v, ok := tr.lastAtOrBefore(probeOf(k))
				wi := i - 1
				if found {
					wi = i
				}
				if ok != (wi >= 0) || ok && v != model[wi] {
					t.Fatalf("lastAtOrBefore %d: %v %v", k, v, ok)
				}
				v, ok = tr.lastBefore(probeOf(k))
				if ok != (i > 0) || ok && v != model[i-1] {
					t.Fatalf("lastBefore %d: %v %v", k, v, ok)
				}
				var asc []int
				tr.ascend(probeOf(k), func(x int) bool { asc = append(asc, x); return len(asc) < 5 })
				if want := model[i:min(i+5, len(model))]; !slices.Equal(asc, want) {
					t.Fatalf("ascend from %d: %v, want %v", k, asc, want)
				}
			}
		}
		for i, v := range versions {
			got, err := checkBTree(&v.tr, cmp.Compare[int], round%2 == 0)
			if err != nil || !slices.Equal(got, v.items) {
				t.Fatalf("round %d: version %d changed after later edits: %v", round, i, err)
			}
		}
	}
}
