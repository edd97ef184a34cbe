package config

import (
	"github.com/jackc/pgx/v5"
	"go.yaml.in/yaml/v3"
)

// Store chooses the control plane's zone database (issue #17): the SQLite
// file in data_dir (the default, for one machine), or PostgreSQL, which
// several control-plane replicas may share.
type Store struct {
	// Postgres, when set, keeps the zones in PostgreSQL; nil = SQLite.
	Postgres *StorePostgres
}

// StorePostgres is the PostgreSQL database of the zones.
type StorePostgres struct {
	// DSN is the pgx connection string: "postgres://user:pass@host:5432/db"
	// or "host=... port=... user=... dbname=...". Every replica of the
	// control plane names the same database.
	DSN string
}

// storeField is the control plane's "store" section.
func (d *decoder) storeField(c *Control) field {
	return field{"store", func(n *yaml.Node, p string) {
		d.mapping(n, p, []field{
			{"postgres", func(n *yaml.Node, p string) {
				c.Store.Postgres = &StorePostgres{}
				d.mapping(n, p, []field{
					{"dsn", func(n *yaml.Node, p string) { d.str(n, p, &c.Store.Postgres.DSN) }},
				})
			}},
		})
	}}
}

// store validates the store section.
func (v *validator) store(s *Store) {
	if s.Postgres == nil {
		return
	}
	if s.Postgres.DSN == "" {
		v.add("store.postgres.dsn", "required: the connection string of the database")
		return
	}
	if _, err := pgx.ParseConfig(s.Postgres.DSN); err != nil {
		v.add("store.postgres.dsn", "not a PostgreSQL connection string: %v", err)
	}
}
