package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anycastdns/anycastdns/internal/config"
)

// FuzzParseNode feeds arbitrary bytes to ParseNode. Errors are expected;
// what must hold is that it never panics or runs away, that a Node it
// returns passes Validate, that the outcome is deterministic, and that every
// reported problem is one line that starts with the file name and is a
// positioned FieldError.
func FuzzParseNode(f *testing.F) {
	seeds, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range append(seeds, "../../examples/node.yaml") {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := config.ParseNode(data, "fuzz.yaml")
		if err == nil {
			if n == nil {
				t.Fatal("ParseNode returned neither a Node nor an error")
			}
			if err := n.Validate(); err != nil {
				t.Fatalf("ParseNode accepted a Node that Validate rejects: %v", err)
			}
			return
		}
		if n != nil {
			t.Fatal("ParseNode returned a Node along with an error")
		}
		if !errors.Is(err, config.ErrInvalid) {
			t.Fatalf("error does not match ErrInvalid: %v", err)
		}
		_, again := config.ParseNode(data, "fuzz.yaml")
		if again == nil || again.Error() != err.Error() {
			t.Fatalf("ParseNode is not deterministic:\n%v\nthen\n%v", err, again)
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			if !strings.HasPrefix(line, "fuzz.yaml:") {
				t.Fatalf("problem does not start with the file name: %q", line)
			}
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
			if fe.File != "fuzz.yaml" {
				t.Fatalf("problem names file %q", fe.File)
			}
			// Only a YAML syntax error may lack a column, and only the
			// count of problems left out may lack a line.
			syntax := strings.HasPrefix(fe.Msg, "invalid YAML: ")
			if !syntax && !strings.HasSuffix(fe.Msg, "more problems not shown") && (fe.Line < 1 || fe.Column < 1) {
				t.Fatalf("problem without a position: %q", fe.Error())
			}
		}
	})
}

// TestFuzzRegressions holds the inputs the fuzzer found problems with, each
// named after the problem.
func TestFuzzRegressions(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		// A document of only a tag is an empty node with no position of
		// its own; problems about missing fields were reported without a
		// line. (testdata/fuzz/FuzzParseNode/regression_tag_only_document)
		{"tag only document has a position", "!", "fuzz.yaml:1:1: listen: at least one address is required"},
		{"null document has a position", "~", "fuzz.yaml:1:1: listen: at least one address is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.ParseNode([]byte(tt.in), "fuzz.yaml")
			if err == nil || err.Error() != tt.want {
				t.Errorf("ParseNode(%q) error = %v, want %s", tt.in, err, tt.want)
			}
		})
	}
}
