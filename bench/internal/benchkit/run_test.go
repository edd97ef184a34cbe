package benchkit

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestWorkDir(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	logger := slog.New(slog.DiscardHandler)

	dir, cleanup, err := WorkDir("", "bench", logger)
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(dir) || filepath.Dir(dir) != tmp || !strings.HasPrefix(filepath.Base(dir), "bench-") {
		t.Errorf("temporary work directory %s, want bench-* in %s", dir, tmp)
	}
	if err := os.WriteFile(filepath.Join(dir, "zone"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cleanup()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still there after cleanup: %v", dir, err)
	}

	t.Chdir(tmp)
	dir, cleanup, err = WorkDir("out/run", "bench", logger)
	if err != nil {
		t.Fatal(err)
	}
	cleanup()
	if dir != filepath.Join(tmp, "out", "run") {
		t.Errorf("-out work directory %s, want %s", dir, filepath.Join(tmp, "out", "run"))
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Errorf("-out directory kept after cleanup: %v", err)
	}
}

func TestCheckTools(t *testing.T) {
	if err := CheckTools(Tool{Bin: "sh", Hint: "-"}); err != nil {
		t.Errorf("sh: %v", err)
	}
	err := CheckTools(Tool{Bin: "sh"}, Tool{Bin: "no-such-tool-x", Hint: "apt-get install x"}, Tool{Bin: "no-such-tool-y", Hint: "build y"})
	if err == nil || err.Error() != "no-such-tool-x not found (apt-get install x)\nno-such-tool-y not found (build y)" {
		t.Errorf("CheckTools = %v", err)
	}
}

func TestNewLoggerAndWriteJSON(t *testing.T) {
	var b bytes.Buffer
	NewLogger(&b).Info("loaded", "server", "knot")
	if !regexp.MustCompile(`^time=\d\d:\d\d:\d\d level=INFO msg=loaded server=knot\n$`).Match(b.Bytes()) {
		t.Errorf("log line %q", b.String())
	}
	b.Reset()
	if err := WriteJSON(&b, (&Zone{Origin: "bench.example.", Names: 2, Records: 3, Bytes: 4}).Info()); err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"origin\": \"bench.example.\",\n  \"names\": 2,\n  \"records\": 3,\n  \"bytes\": 4\n}\n"
	if b.String() != want {
		t.Errorf("JSON %q, want %q", b.String(), want)
	}
}

func TestWriteTable(t *testing.T) {
	var b strings.Builder
	WriteTable(&b, [][]string{{"server", "µs"}, {"knot", "12"}})
	if want := "  server  µs\n    knot  12\n"; b.String() != want {
		t.Errorf("table %q, want %q", b.String(), want)
	}
}

func TestPickNames(t *testing.T) {
	known := []string{"a", "b", "c"}
	for _, tc := range []struct {
		value   string
		want    []string
		wantErr string
	}{
		{"c, a,a", []string{"a", "c"}, ""},
		{"b,x", []string{"b"}, `-only: unknown server "x" (want a, b, c)`},
		{",", nil, "-only: no server"},
	} {
		got, errs := PickNames("only", "server", tc.value, known)
		err := errors.Join(errs...)
		if !slices.Equal(got, tc.want) || (err == nil) != (tc.wantErr == "") || (err != nil && err.Error() != tc.wantErr) {
			t.Errorf("PickNames(%q) = %v, %v; want %v, %q", tc.value, got, err, tc.want, tc.wantErr)
		}
	}
}
