package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/anycastdns/anycastdns/internal/sign"
)

// Automatic rollovers (RFC 6781 §4.1, RFC 7583 §3), planned on the keys'
// times, which the database keeps (sealed with each key):
//
//   - ZSK, pre-publish: the new ZSK is published at once and signs from
//     Ipub later (propagation_delay + dnskey_ttl: every cached DNSKEY
//     RRset then holds it); the old one stops signing then, when every
//     signature is made again with the new one, and leaves the DNSKEY
//     RRset Iret later (propagation_delay + the largest TTL: the last
//     signature it made has left the caches).
//   - KSK or CSK, double-DS: the new key is published and, with cds, its
//     CDS/CDNSKEY beside the old key's, so the parent holds both DS
//     records; it does not sign until its DS is seen at the parent
//     (DSSeen: anycastctl dnssec ds-seen, or the parent's servers), then
//     from the later of Ipub after its publication and the parent's DS
//     TTL after the sighting (taken as at most zone_max_ttl); the old key
//     stops signing then and leaves the DNSKEY RRset, and the CDS (for the
//     parent to drop its DS), Iret later.
//
// At every step each RRset has a signature by a key of the DNSKEY RRset
// every validator may hold, and the DNSKEY RRset one by a key whose DS the
// parent publishes.

// rolloverTimes are the intervals of a policy's rollovers.
func rolloverTimes(p sign.Policy) (ipub, iret, dsWait time.Duration) {
	ipub = p.PropagationDelay + p.DNSKEYTTL
	iret = p.PropagationDelay + max(p.ZoneMaxTTL, p.DNSKEYTTL)
	dsWait = p.PropagationDelay + p.ZoneMaxTTL
	return ipub, iret, dsWait
}

// signingRole is the role of a key for rollovers: KSK and CSK roll alike.
func signingRole(r sign.Role) sign.Role {
	if r == sign.ZSK {
		return sign.ZSK
	}
	return sign.KSK
}

// current returns the key of a role that is in use and not being replaced
// (no retire time), with whether a successor of it is under way.
func current(keys []*sign.Key, role sign.Role, now time.Time) (cur *sign.Key, rolling bool) {
	for _, k := range keys {
		if signingRole(k.Role) != role {
			continue
		}
		if k.WaitDS || k.Activate.After(now) {
			rolling = true
			continue
		}
		if k.Retire.IsZero() && (k.Remove.IsZero() || now.Before(k.Remove)) {
			cur = k
		}
	}
	return cur, rolling
}

// rollAt returns when the rollover of the current key of role starts (the
// zero time: never, or one is under way).
func (ss *signState) rollAt(role sign.Role, now time.Time) time.Time {
	life := ss.policy.ZSKLifetime
	if role != sign.ZSK {
		life = ss.policy.KSKLifetime
	}
	if life <= 0 || ss.algRolling() {
		return time.Time{}
	}
	cur, rolling := current(ss.keys, role, now)
	if cur == nil || rolling {
		return time.Time{}
	}
	start := cur.Activate
	if start.IsZero() {
		start = cur.Created
	}
	at := start.Add(life)
	if role == sign.ZSK {
		ipub, _, _ := rolloverTimes(ss.policy)
		at = at.Add(-ipub) // the new ZSK signs when the old one's lifetime ends
	}
	return at
}

// nextRoll is the first rollover start after the keys' last followed time.
func (ss *signState) nextRoll(now time.Time) time.Time {
	var first time.Time
	for _, role := range []sign.Role{sign.ZSK, sign.KSK} {
		if at := ss.rollAt(role, now); !at.IsZero() && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	return first
}

// roll returns the keys after the rollover steps due at now (keys made,
// times set, keys that left the zone dropped), or nil when nothing is due.
func (ss *signState) roll(zname string, now time.Time) ([]*sign.Key, error) {
	p := ss.policy
	ipub, iret, _ := rolloverTimes(p)
	keys := make([]*sign.Key, 0, len(ss.keys)+1)
	changed := false
	for _, k := range ss.keys {
		if k.Gone(now) {
			changed = true // gone from the zone: forget it
			continue
		}
		c := *k
		keys = append(keys, &c)
	}
	for _, role := range []sign.Role{sign.ZSK, sign.KSK} {
		at := ss.rollAt(role, now)
		if at.IsZero() || now.Before(at) {
			continue
		}
		cur, _ := current(keys, role, now)
		newRole := sign.ZSK
		if role != sign.ZSK {
			newRole = sign.KSK
			if p.CSK {
				newRole = sign.CSK
			}
		}
		nk, err := sign.GenerateKey(zname, newRole, p, now)
		if err != nil {
			return nil, err
		}
		nk.Publish = now
		if role == sign.ZSK {
			nk.Activate = now.Add(ipub)
			cur.Retire, cur.Remove = nk.Activate, nk.Activate.Add(iret)
		} else {
			nk.WaitDS = true
		}
		keys = append(keys, nk)
		changed = true
	}
	if !changed {
		return nil, nil
	}
	return keys, nil
}

// dsSeen returns the keys after the DS of the waiting key with tag was
// seen at the parent at now: it signs from the later of Ipub after its
// publication and the parent's DS TTL after now, and the key it replaces
// stops then and leaves Iret later.
func (ss *signState) dsSeen(tag uint16, now time.Time) ([]*sign.Key, *sign.Key, error) {
	ipub, iret, dsWait := rolloverTimes(ss.policy)
	keys := make([]*sign.Key, len(ss.keys))
	var nk *sign.Key
	for i, k := range ss.keys {
		c := *k
		keys[i] = &c
		if c.WaitDS && c.Tag() == tag {
			nk = &c
		}
	}
	if nk == nil {
		var waiting []string
		for _, k := range ss.keys {
			if k.WaitDS {
				waiting = append(waiting, fmt.Sprint(k.Tag()))
			}
		}
		if len(waiting) == 0 {
			return nil, nil, invalidf("no key waits for its DS at the parent (no KSK or CSK rollover is under way)")
		}
		return nil, nil, invalidf("key %d does not wait for its DS; the keys that do: %v", tag, waiting)
	}
	if !nk.Activate.IsZero() {
		// An algorithm rollover's key: it signs already; the keys of the
		// old algorithm go.
		if now.Before(nk.Submit) {
			return nil, nil, invalidf("key %d of the algorithm rollover: its DS is not asked of the parent before %s, when its DNSKEY is in every cache; a DS at the parent before then is too early",
				tag, nk.Submit.UTC().Format(time.RFC3339))
		}
		nk.WaitDS, nk.DSSeen = false, now
		retireOld(keys, nk.Algorithm, now.Add(dsWait), ss.policy)
		return keys, nk, nil
	}
	act := now.Add(dsWait)
	if p := nk.Publish.Add(ipub); p.After(act) {
		act = p
	}
	nk.WaitDS, nk.DSSeen, nk.Activate = false, now, act
	for _, k := range keys {
		if k != nk && signingRole(k.Role) == sign.KSK && k.Retire.IsZero() {
			k.Retire, k.Remove = act, act.Add(iret)
		}
	}
	return keys, nk, nil
}

// DSSeen records that the parent publishes the DS of the key with tag of a
// zone's KSK or CSK rollover (anycastctl dnssec ds-seen), which lets the
// rollover go on: the new key signs from when every validator can have its
// DS, the old one goes.
func (s *Store) DSSeen(ctx context.Context, zoneName string, tag uint16) (SigningStatus, error) {
	zname, err := canonicalZone(zoneName)
	if err != nil {
		return SigningStatus{}, err
	}
	if err := s.acquireZone(ctx, zname); err != nil {
		return SigningStatus{}, err
	}
	defer s.release()
	st, err := s.state(zname)
	if err != nil {
		return SigningStatus{}, err
	}
	what := fmt.Sprintf("zone %s: DS of key %d seen", zname, tag)
	if st.sig == nil {
		return SigningStatus{}, invalidf("%s: the zone is not signed by the control plane", what)
	}
	now := s.opt.now()
	keys, nk, err := st.sig.dsSeen(tag, now)
	if err != nil {
		return SigningStatus{}, fmt.Errorf("%s: %w", what, err)
	}
	ns, err := s.replaceKeys(st, keys)
	if err != nil {
		return SigningStatus{}, fmt.Errorf("%s: %w", what, err)
	}
	s.log.Info("DS seen at the parent", "zone", zname, "tag", tag, "activate", nk.Activate.UTC().Format(time.RFC3339))
	return s.status(ns, now), nil
}

// replaceKeys writes a zone's keys, its content unchanged: the next
// maintenance follows their new times.
func (s *Store) replaceKeys(st *zoneState, keys []*sign.Key) (*zoneState, error) {
	ss, err := newSignState(st.sig.name, st.sig.policy, st.info.Name, keys)
	if err != nil {
		return nil, err
	}
	ss.nextRefresh, ss.keysAt = st.sig.nextRefresh, st.sig.keysAt
	sw, err := s.sealKeys(ss)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	tx, err := s.beginWrite(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	if err := s.committing(ctx, tx, st.info.Name, st.id, false); err != nil {
		return nil, err
	}
	if err := sw.write(ctx, tx, st.id); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		s.resync(st.info.Name)
		return nil, err
	}
	ns := *st
	ns.sig = ss
	s.mu.Lock()
	s.zones[st.info.Name] = &ns
	s.mu.Unlock()
	return &ns, nil
}

// waiting returns the tags of the keys that wait for their DS at now.
func (ss *signState) waiting(now time.Time) []uint16 {
	var out []uint16
	for _, k := range ss.keys {
		if k.WaitDS && !now.Before(k.Submit) {
			out = append(out, k.Tag())
		}
	}
	slices.Sort(out)
	return out
}

// WaitingKey is a KSK or CSK of a rollover waiting for its DS at the
// parent.
type WaitingKey struct {
	Zone string
	Tag  uint16
	DS   []byte // the DS rdata (SHA-256) the parent must publish
}

// WaitingForDS returns the keys of every signed zone that wait for their
// DS at the parent, for a check of the parent's servers (then DSSeen).
func (s *Store) WaitingForDS(ctx context.Context) ([]WaitingKey, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	now := s.opt.now()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	var out []WaitingKey
	for name, st := range s.zones {
		if st.sig == nil {
			continue
		}
		for _, k := range st.sig.keys {
			if k.WaitDS && !now.Before(k.Submit) {
				out = append(out, WaitingKey{Zone: name, Tag: k.Tag(), DS: k.DS(st.z.OriginWire())})
			}
		}
	}
	slices.SortFunc(out, func(a, b WaitingKey) int {
		if a.Zone != b.Zone {
			return strings.Compare(a.Zone, b.Zone)
		}
		return int(a.Tag) - int(b.Tag)
	})
	return out, nil
}

// Algorithm rollover (RFC 6781 §4.1.4, the conservative approach; RFC 7583
// §3.4.1), started by a policy change of the algorithm (EnableSigning)
// and run by the maintenance like the others, its steps timed by the
// keys (Key.active says how they sign outside their publication):
//
//  1. new signatures: keys of the new algorithm (a CSK, or a KSK and a
//     ZSK, as the new policy says) sign every RRset beside the old ones,
//     their DNSKEYs not yet published; a validator ignores signatures of
//     a key it does not know.
//  2. new DNSKEY, Isig later (propagation_delay + the largest TTL of the
//     old and new policies): every cached RRset has both algorithms'
//     signatures, so the new keys are published.
//  3. new DS, Ipub later (propagation_delay + dnskey_ttl): every cached
//     DNSKEY RRset holds both algorithms; the CDS and CDNSKEY RRsets
//     change to the new KSK's alone (the parent replaces the DS), and
//     the new KSK waits for its DS at the parent (ds-seen, or the
//     parent's servers).
//  4. old DNSKEY removed, the parent's DS TTL (taken as zone_max_ttl) and
//     propagation_delay after the DS was seen: no cache holds the old DS.
//  5. old signatures removed, propagation_delay + dnskey_ttl later: no
//     cache holds a DNSKEY RRset with the old algorithm (RFC 4035 §2.2:
//     every algorithm of the DNSKEY RRset signs every RRset).

// algRolling reports whether an algorithm rollover is under way: a key of
// another algorithm than the policy's is still in the zone.
func (ss *signState) algRolling() bool {
	for _, k := range ss.keys {
		if k.Algorithm != ss.policy.Algorithm {
			return true
		}
	}
	return false
}

// rollingKey returns a key that is part of a rollover under way at now
// (nil: none): one that waits, is not yet published or signing, or is
// planned to go.
func rollingKey(keys []*sign.Key, now time.Time) *sign.Key {
	for _, k := range keys {
		if k.Gone(now) {
			continue
		}
		if k.WaitDS || k.Publish.After(now) || k.Activate.After(now) || !k.Retire.IsZero() || !k.Remove.IsZero() {
			return k
		}
	}
	return nil
}

// startAlgRoll returns the keys of a zone signed with old after the start
// of its algorithm rollover to p at now: the old keys with their CDS
// withdrawn when the new KSK's is submitted, and the new keys.
func startAlgRoll(zname string, old, p sign.Policy, keys []*sign.Key, now time.Time) ([]*sign.Key, error) {
	if k := rollingKey(keys, now); k != nil {
		return nil, signedf("a rollover is under way (key %d, %s %s, %s): change the algorithm once it has ended (anycastctl dnssec status)",
			k.Tag(), k.Algorithm, k.Role, keyState(k, now))
	}
	prop := max(old.PropagationDelay, p.PropagationDelay)
	isig := prop + max(old.ZoneMaxTTL, p.ZoneMaxTTL, old.DNSKEYTTL, p.DNSKEYTTL)
	ipub := prop + max(old.DNSKEYTTL, p.DNSKEYTTL)
	nks, err := newKeys(zname, p, now)
	if err != nil {
		return nil, err
	}
	publish := now.Add(isig)
	submit := publish.Add(ipub)
	out := make([]*sign.Key, 0, len(keys)+len(nks))
	for _, k := range keys {
		c := *k
		if c.Role != sign.ZSK {
			c.Withdraw = submit
		}
		out = append(out, &c)
	}
	for _, k := range nks {
		k.Activate, k.Publish = now, publish
		if k.Role != sign.ZSK {
			k.WaitDS, k.Submit = true, submit
		}
		out = append(out, k)
	}
	return out, nil
}

// retireOld plans the end of the keys of other algorithms than alg: out of
// the DNSKEY RRset at remove, no longer signing propagation_delay +
// dnskey_ttl later.
func retireOld(keys []*sign.Key, alg sign.Algorithm, remove time.Time, p sign.Policy) {
	for _, k := range keys {
		if k.Algorithm != alg {
			k.Remove, k.Retire = remove, remove.Add(p.PropagationDelay+p.DNSKEYTTL)
		}
	}
}

// algStage describes the step of an algorithm rollover under way at now
// ("" when none).
func (ss *signState) algStage(now time.Time) string {
	if !ss.algRolling() {
		return ""
	}
	var olds []string
	var nk []*sign.Key
	var oldKeys []*sign.Key
	for _, k := range ss.keys {
		if k.Algorithm == ss.policy.Algorithm {
			nk = append(nk, k)
		} else {
			oldKeys = append(oldKeys, k)
			if !slices.Contains(olds, k.Algorithm.String()) {
				olds = append(olds, k.Algorithm.String())
			}
		}
	}
	head := fmt.Sprintf("algorithm rollover %s to %s: ", strings.Join(olds, ", "), ss.policy.Algorithm)
	at := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	for _, k := range nk {
		if !k.Published(now) && k.Publish.After(now) {
			return head + "1/5 new signatures (both algorithms sign; the new DNSKEYs are published at " + at(k.Publish) + ")"
		}
	}
	for _, k := range nk {
		if k.WaitDS {
			if now.Before(k.Submit) {
				return head + "2/5 new DNSKEYs published (the new DS is asked of the parent, CDS, at " + at(k.Submit) + ")"
			}
			return fmt.Sprintf("%s3/5 new DS: waiting for the DS of key %d at the parent in place of the old one (anycastctl dnssec ds-seen)", head, k.Tag())
		}
	}
	for _, k := range oldKeys {
		if k.Published(now) {
			return head + "4/5 new DS seen (the old DNSKEYs are removed at " + at(k.Remove) + ")"
		}
	}
	for _, k := range oldKeys {
		if k.Signs(now) {
			return head + "5/5 old DNSKEYs removed (their signatures are removed at " + at(k.Retire) + ")"
		}
	}
	return head + "done (the old keys are forgotten at the next maintenance)"
}
