package sign

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // NSEC3 hashes with SHA-1 (RFC 5155)
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/wire"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// ErrPolicy marks a zone that the signer cannot sign as it stands with
// its policy: a TTL above zone_max_ttl, another chain than the policy's,
// no key to sign with.
var ErrPolicy = errors.New("does not fit the signing policy")

// Signer signs zones with a policy and the keys of one zone.
type Signer struct {
	policy Policy
	origin []byte
	zone   string
	keys   []*Key
}

// New makes a signer for the zone of the keys. The policy must be valid;
// keys must all belong to the zone. Which keys are in the DNSKEY RRset
// and which sign is read from their timing at each signing.
func New(p Policy, zoneName string, keys []*Key) (*Signer, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("signer for %s: %w", zoneName, err)
	}
	z, err := canonicalZone(zoneName)
	if err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	origin, err := zone.NameWire(z)
	if err != nil {
		return nil, fmt.Errorf("signer for %s: %w", z, err)
	}
	for _, k := range keys {
		if k == nil || k.Private == nil {
			return nil, fmt.Errorf("signer for %s: incomplete key", z)
		}
		if k.Zone != z {
			return nil, fmt.Errorf("signer for %s: key %s (tag %d) belongs to %s", z, k.ID, k.Tag(), k.Zone)
		}
	}
	return &Signer{policy: p, origin: origin, zone: z, keys: slices.Clone(keys)}, nil
}

// keySet is the keys in use at one time.
type keySet struct {
	dnskey [][]byte // the DNSKEY RRset
	ksk    []*Key   // sign DNSKEY, CDS, CDNSKEY
	zsk    []*Key   // sign the rest
	cds    []*Key   // published as CDS and CDNSKEY
}

// keysAt returns the keys in use at t: every algorithm of the DNSKEY RRset
// must sign every RRset (RFC 6840 §5.11), so one active key per algorithm
// and role is needed. The keys of an algorithm rollover also sign while
// they are not in the DNSKEY RRset (see Key.active).
func (s *Signer) keysAt(t time.Time) (keySet, error) {
	var ks keySet
	algs := map[Algorithm][2]bool{} // the active keys' roles, by algorithm
	pubAlgs := map[Algorithm]bool{} // the algorithms of the DNSKEY RRset
	for _, k := range s.keys {
		if k.published(t) {
			ks.dnskey = append(ks.dnskey, k.DNSKEY())
			pubAlgs[k.Algorithm] = true
			if s.policy.CDS && k.announced(t) {
				ks.cds = append(ks.cds, k)
			}
		}
		if k.active(t) {
			have := algs[k.Algorithm]
			if k.Role != ZSK {
				ks.ksk = append(ks.ksk, k)
				have[0] = true
			}
			if k.Role != KSK {
				ks.zsk = append(ks.zsk, k)
				have[1] = true
			}
			algs[k.Algorithm] = have
		}
	}
	if len(ks.dnskey) == 0 {
		return ks, fmt.Errorf("sign %s at %s: %w: no key is published", s.zone, t.UTC().Format(time.RFC3339), ErrPolicy)
	}
	for alg := range pubAlgs {
		if have := algs[alg]; !have[0] || !have[1] {
			role := "KSK or CSK"
			if have[0] {
				role = "ZSK or CSK"
			}
			return ks, fmt.Errorf("sign %s at %s: %w: no active %s of algorithm %s, which the DNSKEY RRset has", s.zone, t.UTC().Format(time.RFC3339), ErrPolicy, role, alg)
		}
	}
	return ks, nil
}

// generated reports whether records of type t at a name are made by the
// signer (and dropped from its input): signatures and chains anywhere, the
// key RRsets and NSEC3PARAM at the apex.
func generated(t uint16, apex bool) bool {
	switch t {
	case dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNSEC3:
		return true
	case dns.TypeDNSKEY, dns.TypeCDS, dns.TypeCDNSKEY, dns.TypeNSEC3PARAM:
		return apex
	}
	return false
}

// kind is what a node is to the signer.
type kind uint8

const (
	kindNone  kind = iota // no data but the signer's (an NSEC3 owner)
	kindAuth              // authoritative data
	kindENT               // an empty non-terminal in authoritative space
	kindDeleg             // a delegation point
	kindGlue              // below a delegation
)

func (s *Signer) classify(n *zone.Node) kind {
	if n == nil {
		return kindNone
	}
	apex := len(n.Name) == len(s.origin)
	switch {
	case n.Cut == n:
		return kindDeleg
	case n.Cut != nil:
		return kindGlue
	}
	if apex {
		return kindAuth
	}
	if len(n.Sets) == 0 {
		return kindENT
	}
	for i := range n.Sets {
		if !generated(n.Sets[i].Type, false) {
			return kindAuth
		}
	}
	return kindNone
}

// inNSEC reports whether a node of kind k owns an NSEC record.
func inNSEC(k kind) bool { return k == kindAuth || k == kindDeleg }

// inNSEC3 reports whether a node owns an NSEC3 record: authoritative names,
// empty non-terminals, delegations (insecure ones not with opt-out).
func (s *Signer) inNSEC3(n *zone.Node, k kind) bool {
	switch k {
	case kindAuth, kindENT:
		return true
	case kindDeleg:
		return !s.policy.NSEC3OptOut || n.Get(dns.TypeDS) != nil
	}
	return false
}

// apexSets returns the RRsets the signer makes at the apex, by type.
func (s *Signer) apexSets(ks keySet, param []byte) map[uint16][][]byte {
	m := map[uint16][][]byte{dns.TypeDNSKEY: ks.dnskey}
	for _, k := range ks.cds {
		m[dns.TypeCDS] = append(m[dns.TypeCDS], k.DS(s.origin))
		m[dns.TypeCDNSKEY] = append(m[dns.TypeCDNSKEY], k.DNSKEY())
	}
	if param != nil {
		m[dns.TypeNSEC3PARAM] = [][]byte{param}
	}
	return m
}

// types returns the types of a node's RRsets after signing, in order: its
// own data, the apex's generated sets.
func (s *Signer) types(n *zone.Node, k kind, apexSets map[uint16][][]byte) []uint16 {
	var ts []uint16
	apex := len(n.Name) == len(s.origin)
	for i := range n.Sets {
		t := n.Sets[i].Type
		if generated(t, apex) {
			continue
		}
		if k == kindDeleg && t != dns.TypeNS && t != dns.TypeDS {
			continue // glue at the cut is not the zone's data
		}
		ts = append(ts, t)
	}
	if apex {
		for t := range apexSets {
			ts = append(ts, t)
		}
	}
	slices.Sort(ts)
	return ts
}

// signedTypes returns which of a node's types get signatures.
func signedTypes(k kind, ts []uint16) []uint16 {
	switch k {
	case kindAuth:
		return ts
	case kindDeleg:
		if slices.Contains(ts, dns.TypeDS) {
			return []uint16{dns.TypeDS}
		}
	}
	return nil
}

// bitmap encodes a type bitmap (RFC 4034 §4.1.2).
func bitmap(ts []uint16) []byte {
	slices.Sort(ts)
	ts = slices.Compact(ts)
	var out []byte
	for i := 0; i < len(ts); {
		win := ts[i] >> 8
		var bits [32]byte
		n := 0
		for ; i < len(ts) && ts[i]>>8 == win; i++ {
			lo := ts[i] & 0xFF
			bits[lo/8] |= 0x80 >> (lo % 8)
			n = int(lo/8) + 1
		}
		out = append(out, byte(win), byte(n))
		out = append(out, bits[:n]...)
	}
	return out
}

// nsecTypes is the bitmap of a node's NSEC record: its types, the NSEC
// and its signature (at an insecure delegation too: the NSEC itself is
// signed there).
func nsecTypes(ts []uint16) []uint16 {
	return append(slices.Clone(ts), dns.TypeNSEC, dns.TypeRRSIG)
}

// nsec3Types is the bitmap of a node's NSEC3 record.
func nsec3Types(k kind, ts []uint16) []uint16 {
	if len(signedTypes(k, ts)) > 0 {
		return append(slices.Clone(ts), dns.TypeRRSIG)
	}
	return slices.Clone(ts)
}

// nsec3Param is the NSEC3PARAM rdata.
func nsec3Param(salt []byte) []byte {
	rd := []byte{1, 0, 0, 0, byte(len(salt))}
	return append(rd, salt...)
}

var b32 = base32.HexEncoding.WithPadding(base32.NoPadding)

// nsec3Hash hashes a wire name (RFC 5155 §5) with 0 extra iterations.
func nsec3Hash(name, salt []byte) []byte {
	h := sha1.New() //nolint:gosec // RFC 5155
	h.Write(name)
	h.Write(salt)
	return h.Sum(nil)
}

// nsec3Owner is the owner of the NSEC3 record of a hash.
func (s *Signer) nsec3Owner(h []byte) []byte {
	label := []byte(b32.EncodeToString(h))
	wire.LowerName(label, label)
	out := append([]byte{byte(len(label))}, label...)
	return append(out, s.origin...)
}

// nsec3Rdata is an NSEC3 record's rdata.
func (s *Signer) nsec3Rdata(salt, next, bm []byte) []byte {
	flags := byte(0)
	if s.policy.NSEC3OptOut {
		flags = 1
	}
	rd := []byte{1, flags, 0, 0, byte(len(salt))}
	rd = append(rd, salt...)
	rd = append(rd, byte(len(next)))
	rd = append(rd, next...)
	return append(rd, bm...)
}

// nsec3Next returns the next hashed owner of NSEC3 rdata.
func nsec3Next(rd []byte) []byte {
	if len(rd) < 5 {
		return nil
	}
	off := 5 + int(rd[4])
	if off >= len(rd) || off+1+int(rd[off]) > len(rd) {
		return nil
	}
	return rd[off+1 : off+1+int(rd[off])]
}

// withNext returns NSEC3 rdata with another next hashed owner.
func withNext(rd, next []byte) []byte {
	off := 5 + int(rd[4])
	old := int(rd[off])
	out := append(slices.Clone(rd[:off]), byte(len(next)))
	out = append(out, next...)
	return append(out, rd[off+1+old:]...)
}

// job is one RRset to sign.
type job struct {
	owner []byte
	t     uint16
	ttl   uint32
	rds   [][]byte
	keys  []*Key
	sigs  [][]byte // the RRSIG rdata made
}

// timing is the inception and expiration of the signatures made at now.
type timing struct {
	inception  uint32
	expiration time.Time
	jitter     time.Duration
}

func (s *Signer) timing(now time.Time) timing {
	return timing{
		inception:  uint32(now.Add(-s.policy.InceptionOffset).Unix()),
		expiration: now.Add(s.policy.SignatureValidity),
		jitter:     s.policy.SignatureJitter,
	}
}

// expiration is when the signature of an RRset made at tm expires: the
// validity less a share of the jitter drawn from the owner and type, so
// that the signatures of a zone expire, and are refreshed, spread over
// the jitter instead of all at once, and a re-signed RRset keeps its
// place in the spread.
func (tm timing) expirationOf(owner []byte, t uint16) uint32 {
	exp := tm.expiration
	if tm.jitter > 0 {
		h := fnv.New64a()
		h.Write(owner)
		h.Write([]byte{byte(t >> 8), byte(t)})
		exp = exp.Add(-time.Duration(h.Sum64() % uint64(tm.jitter/time.Second+1) * uint64(time.Second)))
	}
	return uint32(exp.Unix())
}

// signJobs signs every job, on every CPU.
func (s *Signer) signJobs(jobs []job, tm timing) error {
	workers := min(runtime.GOMAXPROCS(0), max(1, len(jobs)/64))
	var wg sync.WaitGroup
	errs := make([]error, workers)
	chunk := (len(jobs) + workers - 1) / max(workers, 1)
	for w := range workers {
		lo, hi := w*chunk, min((w+1)*chunk, len(jobs))
		if lo >= hi {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for i := lo; i < hi; i++ {
				var err error
				if buf, err = s.signJob(&jobs[i], tm, buf); err != nil {
					errs[w] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// signJob makes the RRSIGs of one RRset (RFC 4034 §3.1.8.1), buf scratch.
func (s *Signer) signJob(j *job, tm timing, buf []byte) ([]byte, error) {
	labels := wire.Labels(j.owner)
	if len(j.owner) > 1 && j.owner[0] == 1 && j.owner[1] == '*' {
		labels--
	}
	rds := j.rds
	if len(rds) > 1 {
		rds = make([][]byte, len(j.rds))
		for i, rd := range j.rds {
			rds[i] = zone.CanonicalRdata(j.t, rd)
		}
		slices.SortFunc(rds, bytes.Compare)
		rds = slices.CompactFunc(rds, func(a, b []byte) bool { return bytes.Equal(a, b) })
	} else if len(rds) == 1 {
		rds = [][]byte{zone.CanonicalRdata(j.t, rds[0])}
	}
	exp := tm.expirationOf(j.owner, j.t)
	j.sigs = j.sigs[:0]
	for _, k := range j.keys {
		pre := make([]byte, 18, 18+len(s.origin)+64)
		binary.BigEndian.PutUint16(pre, j.t)
		pre[2], pre[3] = byte(k.Algorithm), byte(labels)
		binary.BigEndian.PutUint32(pre[4:], j.ttl)
		binary.BigEndian.PutUint32(pre[8:], exp)
		binary.BigEndian.PutUint32(pre[12:], tm.inception)
		binary.BigEndian.PutUint16(pre[16:], k.Tag())
		pre = append(pre, s.origin...)
		buf = append(buf[:0], pre...)
		for _, rd := range rds {
			buf = append(buf, j.owner...)
			buf = binary.BigEndian.AppendUint16(buf, j.t)
			buf = binary.BigEndian.AppendUint16(buf, dns.ClassINET)
			buf = binary.BigEndian.AppendUint32(buf, j.ttl)
			buf = binary.BigEndian.AppendUint16(buf, uint16(len(rd)))
			buf = append(buf, rd...)
		}
		sig, err := k.sign(buf)
		if err != nil {
			return buf, fmt.Errorf("sign %s %s with key %d: %w", zone.NameString(j.owner), dns.TypeToString[j.t], k.Tag(), err)
		}
		j.sigs = append(j.sigs, append(pre, sig...))
	}
	return buf, nil
}

// checkTTL refuses an RRset whose TTL is over the policy's zone_max_ttl.
func (s *Signer) checkTTL(owner []byte, t uint16, ttl uint32) error {
	if time.Duration(ttl)*time.Second > s.policy.ZoneMaxTTL {
		return fmt.Errorf("sign %s: %s %s: %w: TTL %d is over zone_max_ttl %v", s.zone, zone.NameString(owner), dns.TypeToString[t], ErrPolicy, ttl, s.policy.ZoneMaxTTL)
	}
	return nil
}

// keysFor returns the keys that sign type t.
func keysFor(ks keySet, t uint16, apex bool) []*Key {
	if apex && (t == dns.TypeDNSKEY || t == dns.TypeCDS || t == dns.TypeCDNSKEY) {
		return ks.ksk
	}
	return ks.zsk
}

// salt returns the NSEC3 salt to use for z: the zone's own when it has the
// policy's length (so that re-signing keeps the chain's hashes), else a
// new random one.
func (s *Signer) salt(z *zone.Zone) []byte {
	if z.NSEC3 != nil && len(z.NSEC3.Salt) == s.policy.NSEC3SaltLength {
		return slices.Clone(z.NSEC3.Salt)
	}
	salt := make([]byte, s.policy.NSEC3SaltLength)
	_, _ = rand.Read(salt)
	return salt
}

// Sign signs the whole zone at now and returns the signed version, built
// anew: the DNSSEC records of z (signatures, NSEC/NSEC3 chain, the apex's
// DNSKEY, CDS, CDNSKEY and NSEC3PARAM) are dropped and made again from the
// policy and the keys; every other record is kept.
func (s *Signer) Sign(z *zone.Zone, now time.Time) (*zone.Zone, error) {
	recs, err := s.Records(z, now)
	if err != nil {
		return nil, err
	}
	b, err := zone.NewBuilder(z.Origin, z.Len(), "signer")
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		b.Add(r)
	}
	nz, err := b.Zone()
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", s.zone, err)
	}
	nz.Prepare()
	return nz, nil
}

// Records returns the records of the signed zone: Sign's records, the
// zone's first in canonical order, then the NSEC3 records, then the
// signatures.
func (s *Signer) Records(z *zone.Zone, now time.Time) ([]zone.RR, error) {
	if !bytes.Equal(z.OriginWire(), s.origin) {
		return nil, fmt.Errorf("sign %s: the signer is for %s", z.Origin, s.zone)
	}
	ks, err := s.keysAt(now)
	if err != nil {
		return nil, err
	}
	var salt, param []byte
	if s.policy.NSEC3 {
		salt = s.salt(z)
		param = nsec3Param(salt)
	}
	apexSets := s.apexSets(ks, param)
	negTTL := z.NegTTL
	dnskeyTTL := uint32(s.policy.DNSKEYTTL / time.Second)

	var recs []zone.RR
	var jobs []job
	type member struct {
		node *zone.Node
		ts   []uint16
		k    kind
	}
	var chain []member
	var firstErr error
	z.Nodes(func(n *zone.Node) {
		if firstErr != nil {
			return
		}
		k := s.classify(n)
		apex := n == z.Apex
		for i := range n.Sets {
			set := &n.Sets[i]
			if generated(set.Type, apex) {
				continue
			}
			if k != kindGlue {
				if err := s.checkTTL(n.Name, set.Type, set.TTL); err != nil {
					firstErr = err
					return
				}
			}
			for rd := range set.All() {
				recs = append(recs, zone.RR{Name: n.Name, Type: set.Type, TTL: set.TTL, Rdata: rd})
			}
		}
		if k == kindNone || k == kindGlue {
			return
		}
		ts := s.types(n, k, apexSets)
		if apex {
			for t, rds := range apexSets {
				ttl := dnskeyTTL
				if t == dns.TypeNSEC3PARAM {
					ttl = 0
				}
				for _, rd := range rds {
					recs = append(recs, zone.RR{Name: n.Name, Type: t, TTL: ttl, Rdata: rd})
				}
			}
		}
		for _, t := range signedTypes(k, ts) {
			var ttl uint32
			var rds [][]byte
			if set := n.Get(t); set != nil && !generated(t, apex) {
				ttl = set.TTL
				for rd := range set.All() {
					rds = append(rds, rd)
				}
			} else {
				ttl = dnskeyTTL
				if t == dns.TypeNSEC3PARAM {
					ttl = 0
				}
				rds = apexSets[t]
			}
			jobs = append(jobs, job{owner: n.Name, t: t, ttl: ttl, rds: rds, keys: keysFor(ks, t, apex)})
		}
		chain = append(chain, member{n, ts, k})
	})
	if firstErr != nil {
		return nil, firstErr
	}
	if !s.policy.NSEC3 {
		for i, m := range chain {
			if !inNSEC(m.k) {
				continue
			}
			next := z.Apex.Name
			for _, x := range chain[i+1:] {
				if inNSEC(x.k) {
					next = x.node.Name
					break
				}
			}
			rd := append(slices.Clone(next), bitmap(nsecTypes(m.ts))...)
			recs = append(recs, zone.RR{Name: m.node.Name, Type: dns.TypeNSEC, TTL: negTTL, Rdata: rd})
			jobs = append(jobs, job{owner: m.node.Name, t: dns.TypeNSEC, ttl: negTTL, rds: [][]byte{rd}, keys: ks.zsk})
		}
	} else {
		type hashed struct {
			h  []byte
			bm []byte
		}
		var hs []hashed
		for _, m := range chain {
			if !s.inNSEC3(m.node, m.k) {
				continue
			}
			hs = append(hs, hashed{nsec3Hash(m.node.Name, salt), bitmap(nsec3Types(m.k, m.ts))})
		}
		slices.SortFunc(hs, func(a, b hashed) int { return bytes.Compare(a.h, b.h) })
		for i, x := range hs {
			next := hs[(i+1)%len(hs)].h
			owner := s.nsec3Owner(x.h)
			rd := s.nsec3Rdata(salt, next, x.bm)
			recs = append(recs, zone.RR{Name: owner, Type: dns.TypeNSEC3, TTL: negTTL, Rdata: rd})
			jobs = append(jobs, job{owner: owner, t: dns.TypeNSEC3, ttl: negTTL, rds: [][]byte{rd}, keys: ks.zsk})
		}
	}
	if err := s.signJobs(jobs, s.timing(now)); err != nil {
		return nil, fmt.Errorf("sign %s: %w", s.zone, err)
	}
	for i := range jobs {
		for _, sig := range jobs[i].sigs {
			recs = append(recs, zone.RR{Name: jobs[i].owner, Type: dns.TypeRRSIG, TTL: jobs[i].ttl, Rdata: sig})
		}
	}
	return recs, nil
}

// Generated reports whether records of type t are made by the signer and
// so cannot be written as zone data in a zone it signs: RRSIG, NSEC and
// NSEC3 anywhere; DNSKEY, CDS, CDNSKEY and NSEC3PARAM at the apex.
func Generated(t uint16, apex bool) bool { return generated(t, apex) }
