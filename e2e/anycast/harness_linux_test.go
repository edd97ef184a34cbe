//go:build linux

package anycast

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

// The topology of every test (see doc.go).
const (
	routerAddr4 = "100.64.0.1"
	nodeAddr4   = "100.64.0.2"
	routerAddr6 = "2001:db8:ff::1"
	nodeAddr6   = "2001:db8:ff::2"
	anycast4    = "192.0.2.53"
	anycast6    = "2001:db8::53"
	prefix4     = anycast4 + "/32"
	prefix6     = anycast6 + "/128"
	routerASN   = 64500
	nodeASN     = 64512
	adminAddr   = "127.0.0.1:8053" // in N: admin.listen must be loopback

	zoneName = "example.com."
	qname    = "www.example.com."
	wwwAddr  = "192.0.2.80"

	// Node settings the figures depend on.
	healthInterval = 100 * time.Millisecond
	healthTimeout  = 80 * time.Millisecond
	healthRise     = 3
	healthFall     = 2
	holdTime       = 3 * time.Second
	keepalive      = time.Second
	drainPeriod    = 2 * time.Second

	pollEvery = 10 * time.Millisecond // route polling
)

var (
	anycast4Port = netip.MustParseAddrPort(anycast4 + ":53")
	anycast6Port = netip.MustParseAddrPort("[" + anycast6 + "]:53")
	unicastPort  = netip.MustParseAddrPort(nodeAddr4 + ":53")
)

// --- binary -----------------------------------------------------------------

var (
	buildDir  string
	buildOnce sync.Once
	binPath   string
	binErr    error
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "anycastd-e2e-anycast-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		return 2
	}
	defer os.RemoveAll(dir)
	buildDir = dir
	removeLeftoversOnSignal()
	watchStalls()
	return m.Run()
}

// anycastd returns the binary under test: $ANYCASTD_BIN, or built once from
// ./cmd/anycastd (only when a test gets past its root check).
func anycastd(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() { binPath, binErr = testkit.Build(buildDir, testkit.Module+"/cmd/anycastd", "ANYCASTD_BIN") })
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// requireLab skips (or, with CI=true, fails) a test that cannot build the
// topology: not root, or a tool missing.
func requireLab(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("anycast end-to-end tests take about two minutes; skipped with -short")
	}
	testkit.RequireRoot(t, "network namespaces, nftables")
	for _, bin := range []string{"bird", "birdc", "ip", "nft"} {
		testkit.RequireTool(t, bin, "bird2, iproute2 or nftables")
	}
}

// cycles is how often the repeated tests repeat: def, or $ANYCAST_E2E_CYCLES.
func cycles(t *testing.T, def int) int {
	t.Helper()
	s := os.Getenv("ANYCAST_E2E_CYCLES")
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("ANYCAST_E2E_CYCLES=%q: want a positive integer", s)
	}
	return n
}

// nodeLogLevel is the node's log level: info, or $ANYCAST_E2E_NODE_LOG.
func nodeLogLevel() string {
	if l := os.Getenv("ANYCAST_E2E_NODE_LOG"); l != "" {
		return l
	}
	return "info"
}

// keepLogs copies the files of dir whose names end in ".log" to
// $ANYCAST_E2E_LOGDIR/<test name>/, when that is set, for a look after the
// test (the test's own directory is removed).
func keepLogs(t *testing.T, dir string) {
	root := os.Getenv("ANYCAST_E2E_LOGDIR")
	if root == "" {
		return
	}
	dst := filepath.Join(root, strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Logf("keep logs: %v", err)
		return
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil {
			_ = os.WriteFile(filepath.Join(dst, filepath.Base(f)), b, 0o644)
		}
	}
}

// niced prefixes argv with "nice -n N" when $ANYCAST_E2E_NICE is set to a
// value other than 0 (nice execs the program, so the PID stays the same).
func niced(argv ...string) []string {
	n := os.Getenv("ANYCAST_E2E_NICE")
	if n == "" || n == "0" {
		return argv
	}
	return append([]string{"nice", "-n", n}, argv...)
}

// showLogs: with ANYCAST_E2E_LOGS=1 the tests print BIRD's and the node's
// logs also when they pass.
func showLogs() bool { return os.Getenv("ANYCAST_E2E_LOGS") == "1" }

// --- helpers ----------------------------------------------------------------

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func ms(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

// durations are measured figures, reported as min/median/max.
type durations []time.Duration

func (d durations) String() string {
	if len(d) == 0 {
		return "none"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	vals := make([]string, len(d))
	for i, x := range d {
		vals[i] = ms(x).String()
	}
	return fmt.Sprintf("n=%d min=%v median=%v max=%v values=[%s]", len(s), ms(s[0]), ms(med), ms(s[len(s)-1]), strings.Join(vals, " "))
}

// figure logs one measured series in a form that is easy to grep.
func figure(t *testing.T, name string, d durations) {
	t.Helper()
	t.Logf("FIGURE %s: %v", name, d)
}
