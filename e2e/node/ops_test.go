//go:build linux

package node

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

// jsonKeys returns the keys of every object in one JSON value, object by
// object, in the order they appear; an error if it is not JSON.
func jsonKeys(line string) ([][]string, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	var objects [][]string
	var walk func() error
	walk = func() error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			var keys []string
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				keys = append(keys, k.(string))
				if err := walk(); err != nil {
					return err
				}
			}
			objects = append(objects, keys)
			_, err = dec.Token() // }
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token() // ]
			return err
		}
		return nil
	}
	if err := walk(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("trailing data after the JSON value")
	}
	return objects, nil
}

// checkJSONLog parses every line of a JSON log: each must be one JSON
// object with no key twice in any object. It returns the lines decoded.
func checkJSONLog(t *testing.T, log string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for i, line := range strings.Split(strings.TrimSpace(log), "\n") {
		objects, err := jsonKeys(line)
		if err != nil {
			t.Errorf("log line %d is not JSON (%v): %s", i+1, err, line)
			continue
		}
		for _, keys := range objects {
			seen := map[string]bool{}
			for _, k := range keys {
				if seen[k] {
					t.Errorf("log line %d has the key %q twice: %s", i+1, k, line)
				}
				seen[k] = true
			}
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("log line %d: %v", i+1, err)
			continue
		}
		out = append(out, m)
	}
	return out
}

// findLog returns the first decoded line whose msg is msg.
func findLog(lines []map[string]any, msg string) map[string]any {
	for _, l := range lines {
		if l["msg"] == msg {
			return l
		}
	}
	return nil
}

// waitLog waits until the log holds s.
func (n *proc) waitLog(s string, timeout time.Duration) {
	n.t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(n.log.String(), s) {
		if time.Now().After(deadline) {
			n.t.Fatalf("the log has no %q after %v", s, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestJSONLog runs a node with every HTTP listener and JSON logs: every
// line is one JSON object, no key appears twice in one (the admin
// endpoint's logger used to add its component to the node's), and
// durations carry their unit ("startup":"12ms", not 12000000).
func TestJSONLog(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/example.com.zone", zoneText("example.com.", 1))
	admin := testkit.FreePort(t)
	n := startNode(t, nodeOpts{dir: dir, metrics: true, config: `identity: {name: json-node}
listen: {{.Listen}}
zones: [{name: example.com., file: example.com.zone}]
metrics: {listen: "{{.MetricsAddr}}"}
admin: {listen: "127.0.0.1:` + fmt.Sprint(admin) + `"}
log: {format: json, level: debug}
`})
	n.waitLog(`"msg":"admin listening"`, 5*time.Second)
	n.stop()
	lines := checkJSONLog(t, n.log.String())

	ready := findLog(lines, "node ready")
	if ready == nil {
		t.Fatal(`no "node ready" line`)
	}
	for _, l := range []struct {
		msg, key string
	}{{"node ready", "startup"}, {"zones loaded", "duration"}} {
		line := findLog(lines, l.msg)
		s, ok := line[l.key].(string)
		if !ok {
			t.Errorf("%q: %s is %#v, want a duration string", l.msg, l.key, line[l.key])
			continue
		}
		if _, err := time.ParseDuration(s); err != nil {
			t.Errorf("%q: %s %q: %v", l.msg, l.key, s, err)
		}
	}
	if a := findLog(lines, "admin listening"); a == nil || a["component"] != "admin" {
		t.Errorf(`"admin listening" line %v: want component "admin"`, a)
	}
}

// get fetches url and returns the status code and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestProbesAndBuildInfo checks /healthz and /readyz on both of the node's
// HTTP listeners (metrics and admin) and anycastd_build_info.
func TestProbesAndBuildInfo(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/example.com.zone", zoneText("example.com.", 1))
	admin := testkit.FreePort(t)
	n := startNode(t, nodeOpts{dir: dir, metrics: true, config: `identity: {name: probe-node}
listen: {{.Listen}}
zones: [{name: example.com., file: example.com.zone}]
metrics: {listen: "{{.MetricsAddr}}"}
admin: {listen: "127.0.0.1:` + fmt.Sprint(admin) + `"}
`})
	for _, base := range []string{"http://" + n.ports.MetricsAddr(), fmt.Sprintf("http://127.0.0.1:%d", admin)} {
		for path, want := range map[string]string{"/healthz": "ok\n", "/readyz": "ready\n"} {
			if code, body := get(t, base+path); code != http.StatusOK || body != want {
				t.Errorf("GET %s%s = %d %q, want 200 %q", base, path, code, body, want)
			}
		}
	}
	fams := n.scrape()
	f := fams["anycastd_build_info"]
	if f == nil || len(f.GetMetric()) != 1 || f.GetMetric()[0].GetGauge().GetValue() != 1 {
		t.Fatalf("anycastd_build_info = %v, want one series of value 1", f)
	}
	labels := map[string]string{}
	for _, l := range f.GetMetric()[0].GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	if labels["version"] == "" || !strings.HasPrefix(labels["goversion"], "go1.") {
		t.Errorf("anycastd_build_info labels %v: want a version and a Go version", labels)
	}
}

// TestCookiesOnByDefault: a node whose configuration says nothing of DNS
// cookies answers a query that carries a client cookie with a server
// cookie (RFC 7873 §5.2.3), as BIND does by default; cookies.enabled:
// false turns them off.
func TestCookiesOnByDefault(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/example.com.zone", zoneText("example.com.", 1))
	client := "0102030405060708"
	query := func(addr netip.AddrPort) *dns.EDNS0_COOKIE {
		m := question("www.example.com.", dns.TypeA, dns.ClassINET)
		m.SetEdns0(1232, false)
		o := m.IsEdns0()
		o.Option = append(o.Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: client})
		r := mustExchange(t, "udp", addr, m)
		if o := r.IsEdns0(); o != nil {
			for _, e := range o.Option {
				if c, ok := e.(*dns.EDNS0_COOKIE); ok {
					return c
				}
			}
		}
		return nil
	}
	for _, tt := range []struct {
		name, limits string
		want         bool
	}{
		{"default", "", true},
		{"off", "limits: {cookies: {enabled: false}}\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := startNode(t, nodeOpts{dir: dir, config: `identity: {name: cookie-node}
listen: {{.Listen}}
zones: [{name: example.com., file: example.com.zone}]
` + tt.limits})
			c := query(n.addr())
			switch {
			case !tt.want && c != nil:
				t.Errorf("COOKIE %s in the answer with cookies off", c.Cookie)
			case tt.want && c == nil:
				t.Error("no COOKIE option in the answer")
			case tt.want && (len(c.Cookie) != 2*(8+16) || !strings.HasPrefix(c.Cookie, client)):
				t.Errorf("COOKIE %s: want the client cookie and a 16-byte server cookie", c.Cookie)
			}
		})
	}
}
