package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/sign"
	"github.com/anycastdns/anycastdns/internal/steer"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// RRsetWrite replaces the RRset of type Type at Name with RRs: every
// record of it, none deletes the RRset.
type RRsetWrite struct {
	Name string
	Type uint16
	RRs  []dns.RR
}

// UpdateRRsets is UpdateRRset for several RRsets of one zone at once, as a
// DNS UPDATE (RFC 2136) needs: fn receives the current version of the
// zone (immutable: read it, do not keep it) and returns the RRsets to
// replace, each named once. No other write runs between the read and the
// write. The whole change is one transaction with one new serial and one
// change-log entry; an error from fn is returned as it is and changes
// nothing, and so does an error with any one RRset. Writing the apex SOA
// proposes its serial as UpdateRRset does. A write that changes nothing
// returns the current serial. The rules of UpdateRRset hold for each
// RRset: in a zone the control plane signs, the whole change is signed in
// the same transaction (its RRSIG/NSEC/NSEC3/DNSKEY records and pools are
// refused with ErrSigned); a zone signed elsewhere, or a DNSSEC type, is
// refused with ErrSigned.
func (s *Store) UpdateRRsets(ctx context.Context, zoneName string, fn func(z *zone.Zone) ([]RRsetWrite, error)) (uint32, error) {
	zname, err := canonicalZone(zoneName)
	if err != nil {
		return 0, err
	}
	// The zone's lock too: on PostgreSQL, no other replica writes it
	// meanwhile, and this one catches up with what they wrote first.
	if err := s.acquireZone(ctx, zname); err != nil {
		return 0, err
	}
	defer s.release()
	st, err := s.state(zname)
	if err != nil {
		return 0, err
	}
	writes, err := fn(st.z)
	if err != nil {
		return 0, err
	}
	soaKey := setKey{zname, dns.TypeSOA}
	var (
		del, add    []zone.RR
		records     = st.info.Records
		keys        = make(map[setKey]bool, len(writes))
		proposed    uint32
		hasProposed bool
		signed      = st.signed()
	)
	for i, w := range writes {
		owner, err := canonicalName(w.Name)
		if err != nil {
			return 0, invalidf("zone %s: rrsets[%d]: owner: %v", zname, i, err)
		}
		if err := checkType(w.Type); err != nil {
			return 0, fmt.Errorf("zone %s: rrset %s: %w", zname, owner, err)
		}
		what := fmt.Sprintf("zone %s: rrset %s %s", zname, owner, typeString(w.Type))
		key := setKey{owner, w.Type}
		if keys[key] {
			return 0, invalidf("%s: written twice in one update", what)
		}
		keys[key] = true
		cur, err := rrsetOf(st.z, owner, w.Type)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", what, err)
		}
		for j, rr := range w.RRs {
			if rr == nil {
				return 0, invalidf("%s: records[%d]: no record", what, j)
			}
			h := rr.Header()
			if h.Rrtype != w.Type {
				return 0, invalidf("%s: records[%d]: type %s does not match the RRset", what, j, typeString(h.Rrtype))
			}
			if n, err := canonicalName(h.Name); err != nil || n != owner {
				return 0, invalidf("%s: records[%d]: owner %q does not match the RRset", what, j, h.Name)
			}
		}
		next := normalize(owner, w.RRs)
		if w.Type == steer.TypePool {
			if err := checkPools(next, func(j int) string { return fmt.Sprintf("%s: records[%d]", what, j) }); err != nil {
				return 0, err
			}
		}
		d, err := wireRRs(cur, "")
		if err != nil {
			return 0, fmt.Errorf("%s: %w", what, err)
		}
		a, err := wireRRs(next, "records")
		if err != nil {
			return 0, invalidf("%s: %v", what, err)
		}
		if sameRecords(d, a) {
			continue
		}
		if st.sig != nil {
			// Signed by the control plane: the change is signed below.
			if sign.Generated(w.Type, owner == zname) {
				return 0, signedf("%s: zone %s is signed by the control plane, which makes its %s records itself: they cannot be written",
					what, zname, typeString(w.Type))
			}
		} else if signed != "" {
			return 0, signedf("%s: zone %s is DNSSEC-signed (it has %s records): changing one RRset would leave a bogus signature, "+
				"an unsigned record or a broken NSEC chain; %s", what, zname, signed, howToEditSigned)
		}
		if st.sig == nil && isDNSSECType(w.Type) {
			return 0, signedf("%s: %s records come from a signer with the rest of the signed zone and cannot be written one RRset at a time; "+
				"sign the zone and import the whole signed zone", what, typeString(w.Type))
		}
		if key == soaKey {
			if len(next) != 1 {
				return 0, invalidf("%s: the zone needs exactly one SOA record, got %d", what, len(next))
			}
			soa, ok := next[0].(*dns.SOA)
			if !ok {
				return 0, invalidf("%s: records[0]: not an SOA record", what)
			}
			proposed, hasProposed = soa.Serial, true
		}
		records += len(next) - len(cur)
		del, add = append(del, d...), append(add, a...)
	}
	if len(del)+len(add) == 0 {
		return st.info.Serial, nil
	}
	what := fmt.Sprintf("zone %s: update of %d rrsets", zname, len(keys))
	if records > s.opt.maxRecords {
		return 0, invalidf("%s: the zone would have %d records, more than the limit of %d", what, records, s.opt.maxRecords)
	}
	oldSOA := st.z.SOA()
	if oldSOA == nil {
		return 0, fmt.Errorf("%s: the stored zone has no SOA", what)
	}
	if st.sig != nil {
		ns, err := s.commitSignedChange(st, del, add, proposed, hasProposed, what)
		if err != nil {
			return 0, err
		}
		return ns.info.Serial, nil
	}
	label := func(i int) string { return fmt.Sprintf("records[%d]", i) }
	nz, err := st.z.ApplyNamed(del, add, label, inZone)
	if err != nil {
		return 0, invalid(err)
	}
	if d, a := zone.DiffWire(st.z, nz); len(d)+len(a) == 0 {
		return st.info.Serial, nil
	}
	now := s.opt.now()
	soaSet := nz.Apex.Get(dns.TypeSOA)
	oldRR := zone.RR{Name: nz.OriginWire(), Type: dns.TypeSOA, TTL: soaSet.TTL, Rdata: soaSet.First()}
	newRR := zone.RR{Name: oldRR.Name, Type: dns.TypeSOA, TTL: oldRR.TTL, Rdata: slices.Clone(oldRR.Rdata)}
	binary.BigEndian.PutUint32(newRR.Rdata[len(newRR.Rdata)-20:], bumpSerial(SerialPolicy(st.info.SerialPolicy), oldSOA.Serial, proposed, hasProposed, now))
	if nz, err = nz.ApplyNamed([]zone.RR{oldRR}, []zone.RR{newRR}, label, inZone); err != nil {
		return 0, invalid(err)
	}
	keys[soaKey] = true
	sets := make(map[setKey][]dns.RR, len(keys))
	for k := range keys {
		if sets[k], err = rrsetOf(nz, k.name, k.typ); err != nil {
			return 0, fmt.Errorf("%s: read back %s %s: %w", what, k.name, typeString(k.typ), err)
		}
	}
	ch := &Change{From: oldSOA.Serial, To: nz.Serial}
	d, a := zone.DiffWire(st.z, nz)
	if ch.Del, err = dnsRRs(d); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	if ch.Add, err = dnsRRs(a); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	ns, err := s.commit(st, nz, sets, false, ch, now, nil)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k.name+" "+typeString(k.typ))
	}
	slices.Sort(names)
	s.log.Debug("rrsets written", "zone", zname, "rrsets", strings.Join(names, ", "), "serial", ns.info.Serial)
	s.subs.publish(Event{Zone: zname, Serial: ns.info.Serial})
	return ns.info.Serial, nil
}

// commitSignedChange writes a change of a zone the control plane signs
// (UpdateRRsets, and UpdateRRset through updateSigned): the records del
// and add, with the SOA serial bumped (as proposed by a written SOA, if
// any), signed as one change and committed; subscribers are told.
func (s *Store) commitSignedChange(st *zoneState, del, add []zone.RR, proposed uint32, hasProposed bool, what string) (*zoneState, error) {
	now := s.opt.now()
	oldSOA := st.z.SOA()
	if oldSOA == nil {
		return nil, fmt.Errorf("%s: the stored zone has no SOA", what)
	}
	serial := bumpSerial(SerialPolicy(st.info.SerialPolicy), oldSOA.Serial, proposed, hasProposed, now)
	apex := st.z.OriginWire()
	soaWritten := false
	for i := range add {
		if add[i].Type == dns.TypeSOA && string(add[i].Name) == string(apex) {
			add[i].Rdata = slices.Clone(add[i].Rdata)
			setSerial(add[i].Rdata, serial)
			soaWritten = true
		}
	}
	if !soaWritten {
		oldRR, newRR := soaBump(st.z, serial)
		del, add = append(del, oldRR), append(add, newRR)
	}
	// The answers of the pools the change touches are signed with it.
	pd, pa, err := st.sig.signer.PoolChange(st.z, del, add, now)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, signError(err))
	}
	nz, d, a, err := st.sig.signer.Update(st.z, append(del, pd...), append(add, pa...), now)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, signError(err))
	}
	ns, err := s.commitSigned(st, nz, d, a, now)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	s.log.Debug("change written and signed", "zone", st.info.Name, "serial", ns.info.Serial, "signed_records", len(a))
	s.subs.publish(Event{Zone: st.info.Name, Serial: ns.info.Serial})
	return ns, nil
}
