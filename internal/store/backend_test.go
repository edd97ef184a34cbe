package store_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/testkit/pgtest"
)

// The store's tests run on SQLite, and those that do not test SQLite's own
// files run again on PostgreSQL as subtests of TestPostgres: newStore and
// open look at the test's name to choose the backend.

const pgPrefix = "TestPostgres/"

// pgDatabases maps the directory newStore gave a test on PostgreSQL to its
// database, so that open of the same directory reopens it.
var pgDatabases sync.Map

func onPostgres(t testing.TB) bool { return strings.HasPrefix(t.Name(), pgPrefix) }

// openBackend opens the store of dir: the SQLite file in it, or on
// PostgreSQL the database of the test that dir stands for.
func openBackend(t testing.TB, dir string, opts ...store.Option) (*store.Store, error) {
	t.Helper()
	if !onPostgres(t) {
		return store.Open(context.Background(), filepath.Join(dir, "zones.db"), nil, opts...)
	}
	dsn, ok := pgDatabases.Load(dir)
	if !ok {
		dsn = pgtest.Shared(t).NewDatabase(t)
		pgDatabases.Store(dir, dsn)
	}
	return store.OpenPostgres(context.Background(), dsn.(string), nil, opts...)
}

// TestPostgres runs the store's tests on PostgreSQL.
func TestPostgres(t *testing.T) {
	pgtest.Shared(t) // skipped here, once, when PostgreSQL is not installed
	for _, tc := range []struct {
		name string
		test func(*testing.T)
	}{
		{"CreateAndRead", TestCreateAndRead},
		{"CreateErrors", TestCreateErrors},
		{"CreateDatePolicy", TestCreateDatePolicy},
		{"SetRRset", TestSetRRset},
		{"UpdateRRsetErrorChangesNothing", TestUpdateRRsetErrorChangesNothing},
		{"Import", TestImport},
		{"DeleteZone", TestDeleteZone},
		{"ChangesReplay", TestChangesReplay},
		{"Reopen", TestReopen},
		{"CreateZoneFromText", TestCreateZoneFromText},
		{"ConcurrentWriters", TestConcurrentWriters},
		{"ReadersDuringWrites", TestReadersDuringWrites},
		{"SigningWritePath", TestSigningWritePath},
		{"SigningRefusals", TestSigningRefusals},
		{"SigningPersists", TestSigningPersists},
		{"SigningMaintenance", TestSigningMaintenance},
		{"Subscribe", TestSubscribe},
		{"SubscribeMerge", TestSubscribeMerge},
		{"CloseEndsSubscriptions", TestCloseEndsSubscriptions},
		{"CreateRefusesNamesNodesSkip", TestCreateRefusesNamesNodesSkip},
		{"SignedZoneEdits", TestSignedZoneEdits},
		{"DNSSECRRsetsComeFromASigner", TestDNSSECRRsetsComeFromASigner},
		{"WriteSharesTheZone", TestWriteSharesTheZone},
		{"PoolsStored", TestPoolsStored},
		{"PoolsRefused", TestPoolsRefused},
		{"UpdateRRsets", TestUpdateRRsets},
		{"BackupRestore", TestBackupRestore},
		{"BackupDuringWrites", TestBackupDuringWrites},
	} {
		t.Run(tc.name, tc.test)
	}
}
