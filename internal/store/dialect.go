package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/stdlib"
)

// The store's SQL is written once, in SQLite's dialect; on PostgreSQL the
// driver below rewrites each statement before pgx sees it (pgDialect), so
// the code that reads and writes zones is the same for both backends. The
// schemas differ and live beside each backend's Open.

// pgDialect rewrites SQLite statements for PostgreSQL: '?' placeholders
// become $1, $2, ...; "INSERT OR REPLACE" becomes an upsert on the table's
// primary key.
type pgDialect struct {
	mu    sync.Mutex
	cache map[string]string
}

// primaryKeys are the conflict targets of the upserts.
var primaryKeys = map[string][]string{
	"zones":       {"id"},
	"rrsets":      {"zone_id", "name", "type"},
	"changes":     {"zone_id", "seq"},
	"dnssec":      {"zone_id"},
	"dnssec_keys": {"zone_id", "id"},
}

var insertOrReplace = regexp.MustCompile(`(?is)^\s*INSERT\s+OR\s+REPLACE\s+INTO\s+(\w+)\s*\(([^)]*)\)(.*)$`)

func (d *pgDialect) rewrite(query string) (string, error) {
	d.mu.Lock()
	q, ok := d.cache[query]
	d.mu.Unlock()
	if ok {
		return q, nil
	}
	q, err := rewritePG(query)
	if err != nil {
		return "", err
	}
	d.mu.Lock()
	if d.cache == nil {
		d.cache = map[string]string{}
	}
	if len(d.cache) < 1000 { // the store's statements are a few dozen
		d.cache[query] = q
	}
	d.mu.Unlock()
	return q, nil
}

func rewritePG(query string) (string, error) {
	q := rebind(query)
	if m := insertOrReplace.FindStringSubmatch(q); m != nil {
		table := strings.ToLower(m[1])
		keys, ok := primaryKeys[table]
		if !ok {
			return "", fmt.Errorf("statement %q: no primary key known for table %s", query, table)
		}
		var set []string
		for c := range strings.SplitSeq(m[2], ",") {
			c = strings.TrimSpace(c)
			isKey := false
			for _, k := range keys {
				isKey = isKey || strings.EqualFold(k, c)
			}
			if !isKey {
				set = append(set, c+" = EXCLUDED."+c)
			}
		}
		action := "DO NOTHING"
		if len(set) > 0 {
			action = "DO UPDATE SET " + strings.Join(set, ", ")
		}
		q = "INSERT INTO " + m[1] + " (" + m[2] + ")" + strings.TrimRight(m[3], "; \n\t") +
			" ON CONFLICT (" + strings.Join(keys, ", ") + ") " + action
	}
	return q, nil
}

// rebind numbers the '?' placeholders outside quoted strings.
func rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n := 0
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// pgDriverName is the database/sql driver of the PostgreSQL store: pgx's,
// with the statements rewritten and read-only transactions taken as
// snapshots (REPEATABLE READ), so that loading a zone in several queries
// sees one version of it while other replicas write.
const pgDriverName = "anycastdns-pgx"

var registerPG sync.Once

func registerPGDriver() {
	registerPG.Do(func() { sql.Register(pgDriverName, &pgDriver{inner: stdlib.GetDefaultDriver(), d: &pgDialect{}}) })
}

type pgDriver struct {
	inner driver.Driver
	d     *pgDialect
}

func (p *pgDriver) Open(dsn string) (driver.Conn, error) {
	c, err := p.inner.Open(dsn)
	if err != nil {
		return nil, err
	}
	sc, ok := c.(*stdlib.Conn)
	if !ok {
		_ = c.Close()
		return nil, fmt.Errorf("pgx driver returned a %T connection", c)
	}
	return &pgConn{Conn: sc, d: p.d}, nil
}

// pgConn is pgx's connection with every statement rewritten; the rest of
// its methods (transactions, pings, session resets, value checks) are
// pgx's own.
type pgConn struct {
	*stdlib.Conn
	d *pgDialect
}

func (c *pgConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *pgConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	q, err := c.d.rewrite(query)
	if err != nil {
		return nil, err
	}
	return c.Conn.PrepareContext(ctx, q)
}

func (c *pgConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	q, err := c.d.rewrite(query)
	if err != nil {
		return nil, err
	}
	return c.Conn.ExecContext(ctx, q, args)
}

func (c *pgConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, err := c.d.rewrite(query)
	if err != nil {
		return nil, err
	}
	return c.Conn.QueryContext(ctx, q, args)
}

func (c *pgConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if opts.ReadOnly && opts.Isolation == driver.IsolationLevel(sql.LevelDefault) {
		opts.Isolation = driver.IsolationLevel(sql.LevelRepeatableRead)
	}
	return c.Conn.BeginTx(ctx, opts)
}
