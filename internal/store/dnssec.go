package store

import (
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/sign"
	"github.com/anycastdns/anycastdns/internal/steer"
	"github.com/anycastdns/anycastdns/internal/wire"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// Signing (issue #16). A zone with a signing policy is signed by the store
// itself, with package sign: enabling signing signs the whole zone; every
// later write re-signs only the RRsets it touches and the NSEC or NSEC3
// records around the names that appear or go (sign.Signer.Update), in the
// transaction that bumps the serial, so the change log holds the signed
// difference and the nodes receive it by IXFR or the stream like any
// other. The policy and the keys live in the database (tables dnssec and
// dnssec_keys), each key sealed with the operator's key file
// (WithSealer); the nodes need no key. MaintainSigning refreshes the
// signatures before they expire and follows the keys' timing.

// ErrNoKeyFile means that signing needs the key file that seals the keys
// and the store was opened without one (WithSealer).
var ErrNoKeyFile = errors.New("no key file to seal the signing keys")

// WithSealer seals the signing keys kept in the database with the
// operator's key file. Without it, signing cannot be enabled and a
// database that holds keys cannot be opened.
func WithSealer(s *sign.Sealer) Option { return func(o *options) { o.sealer = s } }

// signState is the signing of one zone, immutable: a change makes a new one.
type signState struct {
	name        string // of the policy
	policy      sign.Policy
	keys        []*sign.Key
	signer      *sign.Signer
	nextRefresh time.Time // when the first signature comes due (sign.Signer.NextRefresh)
	// keysAt is when the whole zone last followed the keys' timing
	// (enabled or maintained): a key event after it is due work.
	keysAt time.Time
}

func newSignState(name string, p sign.Policy, zname string, keys []*sign.Key) (*signState, error) {
	sg, err := sign.New(p, zname, keys)
	if err != nil {
		return nil, err
	}
	return &signState{name: name, policy: p, keys: keys, signer: sg}, nil
}

// withRefresh returns a copy for z signed whole at now: its next refresh,
// the keys followed up to now.
func (ss *signState) withRefresh(z *zone.Zone, now time.Time) *signState {
	c := *ss
	c.nextRefresh = ss.signer.NextRefresh(z, now)
	c.keysAt = now
	return &c
}

// nextKeyEvent is the first time after t at which a key is published,
// activated, retired or removed; zero when none is planned.
func (ss *signState) nextKeyEvent(t time.Time) time.Time {
	var first time.Time
	for _, k := range ss.keys {
		for _, at := range []time.Time{k.Publish, k.Activate, k.Retire, k.Remove, k.Submit, k.Withdraw} {
			if at.After(t) && (first.IsZero() || at.Before(first)) {
				first = at
			}
		}
	}
	return first
}

// signWrite is the signing of a zone after a commit: with sealed keys, the
// policy row and the keys are written (state nil: removed); without, only
// the state in memory changes.
type signWrite struct {
	state  *signState
	sealed map[string][]byte
}

// sealKeys seals every key of ss.
func (s *Store) sealKeys(ss *signState) (*signWrite, error) {
	w := &signWrite{state: ss, sealed: map[string][]byte{}}
	if ss == nil {
		return w, nil
	}
	for _, k := range ss.keys {
		b, err := s.opt.sealer.SealKey(k)
		if err != nil {
			return nil, fmt.Errorf("seal key %s: %w", k.ID, err)
		}
		w.sealed[k.ID] = b
	}
	return w, nil
}

// write stores w in the transaction of a commit.
func (w *signWrite) write(ctx context.Context, tx *sql.Tx, id int64) error {
	if w.sealed == nil {
		return nil
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM dnssec_keys WHERE zone_id = ?", id); err != nil {
		return err
	}
	if w.state == nil {
		_, err := tx.ExecContext(ctx, "DELETE FROM dnssec WHERE zone_id = ?", id)
		return err
	}
	pol, err := json.Marshal(w.state.policy)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "INSERT OR REPLACE INTO dnssec (zone_id, policy_name, policy) VALUES (?, ?, ?)", id, w.state.name, pol); err != nil {
		return err
	}
	for _, k := range w.state.keys {
		if _, err := tx.ExecContext(ctx, "INSERT INTO dnssec_keys (zone_id, id, sealed) VALUES (?, ?, ?)", id, k.ID, w.sealed[k.ID]); err != nil {
			return err
		}
	}
	return nil
}

// loadSigning reads the signing of the zones of states (of the zone with
// id only, when not 0).
func (s *Store) loadSigning(ctx context.Context, tx *sql.Tx, states []*zoneState, only int64) error {
	byID := map[int64]*zoneState{}
	for _, st := range states {
		byID[st.id] = st
	}
	q, args := "SELECT zone_id, policy_name, policy FROM dnssec", []any{}
	kq := "SELECT zone_id, id, sealed FROM dnssec_keys ORDER BY zone_id, id"
	if only != 0 {
		q, args = q+" WHERE zone_id = ?", []any{only}
		kq = "SELECT zone_id, id, sealed FROM dnssec_keys WHERE zone_id = ? ORDER BY id"
	}
	type row struct {
		name   string
		policy sign.Policy
		keys   []*sign.Key
	}
	rows := map[int64]*row{}
	err := func() error {
		rs, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer func() { _ = rs.Close() }()
		for rs.Next() {
			var id int64
			var name string
			var pol []byte
			if err := rs.Scan(&id, &name, &pol); err != nil {
				return err
			}
			r := &row{name: name}
			if err := json.Unmarshal(pol, &r.policy); err != nil {
				return fmt.Errorf("signing policy of zone id %d: %w", id, err)
			}
			rows[id] = r
		}
		return rs.Err()
	}()
	if err != nil || len(rows) == 0 {
		return err
	}
	if s.opt.sealer == nil {
		var names []string
		for id := range rows {
			if st := byID[id]; st != nil {
				names = append(names, st.info.Name)
			}
		}
		slices.Sort(names)
		return fmt.Errorf("zones %s are signed and their keys are sealed: %w (set signing.key_file)", strings.Join(names, ", "), ErrNoKeyFile)
	}
	err = func() error {
		rs, err := tx.QueryContext(ctx, kq, args...)
		if err != nil {
			return err
		}
		defer func() { _ = rs.Close() }()
		for rs.Next() {
			var zid int64
			var id string
			var sealed []byte
			if err := rs.Scan(&zid, &id, &sealed); err != nil {
				return err
			}
			r, st := rows[zid], byID[zid]
			if r == nil || st == nil {
				continue
			}
			k, err := s.opt.sealer.OpenKey(sealed, st.info.Name, id)
			if err != nil {
				return fmt.Errorf("zone %s: %w", st.info.Name, err)
			}
			r.keys = append(r.keys, k)
		}
		return rs.Err()
	}()
	if err != nil {
		return err
	}
	now := s.opt.now()
	for id, r := range rows {
		st := byID[id]
		if st == nil {
			continue
		}
		slices.SortStableFunc(r.keys, func(a, b *sign.Key) int { return a.Created.Compare(b.Created) })
		ss, err := newSignState(r.name, r.policy, st.info.Name, r.keys)
		if err != nil {
			return fmt.Errorf("zone %s: %w", st.info.Name, err)
		}
		st.sig = ss.withRefresh(st.z, now)
	}
	return nil
}

// signError classifies an error of the signer: bad data or data the policy
// does not allow is the writer's problem.
func signError(err error) error {
	if errors.Is(err, zone.ErrInvalid) || errors.Is(err, sign.ErrPolicy) {
		return invalid(err)
	}
	return err
}

// soaBump returns the apex SOA of z and the same with serial.
func soaBump(z *zone.Zone, serial uint32) (zone.RR, zone.RR) {
	soaSet := z.Apex.Get(dns.TypeSOA)
	oldRR := zone.RR{Name: z.OriginWire(), Type: dns.TypeSOA, TTL: soaSet.TTL, Rdata: soaSet.First()}
	newRR := zone.RR{Name: oldRR.Name, Type: dns.TypeSOA, TTL: oldRR.TTL, Rdata: slices.Clone(oldRR.Rdata)}
	setSerial(newRR.Rdata, serial)
	return oldRR, newRR
}

// setSerial writes the serial into SOA rdata.
func setSerial(rd []byte, serial uint32) { binary.BigEndian.PutUint32(rd[len(rd)-20:], serial) }

// touchedRows returns the RRsets of nz that the difference d, a touches,
// encoded as commitRows writes them (one that went has no data, so it is
// deleted), in key order: the records in the zone's wire form are packed
// as they are, not through miekg/dns values (a whole-zone signing touches
// two RRsets a name).
func touchedRows(nz *zone.Zone, d, a []zone.RR) []setRow {
	type wkey struct {
		name string // lower-cased wire form
		t    uint16
	}
	seen := map[wkey]bool{}
	var rows []setRow
	var lower []byte
	for _, list := range [][]zone.RR{d, a} {
		for i := range list {
			r := &list[i]
			lower = wire.LowerName(append(lower[:0], r.Name...), r.Name)
			if seen[wkey{string(lower), r.Type}] {
				continue
			}
			name := slices.Clone(lower)
			seen[wkey{string(name), r.Type}] = true
			rows = append(rows, setRow{
				key:  setKey{strings.ToLower(zone.NameString(name)), r.Type},
				data: setData(nz.Lookup(name), name, r.Type),
			})
		}
	}
	slices.SortFunc(rows, func(x, y setRow) int {
		if c := strings.Compare(x.key.name, y.key.name); c != 0 {
			return c
		}
		return int(x.key.typ) - int(y.key.typ)
	})
	return rows
}

// setData encodes the RRset of type t at n (owned by name, lower case) as
// rrsetOf and encodeRRs would: the records without their signatures, or
// for RRSIG the signatures over every RRset of the name; nil when there
// is none.
func setData(n *zone.Node, name []byte, t uint16) []byte {
	if n == nil {
		return nil
	}
	var out []byte
	add := func(typ uint16, ttl uint32, rd []byte) {
		out = append(out, name...)
		out = binary.BigEndian.AppendUint16(out, typ)
		out = binary.BigEndian.AppendUint16(out, dns.ClassINET)
		out = binary.BigEndian.AppendUint32(out, ttl)
		out = binary.BigEndian.AppendUint16(out, uint16(len(rd)))
		out = append(out, rd...)
	}
	if t != dns.TypeRRSIG {
		set := n.Get(t)
		if set == nil {
			return nil
		}
		for rd := range set.All() {
			add(t, set.TTL, rd)
		}
		return out
	}
	for i := range n.Sets {
		set := &n.Sets[i]
		for rd := range set.Sigs() {
			add(dns.TypeRRSIG, set.SigTTL(), rd)
		}
	}
	return out
}

// changeOf is the change log entry of a difference, encoded from the
// records' wire form.
func changeOf(from, to uint32, d, a []zone.RR) (*Change, error) {
	return &Change{From: from, To: to, encoded: &[2][]byte{encodeWire(d), encodeWire(a)}}, nil
}

// updateSigned is UpdateRRset of a zone the store signs: the change and
// the new serial, signed by the zone's signer, in one commit.
func (s *Store) updateSigned(st *zoneState, owner string, t uint16, cur, next []dns.RR, del, add []zone.RR, what string) (uint32, []dns.RR, error) {
	zname := st.info.Name
	apex := owner == zname
	if sign.Generated(t, apex) {
		return 0, nil, signedf("%s: zone %s is signed by the control plane, which makes its %s records itself: they cannot be written",
			what, zname, typeString(t))
	}
	if sameRecords(del, add) {
		return st.info.Serial, copyRRs(cur), nil
	}
	var proposed uint32
	hasProposed := false
	if t == dns.TypeSOA && apex {
		if len(add) != 1 {
			return 0, nil, invalidf("%s: the zone needs exactly one SOA record, got %d", what, len(add))
		}
		soa, ok := next[0].(*dns.SOA)
		if !ok {
			return 0, nil, invalidf("%s: records[0]: not an SOA record", what)
		}
		proposed, hasProposed = soa.Serial, true
	}
	ns, err := s.commitSignedChange(st, del, add, proposed, hasProposed, what)
	if err != nil {
		return 0, nil, err
	}
	newSet, err := rrsetOf(ns.z, owner, t)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", what, err)
	}
	return ns.info.Serial, copyRRs(newSet), nil
}

// commitSigned commits the signed version nz of a zone, which differs from
// the current one by d, a: only the RRsets they touch are written.
func (s *Store) commitSigned(st *zoneState, nz *zone.Zone, d, a []zone.RR, now time.Time) (*zoneState, error) {
	ch, err := changeOf(st.info.Serial, nz.Serial, d, a)
	if err != nil {
		return nil, err
	}
	return s.commitRows(st, nz, touchedRows(nz, d, a), false, ch, now, nil)
}

// importSigned finishes an import into a zone the store signs: nz is the
// text's zone, without DNSSEC records, its serial already chosen; the
// difference from the current version is signed as one change. newSerial
// says the text carried a serial newer than the zone's.
func (s *Store) importSigned(st *zoneState, nz *zone.Zone, newSerial bool, now time.Time) (*zoneState, bool, error) {
	d, a := zone.DiffWire(st.z, nz)
	d = slices.DeleteFunc(d, func(r zone.RR) bool {
		return sign.Generated(r.Type, len(r.Name) == len(nz.OriginWire())) || r.Type == steer.TypePoolSig
	})
	if len(d)+len(a) == 0 {
		return st, false, nil
	}
	if !newSerial {
		dd, err := dnsRRs(d)
		if err != nil {
			return nil, false, err
		}
		aa, err := dnsRRs(a)
		if err != nil {
			return nil, false, err
		}
		if onlySerial(dd, aa) {
			return st, false, nil
		}
	}
	pd, pa, err := st.sig.signer.PoolChange(st.z, d, a, now)
	if err != nil {
		return nil, false, signError(err)
	}
	sz, d2, a2, err := st.sig.signer.Update(st.z, append(d, pd...), append(a, pa...), now)
	if err != nil {
		return nil, false, signError(err)
	}
	ns, err := s.commitSigned(st, sz, d2, a2, now)
	return ns, true, err
}

// stripDNSSEC drops the records a signer makes from zone records (the
// DNSSEC records of pre-signed text, which the store signs again).
//
// The RRsets the signer derived from pools (their fallback answers, marked
// by a TypePoolSig fallback mark) go too: made again with the pools when
// the zone is signed, they are not the operator's records.
func stripDNSSEC(zname string, recs []zone.Record) []zone.Record {
	type nameType struct {
		name string
		t    uint16
	}
	derived := map[nameType]bool{}
	for _, r := range recs {
		if u, ok := r.RR.(*dns.RFC3597); ok && u.Hdr.Rrtype == steer.TypePoolSig {
			if rd, err := hex.DecodeString(u.Rdata); err == nil {
				if t, ok := steer.ParseFallbackMark(rd); ok {
					derived[nameType{strings.ToLower(dns.Fqdn(u.Hdr.Name)), t}] = true
				}
			}
		}
	}
	return slices.DeleteFunc(recs, func(r zone.Record) bool {
		h := r.RR.Header()
		return sign.Generated(h.Rrtype, strings.EqualFold(dns.Fqdn(h.Name), zname)) || h.Rrtype == steer.TypePoolSig ||
			derived[nameType{strings.ToLower(dns.Fqdn(h.Name)), h.Rrtype}]
	})
}

// SigningStatus is the signing of a zone.
type SigningStatus struct {
	Zone    string
	Enabled bool
	// PolicyName names the policy the zone was signed with (a policy of
	// the configuration, or "custom").
	PolicyName string
	Policy     sign.Policy
	Keys       []KeyStatus
	// NextEvent is the time of the next thing the signer does by itself
	// (NextEventWhat: "signature refresh", "key event"), zero when none.
	NextEvent     time.Time
	NextEventWhat string
	// Rollover describes the step of an algorithm rollover under way
	// ("" when none).
	Rollover string
}

// KeyStatus is one key of a signed zone.
type KeyStatus struct {
	ID        string
	Tag       uint16
	Role      sign.Role
	Algorithm sign.Algorithm
	// State at the store's clock: "created" (not yet published),
	// "published" (in the DNSKEY RRset, not signing), "active" (signing),
	// "retired" (published, no longer signing), "removed".
	State                                      string
	Created, Publish, Activate, Retire, Remove time.Time
	// DS is the DS record (SHA-256) of a KSK or CSK, for the parent.
	DS string
}

func keyState(k *sign.Key, t time.Time) string {
	pub, signs := k.Published(t), k.Signs(t)
	switch {
	case k.Gone(t):
		return "removed"
	case k.WaitDS && pub && !t.Before(k.Submit):
		if signs {
			return "active, waiting for its DS at the parent"
		}
		return "published, waiting for its DS at the parent"
	case signs && !pub && t.Before(k.Publish):
		return "active, not yet published (algorithm rollover)"
	case signs && !pub:
		return "active, out of the DNSKEY RRset (algorithm rollover)"
	case signs:
		return "active"
	case pub && !k.Retire.IsZero() && !t.Before(k.Retire):
		return "retired"
	case pub:
		return "published"
	}
	return "created"
}

func (s *Store) status(st *zoneState, now time.Time) SigningStatus {
	out := SigningStatus{Zone: st.info.Name}
	ss := st.sig
	if ss == nil {
		return out
	}
	out.Enabled, out.PolicyName, out.Policy = true, ss.name, ss.policy
	out.Rollover = ss.algStage(now)
	for _, k := range ss.keys {
		ks := KeyStatus{ID: k.ID, Tag: k.Tag(), Role: k.Role, Algorithm: k.Algorithm, State: keyState(k, now),
			Created: k.Created, Publish: k.Publish, Activate: k.Activate, Retire: k.Retire, Remove: k.Remove}
		if k.Role != sign.ZSK {
			if ds, err := dsOf(k, st.info.Name); err == nil {
				ks.DS = ds
			}
		}
		out.Keys = append(out.Keys, ks)
	}
	out.NextEvent, out.NextEventWhat = ss.nextRefresh, "signature refresh"
	if ke := ss.nextKeyEvent(now); !ke.IsZero() && (out.NextEvent.IsZero() || ke.Before(out.NextEvent)) {
		out.NextEvent, out.NextEventWhat = ke, "key event"
	}
	if rt := ss.nextRoll(now); !rt.IsZero() && (out.NextEvent.IsZero() || rt.Before(out.NextEvent)) {
		out.NextEvent, out.NextEventWhat = rt, "key rollover starts"
	}
	if w := ss.waiting(now); len(w) > 0 {
		out.NextEventWhat = strings.TrimPrefix(out.NextEventWhat+fmt.Sprintf("; waiting for the DS of key %v at the parent (anycastctl dnssec ds-seen)", w), "; ")
	}
	if out.NextEvent.IsZero() && len(ss.waiting(now)) == 0 {
		out.NextEventWhat = ""
	}
	return out
}

// dsOf is the DS record of a key in presentation form.
func dsOf(k *sign.Key, zname string) (string, error) {
	origin, err := zone.NameWire(zname)
	if err != nil {
		return "", err
	}
	rr, err := zone.RR{Name: origin, Type: dns.TypeDS, TTL: 0, Rdata: k.DS(origin)}.DNS()
	if err != nil {
		return "", err
	}
	return rr.String(), nil
}

// Signing returns the signing status of a zone (Enabled false when it is
// not signed by the store).
func (s *Store) Signing(ctx context.Context, zoneName string) (SigningStatus, error) {
	if err := ctx.Err(); err != nil {
		return SigningStatus{}, err
	}
	zname, err := canonicalZone(zoneName)
	if err != nil {
		return SigningStatus{}, err
	}
	st, err := s.state(zname)
	if err != nil {
		return SigningStatus{}, err
	}
	return s.status(st, s.opt.now()), nil
}

// newKeys makes the keys of a policy: a CSK, or a KSK and a ZSK, in use
// from now.
func newKeys(sealer *sign.Sealer, zname string, p sign.Policy, now time.Time) ([]*sign.Key, error) {
	roles := []sign.Role{sign.CSK}
	if !p.CSK {
		roles = []sign.Role{sign.KSK, sign.ZSK}
	}
	var keys []*sign.Key
	for _, r := range roles {
		k, err := sealer.GenerateKey(zname, r, p, now) // in the PKCS#11 token, with one
		if err != nil {
			destroyKeys(keys)
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// keysOf returns the keys of a zone's signing; nil when unsigned.
func keysOf(ss *signState) []*sign.Key {
	if ss == nil {
		return nil
	}
	return ss.keys
}

// dropKeys removes from the PKCS#11 token the keys of gone that are not
// in keep: after a commit, keys that left the zone for good (a rollover's
// old key, signing disabled, the zone deleted); after a failed commit, the
// keys made for it. Keys that are not in a token live only in the
// database, where the commit removed them. A failure is logged: it
// leaves an unused object in the token and the zone as it is.
func (s *Store) dropKeys(zname string, gone, keep []*sign.Key) {
	for _, k := range gone {
		if !k.InToken() || slices.ContainsFunc(keep, func(o *sign.Key) bool { return o.ID == k.ID }) {
			continue
		}
		if err := k.Destroy(); err != nil {
			s.log.Warn("key not removed from the PKCS#11 token", "zone", zname, "key", k.ID, "tag", k.Tag(), "err", err)
			continue
		}
		s.log.Info("key removed from the PKCS#11 token", "zone", zname, "key", k.ID, "tag", k.Tag(), "role", string(k.Role))
	}
}

// destroyKeys removes keys just made from their token, if they are in one.
func destroyKeys(keys []*sign.Key) {
	for _, k := range keys {
		_ = k.Destroy()
	}
}

// EnableSigning signs a zone with the policy p (named name, for the
// status) and keeps it signed from then on. The first time, it makes the
// keys and signs the whole zone, DNSSEC records it had (a pre-signed
// import) made again; a later call with another policy of the same
// algorithm and key split keeps the keys and signs the whole zone again
// (an algorithm change is a rollover, not done here). The same policy
// again changes nothing.
func (s *Store) EnableSigning(ctx context.Context, zoneName, name string, p sign.Policy) (SigningStatus, error) {
	zname, err := canonicalZone(zoneName)
	if err != nil {
		return SigningStatus{}, err
	}
	what := "enable signing of zone " + zname
	if err := p.Validate(); err != nil {
		return SigningStatus{}, invalidf("%s: %w", what, err)
	}
	if s.opt.sealer == nil {
		return SigningStatus{}, fmt.Errorf("%s: %w: set signing.key_file in the control plane's configuration", what, ErrNoKeyFile)
	}
	if err := s.acquireZone(ctx, zname); err != nil {
		return SigningStatus{}, err
	}
	defer s.release()
	st, err := s.state(zname)
	if err != nil {
		return SigningStatus{}, err
	}
	now := s.opt.now()
	var keys []*sign.Key
	switch old := st.sig; {
	case old == nil:
		if keys, err = newKeys(s.opt.sealer, zname, p, now); err != nil {
			return SigningStatus{}, fmt.Errorf("%s: %w", what, err)
		}
	case old.policy == p && old.name == name:
		return s.status(st, now), nil
	case old.policy.Algorithm != p.Algorithm:
		// An algorithm rollover: the maintenance takes it on from here.
		if keys, err = startAlgRoll(s.opt.sealer, zname, old.policy, p, old.keys, now); err != nil {
			return SigningStatus{}, fmt.Errorf("%s: algorithm %s to %s: %w", what, old.policy.Algorithm, p.Algorithm, err)
		}
		s.log.Info("algorithm rollover started", "zone", zname, "from", old.policy.Algorithm.String(), "to", p.Algorithm.String())
	case old.policy.CSK != p.CSK || old.policy.RSABits != p.RSABits:
		return SigningStatus{}, signedf("%s: it is signed with %s (csk %v, rsa_bits %d) and the new policy has csk %v, rsa_bits %d: changing the key split or the key size "+
			"of the same algorithm is a rollover that is not done by a policy change; change the algorithm (an algorithm rollover makes keys of the new policy), "+
			"or disable signing and enable it again (the zone goes insecure in between)",
			what, old.policy.Algorithm, old.policy.CSK, old.policy.RSABits, p.CSK, p.RSABits)
	default:
		keys = old.keys
	}
	done := false
	defer func() {
		if !done {
			s.dropKeys(zname, keys, keysOf(st.sig)) // made for a signing that failed
		}
	}()
	ss, err := newSignState(name, p, zname, keys)
	if err != nil {
		return SigningStatus{}, fmt.Errorf("%s: %w", what, err)
	}
	oldRR, newRR := soaBump(st.z, bumpSerial(SerialPolicy(st.info.SerialPolicy), st.info.Serial, 0, false, now))
	nz0, err := st.z.Apply([]zone.RR{oldRR}, []zone.RR{newRR})
	if err != nil {
		return SigningStatus{}, fmt.Errorf("%s: new serial: %w", what, signError(err))
	}
	// Every answer of every pool signed anew, as the rest.
	pd, pa, err := ss.signer.PoolSigs(nz0, nil, now, 0, true)
	if err != nil {
		return SigningStatus{}, fmt.Errorf("%s: %w", what, signError(err))
	}
	if nz0, err = nz0.Apply(pd, pa); err != nil {
		return SigningStatus{}, fmt.Errorf("%s: pools: %w", what, signError(err))
	}
	nz, err := ss.signer.Sign(nz0, now)
	if err != nil {
		return SigningStatus{}, fmt.Errorf("%s: %w", what, signError(err))
	}
	nz.Source = "store"
	ns, err := s.commitWhole(st, nz, ss.withRefresh(nz, now), now)
	if err != nil {
		return SigningStatus{}, fmt.Errorf("%s: %w", what, err)
	}
	done = true
	s.log.Info("zone signed", "zone", zname, "policy", name, "algorithm", p.Algorithm.String(), "nsec3", p.NSEC3,
		"serial", ns.info.Serial, "records", ns.info.Records, "duration", time.Since(now).Round(time.Millisecond))
	s.subs.publish(Event{Zone: zname, Serial: ns.info.Serial})
	return s.status(ns, now), nil
}

// commitWhole commits a new version of a zone made anew (every RRset
// rebuilt: signed whole, or its signing removed), and its signing ss (nil:
// none). Only the RRsets that differ from the current version are written:
// enabling signing adds the signatures and the chain beside the zone's
// data, which stays as it is in the database (rewriting every RRset took
// as long as the signing itself on a large zone).
func (s *Store) commitWhole(st *zoneState, nz *zone.Zone, ss *signState, now time.Time) (*zoneState, error) {
	sw, err := s.sealKeys(ss)
	if err != nil {
		return nil, err
	}
	d, a := zone.DiffWire(st.z, nz)
	ch, err := changeOf(st.info.Serial, nz.Serial, d, a)
	if err != nil {
		return nil, err
	}
	return s.commitRows(st, nz, touchedRows(nz, d, a), false, ch, now, sw)
}

// DisableSigning removes the signing of a zone: its DNSSEC records go, in
// one new version, and its policy and keys are deleted (export them first
// to keep them). A zone that is not signed by the store is left as it is.
// The zone is insecure afterwards: remove its DS at the parent first.
func (s *Store) DisableSigning(ctx context.Context, zoneName string) (SigningStatus, error) {
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
	now := s.opt.now()
	if st.sig == nil {
		return s.status(st, now), nil
	}
	what := "disable signing of zone " + zname
	rrs, err := st.z.RRs()
	if err != nil {
		return SigningStatus{}, fmt.Errorf("%s: %w", what, err)
	}
	recs := make([]zone.Record, 0, len(rrs))
	for _, rr := range rrs {
		if soa, ok := rr.(*dns.SOA); ok && strings.EqualFold(soa.Hdr.Name, zname) {
			soa.Serial = bumpSerial(SerialPolicy(st.info.SerialPolicy), st.info.Serial, 0, false, now)
		}
		recs = append(recs, zone.Record{RR: rr, File: inZone})
	}
	nz, err := zone.Build(zname, stripDNSSEC(zname, recs))
	if err != nil {
		return SigningStatus{}, fmt.Errorf("%s: %w", what, err)
	}
	nz.Prepare()
	nz.Source = "store"
	ns, err := s.commitWhole(st, nz, nil, now)
	if err != nil {
		return SigningStatus{}, fmt.Errorf("%s: %w", what, err)
	}
	s.dropKeys(zname, st.sig.keys, nil)
	s.log.Info("zone signing disabled", "zone", zname, "serial", ns.info.Serial, "records", ns.info.Records)
	s.subs.publish(Event{Zone: zname, Serial: ns.info.Serial})
	return s.status(ns, now), nil
}

// MaintainSigning does what is due in every signed zone at the store's
// clock: it re-signs the signatures that come within signature_refresh of
// their expiration (spread by the policy's jitter, so a few at a time) and
// follows the keys' timing (a key published, activated, retired or
// removed), each zone in one write that bumps its serial. It returns when
// the next thing comes due (zero: nothing signed).
func (s *Store) MaintainSigning(ctx context.Context) (time.Time, error) {
	s.mu.RLock()
	var names []string
	for name, st := range s.zones {
		if st.sig != nil {
			names = append(names, name)
		}
	}
	s.mu.RUnlock()
	slices.Sort(names)
	var next time.Time
	var errs []error
	for _, name := range names {
		at, err := s.maintainZone(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				return next, ctx.Err()
			}
			errs = append(errs, err)
			continue
		}
		if !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	return next, errors.Join(errs...)
}

// due returns when the signing of a zone next has work, seen at now.
func (ss *signState) due(now time.Time) time.Time {
	at := ss.nextRefresh
	for _, t := range []time.Time{ss.nextKeyEvent(ss.keysAt), ss.nextRoll(now)} {
		if !t.IsZero() && (at.IsZero() || t.Before(at)) {
			at = t
		}
	}
	return at
}

func (s *Store) maintainZone(ctx context.Context, zname string) (time.Time, error) {
	if err := s.acquireZone(ctx, zname); err != nil {
		return time.Time{}, err
	}
	defer s.release()
	st, err := s.state(zname)
	if err != nil || st.sig == nil {
		return time.Time{}, nil // deleted or unsigned since
	}
	now := s.opt.now()
	at := st.sig.due(now)
	if at.IsZero() || at.After(now) {
		return at, nil
	}
	what := "maintain the signatures of zone " + zname
	ss := st.sig
	var sw *signWrite
	keys, err := ss.roll(s.opt.sealer, zname, now)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: rollover: %w", what, err)
	}
	done := false
	defer func() {
		if !done {
			s.dropKeys(zname, keys, st.sig.keys) // made for a step that failed
		}
	}()
	if keys != nil {
		if ss, err = newSignState(ss.name, ss.policy, zname, keys); err != nil {
			return time.Time{}, fmt.Errorf("%s: rollover: %w", what, err)
		}
		if sw, err = s.sealKeys(ss); err != nil {
			return time.Time{}, fmt.Errorf("%s: rollover: %w", what, err)
		}
	}
	nz1, _, _, err := ss.signer.RefreshWithin(st.z, now, refreshBatch(ss.policy))
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", what, err)
	}
	oldRR, newRR := soaBump(nz1, bumpSerial(SerialPolicy(st.info.SerialPolicy), st.info.Serial, 0, false, now))
	// The pools' answers due in the same batch, or signed by keys no
	// longer active, are signed again.
	pd, pa, err := ss.signer.PoolSigs(nz1, nil, now, refreshBatch(ss.policy), false)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", what, err)
	}
	nz, _, _, err := ss.signer.Update(nz1, append([]zone.RR{oldRR}, pd...), append([]zone.RR{newRR}, pa...), now)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", what, err)
	}
	d, a := zone.DiffWire(st.z, nz)
	ch, err := changeOf(st.info.Serial, nz.Serial, d, a)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", what, err)
	}
	ss = ss.withRefresh(nz, now)
	if sw == nil {
		sw = &signWrite{}
	}
	sw.state = ss
	ns, err := s.commitRows(st, nz, touchedRows(nz, d, a), false, ch, now, sw)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", what, err)
	}
	done = true
	if keys != nil {
		s.dropKeys(zname, st.sig.keys, keys) // left the zone
		s.log.Info("key rollover step", "zone", zname, "keys", len(keys), "waiting_for_ds", fmt.Sprint(ss.waiting(now)))
	}
	s.log.Info("signatures refreshed", "zone", zname, "serial", ns.info.Serial, "signatures", countSigs(a),
		"next", ss.due(now).UTC().Format(time.RFC3339))
	s.subs.publish(Event{Zone: zname, Serial: ns.info.Serial})
	return ss.due(now), nil
}

// refreshBatch is how far ahead of its time a signature is refreshed with
// others: a 24th of the policy's jitter (30 minutes of the default 12
// hours), so that a zone's signatures are refreshed in about 24 writes
// spread over the jitter instead of one write per RRset.
func refreshBatch(p sign.Policy) time.Duration { return p.SignatureJitter / 24 }

func countSigs(rrs []zone.RR) int {
	n := 0
	for _, r := range rrs {
		if r.Type == dns.TypeRRSIG {
			n++
		}
	}
	return n
}
