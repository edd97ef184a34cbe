package httpserve_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/httpserve"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestGracefulShutdown: a request in progress when the context ends is
// answered, Serve returns nil once it is, and the log names the
// component.
func TestGracefulShutdown(t *testing.T) {
	ln := listen(t)
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(started)
		time.Sleep(200 * time.Millisecond)
		_, _ = w.Write([]byte("done"))
	})
	var log testkit.Log
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- httpserve.Serve(ctx, ln, h, slog.New(slog.NewTextHandler(&log, nil)), httpserve.Options{Component: "api"})
	}()
	answer := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if err != nil {
			answer <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		answer <- string(b)
	}()
	<-started
	cancel()
	if got := <-answer; got != "done" {
		t.Errorf("request in progress at shutdown got %q", got)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve after a clean shutdown: %v", err)
	}
	if !strings.Contains(log.String(), "component=api") || !strings.Contains(log.String(), "api listening") {
		t.Errorf("log %q does not name the component", log.String())
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("still accepting after Serve returned")
	}
}

// TestShutdownTimeout: a request longer than the shutdown timeout is cut
// and Serve says so.
func TestShutdownTimeout(t *testing.T) {
	ln := listen(t)
	started := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		close(started)
		<-release
	})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- httpserve.Serve(ctx, ln, h, nil, httpserve.Options{Component: "admin", ShutdownTimeout: 100 * time.Millisecond})
	}()
	go func() {
		if resp, err := http.Get("http://" + ln.Addr().String() + "/"); err == nil {
			resp.Body.Close()
		}
	}()
	<-started
	cancel()
	err := <-served
	if err == nil || !strings.Contains(err.Error(), "admin on 127.0.0.1:") || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Serve with a request past the timeout: %v", err)
	}
}

// TestListenerFails: a listener that fails ends Serve with the error.
func TestListenerFails(t *testing.T) {
	ln := listen(t)
	served := make(chan error, 1)
	go func() {
		served <- httpserve.Serve(context.Background(), ln, http.NotFoundHandler(), nil, httpserve.Options{Component: "metrics"})
	}()
	time.Sleep(50 * time.Millisecond)
	ln.Close()
	if err := <-served; err == nil || !strings.Contains(err.Error(), "metrics on ") {
		t.Errorf("Serve on a closed listener: %v", err)
	}
}

// TestProbes: with Ready set the listener answers /healthz and /readyz
// itself and hands the rest to the handler.
func TestProbes(t *testing.T) {
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	notReady := errors.New("loading zones")
	go func() {
		served <- httpserve.Serve(ctx, ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("app")) }),
			nil, httpserve.Options{Component: "metrics", Ready: func() error { return notReady }})
	}()
	defer func() {
		cancel()
		<-served
	}()
	for path, want := range map[string]string{"/healthz": "ok\n", "/readyz": "not ready: loading zones\n", "/metrics": "app"} {
		resp, err := http.Get("http://" + ln.Addr().String() + path)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		resp.Body.Close()
		if b.String() != want {
			t.Errorf("%s: %q, want %q", path, b.String(), want)
		}
	}
}

// TestIdleClientsDoNotDelay: clients connected without a request in
// progress — one that sent nothing, one idle between keep-alive requests —
// neither delay the shutdown nor make it an error.
func TestIdleClientsDoNotDelay(t *testing.T) {
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- httpserve.Serve(ctx, ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("x")) }),
			nil, httpserve.Options{Component: "metrics", ShutdownTimeout: 10 * time.Second})
	}()
	silent, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	c := &http.Client{}
	resp, err := c.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(resp.Body)
	resp.Body.Close() // the connection stays open, idle
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	cancel()
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("shutdown took %s with idle clients", d)
	}
}
