package main

import (
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/fleet"
)

// TestPoolStatus: pool status shows the steering state's version and each
// endpoint of the zone's pools, down by the quorum, with what each vantage
// point saw.
func TestPoolStatus(t *testing.T) {
	clock := now
	reg, err := fleet.New(fleet.Config{Now: func() time.Time { return clock }}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler(nil, api.Config{Tokens: []string{apiToken}, Fleet: reg}, nil))
	t.Cleanup(srv.Close)
	vars := map[string]string{"ANYCASTCTL_API": srv.URL, "ANYCASTCTL_TOKEN": apiToken}
	if code, out, errOut := cli(t, vars, "pool", "status", "example.com"); code != 0 || out != ""+
		"steering state: none yet (no endpoint reports)\n"+
		"no endpoint of zone example.com. is reported by a monitor\n" {
		t.Fatalf("before reports: exit %d, %q %q", code, out, errOut)
	}
	load := 4.0
	for _, v := range []string{"eu", "us"} {
		rep := fleet.Report{Vantage: v, Time: clock, IntervalMS: 1000, Endpoints: []fleet.EndpointReport{
			{Zone: "example.com.", Pool: "svc.example.com./A", Endpoint: "192.0.2.1", State: "down", Quorum: 2, Error: "http check: status 503, want 200"},
			{Zone: "example.com.", Pool: "svc.example.com./A", Endpoint: "192.0.2.2", State: "up", Quorum: 2, RTTms: 1.5, Load: &load},
			{Zone: "other.org.", Pool: "x.other.org./A", Endpoint: "192.0.2.9", State: "up", Quorum: 1},
		}}
		if err := reg.Observe(rep, "127.0.0.1:1"); err != nil {
			t.Fatal(err)
		}
	}
	clock = clock.Add(time.Second)
	version := reg.SteeringView("").Version
	code, out, errOut := cli(t, vars, "pool", "status", "example.com")
	want := "" +
		"steering state: version " + itoa(version) + " since 2026-03-14T15:09:26.000Z\n" +
		"POOL                ENDPOINT   STATE  QUORUM  VANTAGE  SEEN  RTT    LOAD  AGE   ERROR\n" +
		"svc.example.com./A  192.0.2.1  down   2       eu       down  0.0ms  -     1.0s  http check: status 503, want 200\n" +
		"                                              us       down  0.0ms  -     1.0s  http check: status 503, want 200\n" +
		"svc.example.com./A  192.0.2.2  up     2       eu       up    1.5ms  4     1.0s  \n" +
		"                                              us       up    1.5ms  4     1.0s  \n"
	if code != 0 || out != want {
		t.Fatalf("exit %d, stderr %q, printed\n%s\nwant\n%s", code, errOut, out, want)
	}
	if code, out, _ := cli(t, vars, "pool", "status", "example.com", "-json"); code != 0 || !strings.Contains(out, `"endpoint": "192.0.2.1"`) || strings.Contains(out, "other.org") {
		t.Errorf("-json: exit %d, %s", code, out)
	}
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }
