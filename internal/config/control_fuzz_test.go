package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anycastdns/anycastdns/internal/config"
)

// FuzzParseControl feeds arbitrary bytes to ParseControl: it must not panic,
// a Control it returns must pass Validate, and every problem is a
// positioned FieldError naming the file.
func FuzzParseControl(f *testing.F) {
	seeds, err := filepath.Glob("testdata/control/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range seeds {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// A token_file would be read from the working directory; the
		// name is kept away from any file that exists.
		c, err := config.ParseControl(data, "fuzz-nonexistent-dir/fuzz.yaml")
		if err == nil {
			if c == nil {
				t.Fatal("ParseControl returned neither a Control nor an error")
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("ParseControl accepted a Control that Validate rejects: %v", err)
			}
			return
		}
		if c != nil {
			t.Fatal("ParseControl returned a Control along with an error")
		}
		if !errors.Is(err, config.ErrInvalid) {
			t.Fatalf("error does not match ErrInvalid: %v", err)
		}
		var list interface{ Unwrap() []error }
		if !errors.As(err, &list) {
			t.Fatalf("error is not a joined list: %T", err)
		}
		for _, e := range list.Unwrap() {
			var fe *config.FieldError
			if !errors.As(e, &fe) {
				t.Fatalf("problem is not a *FieldError: %T %v", e, e)
			}
			if fe.File != "fuzz-nonexistent-dir/fuzz.yaml" {
				t.Fatalf("problem names file %q", fe.File)
			}
			syntax := strings.HasPrefix(fe.Msg, "invalid YAML: ")
			if !syntax && !strings.HasSuffix(fe.Msg, "more problems not shown") && (fe.Line < 1 || fe.Column < 1) {
				t.Fatalf("problem without a position: %q", fe.Error())
			}
		}
	})
}
