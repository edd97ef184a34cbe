package store

import (
	"context"
	"fmt"
)

// Listeners counts the sessions on the store's database that LISTEN for
// the commit notifications (the replicas' notification connections).
func (s *Store) Listeners(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM pg_stat_activity
		WHERE datname = current_database() AND query = ?`, "LISTEN "+notifyChannel).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count listeners: %w", err)
	}
	return n, nil
}
