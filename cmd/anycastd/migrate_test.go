package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/testkit/pgtest"
)

// TestControlMigrateArgs: mistakes on the command line exit 2 with a
// message naming the flag.
func TestControlMigrateArgs(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no flags", nil, "-from must be sqlite:PATH"},
		{"from not sqlite", []string{"-from", "/var/lib/zones.db", "-to", "postgres:host=/tmp"}, `-from must be sqlite:PATH, got "/var/lib/zones.db"`},
		{"to not postgres", []string{"-from", "sqlite:/x.db", "-to", "mysql:x"}, `-to must be postgres:DSN, got "mysql:x"`},
		{"extra argument", []string{"-from", "sqlite:/x.db", "-to", "postgres:x", "more"}, `unexpected argument "more"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(append([]string{"control", "migrate"}, tc.args...), &stderr)
			if exitCode(err) != 2 || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q, want 2 and %q", exitCode(err), stderr.String(), tc.want)
			}
		})
	}
}

// TestControlMigrate moves a control plane's SQLite database to
// PostgreSQL with the command, and the zone is there with its serial.
func TestControlMigrate(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "zones.db")
	s, err := store.Open(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var recs []dns.RR
	for _, l := range []string{
		"example.com. 3600 IN SOA ns1.example.com. h.example.com. 41 7200 3600 1209600 300",
		"example.com. 3600 IN NS ns1.example.com.",
		"ns1.example.com. 3600 IN A 192.0.2.1",
	} {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rr)
	}
	if _, err := s.CreateZone(ctx, "example.com.", recs, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	dsn := pgtest.Start(t).NewDatabase(t)
	var stdout, stderr bytes.Buffer
	if err := runControlMigrate([]string{"-from", "sqlite:" + path, "-to", "postgres:" + dsn}, &stdout, &stderr); err != nil {
		t.Fatalf("%v: %s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "migrated 1 zones") {
		t.Errorf("stdout %q", stdout.String())
	}
	pg, err := store.OpenPostgres(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	if zones, _ := pg.ListZones(ctx); len(zones) != 1 || zones[0].Serial != 41 {
		t.Fatalf("zones on PostgreSQL after migrate: %+v", zones)
	}
}
