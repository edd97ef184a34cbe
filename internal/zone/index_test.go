package zone

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// checkNames verifies the layout of a name index: every slot points to a
// page of its local depth whose first slot it agrees with, every entry in
// the page its hash chooses, with its hash, findable by probing (no free
// slot between its home and its place), counts right. It returns the
// number of nodes.
func checkNames(x *nameIndex, hash func([]byte) uint64) (int, error) {
	if len(x.dir) != max(1, 1<<x.depth/dirChunkSize) {
		return 0, fmt.Errorf("%d directory chunks for depth %d", len(x.dir), x.depth)
	}
	total := 0
	for i := range uint64(1) << x.depth {
		p := x.slot(i)
		if p.depth > x.depth {
			return 0, fmt.Errorf("slot %d: page depth %d over %d", i, p.depth, x.depth)
		}
		first := x.slot(i & (1<<p.depth - 1))
		if !samePage(p, first) {
			return 0, fmt.Errorf("slot %d and its page's first slot differ", i)
		}
		if i >= 1<<p.depth {
			continue
		}
		if len(p.e) < pageMin || len(p.e)&(len(p.e)-1) != 0 {
			return 0, fmt.Errorf("slot %d: table of %d", i, len(p.e))
		}
		n := 0
		m := uint64(len(p.e) - 1)
		for j, t := range p.e {
			if t.n == nil {
				continue
			}
			n++
			if h := hash(t.n.Name); h != t.h {
				return 0, fmt.Errorf("%s: hash %x kept as %x", t.n.Name, h, t.h)
			}
			if t.h&(1<<p.depth-1) != i {
				return 0, fmt.Errorf("hash %x in the page of slot %d, depth %d", t.h, i, p.depth)
			}
			for k := t.h >> 32 & m; k != uint64(j); k = (k + 1) & m {
				if p.e[k].n == nil {
					return 0, fmt.Errorf("%s: a free slot between its home and its place", t.n.Name)
				}
			}
		}
		if n != int(p.n) || n*4 > len(p.e)*3 {
			return 0, fmt.Errorf("slot %d: %d entries, counted %d, table %d", i, n, p.n, len(p.e))
		}
		total += n
	}
	if total != x.count {
		return 0, fmt.Errorf("%d nodes, count %d", total, x.count)
	}
	return total, nil
}

// TestNameIndexModel changes an index at random, with hashes forced to
// share their low bits (and, with 0 bits, to be all equal), and checks it
// against a map after every step, and that old versions do not change.
func TestNameIndexModel(t *testing.T) {
	for _, keep := range []int{64, 40, 9, 0} {
		t.Run(fmt.Sprintf("hash bits %d", keep), func(t *testing.T) {
			hash := func(name []byte) uint64 {
				h := hashName(name)
				if keep < 64 {
					h &= 1<<keep - 1
				}
				return h
			}
			universe := 3000
			if keep == 0 {
				universe = 600
			}
			r := rand.New(rand.NewPCG(1, uint64(keep)))
			model := map[string]*Node{}
			type version struct {
				x     nameIndex
				model map[string]*Node
			}
			var versions []version
			x := newNameIndex()
			for step := range 300 {
				ops := map[string]nameOp{}
				span := []int{3, 40, 600}[r.IntN(3)]
				for range 1 + r.IntN(span) {
					name := fmt.Appendf(nil, "n%d", r.IntN(universe))
					var n *Node
					if r.IntN(3) > 0 || step < 10 {
						n = &Node{Name: name}
					}
					ops[string(name)] = nameOp{h: hash(name), name: name, n: n}
				}
				list := make([]nameOp, 0, len(ops))
				for _, o := range ops {
					list = append(list, o)
				}
				x = x.update(list)
				next := maps(model)
				for k, o := range ops {
					if o.n == nil {
						delete(next, k)
					} else {
						next[k] = o.n
					}
				}
				model = next
				versions = append(versions, version{x, model})
				c, err := checkNames(&x, hash)
				if err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
				if c != len(model) {
					t.Fatalf("step %d: %d nodes, want %d", step, c, len(model))
				}
			}
			for i, v := range versions {
				if _, err := checkNames(&v.x, hash); err != nil {
					t.Fatalf("version %d changed: %v", i, err)
				}
				for k := range universe {
					name := fmt.Appendf(nil, "n%d", k)
					if got, want := v.x.find(hash(name), name), v.model[string(name)]; got != want {
						t.Fatalf("version %d: %s: %p, want %p", i, name, got, want)
					}
				}
			}
			// Diff between versions: exactly the names that differ.
			for i := 1; i < len(versions); i++ {
				a, b := versions[i-1], versions[i]
				got := map[string]bool{}
				diffIndex(&a.x, &b.x, func(x, y *Node) {
					n := x
					if n == nil {
						n = y
					}
					got[string(n.Name)] = true
				})
				for k := range universe {
					name := fmt.Sprintf("n%d", k)
					if want := a.model[name] != b.model[name]; got[name] != want {
						t.Fatalf("diff %d: %s reported %v, want %v", i, name, got[name], want)
					}
				}
			}
			// Built by insertion, the same names.
			b := newNameIndex()
			for _, n := range model {
				b.insertMut(tentry{hash(n.Name), n})
			}
			if _, err := checkNames(&b, hash); err != nil {
				t.Fatal(err)
			}
			diffIndex(&b, &x, func(p, q *Node) { t.Errorf("built by insertion: %v / %v", p, q) })
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

// TestNameIndexInsertMut builds indexes by insertion, as the zone builder
// does, large enough that the directory doubles past pages of a smaller
// local depth: each of a page's slots must agree on its count, or a page
// fills up through one slot while another's count says it has room (a
// full page makes a lookup of an absent name probe for ever: the node's
// build of a 1,000,000-name zone from AXFR never ended).
func TestNameIndexInsertMut(t *testing.T) {
	for _, n := range []int{1000, 20_000, 100_000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			x := newNameIndex()
			for i := range n {
				name := fmt.Appendf(nil, "h%d.g%d", i, i%97)
				x.insertMut(tentry{hashName(name), &Node{Name: name}})
			}
			c, err := checkNames(&x, hashName)
			if err != nil {
				t.Fatal(err)
			}
			if c != n {
				t.Fatalf("%d nodes, want %d", c, n)
			}
			for i := range n {
				name := fmt.Appendf(nil, "h%d.g%d", i, i%97)
				if got := x.get(name); got == nil || string(got.Name) != string(name) {
					t.Fatalf("%s: not found", name)
				}
			}
		})
	}
}
