package store

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
)

// createPrivate creates the database file at path, empty and mode 0600,
// before SQLite opens it. SQLite would create it 0644 less the umask, and
// it creates the -wal and -shm files with the mode of the database file:
// so all three are 0600 whatever the umask and the directory's mode. An
// existing database keeps its mode, with a warning when other users may
// read it.
func createPrivate(path string, log *slog.Logger) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600) //nolint:gosec // the path is the operator's data directory
	switch {
	case err == nil:
		// The umask may only have removed bits; set exactly 0600 anyway.
		err = f.Chmod(0o600)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("create the database file: %w", err)
		}
		return nil
	case !errors.Is(err, fs.ErrExist):
		return fmt.Errorf("create the database file: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		log.Warn("the database file is accessible to other users; the store creates it 0600 (its -wal and -shm files follow its mode)",
			"path", path, "mode", fmt.Sprintf("%04o", perm), "fix", "chmod 600 "+path+"*")
	}
	return nil
}
