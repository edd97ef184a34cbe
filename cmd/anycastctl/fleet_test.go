package main

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/fleet"
	"github.com/anycastdns/anycastdns/internal/fleet/level"
	"github.com/anycastdns/anycastdns/internal/stream"
)

// TestFleetCommands lists a fleet of two members, one with a zone behind,
// shows a zone's serial per member, and revokes, unrevokes and forgets.
func TestFleetCommands(t *testing.T) {
	clock := now
	reg, err := fleet.New(fleet.Config{Catalog: "catalog.invalid.", Now: func() time.Time { return clock },
		Serials: func(context.Context) (map[string]uint32, error) {
			return map[string]uint32{"catalog.invalid.": 3, "example.org.": 42}, nil
		}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a := reg.Join(stream.Member{Node: "A-pop", PoP: "A", Version: "v1.0",
		Zones: map[string]uint32{"catalog.invalid.": 3, "example.org.": 42}}, func(string) {})
	a.Heartbeat(stream.Heartbeat{Status: stream.Status{Health: "healthy", BGP: true, QPS: 120.25, TCPConns: 2, Zones: 2, Level: "shed-2",
		Announced: []netip.Prefix{netip.MustParsePrefix("192.0.2.53/32")}}})
	b := reg.Join(stream.Member{Node: "B-pop", PoP: "B", Version: "v1.0",
		Zones: map[string]uint32{"catalog.invalid.": 3, "example.org.": 40}}, func(string) {})
	b.Heartbeat(stream.Heartbeat{Status: stream.Status{Health: "healthy", Drained: true, BGP: true, Zones: 2}})
	clock = clock.Add(3 * time.Second)
	srv := httptest.NewServer(api.Handler(nil, api.Config{Tokens: []string{apiToken}, Fleet: reg}, nil))
	t.Cleanup(srv.Close)
	vars := map[string]string{"ANYCASTCTL_API": srv.URL, "ANYCASTCTL_TOKEN": apiToken}

	steps := []struct {
		args []string
		want string
	}{
		{[]string{"fleet"}, "" +
			"2 members, 2 connected; 2 zones on the control plane\n" +
			"POP  NODE   STATE      HEALTH   ANNOUNCED               LAG              Q/S    TCP  ZONES  HEARTBEAT  VERSION\n" +
			"A    A-pop  connected  healthy  192.0.2.53/32 (shed-2)  in sync          120.2  2    2      3s ago     v1.0\n" +
			"B    B-pop  connected  drained  withdrawn               1 behind, max 2  0.0    0    2      3s ago     v1.0\n"},
		{[]string{"fleet", "-zone", "example.org"}, "" +
			"2 members, 2 connected; 2 zones on the control plane\n" +
			"POP  NODE   STATE      HEALTH   ANNOUNCED               SERIAL example.org  Q/S    TCP  ZONES  HEARTBEAT  VERSION\n" +
			"A    A-pop  connected  healthy  192.0.2.53/32 (shed-2)  42                  120.2  2    2      3s ago     v1.0\n" +
			"B    B-pop  connected  drained  withdrawn               40 (current 42)     0.0    0    2      3s ago     v1.0\n"},
		{[]string{"fleet", "revoke", "B-pop"}, "B-pop: revoked: its stream is closed and it is refused until unrevoke\n"},
		{[]string{"fleet", "unrevoke", "B-pop"}, "B-pop: revocation lifted: it joins at its next attempt (within a minute)\n"},
	}
	for _, st := range steps {
		code, out, errOut := cli(t, vars, st.args...)
		if code != 0 || errOut != "" {
			t.Fatalf("%v: exit %d, stderr %q", st.args, code, errOut)
		}
		if out != st.want {
			t.Errorf("%v printed\n%s\nwant\n%s", st.args, out, st.want)
		}
	}
	code, _, errOut := cli(t, vars, "fleet", "forget", "A-pop")
	if code != 1 || !strings.Contains(errOut, "connected") {
		t.Errorf("forget of a connected member: exit %d, %q", code, errOut)
	}
	a.Leave(nil)
	if code, out, errOut := cli(t, vars, "fleet", "forget", "A-pop"); code != 0 || out != "A-pop: forgotten\n" {
		t.Errorf("forget: exit %d, %q %q", code, out, errOut)
	}
	if code, _, errOut := cli(t, vars, "fleet", "revoke"); code != 2 || !strings.Contains(errOut, "want 1 arguments") {
		t.Errorf("revoke without a node: exit %d, %q", code, errOut)
	}
	if code, out, _ := cli(t, vars, "fleet", "-json"); code != 0 || !strings.Contains(out, `"node": "B-pop"`) {
		t.Errorf("fleet -json: exit %d, %s", code, out)
	}
}

// TestFleetLevels: with monitors reporting and levels decided, anycastctl
// fleet shows the PoPs × vantage points (level, since, nodes, what each
// vantage point sees, why) and the monitors; pin and unpin set and lift a
// PoP's level.
func TestFleetLevels(t *testing.T) {
	clock := now
	reg, err := fleet.New(fleet.Config{Now: func() time.Time { return clock }, Levels: &fleet.LevelsConfig{
		Engine:   level.Config{Quorum: 2, Stale: 2 * time.Second, Hold: 10 * time.Second},
		Interval: 250 * time.Millisecond, Validity: 10 * time.Second}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	reg.Join(stream.Member{Node: "B-pop", PoP: "B", Version: "v1.0"}, func(string) {})
	qps := 1234.5
	for _, v := range []string{"A", "C", "D"} {
		b := fleet.PoPReport{PoP: "B", State: "down"}
		if v == "D" {
			b = fleet.PoPReport{PoP: "B", State: "up", RTTp50ms: 1.25, RTTp95ms: 3.5, QPS: &qps}
		}
		if err := reg.Observe(fleet.Report{Vantage: v, Time: clock, IntervalMS: 250, PoPs: []fleet.PoPReport{
			{PoP: "A", State: "up", RTTp50ms: 1, RTTp95ms: 2}, b}}, "192.0.2.9:4000"); err != nil {
			t.Fatal(err)
		}
		if v == "C" {
			clock = clock.Add(3 * time.Second) // C's report is stale by the step
		}
	}
	reg.Step(true)
	clock = clock.Add(time.Second)
	srv := httptest.NewServer(api.Handler(nil, api.Config{Tokens: []string{apiToken}, Fleet: reg}, nil))
	t.Cleanup(srv.Close)
	vars := map[string]string{"ANYCASTCTL_API": srv.URL, "ANYCASTCTL_TOKEN": apiToken}

	code, out, errOut := cli(t, vars, "fleet")
	want := "" +
		"1 members, 1 connected; 0 zones on the control plane\n" +
		"POP  NODE   STATE      HEALTH  ANNOUNCED  LAG      Q/S  TCP  ZONES  HEARTBEAT  VERSION\n" +
		"B    B-pop  connected  -       no bgp     in sync  0.0  0    0      4s ago     v1.0\n" +
		"\n" +
		"PoP levels: decided every 250ms from the monitors' reports (quorum 2, hold 10s); a node keeps its level 10s without a refresh\n" +
		"POP  LEVEL   SINCE   NODES  A                    C                    D                     WHY\n" +
		"A    normal  1s ago  0      stale: up 1.0/2.0ms  stale: up 1.0/2.0ms  up 1.0/2.0ms          available (neither load nor RTT marks set) for 0s\n" +
		"B    normal  1s ago  1      stale: down          stale: down          up 1.2/3.5ms 1234q/s  available (neither load nor RTT marks set) for 0s\n" +
		"\n" +
		"VANTAGE  LAST REPORT              INTERVAL  POPS  REPORTS  REMOTE\n" +
		"A        4s ago (stale: ignored)  250ms     2     1        192.0.2.9:4000\n" +
		"C        4s ago (stale: ignored)  250ms     2     1        192.0.2.9:4000\n" +
		"D        1s ago                   250ms     2     1        192.0.2.9:4000\n"
	if code != 0 || errOut != "" || out != want {
		t.Errorf("fleet: exit %d, stderr %q, printed\n%s\nwant\n%s", code, errOut, out, want)
	}

	if code, out, errOut := cli(t, vars, "fleet", "pin", "B", "withdrawn", "-reason", "fibre cut"); code != 0 || out != "B: pinned at withdrawn; its nodes get it at once\n" {
		t.Fatalf("pin: exit %d, %q %q", code, out, errOut)
	}
	_, out, _ = cli(t, vars, "fleet")
	if !strings.Contains(out, "withdrawn (pinned)") || !strings.Contains(out, "pinned by the operator: fibre cut (decided: normal)") {
		t.Errorf("fleet after the pin:\n%s", out)
	}
	if code, _, errOut := cli(t, vars, "fleet", "pin", "B", "shed-7"); code != 2 || !strings.Contains(errOut, `unknown level "shed-7"`) {
		t.Errorf("pin at a bad level: exit %d, %q", code, errOut)
	}
	if code, out, errOut := cli(t, vars, "fleet", "unpin", "B"); code != 0 || out != "B: unpinned; now normal\n" {
		t.Errorf("unpin: exit %d, %q %q", code, out, errOut)
	}
	if code, _, errOut := cli(t, vars, "fleet", "unpin", "B"); code != 1 || !strings.Contains(errOut, "not pinned") {
		t.Errorf("second unpin: exit %d, %q", code, errOut)
	}
	if code, out, _ := cli(t, vars, "fleet", "-json"); code != 0 || !strings.Contains(out, `"vantages": [`) || !strings.Contains(out, `"monitors": [`) {
		t.Errorf("fleet -json: exit %d, %s", code, out)
	}
}
