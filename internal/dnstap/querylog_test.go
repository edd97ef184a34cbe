package dnstap

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/dnsserver"
)

// readLines returns the JSON objects of a query log file.
func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("%s: a line that is not JSON: %q: %v", path, sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// waitLines waits until the file holds n lines.
func waitLines(t *testing.T, path string, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			if l := readLines(t, path); len(l) >= n {
				return l
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never had %d lines", path, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestQueryLogLine: an answered query becomes one JSON line with who
// asked what and what the answer was.
func TestQueryLogLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queries.jsonl")
	tp := runTap(t, Config{QueryLog: &LogConfig{File: path, MaxSize: 1 << 20, Identity: "pop-ams-1", Queue: 16}})
	q := new(dns.Msg)
	q.SetQuestion("www.Example.com.", dns.TypeAAAA)
	q.Id = 4711
	resp := new(dns.Msg)
	resp.SetRcode(q, dns.RcodeNameError)
	resp.Authoritative = true
	received := time.Date(2026, 12, 7, 23, 0, 0, 0, time.UTC)
	tp.Tap(dnsserver.TapMessage{Query: packed(t, q), Response: packed(t, resp), Client: testClient, Server: testServer,
		Transport: dnsserver.TCP, Received: received})
	lines := waitLines(t, path, 1)
	got := lines[0]
	want := map[string]any{
		"time": "2026-12-07T23:00:00Z", "node": "pop-ams-1", "client": "192.0.2.7:5300", "server": "198.51.100.53:53",
		"transport": "tcp", "id": float64(4711), "qname": "www.Example.com.", "qtype": "AAAA", "qclass": "IN",
		"rcode": "NXDOMAIN", "flags": "qr aa rd", "answers": float64(0), "size": float64(len(packed(t, resp))),
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if _, ok := got["duration_us"]; !ok {
		t.Error("no duration_us")
	}
	if _, ok := got["level"]; ok {
		t.Error("the line has a log level")
	}
}

// TestQueryLogRotates: past max_size the file becomes FILE.1 and a new one
// starts, so the log stays under twice the bound.
func TestQueryLogRotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "queries.jsonl")
	const maxSize = 4 << 10
	tp := runTap(t, Config{QueryLog: &LogConfig{File: path, MaxSize: maxSize, Identity: "pop", Queue: 1000}})
	q := new(dns.Msg)
	q.SetQuestion("www.example.com.", dns.TypeA)
	qw := packed(t, q)
	m := testMessage(qw, qw)
	const n = 200 // about 250 bytes a line: 50 kB in all
	for i := range n {
		for !tp.q.Load().log.Offer(&m) {
			time.Sleep(time.Millisecond) // the queue is full: let the worker write
		}
		_ = i
	}
	deadline := time.Now().Add(10 * time.Second)
	for value(tp.written.WithLabelValues(outQueryLog)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("written %v of %d", value(tp.written.WithLabelValues(outQueryLog)), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	tp.Apply(Config{}) // stops the log: the file is flushed and closed
	for _, f := range []string{path, path + ".1"} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		// A file is rotated at the first line that finds it at the bound.
		if st.Size() > maxSize+512 {
			t.Errorf("%s: %d bytes, bound %d", f, st.Size(), maxSize)
		}
	}
	// Nothing else is kept: no FILE.2.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 2 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("files %s, want the log and its .1", strings.Join(names, " "))
	}
}

// TestQueryLogReopen: a reload reopens the file, so that after logrotate
// moved it the log goes on in a new file at the configured path.
func TestQueryLogReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "queries.jsonl")
	cfg := Config{QueryLog: &LogConfig{File: path, MaxSize: 1 << 20, Identity: "pop", Queue: 16}}
	tp := runTap(t, cfg)
	m := testMessage([]byte("0123456789ab"), []byte("0123456789ab"))
	tp.Tap(m)
	waitLines(t, path, 1)
	if err := os.Rename(path, path+".old"); err != nil {
		t.Fatal(err)
	}
	tp.Apply(cfg) // SIGHUP
	tp.Tap(m)
	waitLines(t, path, 1)
	if n := len(readLines(t, path+".old")); n != 1 {
		t.Errorf("the moved file has %d lines, want 1", n)
	}
}

// TestQueryLogUnwritable: a file that cannot be opened drops the queries
// (counted) and is retried; the query path never waits for it.
func TestQueryLogUnwritable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "missing", "queries.jsonl")
	tp := runTap(t, Config{QueryLog: &LogConfig{File: path, MaxSize: 1 << 20, Queue: 4}})
	m := testMessage([]byte("q"), []byte("r"))
	for range 100 {
		tp.Tap(m)
	}
	if n := value(tp.dropped.WithLabelValues(outQueryLog, "queue_full")); n != 96 {
		t.Errorf("queue_full drops %v, want 96", n)
	}
	if err := os.Mkdir(filepath.Join(dir, "missing"), 0o755); err != nil {
		t.Fatal(err)
	}
	waitLines(t, path, 4)
}
