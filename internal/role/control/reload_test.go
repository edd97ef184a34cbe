package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/apiclient"
	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

const otherToken = "rotated-token-0123456789"

// running is a control plane run in the test with a configuration file.
type running struct {
	c      *Control
	path   string
	log    *testkit.Log
	level  *slog.LevelVar
	reload chan struct{}
	cancel context.CancelFunc
	errc   chan error
}

func startFromFile(t *testing.T, doc string) *running {
	t.Helper()
	r := &running{path: filepath.Join(t.TempDir(), "control.yaml"), log: &testkit.Log{}, reload: make(chan struct{}, 1), errc: make(chan error, 1)}
	if err := os.WriteFile(r.path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadControl(r.path)
	if err != nil {
		t.Fatal(err)
	}
	var logger *slog.Logger
	logger, r.level = config.NewLogger(cfg.Log, r.log)
	r.c, err = New(cfg, logger, WithReload(func() (*config.Control, error) { return config.LoadControl(r.path) }), WithLogLevel(r.level))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	r.cancel = cancel
	go func() { r.errc <- r.c.Run(ctx, r.reload) }()
	t.Cleanup(func() {
		cancel()
		if err := <-r.errc; err != nil {
			t.Errorf("Run: %v", err)
		}
		if t.Failed() {
			t.Logf("log:\n%s", r.log.String())
		}
	})
	select {
	case <-r.c.Ready():
	case err := <-r.errc:
		r.errc <- nil
		t.Fatal(err)
	}
	return r
}

// reloadWith writes doc and reloads, waiting until the log shows the
// outcome (a line with want).
func (r *running) reloadWith(t *testing.T, doc, want string) string {
	t.Helper()
	if err := os.WriteFile(r.path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	before := len(r.log.String())
	r.reload <- struct{}{}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if s := r.log.String()[before:]; strings.Contains(s, want) {
			return s
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no %q logged after the reload", want)
	return ""
}

func apiStatus(t *testing.T, addr, tok string) error {
	t.Helper()
	cl, err := apiclient.New("http://"+addr, tok, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.ListZones(t.Context())
	return err
}

// TestReload changes the token and the log level by reloading; a broken
// configuration is logged with its file:line and changes nothing.
func TestReload(t *testing.T) {
	dir := t.TempDir()
	api := testkit.FreeAddr(t)
	doc := func(tok, level string) string {
		return fmt.Sprintf("data_dir: %s\napi:\n  listen: %s\n  tokens: [%q]\nlog: {level: %s}\n", filepath.Join(dir, "data"), api, tok, level)
	}
	r := startFromFile(t, doc(token, "info"))
	if err := apiStatus(t, api, token); err != nil {
		t.Fatalf("first token before the reload: %v", err)
	}
	if err := apiStatus(t, api, otherToken); !errors.Is(err, apiclient.ErrUnauthorized) {
		t.Fatalf("second token before the reload: %v, want unauthorized", err)
	}

	r.reloadWith(t, doc(otherToken, "debug"), "msg=reloaded")
	if err := apiStatus(t, api, otherToken); err != nil {
		t.Errorf("second token after the reload: %v", err)
	}
	if err := apiStatus(t, api, token); !errors.Is(err, apiclient.ErrUnauthorized) {
		t.Errorf("first token after the reload: %v, want unauthorized", err)
	}
	if r.level.Level() != slog.LevelDebug {
		t.Errorf("log level %v after the reload, want debug", r.level.Level())
	}

	// A short token on line 4: rejected with the file and line.
	out := r.reloadWith(t, doc("short", "info"), "configuration rejected")
	if !strings.Contains(out, r.path+":4:") {
		t.Errorf("the rejection does not name %s:4:\n%s", r.path, out)
	}
	if err := apiStatus(t, api, otherToken); err != nil {
		t.Errorf("the token in force after a rejected reload: %v", err)
	}
	if r.level.Level() != slog.LevelDebug {
		t.Errorf("log level %v after a rejected reload, want debug still", r.level.Level())
	}

	// A setting that needs a restart is named and left alone.
	moved := strings.Replace(doc(otherToken, "debug"), "data_dir: "+filepath.Join(dir, "data"), "data_dir: "+filepath.Join(dir, "elsewhere"), 1)
	out = r.reloadWith(t, moved, "msg=reloaded")
	if !strings.Contains(out, "apply only after a restart") || !strings.Contains(out, "settings=data_dir") {
		t.Errorf("no restart warning for data_dir:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "elsewhere")); err == nil {
		t.Error("the new data_dir was created by a reload")
	}
}

// TestMetricsAndProbes checks the control plane's metrics listener
// (/metrics with the transfer server's collectors and build_info) and the
// probes on it and on the API.
func TestMetricsAndProbes(t *testing.T) {
	dir := t.TempDir()
	api, met, xfr := testkit.FreeAddr(t), testkit.FreeAddr(t), testkit.FreeAddr(t)
	r := startFromFile(t, fmt.Sprintf(`data_dir: %s
api: {listen: %s, tokens: [%q]}
metrics: {listen: %s}
xfr:
  listen: [%s]
  allow_transfer: [{prefix: 127.0.0.0/8}]
`, filepath.Join(dir, "data"), api, token, met, xfr))
	if got := r.c.MetricsAddr().String(); got != met {
		t.Errorf("MetricsAddr %s, want %s", got, met)
	}
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, base := range []string{"http://" + api, "http://" + met} {
		for path, want := range map[string]string{"/healthz": "ok\n", "/readyz": "ready\n"} {
			if code, body := get(base + path); code != 200 || body != want {
				t.Errorf("GET %s%s = %d %q, want 200 %q", base, path, code, body, want)
			}
		}
	}
	// A request to the transfer server shows in its counters.
	q := new(dns.Msg)
	q.SetQuestion("example.com.", dns.TypeSOA)
	if _, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(q, xfr); err != nil {
		t.Fatalf("SOA query to the transfer server: %v", err)
	}
	code, body := get("http://" + met + "/metrics")
	if code != 200 {
		t.Fatalf("GET /metrics: %d", code)
	}
	for _, name := range []string{"anycastd_build_info{", `anycastd_xfrout_requests_total{result="refused",type="soa"} 1`,
		"anycastd_xfrout_tcp_refused_total 0", "go_goroutines"} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	// The API still wants its token beside the probes.
	if code, _ := get("http://" + api + "/v1/zones"); code != http.StatusUnauthorized {
		t.Errorf("GET /v1/zones without a token: %d, want 401", code)
	}
	r.cancel()
}
