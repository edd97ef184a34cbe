package zone

import (
	"math/rand/v2"
	"os"
	"testing"
)

// BenchmarkLookup: the name lookup of the query path, on a small zone and
// (with $ZONE_BENCH_FILE) on a 1,000,000-name one, for names that exist
// and names that do not.
func BenchmarkLookup(b *testing.B) {
	small, err := Load("example.com.", "testdata/good.zone")
	if err != nil {
		b.Fatal(err)
	}
	www, _ := NameWire("host3.example.com.")
	nope, _ := NameWire("nope.example.com.")
	b.Run("small/hit", func(b *testing.B) {
		for b.Loop() {
			if small.Lookup(www) == nil {
				b.Fatal("no node")
			}
		}
	})
	b.Run("small/miss", func(b *testing.B) {
		for b.Loop() {
			if small.Lookup(nope) != nil {
				b.Fatal("node")
			}
		}
	})
	path := os.Getenv("ZONE_BENCH_FILE")
	if path == "" {
		return
	}
	big, err := Load("bench.example.", path)
	if err != nil {
		b.Fatal(err)
	}
	var names, misses [][]byte
	big.Nodes(func(n *Node) { names = append(names, n.Name) })
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	names = names[:1<<16]
	for i := range names {
		misses = append(misses, append([]byte{1, 'q'}, names[i]...))
	}
	b.Run("1M/hit", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if big.Lookup(names[i&(1<<16-1)]) == nil {
				b.Fatal("no node")
			}
			i++
		}
	})
	b.Run("1M/miss", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if big.Lookup(misses[i&(1<<16-1)]) != nil {
				b.Fatal("node")
			}
			i++
		}
	})
}
