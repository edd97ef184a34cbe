//go:build linux

// Package dnstap holds the end-to-end tests of the node's dnstap output and
// query log: the real anycastd binary sends its queries to fstrm_capture
// (the reference Frame Streams implementation, Debian fstrm-bin), and
// Debian's dnstap-ldns reads the captured file back.
//
//	go test ./e2e/dnstap/
package dnstap

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

const (
	popName    = "e2e-pop-dnstap-7"
	popVersion = "anycastdns-e2e 1.0"
)

var anycastdBin string

func TestMain(m *testing.M) {
	os.Exit(testkit.RunWithAnycastd(m, &anycastdBin))
}

const zoneText = `$ORIGIN example.com.
$TTL 300
@   IN SOA ns1 hostmaster 1 3600 600 86400 300
    IN NS  ns1
ns1 IN A   192.0.2.53
*   IN A   192.0.2.80
`

// shortDir is a new directory with a path short enough for Unix sockets.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "dt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// capture is an fstrm_capture process writing what arrives on a Unix
// socket to a file.
type capture struct {
	p    *testkit.Process
	sock string
	file string
}

func startCapture(t *testing.T, dir, sock, name string) *capture {
	t.Helper()
	bin := testkit.RequireTool(t, "fstrm_capture", "fstrm-bin")
	os.Remove(sock)
	c := &capture{sock: sock, file: filepath.Join(dir, name+".fstrm")}
	c.p = testkit.StartProcess(t, "fstrm_capture", filepath.Join(dir, name+".log"),
		bin, "-t", "protobuf:dnstap.Dnstap", "-u", sock, "-w", c.file)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			return c
		}
		if c.p.Exited() || time.Now().After(deadline) {
			t.Fatalf("fstrm_capture did not listen on %s:\n%s", sock, c.p.Tail(20))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop ends the capture (SIGTERM: it closes the file with its STOP frame).
func (c *capture) stop(t *testing.T) {
	t.Helper()
	if err := c.p.Stop(t); err != nil {
		t.Logf("fstrm_capture: %v", err)
	}
}

// message is one dnstap message as dnstap-ldns -y shows it.
type message struct {
	identity, version, typ, protocol, qname, queryAddr, responseAddr string
}

var (
	yamlField = regexp.MustCompile(`^\s*([a-z_]+): (.*)$`)
	question  = regexp.MustCompile(`^;(\S+)\s+IN\s+A\s*$`)
)

// readBack reads a capture file with dnstap-ldns -y.
func readBack(t *testing.T, file string) []message {
	t.Helper()
	bin := testkit.RequireTool(t, "dnstap-ldns", "dnstap-ldns")
	out, err := exec.Command(bin, "-y", "-r", file).CombinedOutput()
	if err != nil {
		t.Fatalf("dnstap-ldns -y -r %s: %v\n%s", file, err, out)
	}
	// Each message ends with a line "---".
	msgs := []message{{}}
	cur := &msgs[0]
	inQuestion := false
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		if line == "---" {
			msgs = append(msgs, message{})
			cur = &msgs[len(msgs)-1]
			inQuestion = false
			continue
		}
		if strings.Contains(line, "QUESTION SECTION") {
			inQuestion = true
			continue
		}
		if inQuestion {
			if m := question.FindStringSubmatch(strings.TrimSpace(line)); m != nil && cur.qname == "" {
				cur.qname = strings.ToLower(m[1])
			}
			if strings.TrimSpace(line) == "" || strings.Contains(line, "SECTION") {
				inQuestion = false
			}
		}
		m := yamlField.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		v := strings.Trim(m[2], `"`)
		switch m[1] {
		case "identity":
			cur.identity = v
		case "version":
			cur.version = v
		case "type":
			if v != "MESSAGE" {
				cur.typ = v
			}
		case "socket_protocol":
			cur.protocol = v
		case "query_address":
			cur.queryAddr = v
		case "response_address":
			cur.responseAddr = v
		}
	}
	msgs = msgs[:len(msgs)-1] // after the last "---"
	if len(msgs) == 0 {
		t.Fatalf("dnstap-ldns read no message from %s; its output:\n%s", file, out)
	}
	return msgs
}

// node is a running anycastd node.
type node struct {
	p       *testkit.Process
	dir     string
	cfg     string
	dns     string
	metrics string
}

// startNode starts a node serving example.com. with extra configuration
// (the dnstap and query_log sections) and waits until it answers.
func startNode(t *testing.T, dir, extra string) *node {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "example.com.zone"), []byte(zoneText), 0o644); err != nil {
		t.Fatal(err)
	}
	n := &node{dir: dir, cfg: filepath.Join(dir, "node.yaml"), dns: testkit.FreeAddr(t), metrics: testkit.FreeAddr(t)}
	n.writeConfig(t, extra)
	n.p = testkit.StartProcessIn(t, "anycastd", dir, filepath.Join(dir, "node.log"), anycastdBin, "node", "-config", n.cfg)
	n.p.CheckExit = true
	deadline := time.Now().Add(15 * time.Second)
	for {
		c := &dns.Client{Timeout: 200 * time.Millisecond}
		m := new(dns.Msg)
		m.SetQuestion("ready.probe.example.com.", dns.TypeA)
		if r, _, err := c.Exchange(m, n.dns); err == nil && r.Rcode == dns.RcodeSuccess {
			return n
		}
		if n.p.Exited() || time.Now().After(deadline) {
			t.Fatalf("node did not answer on %s:\n%s", n.dns, n.p.Tail(30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n *node) writeConfig(t *testing.T, extra string) {
	t.Helper()
	cfg := fmt.Sprintf(`identity:
  name: %s
  version: %q
listen: [%q]
zones:
  - name: example.com.
    file: example.com.zone
metrics:
  listen: %q
log:
  level: debug
%s`, popName, popVersion, n.dns, n.metrics, extra)
	if err := os.WriteFile(n.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
}

// reload sends SIGHUP and waits for the reload's log line.
func (n *node) reload(t *testing.T) {
	t.Helper()
	before := strings.Count(n.p.Log(), `msg=reloaded`)
	if err := n.p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(n.p.Log(), `msg=reloaded`) == before {
		if time.Now().After(deadline) {
			t.Fatalf("no reload logged:\n%s", n.p.Tail(20))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// metric returns the sum of the samples of a metric whose line contains
// match (a label, or "" for all).
func (n *node) metric(t *testing.T, name, match string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + n.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || !strings.Contains(line, match) {
			continue
		}
		var v float64
		if _, err := fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v); err == nil {
			sum += v
		}
	}
	return sum
}

// send asks for q-<first>..q-<first+count-1>.<tag>.example.com. A over UDP
// (odd ones over TCP), from workers clients at once, and fails the test on
// a missing answer.
func send(t *testing.T, addr, tag string, first, count, workers int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, count)
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			udp := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
			tcp := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
			for i := range next {
				m := new(dns.Msg)
				m.SetQuestion(fmt.Sprintf("q-%d.%s.example.com.", i, tag), dns.TypeA)
				c := udp
				if i%2 == 1 {
					c = tcp
				}
				var err error
				for try := 0; try < 3; try++ { // a UDP answer lost on a loaded runner
					var r *dns.Msg
					if r, _, err = c.Exchange(m, addr); err == nil && r.Rcode != dns.RcodeSuccess {
						err = fmt.Errorf("rcode %s", dns.RcodeToString[r.Rcode])
					}
					if err == nil {
						break
					}
				}
				if err != nil {
					errs <- fmt.Errorf("%s: %w", m.Question[0].Name, err)
				}
			}
		})
	}
	for i := first; i < first+count; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// count returns, for the names under tag, how many AUTH_QUERY and
// AUTH_RESPONSE messages each got, checking the identity, version and
// addresses of every message.
func count(t *testing.T, msgs []message, tag string) (queries, responses map[string]int, tcp int) {
	t.Helper()
	queries, responses = map[string]int{}, map[string]int{}
	bad := 0
	for _, m := range msgs {
		if !strings.HasSuffix(m.qname, "."+tag+".example.com.") {
			continue
		}
		if m.identity != popName || m.version != popVersion || m.queryAddr != "127.0.0.1" || m.responseAddr != "127.0.0.1" {
			if bad++; bad <= 3 {
				t.Errorf("message %+v: want identity %q, version %q, addresses 127.0.0.1", m, popName, popVersion)
			}
		}
		switch m.typ {
		case "AUTH_QUERY":
			queries[m.qname]++
		case "AUTH_RESPONSE":
			responses[m.qname]++
		default:
			t.Errorf("message type %q", m.typ)
		}
		if m.protocol == "TCP" {
			tcp++
		}
	}
	return queries, responses, tcp
}

// checkEach checks that each of the names q-first..q-(first+n-1) under tag
// appears once as a query and once as a response.
func checkEach(t *testing.T, queries, responses map[string]int, tag string, first, n int) {
	t.Helper()
	missing := 0
	for i := first; i < first+n; i++ {
		name := fmt.Sprintf("q-%d.%s.example.com.", i, tag)
		if queries[name] != 1 || responses[name] != 1 {
			if missing++; missing <= 5 {
				t.Errorf("%s: %d AUTH_QUERY and %d AUTH_RESPONSE messages, want 1 and 1", name, queries[name], responses[name])
			}
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d queries not read back exactly once", missing, n)
	}
}

// TestDnstapReadBack: every query sent to a node with dnstap on (full, no
// sampling) under load from 8 clients is read back by dnstap-ldns from
// what fstrm_capture received, as an AUTH_QUERY and an AUTH_RESPONSE with
// the PoP's identity and version, over the transport it came by; nothing
// is dropped.
func TestDnstapReadBack(t *testing.T) {
	dir := shortDir(t)
	sock := filepath.Join(dir, "tap.sock")
	c := startCapture(t, dir, sock, "capture")
	n := startNode(t, dir, fmt.Sprintf("dnstap:\n  socket: %s\n  queue: 100000\n", sock))
	const queries = 2000
	start := time.Now()
	send(t, n.dns, "load", 0, queries, 8)
	t.Logf("%d queries in %v", queries, time.Since(start).Round(time.Millisecond))
	if d := n.metric(t, "anycastd_tap_dropped_total", `output="dnstap"`); d != 0 {
		t.Errorf("anycastd_tap_dropped_total{output=dnstap} = %v, want 0", d)
	}
	// Stopping the node ends its stream (the last frames, then STOP);
	// then the capture closes its file.
	if err := n.p.Stop(t); err != nil {
		t.Fatalf("node: %v", err)
	}
	c.stop(t)
	q, r, tcp := count(t, readBack(t, c.file), "load")
	checkEach(t, q, r, "load", 0, queries)
	if tcp != queries { // the odd half over TCP, a query and a response each
		t.Errorf("%d messages over TCP, want %d", tcp, queries)
	}
}

// TestDnstapReconnect: when the collector goes away the node keeps
// answering, and once a collector listens again the node reconnects (with
// backoff) and the queries sent after that are read back.
func TestDnstapReconnect(t *testing.T) {
	dir := shortDir(t)
	sock := filepath.Join(dir, "tap.sock")
	first := startCapture(t, dir, sock, "first")
	n := startNode(t, dir, fmt.Sprintf("dnstap:\n  socket: %s\n", sock))
	send(t, n.dns, "before", 0, 50, 2)
	// 50 and the readiness probes, all written once the count holds still
	// for ten times the output's poll interval.
	waitMetric(t, n, "anycastd_tap_written_total", `output="dnstap"`, 50)
	for last := -1.0; ; time.Sleep(100 * time.Millisecond) {
		v := n.metric(t, "anycastd_tap_written_total", `output="dnstap"`)
		if v == last {
			break
		}
		last = v
	}
	first.stop(t)

	// The collector is away: the node answers all the same.
	send(t, n.dns, "away", 0, 50, 2)
	waitMetric(t, n, "anycastd_tap_connected", `output="dnstap"`, 0)

	second := startCapture(t, dir, sock, "second")
	waitMetric(t, n, "anycastd_tap_connected", `output="dnstap"`, 1)
	send(t, n.dns, "after", 0, 50, 2)
	// The queries sent while the collector was away that were dropped,
	// counted: those the node had written into the connection as it broke
	// (write_error), or that found no room in the queue (queue_full).
	dropped := n.metric(t, "anycastd_tap_dropped_total", `output="dnstap"`)
	// Stopping the node writes what is queued, then ends the stream.
	if err := n.p.Stop(t); err != nil {
		t.Fatalf("node: %v", err)
	}
	second.stop(t)

	q, r, _ := count(t, readBack(t, first.file), "before")
	checkEach(t, q, r, "before", 0, 50)
	msgs := readBack(t, second.file)
	q, r, _ = count(t, msgs, "after")
	checkEach(t, q, r, "after", 0, 50)
	// The queries sent while the collector was away: those queued reach
	// the new one, the rest were counted.
	q, _, _ = count(t, msgs, "away")
	if got := float64(len(q)) + dropped; got != 50 {
		t.Errorf("%d queries sent while away arrived later and %v were dropped, want 50 in all", len(q), dropped)
	}
	if !strings.Contains(n.p.Log(), "dnstap: connected to the collector") || !strings.Contains(n.p.Log(), "collector connection lost") {
		t.Errorf("the node's log does not tell of the lost and new connection:\n%s", n.p.Tail(30))
	}
}

// waitMetric waits until the metric is at least want (or, for want 0,
// exactly 0).
func waitMetric(t *testing.T, n *node, name, match string, want float64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		v := n.metric(t, name, match)
		if (want == 0 && v == 0) || (want > 0 && v >= want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s{%s} = %v, want %v", name, match, v, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReloadAndQueryLog: a node started without either output gets both
// by a SIGHUP reload: the queries after it reach dnstap (sampled 1 in 1)
// and the JSON query log; a second reload with sample 1000000 for dnstap
// and the query log off keeps the stream and stops the log.
func TestReloadAndQueryLog(t *testing.T) {
	dir := shortDir(t)
	sock := filepath.Join(dir, "tap.sock")
	c := startCapture(t, dir, sock, "capture")
	n := startNode(t, dir, "")
	send(t, n.dns, "off", 0, 20, 2)

	logFile := filepath.Join(dir, "queries.jsonl")
	n.writeConfig(t, fmt.Sprintf("dnstap:\n  socket: %s\nquery_log:\n  file: queries.jsonl\n", sock))
	n.reload(t)
	send(t, n.dns, "on", 0, 40, 2)
	waitMetric(t, n, "anycastd_tap_written_total", `output="dnstap"`, 40)
	waitMetric(t, n, "anycastd_tap_written_total", `output="query_log"`, 40)

	n.writeConfig(t, fmt.Sprintf("dnstap:\n  socket: %s\n  sample: 1000000\n", sock))
	n.reload(t)
	send(t, n.dns, "sampled", 0, 40, 2)
	if err := n.p.Stop(t); err != nil {
		t.Fatalf("node: %v", err)
	}
	c.stop(t)
	// A new sampling rate is applied in place: one connection throughout.
	if k := strings.Count(n.p.Log(), "dnstap: connected to the collector"); k != 1 {
		t.Errorf("the node connected %d times, want once:\n%s", k, n.p.Tail(30))
	}

	msgs := readBack(t, c.file)
	for _, tag := range []string{"off", "sampled"} {
		// 1 in a million: the 40 "sampled" queries are, as good as
		// certainly (40 in 10^6), not sent.
		if q, r, _ := count(t, msgs, tag); len(q)+len(r) > 0 {
			t.Errorf("%s: %d queries read back, want none", tag, len(q))
		}
	}
	q, r, _ := count(t, msgs, "on")
	checkEach(t, q, r, "on", 0, 40)

	f, err := os.Open(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct {
			Node, Client, Server, Transport, Qname, Qtype, Rcode string
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("query log line %q: %v", sc.Text(), err)
		}
		if !strings.HasSuffix(line.Qname, ".on.example.com.") {
			t.Errorf("query log has %q: only the queries while it was on belong there", line.Qname)
			continue
		}
		host, _, _ := net.SplitHostPort(line.Client)
		if line.Node != popName || host != "127.0.0.1" || line.Server != n.dns || line.Qtype != "A" || line.Rcode != "NOERROR" {
			t.Errorf("query log line %+v", line)
		}
		seen[line.Qname] = true
	}
	if len(seen) != 40 {
		t.Errorf("query log has %d of the 40 queries", len(seen))
	}
}

// TestCheckconf: anycastd checkconf reports a bad dnstap section at
// file:line and exits 1.
func TestCheckconf(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "node.yaml")
	if err := os.WriteFile(cfg, []byte("listen: [127.0.0.1:5353]\ndnstap:\n  sample: 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(anycastdBin, "checkconf", "-role", "node", cfg).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("checkconf: %v, want exit 1\n%s", err, out)
	}
	for _, want := range []string{cfg + ":3:3: dnstap: needs socket", cfg + ":3:11: dnstap.sample: must be between 1 and 1000000"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("checkconf output lacks %q:\n%s", want, out)
		}
	}
}
