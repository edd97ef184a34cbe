//go:build linux

package standalone

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

// daemon is an anycastd process started by a test (testkit.Process: its
// log in a file, SIGTERM at the end of the test, SIGKILL 15 s later).
type daemon struct {
	t *testing.T
	*testkit.Process
}

// startDaemon runs anycastd with args in dir.
func startDaemon(t *testing.T, dir string, args ...string) *daemon {
	t.Helper()
	p := testkit.StartProcessIn(t, "anycastd "+args[0], dir, filepath.Join(t.TempDir(), "anycastd.log"),
		append([]string{testkit.BuildAnycastd(t)}, args...)...)
	p.StopAfter = 15 * time.Second
	return &daemon{t: t, Process: p}
}

// stop sends SIGTERM and waits; it returns the exit error.
func (d *daemon) stop() error { return d.Stop(d.t) }

// waitLog waits until the log, after offset from, contains s, and returns
// that part of the log. The process must stay up meanwhile.
func (d *daemon) waitLog(from int, s string) string {
	d.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if d.Exited() {
			d.t.Fatalf("anycastd exited (%v) waiting for %q", d.Err(), s)
		}
		if l := d.Log()[from:]; strings.Contains(l, s) {
			return l
		}
		time.Sleep(10 * time.Millisecond)
	}
	d.t.Fatalf("no %q in the log after 15s", s)
	return ""
}

// hup sends SIGHUP and waits for the log to show want, returning what was
// logged since.
func (d *daemon) hup(want string) string {
	d.t.Helper()
	from := len(d.Log())
	if err := d.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		d.t.Fatal(err)
	}
	return d.waitLog(from, want)
}

// httpGet returns the status and body of GET url with a bearer token ("" =
// none).
func httpGet(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitReady polls url until it answers 200.
func waitReady(t *testing.T, d *daemon, url string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	c := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		if d.Exited() {
			t.Fatalf("anycastd exited before it was ready: %v", d.Err())
		}
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s not ready after 20s", url)
}

// tokenWorks reports whether the API at api accepts token.
func tokenWorks(t *testing.T, api, token string) bool {
	t.Helper()
	code, body := httpGet(t, "http://"+api+"/v1/zones", token)
	switch code {
	case http.StatusOK:
		return true
	case http.StatusUnauthorized:
		return false
	}
	t.Fatalf("GET /v1/zones: %d %s", code, body)
	return false
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// notifyReceiver is a secondary on loopback that acknowledges NOTIFYs and
// records their zones.
type notifyReceiver struct {
	addr  string
	mu    sync.Mutex
	zones []string
}

func startNotifyReceiver(t *testing.T) *notifyReceiver {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &notifyReceiver{addr: pc.LocalAddr().String()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			m := new(dns.Msg)
			if m.Unpack(buf[:n]) != nil || m.Opcode != dns.OpcodeNotify || len(m.Question) != 1 {
				continue
			}
			r.mu.Lock()
			r.zones = append(r.zones, m.Question[0].Name)
			r.mu.Unlock()
			a := new(dns.Msg)
			a.SetReply(m)
			a.Authoritative = true
			if b, err := a.Pack(); err == nil {
				_, _ = pc.WriteTo(b, from)
			}
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return r
}

func (r *notifyReceiver) got(zone string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, z := range r.zones {
		if z == zone {
			return true
		}
	}
	return false
}

func soaRcode(t *testing.T, addr, zone string) int {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(zone, dns.TypeSOA)
	r, _, err := (&dns.Client{Net: "tcp", Timeout: 2 * time.Second}).Exchange(q, addr)
	if err != nil {
		t.Fatalf("SOA %s from %s: %v", zone, addr, err)
	}
	return r.Rcode
}

const (
	tokenA = "first-token-0123456789"
	tokenB = "second-token-0123456789"
)

// TestControlSIGHUP reloads a running anycastd control: a good
// configuration changes the token, the transfer ACL, the notify targets and
// the log level; a bad one is logged with its file:line and the old one
// keeps serving. The process survives both.
func TestControlSIGHUP(t *testing.T) {
	dir := t.TempDir()
	api, metrics, xfr := testkit.FreeAddr(t), testkit.FreeAddr(t), testkit.FreeAddr(t)
	rcv := startNotifyReceiver(t)
	cfgPath := filepath.Join(dir, "control.yaml")
	config := func(token, acl, notify, level string) string {
		return fmt.Sprintf(`data_dir: data
api:
  listen: %s
  tokens: [%q]
metrics: {listen: %s}
xfr:
  listen: [%s]
  tsig_keys: [{name: k1., secret: "KmSBOQmjtyYzILPFjRYDIUmaEGkpbDVAkwbzmB8pfLE="}]
  allow_transfer: [%s]
  notify: [%s]
log: {level: %s}
`, api, token, metrics, xfr, acl, notify, level)
	}
	writeFile(t, cfgPath, config(tokenA, "{prefix: 127.0.0.0/8, key: k1.}", "", "info"), 0o600)
	d := startDaemon(t, dir, "control", "-config", cfgPath)
	waitReady(t, d, "http://"+api+"/readyz")

	// A zone to transfer and notify.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://"+api+"/v1/zones", strings.NewReader(
		`{"name":"example.com.","records":["example.com. 3600 IN SOA ns1.example.com. h.example.com. 1 7200 3600 1209600 300",
		"example.com. 3600 IN NS ns1.example.com.","ns1.example.com. 3600 IN A 192.0.2.1"]}`))
	req.Header.Set("Authorization", "Bearer "+tokenA)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create zone: %s", resp.Status)
	}
	if !tokenWorks(t, api, tokenA) || tokenWorks(t, api, tokenB) {
		t.Fatal("before the reload: want token A accepted and B refused")
	}
	if rc := soaRcode(t, xfr, "example.com."); rc != dns.RcodeRefused {
		t.Fatalf("unsigned SOA before the reload: %s, want REFUSED (the ACL wants key k1.)", dns.RcodeToString[rc])
	}

	t.Log("a good configuration")
	writeFile(t, cfgPath, config(tokenB, "{prefix: 127.0.0.0/8}", fmt.Sprintf("{addr: %q}", rcv.addr), "debug"), 0o600)
	d.hup("msg=reloaded")
	if !tokenWorks(t, api, tokenB) || tokenWorks(t, api, tokenA) {
		t.Error("after the reload: want token B accepted and A refused")
	}
	if rc := soaRcode(t, xfr, "example.com."); rc != dns.RcodeSuccess {
		t.Errorf("unsigned SOA after the reload: %s, want NOERROR (the ACL takes any key now)", dns.RcodeToString[rc])
	}
	deadline := time.Now().Add(10 * time.Second)
	for !rcv.got("example.com.") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !rcv.got("example.com.") {
		t.Error("the notify target added by the reload was not notified of example.com.")
	}
	from := len(d.Log())
	tokenWorks(t, api, tokenB)
	if !strings.Contains(d.waitLog(from, "api request"), "level=DEBUG") {
		t.Error("no debug line after the reload set log.level debug")
	}

	t.Log("a bad configuration: line 4 has a token too short")
	writeFile(t, cfgPath, config("short", "{prefix: 127.0.0.0/8}", "", "info"), 0o600)
	out := d.hup("configuration rejected")
	if !strings.Contains(out, cfgPath+":4:") {
		t.Errorf("the rejection does not name %s:4:\n%s", cfgPath, out)
	}
	if !tokenWorks(t, api, tokenB) {
		t.Error("after a rejected reload: token B no longer accepted")
	}
	if rc := soaRcode(t, xfr, "example.com."); rc != dns.RcodeSuccess {
		t.Errorf("unsigned SOA after a rejected reload: %s, want NOERROR", dns.RcodeToString[rc])
	}

	t.Log("not YAML at all")
	writeFile(t, cfgPath, "api: [\n", 0o600)
	out = d.hup("configuration rejected")
	if !strings.Contains(out, cfgPath+":") {
		t.Errorf("the rejection does not name %s:\n%s", cfgPath, out)
	}

	code, body := httpGet(t, "http://"+metrics+"/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{`anycastd_reloads_total{result="ok"} 1`, `anycastd_reloads_total{result="config_error"} 2`,
		`anycastd_xfrout_requests_total{result="ok",type="soa"}`, `anycastd_xfrout_notifies_total{result="ok"}`, "anycastd_build_info{"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, base := range []string{"http://" + api, "http://" + metrics} {
		if code, body := httpGet(t, base+"/healthz", ""); code != 200 || body != "ok\n" {
			t.Errorf("%s/healthz = %d %q", base, code, body)
		}
		if code, body := httpGet(t, base+"/readyz", ""); code != 200 || body != "ready\n" {
			t.Errorf("%s/readyz = %d %q", base, code, body)
		}
	}
	if err := d.stop(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
}

// checkJSONLines checks that every line of log is one JSON object with no
// key twice and returns them decoded.
func checkJSONLines(t *testing.T, log string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for i, line := range strings.Split(strings.TrimSpace(log), "\n") {
		dec := json.NewDecoder(strings.NewReader(line))
		if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
			t.Errorf("log line %d is not a JSON object: %s", i+1, line)
			continue
		}
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				t.Errorf("log line %d: %v", i+1, err)
				break
			}
			if seen[k.(string)] {
				t.Errorf("log line %d has %q twice: %s", i+1, k, line)
			}
			seen[k.(string)] = true
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				t.Errorf("log line %d: %v", i+1, err)
				break
			}
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err == nil {
			out = append(out, m)
		}
	}
	return out
}

// TestStandaloneFirstHour runs make run's command from a fresh working
// directory: the data lands in ./anycastdns-data (not nested twice), the
// files holding data and the token are 0600, the token file is re-read on
// SIGHUP (a bad one keeps the old token and is logged with its file:line),
// every HTTP listener answers /healthz and /readyz, the node's metrics
// include the transfer server's, and the JSON log has no key twice.
func TestStandaloneFirstHour(t *testing.T) {
	dir := t.TempDir()
	api, admin, metrics := testkit.FreeAddr(t), testkit.FreeAddr(t), testkit.FreeAddr(t)
	d := startDaemon(t, dir, "standalone", "-data", "anycastdns-data", "-dns", testkit.FreeAddr(t), "-api", api,
		"-xfr", testkit.FreeAddr(t), "-admin", admin, "-metrics", metrics, "-log-format", "json")
	waitReady(t, d, "http://"+api+"/readyz")
	waitReady(t, d, "http://"+admin+"/readyz")

	data := filepath.Join(dir, "anycastdns-data")
	if _, err := os.Stat(filepath.Join(data, "control", "zones.db")); err != nil {
		t.Errorf("the database is not in anycastdns-data/control: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, "anycastdns-data")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("anycastdns-data/anycastdns-data exists (%v): the data directory was nested", err)
	}
	for _, f := range []string{"api.token", "control/zones.db", "control/zones.db-wal", "control/zones.db-shm"} {
		st, err := os.Stat(filepath.Join(data, f))
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if perm := st.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", f, perm)
		}
	}

	tokenPath := filepath.Join(data, "api.token")
	b, err := os.ReadFile(tokenPath)
	if err != nil {
		t.Fatal(err)
	}
	first := strings.TrimSpace(string(b))
	if !tokenWorks(t, api, first) {
		t.Fatal("the generated token is refused")
	}
	writeFile(t, tokenPath, "# rotated\n"+tokenB+"\n", 0o600)
	d.hup(`"msg":"reloaded"`)
	if !tokenWorks(t, api, tokenB) || tokenWorks(t, api, first) {
		t.Error("after SIGHUP: want the new token accepted and the old one refused")
	}
	writeFile(t, tokenPath, "short\n", 0o600)
	out := d.hup("configuration rejected")
	if !strings.Contains(out, tokenPath+":1") {
		t.Errorf("the rejection does not name %s:1:\n%s", tokenPath, out)
	}
	if !tokenWorks(t, api, tokenB) {
		t.Error("after a rejected reload: the token in force is refused")
	}

	for _, base := range []string{"http://" + api, "http://" + admin, "http://" + metrics} {
		if code, body := httpGet(t, base+"/healthz", ""); code != 200 || body != "ok\n" {
			t.Errorf("%s/healthz = %d %q", base, code, body)
		}
		if code, body := httpGet(t, base+"/readyz", ""); code != 200 || body != "ready\n" {
			t.Errorf("%s/readyz = %d %q", base, code, body)
		}
	}
	_, body := httpGet(t, "http://"+metrics+"/metrics", "")
	for _, want := range []string{`anycastd_xfrout_requests_total{result="ok",type="axfr"}`, "anycastd_build_info{", `anycastd_zone_serial{zone="example.com."}`} {
		if !strings.Contains(body, want) {
			t.Errorf("the node's /metrics lacks %s", want)
		}
	}
	if err := d.stop(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	lines := checkJSONLines(t, d.Log())
	var components = map[string]bool{}
	for _, l := range lines {
		if c, ok := l["component"].(string); ok {
			components[c] = true
		}
		if v, ok := l["duration"]; ok {
			if _, isString := v.(string); !isString {
				t.Errorf("duration %v has no unit: %v", v, l)
			}
		}
	}
	for _, c := range []string{"control", "node", "api", "admin", "metrics", "xfrout", "store"} {
		if !components[c] {
			t.Errorf("no log line of component %s", c)
		}
	}
}

// TestStandaloneTokenSources gives the standalone's API token without
// putting it on the command line: from the environment, or from a token
// file of the operator's; neither creates DATA/api.token.
func TestStandaloneTokenSources(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  string   // ANYCASTD_API_TOKEN
		args []string // extra flags
		file string   // content of dir/tokens, when set
	}{
		{name: "environment", env: tokenA},
		{name: "token file", args: []string{"-token-file", "tokens"}, file: "# operators\n" + tokenA + "\n" + tokenB + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.file != "" {
				writeFile(t, filepath.Join(dir, "tokens"), tc.file, 0o600)
			}
			api := testkit.FreeAddr(t)
			args := append([]string{"standalone", "-data", "data", "-dns", testkit.FreeAddr(t), "-api", api, "-xfr", testkit.FreeAddr(t),
				"-admin", testkit.FreeAddr(t), "-metrics", ""}, tc.args...)
			t.Setenv("ANYCASTD_API_TOKEN", tc.env)
			d := startDaemon(t, dir, args...)
			waitReady(t, d, "http://"+api+"/readyz")
			if !tokenWorks(t, api, tokenA) {
				t.Error("the token given is refused")
			}
			if tc.file != "" && !tokenWorks(t, api, tokenB) {
				t.Error("the second token of the file is refused")
			}
			if _, err := os.Stat(filepath.Join(dir, "data", "api.token")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("data/api.token: %v, want none", err)
			}
			if strings.Contains(d.Log(), tokenA) {
				t.Error("the log shows the token")
			}
		})
	}
}
