package config_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/anycastdns/anycastdns/internal/config"
)

// TestControlStore: the store section chooses PostgreSQL; without it the
// store is SQLite; a bad one is an error at its path and line.
func TestControlStore(t *testing.T) {
	const base = "data_dir: /var/lib/anycastd\napi:\n  tokens: [0123456789abcdef]\n"
	tests := []struct {
		name    string
		doc     string
		wantDSN string // "" = SQLite
		wantErr string
	}{
		{"default sqlite", base, "", ""},
		{"postgres url", base + "store:\n  postgres:\n    dsn: postgres://anycast@db.example:5432/zones\n", "postgres://anycast@db.example:5432/zones", ""},
		{"postgres keywords", base + "store:\n  postgres:\n    dsn: host=/run/postgresql dbname=zones\n", "host=/run/postgresql dbname=zones", ""},
		{"no dsn", base + "store:\n  postgres: {}\n", "", "store.postgres.dsn: required"},
		{"bad dsn", base + "store:\n  postgres:\n    dsn: \"postgres://a:b@[::1\"\n", "", "store.postgres.dsn: not a PostgreSQL connection string"},
		{"unknown backend", base + "store:\n  mysql:\n    dsn: x\n", "", "5:3: store.mysql: unknown key (allowed: postgres)"},
		{"unknown field", base + "store:\n  postgres:\n    url: x\n", "", "6:5: store.postgres.url: unknown key (allowed: dsn)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.ParseControl([]byte(tt.doc), filepath.Join(t.TempDir(), "control.yaml"))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.wantDSN == "" && c.Store.Postgres != nil:
				t.Fatalf("store %+v, want SQLite", *c.Store.Postgres)
			case tt.wantDSN != "" && (c.Store.Postgres == nil || c.Store.Postgres.DSN != tt.wantDSN):
				t.Fatalf("store %+v, want postgres %q", c.Store, tt.wantDSN)
			}
		})
	}
}
