package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBackupRestoreCommands: anycastctl backup -o FILE from one control
// plane and anycastctl restore FILE into an empty one give the same zones;
// a second restore is refused, and so are a missing -o and a missing FILE.
func TestBackupRestoreCommands(t *testing.T) {
	src, dst := controlPlane(t), controlPlane(t)
	dir := t.TempDir()
	zoneFile := filepath.Join(dir, "example.org.zone")
	if err := os.WriteFile(zoneFile, []byte(exampleOrg), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"zone", "create", "example.com", "-ns", "ns1"},
		{"zone", "create", "example.org", "-file", zoneFile, "-policy", "date"},
		{"record", "set", "example.com", "www", "A", "192.0.2.10"},
	} {
		if code, out, errOut := cli(t, src, args...); code != 0 {
			t.Fatalf("%v: exit %d: %s%s", args, code, out, errOut)
		}
	}
	file := filepath.Join(dir, "store.backup")
	if code, _, errOut := cli(t, src, "backup"); code != 2 || !strings.Contains(errOut, "missing -o FILE") {
		t.Errorf("backup without -o: exit %d, %q", code, errOut)
	}
	if code, out, errOut := cli(t, src, "backup", "-o", file); code != 0 {
		t.Fatalf("backup: exit %d: %s%s", code, out, errOut)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v, want mode 0600", fi, err)
	}
	if code, _, errOut := cli(t, dst, "restore"); code != 2 || !strings.Contains(errOut, "want 1 argument") {
		t.Errorf("restore without FILE: exit %d, %q", code, errOut)
	}
	code, out, errOut := cli(t, dst, "restore", file)
	if code != 0 || out != "restored 2 zones (6 RRsets), 0 signed with 0 keys\n" {
		t.Fatalf("restore: exit %d: %q %q", code, out, errOut)
	}
	_, want, _ := cli(t, src, "zone", "list")
	_, got, _ := cli(t, dst, "zone", "list")
	if got != want || !strings.Contains(got, "example.org.") {
		t.Errorf("zones after the restore:\n%s\nwant\n%s", got, want)
	}
	for _, z := range []string{"example.com", "example.org"} {
		_, want, _ := cli(t, src, "zone", "export", z)
		_, got, _ := cli(t, dst, "zone", "export", z)
		if got != want || got == "" {
			t.Errorf("zone %s after the restore:\n%s\nwant\n%s", z, got, want)
		}
	}
	if code, _, errOut := cli(t, dst, "restore", file); code != 1 || !strings.Contains(errOut, "not empty") {
		t.Errorf("second restore: exit %d, %q", code, errOut)
	}
}
