package sign

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/steer"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// Signed pools (issue #16): a pool's answers are made by each node for
// each client, but signed here, once, in advance. For every pool of a
// signed zone the signer lists the answers the pool can give
// (steer.Variants, at most steer.MaxVariants), signs each as the RRset
// the node writes (the pool's owner, type and TTL; a CNAME for a name
// endpoint) with the zone's active ZSKs, and keeps the RRSIGs in
// steer.TypePoolSig records at the owner, one per answer and key. They are
// zone data to the rest of the signer: signed as an RRset, listed in the
// NSEC or NSEC3 type bitmap, transferred by IXFR and the stream with the
// change that made them. The NSEC/NSEC3 bitmap of the owner also lists the
// steered type, which the node answers there (a resolver that caches the
// owner's NSEC must not deny it, RFC 8198), and the owner carries a real
// RRset of that type, signed as any: the operator's static one, or else
// the pool's fallback answer (steer.Fallback), which the signer derives,
// keeps in step with the pool and marks with a TypePoolSig fallback mark
// (steer.AppendFallbackMark). So verifiers, and secondaries that do not
// steer, see a whole zone: a name whose bitmap lists A has an A RRset.
//
// The answers' signatures expire with the signature of the owner's
// TypePoolSig RRset (the same expiration, made at the same time), so the
// zone's refresh schedule (NextRefresh) covers them: whenever that RRset
// is due, PoolSigs finds its answers due too and signs them again.

// PoolSigs returns the change that makes the TypePoolSig records at names
// (nil: every name of z) right for z at now: the answers of the pools
// there signed with the keys active at now, none at a name without a pool,
// and the pools' derived fallback RRsets (with their marks) made, changed
// or removed with the pools (never an RRset the operator wrote).
// Signatures still good (made for the same pool record by the active
// ZSKs, not coming due within window of now) are kept unless force; a
// pool's answers are otherwise all signed again. A pool with more than
// steer.MaxVariants possible answers, a TTL over zone_max_ttl, or only
// CNAME answers and no static RRset of its type, is an error (ErrPolicy)
// naming it.
func (s *Signer) PoolSigs(z *zone.Zone, names [][]byte, now time.Time, window time.Duration, force bool) (del, add []zone.RR, err error) {
	if !bytes.Equal(z.OriginWire(), s.origin) {
		return nil, nil, fmt.Errorf("sign %s: the signer is for %s", z.Origin, s.zone)
	}
	var ks keySet
	keysRead := false
	visit := func(n *zone.Node) error {
		pools, old := n.Get(steer.TypePool), n.Get(steer.TypePoolSig)
		if pools == nil && old == nil {
			return nil
		}
		if !keysRead {
			if ks, err = s.keysAt(now); err != nil {
				return err
			}
			keysRead = true
		}
		var want, had [][]byte
		var ttl uint32
		marked := map[uint16]bool{} // the types whose RRset here the signer derived
		if old != nil {
			had = slices.Collect(old.All())
			for _, rd := range had {
				if t, ok := steer.ParseFallbackMark(rd); ok {
					marked[t] = true
				}
			}
		}
		steered := map[uint16]bool{}
		if pools != nil && s.classify(n) == kindAuth {
			ttl = pools.TTL
			for rd := range pools.All() {
				w, err := s.poolSigs(n, rd, old, ks, now, window, force)
				if err != nil {
					return err
				}
				want = append(want, w...)
				t := steer.RdataType(rd)
				steered[t] = true
				if n.Get(t) != nil && !marked[t] {
					continue // the operator's own RRset of the type stands
				}
				fd, fa, err := s.fallback(n, rd)
				if err != nil {
					return err
				}
				del, add = append(del, fd...), append(add, fa...)
				want = append(want, steer.AppendFallbackMark(nil, t))
			}
		}
		for _, t := range slices.Sorted(maps.Keys(marked)) {
			if set := n.Get(t); set != nil && !steered[t] {
				// The pool is gone: so is the answer derived from it.
				for rd := range set.All() {
					del = append(del, zone.RR{Name: n.Name, Type: t, TTL: set.TTL, Rdata: rd})
				}
			}
		}
		same := old == nil || old.TTL == ttl
		for _, rd := range had {
			if !same || !slices.ContainsFunc(want, func(x []byte) bool { return bytes.Equal(x, rd) }) {
				del = append(del, zone.RR{Name: n.Name, Type: steer.TypePoolSig, TTL: old.TTL, Rdata: rd})
			}
		}
		for _, rd := range want {
			if !same || !slices.ContainsFunc(had, func(x []byte) bool { return bytes.Equal(x, rd) }) {
				add = append(add, zone.RR{Name: n.Name, Type: steer.TypePoolSig, TTL: ttl, Rdata: rd})
			}
		}
		return nil
	}
	if names == nil {
		z.Nodes(func(n *zone.Node) {
			if err == nil {
				err = visit(n)
			}
		})
	} else {
		for _, name := range names {
			if n := z.Lookup(name); n != nil {
				if err = visit(n); err != nil {
					break
				}
			}
		}
	}
	if err != nil {
		return nil, nil, err
	}
	return del, add, nil
}

// PoolChange returns the change to the TypePoolSig records that the change
// del, add of z (a zone this signer signed, as Update takes it) needs at
// now: the answers of the pools it adds or edits signed, those of the
// pools it deletes gone, the still-good ones of the names it touches kept.
// To be given to Update with the change. Without a pool at the names the
// change touches, it is nothing, and costs a few lookups.
func (s *Signer) PoolChange(z *zone.Zone, del, add []zone.RR, now time.Time) (pd, pa []zone.RR, err error) {
	var names [][]byte
	pools := false
	seen := map[string]bool{}
	for _, list := range [][]zone.RR{del, add} {
		for _, r := range list {
			if r.Type == steer.TypePool {
				pools = true
			}
			if seen[string(r.Name)] {
				continue
			}
			seen[string(r.Name)] = true
			names = append(names, r.Name)
			if n := z.Lookup(r.Name); n != nil && (n.Get(steer.TypePool) != nil || n.Get(steer.TypePoolSig) != nil) {
				pools = true
			}
		}
	}
	if !pools {
		return nil, nil, nil
	}
	// A change that writes records of a type the signer derived at a
	// pool's name makes that RRset the operator's: the derived records
	// it does not write again go, and so does their mark.
	takeover := takeOver(z, del, add)
	// The change applied with the signatures of the touched names taken
	// away (they are Update's to make), to read the pools it leaves.
	var strip []zone.RR
	for _, name := range names {
		if n := z.Lookup(name); n != nil {
			strip = appendSigs(strip, n)
		}
	}
	nz, err := z.Apply(slices.Concat(del, takeover, strip), add)
	if err != nil {
		return nil, nil, fmt.Errorf("sign %s: pools of the change: %w", s.zone, err)
	}
	pd, pa, err = s.PoolSigs(nz, names, now, 0, false)
	if err != nil {
		return nil, nil, err
	}
	return append(takeover, pd...), pa, nil
}

// takeOver returns the records of z that a change (del, add) writing
// records of a type at a name where the signer derived that type's RRset
// from a pool takes away: the derived records neither deleted nor added
// again by the change, and the mark.
func takeOver(z *zone.Zone, del, add []zone.RR) []zone.RR {
	var out []zone.RR
	type nameType struct {
		name string
		t    uint16
	}
	done := map[nameType]bool{}
	in := func(list []zone.RR, r zone.RR) bool {
		return slices.ContainsFunc(list, func(x zone.RR) bool {
			return x.Type == r.Type && bytes.Equal(x.Name, r.Name) && bytes.Equal(x.Rdata, r.Rdata)
		})
	}
	for _, r := range add {
		key := nameType{string(r.Name), r.Type}
		if done[key] {
			continue
		}
		done[key] = true
		n := z.Lookup(r.Name)
		if n == nil {
			continue
		}
		marks := n.Get(steer.TypePoolSig)
		if marks == nil {
			continue
		}
		for rd := range marks.All() {
			if t, ok := steer.ParseFallbackMark(rd); !ok || t != r.Type {
				continue
			}
			mark := zone.RR{Name: n.Name, Type: steer.TypePoolSig, TTL: marks.TTL, Rdata: rd}
			if !in(del, mark) {
				out = append(out, mark)
			}
			set := n.Get(r.Type)
			if set == nil {
				break
			}
			for x := range set.All() {
				d := zone.RR{Name: n.Name, Type: r.Type, TTL: set.TTL, Rdata: x}
				if !in(del, d) && !in(add, d) {
					out = append(out, d)
				}
			}
			break
		}
	}
	return out
}

// fallback returns the change that makes the RRset of the steered type at
// n (the signer's, or none) the fallback answer (steer.Fallback) of the
// pool record rd, with the pool's TTL. A pool that answers only CNAMEs
// has none: an error (ErrPolicy) naming it, unless the operator gives
// the name a static RRset of the type.
func (s *Signer) fallback(n *zone.Node, rd []byte) (del, add []zone.RR, err error) {
	owner := zone.NameString(n.Name)
	t, p, err := steer.Decode(rd)
	if err != nil {
		return nil, nil, fmt.Errorf("sign %s: pool %s: %w: %w", s.zone, owner, ErrPolicy, err)
	}
	m, ok, err := steer.Fallback(rd)
	if err != nil {
		return nil, nil, fmt.Errorf("sign %s: pool %s %s: %w: %w", s.zone, owner, typeName(t), ErrPolicy, err)
	}
	if !ok {
		return nil, nil, fmt.Errorf("sign %s: pool %s %s: %w: it answers only CNAMEs, and in a signed zone a pool's name needs an %s RRset "+
			"(what secondaries that do not steer answer, and what the NSEC/NSEC3 bitmap there lists): give the name a static %s RRset, or the pool an address endpoint",
			s.zone, owner, typeName(t), ErrPolicy, typeName(t), typeName(t))
	}
	_, rds, err := steer.VariantRRset(t, &p, m)
	if err != nil {
		return nil, nil, fmt.Errorf("sign %s: pool %s %s: %w", s.zone, owner, typeName(t), err)
	}
	cur := n.Get(t)
	var had [][]byte
	if cur != nil {
		had = slices.Collect(cur.All())
	}
	same := cur == nil || cur.TTL == p.TTL
	for _, x := range had {
		if !same || !slices.ContainsFunc(rds, func(y []byte) bool { return bytes.Equal(x, y) }) {
			del = append(del, zone.RR{Name: n.Name, Type: t, TTL: cur.TTL, Rdata: x})
		}
	}
	for _, x := range rds {
		if !same || !slices.ContainsFunc(had, func(y []byte) bool { return bytes.Equal(x, y) }) {
			add = append(add, zone.RR{Name: n.Name, Type: t, TTL: p.TTL, Rdata: x})
		}
	}
	return del, add, nil
}

// poolSigs returns the TypePoolSig rdata of the pool record rd at n: the
// old ones (of the RRset old) when they are all still good, else new.
func (s *Signer) poolSigs(n *zone.Node, rd []byte, old *zone.RRset, ks keySet, now time.Time, window time.Duration, force bool) ([][]byte, error) {
	owner := zone.NameString(n.Name)
	t, p, err := steer.Decode(rd)
	if err != nil {
		return nil, fmt.Errorf("sign %s: pool %s: %w: %w", s.zone, owner, ErrPolicy, err)
	}
	masks, err := steer.Variants(t, &p)
	if err != nil {
		return nil, fmt.Errorf("sign %s: pool %s %s: %w: %w", s.zone, owner, typeName(t), ErrPolicy, err)
	}
	if err := s.checkTTL(n.Name, t, p.TTL); err != nil {
		return nil, err
	}
	h := steer.RecordHash(rd)
	if !force && old != nil {
		if kept := s.goodPoolSigs(old, t, h, masks, ks, now, window); kept != nil {
			return kept, nil
		}
	}
	jobs := make([]job, 0, len(masks))
	for _, m := range masks {
		rt, rds, err := steer.VariantRRset(t, &p, m)
		if err != nil {
			return nil, fmt.Errorf("sign %s: pool %s %s: %w", s.zone, owner, typeName(t), err)
		}
		jobs = append(jobs, job{owner: n.Name, t: rt, ttl: p.TTL, rds: rds, keys: ks.zsk})
	}
	// The answers expire with the TypePoolSig RRset's own signature, made
	// now with them.
	tm := s.timing(now)
	tm.expiration = time.Unix(int64(tm.expirationOf(n.Name, steer.TypePoolSig)), 0)
	tm.jitter = 0
	if err := s.signJobs(jobs, tm); err != nil {
		return nil, fmt.Errorf("sign %s: pool %s %s: %w", s.zone, owner, typeName(t), err)
	}
	out := make([][]byte, 0, len(jobs)*len(ks.zsk))
	for i := range jobs {
		for _, sig := range jobs[i].sigs {
			out = append(out, steer.AppendPoolSig(nil, t, h, masks[i], sig))
		}
	}
	return out, nil
}

// goodPoolSigs returns the records of old that sign every answer of the
// pool (type t, record hash h) with exactly the active ZSKs, none due
// within window of now; nil when any is missing or due.
func (s *Signer) goodPoolSigs(old *zone.RRset, t uint16, h uint64, masks []uint64, ks keySet, now time.Time, window time.Duration) [][]byte {
	limit := now.Add(window + s.policy.SignatureRefresh)
	var kept [][]byte
	count := map[uint64]int{}
	for rd := range old.All() {
		rt, rh, m, sig, ok := steer.ParsePoolSig(rd)
		if !ok || rt != t || rh != h {
			continue
		}
		if _, found := slices.BinarySearch(masks, m); !found {
			return nil
		}
		if !sigTime(sig[8:12], now).After(limit) {
			return nil
		}
		tag := uint16(sig[16])<<8 | uint16(sig[17])
		if !slices.ContainsFunc(ks.zsk, func(k *Key) bool { return k.Tag() == tag && byte(k.Algorithm) == sig[2] }) {
			return nil
		}
		count[m]++
		kept = append(kept, rd)
	}
	for _, m := range masks {
		if count[m] != len(ks.zsk) {
			return nil
		}
	}
	return kept
}

// withSteered returns the types of the NSEC or NSEC3 bitmap of a node of
// kind k with types ts: with the types its pools steer, which the node
// answers there, when it holds authoritative data.
func withSteered(n *zone.Node, k kind, ts []uint16) []uint16 {
	pools := n.Get(steer.TypePool)
	if pools == nil || k != kindAuth {
		return ts
	}
	out := slices.Clone(ts)
	for rd := range pools.All() {
		if t := steer.RdataType(rd); t != 0 && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

func typeName(t uint16) string { return dns.Type(t).String() }
