package fleet

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

// browser is a headless Chromium driven over the DevTools protocol: one
// page, whose JavaScript runs as in a user's browser.
type browser struct {
	t    *testing.T
	cmd  *exec.Cmd
	ws   *websocket.Conn
	mu   sync.Mutex
	next int
}

// startBrowser starts headless Chromium and opens a blank page. The
// browser is stopped when the test ends.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	bin := testkit.RequireTool(t, "chromium", "chromium")
	profile := t.TempDir()
	cmd := exec.Command(bin, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", //nolint:gosec // the browser under test
		"--no-first-run", "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
		"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--remote-allow-origins=*",
		"--user-data-dir="+profile, "--window-size=1280,560", "about:blank")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	b := &browser{t: t, cmd: cmd}
	t.Cleanup(b.close)
	// "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
	endpoint := make(chan string, 1)
	var logMu sync.Mutex
	var log strings.Builder
	go func() {
		re := regexp.MustCompile(`DevTools listening on (ws://\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logMu.Lock()
			log.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				endpoint <- m[1]
			}
		}
	}()
	var wsURL string
	select {
	case wsURL = <-endpoint:
	case <-time.After(30 * time.Second):
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("chromium did not open its DevTools endpoint in 30s:\n%s", log.String())
	}
	host := strings.TrimPrefix(wsURL, "ws://")
	host = host[:strings.Index(host, "/")]
	// The page the browser opened.
	var targets []struct {
		Type, WebSocketDebuggerURL string
	}
	resp, err := http.Get("http://" + host + "/json/list")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	if err := json.NewDecoder(resp.Body).Decode(&targets); err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		if tg.Type == "page" {
			if b.ws, err = websocket.Dial(tg.WebSocketDebuggerURL, "", "http://127.0.0.1/"); err != nil {
				t.Fatalf("DevTools: %v", err)
			}
			b.ws.MaxPayloadBytes = 64 << 20
			return b
		}
	}
	t.Fatalf("no page among the browser's targets: %+v", targets)
	return nil
}

func (b *browser) close() {
	if b.ws != nil {
		_ = b.ws.Close()
	}
	if b.cmd.Process != nil {
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL) // the browser and its helper processes
		_ = b.cmd.Wait()
	}
}

// call sends one DevTools command and returns its result; events that
// arrive meanwhile are dropped.
func (b *browser) call(method string, params any, result any) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.next++
	id := b.next
	if err := websocket.JSON.Send(b.ws, map[string]any{"id": id, "method": method, "params": params}); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	_ = b.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		var msg struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := websocket.JSON.Receive(b.ws, &msg); err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%s: the browser closed the connection", method)
			}
			return fmt.Errorf("%s: %w", method, err)
		}
		if msg.ID != id {
			continue // an event
		}
		if msg.Error != nil {
			return fmt.Errorf("%s: %s", method, msg.Error.Message)
		}
		if result != nil {
			return json.Unmarshal(msg.Result, result)
		}
		return nil
	}
}

// navigate loads url in the page.
func (b *browser) navigate(url string) {
	b.t.Helper()
	if err := b.call("Page.navigate", map[string]any{"url": url}, nil); err != nil {
		b.t.Fatal(err)
	}
}

// eval runs a JavaScript expression in the page and decodes its value,
// which must be JSON-serializable.
func (b *browser) eval(expr string, out any) error {
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := b.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &res); err != nil {
		return err
	}
	if res.ExceptionDetails != nil {
		return fmt.Errorf("%s: %s", expr, res.ExceptionDetails.Text)
	}
	if len(res.Result.Value) == 0 {
		return fmt.Errorf("%s: no value", expr)
	}
	return json.Unmarshal(res.Result.Value, out)
}

// screenshot captures the page as PNG.
func (b *browser) screenshot() []byte {
	b.t.Helper()
	var res struct {
		Data string `json:"data"`
	}
	if err := b.call("Page.captureScreenshot", map[string]any{"format": "png"}, &res); err != nil {
		b.t.Fatal(err)
	}
	png, err := base64.StdEncoding.DecodeString(res.Data)
	if err != nil {
		b.t.Fatal(err)
	}
	return png
}

// waitPage evaluates expr until cond accepts its value.
func waitPage[T any](ctx context.Context, t *testing.T, b *browser, what, expr string, cond func(T) bool) T {
	t.Helper()
	var v T
	var lastErr error
	for {
		var got T
		if err := b.eval(expr, &got); err == nil {
			v = got
			if cond(got) {
				return got
			}
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the page never showed %s: last value %+v, last error %v", what, v, lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// writeFileIfAsked writes data to path when the test runs with
// FLEET_SCREENSHOT set (docs/fleet.png is made that way).
func writeScreenshot(t *testing.T, png []byte) {
	t.Helper()
	path := os.Getenv("FLEET_SCREENSHOT")
	if path == "" {
		return
	}
	if err := os.WriteFile(path, png, 0o644); err != nil { //nolint:gosec // a documentation image
		t.Fatal(err)
	}
	t.Logf("screenshot written to %s", path)
}
