package steer

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestVariantsCounts(t *testing.T) {
	a := func(i int) Endpoint { return Endpoint{Address: netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)})} }
	eps := func(n int) []Endpoint {
		out := make([]Endpoint, n)
		for i := range out {
			out[i] = a(i)
		}
		return out
	}
	geo := eps(4)
	for i := range geo {
		geo[i].Region = []string{"eu", "us"}[i%2]
	}
	named := []Endpoint{{Name: "a.example.net."}, a(1), a(2)}
	tests := []struct {
		name string
		pool Pool
		want []uint64 // nil: check the count only
		n    int
		err  error
	}{
		{name: "no policy: every endpoint", pool: Pool{Endpoints: eps(3)}, want: []uint64{0b111}},
		{name: "failover", pool: Pool{Policy: []string{"up", "first-n"}, Endpoints: eps(3)}, want: []uint64{0b001, 0b010, 0b100}},
		{name: "first two of the up ones", pool: Pool{Policy: []string{"up", "first-n"}, FirstN: 2, Endpoints: eps(3)},
			want: []uint64{0b001, 0b010, 0b011, 0b100, 0b101, 0b110}},
		{name: "weighted", pool: Pool{Policy: []string{"up", "weighted"}, Endpoints: eps(5)}, n: 5},
		{name: "weighted without up: zero weight never", pool: Pool{Policy: []string{"weighted"},
			Endpoints: []Endpoint{{Address: a(0).Address, Weight: w(0)}, a(1), a(2)}}, want: []uint64{0b010, 0b100}},
		{name: "geo then first", pool: Pool{Policy: []string{"geo", "first-n"}, Endpoints: geo}, want: []uint64{0b0001, 0b0010}},
		{name: "up alone, 8 endpoints", pool: Pool{Policy: []string{"up"}, Endpoints: eps(8)}, n: 255},
		{name: "up alone, 9 endpoints", pool: Pool{Policy: []string{"up"}, Endpoints: eps(9)}, err: ErrTooManyVariants},
		{name: "latency, 64 endpoints, first 2", pool: Pool{Policy: []string{"latency", "first-n"}, FirstN: 2, Endpoints: eps(64)}, err: ErrTooManyVariants},
		{name: "least-load, 64 endpoints, first", pool: Pool{Policy: []string{"least-load", "first-n"}, Endpoints: eps(64)}, n: 64},
		{name: "a name first is a CNAME alone", pool: Pool{Policy: []string{"up"}, Endpoints: named},
			want: []uint64{0b001, 0b010, 0b100, 0b110}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Variants(dns.TypeA, &tt.pool)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != nil && !slices.Equal(got, tt.want) {
				t.Fatalf("variants = %b, want %b", got, tt.want)
			}
			if tt.want == nil && len(got) != tt.n {
				t.Fatalf("%d variants, want %d", len(got), tt.n)
			}
		})
	}
}

// TestVariantsCoverDecisions: whatever the state and the client, the
// answer Decide leads to is among the variants (else a signed zone would
// serve an answer without its signature).
func TestVariantsCoverDecisions(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	regions := []string{"", "eu", "us", "ap"}
	for round := range 300 {
		n := 1 + rng.IntN(6)
		p := Pool{FirstN: rng.IntN(3), Regions: map[string]string{"198.51.100.0/24": "eu", "203.0.113.0/24": "us"}}
		for i := range n {
			e := Endpoint{Region: regions[rng.IntN(len(regions))], Capacity: float64(rng.IntN(3))}
			if rng.IntN(5) == 0 {
				e.Name = fmt.Sprintf("n%d.example.net.", i)
			} else {
				e.Address = netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)})
			}
			if rng.IntN(2) == 0 {
				e.Weight = w(uint32(rng.IntN(3)))
			}
			p.Endpoints = append(p.Endpoints, e)
		}
		for _, pol := range rng.Perm(len(Policies))[:rng.IntN(4)] {
			p.Policy = append(p.Policy, Policies[pol])
		}
		rd, err := Encode(dns.TypeA, p)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		vs, err := Variants(dns.TypeA, &p)
		if errors.Is(err, ErrTooManyVariants) {
			continue
		}
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		c := Compile(rd)
		for range 200 {
			s := &State{Endpoints: map[string]EndpointState{}, RTT: map[string]map[string]time.Duration{}}
			for _, e := range p.Endpoints {
				s.Endpoints[e.Key()] = EndpointState{Down: rng.IntN(3) == 0, Load: float64(rng.IntN(3)), HasLoad: rng.IntN(2) == 0}
				for _, r := range regions[1:] {
					if rng.IntN(2) == 0 {
						if s.RTT[r] == nil {
							s.RTT[r] = map[string]time.Duration{}
						}
						s.RTT[r][e.Key()] = time.Duration(rng.IntN(3)) * time.Millisecond
					}
				}
			}
			addr := [][4]byte{{198, 51, 100, 7}, {203, 0, 113, 9}, {192, 0, 2, byte(rng.IntN(256))}}[rng.IntN(3)]
			cl := NewClient(netip.AddrFrom4(addr), 24, true)
			var d Decision
			Decide(c, s, cl, &d)
			if m := d.AnswerMask(); !slices.Contains(vs, m) {
				t.Fatalf("round %d: pool %+v: answer %b not among the variants %b", round, p, m, vs)
			}
		}
	}
}

func TestPoolSigRdata(t *testing.T) {
	sig := make([]byte, 40)
	sig[0] = 1
	rd := AppendPoolSig(nil, dns.TypeAAAA, 0x1122, 0b101, sig)
	typ, h, m, got, ok := ParsePoolSig(rd)
	if !ok || typ != dns.TypeAAAA || h != 0x1122 || m != 0b101 || string(got) != string(sig) {
		t.Fatalf("parse = %d %x %b %x %v", typ, h, m, got, ok)
	}
	if MatchPoolSig(rd, dns.TypeAAAA, 0x1122, 0b101) == nil {
		t.Fatal("no match of its own variant")
	}
	for _, c := range []struct {
		t    uint16
		h, m uint64
	}{{dns.TypeA, 0x1122, 0b101}, {dns.TypeAAAA, 0x1123, 0b101}, {dns.TypeAAAA, 0x1122, 0b100}} {
		if MatchPoolSig(rd, c.t, c.h, c.m) != nil {
			t.Fatalf("%+v matched", c)
		}
	}
	if _, _, _, _, ok := ParsePoolSig(rd[:20]); ok {
		t.Fatal("short rdata parsed")
	}
	if n := testing.AllocsPerRun(100, func() { MatchPoolSig(rd, dns.TypeAAAA, 0x1122, 0b101) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

// packed is records as the zone package keeps an RRset's: each rdata
// after its 2-byte length; tail walks them as zone.Tail does.
func packed(rds ...[]byte) []byte {
	var out []byte
	for _, rd := range rds {
		out = append(out, byte(len(rd)>>8), byte(len(rd)))
		out = append(out, rd...)
	}
	return out
}

func tail(data []byte) ([]byte, []byte) {
	if len(data) < 2 {
		return nil, nil
	}
	n := int(data[0])<<8 | int(data[1])
	return data[2 : 2+n], data[2+n:]
}

// TestAnswerSigs: the node finds the signature of the answer it gives
// among the name's TypePoolSig records (not another pool's, not another
// answer's), follows a new version of them, and allocates nothing once it
// has indexed them.
func TestAnswerSigs(t *testing.T) {
	p := Pool{TTL: 5, Policy: []string{"up", "first-n"}, Endpoints: []Endpoint{
		{Address: netip.MustParseAddr("192.0.2.1")}, {Address: netip.MustParseAddr("192.0.2.2")}, {Address: netip.MustParseAddr("192.0.2.3")},
	}}
	rd, err := Encode(dns.TypeA, p)
	if err != nil {
		t.Fatal(err)
	}
	h := RecordHash(rd)
	sig := func(version, m byte) []byte {
		s := make([]byte, 40)
		s[0], s[30], s[31] = 1, version, m
		return s
	}
	set := func(version byte) []byte {
		return packed(
			AppendPoolSig(nil, dns.TypeA, h^1, 1, sig(version, 99)), // another pool's
			AppendPoolSig(nil, dns.TypeA, h, 1, sig(version, 1)),
			AppendPoolSig(nil, dns.TypeA, h, 2, sig(version, 2)),
			AppendPoolSig(nil, dns.TypeA, h, 4, sig(version, 4)),
		)
	}
	e := NewEngine()
	var d Decision
	for _, version := range []byte{1, 2} {
		data := set(version)
		head, rest := tail(data)
		for down := range 3 {
			s := &State{Endpoints: map[string]EndpointState{}}
			for i := range down {
				s.Endpoints[p.Endpoints[i].Key()] = EndpointState{Down: true}
			}
			e.SetState(s)
			if !e.Decide(rd, Client{}, &d) {
				t.Fatal("pool not usable")
			}
			got := d.AnswerSigs(head, rest, 4, tail)
			if len(got) != 1 || got[0][30] != version || got[0][31] != byte(1<<down) {
				t.Fatalf("version %d, %d down: %v", version, down, got)
			}
		}
		if n := testing.AllocsPerRun(100, func() { d.AnswerSigs(head, rest, 4, tail) }); n != 0 {
			t.Errorf("version %d: %v allocations per lookup", version, n)
		}
	}
}

// TestFallback: the fallback answer is the all-up, no-client answer when
// it is one of addresses, else the one with the name endpoints down, else
// the first address answer of Variants; a pool of names has none. The
// answer is always one of Variants, and a fallback mark is never taken
// for an answer's signature.
func TestFallback(t *testing.T) {
	a := func(i int) Endpoint { return Endpoint{Address: netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)})} }
	n := func(s string) Endpoint { return Endpoint{Name: s} }
	zero := uint32(0)
	heavy := a(1)
	heavy.Weight = &zero
	tests := []struct {
		name string
		pool Pool
		want uint64
		ok   bool
	}{
		{"no policy: every endpoint", Pool{Endpoints: []Endpoint{a(0), a(1), a(2)}}, 0b111, true},
		{"failover: the first", Pool{Policy: []string{"up", "first-n"}, Endpoints: []Endpoint{a(0), a(1), a(2)}}, 0b001, true},
		{"first two", Pool{Policy: []string{"up", "first-n"}, FirstN: 2, Endpoints: []Endpoint{a(0), a(1), a(2)}}, 0b011, true},
		{"a name first: the addresses when it is down", Pool{Policy: []string{"up", "first-n"}, Endpoints: []Endpoint{n("edge.example.net."), a(1), a(2)}}, 0b010, true},
		{"a name first, no up: only its CNAME", Pool{Policy: []string{"first-n"}, FirstN: 2, Endpoints: []Endpoint{n("edge.example.net."), a(1), a(2)}}, 0, false},
		{"a name first, latency: the first address answer", Pool{Policy: []string{"latency", "first-n"}, Endpoints: []Endpoint{n("edge.example.net."), a(1), a(2)}}, 0b010, true},
		{"weighted, a zero weight never", Pool{Policy: []string{"weighted"}, Endpoints: []Endpoint{heavy, a(2)}}, 0b10, true},
		{"names only", Pool{Policy: []string{"up", "first-n"}, Endpoints: []Endpoint{n("a.example.net."), n("b.example.net.")}}, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.pool.TTL = 30
			rd, err := Encode(dns.TypeA, tc.pool)
			if err != nil {
				t.Fatal(err)
			}
			m, ok, err := Fallback(rd)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.ok || (tc.want != 0 && m != tc.want) {
				t.Fatalf("Fallback = %#b, %v; want %#b, %v", m, ok, tc.want, tc.ok)
			}
			if !ok {
				return
			}
			masks, err := Variants(dns.TypeA, &tc.pool)
			if err != nil {
				t.Fatal(err)
			}
			if _, found := slices.BinarySearch(masks, m); !found {
				t.Errorf("fallback %#b is not among the variants %b", m, masks)
			}
			if rt, _, err := VariantRRset(dns.TypeA, &tc.pool, m); err != nil || rt != dns.TypeA {
				t.Errorf("fallback %#b answers %s, %v; want A", m, dns.TypeToString[rt], err)
			}
		})
	}
	mark := AppendFallbackMark(nil, dns.TypeAAAA)
	if typ, ok := ParseFallbackMark(mark); !ok || typ != dns.TypeAAAA {
		t.Errorf("ParseFallbackMark(%x) = %d, %v", mark, typ, ok)
	}
	if _, _, _, _, ok := ParsePoolSig(mark); ok {
		t.Errorf("a fallback mark parses as an answer's signature")
	}
	if MatchPoolSig(mark, dns.TypeAAAA, 0, 0) != nil {
		t.Errorf("a fallback mark matches an answer")
	}
	sig := AppendPoolSig(nil, dns.TypeA, 1, 1, make([]byte, 18))
	if _, ok := ParseFallbackMark(sig); ok {
		t.Errorf("an answer's signature parses as a fallback mark")
	}
}
