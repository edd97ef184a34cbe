package xfrout

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/zone"
)

// pushed collects what Transfer sends: the records of every message.
func pushed(t *testing.T, src interface {
	Transfer(context.Context, string, uint32, bool, func([]byte) error) (uint32, bool, error)
}, name string, from uint32, full bool) (uint32, bool, []dns.RR, int) {
	t.Helper()
	var rrs []dns.RR
	msgs := 0
	serial, sent, err := src.Transfer(context.Background(), name, from, full, func(msg []byte) error {
		var m dns.Msg
		if err := m.Unpack(msg); err != nil {
			t.Fatalf("message %d: %v", msgs+1, err)
		}
		if !m.Response || !m.Authoritative || len(m.Extra) != 0 {
			t.Errorf("message %d: response %v, aa %v, %d extra records; want an authoritative answer without TSIG or OPT", msgs+1, m.Response, m.Authoritative, len(m.Extra))
		}
		msgs++
		rrs = append(rrs, m.Answer...)
		return nil
	})
	if err != nil {
		t.Fatalf("Transfer %s from %d full %v: %v", name, from, full, err)
	}
	return serial, sent, rrs, msgs
}

// TestStreamSourceTransfer: the stream pushes the IXFR answer out of the
// change log, the whole zone when the log does not reach back or when
// asked, and nothing to a node that is current.
func TestStreamSourceTransfer(t *testing.T) {
	src := newMemSource()
	v1 := makeZone(t, origin, 1, 2000) // several messages
	v2 := makeZone(t, origin, 2, 2000, "new.example.com. 60 IN TXT \"two\"")
	v3 := makeZone(t, origin, 3, 2000, "new.example.com. 60 IN TXT \"three\"")
	src.set(t, v1)
	src.set(t, v2)
	src.set(t, v3)
	s, _ := startServer(t, Config{AllowTransfer: []ACL{{Prefix: netip.MustParsePrefix("127.0.0.0/8")}}, Catalog: "catalog.invalid."}, src)
	ps := s.StreamSource()

	serial, sent, rrs, _ := pushed(t, ps, origin, 1, false)
	if serial != 3 || !sent {
		t.Fatalf("from 1: serial %d, sent %v", serial, sent)
	}
	d12, a12, _ := zone.Diff(v1, v2)
	d23, a23, _ := zone.Diff(v2, v3)
	want := []dns.RR{v3.SOA()}
	for _, l := range [][]dns.RR{d12, a12, d23, a23} {
		want = append(want, l...)
	}
	want = append(want, v3.SOA())
	if diff := cmp.Diff(rrStrings(want), rrStrings(rrs)); diff != "" {
		t.Errorf("IXFR from 1 (-want +got):\n%s", diff)
	}

	if serial, sent, _, _ := pushed(t, ps, origin, 3, false); serial != 3 || sent {
		t.Errorf("from 3: serial %d, sent %v; want nothing sent", serial, sent)
	}
	serial, sent, rrs, msgs := pushed(t, ps, origin, 0, true)
	if serial != 3 || !sent || msgs < 2 {
		t.Fatalf("full: serial %d, sent %v, %d messages", serial, sent, msgs)
	}
	all, err := v3.RRs()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rrStrings(append(all, v3.SOA())), rrStrings(rrs)); diff != "" {
		t.Errorf("AXFR (-want +got):\n%s", diff)
	}
	src.trim(origin, 1) // 2→3 only
	if serial, sent, rrs, _ := pushed(t, ps, origin, 1, false); serial != 3 || !sent || len(rrs) != v3.Records+1 {
		t.Errorf("from 1 without the log: serial %d, sent %v, %d records; want the whole zone (%d + SOA)", serial, sent, len(rrs), v3.Records)
	}
	if _, _, err := ps.Transfer(context.Background(), "missing.example.", 0, true, func([]byte) error { return nil }); err == nil {
		t.Error("transfer of a missing zone: no error")
	}
}

// TestStreamSourceEvents: zone changes and new catalog versions reach the
// stream's subscribers, and Zones lists the catalog with the zones.
func TestStreamSourceEvents(t *testing.T) {
	src := newMemSource()
	src.set(t, makeZone(t, origin, 1, 1))
	s, _ := startServer(t, Config{AllowTransfer: []ACL{{Prefix: netip.MustParsePrefix("127.0.0.0/8")}}, Catalog: "catalog.invalid.",
		CatalogDelay: time.Millisecond}, src)
	ps := s.StreamSource()
	if ps.Catalog() != "catalog.invalid." {
		t.Errorf("catalog %q", ps.Catalog())
	}
	events, unsubscribe := ps.Subscribe()
	defer unsubscribe()
	src.set(t, makeZone(t, "other.example.", 5, 1))
	got := map[string]uint32{}
	deadline := time.After(10 * time.Second)
	for len(got) < 2 {
		select {
		case ev := <-events:
			got[ev.Zone] = ev.Serial
		case <-deadline:
			t.Fatalf("events %v; want other.example. and the catalog", got)
		}
	}
	zones, err := ps.Zones(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if zones["catalog.invalid."] != got["catalog.invalid."] || zones["other.example."] != 5 || zones[origin] != 1 || len(zones) != 3 {
		t.Errorf("zones %v, events %v", zones, got)
	}
}
