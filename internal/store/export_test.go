package store

import (
	"context"
	"errors"
	"fmt"
)

// TerminateListeners ends the notification connections of every replica
// on the database (pg_terminate_backend), as a restart of the database
// would, and returns how many it ended.
func (s *Store) TerminateListeners(ctx context.Context) (int, error) {
	if s.pg == nil {
		return 0, errors.New("terminate listeners: the store is not on PostgreSQL")
	}
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND query = ?`, "LISTEN "+notifyChannel).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("terminate listeners: %w", err)
	}
	return n, nil
}
