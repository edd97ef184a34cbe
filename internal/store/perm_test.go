//go:build unix

package store_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/anycastdns/anycastdns/internal/store"
)

// TestFilesPrivate opens a new store under a umask that lets everyone read
// and write what is created, and in a world-writable directory: the
// database, its -wal, -shm and lock files are 0600 all the same.
func TestFilesPrivate(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := filepath.Join(dir, "zones.db")
	s, err := store.Open(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateZone(t.Context(), "example.com.", baseZone(t), ""); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"zones.db", "zones.db-wal", "zones.db-shm", "zones.db.lock"} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if perm := st.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", name, perm)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestOpenWarnsAboutOpenDatabase: an existing database readable by others
// is opened as it is, with a warning saying how to fix it.
func TestOpenWarnsAboutOpenDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "zones.db")
	s, err := store.Open(t.Context(), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	s, err = store.Open(t.Context(), path, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if !strings.Contains(log.String(), "accessible to other users") || !strings.Contains(log.String(), "mode=0644") {
		t.Errorf("no warning about mode 0644:\n%s", log.String())
	}
}
