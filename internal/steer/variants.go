package steer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math/bits"
	"slices"

	"github.com/miekg/dns"
)

// Signed pools (issue #16). In a zone the control plane signs, every answer
// a pool can give is signed there in advance: Variants lists them, the
// signer makes the RRSIGs of each, and they travel with the zone as
// records of the private-use type TypePoolSig at the pool's owner, one per
// variant and key. The node attaches the RRSIGs of the variant it picked,
// so every PoP serves the same signatures and none holds a key.

// TypePoolSig is the private-use RR type of the signatures of a pool's
// answers: rdata the steered type (2 bytes), the format version (1), the
// RecordHash of the TypePool rdata signed (8), the answer's endpoint mask
// (8: bit i is endpoint i) and the RRSIG rdata (RFC 4034 §3.1) of that
// answer. The control plane makes them; they cannot be written.
const TypePoolSig uint16 = 65321

// sigFormatVersion is the version byte of TypePoolSig rdata.
const sigFormatVersion = 1

// poolSigHeader is the length of TypePoolSig rdata before the RRSIG.
const poolSigHeader = 2 + 1 + 8 + 8

// MaxVariants bounds the answers a pool in a signed zone can give: each is
// signed in advance, so a pool with more is refused there.
const MaxVariants = 256

// ErrTooManyVariants means a pool can give more answers than MaxVariants.
var ErrTooManyVariants = errors.New("too many possible answers to sign")

// RecordHash is the hash of a TypePool rdata that TypePoolSig records name
// (FNV-1a, 64 bits): signatures made for another version of the pool are
// never attached to its answers.
func RecordHash(rd []byte) uint64 {
	h := fnv.New64a()
	h.Write(rd)
	return h.Sum64()
}

// AppendPoolSig appends the TypePoolSig rdata of an RRSIG (rdata) of the
// answer mask of pool record hash, for type t.
func AppendPoolSig(dst []byte, t uint16, hash, mask uint64, rrsig []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, t)
	dst = append(dst, sigFormatVersion)
	dst = binary.BigEndian.AppendUint64(dst, hash)
	dst = binary.BigEndian.AppendUint64(dst, mask)
	return append(dst, rrsig...)
}

// ParsePoolSig reads TypePoolSig rdata; ok is false when it is malformed or
// of another format version.
func ParsePoolSig(rd []byte) (t uint16, hash, mask uint64, rrsig []byte, ok bool) {
	if len(rd) < poolSigHeader+18 || rd[2] != sigFormatVersion {
		return 0, 0, 0, nil, false
	}
	return binary.BigEndian.Uint16(rd), binary.BigEndian.Uint64(rd[3:]), binary.BigEndian.Uint64(rd[11:]), rd[poolSigHeader:], true
}

// MatchPoolSig returns the RRSIG of TypePoolSig rdata when it signs the
// answer mask of the pool record hash for type t, else nil. It allocates
// nothing (the node calls it per answer).
func MatchPoolSig(rd []byte, t uint16, hash, mask uint64) []byte {
	if len(rd) < poolSigHeader+18 || rd[2] != sigFormatVersion ||
		binary.BigEndian.Uint16(rd) != t || binary.BigEndian.Uint64(rd[3:]) != hash || binary.BigEndian.Uint64(rd[11:]) != mask {
		return nil
	}
	return rd[poolSigHeader:]
}

// AnswerMask is the set of endpoints the answer of d holds, as the node
// writes it: the first endpoint chosen when it is a name (a CNAME), else
// the addresses chosen. It names the variant whose signatures go with it.
func (d *Decision) AnswerMask() uint64 {
	if d.n == 0 {
		return 0
	}
	if d.pool.isName[d.idx[0]] {
		return 1 << d.idx[0]
	}
	var m uint64
	for _, i := range d.idx[:d.n] {
		if !d.pool.isName[i] {
			m |= 1 << i
		}
	}
	return m
}

// sigIndex is the answers' signatures of a pool in one TypePoolSig RRset:
// by answer mask, the RRSIG rdata (aliasing the zone's memory).
type sigIndex struct {
	first []byte // the RRset's first record: which RRset this indexes
	n     int    // its records
	sigs  map[uint64][][]byte
}

// AnswerSigs returns the RRSIGs of the answer of d among the TypePoolSig
// records of an RRset (head and rest as zone.RRset.Head gives them, n its
// records, tail zone.Tail to walk them): those made for this pool record,
// type and answer. The index
// of the RRset is built on first sight and kept with the compiled pool,
// so the lookup is one map access, without allocation, until the zone
// brings another version of the signatures.
func (d *Decision) AnswerSigs(head, rest []byte, n int, tail func([]byte) ([]byte, []byte)) [][]byte {
	if len(head) == 0 || d.n == 0 {
		return nil
	}
	c := d.pool
	idx := c.sigs.Load()
	if idx == nil || idx.n != n || &idx.first[0] != &head[0] {
		idx = &sigIndex{first: head, n: n, sigs: map[uint64][][]byte{}}
		for rd := head; rd != nil; rd, rest = tail(rest) {
			t, h, m, sig, ok := ParsePoolSig(rd)
			if ok && t == c.typ && h == c.salt {
				idx.sigs[m] = append(idx.sigs[m], sig)
			}
		}
		c.sigs.Store(idx)
	}
	return idx.sigs[d.AnswerMask()]
}

// VariantRRset is the answer of the endpoints in mask (a mask Variants
// gave): its type (CNAME for a name endpoint, else t) and its rdata, in
// pool order.
func VariantRRset(t uint16, p *Pool, mask uint64) (uint16, [][]byte, error) {
	var rds [][]byte
	for i, e := range p.Endpoints {
		if mask&(1<<i) == 0 {
			continue
		}
		if e.Address.IsValid() {
			rds = append(rds, e.Address.AsSlice())
			continue
		}
		if mask != 1<<i {
			return 0, nil, fmt.Errorf("%w: answer %#x: endpoint %d is a name among others", ErrInvalid, mask, i)
		}
		buf := make([]byte, 256)
		n, err := dns.PackDomainName(dns.Fqdn(e.Name), buf, 0, nil, false)
		if err != nil {
			return 0, nil, fmt.Errorf("%w: endpoints[%d].name: %w", ErrInvalid, i, err)
		}
		return dns.TypeCNAME, [][]byte{buf[:n]}, nil
	}
	if len(rds) == 0 {
		return 0, nil, fmt.Errorf("%w: answer %#x: no endpoint", ErrInvalid, mask)
	}
	return t, rds, nil
}

// candidates is one family of candidate sets during Variants: a set of
// endpoints (mask), or, with any, every non-empty subset of it.
type candidates struct {
	mask uint64
	any  bool
}

// maxFamilies bounds the candidate families Variants works through.
const maxFamilies = 4096

// Variants returns every answer pool p (of type t) can give, as endpoint
// masks (AnswerMask), in increasing order: whatever the health, RTTs,
// loads and client, Decide followed by the node's answer gives one of
// them. It may list answers no state leads to (the bound is what counts);
// more than MaxVariants is ErrTooManyVariants.
func Variants(t uint16, p *Pool) ([]uint64, error) {
	if err := p.Validate(t); err != nil {
		return nil, err
	}
	n := len(p.Endpoints)
	all := uint64(1)<<n - 1
	if n == 64 {
		all = ^uint64(0)
	}
	firstN := p.FirstN
	if firstN == 0 {
		firstN = 1
	}
	tooMany := func(what string) error {
		return fmt.Errorf("%w: the pool's policy %v over %d endpoints can give %s answers, at most %d can be signed; "+
			"use fewer endpoints, or a policy that returns one (weighted, first-n)", ErrTooManyVariants, p.Policy, n, what, MaxVariants)
	}
	fam := []candidates{{mask: all}}
	for _, name := range p.Policy {
		var next []candidates
		for _, c := range fam {
			switch name {
			case PolicyUp, PolicyLatency, PolicyLeastLoad:
				// Any non-empty subset: health, RTT ties and load ties
				// can leave any of them (all when none fits).
				next = append(next, candidates{mask: c.mask, any: true})
			case PolicyGeo:
				next = append(next, c)
				if c.any {
					break // subsets of subsets: nothing new
				}
				var regions []string
				for i, e := range p.Endpoints {
					if c.mask&(1<<i) != 0 && !slices.Contains(regions, e.Region) {
						regions = append(regions, e.Region)
					}
				}
				for _, r := range regions {
					var m uint64
					for i, e := range p.Endpoints {
						if c.mask&(1<<i) != 0 && e.Region == r {
							m |= 1 << i
						}
					}
					next = append(next, candidates{mask: m})
				}
			case PolicyWeighted:
				var total uint64
				for i, e := range p.Endpoints {
					if c.mask&(1<<i) != 0 {
						total += uint64(e.weight())
					}
				}
				for i, e := range p.Endpoints {
					if c.mask&(1<<i) == 0 {
						continue
					}
					// Among any subset, a zero weight is picked when it is
					// alone; in the set itself only when all are zero, and
					// then the first.
					if c.any || e.weight() > 0 || total == 0 {
						next = append(next, candidates{mask: 1 << i})
						if !c.any && total == 0 {
							break
						}
					}
				}
			case PolicyFirstN:
				if !c.any {
					next = append(next, candidates{mask: firstBits(c.mask, firstN)})
					break
				}
				k := bits.OnesCount64(c.mask)
				if subsetsUpTo(k, firstN) > MaxVariants {
					return nil, tooMany(fmt.Sprintf("more than %d", MaxVariants))
				}
				next = appendSubsets(next, c.mask, firstN)
			}
		}
		fam = dedupe(next)
		if len(fam) > maxFamilies {
			return nil, tooMany(fmt.Sprintf("more than %d", maxFamilies))
		}
	}
	addrs := uint64(0)
	for i, e := range p.Endpoints {
		if e.Address.IsValid() {
			addrs |= 1 << i
		}
	}
	answer := func(set uint64) uint64 {
		first := uint64(1) << bits.TrailingZeros64(set)
		if first&addrs == 0 {
			return first
		}
		return set & addrs
	}
	seen := map[uint64]bool{}
	for _, c := range fam {
		if !c.any {
			seen[answer(c.mask)] = true
		} else {
			if bits.OnesCount64(c.mask) > 8 {
				return nil, tooMany(fmt.Sprintf("2^%d-1", bits.OnesCount64(c.mask)))
			}
			for sub := c.mask; sub != 0; sub = (sub - 1) & c.mask {
				seen[answer(sub)] = true
			}
		}
		if len(seen) > MaxVariants {
			return nil, tooMany(fmt.Sprintf("more than %d", MaxVariants))
		}
	}
	out := make([]uint64, 0, len(seen))
	for m := range seen {
		out = append(out, m)
	}
	slices.Sort(out)
	return out, nil
}

// firstBits keeps the n lowest set bits of m.
func firstBits(m uint64, n int) uint64 {
	var out uint64
	for ; m != 0 && n > 0; n-- {
		low := m & -m
		out |= low
		m &^= low
	}
	return out
}

// subsetsUpTo counts the non-empty subsets of at most n of k elements
// (saturating above MaxVariants).
func subsetsUpTo(k, n int) int {
	total, c := 0, 1
	for j := 1; j <= min(k, n); j++ {
		c = c * (k - j + 1) / j
		total += c
		if total > MaxVariants || c > MaxVariants {
			return MaxVariants + 1
		}
	}
	return total
}

// appendSubsets appends every non-empty subset of m of at most n elements.
func appendSubsets(out []candidates, m uint64, n int) []candidates {
	var elems []uint64
	for x := m; x != 0; x &= x - 1 {
		elems = append(elems, x&-x)
	}
	var rec func(start int, cur uint64, size int)
	rec = func(start int, cur uint64, size int) {
		if size > 0 {
			out = append(out, candidates{mask: cur})
		}
		if size == n {
			return
		}
		for i := start; i < len(elems); i++ {
			rec(i+1, cur|elems[i], size+1)
		}
	}
	rec(0, 0, 0)
	return out
}

func dedupe(fam []candidates) []candidates {
	slices.SortFunc(fam, func(a, b candidates) int {
		switch {
		case a.mask != b.mask:
			if a.mask < b.mask {
				return -1
			}
			return 1
		case a.any == b.any:
			return 0
		case a.any:
			return -1
		}
		return 1
	})
	return slices.CompactFunc(fam, func(a, b candidates) bool { return a == b })
}

// A pool's fallback answer (issue #16). In a signed zone every pool's name
// also carries a real RRset of the steered type, so that the zone is
// whole to those that do not steer: verifiers (the NSEC or NSEC3 bitmap
// there lists the type), and secondaries of other vendors, which answer
// it. Unless the operator keeps a static RRset of that type there, the
// signer derives it from the pool — its fallback answer — and marks it
// with a TypePoolSig record of the fallback format (the steered type and
// the format byte, no signature), which nodes skip when they look for an
// answer's signatures.

// fallbackVersion is the format byte of a TypePoolSig fallback mark.
const fallbackVersion = 2

// AppendFallbackMark appends the TypePoolSig rdata that marks the RRset of
// type t at the owner as derived from its pool.
func AppendFallbackMark(dst []byte, t uint16) []byte {
	return append(binary.BigEndian.AppendUint16(dst, t), fallbackVersion)
}

// ParseFallbackMark reads a TypePoolSig fallback mark: the type whose
// RRset at the owner the signer derived; ok is false for other rdata.
func ParseFallbackMark(rd []byte) (t uint16, ok bool) {
	if len(rd) != 3 || rd[2] != fallbackVersion {
		return 0, false
	}
	return binary.BigEndian.Uint16(rd), true
}

// Fallback returns the fallback answer of the pool in rd (a TypePool
// rdata) as an endpoint mask (one of Variants'): the answer the node gives
// with every endpoint up to a client it knows nothing about (Decide with
// no state and the zero Client). When that is a CNAME (a name endpoint
// comes first), it is the answer given when the name endpoints are down,
// and when that is a CNAME too, the first answer of addresses among
// Variants. ok is false when the pool answers only CNAMEs.
func Fallback(rd []byte) (mask uint64, ok bool, err error) {
	c := Compile(rd)
	if c.err != nil {
		return 0, false, c.err
	}
	address := func(m uint64) bool { return m != 0 && !c.isName[bits.TrailingZeros64(m)] }
	var d Decision
	Decide(c, nil, Client{}, &d)
	if m := d.AnswerMask(); address(m) {
		return m, true, nil
	}
	down := &State{Endpoints: map[string]EndpointState{}}
	for i, k := range c.keys {
		if c.isName[i] {
			down.Endpoints[k] = EndpointState{Down: true}
		}
	}
	Decide(c, down, Client{}, &d)
	if m := d.AnswerMask(); address(m) {
		return m, true, nil
	}
	t, p, err := Decode(rd)
	if err != nil {
		return 0, false, err
	}
	masks, err := Variants(t, &p)
	if err != nil {
		return 0, false, err
	}
	for _, m := range masks {
		if address(m) {
			return m, true, nil
		}
	}
	return 0, false, nil
}
