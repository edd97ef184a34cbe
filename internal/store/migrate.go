package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"
)

// MigrateStats counts the rows Migrate copied.
type MigrateStats struct {
	Zones, RRsets, Changes, Signed, Keys int
}

// copiedTables are the tables of the schema, parents first, with their
// columns as both backends name them.
var copiedTables = []struct {
	name string
	cols []string
}{
	{"zones", []string{"id", "name", "serial", "policy", "updated"}},
	{"rrsets", []string{"zone_id", "name", "type", "data"}},
	{"changes", []string{"zone_id", "seq", "from_serial", "to_serial", "del", "add_", "at"}},
	{"dnssec", []string{"zone_id", "policy_name", "policy"}},
	{"dnssec_keys", []string{"zone_id", "id", "sealed"}},
}

// Migrate copies the SQLite database at sqlitePath into the PostgreSQL
// database dsn, which must hold no zone: every zone with its content,
// serial, policy and change log (so the nodes go on with IXFR), and the
// signing policies and keys still sealed (the same signing.key_file opens
// them). The SQLite database is locked against a running control plane
// and only read; the copy is one transaction, whose row counts are checked
// against the source before it commits.
func Migrate(ctx context.Context, sqlitePath, dsn string, logger *slog.Logger) (MigrateStats, error) {
	var st MigrateStats
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if _, err := os.Stat(sqlitePath); err != nil {
		return st, fmt.Errorf("migrate from %s: %w", sqlitePath, err)
	}
	lock, err := lockFile(sqlitePath + ".lock")
	if err != nil {
		return st, fmt.Errorf("migrate from %s: %w (stop the control plane first)", sqlitePath, err)
	}
	defer func() { _ = lock.Close() }() // released on exit anyway
	src, err := sql.Open("sqlite", sqlitePath+"?mode=ro&_txlock=deferred&_busy_timeout=10000")
	if err != nil {
		return st, fmt.Errorf("migrate from %s: %w", sqlitePath, err)
	}
	defer func() { _ = src.Close() }() // read-only
	var version int
	if err := src.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return st, fmt.Errorf("migrate from %s: read its schema version: %w", sqlitePath, err)
	}
	if version != schemaVersion {
		return st, fmt.Errorf("migrate from %s: schema version %d, this program's is %d: open it with this program's control plane once first, then migrate",
			sqlitePath, version, schemaVersion)
	}

	if _, err := pgx.ParseConfig(dsn); err != nil {
		return st, fmt.Errorf("migrate to postgres: connection string: %w", err)
	}
	registerPGDriver()
	db, err := sql.Open(pgDriverName, dsn)
	if err != nil {
		return st, fmt.Errorf("migrate to postgres: %w", err)
	}
	defer func() { _ = db.Close() }() // the transaction's commit is what counts
	// The destination's schema, created or migrated as a replica would.
	if err := migrateSchemaPG(ctx, db, logger); err != nil {
		return st, fmt.Errorf("migrate to postgres %s: %w", describeDSN(dsn), err)
	}
	rtx, err := src.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return st, fmt.Errorf("migrate from %s: %w", sqlitePath, err)
	}
	defer func() { _ = rtx.Rollback() }() // read-only
	wtx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return st, fmt.Errorf("migrate to postgres: %w", err)
	}
	defer func() { _ = wtx.Rollback() }() // committed below when the copy is whole
	if _, err := wtx.ExecContext(ctx, "SELECT pg_advisory_xact_lock(?)", int64(migrationLock)); err != nil {
		return st, fmt.Errorf("migrate to postgres: lock the schema: %w", err)
	}
	var n int
	if err := wtx.QueryRowContext(ctx, "SELECT COUNT(*) FROM zones").Scan(&n); err != nil {
		return st, fmt.Errorf("migrate to postgres: %w", err)
	}
	if n > 0 {
		return st, fmt.Errorf("migrate to postgres %s: the database already holds %d zones; migrate into an empty one", describeDSN(dsn), n)
	}
	counts := map[string]*int{"zones": &st.Zones, "rrsets": &st.RRsets, "changes": &st.Changes, "dnssec": &st.Signed, "dnssec_keys": &st.Keys}
	for _, t := range copiedTables {
		copied, err := copyTable(ctx, rtx, wtx, t.name, t.cols)
		if err != nil {
			return st, fmt.Errorf("migrate table %s: %w", t.name, err)
		}
		var want, got int
		if err := rtx.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+t.name).Scan(&want); err != nil { //nolint:gosec // a table name of the schema
			return st, fmt.Errorf("migrate table %s: count the source: %w", t.name, err)
		}
		if err := wtx.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+t.name).Scan(&got); err != nil { //nolint:gosec // a table name of the schema
			return st, fmt.Errorf("migrate table %s: count the copy: %w", t.name, err)
		}
		if want != copied || got != copied {
			return st, fmt.Errorf("migrate table %s: %d rows in the source, %d copied, %d in the destination", t.name, want, copied, got)
		}
		*counts[t.name] = copied
	}
	// New zones take ids after the copied ones.
	if _, err := wtx.ExecContext(ctx, "SELECT setval(pg_get_serial_sequence('zones', 'id'), COALESCE((SELECT MAX(id) FROM zones), 0) + 1, false)"); err != nil {
		return st, fmt.Errorf("migrate to postgres: advance the zone ids: %w", err)
	}
	if err := wtx.Commit(); err != nil {
		return st, fmt.Errorf("migrate to postgres: commit: %w", err)
	}
	logger.Info("store migrated", "from", sqlitePath, "to", describeDSN(dsn), "zones", st.Zones, "rrsets", st.RRsets,
		"changes", st.Changes, "signed", st.Signed, "keys", st.Keys)
	return st, nil
}

// copyTable copies every row of a table between the backends.
func copyTable(ctx context.Context, from, to *sql.Tx, table string, cols []string) (int, error) {
	list := strings.Join(cols, ", ")
	rows, err := from.QueryContext(ctx, "SELECT "+list+" FROM "+table) //nolint:gosec // names of the schema
	if err != nil {
		return 0, err
	}
	defer func() { _ = rows.Close() }() // read-only; rows.Err has the errors
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ")
	ins, err := to.PrepareContext(ctx, "INSERT INTO "+table+" ("+list+") VALUES ("+marks+")") //nolint:gosec // names of the schema
	if err != nil {
		return 0, err
	}
	defer func() { _ = ins.Close() }() // the transaction's outcome is what counts
	n := 0
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		if _, err := ins.ExecContext(ctx, vals...); err != nil {
			return n, fmt.Errorf("row %d: %w", n+1, err)
		}
		n++
	}
	return n, errors.Join(rows.Err())
}
