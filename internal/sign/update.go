package sign

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/wire"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// Update applies a change (the records to delete and to add, as
// zone.Apply takes them; the SOA with its new serial among them) to a zone
// this signer signed, and keeps it signed: it returns the new version and
// the whole difference from z to it (the change, new signatures over the
// RRsets the change touched, the NSEC or NSEC3 records of the names that
// appeared or went and of their neighbours in the chain, the signatures
// of the RRsets that went), SOA first, as zone.DiffWire gives it. The
// signatures of RRsets the change did not touch are kept.
//
// A change of the SOA's TTL or MINIMUM changes the TTL of every NSEC or
// NSEC3 record (RFC 9077): the zone is then signed whole.
//
// The change must not hold DNSSEC records the signer makes (RRSIG, NSEC,
// NSEC3; DNSKEY, CDS, CDNSKEY and NSEC3PARAM at the apex): the apex's key
// RRsets follow the keys' timing at now.
func (s *Signer) Update(z *zone.Zone, del, add []zone.RR, now time.Time) (*zone.Zone, []zone.RR, []zone.RR, error) {
	if !bytes.Equal(z.OriginWire(), s.origin) {
		return nil, nil, nil, fmt.Errorf("sign %s: the signer is for %s", z.Origin, s.zone)
	}
	if !z.Signed || (z.NSEC3 != nil) != s.policy.NSEC3 {
		return nil, nil, nil, fmt.Errorf("update %s: %w: the zone is not signed with the policy's chain (sign it whole first)", s.zone, ErrPolicy)
	}
	if len(del)+len(add) == 0 {
		return z, nil, nil, nil
	}
	ks, err := s.keysAt(now)
	if err != nil {
		return nil, nil, nil, err
	}
	u := &updater{s: s, z: z, ks: ks, now: now, names: map[string]bool{}}
	if s.policy.NSEC3 {
		u.salt = z.NSEC3.Salt
	}
	// The names the change touches, their ancestors, and the subtrees of
	// delegations that appear or go.
	for _, list := range [][]zone.RR{del, add} {
		for i := range list {
			r := &list[i]
			if generated(r.Type, len(r.Name) == len(s.origin)) {
				return nil, nil, nil, fmt.Errorf("update %s: %s %s: %w: DNSSEC records are made by the signer", s.zone, zone.NameString(r.Name), dns.TypeToString[r.Type], ErrPolicy)
			}
			name := wire.LowerName(make([]byte, len(r.Name)), r.Name)
			if !wire.IsSubdomain(name, s.origin) {
				return nil, nil, nil, fmt.Errorf("update %s: %s: out of zone", s.zone, zone.NameString(r.Name))
			}
			if r.Type == dns.TypeDNAME || (r.Type == dns.TypeNS && len(name) != len(s.origin)) {
				u.subtree(name)
			}
			for p := name; ; p = wire.Parent(p) {
				u.names[string(p)] = true
				if len(p) <= len(s.origin) {
					break
				}
			}
		}
	}
	// The apex's key RRsets follow the keys whatever the change.
	u.names[string(s.origin)] = true

	// First the change, with the DNSSEC records of those names taken
	// away: nz1 is signed everywhere else.
	strip := u.strip()
	nz1, err := z.Apply(append(slices.Clip(del), strip...), add)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("update %s: %w", s.zone, err)
	}
	if nz1.NegTTL != z.NegTTL {
		// Every NSEC or NSEC3 record takes the SOA's negative TTL (RFC
		// 9077): a change of it is a change of the whole chain.
		nz, err := s.Sign(nz1, now)
		if err != nil {
			return nil, nil, nil, err
		}
		d, a := zone.DiffWire(z, nz)
		return nz, d, a, nil
	}
	u.nz = nz1
	if err := u.resign(); err != nil {
		return nil, nil, nil, err
	}
	nz2, err := nz1.Apply(u.del, u.add)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("update %s: signing the change: %w", s.zone, err)
	}
	d, a := zone.DiffWire(z, nz2)
	return nz2, d, a, nil
}

// updater is one Update.
type updater struct {
	s     *Signer
	z     *zone.Zone // before
	nz    *zone.Zone // the change applied, the touched names unsigned
	ks    keySet
	now   time.Time
	salt  []byte
	names map[string]bool // touched, lower-cased wire names
	// The second change: nz to the signed version.
	del, add []zone.RR
	jobs     []job
}

// subtree adds every name of z at or below name.
func (u *updater) subtree(name []byte) {
	u.z.Ascend(name, func(n *zone.Node) bool {
		if !wire.IsSubdomain(n.Name, name) {
			return false
		}
		u.names[string(n.Name)] = true
		return true
	})
}

// sorted returns the touched names in canonical order.
func (u *updater) sorted() [][]byte {
	out := make([][]byte, 0, len(u.names))
	for n := range u.names {
		out = append(out, []byte(n))
	}
	slices.SortFunc(out, zone.Compare)
	return out
}

// strip returns the DNSSEC records of the touched names that depend on
// their data: every signature, the NSEC, the NSEC3 of the name's hash.
// The apex keeps its key RRsets and NSEC3PARAM (resign compares them).
func (u *updater) strip() []zone.RR {
	var out []zone.RR
	for _, name := range u.sorted() {
		n := u.z.Lookup(name)
		if n == nil {
			continue
		}
		out = appendSigs(out, n)
		if set := n.Get(dns.TypeNSEC); set != nil {
			for rd := range set.All() {
				out = append(out, zone.RR{Name: n.Name, Type: dns.TypeNSEC, TTL: set.TTL, Rdata: rd})
			}
		}
		if u.s.policy.NSEC3 {
			h := u.s.nsec3Owner(nsec3Hash(n.Name, u.salt))
			if o := u.z.Lookup(h); o != nil {
				out = appendSigs(out, o)
				if set := o.Get(dns.TypeNSEC3); set != nil {
					for rd := range set.All() {
						out = append(out, zone.RR{Name: o.Name, Type: dns.TypeNSEC3, TTL: set.TTL, Rdata: rd})
					}
				}
			}
		}
	}
	return out
}

func appendSigs(out []zone.RR, n *zone.Node) []zone.RR {
	for i := range n.Sets {
		set := &n.Sets[i]
		for rd := range set.Sigs() {
			out = append(out, zone.RR{Name: n.Name, Type: dns.TypeRRSIG, TTL: set.SigTTL(), Rdata: rd})
		}
	}
	return out
}

// resign computes the second change: the touched names' signatures and
// chain records, and their neighbours' chain records.
func (u *updater) resign() error {
	s := u.s
	var param []byte
	if s.policy.NSEC3 {
		param = nsec3Param(u.salt)
	}
	apexSets := s.apexSets(u.ks, param)
	dnskeyTTL := uint32(s.policy.DNSKEYTTL / time.Second)
	negTTL := u.nz.NegTTL
	names := u.sorted()
	type hashed struct {
		h, bm []byte
	}
	var newHashes []hashed
	for _, name := range names {
		n := u.nz.Lookup(name)
		k := s.classify(n)
		if k == kindNone || k == kindGlue {
			continue
		}
		apex := n == u.nz.Apex
		if apex {
			// The key RRsets and NSEC3PARAM as the keys say.
			for _, t := range []uint16{dns.TypeDNSKEY, dns.TypeCDS, dns.TypeCDNSKEY, dns.TypeNSEC3PARAM} {
				ttl := dnskeyTTL
				if t == dns.TypeNSEC3PARAM {
					ttl = 0
				}
				u.replaceSet(n, t, ttl, apexSets[t])
			}
		}
		ts := s.types(n, k, apexSets)
		for _, t := range signedTypes(k, ts) {
			var ttl uint32
			var rds [][]byte
			if set := n.Get(t); set != nil && !generated(t, apex) {
				ttl = set.TTL
				if err := s.checkTTL(n.Name, t, ttl); err != nil {
					return err
				}
				for rd := range set.All() {
					rds = append(rds, rd)
				}
			} else {
				ttl, rds = dnskeyTTL, apexSets[t]
				if t == dns.TypeNSEC3PARAM {
					ttl = 0
				}
			}
			u.sign(n.Name, t, ttl, rds, apex)
		}
		switch {
		case !s.policy.NSEC3 && inNSEC(k):
			rd := append(slices.Clone(u.nextNSEC(n.Name)), bitmap(nsecTypes(withSteered(n, k, ts)))...)
			u.add = append(u.add, zone.RR{Name: n.Name, Type: dns.TypeNSEC, TTL: negTTL, Rdata: rd})
			u.sign(n.Name, dns.TypeNSEC, negTTL, [][]byte{rd}, false)
		case s.policy.NSEC3 && s.inNSEC3(n, k):
			newHashes = append(newHashes, hashed{nsec3Hash(n.Name, u.salt), bitmap(nsec3Types(k, withSteered(n, k, ts)))})
		}
	}
	if !s.policy.NSEC3 {
		// The NSEC of the chain member before each touched name that is
		// not touched itself points to the next member.
		seen := map[string]bool{}
		for _, name := range names {
			p := u.prevNSEC(name)
			if p == nil || u.names[string(p.Name)] || seen[string(p.Name)] {
				continue
			}
			seen[string(p.Name)] = true
			set := p.Get(dns.TypeNSEC)
			if set == nil {
				return fmt.Errorf("update %s: %s has no NSEC record: the zone's chain is broken (sign it whole)", s.zone, zone.NameString(p.Name))
			}
			old := set.First()
			next := u.nextNSEC(p.Name)
			if l := wire.NameLen(old); l > 0 && bytes.Equal(old[:l], next) {
				continue
			}
			rd := append(slices.Clone(next), old[wire.NameLen(old):]...)
			u.replaceSet(p, dns.TypeNSEC, set.TTL, [][]byte{rd})
			u.del = appendSigsOf(u.del, p, dns.TypeNSEC)
			u.sign(p.Name, dns.TypeNSEC, set.TTL, [][]byte{rd}, false)
		}
		return u.signAll()
	}
	// NSEC3: the touched names' records, then the records before each
	// touched hash (a name gone, or new) that are not touched.
	slices.SortFunc(newHashes, func(a, b hashed) int { return bytes.Compare(a.h, b.h) })
	hs := make([][]byte, len(newHashes))
	for i := range newHashes {
		hs[i] = newHashes[i].h
	}
	for _, x := range newHashes {
		owner := s.nsec3Owner(x.h)
		rd := s.nsec3Rdata(u.salt, u.nextHash(x.h, hs), x.bm)
		u.add = append(u.add, zone.RR{Name: owner, Type: dns.TypeNSEC3, TTL: negTTL, Rdata: rd})
		u.sign(owner, dns.TypeNSEC3, negTTL, [][]byte{rd}, false)
	}
	seen := map[string]bool{}
	for _, name := range names {
		h := nsec3Hash(name, u.salt)
		p := u.prevHash(h, hs)
		if p == nil || seen[string(p.Name)] {
			continue
		}
		seen[string(p.Name)] = true
		set := p.Get(dns.TypeNSEC3)
		old := set.First()
		ph, _ := b32.DecodeString(string(bytes.ToUpper(p.Name[1 : 1+p.Name[0]])))
		next := u.nextHash(ph, hs)
		if bytes.Equal(nsec3Next(old), next) {
			continue
		}
		rd := withNext(old, next)
		u.replaceSet(p, dns.TypeNSEC3, set.TTL, [][]byte{rd})
		u.del = appendSigsOf(u.del, p, dns.TypeNSEC3)
		u.sign(p.Name, dns.TypeNSEC3, set.TTL, [][]byte{rd}, false)
	}
	return u.signAll()
}

// replaceSet makes the RRset of type t at n hold rds (none: deleted).
func (u *updater) replaceSet(n *zone.Node, t uint16, ttl uint32, rds [][]byte) {
	old := n.Get(t)
	if old != nil && old.TTL == ttl && old.Len() == len(rds) {
		same := true
		for _, rd := range rds {
			if !slices.ContainsFunc(slices.Collect(old.All()), func(x []byte) bool { return bytes.Equal(x, rd) }) {
				same = false
			}
		}
		if same {
			return
		}
	}
	if old != nil {
		for rd := range old.All() {
			u.del = append(u.del, zone.RR{Name: n.Name, Type: t, TTL: old.TTL, Rdata: rd})
		}
	}
	for _, rd := range rds {
		u.add = append(u.add, zone.RR{Name: n.Name, Type: t, TTL: ttl, Rdata: rd})
	}
}

func appendSigsOf(out []zone.RR, n *zone.Node, t uint16) []zone.RR {
	set := n.Get(t)
	if set == nil {
		return out
	}
	for rd := range set.Sigs() {
		out = append(out, zone.RR{Name: n.Name, Type: dns.TypeRRSIG, TTL: set.SigTTL(), Rdata: rd})
	}
	return out
}

// sign signs an RRset of the new version, or keeps the signatures it had
// before the change when it is the same RRset and they are still good.
func (u *updater) sign(owner []byte, t uint16, ttl uint32, rds [][]byte, apex bool) {
	if old := u.z.Lookup(owner); old != nil {
		if set := old.Get(t); set != nil && set.TTL == ttl && set.Len() == len(rds) && u.s.fresh(set, u.ks, u.now, apex) {
			same := true
			for _, rd := range rds {
				if !slices.ContainsFunc(slices.Collect(set.All()), func(x []byte) bool { return bytes.Equal(x, rd) }) {
					same = false
					break
				}
			}
			if same {
				for rd := range set.Sigs() {
					u.add = append(u.add, zone.RR{Name: owner, Type: dns.TypeRRSIG, TTL: set.SigTTL(), Rdata: rd})
				}
				return
			}
		}
	}
	u.jobs = append(u.jobs, job{owner: owner, t: t, ttl: ttl, rds: rds, keys: keysFor(u.ks, t, apex)})
}

func (u *updater) signAll() error {
	if err := u.s.signJobs(u.jobs, u.s.timing(u.now)); err != nil {
		return fmt.Errorf("update %s: %w", u.s.zone, err)
	}
	for i := range u.jobs {
		for _, sig := range u.jobs[i].sigs {
			u.add = append(u.add, zone.RR{Name: u.jobs[i].owner, Type: dns.TypeRRSIG, TTL: u.jobs[i].ttl, Rdata: sig})
		}
	}
	return nil
}

// isNSECMember reports whether n owns an NSEC record in the new version.
func (u *updater) isNSECMember(n *zone.Node) bool { return inNSEC(u.s.classify(n)) }

// nextNSEC returns the next NSEC owner after name in the new version,
// wrapping to the apex.
func (u *updater) nextNSEC(name []byte) []byte {
	var next []byte
	u.nz.Ascend(name, func(n *zone.Node) bool {
		if bytes.Equal(n.Name, name) || !u.isNSECMember(n) {
			return true
		}
		next = n.Name
		return false
	})
	if next == nil {
		return u.nz.Apex.Name
	}
	return next
}

// prevNSEC returns the NSEC owner before name in the new version (the
// last one when name is the apex).
func (u *updater) prevNSEC(name []byte) *zone.Node {
	for n := u.nz.Before(name); n != nil; n = u.nz.Before(n.Name) {
		if u.isNSECMember(n) {
			return n
		}
	}
	var last *zone.Node
	// Wrap: the last member of the zone.
	for n := u.nz.Last(); n != nil; n = u.nz.Before(n.Name) {
		if u.isNSECMember(n) {
			last = n
			break
		}
	}
	if last != nil && bytes.Equal(last.Name, name) {
		return nil
	}
	return last
}

// nextHash returns the hash after h in the new chain: the untouched NSEC3
// records of nz and the touched members' hashes hs (sorted), wrapping.
func (u *updater) nextHash(h []byte, hs [][]byte) []byte {
	var cand []byte // the smallest after h
	var first []byte
	if n := u.nz.NSEC3After(h); n != nil {
		x := ownerHash(n)
		if bytes.Compare(x, h) > 0 {
			cand = x
		}
		first = u.firstHash()
	}
	i, found := slices.BinarySearchFunc(hs, h, bytes.Compare)
	if found {
		i++
	}
	if i < len(hs) && (cand == nil || bytes.Compare(hs[i], cand) < 0) {
		cand = hs[i]
	}
	if cand != nil {
		return cand
	}
	if len(hs) > 0 && (first == nil || bytes.Compare(hs[0], first) < 0) {
		return hs[0]
	}
	return first
}

// firstHash returns the smallest hash of nz's NSEC3 records.
func (u *updater) firstHash() []byte {
	n := u.nz.NSEC3After(nil)
	if n == nil {
		return nil
	}
	return ownerHash(n)
}

func ownerHash(n *zone.Node) []byte {
	h, _ := b32.DecodeString(string(bytes.ToUpper(n.Name[1 : 1+n.Name[0]])))
	return h
}

// prevHash returns the untouched NSEC3 record before h in the new chain,
// or nil when the one before is a touched member's.
func (u *updater) prevHash(h []byte, hs [][]byte) *zone.Node {
	_, cover := u.nz.NSEC3Match(h)
	i, _ := slices.BinarySearchFunc(hs, h, bytes.Compare)
	var touched []byte
	if i > 0 {
		touched = hs[i-1]
	} else if len(hs) > 0 {
		touched = hs[len(hs)-1] // wrapped
	}
	if cover == nil {
		return nil
	}
	ch := ownerHash(cover)
	if bytes.Equal(ch, h) {
		return nil
	}
	if touched == nil {
		return cover
	}
	// Both candidates are before h (or wrapped); the closer one wins.
	dist := func(x []byte) bool { return bytes.Compare(x, h) < 0 } // before h without wrapping
	switch {
	case dist(ch) && !dist(touched):
		return cover
	case !dist(ch) && dist(touched):
		return nil
	case bytes.Compare(ch, touched) > 0:
		return cover
	}
	return nil
}

// fresh reports whether the signatures of set are good to keep at now:
// one by each signing key of its role, none about to be refreshed.
func (s *Signer) fresh(set *zone.RRset, ks keySet, now time.Time, apex bool) bool {
	return s.freshUntil(set, ks, now, now, apex)
}

// freshUntil is fresh, with the signatures that come due up to until
// counted as due.
func (s *Signer) freshUntil(set *zone.RRset, ks keySet, now, until time.Time, apex bool) bool {
	keys := keysFor(ks, set.Type, apex)
	if set.SigLen() != len(keys) {
		return false
	}
	limit := until.Add(s.policy.SignatureRefresh)
	for rd := range set.Sigs() {
		if len(rd) < 18 {
			return false
		}
		exp := sigTime(rd[8:12], now)
		if !exp.After(limit) { // due from NextRefresh on, that moment included
			return false
		}
		tag := uint16(rd[16])<<8 | uint16(rd[17])
		if !slices.ContainsFunc(keys, func(k *Key) bool { return k.Tag() == tag && byte(k.Algorithm) == rd[2] }) {
			return false
		}
	}
	return true
}

// sigTime reads an RRSIG time (RFC 4034 §3.1.5: serial arithmetic) as the
// time closest to now.
func sigTime(b []byte, now time.Time) time.Time {
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	d := int64(int32(v - uint32(now.Unix())))
	return now.Add(time.Duration(d) * time.Second).Truncate(time.Second)
}
