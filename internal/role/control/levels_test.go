package control

import (
	"context"
	"encoding/base64"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/fleet"
	"github.com/anycastdns/anycastdns/internal/stream"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

type noZones struct{}

func (noZones) Serials() map[string]uint32 { return map[string]uint32{} }
func (noZones) CatalogZone() string        { return "" }
func (noZones) Refresh(string) error       { return nil }
func (noZones) ApplyPushed(context.Context, string, [][]byte, string) (stream.PushResult, error) {
	return stream.PushResult{Unknown: true}, nil
}

// TestLevelsLoop: a control plane with a stream and levels takes the
// monitors' reports on its API, and a node of a PoP that two of three
// vantage points see down is sent "withdrawn" within a moment (the step
// follows the report), then refreshed every interval; the shutdown stops
// the decisions before the streams.
func TestLevelsLoop(t *testing.T) {
	cfg := testConfig(t)
	xfrConfigFor(t, cfg)
	cfg.Stream = config.Stream{Listen: []netip.AddrPort{netip.MustParseAddrPort(testkit.FreeAddr(t))}, Heartbeat: 100 * time.Millisecond}
	l := config.DefaultLevels()
	l.Interval, l.Validity = 100*time.Millisecond, time.Second
	cfg.Levels = &l
	c, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.listener, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- c.Run(ctx, nil) }()
	select {
	case <-c.Ready():
	case err := <-errc:
		t.Fatal(err)
	}

	secret, _ := base64.StdEncoding.DecodeString(cfg.Xfr.TSIGKeys[0].Secret)
	type got struct {
		l  stream.Level
		at time.Time
	}
	levels := make(chan got, 100)
	cl, err := stream.NewClient(stream.ClientConfig{URL: "http://" + c.StreamAddrs()[0].String(), KeyName: "k.", Secret: secret,
		Node: "b1", PoP: "B", OnLevel: func(l stream.Level) { levels <- got{l, time.Now()} }},
		noZones{}, func() stream.Status { return stream.Status{Health: "healthy"} }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	cctx, ccancel := context.WithCancel(ctx)
	cdone := make(chan struct{})
	go func() { _ = cl.Run(cctx); close(cdone) }()
	defer func() { ccancel(); <-cdone }()
	deadline := time.Now().Add(5 * time.Second)
	for !cl.Live() {
		if time.Now().After(deadline) {
			t.Fatal("the node's stream did not come up")
		}
		time.Sleep(10 * time.Millisecond)
	}

	report := func(vantage, bState string) {
		t.Helper()
		body := `{"vantage":"` + vantage + `","time":"` + time.Now().UTC().Format(time.RFC3339Nano) + `","interval_ms":250,"pops":[` +
			`{"pop":"A","state":"up"},{"pop":"B","state":"` + bState + `"},{"pop":"C","state":"up"}]}`
		req, _ := http.NewRequest("POST", "http://"+c.APIAddr().String()+fleet.PathObservations, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("report: %s", resp.Status)
		}
	}
	report("v1", "up")
	report("v2", "up")
	report("v3", "up")
	wait := func(want string) got {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for {
			select {
			case g := <-levels:
				if g.l.Level == want {
					return g
				}
			case <-timeout:
				t.Fatalf("no %s level within 5s", want)
			}
		}
	}
	wait("normal")
	report("v1", "down")
	sent := time.Now()
	report("v2", "down")
	g := wait("withdrawn")
	if d := g.at.Sub(sent); d > 500*time.Millisecond {
		t.Errorf("withdrawn reached the node %v after the report that decided it, want well under the 2 s budget", d)
	}
	if g.l.PoP != "B" || g.l.ValidMS != 1000 || !strings.Contains(g.l.Reason, "down from 2 of 3") {
		t.Errorf("level %+v", g.l)
	}
	// Refreshed every interval.
	n := 0
	for end := time.After(550 * time.Millisecond); n < 10; {
		select {
		case g := <-levels:
			if g.l.Level == "withdrawn" {
				n++
			}
			continue
		case <-end:
		}
		break
	}
	if n < 3 {
		t.Errorf("%d refreshes in 550ms at an interval of 100ms", n)
	}

	ccancel()
	<-cdone
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := []string{"reload", "not ready", "api+metrics", "signing", "levels", "steering", "stream", "xfr"}
	if got := c.runner.Stopped(); !slices.Equal(got, want) {
		t.Errorf("stop stages %v, want %v", got, want)
	}
}
