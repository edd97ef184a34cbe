package api_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/fleet"
	"github.com/anycastdns/anycastdns/internal/fleet/level"
)

func fleetSend(t *testing.T, url, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestFleetObservations: a monitor's report is taken (204) and shown in
// GET /v1/fleet; a bad one gets 400 naming the field; unknown fields are
// ignored (a newer monitor).
func TestFleetObservations(t *testing.T) {
	reg, err := fleet.New(fleet.Config{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := fleetServer(t, reg)
	now := time.Now().UTC().Format(time.RFC3339Nano)
	good := `{"vantage":"A","time":"` + now + `","interval_ms":250,"future":1,"pops":[{"pop":"B","state":"down","rtt_p50_ms":1.2,"rtt_p95_ms":3.4,"qps":1234.5,"tcp_conns":3,"error":"udp: timeout"}]}`
	if code, body := fleetSend(t, srv.URL, "POST", fleet.PathObservations, good); code != http.StatusNoContent {
		t.Fatalf("good report: %d %s", code, body)
	}
	tests := []struct{ body, want string }{
		{`{"vantage":"","time":"` + now + `","interval_ms":250,"pops":[]}`, "vantage: required"},
		{`{"vantage":"A","time":"` + now + `","interval_ms":250,"pops":[{"pop":"B","state":"sideways"}]}`, `pops[0].state: want up, down or unknown`},
		{`{"vantage":"A","time":"` + now + `","interval_ms":250,"pops":[{"pop":"B","state":"up","qps":"many"}]}`, "pops.qps: expected a number"},
		{`{"vantage":"A","interval_ms":250}`, "time: required"},
		{`not json`, "invalid JSON"},
	}
	for _, tt := range tests {
		code, body := fleetSend(t, srv.URL, "POST", fleet.PathObservations, tt.body)
		if code != http.StatusBadRequest || !strings.Contains(body, tt.want) {
			t.Errorf("POST %s: %d %s, want 400 with %q", tt.body, code, body, tt.want)
		}
	}
	code, body, _ := fleetCall(t, srv, "GET", api.PathFleet, true)
	var v fleet.View
	if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil {
		t.Fatalf("GET: %d %s %v", code, body, err)
	}
	if len(v.PoPs) != 1 || len(v.PoPs[0].Vantages) != 1 || len(v.Monitors) != 1 || v.Levels != nil {
		t.Fatalf("view: %s", body)
	}
	if o := v.PoPs[0].Vantages[0]; o.Vantage != "A" || o.State != "down" || o.RTTp95ms != 3.4 || *o.QPS != 1234.5 || *o.TCPConns != 3 || o.Stale {
		t.Errorf("observation: %+v", o)
	}
	if m := v.Monitors[0]; m.Vantage != "A" || m.IntervalMS != 250 || m.PoPs != 1 || m.Reports != 1 {
		t.Errorf("monitor: %+v", m)
	}
	// Without levels there is nothing to pin.
	if code, body := fleetSend(t, srv.URL, "PUT", api.FleetPinPath("B"), `{"level":"shed-1"}`); code != http.StatusConflict {
		t.Errorf("pin without levels: %d %s, want 409", code, body)
	}
}

// TestFleetPin: PUT and DELETE /v1/fleet/pops/{pop}/pin.
func TestFleetPin(t *testing.T) {
	reg, err := fleet.New(fleet.Config{Levels: &fleet.LevelsConfig{Engine: level.Config{Quorum: 2, Stale: 2 * time.Second},
		Interval: 250 * time.Millisecond, Validity: 10 * time.Second}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := fleetServer(t, reg)
	code, body := fleetSend(t, srv.URL, "PUT", api.FleetPinPath("B-pop"), `{"level":"shed-2","reason":"maintenance"}`)
	var v fleet.View
	if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil {
		t.Fatalf("pin: %d %s %v", code, body, err)
	}
	if len(v.PoPs) != 1 || v.PoPs[0].Level != "shed-2" || !v.PoPs[0].Pinned || v.PoPs[0].Pin.Reason != "maintenance" || v.Levels == nil || v.Levels.Quorum != 2 {
		t.Errorf("after the pin: %s", body)
	}
	for _, tt := range []struct{ method, path, body, want string }{
		{"PUT", api.FleetPinPath("B-pop"), `{"level":"shed-9"}`, `level: unknown level \"shed-9\"`},
		{"PUT", api.FleetPinPath("B-pop"), `{"level":"shed-1","why":"x"}`, `unknown field`},
		{"PUT", api.FleetPinPath("a b"), `{"level":"shed-1"}`, `pop: \"a b\" may contain only`},
	} {
		if code, body := fleetSend(t, srv.URL, tt.method, tt.path, tt.body); code != http.StatusBadRequest || !strings.Contains(body, tt.want) {
			t.Errorf("%s %s %s: %d %s, want 400 with %s", tt.method, tt.path, tt.body, code, body, tt.want)
		}
	}
	if code, body := fleetSend(t, srv.URL, "DELETE", api.FleetPinPath("B-pop"), ""); code != 200 || !strings.Contains(body, `"pinned": false`) {
		t.Errorf("unpin: %d %s", code, body)
	}
	if code, body := fleetSend(t, srv.URL, "DELETE", api.FleetPinPath("B-pop"), ""); code != http.StatusNotFound {
		t.Errorf("second unpin: %d %s, want 404", code, body)
	}
}

// TestFleetObservationsQuiet: the monitors' reports, several a second, are
// not logged at info as operators' writes are.
func TestFleetObservationsQuiet(t *testing.T) {
	reg, err := fleet.New(fleet.Config{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	srv := httptest.NewServer(api.Handler(nil, api.Config{Tokens: []string{token}, Fleet: reg}, slog.New(slog.NewTextHandler(&logs, nil))))
	t.Cleanup(srv.Close)
	body := `{"vantage":"A","time":"` + time.Now().UTC().Format(time.RFC3339Nano) + `","interval_ms":250,"pops":[]}`
	if code, b := fleetSend(t, srv.URL, "POST", fleet.PathObservations, body); code != http.StatusNoContent {
		t.Fatalf("report: %d %s", code, b)
	}
	if strings.Contains(logs.String(), "api request") {
		t.Errorf("a report was logged at info:\n%s", logs.String())
	}
}
