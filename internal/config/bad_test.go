package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

// badFiles loads every dir/*.bad.yaml with load, named fn in messages,
// and checks what it returns: an error and no configuration, the error
// wrapping ErrInvalid, its text equal to the paired .bad.err golden file
// (rewritten with -update), and each line of it by checkLine (the name is
// the file's without .bad.yaml). A .bad.err without its .bad.yaml fails
// too: no test would ever look at it.
func badFiles[T any](t *testing.T, dir, fn string, load func(string) (*T, error), checkLine func(t *testing.T, name, line string)) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.bad.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no %s/*.bad.yaml (%v)", dir, err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".bad.yaml")
		t.Run(name, func(t *testing.T) {
			c, err := load(file)
			if err == nil {
				t.Fatalf("%s(%s) = %+v, want an error", fn, file, c)
			}
			if c != nil {
				t.Errorf("%s returned a configuration along with the error", fn)
			}
			if !errors.Is(err, config.ErrInvalid) {
				t.Errorf("errors.Is(err, ErrInvalid) = false for %v", err)
			}
			got := err.Error() + "\n"
			testkit.Golden(t, strings.TrimSuffix(file, ".yaml")+".err", []byte(got))
			for line := range strings.Lines(strings.TrimSuffix(got, "\n")) {
				checkLine(t, name, strings.TrimSuffix(line, "\n"))
			}
		})
	}
	errs, _ := filepath.Glob(filepath.Join(dir, "*.bad.err"))
	for _, e := range errs {
		if _, err := os.Stat(strings.TrimSuffix(e, ".err") + ".yaml"); err != nil {
			t.Errorf("%s has no .bad.yaml: %v", e, err)
		}
	}
}

// problems returns the lines of a validation error (nil for none), failing
// the test when the error does not wrap ErrInvalid.
func problems(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	if !errors.Is(err, config.ErrInvalid) {
		t.Errorf("errors.Is(err, ErrInvalid) = false")
	}
	return strings.Split(err.Error(), "\n")
}
