package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Backup and restore (issue #17): one file holds what the database holds,
// read in one snapshot, on either backend: every zone's content (its
// RRsets in wire format, as stored), serial and serial policy, and the
// signing policy and keys of the zones the store signs, the keys still
// sealed with the operator's key file (a backup reveals no key, and a
// restore needs the same signing.key_file). The change logs are left out:
// after a restore the nodes already hold each zone at its serial, and the
// next change starts a new log.
//
// The file is JSON values one after another, one a line: a header
// {"format":"anycastdns-backup","version":1,...}, one {"zone":{...}} per
// zone, and a trailer {"end":{counts}} that a restore checks, so that a
// truncated file is refused.

// BackupFormat and BackupVersion name the format of a backup file.
const (
	BackupFormat  = "anycastdns-backup"
	BackupVersion = 1
)

// BackupStats counts what a backup holds.
type BackupStats struct {
	Zones  int `json:"zones"`
	RRsets int `json:"rrsets"`
	Signed int `json:"signed"`
	Keys   int `json:"keys"`
}

type backupHeader struct {
	Format  string    `json:"format"`
	Version int       `json:"version"`
	Created time.Time `json:"created"`
	Backend string    `json:"backend"`
}

type backupZone struct {
	Name         string         `json:"name"`
	Serial       uint32         `json:"serial"`
	SerialPolicy string         `json:"serial_policy"`
	Updated      time.Time      `json:"updated"`
	RRsets       []backupRRset  `json:"rrsets"`
	Signing      *backupSigning `json:"signing,omitempty"`
}

type backupRRset struct {
	Name string `json:"name"`
	Type uint16 `json:"type"`
	Data []byte `json:"data"` // the records, wire format (base64 in JSON)
}

type backupSigning struct {
	PolicyName string          `json:"policy_name"`
	Policy     json.RawMessage `json:"policy"` // sign.Policy as stored
	Keys       []backupKey     `json:"keys"`
}

type backupKey struct {
	ID     string `json:"id"`
	Sealed []byte `json:"sealed"` // sign.Sealer.SealKey
}

// backupLine is one line of the file: exactly one field is set.
type backupLine struct {
	Zone *backupZone  `json:"zone,omitempty"`
	End  *BackupStats `json:"end,omitempty"`
}

func (s *Store) backend() string {
	if s.pg != nil {
		return "postgres"
	}
	return "sqlite"
}

// Backup writes every zone to w, read from the database in one read-only
// transaction (a snapshot: on PostgreSQL REPEATABLE READ, on SQLite one
// WAL read), so that the file is one consistent state of the store even
// while writes go on.
func (s *Store) Backup(ctx context.Context, w io.Writer) (BackupStats, error) {
	var st BackupStats
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return st, ErrClosed
	}
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return st, fmt.Errorf("backup: begin the read: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // read-only
	enc := json.NewEncoder(w)
	now := s.opt.now().UTC()
	if err := enc.Encode(backupHeader{Format: BackupFormat, Version: BackupVersion, Created: now, Backend: s.backend()}); err != nil {
		return st, fmt.Errorf("backup: write the header: %w", err)
	}
	type zrow struct {
		id int64
		z  backupZone
	}
	var zones []zrow
	err = func() error {
		rows, err := tx.QueryContext(ctx, "SELECT id, name, serial, policy, updated FROM zones ORDER BY name")
		if err != nil {
			return err
		}
		defer func() { _ = rows.Close() }() // read-only; rows.Err has the errors
		for rows.Next() {
			var r zrow
			var serial, updated int64
			if err := rows.Scan(&r.id, &r.z.Name, &serial, &r.z.SerialPolicy, &updated); err != nil {
				return err
			}
			r.z.Serial = uint32(serial) //nolint:gosec // stored from a uint32
			r.z.Updated = time.Unix(0, updated).UTC()
			zones = append(zones, r)
		}
		return rows.Err()
	}()
	if err != nil {
		return st, fmt.Errorf("backup: read the zones: %w", err)
	}
	for _, r := range zones {
		z := r.z
		if err := backupZoneRows(ctx, tx, r.id, &z); err != nil {
			return st, fmt.Errorf("backup zone %s: %w", z.Name, err)
		}
		if err := enc.Encode(backupLine{Zone: &z}); err != nil {
			return st, fmt.Errorf("backup zone %s: write: %w", z.Name, err)
		}
		st.Zones++
		st.RRsets += len(z.RRsets)
		if z.Signing != nil {
			st.Signed++
			st.Keys += len(z.Signing.Keys)
		}
	}
	if err := enc.Encode(backupLine{End: &st}); err != nil {
		return st, fmt.Errorf("backup: write the trailer: %w", err)
	}
	s.log.Info("store backed up", "zones", st.Zones, "rrsets", st.RRsets, "signed", st.Signed, "keys", st.Keys)
	return st, nil
}

// backupZoneRows reads the RRsets and signing of the zone with id into z.
func backupZoneRows(ctx context.Context, tx *sql.Tx, id int64, z *backupZone) error {
	rows, err := tx.QueryContext(ctx, "SELECT name, type, data FROM rrsets WHERE zone_id = ? ORDER BY name, type", id)
	if err != nil {
		return err
	}
	for rows.Next() {
		var r backupRRset
		if err := rows.Scan(&r.Name, &r.Type, &r.Data); err != nil {
			_ = rows.Close() // the Scan error is the one to report
			return err
		}
		z.RRsets = append(z.RRsets, r)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	var sg backupSigning
	var pol []byte
	err = tx.QueryRowContext(ctx, "SELECT policy_name, policy FROM dnssec WHERE zone_id = ?", id).Scan(&sg.PolicyName, &pol)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("signing policy: %w", err)
	}
	if !json.Valid(pol) {
		return fmt.Errorf("signing policy: stored policy is not JSON")
	}
	sg.Policy = json.RawMessage(pol)
	rows, err = tx.QueryContext(ctx, "SELECT id, sealed FROM dnssec_keys WHERE zone_id = ? ORDER BY id", id)
	if err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	for rows.Next() {
		var k backupKey
		if err := rows.Scan(&k.ID, &k.Sealed); err != nil {
			_ = rows.Close() // the Scan error is the one to report
			return fmt.Errorf("signing keys: %w", err)
		}
		sg.Keys = append(sg.Keys, k)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	z.Signing = &sg
	return nil
}

// ErrNotEmpty is the error of a restore into a store that holds zones.
var ErrNotEmpty = errors.New("store is not empty")

// Restore loads a file written by Backup into the store, which must hold
// no zone (ErrNotEmpty otherwise), in one transaction: every zone is
// built from its records and its serial checked, the signing keys are
// opened with the store's key file, and the counts are checked against
// the file's trailer before the transaction commits. Then the store
// serves the restored zones (and tells its subscribers, and on PostgreSQL
// the other replicas). Bad input is ErrInvalid, naming the line.
func (s *Store) Restore(ctx context.Context, r io.Reader) (BackupStats, error) {
	var st BackupStats
	if err := s.acquire(ctx); err != nil {
		return st, err
	}
	defer s.release()
	s.mu.RLock()
	n := len(s.zones)
	s.mu.RUnlock()
	if n > 0 {
		return st, fmt.Errorf("restore: %w: it holds %d zones; restore into an empty store", ErrNotEmpty, n)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return st, fmt.Errorf("restore: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // committed below when the restore is whole
	if s.pg != nil {
		// No replica creates a zone while the restore runs.
		if _, err := tx.ExecContext(ctx, "LOCK TABLE zones IN SHARE ROW EXCLUSIVE MODE"); err != nil {
			return st, fmt.Errorf("restore: lock the zones: %w", err)
		}
	}
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM zones").Scan(&n); err != nil {
		return st, fmt.Errorf("restore: count the zones: %w", err)
	}
	if n > 0 {
		return st, fmt.Errorf("restore: %w: the database holds %d zones; restore into an empty store", ErrNotEmpty, n)
	}
	ids := map[string]int64{}
	end, err := s.restoreLines(ctx, tx, r, &st, ids)
	if err != nil {
		return st, err
	}
	if *end != st {
		return st, fmt.Errorf("restore: %w: the trailer counts %+v, the file holds %+v", ErrInvalid, *end, st)
	}
	// What the database now holds, counted in the transaction.
	var got BackupStats
	for _, c := range []struct {
		q string
		n *int
	}{
		{"SELECT COUNT(*) FROM zones", &got.Zones}, {"SELECT COUNT(*) FROM rrsets", &got.RRsets},
		{"SELECT COUNT(*) FROM dnssec", &got.Signed}, {"SELECT COUNT(*) FROM dnssec_keys", &got.Keys},
	} {
		if err := tx.QueryRowContext(ctx, c.q).Scan(c.n); err != nil {
			return st, fmt.Errorf("restore: count the rows: %w", err)
		}
	}
	if got != st {
		return st, fmt.Errorf("restore: the database holds %+v after the restore, the file %+v", got, st)
	}
	// Build every zone and open its keys from the rows just written: what
	// a later Open would load, so a file this store cannot serve (a bad
	// zone, keys sealed with another key file) is refused here.
	states, err := s.loadStates(ctx, tx)
	if err != nil {
		s.forgetAll(ids)
		return st, fmt.Errorf("restore: %w: %w", ErrInvalid, err)
	}
	for name, id := range ids {
		if err := s.committing(ctx, tx, name, id, true); err != nil {
			s.forgetAll(ids)
			return st, fmt.Errorf("restore zone %s: %w", name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		s.forgetAll(ids)
		return st, fmt.Errorf("restore: commit: %w", err)
	}
	s.mu.Lock()
	for name, zs := range states {
		s.zones[name] = zs
	}
	s.mu.Unlock()
	for name, zs := range states {
		s.subs.publish(Event{Zone: name, Serial: zs.info.Serial, Created: true})
	}
	s.log.Info("store restored", "zones", st.Zones, "rrsets", st.RRsets, "signed", st.Signed, "keys", st.Keys)
	return st, nil
}

// forgetAll drops the versions committing noted for a restore that did
// not commit.
func (s *Store) forgetAll(ids map[string]int64) {
	if s.pg == nil {
		return
	}
	s.pg.mu.Lock()
	for name := range ids {
		delete(s.pg.versions, name)
	}
	s.pg.mu.Unlock()
}

// restoreLines reads the file and inserts its rows; it returns the
// trailer's counts.
func (s *Store) restoreLines(ctx context.Context, tx *sql.Tx, r io.Reader, st *BackupStats, ids map[string]int64) (*BackupStats, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	bad := func(line int, format string, args ...any) error {
		return fmt.Errorf("restore: %w: line %d: %s", ErrInvalid, line, fmt.Sprintf(format, args...))
	}
	var head backupHeader
	if err := dec.Decode(&head); err != nil {
		return nil, bad(1, "not a backup header: %v", err)
	}
	if head.Format != BackupFormat {
		return nil, bad(1, "format %q, want %q", head.Format, BackupFormat)
	}
	if head.Version != BackupVersion {
		return nil, bad(1, "format version %d, this program reads %d", head.Version, BackupVersion)
	}
	for line := 2; ; line++ {
		var l backupLine
		if err := dec.Decode(&l); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, bad(line, "the file ends without its trailer (truncated?)")
			}
			return nil, bad(line, "%v", err)
		}
		switch {
		case l.End != nil && l.Zone == nil:
			if dec.More() {
				return nil, bad(line+1, "data after the trailer")
			}
			return l.End, nil
		case l.Zone != nil && l.End == nil:
			if err := s.restoreZone(ctx, tx, l.Zone, st, ids); err != nil {
				return nil, bad(line, "zone %q: %v", l.Zone.Name, err)
			}
		default:
			return nil, bad(line, "want one of zone or end")
		}
	}
}

func (s *Store) restoreZone(ctx context.Context, tx *sql.Tx, z *backupZone, st *BackupStats, ids map[string]int64) error {
	if _, dup := ids[z.Name]; dup {
		return fmt.Errorf("twice in the file")
	}
	zname, err := newZoneName(z.Name)
	if err != nil {
		return err
	}
	if zname != z.Name {
		return fmt.Errorf("the name is not as the store writes it (%s)", zname)
	}
	if _, err := ParseSerialPolicy(z.SerialPolicy); err != nil {
		return err
	}
	var id int64
	if err := tx.QueryRowContext(ctx, "INSERT INTO zones (name, serial, policy, updated) VALUES (?, ?, ?, ?) RETURNING id",
		z.Name, int64(z.Serial), z.SerialPolicy, z.Updated.UnixNano()).Scan(&id); err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	ids[z.Name] = id
	for _, rs := range z.RRsets {
		// The row's key must be what its records are: the store finds
		// an RRset by it.
		recs, err := decodeRRs(rs.Data)
		if err != nil {
			return fmt.Errorf("rrset %s %s: %w", rs.Name, typeString(rs.Type), err)
		}
		if len(recs) == 0 {
			return fmt.Errorf("rrset %s %s: no records", rs.Name, typeString(rs.Type))
		}
		for _, rr := range recs {
			if h := rr.Header(); strings.ToLower(h.Name) != rs.Name || h.Rrtype != rs.Type {
				return fmt.Errorf("rrset %s %s holds a record of %s %s", rs.Name, typeString(rs.Type), h.Name, typeString(h.Rrtype))
			}
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO rrsets (zone_id, name, type, data) VALUES (?, ?, ?, ?)", id, rs.Name, rs.Type, rs.Data); err != nil {
			return fmt.Errorf("rrset %s %s: %w", rs.Name, typeString(rs.Type), err)
		}
	}
	st.Zones++
	st.RRsets += len(z.RRsets)
	if z.Signing == nil {
		return nil
	}
	if !json.Valid(z.Signing.Policy) {
		return fmt.Errorf("signing policy is not JSON")
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO dnssec (zone_id, policy_name, policy) VALUES (?, ?, ?)", id, z.Signing.PolicyName, []byte(z.Signing.Policy)); err != nil {
		return fmt.Errorf("signing policy: %w", err)
	}
	for _, k := range z.Signing.Keys {
		if _, err := tx.ExecContext(ctx, "INSERT INTO dnssec_keys (zone_id, id, sealed) VALUES (?, ?, ?)", id, k.ID, k.Sealed); err != nil {
			return fmt.Errorf("signing key %s: %w", k.ID, err)
		}
	}
	st.Signed++
	st.Keys += len(z.Signing.Keys)
	return nil
}
