package zone

import (
	"fmt"
	"testing"
)

// TestIndexBuildCountsEverySlot: while a zone is built, a page that several
// directory slots share (its local depth below the directory's) must have
// the same entry count in each of them. With a count kept in one slot
// only, inserts through the others filled the page past 3/4 and, in a
// zone of about 1,000,000 names with some hash seeds, to the last entry,
// where a lookup of a missing name never ends (a sign.Sign of 1,000,000
// names hung in nameIndex.get).
func TestIndexBuildCountsEverySlot(t *testing.T) {
	x := newNameIndex()
	for k := range 200000 {
		n, err := NameWire(fmt.Sprintf("h%d.bench.example.", k))
		if err != nil {
			t.Fatal(err)
		}
		h := hashName(n)
		x.insertMut(tentry{h, &Node{Name: n}})
		p := x.slot(h & (1<<x.depth - 1))
		real := 0
		for _, e := range p.e {
			if e.n != nil {
				real++
			}
		}
		if real*4 > len(p.e)*3 {
			t.Fatalf("after %d names: a page of %d entries holds %d", k+1, len(p.e), real)
		}
		for i := h & (1<<p.depth - 1); i < 1<<x.depth; i += 1 << p.depth {
			if s := x.slot(i); int(s.n) != real {
				t.Fatalf("after %d names: slot %d counts %d entries, its page holds %d", k+1, i, s.n, real)
			}
		}
	}
}
