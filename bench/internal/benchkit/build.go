package benchkit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// AnycastdBinary returns given (-anycastd-bin) as an absolute path, or, when
// it is empty, builds ./cmd/anycastd of the module the benchmark runs in
// into work/bin.
func AnycastdBinary(ctx context.Context, given, work string, logger *slog.Logger) (string, error) {
	if given != "" {
		p, err := exec.LookPath(given)
		if err != nil {
			return "", fmt.Errorf("anycastd binary: %w", err)
		}
		return filepath.Abs(p)
	}
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	// Not work/anycastd: that is the anycastd server's directory.
	bin := filepath.Join(work, "bin", "anycastd")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", fmt.Errorf("anycastd binary: %w", err)
	}
	logger.Info("building anycastd", "module", root)
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/anycastd")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/anycastd: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}

// ModuleRoot finds the directory of go.mod from the working directory up.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find module root: no go.mod above the working directory; pass -anycastd-bin")
		}
		dir = parent
	}
}
