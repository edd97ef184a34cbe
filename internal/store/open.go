package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the database driver, registered as "sqlite"

	"github.com/anycastdns/anycastdns/internal/zone"
)

// schemaVersion is PRAGMA user_version of the schema below with every
// migration applied.
const schemaVersion = 2

// schema: zones, their RRsets (the records of one owner and type, in wire
// format), and each zone's change log. Deleting a zone deletes the rest
// through the foreign keys; AUTOINCREMENT keeps a re-created zone from
// reusing the id, and so the change log, of a deleted one.
const schema = `
CREATE TABLE zones (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	name    TEXT NOT NULL UNIQUE,
	serial  INTEGER NOT NULL,
	policy  TEXT NOT NULL,
	updated INTEGER NOT NULL -- unix nanoseconds
);
CREATE TABLE rrsets (
	zone_id INTEGER NOT NULL REFERENCES zones(id) ON DELETE CASCADE,
	name    TEXT NOT NULL,
	type    INTEGER NOT NULL,
	data    BLOB NOT NULL, -- the records, uncompressed wire format, one after another
	PRIMARY KEY (zone_id, name, type)
) WITHOUT ROWID;
CREATE TABLE changes (
	zone_id     INTEGER NOT NULL REFERENCES zones(id) ON DELETE CASCADE,
	seq         INTEGER NOT NULL,
	from_serial INTEGER NOT NULL,
	to_serial   INTEGER NOT NULL,
	del         BLOB NOT NULL,
	add_        BLOB NOT NULL,
	at          INTEGER NOT NULL, -- unix nanoseconds
	PRIMARY KEY (zone_id, seq)
) WITHOUT ROWID;
PRAGMA user_version = 1;
`

// migrations[v] brings the schema from version v to v+1, in one
// transaction with the version bump.
var migrations = map[int]string{
	// Version 2 (issue #16): the signing policy of each signed zone and its
	// keys, each sealed with the operator's key file (AES-256-GCM) so that
	// a copy of the database alone reveals no key.
	1: `
CREATE TABLE dnssec (
	zone_id     INTEGER PRIMARY KEY REFERENCES zones(id) ON DELETE CASCADE,
	policy_name TEXT NOT NULL,
	policy      BLOB NOT NULL -- sign.Policy as JSON
);
CREATE TABLE dnssec_keys (
	zone_id INTEGER NOT NULL REFERENCES zones(id) ON DELETE CASCADE,
	id      TEXT NOT NULL,
	sealed  BLOB NOT NULL, -- sign.Sealer.SealKey
	PRIMARY KEY (zone_id, id)
) WITHOUT ROWID;
PRAGMA user_version = 2;
`,
}

// Open opens (creating if needed) the database at path, whose directory must
// exist, and loads every zone into memory. A database it creates, and its
// -wal and -shm files, are mode 0600 whatever the umask.
func Open(ctx context.Context, path string, logger *slog.Logger, opts ...Option) (*Store, error) {
	start := time.Now()
	o := options{journalLimit: DefaultJournalLimit, maxRecords: DefaultMaxRecords, policy: SerialIncrement, now: time.Now}
	for _, f := range opts {
		f(&o)
	}
	if _, err := ParseSerialPolicy(string(o.policy)); err != nil {
		return nil, fmt.Errorf("open store %s: default %w", path, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open store %q: the path must be non-empty and must not contain '?' or '#'", path)
	}
	lock, err := lockFile(path + ".lock")
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := createPrivate(path, logger.With("component", "store")); err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// synchronous=FULL fsyncs the WAL on every commit; busy_timeout covers
	// checkpoints that briefly hold a lock readers need.
	dsn := path + "?_txlock=deferred&_busy_timeout=10000&_journal_mode=WAL&_synchronous=FULL&_foreign_keys=1"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// One writer at a time (the store serializes writes anyway) and a few
	// readers for Changes; WAL lets them run beside the writer.
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(0)
	s := &Store{
		db: db, path: path, log: logger.With("component", "store"), opt: o, lock: lock,
		wsem: make(chan struct{}, 1), zones: map[string]*zoneState{},
	}
	if err := s.init(ctx); err != nil {
		_ = db.Close()
		_ = lock.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	records := 0
	for _, st := range s.zones {
		records += st.info.Records
	}
	s.log.Info("store opened", "path", path, "zones", len(s.zones), "records", records,
		"duration", time.Since(start).Round(time.Millisecond))
	return s, nil
}

func (s *Store) init(ctx context.Context) error {
	// The durability settings are per connection; check that they took.
	var mode string
	var sync int
	if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if err := s.db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") || sync != 2 {
		return fmt.Errorf("database runs with journal_mode=%s synchronous=%d, want wal and 2 (FULL)", mode, sync)
	}
	var version int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	if version > schemaVersion {
		return fmt.Errorf("database schema version %d is newer than this program's (%d)", version, schemaVersion)
	}
	for version < schemaVersion {
		script, what := migrations[version], fmt.Sprintf("migrate schema from version %d", version)
		if version == 0 {
			script, what = schema, "create schema"
		}
		if err := s.exec(ctx, script); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if version > 0 {
			s.log.Info("database schema migrated", "from", version, "to", version+1)
		}
		version++
	}
	return s.loadAll(ctx)
}

// exec runs a script in one transaction.
func (s *Store) exec(ctx context.Context, script string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, script); err != nil {
		return err
	}
	return tx.Commit()
}

// loadAll reads every zone and builds it. A stored zone that fails to build
// fails the whole open: every version was validated when it was written, so
// the database is damaged or comes from an incompatible program, and serving
// less than the truth would make the nodes delete zones.
func (s *Store) loadAll(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	return s.loadAllIn(ctx, tx)
}

func (s *Store) loadAllIn(ctx context.Context, tx *sql.Tx) error {
	states, err := s.loadStates(ctx, tx)
	if err != nil {
		return err
	}
	for name, st := range states {
		s.zones[name] = st
	}
	return nil
}

// loadStates reads and builds every zone of tx, with its signing.
func (s *Store) loadStates(ctx context.Context, tx *sql.Tx) (map[string]*zoneState, error) {
	rows, err := tx.QueryContext(ctx, `SELECT z.id, z.name, z.serial, z.policy, z.updated,
		COALESCE((SELECT MAX(seq) FROM changes c WHERE c.zone_id = z.id), 0) FROM zones z`)
	if err != nil {
		return nil, err
	}
	var states []*zoneState
	serials := map[int64]int64{}
	for rows.Next() {
		st := &zoneState{}
		var serial int64
		var updated int64
		if err := rows.Scan(&st.id, &st.info.Name, &serial, &st.info.SerialPolicy, &updated, &st.lastSeq); err != nil {
			_ = rows.Close() // the Scan error is the one to report
			return nil, err
		}
		st.info.Updated = time.Unix(0, updated).UTC()
		serials[st.id] = serial
		states = append(states, st)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, err
	}
	out := make(map[string]*zoneState, len(states))
	for _, st := range states {
		if err := s.loadZone(ctx, tx, st); err != nil {
			return nil, fmt.Errorf("load zone %s: %w", st.info.Name, err)
		}
		if int64(st.info.Serial) != serials[st.id] {
			return nil, fmt.Errorf("load zone %s: stored serial %d differs from the SOA's %d", st.info.Name, serials[st.id], st.info.Serial)
		}
		out[st.info.Name] = st
	}
	if err := s.loadSigning(ctx, tx, states, 0); err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Store) loadZone(ctx context.Context, tx *sql.Tx, st *zoneState) error {
	rows, err := tx.QueryContext(ctx, "SELECT name, type, data FROM rrsets WHERE zone_id = ?", st.id)
	if err != nil {
		return err
	}
	defer func() { _ = rows.Close() }() // read-only; rows.Err has the errors
	var recs []zone.Record
	for rows.Next() {
		var k setKey
		var data []byte
		if err := rows.Scan(&k.name, &k.typ, &data); err != nil {
			return err
		}
		rrs, err := decodeRRs(data)
		if err != nil {
			return fmt.Errorf("rrset %s %s: %w", k.name, typeString(k.typ), err)
		}
		for _, rr := range rrs {
			recs = append(recs, zone.Record{RR: rr, File: inZone})
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	z, err := zone.Build(st.info.Name, recs)
	if err != nil {
		return err
	}
	z.Prepare() // the canonical order the first write needs, built now
	z.Source = "store"
	st.z = z
	st.info.Serial = z.Serial
	st.info.Records = z.Records
	return nil
}
