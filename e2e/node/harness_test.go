//go:build linux

package node

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/miekg/dns"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

// anycastdBin is the binary under test, set by TestMain.
var anycastdBin string

func TestMain(m *testing.M) {
	os.Exit(testkit.RunWithAnycastd(m, &anycastdBin))
}

// ports are the loopback ports one node process uses.
type ports struct {
	DNS     uint16 // UDP and TCP, on 127.0.0.1 and (when V6) on ::1
	Metrics uint16 // TCP on 127.0.0.1
	V6      bool
}

// DNSAddrs are the DNS listen addresses of the node.
func (p ports) DNSAddrs() []netip.AddrPort {
	out := []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p.DNS)}
	if p.V6 {
		out = append(out, netip.AddrPortFrom(netip.IPv6Loopback(), p.DNS))
	}
	return out
}

// Listen is the YAML flow sequence of DNSAddrs.
func (p ports) Listen() string {
	var s []string
	for _, a := range p.DNSAddrs() {
		s = append(s, fmt.Sprintf("%q", a.String()))
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// MetricsAddr is the address of the Prometheus endpoint.
func (p ports) MetricsAddr() string { return fmt.Sprintf("127.0.0.1:%d", p.Metrics) }

// haveIPv6 reports whether ::1 can be bound.
func haveIPv6() bool {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// proc is one anycastd node process started by a test.
type proc struct {
	t        *testing.T
	ports    ports
	dir      string // working directory: configuration and zone files
	cfgPath  string // "" in flag mode
	cfgTmpl  string // the configuration template in config-file mode
	cmd      *exec.Cmd
	log      *testkit.Log
	done     chan struct{} // closed when the process has exited
	waitErr  error         // valid once done is closed
	stopOnce sync.Once
}

// nodeOpts describe a node to start.
type nodeOpts struct {
	dir     string // where files live; a new temp dir if empty
	v6      bool   // also listen on [::1]
	metrics bool   // wait for the metrics endpoint too
	// config is a text/template of the YAML configuration, executed with
	// the ports; empty = flag mode with args.
	config string
	// args returns the arguments after "node" in flag mode.
	args func(p ports) []string
}

// startNode starts a node and waits until it answers DNS on every address
// (and serves metrics when asked). It retries with new ports when a port
// turned out to be taken. The process is stopped when the test ends, and its
// log is printed if the test failed.
func startNode(t *testing.T, o nodeOpts) *proc {
	t.Helper()
	if o.dir == "" {
		o.dir = t.TempDir()
	}
	var lastErr error
	for attempt := range 5 {
		p := ports{DNS: testkit.FreePort(t), V6: o.v6}
		if o.v6 {
			p.DNS = testkit.FreePortDual(t)
		}
		p.Metrics = testkit.FreePort(t)
		n := &proc{t: t, ports: p, dir: o.dir, log: &testkit.Log{}, done: make(chan struct{}), cfgTmpl: o.config}
		var args []string
		if o.config != "" {
			n.cfgPath = filepath.Join(o.dir, "node.yaml")
			n.writeConfig(o.config)
			args = []string{"node", "-config", n.cfgPath}
		} else {
			args = append([]string{"node"}, o.args(p)...)
		}
		n.start(args)
		err := n.waitReady(o.metrics, 15*time.Second)
		if err == nil {
			return n
		}
		lastErr = err
		n.stop()
		if !strings.Contains(n.log.String(), "address already in use") {
			t.Fatalf("node did not start: %v\nlog:\n%s", err, n.log.String())
		}
		t.Logf("attempt %d: port taken, retrying with others: %v", attempt+1, err)
	}
	t.Fatalf("node did not start after 5 attempts: %v", lastErr)
	return nil
}

func (n *proc) start(args []string) {
	t := n.t
	t.Helper()
	cmd := exec.Command(anycastdBin, args...)
	cmd.Dir = n.dir
	cmd.Stdout = n.log
	cmd.Stderr = n.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start anycastd: %v", err)
	}
	n.cmd = cmd
	go func() {
		n.waitErr = cmd.Wait()
		close(n.done)
	}()
	t.Cleanup(func() {
		n.stop()
		if t.Failed() {
			t.Logf("anycastd (pid %d) log:\n%s", cmd.Process.Pid, lastLines(n.log.String(), 60))
		}
	})
}

// waitReady polls until every address answers a query over UDP and TCP
// (any response will do) and, with metrics, /metrics answers.
func (n *proc) waitReady(metrics bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if n.exited() {
			if n.waitErr == nil {
				return errors.New("exited with status 0 before it was ready")
			}
			return fmt.Errorf("exited before it was ready: %w", n.waitErr)
		}
		last = n.answers()
		if last == nil && metrics {
			_, last = scrape(n.ports.MetricsAddr())
		}
		if last == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %v: %w", timeout, last)
}

func (n *proc) answers() error {
	for _, a := range n.ports.DNSAddrs() {
		for _, network := range []string{"udp", "tcp"} {
			if _, err := exchange(network, a, question("id.server.", dns.TypeTXT, dns.ClassCHAOS), 300*time.Millisecond); err != nil {
				return err
			}
		}
	}
	return nil
}

// exited reports whether the process has ended.
func (n *proc) exited() bool {
	select {
	case <-n.done:
		return true
	default:
		return false
	}
}

// stop ends the process: SIGTERM, then SIGKILL after 10s.
func (n *proc) stop() {
	n.stopOnce.Do(func() {
		if n.exited() {
			return
		}
		if err := n.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			n.t.Logf("SIGTERM pid %d: %v", n.cmd.Process.Pid, err)
		}
		select {
		case <-n.done:
		case <-time.After(10 * time.Second):
			n.t.Errorf("anycastd (pid %d) ignored SIGTERM for 10s; killing it", n.cmd.Process.Pid)
			_ = n.cmd.Process.Kill()
			<-n.done
		}
	})
}

// signal sends sig to the process.
func (n *proc) signal(sig syscall.Signal) {
	n.t.Helper()
	if err := n.cmd.Process.Signal(sig); err != nil {
		n.t.Fatalf("signal %v to pid %d: %v", sig, n.cmd.Process.Pid, err)
	}
}

// reload sends SIGHUP and waits until the node logs that the reload is
// done. It returns what the node logged meanwhile.
func (n *proc) reload() string {
	t := n.t
	t.Helper()
	start := n.log.Len()
	before := strings.Count(n.log.String(), "msg=reloaded")
	n.signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if n.exited() {
			t.Fatalf("anycastd exited on SIGHUP: %v", n.waitErr)
		}
		if s := n.log.String(); strings.Count(s, "msg=reloaded") > before {
			return s[start:]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no reload logged within 10s of SIGHUP")
	return ""
}

// writeConfig executes the configuration template with the node's ports
// and writes it to node.yaml.
func (n *proc) writeConfig(tmpl string) {
	n.t.Helper()
	tp, err := template.New("node.yaml").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		n.t.Fatalf("config template: %v", err)
	}
	var b bytes.Buffer
	if err := tp.Execute(&b, n.ports); err != nil {
		n.t.Fatalf("config template: %v", err)
	}
	writeFile(n.t, n.cfgPath, b.String())
}

// addr returns the first DNS address (127.0.0.1).
func (n *proc) addr() netip.AddrPort { return n.ports.DNSAddrs()[0] }

// writeFile replaces a file atomically (write + rename), so that a reload
// never reads half of it.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatalf("write %s: %v", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatalf("rename %s: %v", tmp, err)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// zoneText is a small valid zone: SOA, NS with glue, www, then extra lines.
// The header takes the first 6 lines, so extra[i] is on line 7+i.
func zoneText(origin string, serial uint32, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "$ORIGIN %s\n", origin)
	b.WriteString("$TTL 300\n")
	fmt.Fprintf(&b, "@ IN SOA ns1 hostmaster %d 7200 3600 1209600 60\n", serial)
	b.WriteString("@ IN NS ns1\n")
	b.WriteString("ns1 IN A 192.0.2.1\n")
	b.WriteString("www IN A 192.0.2.80\n")
	for _, e := range extra {
		b.WriteString(e + "\n")
	}
	return b.String()
}

// zoneExtraLine is the line number of extra[0] in zoneText.
const zoneExtraLine = 7

// logHasPos reports whether log names file at line: as "file:line" or as
// miekg/dns's parse errors put it, "file: ... at line: line:col".
func logHasPos(log, file string, line int) bool {
	f := regexp.QuoteMeta(file)
	re := regexp.MustCompile(fmt.Sprintf(`%s:%d\b|%s: [^\n]*at line: %d:`, f, line, f, line))
	return re.MatchString(log)
}

// scrape fetches and parses the node's /metrics.
func scrape(addr string) (map[string]*dto.MetricFamily, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse /metrics: %w", err)
	}
	return fams, nil
}

func (n *proc) scrape() map[string]*dto.MetricFamily {
	n.t.Helper()
	fams, err := scrape(n.ports.MetricsAddr())
	if err != nil {
		n.t.Fatalf("metrics: %v", err)
	}
	return fams
}

// metricValue sums the counter, gauge or untyped values of the series of
// name whose labels include want. found is false when no series matches.
func metricValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) (sum float64, found bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		if !hasLabels(m, want) {
			continue
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Untyped != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum, found
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	for k, v := range want {
		ok := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == k && lp.GetValue() == v {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("mkdir %s: %v", dir, err)
	}
}
