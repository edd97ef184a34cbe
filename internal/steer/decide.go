package steer

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"sync/atomic"

	"github.com/miekg/dns"
)

// filter is one policy of a compiled chain.
type filter uint8

const (
	fUp filter = iota
	fGeo
	fLatency
	fLeastLoad
	fWeighted
	fFirstN
)

// Compiled is a pool made ready for decisions: what the query path needs,
// in the form it needs it.
type Compiled struct {
	typ    uint16
	ttl    uint32
	chain  []filter
	firstN int
	eps    []Endpoint
	keys   []string
	rdata  [][]byte // A/AAAA rdata, or the wire name of a name endpoint
	isName []bool
	salt   uint64  // spreads the weighted choice of different pools apart
	geo    *GeoMap // the pool's own region map; nil: the State's
	record []byte  // the TypePool rdata compiled, as the engine's cache key
	err    error
	// sigs indexes the answers' signatures (TypePoolSig records) of the
	// last signed zone version the pool was answered from.
	sigs atomic.Pointer[sigIndex]
}

// Compile prepares the pool in a TypePool rdata for decisions.
func Compile(rd []byte) *Compiled {
	t, p, err := Decode(rd)
	if err != nil {
		return &Compiled{typ: t, err: err}
	}
	c := &Compiled{typ: t, ttl: p.TTL, firstN: p.FirstN, eps: p.Endpoints}
	if len(p.Regions) > 0 {
		m := make(map[netip.Prefix]string, len(p.Regions))
		for k, v := range p.Regions {
			m[netip.MustParsePrefix(k)] = v // validated by Decode
		}
		if c.geo, err = NewGeoMap(m); err != nil {
			return &Compiled{typ: t, err: err}
		}
	}
	if c.firstN == 0 {
		c.firstN = 1
	}
	for _, name := range p.Policy {
		c.chain = append(c.chain, map[string]filter{
			PolicyUp: fUp, PolicyGeo: fGeo, PolicyLatency: fLatency,
			PolicyLeastLoad: fLeastLoad, PolicyWeighted: fWeighted, PolicyFirstN: fFirstN,
		}[name])
	}
	for _, e := range p.Endpoints {
		c.keys = append(c.keys, e.Key())
		if e.Address.IsValid() {
			c.rdata = append(c.rdata, e.Address.AsSlice())
			c.isName = append(c.isName, false)
			continue
		}
		buf := make([]byte, 256)
		n, err := dns.PackDomainName(dns.Fqdn(e.Name), buf, 0, nil, false)
		if err != nil {
			return &Compiled{typ: t, err: err}
		}
		c.rdata = append(c.rdata, buf[:n])
		c.isName = append(c.isName, true)
	}
	c.salt = RecordHash(rd)
	return c
}

// Err is why the pool cannot be used (nil when it can).
func (c *Compiled) Err() error { return c.err }

// Type is the type the pool steers.
func (c *Compiled) Type() uint16 { return c.typ }

// TTL of the answers.
func (c *Compiled) TTL() uint32 { return c.ttl }

// Decision is the outcome of Decide: the endpoints chosen, in order, and
// the ECS scope (RFC 7871 §7.2.1), the number of leading bits of the
// client's address the choice depended on (0: it did not).
type Decision struct {
	pool  *Compiled
	idx   [MaxEndpoints]uint8
	n     int
	Scope uint8
}

// TTL is the TTL of the answer.
func (d *Decision) TTL() uint32 { return d.pool.ttl }

// Len is the number of endpoints chosen.
func (d *Decision) Len() int { return d.n }

// Rdata is the rdata of the i-th endpoint chosen: its address (4 or 16
// bytes), or its wire name when IsName.
func (d *Decision) Rdata(i int) []byte { return d.pool.rdata[d.idx[i]] }

// IsName tells whether the i-th endpoint chosen is a name (a CNAME target).
func (d *Decision) IsName(i int) bool { return d.pool.isName[d.idx[i]] }

// Endpoint returns the i-th endpoint chosen.
func (d *Decision) Endpoint(i int) *Endpoint { return &d.pool.eps[d.idx[i]] }

// Decide runs the chain of pool c for client cl on state s (nil: no
// knowledge, every endpoint up) and leaves the result in d. It is pure:
// the same pool, client and state give the same decision, at every PoP.
func Decide(c *Compiled, s *State, cl Client, d *Decision) {
	d.pool = c
	d.n = len(c.eps)
	d.Scope = 0
	for i := range d.n {
		d.idx[i] = uint8(i)
	}
	if s == nil {
		s = &emptyState
	}
	// The client's region, looked up once for geo and latency.
	var (
		region  string
		scope   uint8
		located bool
		looked  bool
	)
	locate := func() {
		if !looked {
			g := c.geo
			if g == nil {
				g = s.Geo
			}
			region, scope, located = g.Lookup(cl)
			looked = true
		}
	}
	for _, f := range c.chain {
		switch f {
		case fUp:
			keep(d, func(i uint8) bool { return !s.Endpoints[c.keys[i]].Down })
		case fGeo:
			locate()
			d.Scope = max(d.Scope, scope)
			if located {
				keep(d, func(i uint8) bool { return c.eps[i].Region == region })
			}
		case fLatency:
			locate()
			d.Scope = max(d.Scope, scope)
			if !located {
				break
			}
			row := s.RTT[region]
			if row == nil {
				break
			}
			lowest(d, func(i uint8) (float64, bool) {
				rtt, ok := row[c.keys[i]]
				return float64(rtt), ok
			})
		case fLeastLoad:
			lowest(d, func(i uint8) (float64, bool) {
				st, ok := s.Endpoints[c.keys[i]]
				if !ok || !st.HasLoad {
					return 0, false
				}
				if capa := c.eps[i].Capacity; capa > 0 {
					return st.Load / capa, true
				}
				return st.Load, true
			})
		case fWeighted:
			d.Scope = max(d.Scope, cl.Bits)
			weighted(d, c, cl)
		case fFirstN:
			d.n = min(d.n, c.firstN)
		}
	}
}

var emptyState State

// keep keeps the candidates ok accepts, in order; when it accepts none,
// all stay (fail open: a filter never leaves a pool empty).
func keep(d *Decision, ok func(i uint8) bool) {
	n := 0
	for _, i := range d.idx[:d.n] {
		if ok(i) {
			d.idx[n] = i
			n++
		}
	}
	if n > 0 {
		// Write the survivors over the front; the rest is not read.
		d.n = n
	}
	// n == 0: the loop rewrote nothing (no survivor was written), so the
	// candidates are untouched.
}

// lowest keeps the candidates with the lowest known value; when no
// candidate has one, all stay.
func lowest(d *Decision, value func(i uint8) (float64, bool)) {
	best, found := 0.0, false
	for _, i := range d.idx[:d.n] {
		if v, ok := value(i); ok && (!found || v < best) {
			best, found = v, true
		}
	}
	if !found {
		return
	}
	keep(d, func(i uint8) bool {
		v, ok := value(i)
		return ok && v == best
	})
}

// weighted keeps one candidate, chosen with probability proportional to
// its weight by a hash of the client's subnet: one resolver (or one ECS
// subnet) always gets the same endpoint while the pool stays as it is.
func weighted(d *Decision, c *Compiled, cl Client) {
	var total uint64
	for _, i := range d.idx[:d.n] {
		total += uint64(c.eps[i].weight())
	}
	if d.n == 0 {
		return
	}
	if total == 0 {
		d.n = 1 // all weights 0: the first
		return
	}
	r := subnetHash(cl, c.salt) % total
	for _, i := range d.idx[:d.n] {
		w := uint64(c.eps[i].weight())
		if r < w {
			d.idx[0], d.n = i, 1
			return
		}
		r -= w
	}
}

// subnetHash mixes the client's subnet (address bits and length) with
// salt: splitmix64 over the 16-byte address, the same at every PoP.
func subnetHash(cl Client, salt uint64) uint64 {
	a := cl.Addr.As16()
	h := salt ^ uint64(cl.Bits)
	h = mix(h ^ binary.BigEndian.Uint64(a[:8]))
	h = mix(h ^ binary.BigEndian.Uint64(a[8:]))
	return h
}

func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// Engine keeps the steering state and the compiled pools for the query
// path: both are read through atomic pointers, so neither a state update
// nor a new pool ever blocks a query.
type Engine struct {
	state atomic.Pointer[State]
	seed  maphash.Seed
	// cache holds compiled pools in cacheSlots sets of two, by a hash of
	// the pool record: a lookup hashes the record and compares it with at
	// most two entries, no lock, no allocation; a new pool takes the
	// older-looking way of its set. Memory is bounded whatever the number
	// of pools and versions, and pools no longer served age out.
	cache    [cacheSlots][2]atomic.Pointer[Compiled]
	compiles atomic.Uint64
}

// cacheSlots is the number of two-way sets of the pool cache (a power of
// two): 8,192 sets hold 16,384 pools.
const cacheSlots = 1 << 13

// NewEngine returns an engine with no state: every endpoint up, no map,
// no RTT or load.
func NewEngine() *Engine { return &Engine{seed: maphash.MakeSeed()} }

// SetState replaces the state: decisions from now on read s, which must
// not change afterwards.
func (e *Engine) SetState(s *State) { e.state.Store(s) }

// State returns the state in force (nil: none).
func (e *Engine) State() *State { return e.state.Load() }

// Compiles counts the pools compiled: the first use of each, and again
// after eviction from the cache.
func (e *Engine) Compiles() uint64 { return e.compiles.Load() }

// Pool returns the compiled pool of a TypePool rdata, compiling it on
// first sight. Finding a known pool takes no lock and allocates nothing.
func (e *Engine) Pool(rd []byte) *Compiled {
	h := maphash.Bytes(e.seed, rd)
	set := &e.cache[h&(cacheSlots-1)]
	for w := range set {
		if c := set[w].Load(); c != nil && string(c.record) == string(rd) {
			return c
		}
	}
	c := Compile(rd)
	c.record = bytes.Clone(rd)
	e.compiles.Add(1)
	// Replace way 1, moving way 0 there: the newest pool of a set stays
	// in way 0, so a pool used all the time is not evicted by one seen
	// once (unless two busy pools share a set, which costs a compile per
	// switch, never a wrong answer).
	set[1].Store(set[0].Load())
	set[0].Store(c)
	return c
}

// Decide decides for the pool in rd (a TypePool rdata) on the current
// state; ok is false when the pool cannot be used (Pool(rd).Err()).
func (e *Engine) Decide(rd []byte, cl Client, d *Decision) bool {
	c := e.Pool(rd)
	if c.err != nil {
		return false
	}
	Decide(c, e.state.Load(), cl, d)
	return true
}
