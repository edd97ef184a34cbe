package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// TestMain removes the binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// anycastdBinary builds cmd/anycastd once for every test of the package
// (or takes $ANYCASTD_BIN).
func anycastdBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "anycastd-check-")
		if binErr == nil {
			binPath, binErr = testkit.Build(binDir, testkit.Module+"/cmd/anycastd", "ANYCASTD_BIN")
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// runBinary runs the real anycastd with args and returns its exit code,
// standard output and standard error.
func runBinary(t *testing.T, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run %s %v: %v", bin, args, err)
	}
	return code, out.String(), errb.String()
}

// The built binary: exit codes 0/1/2 and file:line problems on standard
// error, for good and broken configurations and zones.
func TestCheckBinary(t *testing.T) {
	bin := anycastdBinary(t)
	const conf, zones = "testdata/check/conf/", "testdata/check/zones/"
	for _, tc := range []struct {
		name   string
		args   []string
		exit   int
		stdout string // a line the output must hold
		stderr string
	}{
		{"checkconf-node", []string{"checkconf", conf + "node.yaml"}, 0, "node.yaml: valid node configuration", ""},
		{"checkconf-control", []string{"checkconf", "-role", "control", conf + "control.yaml"}, 0, "valid control configuration", ""},
		{"checkconf-monitor", []string{"checkconf", conf + "monitor.yaml"}, 0, "valid monitor configuration", ""},
		{"checkconf-bad", []string{"checkconf", conf + "node-bad.yaml"}, 1, "", "node-bad.yaml:7:17: limits.udp_max_size: must be between 512 and 4096, got 100"},
		{"checkconf-syntax", []string{"checkconf", conf + "syntax.yaml"}, 1, "", "syntax.yaml:2: invalid YAML"},
		{"checkconf-missing", []string{"checkconf", conf + "absent.yaml"}, 1, "", "no such file or directory"},
		{"checkconf-usage", []string{"checkconf"}, 2, "", "usage: anycastd checkconf"},
		{"checkconf-ambiguous", []string{"checkconf", conf + "log-only.yaml"}, 2, "", "give -role"},
		{"checkzone-good", []string{"checkzone", zones + "example.org.zone"}, 0, "zone example.org. valid, serial 2026120701, 4 records", ""},
		{"checkzone-bad", []string{"checkzone", "-origin", "example.com.", zones + "good.zone", zones + "glue.zone"}, 1,
			"good.zone: zone example.com. valid", "glue.zone:6: sub.example.com. NS: missing glue"},
		{"checkzone-syntax", []string{"checkzone", "-origin", "example.com", zones + "syntax.zone"}, 1, "", "syntax.zone:6:20: bad A"},
		{"checkzone-usage", []string{"checkzone"}, 2, "", "usage: anycastd checkzone"},
		{"help", []string{"-help"}, 0, "", "anycastd checkzone [-origin NAME] FILE..."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runBinary(t, bin, tc.args...)
			if code != tc.exit {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.exit, stdout, stderr)
			}
			if !strings.Contains(stdout, tc.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tc.stdout, stdout)
			}
			if !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, stderr)
			}
			if strings.Contains(stderr, "anycastd: exit status") {
				t.Errorf("the exit code leaked into the message:\n%s", stderr)
			}
		})
	}
}

// anycastd checkzone and Knot's kzonecheck give the same verdict on good
// and broken zones, except where anycastd is deliberately stricter (Knot
// loads these zones and serves them with the problem in them).
func TestCheckzoneAgreesWithKzonecheck(t *testing.T) {
	kzonecheck := testkit.RequireTool(t, "kzonecheck", "knot-dnssecutils")
	bin := anycastdBinary(t)
	for _, tc := range []struct {
		file   string
		origin string
		valid  bool // anycastd's verdict
		knot   bool // kzonecheck's verdict
		why    string
	}{
		{file: "good.zone", origin: "example.com.", valid: true, knot: true},
		{file: "example.org.zone", valid: true, knot: true},
		{file: "cname.zone", origin: "example.com."},
		{file: "dname.zone", origin: "example.com."},
		{file: "glue.zone", origin: "example.com."},
		{file: "nons.zone", origin: "example.com."},
		{file: "nosoa.zone", origin: "example.com."},
		{file: "syntax.zone", origin: "example.com."},
		{file: "many.zone", origin: "example.com."},
		{file: "example.net.zone"},
		{file: "dup.zone", origin: "example.com.", knot: true, why: "Knot merges a repeated record silently; anycastd names it"},
		{file: "outofzone.zone", origin: "example.com.", knot: true, why: "Knot drops out-of-zone data with a warning; anycastd refuses it"},
		{file: "soabelow.zone", origin: "example.com.", knot: true, why: "Knot keeps an SOA below the apex; anycastd refuses it (RFC 1035 §5.2)"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", "check", "zones", tc.file)
			args := []string{"checkzone", path}
			kargs := []string{path}
			if tc.origin != "" {
				args = []string{"checkzone", "-origin", tc.origin, path}
				kargs = []string{"-o", tc.origin, path}
			}
			code, _, stderr := runBinary(t, bin, args...)
			if got := code == 0; got != tc.valid {
				t.Errorf("anycastd checkzone: valid=%v (exit %d), want %v\n%s", got, code, tc.valid, stderr)
			}
			if code != 0 && code != 1 {
				t.Errorf("anycastd checkzone: exit %d, want 0 or 1", code)
			}
			out, err := exec.Command(kzonecheck, kargs...).CombinedOutput()
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatalf("kzonecheck: %v", err)
			}
			if got := err == nil; got != tc.knot {
				t.Errorf("kzonecheck: valid=%v, want %v\n%s", got, tc.knot, out)
			}
			if tc.valid != tc.knot {
				t.Logf("verdicts differ on purpose: %s", tc.why)
			} else if tc.why != "" {
				t.Errorf("verdicts agree, yet the case says why they differ: %s", tc.why)
			}
		})
	}
	// Every zone of the test data is compared.
	files, err := os.ReadDir(filepath.Join("testdata", "check", "zones"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 13 {
		t.Errorf("%d zone files in testdata/check/zones, 13 compared: add the new ones to the table", len(files))
	}
}
