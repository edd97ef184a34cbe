package benchkit

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Helpers for the benchmarks' tests.

// NeedTool skips a test whose external tool is missing, except in CI
// (CI=true) where the tools are part of the environment and a skip would
// hide a broken setup.
func NeedTool(t testing.TB, bin string) {
	t.Helper()
	if _, err := exec.LookPath(bin); err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not installed (CI=true)", bin)
	}
	t.Skipf("%s not installed", bin)
}

// ZoneOwners reads the owner names of a generated zone file (relative
// names, $ORIGIN and $TTL lines) with the number of records of each.
func ZoneOwners(path, origin string) (map[string]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	owners := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "$") {
			continue
		}
		owner := strings.Fields(line)[0]
		if owner == "@" {
			owner = origin
		} else {
			owner += "." + origin
		}
		owners[owner]++
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return owners, nil
}
