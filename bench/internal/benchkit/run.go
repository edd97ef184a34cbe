package benchkit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
)

// NewLogger returns the benchmarks' progress logger: text to w, times as
// HH:MM:SS.
func NewLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.String(slog.TimeKey, a.Value.Time().Format("15:04:05"))
			}
			return a
		},
	}))
}

// Tool is an external program a benchmark needs, with how to get it.
type Tool struct{ Bin, Hint string }

// Tools the benchmarks share.
var (
	ToolGo    = Tool{Bin: "go", Hint: "install Go from https://go.dev/dl/, or pass -anycastd-bin"}
	ToolKnotd = Tool{Bin: "knotd", Hint: "apt-get install knot"}
	ToolKnotc = Tool{Bin: "knotc", Hint: "apt-get install knot"}
)

// CheckTools returns one error naming every missing tool with its hint.
func CheckTools(tools ...Tool) error {
	var errs []error
	for _, t := range tools {
		if _, err := exec.LookPath(t.Bin); err != nil {
			errs = append(errs, fmt.Errorf("%s not found (%s)", t.Bin, t.Hint))
		}
	}
	return errors.Join(errs...)
}

// WorkDir returns the absolute path of the benchmark's work directory:
// out, created when missing and kept, or with out empty a new temporary
// directory named after prefix, which cleanup removes. cleanup is never
// nil.
func WorkDir(out, prefix string, logger *slog.Logger) (dir string, cleanup func(), err error) {
	cleanup = func() {}
	if dir = out; dir == "" {
		if dir, err = os.MkdirTemp("", prefix+"-"); err != nil {
			return "", cleanup, fmt.Errorf("work directory: %w", err)
		}
		cleanup = func() {
			if err := os.RemoveAll(dir); err != nil {
				logger.Warn("remove work directory", "dir", dir, "err", err)
			}
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", cleanup, fmt.Errorf("work directory: %w", err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		cleanup()
		return "", func() {}, fmt.Errorf("work directory: %w", err)
	}
	return abs, cleanup, nil
}

// WriteJSON writes v to w as indented JSON.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
