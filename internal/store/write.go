package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/steer"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// commitTimeout bounds one write transaction. A write that has been
// validated runs to the end even when the caller gives up, so that the
// outcome is never ambiguous to the store itself.
const commitTimeout = time.Minute

// commitPerSet is the time a transaction is given for each RRset it
// writes, beside commitTimeout: an import of the 1,000,000-name zone of
// make bench-change writes about 1,000,000 RRsets, which took over a
// minute on a busy 2-core machine and was rolled back.
const commitPerSet = 100 * time.Microsecond

// commitBudget bounds a transaction that writes sets RRsets.
func commitBudget(sets int) time.Duration { return commitTimeout + time.Duration(sets)*commitPerSet }

// acquire waits for the write lock.
func (s *Store) acquire(ctx context.Context) error {
	select {
	case s.wsem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		<-s.wsem
		return ErrClosed
	}
	return nil
}

func (s *Store) release() {
	if s.pg != nil {
		s.pg.endWrite()
	}
	<-s.wsem
}

// CreateZone creates a zone from records, which must include the SOA and
// the apex NS RRset. The name must be one the nodes serve
// (zone.ValidateZoneName). An empty policy is the store's default. Under
// the date policy the serial is raised to today's YYYYMMDD00 when the SOA's
// is older, except in a signed zone, whose SOA signature covers it.
func (s *Store) CreateZone(ctx context.Context, name string, rrs []dns.RR, policy SerialPolicy) (ZoneInfo, error) {
	zname, err := newZoneName(name)
	if err != nil {
		return ZoneInfo{}, err
	}
	if policy == "" {
		policy = s.opt.policy
	}
	if _, err := ParseSerialPolicy(string(policy)); err != nil {
		return ZoneInfo{}, fmt.Errorf("create zone %s: %w", zname, err)
	}
	if len(rrs) > s.opt.maxRecords {
		return ZoneInfo{}, invalidf("create zone %s: %d records, more than the limit of %d", zname, len(rrs), s.opt.maxRecords)
	}
	recs := make([]zone.Record, len(rrs))
	for i, rr := range rrs {
		if rr == nil {
			return ZoneInfo{}, invalidf("create zone %s: records[%d]: no record", zname, i)
		}
		recs[i] = zone.Record{RR: rr, File: fmt.Sprintf("records[%d]", i)}
	}
	if err := checkPoolRecords(zname, recs, signedRecords(recs)); err != nil {
		return ZoneInfo{}, fmt.Errorf("create zone %s: %w", zname, err)
	}
	now := s.opt.now()
	if i := apexSOA(zname, recs); i >= 0 && signedRecords(recs) == "" {
		soa := dns.Copy(recs[i].RR).(*dns.SOA)
		soa.Serial = createSerial(policy, soa.Serial, now)
		recs[i].RR = soa
	}
	nz, err := zone.Build(zname, recs)
	if err != nil {
		return ZoneInfo{}, invalid(err)
	}
	all, err := nz.RRs()
	if err != nil {
		return ZoneInfo{}, fmt.Errorf("create zone %s: %w", zname, err)
	}
	if err := s.acquireZone(ctx, zname); err != nil {
		return ZoneInfo{}, err
	}
	defer s.release()
	if _, err := s.state(zname); err == nil {
		return ZoneInfo{}, fmt.Errorf("zone %s: %w", zname, ErrExists)
	} else if !errors.Is(err, ErrNotFound) {
		return ZoneInfo{}, err
	}
	st := &zoneState{info: ZoneInfo{Name: zname, SerialPolicy: string(policy)}}
	ns, err := s.commit(st, nz, groupRRs(all), true, nil, now, nil)
	if err != nil {
		return ZoneInfo{}, fmt.Errorf("create zone %s: %w", zname, err)
	}
	s.log.Info("zone created", "zone", zname, "serial", ns.info.Serial, "records", ns.info.Records, "serial_policy", policy)
	s.subs.publish(Event{Zone: zname, Serial: ns.info.Serial, Created: true})
	return ns.info, nil
}

// newZoneName is the canonical name of a zone to create, which must be one
// the nodes serve: the API and the nodes' catalog consumer hold names to
// the same rule, so that a zone is never accepted here and skipped there.
func newZoneName(name string) (string, error) {
	zname, err := canonicalZone(name)
	if err != nil {
		return "", err
	}
	if err := zone.ValidateZoneName(zname); err != nil {
		return "", invalidf("create zone: %w", err)
	}
	return zname, nil
}

// apexSOA returns the index of the first SOA record at the apex, or -1.
func apexSOA(zname string, recs []zone.Record) int {
	for i, r := range recs {
		if h := r.RR.Header(); h.Rrtype == dns.TypeSOA && strings.EqualFold(dns.Fqdn(h.Name), zname) {
			if _, ok := r.RR.(*dns.SOA); ok {
				return i
			}
		}
	}
	return -1
}

// DeleteZone deletes a zone with its change log.
func (s *Store) DeleteZone(ctx context.Context, name string) (err error) {
	defer func() { err = markUnavailable(err) }() // a lost database: see postgres_conn.go
	zname, err := canonicalZone(name)
	if err != nil {
		return err
	}
	if err := s.acquireZone(ctx, zname); err != nil {
		return err
	}
	defer s.release()
	st, err := s.state(zname)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	tx, err := s.beginWrite(ctx)
	if err != nil {
		return fmt.Errorf("delete zone %s: %w", zname, err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := s.committing(ctx, tx, zname, st.id, false); err != nil {
		return fmt.Errorf("delete zone %s: %w", zname, err)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM zones WHERE id = ?", st.id); err != nil {
		return fmt.Errorf("delete zone %s: %w", zname, err)
	}
	if err := tx.Commit(); err != nil {
		s.resync(zname)
		return fmt.Errorf("delete zone %s: %w", zname, err)
	}
	s.mu.Lock()
	delete(s.zones, zname)
	s.mu.Unlock()
	s.dropKeys(zname, keysOf(st.sig), nil)
	s.log.Info("zone deleted", "zone", zname, "serial", st.info.Serial)
	s.subs.publish(Event{Zone: zname, Serial: st.info.Serial, Deleted: true})
	return nil
}

// SetRRset replaces the records of type t at name (all of them: an empty
// rrs is invalid, DeleteRRset removes an RRset) and returns the zone's new
// serial. Writing the apex SOA replaces it; its serial is kept only when it
// is newer than the one the zone's policy gives. Writing what is already
// there changes nothing and returns the current serial.
func (s *Store) SetRRset(ctx context.Context, zoneName, name string, t uint16, rrs []dns.RR) (uint32, error) {
	if len(rrs) == 0 {
		return 0, invalidf("rrset %s %s: no records (to remove an RRset, delete it)", name, typeString(t))
	}
	serial, _, err := s.UpdateRRset(ctx, zoneName, name, t, func([]dns.RR) ([]dns.RR, error) { return rrs, nil })
	return serial, err
}

// DeleteRRset removes the records of type t at name and returns the zone's
// new serial.
func (s *Store) DeleteRRset(ctx context.Context, zoneName, name string, t uint16) (uint32, error) {
	serial, _, err := s.UpdateRRset(ctx, zoneName, name, t, func([]dns.RR) ([]dns.RR, error) { return nil, nil })
	return serial, err
}

// UpdateRRset is an atomic read-modify-write of one RRset: fn receives a
// copy of the current records of type t at name (none if there are none)
// and returns the records to replace them with (none deletes the RRset).
// No other write runs between the read and the write. An error from fn is
// returned as it is and changes nothing. A change to a signed zone (one
// with DNSSEC records), or to an RRset of a DNSSEC type, is refused with
// ErrSigned: the store does not sign, and the change would leave bogus or
// missing signatures; such zones are changed by importing them whole. It returns the zone's serial
// after the write and the records of the RRset as stored (normalized as
// the zone serves them; none after a delete).
//
// Records the store holds are never handed out: packing a record writes
// its header (miekg/dns sets Rdlength), so callers get copies, made while
// the write lock is held.
func (s *Store) UpdateRRset(ctx context.Context, zoneName, name string, t uint16, fn func(cur []dns.RR) ([]dns.RR, error)) (uint32, []dns.RR, error) {
	zname, err := canonicalZone(zoneName)
	if err != nil {
		return 0, nil, err
	}
	owner, err := canonicalName(name)
	if err != nil {
		return 0, nil, fmt.Errorf("zone %s: owner: %w", zname, err)
	}
	if err := checkType(t); err != nil {
		return 0, nil, fmt.Errorf("zone %s: rrset %s: %w", zname, owner, err)
	}
	if err := s.acquireZone(ctx, zname); err != nil {
		return 0, nil, err
	}
	defer s.release()
	st, err := s.state(zname)
	if err != nil {
		return 0, nil, err
	}
	key := setKey{owner, t}
	cur, err := rrsetOf(st.z, owner, t)
	if err != nil {
		return 0, nil, fmt.Errorf("zone %s: rrset %s %s: %w", zname, owner, typeString(t), err)
	}
	next, err := fn(copyRRs(cur))
	if err != nil {
		return 0, nil, err
	}
	what := fmt.Sprintf("zone %s: rrset %s %s", zname, owner, typeString(t))
	for i, rr := range next {
		if rr == nil {
			return 0, nil, invalidf("%s: records[%d]: no record", what, i)
		}
		h := rr.Header()
		if h.Rrtype != t {
			return 0, nil, invalidf("%s: records[%d]: type %s does not match the RRset", what, i, typeString(h.Rrtype))
		}
		if n, err := canonicalName(h.Name); err != nil || n != owner {
			return 0, nil, invalidf("%s: records[%d]: owner %q does not match the RRset", what, i, h.Name)
		}
	}
	next = normalize(owner, next)
	if t == steer.TypePool {
		if err := checkPools(next, func(i int) string { return fmt.Sprintf("%s: records[%d]", what, i) }); err != nil {
			return 0, nil, err
		}
	}
	if len(next) == 0 && len(cur) == 0 {
		return 0, nil, fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	if n := st.info.Records - len(cur) + len(next); n > s.opt.maxRecords {
		return 0, nil, invalidf("%s: the zone would have %d records, more than the limit of %d", what, n, s.opt.maxRecords)
	}
	del, err := wireRRs(cur, "")
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", what, err)
	}
	add, err := wireRRs(next, "records")
	if err != nil {
		return 0, nil, invalidf("%s: %v", what, err)
	}

	if st.sig != nil {
		return s.updateSigned(st, owner, t, cur, next, del, add, what)
	}
	// A zone signed elsewhere, or a DNSSEC RRset, is written whole by a signer: any
	// change of one RRset is refused before it is tried (validation would
	// otherwise report the orphaned signature), a write of what is there
	// already is not a change.
	if types := st.signed(); (types != "" || isDNSSECType(t)) && !sameRecords(del, add) {
		if types != "" {
			return 0, nil, signedf("%s: zone %s is DNSSEC-signed (it has %s records): changing one RRset would leave a bogus signature, "+
				"an unsigned record or a broken NSEC chain; %s", what, zname, types, howToEditSigned)
		}
		return 0, nil, signedf("%s: %s records come from a signer with the rest of the signed zone and cannot be written one RRset at a time; "+
			"sign the zone and import the whole signed zone", what, typeString(t))
	}

	soaKey := setKey{zname, dns.TypeSOA}
	isSOA := key == soaKey
	oldSOA := st.z.SOA()
	if oldSOA == nil {
		return 0, nil, fmt.Errorf("%s: the stored zone has no SOA", what)
	}
	var proposed uint32
	if isSOA {
		if len(next) != 1 {
			return 0, nil, invalidf("%s: the zone needs exactly one SOA record, got %d", what, len(next))
		}
		soa, ok := next[0].(*dns.SOA)
		if !ok {
			return 0, nil, invalidf("%s: records[0]: not an SOA record", what)
		}
		proposed = soa.Serial
	}
	// The RRset replaced, as one change of the current version; nothing
	// changed, nothing to write.
	label := func(i int) string { return fmt.Sprintf("records[%d]", i) }
	nz, err := st.z.ApplyNamed(del, add, label, inZone)
	if err != nil {
		return 0, nil, invalid(err)
	}
	if d, a := zone.DiffWire(st.z, nz); len(d)+len(a) == 0 {
		return st.info.Serial, copyRRs(cur), nil
	}
	// Then the new serial.
	now := s.opt.now()
	soaSet := nz.Apex.Get(dns.TypeSOA)
	oldRR := zone.RR{Name: nz.OriginWire(), Type: dns.TypeSOA, TTL: soaSet.TTL, Rdata: soaSet.First()}
	newRR := zone.RR{Name: oldRR.Name, Type: dns.TypeSOA, TTL: oldRR.TTL, Rdata: slices.Clone(oldRR.Rdata)}
	binary.BigEndian.PutUint32(newRR.Rdata[len(newRR.Rdata)-20:], bumpSerial(SerialPolicy(st.info.SerialPolicy), oldSOA.Serial, proposed, isSOA, now))
	if nz, err = nz.ApplyNamed([]zone.RR{oldRR}, []zone.RR{newRR}, label, inZone); err != nil {
		return 0, nil, invalid(err)
	}
	newSet, err := rrsetOf(nz, owner, t)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", what, err)
	}
	soaRRs, err := rrsetOf(nz, zname, dns.TypeSOA)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: read back the new SOA: %w", what, err)
	}
	// The change log gets the difference of the versions, SOA first.
	ch := &Change{From: oldSOA.Serial, To: nz.Serial}
	d, a := zone.DiffWire(st.z, nz)
	if ch.Del, err = dnsRRs(d); err != nil {
		return 0, nil, fmt.Errorf("%s: %w", what, err)
	}
	if ch.Add, err = dnsRRs(a); err != nil {
		return 0, nil, fmt.Errorf("%s: %w", what, err)
	}
	sets := map[setKey][]dns.RR{key: newSet, soaKey: soaRRs}
	ns, err := s.commit(st, nz, sets, false, ch, now, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", what, err)
	}
	s.log.Debug("rrset written", "zone", zname, "name", owner, "type", typeString(t), "records", len(newSet), "serial", ns.info.Serial)
	s.subs.publish(Event{Zone: zname, Serial: ns.info.Serial})
	return ns.info.Serial, copyRRs(newSet), nil
}

// inZone labels the records a write keeps in the zone, in error messages
// ("in the zone: www.example.com. A: CNAME and other data at the same
// name"), as records[i] labels the ones it writes.
const inZone = "in the zone"

// checkType rejects the types that cannot be zone data.
func checkType(t uint16) error {
	switch t {
	case 0, dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeIXFR, dns.TypeAXFR,
		dns.TypeMAILA, dns.TypeMAILB, dns.TypeANY:
		return invalidf("type %s cannot be stored in a zone", typeString(t))
	case steer.TypePoolSig:
		return signedf("type %s holds the signatures of steered answers, which the control plane makes when it signs a zone: it cannot be written", typeString(t))
	}
	return nil
}

func copyRRs(rrs []dns.RR) []dns.RR {
	if len(rrs) == 0 {
		return nil
	}
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		out[i] = dns.Copy(rr)
	}
	return out
}

// importLabel names the text of an import in error messages ("zonefile:12").
const importLabel = "zonefile"

// ImportZone replaces the whole content of a zone with RFC 1035 master-file
// text (no $INCLUDE), creating the zone with the default policy if it does
// not exist (its name must then be one zone.ValidateZoneName accepts). The
// serial follows the zone's policy unless the text's SOA carries a newer
// one. Text that differs from the current content only in an SOA serial
// that is not newer changes nothing. Errors name the line of the text.
//
// Signed text (with DNSKEY, RRSIG, NSEC, NSEC3 or NSEC3PARAM records) is
// stored as it is, serial included, since the SOA's signature covers the
// serial: it must be newer than the zone's, else the import is refused
// with ErrSigned (unless it changes nothing). Unsigned text replaces a
// signed zone, which is how a zone is made unsigned.
func (s *Store) ImportZone(ctx context.Context, name string, r io.Reader) (ZoneInfo, error) {
	return s.importText(ctx, name, r, "", false)
}

// CreateZoneFromText creates a zone from RFC 1035 master-file text (no
// $INCLUDE) like CreateZone; errors name the line of the text.
func (s *Store) CreateZoneFromText(ctx context.Context, name string, r io.Reader, policy SerialPolicy) (ZoneInfo, error) {
	return s.importText(ctx, name, r, policy, true)
}

// importText is ImportZone, or with create CreateZoneFromText.
func (s *Store) importText(ctx context.Context, name string, r io.Reader, policy SerialPolicy, create bool) (ZoneInfo, error) {
	zname, err := canonicalZone(name)
	if err != nil {
		return ZoneInfo{}, err
	}
	op := "import"
	if create {
		op = "create"
	}
	if policy == "" {
		policy = s.opt.policy
	}
	if _, err := ParseSerialPolicy(string(policy)); err != nil {
		return ZoneInfo{}, fmt.Errorf("%s zone %s: %w", op, zname, err)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return ZoneInfo{}, fmt.Errorf("%s zone %s: read: %w", op, zname, err)
	}
	if hasDirective(data, "$GENERATE") {
		// $GENERATE makes up to 65536 records from one line: count before
		// holding them all.
		if err := s.countRecords(data, zname); err != nil {
			return ZoneInfo{}, fmt.Errorf("%s zone %s: %w", op, zname, err)
		}
	}
	// The file name "-" keeps the parser from following $INCLUDE.
	recs, err := zone.Parse(bytes.NewReader(data), zname, "-")
	if err != nil {
		// The parser names the text "-"; call it what the other errors do.
		msg := err.Error()
		if rest, ok := strings.CutPrefix(msg, "-:"); ok {
			msg = importLabel + ":" + rest
		}
		return ZoneInfo{}, invalidf("%s zone %s: %s", op, zname, msg)
	}
	if len(recs) > s.opt.maxRecords {
		return ZoneInfo{}, invalidf("%s zone %s: %d records, more than the limit of %d", op, zname, len(recs), s.opt.maxRecords)
	}
	for i := range recs {
		recs[i].File = importLabel
	}
	if err := s.acquireZone(ctx, zname); err != nil {
		return ZoneInfo{}, err
	}
	defer s.release()
	st, err := s.state(zname)
	exists := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return ZoneInfo{}, err
	}
	if exists && create {
		return ZoneInfo{}, fmt.Errorf("zone %s: %w", zname, ErrExists)
	}
	if !exists {
		if _, err := newZoneName(zname); err != nil {
			return ZoneInfo{}, err
		}
	}
	now := s.opt.now()
	signing := exists && st.sig != nil
	if signing {
		// The store signs this zone: the text's DNSSEC records, if any,
		// are made again.
		// The pools' answers are signed again with the rest.
		recs = stripDNSSEC(zname, recs)
	}
	if err := checkPoolRecords(zname, recs, signedRecords(recs)); err != nil {
		return ZoneInfo{}, fmt.Errorf("%s zone %s: %w", op, zname, err)
	}
	// The SOA of signed text is signed: its serial stays as it is.
	signed := signedRecords(recs)
	newSerial := false   // the text's SOA has a serial newer than the zone's
	staleSigned := false // signed text whose serial is not newer than the zone's
	if i := apexSOA(zname, recs); i >= 0 {
		soa := dns.Copy(recs[i].RR).(*dns.SOA)
		given := soa.Serial
		switch {
		case exists && signed != "":
			newSerial = zone.SerialLess(st.info.Serial, given)
			if !newSerial {
				// Identical content is no change; anything else is
				// refused once the difference is known.
				soa.Serial, staleSigned = st.info.Serial, true
			}
		case exists:
			soa.Serial = bumpSerial(SerialPolicy(st.info.SerialPolicy), st.info.Serial, given, true, now)
			newSerial = soa.Serial == given
		case signed == "":
			soa.Serial = createSerial(policy, soa.Serial, now)
		}
		recs[i].RR = soa
	}
	nz, err := zone.Build(zname, recs)
	if err != nil {
		return ZoneInfo{}, invalid(err)
	}
	if signing {
		ns, changed, err := s.importSigned(st, nz, newSerial, now)
		if err != nil {
			return ZoneInfo{}, fmt.Errorf("%s zone %s: %w", op, zname, err)
		}
		if changed {
			s.log.Info("zone imported and signed", "zone", zname, "serial", ns.info.Serial, "records", ns.info.Records)
			s.subs.publish(Event{Zone: zname, Serial: ns.info.Serial})
		}
		return ns.info, nil
	}
	all, err := nz.RRs()
	if err != nil {
		return ZoneInfo{}, fmt.Errorf("%s zone %s: %w", op, zname, err)
	}
	var ch *Change
	if exists {
		del, add, err := zone.Diff(st.z, nz)
		if err != nil {
			return ZoneInfo{}, fmt.Errorf("%s zone %s: %w", op, zname, err)
		}
		if staleSigned {
			if len(del)+len(add) == 0 {
				return st.info, nil
			}
			return ZoneInfo{}, signedf("%s zone %s: the text is DNSSEC-signed (it has %s records) and its SOA serial is not newer than "+
				"the zone's %d; the serial of signed data cannot be raised here without breaking the SOA's signature: "+
				"sign the zone again with a serial above %d and import it", op, zname, signed, st.info.Serial, st.info.Serial)
		}
		if !newSerial && onlySerial(del, add) {
			return st.info, nil
		}
		ch = &Change{From: st.info.Serial, To: nz.Serial, Del: del, Add: add}
	} else {
		st = &zoneState{info: ZoneInfo{Name: zname, SerialPolicy: string(policy)}}
	}
	ns, err := s.commit(st, nz, groupRRs(all), true, ch, now, nil)
	if err != nil {
		return ZoneInfo{}, fmt.Errorf("%s zone %s: %w", op, zname, err)
	}
	if exists {
		s.log.Info("zone imported", "zone", zname, "serial", ns.info.Serial, "records", ns.info.Records,
			"deleted", len(ch.Del)-1, "added", len(ch.Add)-1)
	} else {
		s.log.Info("zone created", "zone", zname, "serial", ns.info.Serial, "records", ns.info.Records, "serial_policy", policy, "from", "text")
	}
	s.subs.publish(Event{Zone: zname, Serial: ns.info.Serial, Created: !exists})
	return ns.info, nil
}

// countRecords fails when master-file text expands to more records than a
// zone may have.
func (s *Store) countRecords(data []byte, zname string) error {
	zp := dns.NewZoneParser(bytes.NewReader(data), zname, "")
	zp.SetIncludeAllowed(false)
	n := 0
	for _, ok := zp.Next(); ok; _, ok = zp.Next() {
		if n++; n > s.opt.maxRecords {
			return invalidf("more than the limit of %d records", s.opt.maxRecords)
		}
	}
	return nil // a syntax error is reported by the parse that follows
}

// onlySerial reports whether a difference is nothing but a new SOA serial.
func onlySerial(del, add []dns.RR) bool {
	if len(del) != 1 || len(add) != 1 {
		return false
	}
	a, ok1 := del[0].(*dns.SOA)
	b, ok2 := add[0].(*dns.SOA)
	if !ok1 || !ok2 {
		return false
	}
	c := *b
	c.Serial = a.Serial
	return dns.IsDuplicate(a, &c) && a.Hdr.Ttl == c.Hdr.Ttl
}

// commit writes a new version of a zone in one transaction: the zone row
// (inserted when st.id is 0), the RRsets in sets (an empty one is deleted;
// with all, they replace every RRset), and the change ch when not nil. Then
// it installs the new version in memory and returns it.
//
// sw, when not nil, is the zone's signing after the commit (written in the
// same transaction); nil keeps the one it has.
func (s *Store) commit(st *zoneState, nz *zone.Zone, sets map[setKey][]dns.RR, all bool, ch *Change, now time.Time, sw *signWrite) (*zoneState, error) {
	rows, err := rowsOf(sets)
	if err != nil {
		return nil, err
	}
	return s.commitRows(st, nz, rows, all, ch, now, sw)
}

// setRow is an RRset as the database holds it: its records encoded
// (encodeRRs), nil when it is to be deleted.
type setRow struct {
	key  setKey
	data []byte
}

// rowsOf encodes sets in key order.
func rowsOf(sets map[setKey][]dns.RR) ([]setRow, error) {
	rows := make([]setRow, 0, len(sets))
	for _, k := range sortedKeys(sets) {
		row := setRow{key: k}
		if rrs := sets[k]; len(rrs) > 0 {
			var err error
			if row.data, err = encodeRRs(rrs); err != nil {
				return nil, err
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// commitRows is commit with the RRsets already encoded.
func (s *Store) commitRows(st *zoneState, nz *zone.Zone, rows []setRow, all bool, ch *Change, now time.Time, sw *signWrite) (_ *zoneState, err error) {
	defer func() { err = markUnavailable(err) }() // a lost database: see postgres_conn.go
	ctx, cancel := context.WithTimeout(context.Background(), commitBudget(len(rows)))
	defer cancel()
	updated := now.UnixNano()
	ns := &zoneState{id: st.id, info: st.info, z: nz, lastSeq: st.lastSeq, sig: st.sig}
	if sw != nil {
		ns.sig = sw.state
	}
	ns.info.Serial, ns.info.Records, ns.info.Updated = nz.Serial, nz.Records, time.Unix(0, updated).UTC()

	tx, err := s.beginWrite(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	if ns.id == 0 {
		if err := tx.QueryRowContext(ctx, "INSERT INTO zones (name, serial, policy, updated) VALUES (?, ?, ?, ?) RETURNING id",
			ns.info.Name, int64(ns.info.Serial), ns.info.SerialPolicy, updated).Scan(&ns.id); err != nil {
			return nil, err
		}
	} else if _, err := tx.ExecContext(ctx, "UPDATE zones SET serial = ?, updated = ? WHERE id = ?",
		int64(ns.info.Serial), updated, ns.id); err != nil {
		return nil, err
	}
	if all && st.id != 0 {
		if _, err := tx.ExecContext(ctx, "DELETE FROM rrsets WHERE zone_id = ?", ns.id); err != nil {
			return nil, err
		}
	}
	if err := writeSets(ctx, tx, ns.id, rows); err != nil {
		return nil, err
	}
	if sw != nil {
		if err := sw.write(ctx, tx, ns.id); err != nil {
			return nil, err
		}
	}
	if ch != nil {
		if err := s.logChange(ctx, tx, ns, ch, updated); err != nil {
			return nil, err
		}
	}
	if err := s.committing(ctx, tx, ns.info.Name, ns.id, st.id == 0); err != nil {
		return nil, err
	}
	if err := commitTx(tx); err != nil {
		// The outcome of a failed commit is not certain: take the
		// truth from the database again (commitFailed returns nil
		// when the commit did take effect).
		var seq int64
		if ch != nil {
			seq = ns.lastSeq
		}
		if err := s.commitFailed(ns.info.Name, err, updated, seq); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	s.zones[ns.info.Name] = ns
	s.mu.Unlock()
	return ns, nil
}

// writeBatch is how many RRsets one INSERT writes: a statement per RRset
// cost as much again as SQLite's own work when a whole zone is signed
// (two RRsets per name).
const writeBatch = 64

// writeSets writes the RRsets of rows, in their order: one without data
// is deleted, the others inserted or replaced, writeBatch to a statement.
func writeSets(ctx context.Context, tx *sql.Tx, id int64, rows []setRow) error {
	if len(rows) == 0 {
		return nil
	}
	var ins, del *sql.Stmt
	defer func() { // the transaction's outcome is what counts
		if ins != nil {
			_ = ins.Close()
		}
		if del != nil {
			_ = del.Close()
		}
	}()
	args := make([]any, 0, 4*writeBatch)
	flush := func() error {
		n := len(args) / 4
		if n == 0 {
			return nil
		}
		var err error
		if n == writeBatch {
			if ins == nil {
				if ins, err = tx.PrepareContext(ctx, insertSets(writeBatch)); err != nil {
					return err
				}
			}
			_, err = ins.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, insertSets(n), args...)
		}
		args = args[:0]
		return err
	}
	for _, row := range rows {
		k := row.key
		if row.data == nil {
			if del == nil {
				var err error
				if del, err = tx.PrepareContext(ctx, "DELETE FROM rrsets WHERE zone_id = ? AND name = ? AND type = ?"); err != nil {
					return err
				}
			}
			if _, err := del.ExecContext(ctx, id, k.name, int64(k.typ)); err != nil {
				return err
			}
			continue
		}
		args = append(args, id, k.name, int64(k.typ), row.data)
		if len(args) == 4*writeBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// insertSets is the statement that inserts (or replaces) n RRsets.
func insertSets(n int) string {
	var b strings.Builder
	b.WriteString("INSERT OR REPLACE INTO rrsets (zone_id, name, type, data) VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?)")
	}
	return b.String()
}

// logChange appends ch to the zone's change log and drops the entries
// beyond the journal limit.
func (s *Store) logChange(ctx context.Context, tx *sql.Tx, ns *zoneState, ch *Change, at int64) error {
	var del, add []byte
	if ch.encoded != nil {
		del, add = ch.encoded[0], ch.encoded[1]
	} else {
		var err error
		if del, err = encodeRRs(ch.Del); err != nil {
			return err
		}
		if add, err = encodeRRs(ch.Add); err != nil {
			return err
		}
	}
	ns.lastSeq++
	if _, err := tx.ExecContext(ctx, "INSERT INTO changes (zone_id, seq, from_serial, to_serial, del, add_, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
		ns.id, ns.lastSeq, int64(ch.From), int64(ch.To), del, add, at); err != nil {
		return err
	}
	if old := ns.lastSeq - int64(s.opt.journalLimit); old > 0 {
		if _, err := tx.ExecContext(ctx, "DELETE FROM changes WHERE zone_id = ? AND seq <= ?", ns.id, old); err != nil {
			return err
		}
	}
	return nil
}

// resync reloads one zone from the database after a commit whose outcome is
// unknown. The caller holds the write lock.
func (s *Store) resync(zname string) {
	s.pg.forget(zname)
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	err := func() error {
		tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback() }()
		st := &zoneState{}
		var updated int64
		err = tx.QueryRowContext(ctx, `SELECT id, name, policy, updated,
			COALESCE((SELECT MAX(seq) FROM changes c WHERE c.zone_id = z.id), 0) FROM zones z WHERE name = ?`, zname).
			Scan(&st.id, &st.info.Name, &st.info.SerialPolicy, &updated, &st.lastSeq)
		if errors.Is(err, sql.ErrNoRows) {
			s.mu.Lock()
			delete(s.zones, zname)
			s.mu.Unlock()
			return nil
		}
		if err != nil {
			return err
		}
		st.info.Updated = time.Unix(0, updated).UTC()
		if err := s.loadZone(ctx, tx, st); err != nil {
			return err
		}
		if err := s.loadSigning(ctx, tx, []*zoneState{st}, st.id); err != nil {
			return err
		}
		s.mu.Lock()
		s.zones[zname] = st
		s.mu.Unlock()
		return nil
	}()
	if err != nil {
		s.log.Error("cannot reload a zone after a failed commit; the in-memory copy may be stale until restart",
			"zone", zname, "err", err)
		return
	}
	s.log.Warn("zone reloaded from the database after a failed commit", "zone", zname)
}

// sameRecords reports whether two RRsets hold the same records with the
// same TTLs, as zone.RR.Key compares records.
func sameRecords(a, b []zone.RR) bool {
	if len(a) != len(b) {
		return false
	}
	have := make(map[string]uint32, len(a))
	for _, r := range a {
		have[r.Key()] = r.TTL
	}
	for _, r := range b {
		ttl, ok := have[r.Key()]
		if !ok || ttl != r.TTL {
			return false
		}
	}
	return true
}
