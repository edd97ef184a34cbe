package control

import (
	"context"
	"log/slog"
	"path/filepath"

	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/store"
)

// openStore opens the zone database the configuration chooses: PostgreSQL
// (store.postgres, which several control-plane replicas may share) or the
// SQLite file in the data directory.
func openStore(ctx context.Context, cfg *config.Control, log *slog.Logger, opts ...store.Option) (*store.Store, error) {
	if pg := cfg.Store.Postgres; pg != nil {
		return store.OpenPostgres(ctx, pg.DSN, log, opts...)
	}
	return store.Open(ctx, filepath.Join(cfg.DataDir, DBFile), log, opts...)
}
