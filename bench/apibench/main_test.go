package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/bench/internal/benchkit"
	"github.com/anycastdns/anycastdns/internal/testkit/pgtest"
)

func TestParseFlags(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.Stores, ",") != "sqlite,postgres" || len(o.Writers) != 2 || o.Writers[0] != 1 || o.Writers[1] != 8 ||
		o.Duration != 10*time.Second || o.Changes != 0 {
		t.Fatalf("defaults: %+v", o)
	}
	o, err = parseFlags([]string{"-stores", "postgres,sqlite,sqlite", "-writers", "4,4,2", "-duration", "0", "-changes", "7"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.Stores, ",") != "sqlite,postgres" || len(o.Writers) != 2 || o.Writers[0] != 4 || o.Writers[1] != 2 || o.Changes != 7 {
		t.Fatalf("parsed: %+v", o)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-stores", "mysql"}, `-stores: unknown store "mysql"`},
		{[]string{"-stores", ","}, "-stores: no store"},
		{[]string{"-writers", "0"}, `-writers: "0" is not a writer count 1..256`},
		{[]string{"-writers", "x"}, `-writers: "x" is not a writer count`},
		{[]string{"-writers", ""}, "-writers: no writer count"},
		{[]string{"-duration", "-1s"}, "-duration -1s: must not be negative"},
		{[]string{"-changes", "-1"}, "-changes -1: want 0..131072"},
		{[]string{"-duration", "0"}, "-duration 0 and -changes 0: a case would never end"},
		{[]string{"-timeout", "0s"}, "-timeout 0s: must be positive"},
		{[]string{"extra"}, `unexpected arguments ["extra"]`},
	} {
		if _, err := parseFlags(tc.args, io.Discard); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.args, err, tc.want)
		}
	}
}

// TestChangesChange: every PUT of a writer changes its RRset (a PUT of what
// is there already is no change and gets no serial of its own), and the
// names of two cases or two writers never meet.
func TestChangesChange(t *testing.T) {
	last := map[string]string{}
	for _, n := range []int{1, 8} {
		for w := range n {
			for i := range 3 * namesPerWriter {
				name, addr := changeName(n, w, i), changeAddr(i).String()
				if last[name] == addr {
					t.Fatalf("case %d, writer %d, change %d: %s gets %s again", n, w, i, name, addr)
				}
				last[name] = addr
			}
		}
	}
	if len(last) != 9*namesPerWriter {
		t.Fatalf("%d names, want %d", len(last), 9*namesPerWriter)
	}
	if a, b := changeAddr(0).String(), changeAddr(maxChanges-1).String(); a != "198.18.0.0" || b != "198.19.255.255" {
		t.Fatalf("addresses %s..%s, want 198.18.0.0..198.19.255.255", a, b)
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
		if buildDir, buildErr = os.MkdirTemp("", "apibench-test-"); buildErr != nil {
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

// TestRun runs the tool tiny (3 changes per writer, 1 and 2 writers) on
// both stores, PostgreSQL when installed (in CI it must be), and reads its
// JSON: every case made all its changes, each with a serial of its own.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts anycastd control and PostgreSQL")
	}
	stores := "sqlite,postgres"
	if _, err := pgtest.BinDir(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI needs PostgreSQL: %v", err)
		}
		t.Logf("SQLite only: %v", err)
		stores = "sqlite"
	}
	bin := anycastdForTest(t)
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"-stores", stores, "-writers", "1,2", "-duration", "0", "-changes", "3", "-json", "-anycastd-bin", bin}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	var rep report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("JSON: %v\n%s", err, stdout.String())
	}
	n := len(strings.Split(stores, ","))
	if len(rep.Cases) != 2*n {
		t.Fatalf("%d cases, want %d: %+v", len(rep.Cases), 2*n, rep.Cases)
	}
	for i, c := range rep.Cases {
		wantStore, wantWriters := storeNames[i/2], 1+i%2
		if c.Store != wantStore || c.Writers != wantWriters || c.Changes != 3*wantWriters || c.Latency.Count != c.Changes ||
			!c.SerialsUnique || c.PerSecond <= 0 || c.Latency.P50 <= 0 || c.Error != "" {
			t.Errorf("case %d: %+v, want %s with %d writers, %d changes, unique serials", i, c, wantStore, wantWriters, 3*wantWriters)
		}
	}
	for _, want := range []string{"changes/s", "p99 ms", "msg=done store=sqlite writers=2"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}
