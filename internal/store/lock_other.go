//go:build !unix

package store

import (
	"fmt"
	"os"
)

// lockFile creates path; there is no advisory lock on this platform, so
// nothing stops a second process from opening the database.
func lockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	return f, nil
}
