package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/sign"
)

// TestMigrateFromVersion1: a database of schema version 1 (before signing)
// opens with its zones, gains the signing tables, and a zone of it can be
// signed.
func TestMigrateFromVersion1(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "zones.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "INSERT INTO zones (name, serial, policy, updated) VALUES ('example.com.', 1, 'increment', 0)"); err != nil {
		t.Fatal(err)
	}
	soa, _ := dns.NewRR("example.com. 3600 IN SOA ns1.example.com. h.example.com. 1 7200 3600 1209600 300")
	ns, _ := dns.NewRR("example.com. 3600 IN NS ns1.example.com.")
	a, _ := dns.NewRR("ns1.example.com. 3600 IN A 192.0.2.1")
	for _, rr := range []dns.RR{soa, ns, a} {
		data, err := encodeRRs([]dns.RR{rr})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO rrsets (zone_id, name, type, data) VALUES (1, ?, ?, ?)", rr.Header().Name, rr.Header().Rrtype, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	sl, err := sign.NewSealer(sign.GenerateKeyFile())
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, path, nil, WithSealer(sl))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var version int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil || version != schemaVersion {
		t.Fatalf("user_version %d (%v), want %d", version, err, schemaVersion)
	}
	if _, err := s.EnableSigning(ctx, "example.com.", "default", sign.DefaultPolicy()); err != nil {
		t.Fatalf("sign a zone of a migrated database: %v", err)
	}
}
