package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Changes returns the change log of a zone from serial from to the current
// serial: consecutive changes, the first one's From equal to from, the last
// one's To the current serial. It is empty when from is the current serial,
// and ErrNoJournal when the log does not hold from (it was trimmed, the
// serial is unknown, or the zone was re-created).
func (s *Store) Changes(ctx context.Context, zoneName string, from uint32) ([]Change, error) {
	zname, err := canonicalZone(zoneName)
	if err != nil {
		return nil, err
	}
	if _, err := s.state(zname); err != nil {
		return nil, err
	}
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("changes of %s: %w", zname, err)
	}
	defer func() { _ = tx.Rollback() }()
	var id, current int64
	err = tx.QueryRowContext(ctx, "SELECT id, serial FROM zones WHERE name = ?", zname).Scan(&id, &current)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("zone %s: %w", zname, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("changes of %s: %w", zname, err)
	}
	if uint32(current) == from {
		return []Change{}, nil
	}
	var start sql.NullInt64
	if err := tx.QueryRowContext(ctx, "SELECT MAX(seq) FROM changes WHERE zone_id = ? AND from_serial = ?", id, int64(from)).Scan(&start); err != nil {
		return nil, fmt.Errorf("changes of %s: %w", zname, err)
	}
	if !start.Valid {
		return nil, fmt.Errorf("zone %s: serial %d: %w", zname, from, ErrNoJournal)
	}
	rows, err := tx.QueryContext(ctx, "SELECT from_serial, to_serial, del, add_ FROM changes WHERE zone_id = ? AND seq >= ? ORDER BY seq", id, start.Int64)
	if err != nil {
		return nil, fmt.Errorf("changes of %s: %w", zname, err)
	}
	defer func() { _ = rows.Close() }() // read-only; rows.Err has the errors
	var out []Change
	next := int64(from)
	for rows.Next() {
		var f, t int64
		var del, add []byte
		if err := rows.Scan(&f, &t, &del, &add); err != nil {
			return nil, fmt.Errorf("changes of %s: %w", zname, err)
		}
		if f != next {
			return nil, fmt.Errorf("zone %s: change log broken at serial %d (next entry starts at %d): %w", zname, next, f, ErrNoJournal)
		}
		c := Change{From: uint32(f), To: uint32(t)}
		if c.Del, err = decodeRRs(del); err != nil {
			return nil, fmt.Errorf("changes of %s: %d→%d: %w", zname, f, t, err)
		}
		if c.Add, err = decodeRRs(add); err != nil {
			return nil, fmt.Errorf("changes of %s: %d→%d: %w", zname, f, t, err)
		}
		out = append(out, c)
		next = t
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("changes of %s: %w", zname, err)
	}
	if next != current {
		return nil, fmt.Errorf("zone %s: change log ends at serial %d, the zone is at %d: %w", zname, next, current, ErrNoJournal)
	}
	return out, nil
}
