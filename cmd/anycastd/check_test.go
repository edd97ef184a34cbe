package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

// checkOutput runs a check command in process and renders its exit code,
// standard output and standard error for a golden file. The working
// directory is written as $PWD: zone paths of a node configuration are
// made absolute by the loader.
func checkOutput(t *testing.T, run func(args []string, stdout, stderr *bytes.Buffer) error, args []string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(args, &stdout, &stderr)
	wd, werr := os.Getwd()
	if werr != nil {
		t.Fatal(werr)
	}
	clean := func(s string) string { return strings.ReplaceAll(s, wd, "$PWD") }
	return fmt.Sprintf("$ anycastd %s\nexit %d\n--- stdout\n%s--- stderr\n%s",
		strings.Join(args, " "), exitCode(err), clean(stdout.String()), clean(stderr.String()))
}

func TestCheckconf(t *testing.T) {
	const conf = "testdata/check/conf/"
	for _, tc := range []struct {
		name string
		args []string
		exit int
	}{
		{"node", []string{conf + "node.yaml"}, 0},
		{"node-role", []string{"-role", "node", conf + "node.yaml"}, 0},
		{"node-zones", []string{"-zones", conf + "node.yaml"}, 0},
		{"node-zones-bad", []string{"-role", "node", "-zones", conf + "node-badzone.yaml"}, 1},
		{"node-bad", []string{conf + "node-bad.yaml"}, 1},
		{"node-geo-bad", []string{conf + "node-badgeo.yaml"}, 1},
		{"node-warnings", []string{conf + "node-public.yaml"}, 0},
		{"node-typo", []string{conf + "node-typo.yaml"}, 1},
		{"node-as-control", []string{"-role", "control", conf + "node.yaml"}, 1},
		{"control", []string{conf + "control.yaml"}, 0},
		{"control-bad", []string{conf + "control-bad.yaml"}, 1},
		{"monitor", []string{conf + "monitor.yaml"}, 0},
		{"monitor-bad", []string{conf + "monitor-bad.yaml"}, 1},
		{"syntax", []string{"-role", "node", conf + "syntax.yaml"}, 1},
		{"syntax-guessed", []string{conf + "syntax.yaml"}, 1},
		{"missing-file", []string{conf + "absent.yaml"}, 1},
		{"ambiguous", []string{conf + "log-only.yaml"}, 2},
		{"ambiguous-role", []string{"-role", "monitor", conf + "log-only.yaml"}, 1},
		{"standalone", []string{"-role", "standalone", conf + "node.yaml"}, 2},
		{"bad-role", []string{"-role", "pop", conf + "node.yaml"}, 2},
		{"zones-guessed-control", []string{"-zones", conf + "control.yaml"}, 2},
		{"zones-not-node", []string{"-role", "control", "-zones", conf + "control.yaml"}, 2},
		{"no-file", nil, 2},
		{"two-files", []string{conf + "node.yaml", conf + "control.yaml"}, 2},
		{"bad-flag", []string{"-frobnicate", conf + "node.yaml"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := func(args []string, stdout, stderr *bytes.Buffer) error { return runCheckconf(args, stdout, stderr) }
			got := checkOutput(t, run, append([]string{}, tc.args...))
			if want := fmt.Sprintf("exit %d\n", tc.exit); !strings.Contains(got, want) {
				t.Errorf("want %q, got:\n%s", want, got)
			}
			testkit.Golden(t, filepath.Join("testdata", "check", "golden", "checkconf-"+tc.name+".txt"), []byte(strings.Replace(got, "$ anycastd ", "$ anycastd checkconf ", 1)))
		})
	}
}

func TestCheckzone(t *testing.T) {
	const zones = "testdata/check/zones/"
	o := []string{"-origin", "example.com."}
	for _, tc := range []struct {
		name string
		args []string
		exit int
	}{
		{"good", append(o, zones+"good.zone"), 0},
		{"origin-from-name", []string{zones + "example.org.zone"}, 0},
		{"origin-from-name-wrong", []string{zones + "good.zone"}, 1},
		{"cname", append(o, zones+"cname.zone"), 1},
		{"dname", append(o, zones+"dname.zone"), 1},
		{"dup", append(o, zones+"dup.zone"), 1},
		{"glue", append(o, zones+"glue.zone"), 1},
		{"no-ns", append(o, zones+"nons.zone"), 1},
		{"no-soa", append(o, zones+"nosoa.zone"), 1},
		{"out-of-zone", append(o, zones+"outofzone.zone"), 1},
		{"soa-below-apex", append(o, zones+"soabelow.zone"), 1},
		{"syntax", append(o, zones+"syntax.zone"), 1},
		{"many-problems", append(o, zones+"many.zone"), 1},
		{"several-files", append(o, zones+"good.zone", zones+"cname.zone", zones+"syntax.zone"), 1},
		{"missing-file", append(o, zones+"absent.zone"), 1},
		{"no-files", nil, 2},
		{"bad-origin", []string{"-origin", "a..b", zones + "good.zone"}, 2},
		{"bad-flag", []string{"-o", "example.com.", zones + "good.zone"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := func(args []string, stdout, stderr *bytes.Buffer) error { return runCheckzone(args, stdout, stderr) }
			got := checkOutput(t, run, append([]string{}, tc.args...))
			if want := fmt.Sprintf("exit %d\n", tc.exit); !strings.Contains(got, want) {
				t.Errorf("want %q, got:\n%s", want, got)
			}
			testkit.Golden(t, filepath.Join("testdata", "check", "golden", "checkzone-"+tc.name+".txt"), []byte(strings.Replace(got, "$ anycastd ", "$ anycastd checkzone ", 1)))
		})
	}
}
