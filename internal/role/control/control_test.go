package control

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/goleak"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/apiclient"
	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/testkit"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// childEnv, when set to a configuration file, makes the test binary run a
// control plane instead of the tests (see runChild).
const childEnv = "ANYCASTDNS_TEST_CONTROL_CHILD"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(childEnv); cfg != "" {
		os.Exit(runChild(cfg))
	}
	goleak.VerifyTestMain(m)
}

// runChild is a control plane process as anycastd would run it, except that
// the API listens on a port the kernel picks, printed as "LISTENING
// ADDR" once ready. SIGTERM and SIGINT shut it down.
func runChild(cfgPath string) int {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg, err := config.LoadControl(cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	c, err := New(cfg, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if c.listener, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx, nil) }()
	select {
	case <-c.Ready():
		fmt.Printf("LISTENING %s\n", c.APIAddr())
	case err := <-errc:
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := <-errc; err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

const token = "durability-token-0123456789"

func writeConfig(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "control.yaml")
	doc := fmt.Sprintf("data_dir: %s\napi:\n  listen: 127.0.0.1:8054\n  tokens: [%q]\njournal_limit: 100000\n", filepath.Join(dir, "data"), token)
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// child is a control plane process started by a test.
type child struct {
	cmd    *exec.Cmd
	addr   string
	stderr *testkit.Log
	done   chan error
}

func startChild(t *testing.T, cfgPath string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+cfgPath)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stderr: &testkit.Log{}, done: make(chan error, 1)}
	cmd.Stderr = c.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill() // by PID: only the process this test started
			<-c.done
		}
	})
	lines := bufio.NewScanner(stdout)
	ready := make(chan string, 1)
	go func() {
		for lines.Scan() {
			if a, ok := strings.CutPrefix(lines.Text(), "LISTENING "); ok {
				ready <- a
			}
		}
		close(ready)
		c.done <- cmd.Wait()
	}()
	select {
	case a, ok := <-ready:
		if !ok {
			t.Fatalf("control plane exited before it was ready: %s", c.stderr)
		}
		c.addr = a
	case <-time.After(60 * time.Second):
		t.Fatalf("control plane not ready after 60s: %s", c.stderr)
	}
	return c
}

func (c *child) client(t *testing.T) *apiclient.Client {
	t.Helper()
	cl, err := apiclient.New("http://"+c.addr, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

var zoneRecords = []string{
	"@ 3600 IN SOA ns1 hostmaster 1 7200 3600 1209600 300",
	"@ 3600 IN NS ns1",
	"ns1 3600 IN A 192.0.2.1",
}

// TestDurabilityAcrossSIGKILL streams writes to a control plane process,
// kills it with SIGKILL in the middle, starts it again on the same data
// directory and checks that every write it acknowledged is there (a write
// in flight at the kill may or may not be), that the serial did not go
// back, and that the change log still replays to the current zone.
func TestDurabilityAcrossSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts control plane processes")
	}
	dir := t.TempDir()
	cfgPath := writeConfig(t, dir)
	first := startChild(t, cfgPath)
	ctx := t.Context()
	cl := first.client(t)
	created, err := cl.CreateZone(ctx, api.CreateZone{Name: "example.com.", Records: zoneRecords})
	if err != nil {
		t.Fatal(err)
	}

	const writers = 8
	const killAfter = 300 // acknowledged writes before the kill
	type progress struct {
		acked    int    // last value acknowledged, 0 = none
		inflight int    // value of the write that failed, 0 = none
		serial   uint32 // serial of the last acknowledged write
	}
	var (
		mu    sync.Mutex
		state [writers]progress
		total int
	)
	killed := make(chan struct{})
	var killOnce sync.Once
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			name := fmt.Sprintf("w%d", w)
			for v := 1; ; v++ {
				set := api.RRset{TTL: 60, Records: []string{strconv.Quote(strconv.Itoa(v))}}
				res, err := cl.SetRRset(ctx, "example.com.", name, "TXT", set, "")
				mu.Lock()
				if err != nil {
					state[w].inflight = v
					mu.Unlock()
					select {
					case <-killed:
					default:
						t.Errorf("writer %d: a write failed before the kill: %v", w, err)
					}
					return
				}
				state[w].acked, state[w].serial = v, res.Serial
				total++
				n := total
				mu.Unlock()
				if n == killAfter {
					killOnce.Do(func() {
						close(killed)
						_ = first.cmd.Process.Signal(syscall.SIGKILL)
					})
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-first.done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("first process: %v, want killed by SIGKILL", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the killed process did not exit")
	}

	second := startChild(t, cfgPath)
	cl = second.client(t)
	z, err := cl.Zone(ctx, "example.com.")
	if err != nil {
		t.Fatal(err)
	}
	maxSerial := created.Serial
	acked := 0
	for w := range writers {
		st := state[w]
		acked += st.acked
		if zone.SerialLess(maxSerial, st.serial) {
			maxSerial = st.serial
		}
		set, _, err := cl.RRset(ctx, "example.com.", fmt.Sprintf("w%d", w), "TXT")
		got := 0
		switch {
		case errors.Is(err, apiclient.ErrNotFound):
		case err != nil:
			t.Fatal(err)
		default:
			got, _ = strconv.Atoi(strings.Trim(set.Records[0], `"`))
		}
		if got != st.acked && got != st.inflight {
			t.Errorf("writer %d: value %d after the restart; acknowledged %d, in flight %d", w, got, st.acked, st.inflight)
		}
	}
	if zone.SerialLess(z.Serial, maxSerial) {
		t.Errorf("serial %d after the restart, below the acknowledged %d", z.Serial, maxSerial)
	}
	t.Logf("%d writes acknowledged before SIGKILL (%d counted by value), serial %d → %d after restart", total, acked, created.Serial, z.Serial)

	// Stop the second process cleanly, then check the change log.
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-second.done; err != nil {
		t.Fatalf("second process after SIGTERM: %v\n%s", err, second.stderr)
	}
	s, err := store.Open(ctx, filepath.Join(dir, "data", DBFile), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cur, err := s.Zone(ctx, "example.com.")
	if err != nil {
		t.Fatal(err)
	}
	changes, err := s.Changes(ctx, "example.com.", created.Serial)
	if err != nil {
		t.Fatal(err)
	}
	rrs, err := api.ParseRecords("example.com.", zoneRecords)
	if err != nil {
		t.Fatal(err)
	}
	replay, err := zone.FromRecords("example.com.", rrs, "test")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		if replay, err = zone.Apply(replay, c.Del, c.Add); err != nil {
			t.Fatalf("apply %d→%d: %v", c.From, c.To, err)
		}
	}
	if a, b := zoneText(t, replay), zoneText(t, cur); a != b {
		t.Errorf("the change log replays to\n%s\nbut the zone is\n%s", a, b)
	}
	if len(changes) < total {
		t.Errorf("%d changes logged, fewer than the %d acknowledged writes", len(changes), total)
	}
}

func zoneText(t *testing.T, z *zone.Zone) string {
	t.Helper()
	var b strings.Builder
	if _, err := z.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func testConfig(t *testing.T) *config.Control {
	return &config.Control{
		DataDir:      filepath.Join(t.TempDir(), "data"),
		API:          config.ControlAPI{Listen: config.DefaultAPIListen, Tokens: []string{token}, MaxBody: 1 << 20},
		SerialPolicy: "date",
		JournalLimit: 10,
		Log:          config.Log{Format: config.LogText},
	}
}

// TestRun starts and stops a control plane in the process: the data
// directory is created, the store is open while it runs and released
// after, and the API answers.
func TestRun(t *testing.T) {
	cfg := testConfig(t)
	c, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Store() != nil {
		t.Error("Store before Run")
	}
	if c.listener, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx, nil) }()
	select {
	case <-c.Ready():
	case err := <-errc:
		t.Fatal(err)
	}
	cl, err := apiclient.New("http://"+c.APIAddr().String(), token, nil)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cl.CreateZone(ctx, api.CreateZone{Name: "example.com", Records: zoneRecords})
	if err != nil {
		t.Fatal(err)
	}
	if info.SerialPolicy != "date" {
		t.Errorf("policy %q, want the configured default", info.SerialPolicy)
	}
	if _, err := c.Store().RRset(ctx, "example.com.", "ns1.example.com.", dns.TypeA); err != nil {
		t.Errorf("Store: %v", err)
	}
	if st, err := os.Stat(cfg.DataDir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("data directory: %v %v", st, err)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	s, err := store.Open(t.Context(), filepath.Join(cfg.DataDir, DBFile), nil)
	if err != nil {
		t.Fatalf("the store is not released after Run: %v", err)
	}
	defer s.Close()
	if zones, _ := s.ListZones(t.Context()); len(zones) != 1 {
		t.Errorf("zones after Run: %v", zones)
	}
}

// TestRunListenFails checks that a failure to bind the API closes the store
// it opened.
func TestRunListenFails(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := testConfig(t)
	cfg.API.Listen = netipAddrPort(t, busy.Addr().String())
	c, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(t.Context(), nil); err == nil || !strings.Contains(err.Error(), "control: api: ") {
		t.Fatalf("Run with the API address in use: %v", err)
	}
	s, err := store.Open(t.Context(), filepath.Join(cfg.DataDir, DBFile), nil)
	if err != nil {
		t.Fatalf("the store is still locked: %v", err)
	}
	s.Close()
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	cfg := testConfig(t)
	cfg.API.Tokens = nil
	if _, err := New(cfg, nil); err == nil || !errors.Is(err, config.ErrInvalid) {
		t.Errorf("New with no tokens: %v", err)
	}
	if _, err := New(nil, nil); err == nil {
		t.Error("New(nil) succeeded")
	}
}

func netipAddrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	a, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
