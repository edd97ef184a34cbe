package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/sign"
	"github.com/anycastdns/anycastdns/internal/sign/signtest"
	"github.com/anycastdns/anycastdns/internal/store"
)

// TestBackupRestore: a backup of a store with a signed and an unsigned
// zone, restored into an empty store with the same key file, serves the
// same zones with the same serials, policies and keys (the signed zone
// still verifies), keeps them across a reopen, and takes writes; the
// backup holds no key in the clear; a non-empty store, a truncated file
// and another key file are refused and leave the store as it was.
func TestBackupRestore(t *testing.T) {
	ctx := t.Context()
	sl, kf := sealer(t)
	src, _ := newStore(t, store.WithSealer(sl), store.WithClock(time.Now))
	if _, err := src.CreateZone(ctx, "example.com.", signedBase(t), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := src.EnableSigning(ctx, "example.com.", "default", sign.DefaultPolicy()); err != nil {
		t.Fatal(err)
	}
	org := rrs(t,
		"example.org. 3600 IN SOA ns1.example.org. hostmaster.example.org. 2026010100 7200 3600 1209600 300",
		"example.org. 3600 IN NS ns1.example.org.",
		"ns1.example.org. 3600 IN A 192.0.2.1",
	)
	if _, err := src.CreateZone(ctx, "example.org.", org, "date"); err != nil {
		t.Fatal(err)
	}
	if _, err := src.SetRRset(ctx, "example.org.", "www.example.org.", dns.TypeAAAA, rrs(t, "www.example.org. 60 IN AAAA 2001:db8::1")); err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	bst, err := src.Backup(ctx, &file)
	if err != nil {
		t.Fatal(err)
	}
	if bst.Zones != 2 || bst.Signed != 1 || bst.Keys != 1 || bst.RRsets == 0 {
		t.Fatalf("backup stats %+v", bst)
	}
	if !strings.HasPrefix(file.String(), `{"format":"anycastdns-backup","version":1,`) {
		t.Errorf("backup does not start with its header: %.80q", file.String())
	}
	if s := file.String(); strings.Contains(s, "PRIVATE") || strings.Contains(s, "private_pkcs8") {
		t.Errorf("the backup holds a key in the clear")
	}

	// Refusals leave the store empty.
	lines := strings.SplitAfter(strings.TrimSuffix(file.String(), "\n"), "\n")
	truncated := strings.Join(lines[:len(lines)-1], "")
	other, _ := sealer(t)
	for name, tc := range map[string]struct {
		in   string
		opt  store.Option
		want error
	}{
		"truncated":     {truncated, store.WithSealer(sl), store.ErrInvalid},
		"other key":     {file.String(), store.WithSealer(other), sign.ErrWrongKeyFile},
		"no key file":   {file.String(), store.WithClock(time.Now), store.ErrNoKeyFile},
		"not a backup":  {`{"format":"something","version":1}` + "\n", store.WithSealer(sl), store.ErrInvalid},
		"newer version": {`{"format":"anycastdns-backup","version":2}` + "\n", store.WithSealer(sl), store.ErrInvalid},
		"rrset key":     {strings.Replace(file.String(), `"name":"www.example.org."`, `"name":"vvv.example.org."`, 1), store.WithSealer(sl), store.ErrInvalid},
		"zone name":     {strings.Replace(file.String(), `"name":"example.org."`, `"name":"Example.org."`, 1), store.WithSealer(sl), store.ErrInvalid},
		"counts differ": {strings.Replace(file.String(), `"end":{"zones":2`, `"end":{"zones":3`, 1), store.WithSealer(sl), store.ErrInvalid},
	} {
		t.Run(name, func(t *testing.T) {
			dst, _ := newStore(t, tc.opt, store.WithClock(time.Now))
			if _, err := dst.Restore(ctx, strings.NewReader(tc.in)); !errors.Is(err, tc.want) {
				t.Fatalf("restore: %v, want %v", err, tc.want)
			}
			if zs, _ := dst.ListZones(ctx); len(zs) != 0 {
				t.Fatalf("a refused restore left zones %+v", zs)
			}
		})
	}

	same, err := sign.NewSealer(kf)
	if err != nil {
		t.Fatal(err)
	}
	dst, dir := newStore(t, store.WithSealer(same), store.WithClock(time.Now))
	events, stop := dst.Subscribe()
	defer stop()
	var replica *store.Store // on PostgreSQL, a second replica of dst's database
	if onPostgres(t) {
		replica = open(t, dir, store.WithSealer(same), store.WithClock(time.Now))
		defer replica.Close()
	}
	rst, err := dst.Restore(ctx, bytes.NewReader(file.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if rst != bst {
		t.Errorf("restored %+v, backed up %+v", rst, bst)
	}
	check := func(s *store.Store) {
		t.Helper()
		want, _ := src.ListZones(ctx)
		got, _ := s.ListZones(ctx)
		if len(got) != len(want) {
			t.Fatalf("zones %+v, want %+v", got, want)
		}
		for i := range want {
			w, g := want[i], got[i]
			if g.Name != w.Name || g.Serial != w.Serial || g.Records != w.Records || g.SerialPolicy != w.SerialPolicy || !g.Updated.Equal(w.Updated) {
				t.Errorf("zone %d: %+v, want %+v", i, g, w)
			}
			wz, _ := src.Zone(ctx, w.Name)
			gz, _ := s.Zone(ctx, w.Name)
			if text(t, gz) != text(t, wz) {
				t.Errorf("zone %s differs:\n%s\nwant\n%s", w.Name, text(t, gz), text(t, wz))
			}
		}
		z, _ := s.Zone(ctx, "example.com.")
		if !z.Signed {
			t.Fatal("example.com. is not signed after the restore")
		}
		signtest.Verify(t, z)
		ws, _ := src.Signing(ctx, "example.com.")
		gs, err := s.Signing(ctx, "example.com.")
		if err != nil || !gs.Enabled || len(gs.Keys) != 1 || gs.Keys[0].ID != ws.Keys[0].ID || gs.Policy != ws.Policy {
			t.Errorf("signing after restore %+v (%v), want %+v", gs, err, ws)
		}
	}
	check(dst)
	if replica != nil {
		// The other replica learns of the restore (LISTEN/NOTIFY).
		deadline := time.Now().Add(10 * time.Second)
		for zs, _ := replica.ListZones(ctx); len(zs) < 2; zs, _ = replica.ListZones(ctx) {
			if time.Now().After(deadline) {
				t.Fatalf("the other replica holds %+v after the restore", zs)
			}
			time.Sleep(20 * time.Millisecond)
		}
		check(replica)
	}
	seen := map[string]bool{}
	for range 2 {
		select {
		case ev := <-events:
			seen[ev.Zone] = ev.Created
		case <-time.After(5 * time.Second):
			t.Fatalf("events after the restore: %v", seen)
		}
	}
	if !seen["example.com."] || !seen["example.org."] {
		t.Errorf("events after the restore: %v", seen)
	}
	if _, err := dst.Restore(ctx, bytes.NewReader(file.Bytes())); !errors.Is(err, store.ErrNotEmpty) {
		t.Errorf("restore into a non-empty store: %v, want ErrNotEmpty", err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	re := open(t, dir, store.WithSealer(same), store.WithClock(time.Now))
	defer re.Close()
	check(re)
	before, _ := re.Zone(ctx, "example.org.")
	serial, err := re.SetRRset(ctx, "example.org.", "x.example.org.", dns.TypeA, rrs(t, "x.example.org. 60 IN A 192.0.2.7"))
	if err != nil || serial == before.Serial {
		t.Fatalf("write after the restore: serial %d (was %d), %v", serial, before.Serial, err)
	}
	if _, err := re.SetRRset(ctx, "example.com.", "x.example.com.", dns.TypeA, rrs(t, "x.example.com. 60 IN A 192.0.2.7")); err != nil {
		t.Fatalf("write to the signed zone after the restore: %v", err)
	}
	z, _ := re.Zone(ctx, "example.com.")
	signtest.Verify(t, z)
}

// TestBackupDuringWrites: backups taken while a writer changes a zone are
// each one state of the store: each restores (the stored serial of the
// zone, read first, matches the SOA of its RRsets, read after those of
// the other zones) with a serial the writer reached.
func TestBackupDuringWrites(t *testing.T) {
	ctx := t.Context()
	src, _ := newStore(t)
	zoneOf := func(i int) (string, []dns.RR) {
		n := fmt.Sprintf("z%02d.example.", i)
		return n, rrs(t,
			n+" 3600 IN SOA ns1."+n+" hostmaster."+n+" 100 7200 3600 1209600 300",
			n+" 3600 IN NS ns1."+n,
			"ns1."+n+" 3600 IN A 192.0.2.1",
		)
	}
	const zones = 30
	for i := range zones {
		n, recs := zoneOf(i)
		if _, err := src.CreateZone(ctx, n, recs, ""); err != nil {
			t.Fatal(err)
		}
	}
	last, _ := zoneOf(zones - 1) // read last by a backup
	done := make(chan error, 1)
	stopWrites := make(chan struct{})
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stopWrites:
				done <- nil
				return
			default:
			}
			name := fmt.Sprintf("h%d.%s", i%50, last)
			if _, err := src.SetRRset(ctx, last, name, dns.TypeA, rrs(t, fmt.Sprintf("%s 60 IN A 192.0.2.%d", name, i%250+1))); err != nil {
				done <- err
				return
			}
		}
	}()
	var files []string
	for range 20 {
		var b bytes.Buffer
		if _, err := src.Backup(ctx, &b); err != nil {
			t.Fatal(err)
		}
		files = append(files, b.String())
	}
	close(stopWrites)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	final, _ := src.Zone(ctx, last)
	for i, f := range files {
		dst, _ := newStore(t)
		if _, err := dst.Restore(ctx, strings.NewReader(f)); err != nil {
			t.Fatalf("backup %d: %v", i, err)
		}
		z, err := dst.Zone(ctx, last)
		if err != nil || z.Serial < 100 || z.Serial > final.Serial {
			t.Fatalf("backup %d: serial %d (%v), the writer went from 100 to %d", i, z.Serial, err, final.Serial)
		}
	}
}
