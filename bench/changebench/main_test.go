package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/bench/internal/benchkit"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Names != 1_000_000 || o.Changes != 100 || strings.Join(o.Only, ",") != "anycastd,knot" || o.Knotc != knotcCalls ||
		o.Poll != time.Millisecond || o.Idle != 20*time.Second || !o.WaitIdle || o.Strict || o.JSON {
		t.Errorf("defaults %+v", o)
	}
	o, err = parseFlags([]string{"-only", "knot, anycastd,knot", "-knotc", "batch", "-names", "2000", "-changes", "5"}, io.Discard)
	if err != nil || strings.Join(o.Only, ",") != "anycastd,knot" || o.Knotc != knotcBatch {
		t.Errorf("parsed %+v, %v", o, err)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-only", "nsd"}, `-only: unknown server "nsd"`},
		{[]string{"-only", ","}, "-only: no server"},
		{[]string{"-names", "99"}, "-names 99"},
		{[]string{"-changes", "0"}, "-changes 0"},
		{[]string{"-changes", "10001"}, "-changes 10001"},
		{[]string{"-knotc", "pipe"}, `-knotc "pipe"`},
		{[]string{"-poll", "0s"}, "-poll 0s"},
		{[]string{"-answer-timeout", "-1s"}, "-answer-timeout -1s"},
		{[]string{"-settle", "-1s"}, "-settle -1s"},
		{[]string{"-idle", "-1s"}, "-idle -1s"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		if _, err := parseFlags(tt.args, io.Discard); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseFlags(%q) = %v, want an error with %q", tt.args, err, tt.want)
		}
	}
}

func TestStandaloneLaunch(t *testing.T) {
	p := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
	l := standaloneLaunch("/bin/anycastd", "/w/anycastd", "TOKEN", 60, p("127.0.0.1:1"), p("127.0.0.1:2"), p("127.0.0.1:3"), p("127.0.0.1:4"))
	want := "/bin/anycastd standalone -data /w/anycastd/data -dns 127.0.0.1:1 -api 127.0.0.1:2 -xfr 127.0.0.1:3 -admin 127.0.0.1:4 -api-max-body 60MiB -metrics= -nsid bench-anycastd -log-level warn"
	if got := strings.Join(l.Argv, " "); got != want {
		t.Errorf("argv %q, want %q", got, want)
	}
	// The token goes through the environment, not the command line.
	if strings.Contains(strings.Join(l.Argv, " "), "TOKEN") || len(l.Env) != 1 || l.Env[0] != "ANYCASTD_API_TOKEN=TOKEN" {
		t.Errorf("argv %q env %q", l.Argv, l.Env)
	}
}

// TestMaxBodyMiB: the API's body limit takes the whole zone file in one
// request (the 1,000,000-name zone is 61 MB, over the API's default).
func TestMaxBodyMiB(t *testing.T) {
	for _, tt := range []struct {
		size int64
		want int64
		err  bool
	}{
		{0, 32, false},
		{120_000, 32, false},
		{32 << 20, 33, false},
		{61_000_000, 59, false},
		{64 << 20, 65, false},
		{1<<30 - 1, 1024, false},
		{1 << 30, 0, true},
	} {
		got, err := maxBodyMiB(tt.size)
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("maxBodyMiB(%d) = %d, %v; want %d, error %v", tt.size, got, err, tt.want, tt.err)
		}
		if err == nil && got<<20 <= tt.size {
			t.Errorf("maxBodyMiB(%d) = %d MiB: the file does not fit", tt.size, got)
		}
	}
}

func TestKnotcCommands(t *testing.T) {
	c := change{Name: "h7.g1", Old: netip.MustParseAddr("100.64.0.28"), New: netip.MustParseAddr("198.18.0.3")}
	var got []string
	for _, cmd := range knotcCommands("bench.example.", c) {
		got = append(got, strings.Join(cmd, " "))
	}
	want := "zone-begin bench.example.|zone-unset bench.example. h7.g1 A|zone-set bench.example. h7.g1 3600 A 198.18.0.3|zone-commit bench.example."
	if strings.Join(got, "|") != want {
		t.Errorf("commands %q, want %q", got, want)
	}
}

// TestImportErrors has the API refuse the import, once because the body is
// over its limit: the error says what happened and why.
func TestImportErrors(t *testing.T) {
	dir := t.TempDir()
	z, err := benchkit.GenerateZone("bench.example.", 200, dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := benchkit.Start(benchkit.Launch{Name: "sleep", Argv: []string{"sleep", "60"}}, -1, 0, dir, netip.AddrPort{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(5 * time.Second) })
	for _, tt := range []struct {
		status int
		body   string
		want   string
	}{
		{http.StatusRequestEntityTooLarge, `{"error": "request body too large"}`,
			"413 Request Entity Too Large: request body too large (the zone file is 0.0 MB; anycastd standalone takes bodies up to its -api-max-body"},
		{http.StatusBadRequest, `{"error": "zonefile:3: bad A"}`, "400 Bad Request: zonefile:3: bad A"},
		{http.StatusInternalServerError, "not json", "500 Internal Server Error: not json"},
	} {
		t.Run(fmt.Sprint(tt.status), func(t *testing.T) {
			var gotPath, gotType, gotAuth string
			var gotBody int
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotPath, gotType, gotAuth = r.URL.EscapedPath(), r.Header.Get("Content-Type"), r.Header.Get("Authorization")
				b, _ := io.ReadAll(r.Body)
				gotBody = len(b)
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			a := &anycastd{s: s, api: srv.URL, token: "T", origin: z.Origin, hc: srv.Client()}
			b := &bench{o: &options{LoadTimeout: 10 * time.Second}, zone: z, logger: slog.New(slog.DiscardHandler)}
			_, err := a.importZone(t.Context(), b)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("import error %v, want one with %q", err, tt.want)
			}
			if gotPath != "/v1/zones/bench.example./zonefile" || gotType != "text/dns" || gotAuth != "Bearer T" || int64(gotBody) != z.Bytes {
				t.Errorf("request %s %s %q with %d bytes, want the zone file's %d", gotPath, gotType, gotAuth, gotBody, z.Bytes)
			}
		})
	}
}

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
	buildDir  string
)

// anycastdForTest builds ./cmd/anycastd once for the tests of this package.
func anycastdForTest(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "changebench-test-"); buildErr != nil {
			return
		}
		buildBin, buildErr = benchkit.AnycastdBinary(context.Background(), "", buildDir, slog.New(slog.DiscardHandler))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// needServers skips the end-to-end tests with -short and when Knot is
// missing (except under CI=true: then they fail).
func needServers(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts anycastd and Knot")
	}
	benchkit.NeedTool(t, "knotd")
	benchkit.NeedTool(t, "knotc")
}

// gone fails the test when pid is still a process.
func gone(t *testing.T, what string, pid int) {
	t.Helper()
	if pid <= 0 {
		t.Errorf("%s: no PID", what)
		return
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("%s (PID %d) still exists after the run (kill -0: %v)", what, pid, err)
	}
}

// emptyDir fails the test when dir holds anything.
func emptyDir(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left behind: %s", filepath.Join(dir, e.Name()))
	}
}

// TestRun runs the benchmark on a small zone against anycastd standalone
// and Knot: every change must be answered by both, with figures that are
// measurements, and nothing may be left running or on disk.
func TestRun(t *testing.T) {
	needServers(t)
	bin := anycastdForTest(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{"-names", "2000", "-changes", "5", "-settle", "100ms", "-idle", "100ms", "-answer-timeout", "10s", "-json", "-anycastd-bin", bin}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	var rep report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("JSON: %v\n%s", err, stdout.String())
	}
	if len(rep.Servers) != 2 || rep.Zone.Names != 2000 {
		t.Fatalf("%d servers, zone %+v", len(rep.Servers), rep.Zone)
	}
	for _, s := range rep.Servers {
		if s.Error != "" || len(s.Changes) != 5 || s.NotAnswered != 0 {
			t.Errorf("%s: error %q, %d changes, %d not answered", s.Server, s.Error, len(s.Changes), s.NotAnswered)
		}
		for i, c := range s.Changes {
			if c.API <= 0 || c.Answer <= 0 || c.Answer >= time.Minute || c.RSS == 0 {
				t.Errorf("%s change %d: %+v", s.Server, i, c)
			}
			if c.Name != rep.Servers[0].Changes[i].Name || c.New != rep.Servers[0].Changes[i].New {
				t.Errorf("%s change %d is %s -> %v, not the same change as %s's", s.Server, i, c.Name, c.New, rep.Servers[0].Server)
			}
		}
		if s.Load.Busy < idleWindows*idleWindow {
			t.Errorf("%s: busy after the load %v, want at least %d looks (%v)", s.Server, s.Load.Busy, idleWindows, idleWindows*idleWindow)
		}
		if s.RSSAfterLoad == 0 || s.RSSAfterChanges == 0 || s.RSSIdle == 0 || s.HWM < s.RSSAfterChanges || s.Load.Total <= 0 || len(s.Targets) != 5 {
			t.Errorf("%s: load %+v, RSS %d / %d, HWM %d, %d targets", s.Server, s.Load, s.RSSAfterLoad, s.RSSAfterChanges, s.HWM, len(s.Targets))
		}
		gone(t, s.Server, s.PID)
	}
	if a := rep.Servers[0]; a.Server != "anycastd" || a.Load.Import <= 0 || a.Load.Ready <= 0 || a.Load.Total < a.Load.Import {
		t.Errorf("anycastd load %+v: want ready, import and total, total at least the import", a.Load)
	}
	if !strings.Contains(stderr.String(), "Targets of issue 11") || !strings.Contains(stderr.String(), "msg=change server=knot n=5") {
		t.Errorf("stderr lacks the tables or the progress:\n%s", stderr.String())
	}
	emptyDir(t, tmp)
}

// TestRunKnotBatch changes Knot through one knotc reading the commands.
func TestRunKnotBatch(t *testing.T) {
	needServers(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, []string{"-only", "knot", "-knotc", "batch", "-names", "2000", "-changes", "3", "-settle", "0s", "-idle", "0s", "-json"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	var rep report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Servers) != 1 || rep.Servers[0].Error != "" || len(rep.Servers[0].Changes) != 3 || rep.Servers[0].NotAnswered != 0 {
		t.Errorf("result %+v", rep.Servers)
	}
	if !strings.Contains(stderr.String(), "one knotc process reading the four commands") {
		t.Errorf("the report does not say how Knot was changed:\n%s", stderr.String())
	}
}

// cancelOn is a writer that calls cancel when what it is given contains
// marker.
type cancelOn struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	marker string
	cancel func()
}

func (c *cancelOn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	if strings.Contains(c.buf.String(), c.marker) {
		c.cancel()
	}
	return len(p), nil
}

// TestInterrupt cancels the run (as Ctrl-C does) in the middle of
// anycastd's changes: the run reports what it measured and ends with an
// error, and the server process and the work directory are gone.
func TestInterrupt(t *testing.T) {
	needServers(t)
	bin := anycastdForTest(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	stderr := &cancelOn{marker: "msg=change server=anycastd n=2", cancel: cancel}
	var stdout bytes.Buffer
	start := time.Now()
	err := run(ctx, []string{"-names", "2000", "-changes", "50", "-settle", "0s", "-idle", "0s", "-anycastd-bin", bin}, &stdout, stderr)
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("run = %v, want interrupted", err)
	}
	// What was measured is still reported.
	if out := stdout.String(); !strings.Contains(out, "anycastd failed: interrupted") || !strings.Contains(out, "Targets of issue 11") {
		t.Errorf("no report of the interrupted run:\n%s", out)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("run took %v to end after the interrupt", d)
	}
	if tree := benchkit.ProcessTree(os.Getpid()); len(tree) != 1 {
		t.Errorf("processes left: %v", tree[1:])
	}
	emptyDir(t, tmp)
	if strings.Contains(stderr.buf.String(), "server=knot") {
		t.Errorf("Knot started after the interrupt:\n%s", stderr.buf.String())
	}
}

// TestServerFails gives an anycastd that exits at once: the run reports it
// with the server's message and ends by itself; -strict turns it into an
// error.
func TestServerFails(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "anycastd")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho 'no such role' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, strict := range []bool{false, true} {
		var stdout, stderr bytes.Buffer
		args := []string{"-only", "anycastd", "-names", "200", "-changes", "2", "-json", "-anycastd-bin", bin}
		if strict {
			args = append(args, "-strict")
		}
		err := run(t.Context(), args, &stdout, &stderr)
		if strict != (err != nil) || strict && !strings.Contains(err.Error(), "anycastd failed") {
			t.Errorf("strict %v: run = %v", strict, err)
		}
		var rep report
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			t.Fatal(err)
		}
		if len(rep.Servers) != 1 || !strings.Contains(rep.Servers[0].Error, "exited before its API answered") ||
			!strings.Contains(rep.Servers[0].Error, "no such role") {
			t.Errorf("result %+v", rep.Servers)
		}
	}
}
