package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// What the PostgreSQL store does when its connections to the database are
// lost, as at a failover (the primary dies, a standby is promoted and the
// DSN's hosts or VIP lead to it): a write that had not sent its commit is
// tried again on a new connection when nothing was written yet (lockZone),
// else fails with ErrUnavailable; a write whose commit was sent but not
// answered asks the database, once it answers again, whether the commit
// took effect (commitFailed), and reports ErrCommitUnknown only when it
// cannot learn it in commitResolveTimeout.

const (
	// pgConnectTimeout bounds a connection attempt to each host when
	// the DSN has no connect_timeout.
	pgConnectTimeout = 5 * time.Second
	// pgMaxIdle is the number of idle connections the pool keeps.
	pgMaxIdle = 4
)

// commitResolveTimeout bounds the wait for the database to answer whether
// a commit whose answer was lost took effect (a variable for the tests).
var commitResolveTimeout = 10 * time.Second

// commitTx commits a write's transaction; the tests replace it to lose
// the answer of a commit.
var commitTx = (*sql.Tx).Commit

// pgConnector makes the pool's connections: pgx's, with the store's
// dialect, from a parsed configuration (which has the connect timeout).
type pgConnector struct {
	cfg   *pgx.ConnConfig
	drv   *pgDriver
	inner driver.Connector
}

func newPGConnector(cfg *pgx.ConnConfig) *pgConnector {
	return &pgConnector{cfg: cfg, drv: &pgDriver{inner: stdlib.GetDefaultDriver(), d: &pgDialect{}}, inner: stdlib.GetConnector(*cfg)}
}

func (c *pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := conn.(*stdlib.Conn)
	if !ok {
		_ = conn.Close()
		return nil, fmt.Errorf("pgx connector returned a %T connection", conn)
	}
	return &pgConn{Conn: sc, d: c.drv.d}, nil
}

func (c *pgConnector) Driver() driver.Driver { return c.drv }

// connectionLost reports whether err says that the database could not be
// reached or that the connection to it was lost, rather than that it
// refused the statement: the errors of a failover.
func connectionLost(err error) bool {
	if err == nil {
		return false
	}
	// A connection not made, whatever the reason (it may hold a server's
	// error too, such as "the database system is starting up").
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"): // connection exception
			return true
		case pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03": // admin_shutdown, crash_shutdown, cannot_connect_now
			return true
		case pgErr.Code == "25006": // read_only_sql_transaction: the server is not (or no longer) the primary
			return true
		}
		return false
	}
	var netErr net.Error
	switch {
	case errors.As(err, &netErr):
		return true
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed), errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	}
	return pgconn.SafeToRetry(err) || pgconn.Timeout(err)
}

// unavailableError is an error of a lost database, marked ErrUnavailable.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string {
	return e.err.Error() + " (the database is unavailable; the write was not made and may be sent again)"
}
func (e *unavailableError) Unwrap() []error { return []error{e.err, ErrUnavailable} }

// markUnavailable marks err ErrUnavailable when it is the loss of the
// database (connectionLost), unless it is already marked, or is a commit
// whose outcome is unknown (which must not be sent again blindly).
func markUnavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrCommitUnknown) || !connectionLost(err) {
		return err
	}
	return &unavailableError{err}
}

// dropIdle closes the pool's idle connections: after one was found dead,
// the others (to the same dead server) are likely dead too.
func (s *Store) dropIdle() {
	s.db.SetMaxIdleConns(0)
	s.db.SetMaxIdleConns(pgMaxIdle)
}

// pendingCommit identifies the commit of a write, for asking the database
// whether it took effect when its answer was lost: zones.version set to
// version by this commit, with zones.updated (and, for a write with a
// change, the change log's entry seq's at) set to updated, the write's
// time in nanoseconds, which no other write shares (with the real clock:
// a test's fixed clock could give two writes one time).
type pendingCommit struct {
	zone    string
	id      int64
	version int64
	isNew   bool
	updated int64
	seq     int64 // 0: the write logs no change
}

// commitFailed handles a failed commit of the write of zone zname (whose
// zones.updated is updated and change log entry seq, 0 for none) and
// returns nil when the commit did take effect after all: the caller then
// completes the write as committed. On SQLite it reloads the zone and
// returns cerr.
func (s *Store) commitFailed(zname string, cerr error, updated, seq int64) error {
	if s.pg == nil {
		s.resync(zname)
		return cerr
	}
	p := s.pg.pending
	s.pg.pending = pendingCommit{}
	var pgErr *pgconn.PgError
	if p.zone != zname || errors.As(cerr, &pgErr) || pgconn.SafeToRetry(cerr) {
		// The server answered with an error, or the commit was never
		// sent: it did not take effect. The zone in memory is still
		// right; its version is taken from the database at the next
		// write.
		s.pg.forget(zname)
		return markUnavailable(cerr)
	}
	p.updated, p.seq = updated, seq
	landed, err := s.resolveCommit(p)
	switch {
	case err == nil && landed:
		s.log.Warn("the answer to a commit was lost; the database shows that it took effect", "zone", zname, "version", p.version, "err", cerr)
		return nil
	case err == nil:
		s.pg.forget(zname)
		s.log.Warn("the answer to a commit was lost; the database shows that it did not take effect", "zone", zname, "version", p.version, "err", cerr)
		return &unavailableError{fmt.Errorf("%w; the database shows that the commit did not take effect", cerr)}
	default:
		// The zone is reloaded at the next write, or by the sweep
		// that follows the listener's reconnect.
		s.pg.forget(zname)
		s.log.Error("the outcome of a commit is unknown", "zone", zname, "version", p.version, "err", cerr, "check", err)
		return fmt.Errorf("zone %s: %w: %w; asking the database: %w", zname, ErrCommitUnknown, cerr, err)
	}
}

// resolveCommit asks the database whether the commit p took effect, until
// the primary answers or commitResolveTimeout has passed.
func (s *Store) resolveCommit(p pendingCommit) (bool, error) {
	deadline := time.Now().Add(commitResolveTimeout)
	s.dropIdle()
	for {
		landed, err := s.checkCommit(p)
		if err == nil || !connectionLost(err) {
			return landed, err
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("no answer within %v: %w", commitResolveTimeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// errStandby: the server that answered is a standby, which may not have
// replayed the commit yet.
var errStandby = &pgconn.PgError{Code: "25006", Message: "the server is a standby"}

// checkCommit reads on the primary whether the commit p took effect.
func (s *Store) checkCommit(p pendingCommit) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var standby bool
	var version, updated, at sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT pg_is_in_recovery(), z.version, z.updated,
		(SELECT at FROM changes c WHERE c.zone_id = z.id AND c.seq = ?)
		FROM (SELECT 1) one LEFT JOIN zones z ON z.id = ? AND z.name = ?`, p.seq, p.id, p.zone).
		Scan(&standby, &version, &updated, &at)
	switch {
	case err != nil:
		return false, err
	case standby:
		return false, errStandby
	case !version.Valid && p.isNew:
		return false, nil // the zone this commit created is not there
	case !version.Valid:
		return false, errors.New("the zone was deleted since")
	}
	switch {
	case version.Int64 < p.version:
		return false, nil
	case version.Int64 == p.version:
		return updated.Int64 == p.updated, nil
	case p.seq > 0 && at.Valid:
		// Written again since: the change log's entry tells whose
		// change it holds.
		return at.Int64 == p.updated, nil
	}
	return false, fmt.Errorf("the zone was written again since (version %d, this commit's %d) and the change log does not tell", version.Int64, p.version)
}
