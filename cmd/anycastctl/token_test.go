package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTokenFile gives the API token through a file, by flag or
// environment, instead of on the command line.
func TestTokenFile(t *testing.T) {
	vars := controlPlane(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "api.token")
	if err := os.WriteFile(good, []byte("# the standalone's token\n\n"+apiToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.token")
	if err := os.WriteFile(empty, []byte("# nothing\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	api := vars["ANYCASTCTL_API"]
	for _, tc := range []struct {
		name     string
		vars     map[string]string
		args     []string
		wantCode int
		want     string // in stderr
	}{
		{"flag", map[string]string{"ANYCASTCTL_API": api}, []string{"zone", "list", "-token-file", good}, 0, ""},
		{"environment", map[string]string{"ANYCASTCTL_API": api, "ANYCASTCTL_TOKEN_FILE": good}, []string{"zone", "list"}, 0, ""},
		{"the flag beats a wrong token in the environment", map[string]string{"ANYCASTCTL_API": api, "ANYCASTCTL_TOKEN": "wrong-token-0123456789"},
			[]string{"zone", "list", "-token-file", good}, 0, ""},
		{"the token variable beats the file variable", map[string]string{"ANYCASTCTL_API": api, "ANYCASTCTL_TOKEN": apiToken,
			"ANYCASTCTL_TOKEN_FILE": empty}, []string{"zone", "list"}, 0, ""},
		{"missing file", map[string]string{"ANYCASTCTL_API": api}, []string{"zone", "list", "-token-file", filepath.Join(dir, "nope")}, 2,
			"-token-file: open " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{"no token in the file", map[string]string{"ANYCASTCTL_API": api, "ANYCASTCTL_TOKEN_FILE": empty}, []string{"zone", "list"}, 2,
			"$ANYCASTCTL_TOKEN_FILE " + empty + ": no token in the file"},
		{"both flags", map[string]string{"ANYCASTCTL_API": api}, []string{"zone", "list", "-token", apiToken, "-token-file", good}, 2,
			"use -token or -token-file, not both"},
		{"none", map[string]string{"ANYCASTCTL_API": api}, []string{"record", "list", "example.com"}, 2,
			"no API token: use -token or set $ANYCASTCTL_TOKEN, or read it from a file with -token-file or $ANYCASTCTL_TOKEN_FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cli(t, tc.vars, tc.args...)
			if code != tc.wantCode || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q (stdout %q)", code, errOut, tc.wantCode, tc.want, out)
			}
			if strings.Contains(errOut, apiToken) {
				t.Errorf("stderr shows the token: %q", errOut)
			}
		})
	}
}
