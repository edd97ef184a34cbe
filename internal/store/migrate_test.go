package store_test

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/sign"
	"github.com/anycastdns/anycastdns/internal/sign/signtest"
	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/testkit/pgtest"
)

// TestMigrateToPostgres: Migrate copies a SQLite database into PostgreSQL:
// the zones as they were (content, serial, policy), their change logs (a
// node's IXFR goes on across the move), the signing keys still sealed;
// the copy takes writes from the next serial and new zones; a second
// migration into the same database and one from a database in use are
// refused.
func TestMigrateToPostgres(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	path := filepath.Join(dir, "zones.db")
	sl, _ := sealer(t)
	src, err := store.Open(ctx, path, nil, store.WithSealer(sl))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.CreateZone(ctx, "example.com.", baseZone(t), store.SerialIncrement); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "c"} {
		owner := name + ".example.com."
		if _, err := src.SetRRset(ctx, "example.com.", owner, dns.TypeTXT, rrs(t, owner+` 60 IN TXT "`+name+`"`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := src.CreateZone(ctx, "signed.example.", rrs(t,
		"signed.example. 3600 IN SOA ns1.signed.example. h.signed.example. 7 7200 3600 1209600 300",
		"signed.example. 3600 IN NS ns1.signed.example.",
		"ns1.signed.example. 3600 IN A 192.0.2.1"), store.SerialDate); err != nil {
		t.Fatal(err)
	}
	if _, err := src.EnableSigning(ctx, "signed.example.", "default", sign.DefaultPolicy()); err != nil {
		t.Fatal(err)
	}
	dsn := pgtest.Shared(t).NewDatabase(t)
	if _, err := store.Migrate(ctx, path, dsn, nil); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("migrate a database in use: %v", err)
	}
	wantZones, _ := src.ListZones(ctx)
	type snapshot struct {
		text    string
		changes []store.Change
	}
	want := map[string]snapshot{}
	for _, zi := range wantZones {
		z, _ := src.Zone(ctx, zi.Name)
		ch, err := src.Changes(ctx, zi.Name, 100)
		if zi.Name != "example.com." {
			ch, err = nil, nil
		}
		if err != nil {
			t.Fatal(err)
		}
		want[zi.Name] = snapshot{text(t, z), ch}
	}
	wantSigning, err := src.Signing(ctx, "signed.example.")
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}

	st, err := store.Migrate(ctx, path, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Zones != 2 || st.Changes < 3 || st.Signed != 1 || st.Keys < 1 {
		t.Errorf("stats %+v", st)
	}
	if _, err := store.Migrate(ctx, path, dsn, nil); err == nil || !strings.Contains(err.Error(), "already holds 2 zones") {
		t.Errorf("second migration into the same database: %v", err)
	}
	dst, err := store.OpenPostgres(context.Background(), dsn, nil, store.WithSealer(sl))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	gotZones, _ := dst.ListZones(ctx)
	if len(gotZones) != len(wantZones) {
		t.Fatalf("zones %v, want %v", gotZones, wantZones)
	}
	for i, zi := range gotZones {
		if zi != wantZones[i] {
			t.Errorf("zone %+v, want %+v", zi, wantZones[i])
		}
		z, _ := dst.Zone(ctx, zi.Name)
		if text(t, z) != want[zi.Name].text {
			t.Errorf("zone %s differs after the migration", zi.Name)
		}
	}
	ch, err := dst.Changes(ctx, "example.com.", 100)
	if err != nil || len(ch) != 3 || len(ch) != len(want["example.com."].changes) || ch[2].To != want["example.com."].changes[2].To {
		t.Errorf("change log after the migration: %d entries (%v), want %d", len(ch), err, len(want["example.com."].changes))
	}
	gotSigning, err := dst.Signing(ctx, "signed.example.")
	if err != nil || !reflect.DeepEqual(gotSigning.Keys, wantSigning.Keys) {
		t.Errorf("signing after the migration: %+v %v, want %+v", gotSigning, err, wantSigning)
	}
	serial, err := dst.SetRRset(ctx, "example.com.", "d.example.com.", dns.TypeTXT, rrs(t, `d.example.com. 60 IN TXT "d"`))
	if err != nil || serial != wantZones[0].Serial+1 {
		t.Errorf("write after the migration: serial %d %v, want %d", serial, err, wantZones[0].Serial+1)
	}
	if _, err := dst.SetRRset(ctx, "signed.example.", "x.signed.example.", dns.TypeA, rrs(t, "x.signed.example. 60 IN A 192.0.2.9")); err != nil {
		t.Fatal(err)
	}
	z, _ := dst.Zone(ctx, "signed.example.")
	signtest.Verify(t, z)
	if _, err := dst.CreateZone(ctx, "new.example.", rrs(t,
		"new.example. 3600 IN SOA ns1.new.example. h.new.example. 1 7200 3600 1209600 300",
		"new.example. 3600 IN NS ns1.new.example."), ""); err != nil {
		t.Fatalf("create a zone after the migration: %v", err)
	}
}
