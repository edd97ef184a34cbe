package store_test

import (
	"context"
	"crypto"
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// TestCreateRefusesNamesNodesSkip checks that every way of creating a zone
// refuses the names zone.ValidateZoneName refuses (the nodes would skip
// them), with its message, and takes the others.
func TestCreateRefusesNamesNodesSkip(t *testing.T) {
	ctx := t.Context()
	s, _ := newStore(t)
	const body = "@ 3600 IN SOA ns1.example.net. h.example.net. 1 7200 3600 1209600 300\n@ 3600 IN NS ns1.example.net.\n"
	creates := map[string]func(name string) error{
		"CreateZone": func(name string) error {
			_, err := s.CreateZone(ctx, name, rrs(t,
				dns.Fqdn(name)+" 3600 IN SOA ns1.example.net. h.example.net. 1 7200 3600 1209600 300",
				dns.Fqdn(name)+" 3600 IN NS ns1.example.net."), "")
			return err
		},
		"CreateZoneFromText": func(name string) error {
			_, err := s.CreateZoneFromText(ctx, name, strings.NewReader(body), "")
			return err
		},
		"ImportZone": func(name string) error {
			_, err := s.ImportZone(ctx, name, strings.NewReader(body))
			return err
		},
	}
	for _, name := range []string{"*.test", `a\.b.test`, `a\000b.test`, `a\@b.test`, "x\\ y.test."} {
		verr := zone.ValidateZoneName(dns.Fqdn(name))
		if verr == nil {
			t.Fatalf("ValidateZoneName(%q) accepts it", name)
		}
		for how, create := range creates {
			err := create(name)
			if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), verr.Error()) {
				t.Errorf("%s(%q) = %v, want ErrInvalid with %q", how, name, err, verr)
			}
		}
	}
	if list, _ := s.ListZones(ctx); len(list) != 0 {
		t.Fatalf("refused creates left zones: %v", list)
	}
	i := 0
	for _, name := range []string{"0/25.2.0.192.in-addr.arpa.", "_x.test.", "test.", "."} {
		for how, create := range creates {
			// Each way creates its own zone: a label in front, except
			// for the root.
			n := name
			if name != "." {
				n = string(rune('a'+i)) + "." + name
				i++
			}
			if err := create(n); err != nil {
				t.Errorf("%s(%q): %v", how, n, err)
			}
			if name == "." {
				break
			}
		}
	}
}

// TestZoneWithUnservableNameStaysManageable checks that a zone created with
// a name the nodes skip, before the store refused them, can still be read,
// replaced and deleted.
func TestZoneWithUnservableNameStaysManageable(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s := open(t, dir)
	if _, err := s.CreateZone(ctx, "legacy.test.", rrs(t,
		"legacy.test. 3600 IN SOA ns1.example.net. h.example.net. 1 7200 3600 1209600 300",
		"legacy.test. 3600 IN NS ns1.example.net."), ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Rename it to what an earlier version stored for "*.test": the zone,
	// and the owner of its records.
	db, err := sql.Open("sqlite", filepath.Join(dir, "zones.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `UPDATE zones SET name = '*.test.'`); err != nil {
		t.Fatal(err)
	}
	rows, err := db.QueryContext(ctx, `SELECT type, data FROM rrsets`)
	if err != nil {
		t.Fatal(err)
	}
	renamed := map[int64][]byte{}
	for rows.Next() {
		var typ int64
		var data []byte
		if err := rows.Scan(&typ, &data); err != nil {
			t.Fatal(err)
		}
		rr, _, err := dns.UnpackRR(data, 0)
		if err != nil {
			t.Fatal(err)
		}
		rr.Header().Name = "*.test."
		buf := make([]byte, dns.Len(rr)+16)
		n, err := dns.PackRR(rr, buf, 0, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		renamed[typ] = buf[:n]
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for typ, data := range renamed {
		if _, err := db.ExecContext(ctx, `UPDATE rrsets SET name = '*.test.', data = ? WHERE type = ?`, data, typ); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	if _, err := s.Zone(ctx, "*.test."); err != nil {
		t.Fatalf("Zone: %v", err)
	}
	if _, err := s.ImportZone(ctx, "*.test.", strings.NewReader(
		"@ 3600 IN SOA ns1.example.net. h.example.net. 2 7200 3600 1209600 300\n@ 3600 IN NS ns2.example.net.\n")); err != nil {
		t.Fatalf("ImportZone into the existing zone: %v", err)
	}
	if err := s.DeleteZone(ctx, "*.test."); err != nil {
		t.Fatalf("DeleteZone: %v", err)
	}
}

// signer signs zones as a DNSSEC signer would: a DNSKEY at the apex, an
// NSEC chain and an RRSIG over every RRset, valid from t0 for a year.
type signer struct {
	key  *dns.DNSKEY
	priv crypto.Signer
}

func newSigner(t testing.TB, origin string) *signer {
	t.Helper()
	key := &dns.DNSKEY{Hdr: dns.RR_Header{Name: origin, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags: 257, Protocol: 3, Algorithm: dns.ED25519}
	priv, err := key.Generate(256)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{key: key, priv: priv.(crypto.Signer)}
}

// sign returns the records of an unsigned zone signed.
func (sg *signer) sign(t testing.TB, origin string, unsigned []dns.RR) []dns.RR {
	t.Helper()
	all := append(slices.Clone(unsigned), sg.key)
	types := map[string][]uint16{}
	var names []string
	for _, rr := range all {
		n := dns.CanonicalName(rr.Header().Name)
		if types[n] == nil {
			names = append(names, n)
		}
		types[n] = append(types[n], rr.Header().Rrtype)
	}
	slices.SortFunc(names, func(a, b string) int {
		wa, _ := zone.NameWire(a)
		wb, _ := zone.NameWire(b)
		return zone.Compare(wa, wb)
	})
	for i, n := range names {
		next := names[(i+1)%len(names)]
		bitmap := append(slices.Clone(types[n]), dns.TypeRRSIG, dns.TypeNSEC)
		slices.Sort(bitmap)
		all = append(all, &dns.NSEC{Hdr: dns.RR_Header{Name: n, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: 300},
			NextDomain: next, TypeBitMap: slices.Compact(bitmap)})
	}
	sets := map[[2]any][]dns.RR{}
	var order [][2]any
	for _, rr := range all {
		k := [2]any{dns.CanonicalName(rr.Header().Name), rr.Header().Rrtype}
		if sets[k] == nil {
			order = append(order, k)
		}
		sets[k] = append(sets[k], rr)
	}
	out := all
	for _, k := range order {
		set := sets[k]
		sig := &dns.RRSIG{Hdr: dns.RR_Header{Name: set[0].Header().Name, Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Ttl: set[0].Header().Ttl},
			Algorithm: sg.key.Algorithm, KeyTag: sg.key.KeyTag(), SignerName: origin,
			Inception: uint32(t0.Add(-time.Hour).Unix()), Expiration: uint32(t0.AddDate(1, 0, 0).Unix())}
		if err := sig.Sign(sg.priv, set); err != nil {
			t.Fatalf("sign %v: %v", k, err)
		}
		out = append(out, sig)
	}
	return out
}

func zoneText(rrs []dns.RR) string {
	var b strings.Builder
	for _, rr := range rrs {
		b.WriteString(rr.String())
		b.WriteByte('\n')
	}
	return b.String()
}

func unsignedZone(t testing.TB, serial string) []dns.RR {
	return rrs(t,
		"signed.example. 3600 IN SOA ns1.signed.example. hostmaster.signed.example. "+serial+" 7200 3600 1209600 300",
		"signed.example. 3600 IN NS ns1.signed.example.",
		"ns1.signed.example. 3600 IN A 192.0.2.1",
		"www.signed.example. 300 IN A 192.0.2.10",
	)
}

// verifySOA checks the stored SOA against its stored signature.
func verifySOA(t *testing.T, s *store.Store, key *dns.DNSKEY) {
	t.Helper()
	ctx := t.Context()
	soa, err := s.RRset(ctx, "signed.example.", "signed.example.", dns.TypeSOA)
	if err != nil {
		t.Fatal(err)
	}
	sigs, err := s.RRset(ctx, "signed.example.", "signed.example.", dns.TypeRRSIG)
	if err != nil {
		t.Fatal(err)
	}
	for _, rr := range sigs {
		if sig := rr.(*dns.RRSIG); sig.TypeCovered == dns.TypeSOA {
			if err := sig.Verify(key, soa); err != nil {
				t.Fatalf("the stored SOA %v no longer matches its signature: %v", soa[0], err)
			}
			return
		}
	}
	t.Fatal("no RRSIG over the SOA")
}

// TestSignedZoneEdits checks that the store never leaves a signed zone with
// a bogus signature: edits of one RRset are refused with ErrSigned, a
// signed import keeps its serial (which the signature covers) and must
// bring a newer one, and an unsigned import makes the zone unsigned.
func TestSignedZoneEdits(t *testing.T) {
	ctx := t.Context()
	// The date policy would move a serial of 1 to 2026031400.
	s, _ := newStore(t, store.WithDefaultPolicy(store.SerialDate))
	sg := newSigner(t, "signed.example.")
	signed := sg.sign(t, "signed.example.", unsignedZone(t, "1"))

	info, err := s.CreateZoneFromText(ctx, "signed.example.", strings.NewReader(zoneText(signed)), "")
	if err != nil {
		t.Fatal(err)
	}
	if info.Serial != 1 {
		t.Errorf("created a signed zone with serial %d, want the signed 1", info.Serial)
	}
	verifySOA(t, s, sg.key)

	refused := []struct {
		name string
		do   func() error
	}{
		{"set an RRset", func() error {
			_, err := s.SetRRset(ctx, "signed.example.", "www.signed.example.", dns.TypeA, rrs(t, "www.signed.example. 300 IN A 192.0.2.11"))
			return err
		}},
		{"add an RRset", func() error {
			_, err := s.SetRRset(ctx, "signed.example.", "new.signed.example.", dns.TypeA, rrs(t, "new.signed.example. 300 IN A 192.0.2.12"))
			return err
		}},
		{"delete an RRset", func() error {
			_, err := s.DeleteRRset(ctx, "signed.example.", "www.signed.example.", dns.TypeA)
			return err
		}},
		{"set the SOA", func() error {
			_, err := s.SetRRset(ctx, "signed.example.", "signed.example.", dns.TypeSOA,
				rrs(t, "signed.example. 3600 IN SOA ns1.signed.example. hostmaster.signed.example. 5 7200 3600 1209600 600"))
			return err
		}},
		{"delete the signatures", func() error {
			_, err := s.DeleteRRset(ctx, "signed.example.", "www.signed.example.", dns.TypeRRSIG)
			return err
		}},
		{"import changed signed text with the same serial", func() error {
			changed := sg.sign(t, "signed.example.", append(unsignedZone(t, "1"), rrs(t, "new.signed.example. 300 IN A 192.0.2.12")...))
			_, err := s.ImportZone(ctx, "signed.example.", strings.NewReader(zoneText(changed)))
			return err
		}},
		{"import signed text with an older serial", func() error {
			older := sg.sign(t, "signed.example.", append(unsignedZone(t, "0"), rrs(t, "new.signed.example. 300 IN A 192.0.2.12")...))
			_, err := s.ImportZone(ctx, "signed.example.", strings.NewReader(zoneText(older)))
			return err
		}},
	}
	for _, r := range refused {
		err := r.do()
		if !errors.Is(err, store.ErrSigned) {
			t.Errorf("%s: %v, want ErrSigned", r.name, err)
			continue
		}
		if !strings.Contains(err.Error(), "import") {
			t.Errorf("%s: %q does not say how to proceed", r.name, err)
		}
	}
	if info, _, _ := s.Get(ctx, "signed.example."); info.Serial != 1 {
		t.Errorf("refused edits moved the serial to %d", info.Serial)
	}
	verifySOA(t, s, sg.key)

	// The same signed text again changes nothing.
	if info, err := s.ImportZone(ctx, "signed.example.", strings.NewReader(zoneText(signed))); err != nil || info.Serial != 1 {
		t.Errorf("import of the same signed text = %d, %v; want serial 1, no error", info.Serial, err)
	}
	// Signed again with a newer serial: stored as it is, although the
	// date policy would give 2026031400.
	resigned := sg.sign(t, "signed.example.", append(unsignedZone(t, "2"), rrs(t, "new.signed.example. 300 IN A 192.0.2.12")...))
	if info, err := s.ImportZone(ctx, "signed.example.", strings.NewReader(zoneText(resigned))); err != nil || info.Serial != 2 {
		t.Fatalf("import of the zone signed again = %d, %v; want serial 2", info.Serial, err)
	}
	verifySOA(t, s, sg.key)
	if _, err := s.RRset(ctx, "signed.example.", "new.signed.example.", dns.TypeA); err != nil {
		t.Errorf("the re-signed import lost a record: %v", err)
	}

	// The unsigned zone replaces the signed one; then edits are allowed.
	if _, err := s.ImportZone(ctx, "signed.example.", strings.NewReader(zoneText(unsignedZone(t, "2")))); err != nil {
		t.Fatalf("import of the unsigned zone: %v", err)
	}
	if _, err := s.RRset(ctx, "signed.example.", "signed.example.", dns.TypeRRSIG); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("signatures left after the unsigned import: %v", err)
	}
	if _, err := s.SetRRset(ctx, "signed.example.", "www.signed.example.", dns.TypeA, rrs(t, "www.signed.example. 300 IN A 192.0.2.11")); err != nil {
		t.Errorf("edit of the zone made unsigned: %v", err)
	}

	// Created from records rather than text: the signed serial stays too.
	if err := s.DeleteZone(ctx, "signed.example."); err != nil {
		t.Fatal(err)
	}
	if info, err := s.CreateZone(ctx, "signed.example.", signed, ""); err != nil || info.Serial != 1 {
		t.Fatalf("CreateZone of signed records = %d, %v; want serial 1", info.Serial, err)
	}
	verifySOA(t, s, sg.key)
}

// TestDNSSECRRsetsComeFromASigner checks that an unsigned zone does not take
// DNSSEC records one RRset at a time.
func TestDNSSECRRsetsComeFromASigner(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	if _, err := s.CreateZone(ctx, "example.com.", baseZone(t), ""); err != nil {
		t.Fatal(err)
	}
	for _, rr := range rrs(t,
		"example.com. 3600 IN DNSKEY 257 3 15 8Hymdopk5TfD9pt77J3HwAabPR/tQOxi/VKPtl+ybYI=",
		"www.example.com. 300 IN NSEC example.com. A RRSIG NSEC",
		"example.com. 0 IN NSEC3PARAM 1 0 0 -",
		"www.example.com. 300 IN RRSIG A 15 3 300 20360101000000 20240101000000 38413 example.com. k3eIAOvXSRM3R+abAASZKVIEg0NZaCpJGp2B+K0llQfZra6c1TE6PIbad9Wf/OpdmuSN4hYWbKTo1XG+vCBfBQ==",
	) {
		h := rr.Header()
		if _, err := s.SetRRset(ctx, "example.com.", h.Name, h.Rrtype, []dns.RR{rr}); !errors.Is(err, store.ErrSigned) {
			t.Errorf("SetRRset %s: %v, want ErrSigned", dns.TypeToString[h.Rrtype], err)
		}
	}
	if info, _, _ := s.Get(ctx, "example.com."); info.Serial != 100 {
		t.Errorf("refused writes moved the serial to %d", info.Serial)
	}
}
