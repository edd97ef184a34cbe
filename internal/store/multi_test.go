package store_test

import (
	"errors"
	"testing"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// TestUpdateRRsets: several RRsets change in one version — one serial
// step, one change-log entry holding every difference — that survives a
// reopen; a failure in any RRset changes nothing.
func TestUpdateRRsets(t *testing.T) {
	ctx := t.Context()
	s, dir := newStore(t)
	if _, err := s.CreateZone(ctx, "example.com.", baseZone(t), ""); err != nil {
		t.Fatal(err)
	}
	write := func(ws ...store.RRsetWrite) func(*zone.Zone) ([]store.RRsetWrite, error) {
		return func(*zone.Zone) ([]store.RRsetWrite, error) { return ws, nil }
	}
	serial, err := s.UpdateRRsets(ctx, "example.com.", write(
		store.RRsetWrite{Name: "_acme-challenge.example.com.", Type: dns.TypeTXT, RRs: rrs(t, `_acme-challenge.example.com. 60 IN TXT "a"`, `_acme-challenge.example.com. 60 IN TXT "b"`)},
		store.RRsetWrite{Name: "WWW.example.com.", Type: dns.TypeA},
		store.RRsetWrite{Name: "mail.example.com.", Type: dns.TypeA, RRs: rrs(t, "mail.example.com. 300 IN A 192.0.2.25")},
	))
	if err != nil {
		t.Fatal(err)
	}
	if serial != 101 {
		t.Errorf("serial %d, want 101 (one step for the whole update)", serial)
	}
	changes, err := s.Changes(ctx, "example.com.", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 1 || len(changes[0].Del) != 2 || len(changes[0].Add) != 4 {
		t.Fatalf("changes %v, want one with SOA+www deleted, SOA+2 TXT+mail added", changes)
	}

	// Nothing changes: the serial stays.
	same, err := s.UpdateRRsets(ctx, "example.com.", write(store.RRsetWrite{Name: "mail.example.com.", Type: dns.TypeA, RRs: rrs(t, "mail.example.com. 300 IN A 192.0.2.25")}))
	if err != nil || same != serial {
		t.Errorf("no-op update: serial %d, %v; want %d", same, err, serial)
	}

	// The second RRset is invalid (CNAME beside other data): the first
	// is not written either.
	_, err = s.UpdateRRsets(ctx, "example.com.", write(
		store.RRsetWrite{Name: "new.example.com.", Type: dns.TypeA, RRs: rrs(t, "new.example.com. 60 IN A 192.0.2.7")},
		store.RRsetWrite{Name: "mail.example.com.", Type: dns.TypeCNAME, RRs: rrs(t, "mail.example.com. 60 IN CNAME www.example.com.")},
	))
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("CNAME beside A: %v, want ErrInvalid", err)
	}
	if rr, _ := s.RRset(ctx, "example.com.", "new.example.com.", dns.TypeA); len(rr) != 0 {
		t.Errorf("a failed update wrote %v", rr)
	}
	_, err = s.UpdateRRsets(ctx, "example.com.", write(
		store.RRsetWrite{Name: "x.example.com.", Type: dns.TypeA, RRs: rrs(t, "x.example.com. 60 IN A 192.0.2.7")},
		store.RRsetWrite{Name: "x.example.com.", Type: dns.TypeA},
	))
	if !errors.Is(err, store.ErrInvalid) {
		t.Errorf("an RRset written twice: %v, want ErrInvalid", err)
	}
	fnErr := errors.New("prerequisite failed")
	if _, err := s.UpdateRRsets(ctx, "example.com.", func(*zone.Zone) ([]store.RRsetWrite, error) { return nil, fnErr }); !errors.Is(err, fnErr) {
		t.Errorf("fn's error: %v", err)
	}
	if _, err := s.UpdateRRsets(ctx, "nope.example.", write()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown zone: %v, want ErrNotFound", err)
	}

	// An SOA with a newer serial is taken as it is.
	serial, err = s.UpdateRRsets(ctx, "example.com.", write(store.RRsetWrite{Name: "example.com.", Type: dns.TypeSOA,
		RRs: rrs(t, "example.com. 3600 IN SOA ns1.example.com. hostmaster.example.com. 500 7200 3600 1209600 300")}))
	if err != nil || serial != 500 {
		t.Errorf("SOA with serial 500: %d, %v", serial, err)
	}

	z, _ := s.Zone(ctx, "example.com.")
	want := text(t, z)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, dir)
	defer func() { _ = s2.Close() }()
	z2, err := s2.Zone(ctx, "example.com.")
	if err != nil {
		t.Fatal(err)
	}
	if got := text(t, z2); got != want {
		t.Errorf("after reopen:\n%s\nwant\n%s", got, want)
	}
}
