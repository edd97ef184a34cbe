package store_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// TestWriteSharesTheZone: a write makes the next version of the zone
// from the current one, sharing every node it does not change, and the
// version it replaced stays as it was.
func TestWriteSharesTheZone(t *testing.T) {
	ctx := t.Context()
	s, _ := newStore(t)
	if _, err := s.CreateZone(ctx, "example.com.", baseZone(t), ""); err != nil {
		t.Fatal(err)
	}
	before, err := s.Zone(ctx, "example.com.")
	if err != nil {
		t.Fatal(err)
	}
	text0 := text(t, before)
	if _, err := s.SetRRset(ctx, "example.com.", "www.example.com.", dns.TypeA, rrs(t, "www.example.com. 300 IN A 192.0.2.11")); err != nil {
		t.Fatal(err)
	}
	after, err := s.Zone(ctx, "example.com.")
	if err != nil {
		t.Fatal(err)
	}
	ns1, _ := zone.NameWire("ns1.example.com.")
	www, _ := zone.NameWire("www.example.com.")
	if after.Lookup(ns1) != before.Lookup(ns1) {
		t.Error("the write copied a node it did not change")
	}
	if after.Lookup(www) == before.Lookup(www) {
		t.Error("the changed node is the old one")
	}
	if text(t, before) != text0 {
		t.Error("the write changed the version it replaced")
	}
	// Errors name the records written and, as "in the zone", the rest.
	_, err = s.SetRRset(ctx, "example.com.", "www.example.com.", dns.TypeCNAME, rrs(t, "www.example.com. 300 IN CNAME ns1.example.com."))
	if err == nil || !strings.Contains(err.Error(), "in the zone: www.example.com. A: CNAME and other data at the same name") {
		t.Errorf("error %v", err)
	}
}

// BenchmarkSetRRset writes one A record of a 100,000-host zone: the cost
// of the record, not of the zone (but for the SQLite transaction).
func BenchmarkSetRRset(b *testing.B) {
	ctx := b.Context()
	s, _ := newStore(b, store.WithMaxRecords(10_000_000))
	recs := baseZone(b)
	for i := range 100_000 {
		recs = append(recs, rrs(b, fmt.Sprintf("h%d.example.com. 300 IN A 10.%d.%d.%d", i, i>>16&255, i>>8&255, i&255))...)
	}
	if _, err := s.CreateZone(ctx, "example.com.", recs, ""); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		rr := rrs(b, fmt.Sprintf("h5.example.com. 300 IN A 192.0.2.%d", i%200+1))
		if _, err := s.SetRRset(ctx, "example.com.", "h5.example.com.", dns.TypeA, rr); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
