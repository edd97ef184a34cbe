package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPoolCommands defines, shows, lists and deletes pools against a real
// control plane and checks what each prints.
func TestPoolCommands(t *testing.T) {
	vars := controlPlane(t)
	poolFile := filepath.Join(t.TempDir(), "pool.json")
	if err := os.WriteFile(poolFile, []byte(`{"ttl": 60, "policy": ["up", "geo"], "check": {"type": "https", "path": "/health", "interval": "1s"}, "endpoints": [
		{"address": "2001:db8::1", "region": "eu"}, {"address": "2001:db8::2", "region": "us"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"zone", "create", "example.com", "-ns", "ns1"}, "created zone example.com.: serial 1, 2 records, serial policy increment\n"},
		{[]string{"pool", "list", "example.com"}, "no pools\n"},
		{[]string{"pool", "set", "example.com", "svc", "A", "-ttl", "20", "-policy", "up,weighted",
			"192.0.2.1,weight=70,region=eu", "192.0.2.2,weight=30,capacity=100"}, "" +
			"zone example.com. serial 2\n" +
			"svc.example.com. A  ttl 20  policy up,weighted\n" +
			"  ENDPOINT   WEIGHT  REGION  CAPACITY\n" +
			"  192.0.2.1  70      eu      -\n" +
			"  192.0.2.2  30      -       100\n"},
		{[]string{"pool", "set", "example.com", "geo", "A", "-policy", "geo,first-n", "-region", "198.51.100.0/24=eu",
			"-region", "203.0.113.0/24=us", "192.0.2.10,region=eu", "192.0.2.20,region=us"}, "" +
			"zone example.com. serial 3\n" +
			"geo.example.com. A  ttl 30  policy geo,first-n\n" +
			"  regions 198.51.100.0/24=eu 203.0.113.0/24=us\n" +
			"  ENDPOINT    WEIGHT  REGION  CAPACITY\n" +
			"  192.0.2.10  1       eu      -\n" +
			"  192.0.2.20  1       us      -\n"},
		{[]string{"pool", "delete", "example.com", "geo", "A"}, "deleted pool geo A from zone example.com, serial 4\n"},
		{[]string{"pool", "set", "example.com", "svc", "AAAA", "-file", poolFile}, "" +
			"zone example.com. serial 5\n" +
			"svc.example.com. AAAA  ttl 60  policy up,geo\n" +
			"  check https port 443 /health status 200 every 1s timeout 500ms rise 2 fall 3 quorum 2\n" +
			"  ENDPOINT     WEIGHT  REGION  CAPACITY\n" +
			"  2001:db8::1  1       eu      -\n" +
			"  2001:db8::2  1       us      -\n"},
		{[]string{"pool", "set", "example.com", "www", "A", "-policy", "first-n", "-first-n", "1", "edge.example.net"}, "" +
			"zone example.com. serial 6\n" +
			"www.example.com. A  ttl 30  policy first-n  first-n 1\n" +
			"  ENDPOINT           WEIGHT  REGION  CAPACITY\n" +
			"  edge.example.net.  1       -       -\n"},
		{[]string{"pool", "get", "example.com", "svc", "a"}, "" +
			"svc.example.com. A  ttl 20  policy up,weighted\n" +
			"  ENDPOINT   WEIGHT  REGION  CAPACITY\n" +
			"  192.0.2.1  70      eu      -\n" +
			"  192.0.2.2  30      -       100\n"},
		{[]string{"pool", "delete", "example.com", "www", "A"}, "deleted pool www A from zone example.com, serial 7\n"},
		{[]string{"pool", "list", "example.com"}, "" +
			"svc.example.com. A  ttl 20  policy up,weighted\n" +
			"  ENDPOINT   WEIGHT  REGION  CAPACITY\n" +
			"  192.0.2.1  70      eu      -\n" +
			"  192.0.2.2  30      -       100\n" +
			"\n" +
			"svc.example.com. AAAA  ttl 60  policy up,geo\n" +
			"  check https port 443 /health status 200 every 1s timeout 500ms rise 2 fall 3 quorum 2\n" +
			"  ENDPOINT     WEIGHT  REGION  CAPACITY\n" +
			"  2001:db8::1  1       eu      -\n" +
			"  2001:db8::2  1       us      -\n"},
	}
	for _, st := range steps {
		code, out, errOut := cli(t, vars, st.args...)
		if code != 0 || errOut != "" {
			t.Fatalf("%v: exit %d, stderr %q", st.args, code, errOut)
		}
		if out != st.want {
			t.Errorf("%v printed\n%s\nwant\n%s", st.args, out, st.want)
		}
	}
	code, out, _ := cli(t, vars, "pool", "list", "example.com", "-json")
	if code != 0 || !strings.Contains(out, `"weight": 70`) || !strings.Contains(out, `"type": "AAAA"`) {
		t.Errorf("-json: exit %d\n%s", code, out)
	}
}

// TestPoolFailures: bad input is refused naming what is wrong, locally or
// by the API.
func TestPoolFailures(t *testing.T) {
	vars := controlPlane(t)
	if code, _, errOut := cli(t, vars, "zone", "create", "example.com", "-ns", "ns1"); code != 0 {
		t.Fatal(errOut)
	}
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"pool", "set", "example.com", "svc", "A"}, 2, "no ENDPOINT given"},
		{[]string{"pool", "set", "example.com", "svc", "A", "192.0.2.1,weight=x"}, 2, `weight "x": want a whole number`},
		{[]string{"pool", "set", "example.com", "svc", "A", "192.0.2.1,color=red"}, 2, `unknown key "color"`},
		{[]string{"pool", "set", "example.com", "svc", "A", "192.0.2.1,weight"}, 2, `"weight" is not KEY=VALUE`},
		{[]string{"pool", "set", "example.com", "svc", "A", "-region", "198.51.100.0/24", "192.0.2.1"}, 2, "want PREFIX=REGION"},
		{[]string{"pool", "set", "example.com", "svc", "A", "-region", "198.51.100.1/24=eu", "192.0.2.1"}, 1, "host bits set"},
		{[]string{"pool", "set", "example.com", "svc", "A", "2001:db8::1"}, 1, "endpoints[0].address 2001:db8::1: not an address of type A"},
		{[]string{"pool", "set", "example.com", "svc", "A", "-policy", "closest", "192.0.2.1"}, 1, `policy[0] "closest": unknown`},
		{[]string{"pool", "set", "example.com", "svc", "MX", "192.0.2.1"}, 1, "type MX: a pool steers A or AAAA"},
		{[]string{"pool", "get", "example.com", "svc", "A"}, 1, "not found"},
		{[]string{"pool", "delete", "example.com", "svc", "A"}, 1, "no pool for svc.example.com. A (http 404)"},
	}
	for _, tt := range tests {
		code, _, errOut := cli(t, vars, tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d with %q", tt.args, code, errOut, tt.code, tt.want)
		}
	}
}
