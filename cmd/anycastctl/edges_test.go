package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/config"
)

// cliInteractive runs the command line with stdin as standard input, a
// terminal when interactive.
func cliInteractive(t *testing.T, vars map[string]string, stdin string, interactive bool, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	e := &env{
		stdout: &out, stderr: &errOut, now: func() time.Time { return now },
		getenv: func(k string) string { return vars[k] },
		stdin:  strings.NewReader(stdin), interactive: interactive,
	}
	code = run(t.Context(), args, e)
	return code, out.String(), errOut.String()
}

func zoneExists(t *testing.T, vars map[string]string, name string) bool {
	t.Helper()
	code, _, errOut := cli(t, vars, "zone", "show", name)
	if code != 0 && !strings.Contains(errOut, "not found") {
		t.Fatalf("zone show %s: exit %d, %s", name, code, errOut)
	}
	return code == 0
}

// TestZoneDeleteConfirmation checks that zone delete asks on a terminal,
// refuses without one unless -yes, and deletes only when confirmed.
func TestZoneDeleteConfirmation(t *testing.T) {
	vars := controlPlane(t)
	if code, _, errOut := cli(t, vars, "zone", "create", "example.com", "-ns", "ns1.example.net."); code != 0 {
		t.Fatal(errOut)
	}
	for _, tc := range []struct {
		name        string
		stdin       string
		interactive bool
		code        int
		stderr      string
	}{
		{"no terminal, no -yes", "y\n", false, 2, "add -yes to confirm (standard input is not a terminal to ask on)"},
		{"answered no", "n\n", true, 1, "Delete zone example.com. (serial 1, 2 records) from the control plane and every node? [y/N] anycastctl: zone example.com. not deleted\n"},
		{"no answer", "", true, 1, "zone example.com. not deleted"},
		{"answered something else", "delete\n", true, 1, "zone example.com. not deleted"},
	} {
		code, out, errOut := cliInteractive(t, vars, tc.stdin, tc.interactive, "zone", "delete", "example.com")
		if code != tc.code || !strings.Contains(errOut, tc.stderr) || out != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d with %q", tc.name, code, out, errOut, tc.code, tc.stderr)
		}
		if !zoneExists(t, vars, "example.com") {
			t.Fatalf("%s: the zone was deleted", tc.name)
		}
	}
	code, out, errOut := cliInteractive(t, vars, "yes\n", true, "zone", "delete", "example.com")
	if code != 0 || out != "deleted zone example.com\n" || zoneExists(t, vars, "example.com") {
		t.Errorf("answered yes: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, errOut := cli(t, vars, "zone", "create", "example.com", "-ns", "ns1.example.net."); code != 0 {
		t.Fatal(errOut)
	}
	code, out, errOut = cliInteractive(t, vars, "", false, "zone", "delete", "-yes", "example.com")
	if code != 0 || out != "deleted zone example.com\n" || zoneExists(t, vars, "example.com") {
		t.Errorf("-yes: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestZoneNamesOnTheCommandLine creates and deletes the root zone and a
// top-level domain, which need -allow-tld, and checks that names the
// nodes cannot serve are refused with the reason.
func TestZoneNamesOnTheCommandLine(t *testing.T) {
	vars := controlPlane(t)
	for _, name := range []string{".", "test"} {
		code, _, errOut := cli(t, vars, "zone", "create", name, "-ns", "ns1.example.net.")
		if code != 1 || !strings.Contains(errOut, "(http 400)") || !strings.Contains(errOut, "add -allow-tld") {
			t.Errorf("zone create %s: exit %d, stderr %q; want a 400 advising -allow-tld", name, code, errOut)
		}
		if code, out, errOut := cli(t, vars, "zone", "create", name, "-ns", "ns1.example.net.", "-allow-tld"); code != 0 {
			t.Errorf("zone create %s -allow-tld: exit %d, %s %s", name, code, out, errOut)
		}
		if code, out, errOut := cli(t, vars, "zone", "delete", name, "-yes"); code != 0 || out != "deleted zone "+name+"\n" {
			t.Errorf("zone delete %s: exit %d, stdout %q, stderr %q", name, code, out, errOut)
		}
		if zoneExists(t, vars, name) {
			t.Errorf("zone %s still there after its delete", name)
		}
	}
	for _, tc := range []struct{ name, why string }{
		{"*.test", "a wildcard cannot be a zone"},
		{`a\.b.test`, "escapes such as"},
		{`a\000b.test`, "escapes such as"},
	} {
		code, _, errOut := cli(t, vars, "zone", "create", tc.name, "-ns", "ns1.example.net.")
		if code != 1 || !strings.Contains(errOut, tc.why) || !strings.Contains(errOut, "(http 400)") {
			t.Errorf("zone create %s: exit %d, stderr %q; want a 400 saying %q", tc.name, code, errOut, tc.why)
		}
	}
	if code, _, errOut := cli(t, vars, "zone", "create", "0/25.2.0.192.in-addr.arpa", "-ns", "ns1.example.net."); code != 0 {
		t.Errorf("RFC 2317 zone: %s", errOut)
	}
}

// TestRecordSetData checks what record set sends: a TXT argument is one
// string as typed, and without -ttl an RRset keeps its TTL, a new one
// gets the SOA's.
func TestRecordSetData(t *testing.T) {
	vars := controlPlane(t)
	if code, _, errOut := cli(t, vars, "zone", "create", "example.com", "-ns", "ns1.example.net."); code != 0 {
		t.Fatal(errOut)
	}
	for _, tc := range []struct {
		args []string
		want string // the DATA column
	}{
		{[]string{"txt", "TXT", "hello world"}, `"hello world"`},
		{[]string{"txt", "txt", `say "hi" \o/`}, `"say \"hi\" \\o/"`},
		{[]string{"txt", "TXT", `"two" "strings"`}, `"two" "strings"`},
		{[]string{"txt", "TXT", "v=spf1 mx -all"}, `"v=spf1 mx -all"`},
		{[]string{"spf", "SPF", "v=spf1 -all"}, `"v=spf1 -all"`},
		{[]string{"mx", "MX", "10 mail"}, "10 mail.example.com."},
	} {
		args := append([]string{"record", "set", "example.com"}, tc.args...)
		code, out, errOut := cli(t, vars, args...)
		if code != 0 {
			t.Errorf("%v: exit %d, %s", tc.args, code, errOut)
			continue
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if got := lines[len(lines)-1]; !strings.HasSuffix(got, "  "+tc.want) {
			t.Errorf("%v stored %q, want data %s", tc.args, got, tc.want)
		}
	}
	// TXT with two arguments: two records of one string each.
	code, out, errOut := cli(t, vars, "record", "set", "example.com", "two", "TXT", "first one", "second one")
	if code != 0 || !strings.Contains(out, `"first one"`) || !strings.Contains(out, `"second one"`) {
		t.Errorf("two TXT records: exit %d\n%s%s", code, out, errOut)
	}

	ttlOf := func(args ...string) string {
		t.Helper()
		code, out, errOut := cli(t, vars, append([]string{"record", "set", "example.com"}, args...)...)
		if code != 0 {
			t.Fatalf("%v: %s", args, errOut)
		}
		return strings.Fields(strings.Split(strings.TrimSpace(out), "\n")[2])[1]
	}
	if got := ttlOf("www", "A", "192.0.2.1"); got != "3600" {
		t.Errorf("new RRset without -ttl: TTL %s, want the SOA's 3600", got)
	}
	if got := ttlOf("www", "A", "-ttl", "300", "192.0.2.1"); got != "300" {
		t.Errorf("-ttl 300: TTL %s", got)
	}
	if got := ttlOf("www", "A", "192.0.2.2"); got != "300" {
		t.Errorf("RRset rewritten without -ttl: TTL %s, want its own 300", got)
	}
	if got := ttlOf("www", "A", "-ttl", "0", "192.0.2.2"); got != "0" {
		t.Errorf("-ttl 0: TTL %s", got)
	}
}

// TestDefaultAPIAddress checks that anycastctl looks for the API where
// anycastd control listens by default.
func TestDefaultAPIAddress(t *testing.T) {
	if want := "http://" + config.DefaultAPIListen.String(); defaultAPI != want {
		t.Errorf("anycastctl's default API %s, anycastd control's %s", defaultAPI, want)
	}
	if defaultAPI != "http://127.0.0.1:8080" {
		t.Errorf("default API %s, want http://127.0.0.1:8080 (anycastd standalone's -api)", defaultAPI)
	}
	code, _, errOut := cli(t, map[string]string{"ANYCASTCTL_TOKEN": apiToken}, "zone", "list")
	if code != 1 || !strings.Contains(errOut, "http://127.0.0.1:8080/v1/zones") {
		t.Errorf("zone list without -api: exit %d, stderr %q", code, errOut)
	}
}
