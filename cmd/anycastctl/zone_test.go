package main

import (
	"context"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/role/control"
	"github.com/anycastdns/anycastdns/internal/store"
)

const apiToken = "cli-test-token-0123456789"

// controlPlane serves the API over a real store whose clock is now, and
// returns the environment that points anycastctl at it.
func controlPlane(t *testing.T) map[string]string {
	t.Helper()
	s, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "zones.db"), nil,
		store.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler(control.NewBackend(s), api.Config{Tokens: []string{apiToken}}, nil))
	t.Cleanup(func() {
		srv.Close()
		s.Close()
	})
	return map[string]string{"ANYCASTCTL_API": srv.URL, "ANYCASTCTL_TOKEN": apiToken}
}

const exampleOrg = `$ORIGIN example.org.
$TTL 3600
@	IN SOA ns1 hostmaster 7 7200 3600 1209600 300
	IN NS ns1
ns1	IN A 192.0.2.2
`

// TestZoneAndRecordCommands runs the zone and record commands in order
// against one control plane and checks what each prints.
func TestZoneAndRecordCommands(t *testing.T) {
	vars := controlPlane(t)
	dir := t.TempDir()
	zoneFile := filepath.Join(dir, "example.org.zone")
	if err := os.WriteFile(zoneFile, []byte(exampleOrg), 0o644); err != nil {
		t.Fatal(err)
	}
	exported := filepath.Join(dir, "out", "export.zone")
	if err := os.Mkdir(filepath.Dir(exported), 0o755); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		args []string
		want string // stdout; a regexp when it starts with ^
	}{
		{[]string{"zone", "list"}, "no zones\n"},
		{[]string{"zone", "create", "Example.com", "-ns", "ns1", "-ns", "ns2.example.net."},
			"created zone example.com.: serial 1, 3 records, serial policy increment\n"},
		{[]string{"zone", "create", "example.org", "-file", zoneFile, "-policy", "date"},
			"created zone example.org.: serial 2026031400, 3 records, serial policy date\n"},
		{[]string{"zone", "list"}, "" +
			"ZONE          SERIAL      RECORDS  POLICY     UPDATED\n" +
			"example.com.  1           3        increment  2026-03-14 15:09:26Z\n" +
			"example.org.  2026031400  3        date       2026-03-14 15:09:26Z\n"},
		{[]string{"record", "set", "example.com", "www", "A", "-ttl", "300", "192.0.2.1", "192.0.2.2"}, "" +
			"zone example.com. serial 2\n" +
			"NAME              TTL  TYPE  DATA\n" +
			"www.example.com.  300  A     192.0.2.1\n" +
			"www.example.com.  300  A     192.0.2.2\n"},
		{[]string{"record", "set", "example.com", "@", "MX", "10 mail", "20 mx.example.net."}, "" +
			"zone example.com. serial 3\n" +
			"NAME          TTL   TYPE  DATA\n" +
			"example.com.  3600  MX    10 mail.example.com.\n" +
			"example.com.  3600  MX    20 mx.example.net.\n"},
		{[]string{"record", "list", "example.com", "www", "A"}, `^NAME +TTL +TYPE +DATA\n` +
			`www\.example\.com\. +300 +A +192\.0\.2\.1\n` +
			`www\.example\.com\. +300 +A +192\.0\.2\.2\n` +
			`ETag: "[0-9a-f]{24}"\n$`},
		{[]string{"record", "list", "example.com", "www"}, "" +
			"NAME              TTL  TYPE  DATA\n" +
			"www.example.com.  300  A     192.0.2.1\n" +
			"www.example.com.  300  A     192.0.2.2\n"},
		{[]string{"record", "delete", "example.com", "www", "a"}, "deleted www A from zone example.com, serial 4\n"},
		{[]string{"record", "list", "example.com", "www"}, "no records\n"},
		{[]string{"zone", "show", "example.com"}, "" +
			"zone example.com.  serial 4  records 5  policy increment  updated 2026-03-14 15:09:26Z\n\n" +
			"NAME          TTL   TYPE  DATA\n" +
			"example.com.  3600  SOA   ns1.example.com. hostmaster.example.com. 4 7200 3600 1209600 300\n" +
			"example.com.  3600  NS    ns1.example.com.\n" +
			"example.com.  3600  NS    ns2.example.net.\n" +
			"example.com.  3600  MX    10 mail.example.com.\n" +
			"example.com.  3600  MX    20 mx.example.net.\n"},
		{[]string{"zone", "export", "example.org", "-o", exported}, ""},
		{[]string{"zone", "import", "example.org", zoneFile}, "imported zone example.org.: serial 2026031400, 3 records\n"},
		{[]string{"zone", "delete", "example.org", "-yes"}, "deleted zone example.org\n"},
		{[]string{"zone", "list", "-json"}, `^\{\n  "zones": \[\n    \{\n      "name": "example.com.",\n      "serial": 4,`},
	}
	for _, st := range steps {
		code, out, errOut := cli(t, vars, st.args...)
		if code != 0 || errOut != "" {
			t.Fatalf("%v: exit %d, stderr %q", st.args, code, errOut)
		}
		if strings.HasPrefix(st.want, "^") {
			if !regexp.MustCompile(st.want).MatchString(out) {
				t.Errorf("%v printed\n%s\nwant it to match %s", st.args, out, st.want)
			}
		} else if out != st.want {
			t.Errorf("%v printed\n%q\nwant\n%q", st.args, out, st.want)
		}
	}
	got, err := os.ReadFile(exported)
	if err != nil {
		t.Fatal(err)
	}
	want := "example.org.\t3600\tIN\tSOA\tns1.example.org. hostmaster.example.org. 2026031400 7200 3600 1209600 300\n" +
		"example.org.\t3600\tIN\tNS\tns1.example.org.\n" +
		"ns1.example.org.\t3600\tIN\tA\t192.0.2.2\n"
	if string(got) != want {
		t.Errorf("exported\n%s\nwant\n%s", got, want)
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(exported), ".anycastctl-export-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestIfMatch writes with the ETag that record list printed: once, then it
// is stale.
func TestIfMatch(t *testing.T) {
	vars := controlPlane(t)
	if code, _, errOut := cli(t, vars, "zone", "create", "example.com", "-ns", "ns1.example.net."); code != 0 {
		t.Fatal(errOut)
	}
	if code, _, errOut := cli(t, vars, "record", "set", "example.com", "www", "A", "192.0.2.1"); code != 0 {
		t.Fatal(errOut)
	}
	_, out, _ := cli(t, vars, "record", "list", "example.com", "www", "A")
	m := regexp.MustCompile(`ETag: (".*")`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no ETag in %q", out)
	}
	if code, _, errOut := cli(t, vars, "record", "set", "-if-match", m[1], "example.com", "www", "A", "192.0.2.2"); code != 0 {
		t.Fatalf("first write with the ETag: %s", errOut)
	}
	code, _, errOut := cli(t, vars, "record", "set", "-if-match", m[1], "example.com", "www", "A", "192.0.2.3")
	if code != 1 || !strings.Contains(errOut, "precondition failed: the RRset's ETag is ") {
		t.Errorf("second write with the same ETag: exit %d, stderr %q", code, errOut)
	}
}

func TestZoneAndRecordFailures(t *testing.T) {
	vars := controlPlane(t)
	if code, _, errOut := cli(t, vars, "zone", "create", "example.com", "-ns", "ns1.example.net."); code != 0 {
		t.Fatal(errOut)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	wrongToken := map[string]string{"ANYCASTCTL_API": vars["ANYCASTCTL_API"], "ANYCASTCTL_TOKEN": "wrong-token-0123456789"}
	noToken := map[string]string{"ANYCASTCTL_API": vars["ANYCASTCTL_API"]}
	for _, tc := range []struct {
		name     string
		vars     map[string]string
		args     []string
		wantCode int
		want     []string // in stderr
	}{
		{"no subcommand", vars, []string{"zone"}, 2, []string{"anycastctl zone: missing subcommand (create, list, show, delete, import, export)\nusage: anycastctl zone "}},
		{"unknown subcommand", vars, []string{"record", "add"}, 2, []string{`anycastctl record: unknown subcommand "add" (want set, delete, list)`}},
		{"too few arguments", vars, []string{"record", "set", "example.com", "www", "A"}, 2,
			[]string{"anycastctl record: set: want 4 to 65536 arguments, got 3 (usage: anycastctl record set ZONE NAME TYPE"}},
		{"create without content", vars, []string{"zone", "create", "example.net"}, 2, []string{"create: want -file FILE or at least one -ns NAME"}},
		{"bad flag", vars, []string{"zone", "list", "-bogus"}, 2, []string{"list: flag provided but not defined: -bogus"}},
		{"ttl too big", vars, []string{"record", "set", "-ttl", "2147483648", "example.com", "www", "A", "192.0.2.1"}, 2, []string{"-ttl must be at most 2147483647"}},
		{"no token", noToken, []string{"zone", "list"}, 2, []string{"no API token: use -token or set $ANYCASTCTL_TOKEN"}},
		{"bad api url", map[string]string{"ANYCASTCTL_TOKEN": apiToken}, []string{"zone", "list", "-api", "ftp://x"}, 2, []string{`API URL "ftp://x"`}},
		{"wrong token", wrongToken, []string{"zone", "list"}, 1, []string{"(http 401)", "Check the token (-token or $ANYCASTCTL_TOKEN)"}},
		{"token flag beats the environment", wrongToken, []string{"zone", "list", "-token", apiToken}, 0, nil},
		{"control plane down", vars, []string{"zone", "list", "-api", closed}, 1, []string{"connection refused", "Is the control plane (anycastd control) running with api.listen at " + closed}},
		{"invalid data", vars, []string{"record", "set", "example.com", "www", "A", "192.0.2.300"}, 1,
			[]string{`records[0]: invalid A record "192.0.2.300"`, "(http 400)"}},
		{"cname beside data", vars, []string{"record", "set", "example.com", "@", "CNAME", "www"}, 1, []string{"CNAME and other data at the same name"}},
		{"unknown zone", vars, []string{"zone", "show", "example.net"}, 1, []string{"zone example.net.: not found (http 404)"}},
		{"zone exists", vars, []string{"zone", "create", "example.com", "-ns", "ns1.example.net."}, 1, []string{"zone example.com.: already exists (http 409)"}},
		{"missing file", vars, []string{"zone", "import", "example.com", "/nonexistent/zone"}, 1, []string{"open /nonexistent/zone: no such file or directory"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cli(t, tc.vars, tc.args...)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d (stdout %q, stderr %q)", code, tc.wantCode, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q lacks %q", errOut, w)
				}
			}
			if strings.Contains(errOut, apiToken) {
				t.Errorf("stderr shows the token: %q", errOut)
			}
		})
	}
}

func TestZoneAndRecordHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // prefix of stdout
	}{
		{[]string{"zone", "-help"}, "usage: anycastctl zone create|list|show|delete|import|export"},
		{[]string{"help", "record"}, "usage: anycastctl record set|delete|list"},
		{[]string{"zone", "create", "-help"}, "usage: anycastctl zone create ZONE (-file FILE|- | -ns NAME...)"},
		{[]string{"record", "set", "--help"}, "usage: anycastctl record set ZONE NAME TYPE [-ttl N]"},
	} {
		code, out, errOut := cli(t, nil, tc.args...)
		if code != 0 || errOut != "" || !strings.HasPrefix(out, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, stdout %q; want it to start with %q", tc.args, code, errOut, out, tc.want)
		}
		if strings.Contains(out, apiToken) {
			t.Errorf("%v: help shows a token", tc.args)
		}
	}
	// The token from the environment never shows in the help.
	code, out, _ := cli(t, map[string]string{"ANYCASTCTL_TOKEN": apiToken}, "zone", "list", "-help")
	if code != 0 || strings.Contains(out, apiToken) || !strings.Contains(out, "-token token") {
		t.Errorf("zone list -help: exit %d\n%s", code, out)
	}
}
