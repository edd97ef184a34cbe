package benchkit

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestAnycastdBinaryBuild builds ./cmd/anycastd as the benchmarks do
// without -anycastd-bin and checks that the binary leaves room for the anycastd
// server's directory in the same work directory (they once collided).
func TestAnycastdBinaryBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds anycastd; skipped with -short")
	}
	work := t.TempDir()
	bin, err := AnycastdBinary(t.Context(), "", work, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(bin); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("binary %s: %v", bin, err)
	}
	if err := os.MkdirAll(filepath.Join(work, "anycastd"), 0o755); err != nil {
		t.Fatalf("server directory beside the binary: %v", err)
	}
}
