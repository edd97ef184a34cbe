package steer

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

func nets(pairs ...string) []GeoNetwork {
	var out []GeoNetwork
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, GeoNetwork{Prefix: netip.MustParsePrefix(pairs[i]), Region: pairs[i+1]})
	}
	return out
}

// dbMap: the operator puts 10.1.0.0/16 in us and 2001:db8:ff::/48 in ap;
// the database has 10.0.0.0/8 in eu, 198.51.100.0/24 and 198.51.101.0/24
// in eu (one range), 203.0.113.0/25 in us, 2001:db8::/32 in eu.
func dbMap(t testing.TB) *GeoMap {
	t.Helper()
	g, err := NewGeoMapDB(map[netip.Prefix]string{
		netip.MustParsePrefix("10.1.0.0/16"):      "us",
		netip.MustParsePrefix("2001:db8:ff::/48"): "ap",
	}, nets("10.0.0.0/8", "eu", "198.51.100.0/24", "eu", "198.51.101.0/24", "eu",
		"203.0.113.0/25", "us", "2001:db8::/32", "eu"))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGeoMapDB(t *testing.T) {
	g := dbMap(t)
	for _, tc := range []struct {
		client string
		region string
		scope  uint8
		ok     bool
	}{
		{"10.1.2.0/24", "us", 16, true},      // the operator's prefix wins over the database
		{"10.2.3.0/24", "eu", 15, true},      // 10.2.0.0/15: the widest block clear of 10.1/16
		{"10.200.0.0/24", "eu", 9, true},     // 10.128.0.0/9
		{"10.0.5.0/24", "eu", 16, true},      // 10.0.0.0/16, beside 10.1/16
		{"10.0.0.0/8", "", 8, false},         // the /8 holds the operator's 10.1/16
		{"198.51.100.0/24", "eu", 23, true},  // two /24 of one region merged
		{"198.51.101.7/32", "eu", 23, true},  // a /32 source is cut to /24 (privacy limit)
		{"203.0.113.0/24", "", 24, false},    // only half of the /24 is in the database
		{"192.0.2.0/24", "", 24, false},      // in nothing
		{"2001:db8:1::/56", "eu", 41, true},  // IPv6: 2001:db8::/41, clear of 2001:db8:ff::/48
		{"2001:db8:ff::/56", "ap", 48, true}, // the operator's IPv6 prefix
		{"2001:db8:fe::/56", "eu", 48, true}, // beside it: ff and fe differ in bit 47
		{"2001:db9::/56", "", 56, false},     // outside
	} {
		p := netip.MustParsePrefix(tc.client)
		cl := NewClient(p.Addr(), p.Bits(), true)
		region, scope, ok := g.Lookup(cl)
		if region != tc.region || scope != tc.scope || ok != tc.ok {
			t.Errorf("Lookup(%s) = %q, %d, %v; want %q, %d, %v", tc.client, region, scope, ok, tc.region, tc.scope, tc.ok)
		}
	}
	if g.Ranges() != 6 { // 10.0/16, 10.2/15.., 198.51.100/23, 203.0.113.0/25, 2001:db8::/32 in two
		t.Errorf("Ranges() = %d, want 6", g.Ranges())
	}
}

// TestGeoMapDBBrute checks Lookup against a per-address table of
// 10.0.0.0/16 built from random operator prefixes and random database
// networks: a client not held by an operator prefix is placed when every
// address of its block is in the database in one region and in no
// operator prefix, and its scope is the shortest prefix of its address
// whose addresses all are.
func TestGeoMapDBBrute(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1))
			const none, op = -1, -2
			var table [1 << 16]int // region index, none, or op
			for i := range table {
				table[i] = none
			}
			base := netip.MustParseAddr("10.0.0.0").As4()
			prefixOf := func(start, bits int) netip.Prefix {
				a := base
				a[2], a[3] = byte(start>>8), byte(start)
				return netip.PrefixFrom(netip.AddrFrom4(a), bits)
			}
			// Database networks: leaves of a random split of the /16.
			var db []GeoNetwork
			var split func(start, bits int)
			split = func(start, bits int) {
				if bits < 28 && rng.IntN(3) > 0 {
					split(start, bits+1)
					split(start+1<<(32-bits-1), bits+1)
					return
				}
				if rng.IntN(4) == 0 {
					return // a hole
				}
				r := rng.IntN(3)
				db = append(db, GeoNetwork{Prefix: prefixOf(start, bits), Region: fmt.Sprint("r", r)})
				for i := start; i < start+1<<(32-bits); i++ {
					table[i] = r
				}
			}
			split(0, 16)
			m := map[netip.Prefix]string{}
			for range 4 {
				bits := 18 + rng.IntN(10)
				start := rng.IntN(1<<16) &^ (1<<(32-bits) - 1)
				m[prefixOf(start, bits)] = "op"
				for i := start; i < start+1<<(32-bits); i++ {
					table[i] = op
				}
			}
			g, err := NewGeoMapDB(m, db)
			if err != nil {
				t.Fatal(err)
			}
			uniform := func(start, bits int) (int, bool) {
				r := table[start]
				for i := start; i < start+1<<(32-bits); i++ {
					if table[i] != r {
						return 0, false
					}
				}
				return r, r >= 0
			}
			for range 400 {
				bits := 16 + rng.IntN(9)
				start := rng.IntN(1<<16) &^ (1<<(32-bits) - 1)
				cl := NewClient(prefixOf(start, bits).Addr(), bits, true)
				if _, _, inOp := g.lookupPrefix(cl); inOp {
					continue // the operator's map placed it: TestDecide
				}
				region, scope, ok := g.Lookup(cl)
				r, want := uniform(start, bits)
				if ok != want {
					t.Fatalf("Lookup(%s/%d): ok %v, want %v", prefixOf(start, bits).Addr(), bits, ok, want)
				}
				if !ok {
					if scope != uint8(bits) {
						t.Fatalf("Lookup(%s/%d): scope %d unplaced, want %d", prefixOf(start, bits).Addr(), bits, scope, bits)
					}
					continue
				}
				wantScope := bits
				for l := bits - 1; l >= 16; l-- {
					if _, u := uniform(start&^(1<<(32-l)-1), l); !u {
						break
					}
					wantScope = l
				}
				if region != fmt.Sprint("r", r) || int(scope) != wantScope {
					t.Fatalf("Lookup(%s/%d) = %s/%d, want r%d/%d", prefixOf(start, bits).Addr(), bits, region, scope, r, wantScope)
				}
			}
		})
	}
}

func TestGeoMapDBErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		db   []GeoNetwork
	}{
		{"host bits", nets("192.0.2.1/24", "eu")},
		{"empty region", nets("192.0.2.0/24", "")},
		{"invalid", []GeoNetwork{{Region: "eu"}}},
		{"overlap", nets("192.0.2.0/24", "eu", "192.0.2.128/25", "us")},
		{"mapped", nets("::ffff:192.0.2.0/120", "eu")},
	} {
		if _, err := NewGeoMapDB(nil, tc.db); err == nil {
			t.Errorf("%s: NewGeoMapDB(%v) accepted", tc.name, tc.db)
		}
	}
}

func TestGeoMapDigest(t *testing.T) {
	m := map[netip.Prefix]string{netip.MustParsePrefix("10.1.0.0/16"): "us"}
	a, _ := NewGeoMapDB(m, nets("198.51.100.0/24", "eu", "198.51.101.0/24", "eu"))
	b, _ := NewGeoMapDB(m, nets("198.51.101.0/24", "eu", "198.51.100.0/24", "eu"))
	c, _ := NewGeoMapDB(m, nets("198.51.100.0/23", "eu")) // places every client as a and b
	d, _ := NewGeoMapDB(m, nets("198.51.100.0/24", "eu", "198.51.101.0/24", "us"))
	e, _ := NewGeoMapDB(map[netip.Prefix]string{netip.MustParsePrefix("10.1.0.0/16"): "eu"}, nets("198.51.100.0/23", "eu"))
	if a.Digest() != b.Digest() || a.Digest() != c.Digest() {
		t.Errorf("same placement, digests %s %s %s", a.Digest(), b.Digest(), c.Digest())
	}
	if a.Digest() == d.Digest() || a.Digest() == e.Digest() || len(a.Digest()) != 16 {
		t.Errorf("digests %s %s %s", a.Digest(), d.Digest(), e.Digest())
	}
}

// TestGeoLookupAllocs: placing a client by the database allocates nothing,
// nor does a decision that does.
func TestGeoLookupAllocs(t *testing.T) {
	g := dbMap(t)
	cl := client("10.200.0.0/24", true)
	if n := testing.AllocsPerRun(1000, func() {
		if _, _, ok := g.Lookup(cl); !ok {
			t.Fatal("not placed")
		}
	}); n != 0 {
		t.Fatalf("%v allocations per lookup", n)
	}
	e := NewEngine()
	e.SetState(&State{Geo: g})
	rd := mustEncode(t, dns.TypeA, Pool{Policy: []string{"up", "geo", "weighted"}, Endpoints: threeEndpoints})
	var d Decision
	e.Decide(rd, cl, &d)
	if d.Len() != 1 || d.Endpoint(0).Region != "eu" || d.Scope != 24 {
		t.Fatalf("decision: %s scope %d", addrs(&d), d.Scope)
	}
	if n := testing.AllocsPerRun(1000, func() { e.Decide(rd, cl, &d) }); n != 0 {
		t.Fatalf("%v allocations per decision", n)
	}
}

func BenchmarkGeoLookupDB(b *testing.B) {
	// A database of 100,000 networks in 5 regions.
	var db []GeoNetwork
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 100000 {
		a := [4]byte{byte(i >> 14), byte(i >> 6), byte(i << 2), 0}
		db = append(db, GeoNetwork{Prefix: netip.PrefixFrom(netip.AddrFrom4(a), 22), Region: fmt.Sprint("r", rng.IntN(5))})
	}
	g, err := NewGeoMapDB(nil, db)
	if err != nil {
		b.Fatal(err)
	}
	cl := client("3.12.4.0/24", true)
	b.ReportAllocs()
	for b.Loop() {
		g.Lookup(cl)
	}
}
