package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/fleet"
	"github.com/anycastdns/anycastdns/internal/stream"
)

func fleetServer(t *testing.T, f api.Fleet) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(api.Handler(nil, api.Config{Tokens: []string{token}, Fleet: f}, nil))
	t.Cleanup(srv.Close)
	return srv
}

func fleetCall(t *testing.T, srv *httptest.Server, method, path string, auth bool) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// TestFleetEndpoints: the fleet's list (with a zone's serial per member),
// revoke, unrevoke and forget, and their errors.
func TestFleetEndpoints(t *testing.T) {
	reg, err := fleet.New(fleet.Config{Serials: func(context.Context) (map[string]uint32, error) {
		return map[string]uint32{"example.org.": 42}, nil
	}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	stopped := ""
	reg.Join(stream.Member{Node: "A-pop", PoP: "A", Zones: map[string]uint32{"example.org.": 41}}, func(r string) { stopped = r })
	srv := fleetServer(t, reg)

	if code, _, _ := fleetCall(t, srv, "GET", api.PathFleet, false); code != http.StatusUnauthorized {
		t.Errorf("without a token: %d", code)
	}
	code, body, _ := fleetCall(t, srv, "GET", api.PathFleet+"?zone=EXAMPLE.org", true)
	var v fleet.View
	if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil {
		t.Fatalf("GET: %d %s %v", code, body, err)
	}
	if len(v.Members) != 1 || v.Members[0].Node != "A-pop" || v.Members[0].State != fleet.StateConnected ||
		v.Members[0].Zone == nil || v.Members[0].Zone.Serial != 41 || v.Members[0].Zone.Current != 42 || v.Zones != 1 {
		t.Errorf("GET: %s", body)
	}
	if code, body, _ := fleetCall(t, srv, "GET", api.PathFleet+"?zone=bad..name", true); code != http.StatusBadRequest {
		t.Errorf("bad zone: %d %s", code, body)
	}
	if code, body, _ := fleetCall(t, srv, "DELETE", api.FleetMemberPath("A-pop"), true); code != http.StatusConflict {
		t.Errorf("forget a connected member: %d %s", code, body)
	}
	if code, body, _ := fleetCall(t, srv, "POST", api.FleetRevokePath("A-pop"), true); code != 200 || !strings.Contains(body, `"state": "revoked"`) {
		t.Errorf("revoke: %d %s", code, body)
	}
	if stopped != stream.ByeRevoked {
		t.Errorf("the member's stream was stopped with %q, want %q", stopped, stream.ByeRevoked)
	}
	if err := reg.Admit("A-pop", "k."); err == nil {
		t.Error("a revoked member is admitted")
	}
	if code, _, _ := fleetCall(t, srv, "DELETE", api.FleetRevokePath("A-pop"), true); code != 200 {
		t.Errorf("unrevoke: %d", code)
	}
	if code, _, _ := fleetCall(t, srv, "DELETE", api.FleetRevokePath("A-pop"), true); code != http.StatusNotFound {
		t.Errorf("unrevoke again: %d", code)
	}
	if code, body, _ := fleetCall(t, srv, "PUT", api.FleetRevokePath("A-pop"), true); code != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d %s", code, body)
	}
}

// TestFleetPage: the page and its files are served without a token, with
// a content security policy that allows nothing from elsewhere; without a
// fleet there is neither page nor list.
func TestFleetPage(t *testing.T) {
	reg, err := fleet.New(fleet.Config{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := fleetServer(t, reg)
	for _, p := range []string{"/fleet", "/fleet/fleet.js", "/fleet/fleet.css"} {
		code, body, h := fleetCall(t, srv, "GET", p, false)
		if code != 200 || len(body) < 100 || !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("%s: %d, %d bytes, CSP %q", p, code, len(body), h.Get("Content-Security-Policy"))
		}
		if strings.Contains(body, "http://") || strings.Contains(body, "https://") {
			t.Errorf("%s refers to an external address", p)
		}
	}
	none := fleetServer(t, nil)
	if code, _, _ := fleetCall(t, none, "GET", "/fleet", true); code != http.StatusNotFound {
		t.Errorf("page without a fleet: %d", code)
	}
	if code, body, _ := fleetCall(t, none, "GET", api.PathFleet, true); code != http.StatusNotFound || !strings.Contains(body, "stream.listen") {
		t.Errorf("list without a fleet: %d %s", code, body)
	}
}
