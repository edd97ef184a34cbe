package lab

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/config"
)

// TestNodeConfigWithControl: with a control plane, a PoP's configuration
// follows its catalog and lowers the SOA timer floors to 1 s, which
// anycastd accepts, so that the control-outage scenario's zone expires in
// seconds.
func TestNodeConfigWithControl(t *testing.T) {
	p := testPlan(t, false)
	ctl, err := p.newControlPlan()
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.nodeConfig("C-pop", DefaultNodeTiming, ctl)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.ParseNode(b, filepath.Join(t.TempDir(), "C-pop.node.yaml"))
	if err != nil {
		t.Fatalf("anycastd rejects the generated config: %v\n%s", err, b)
	}
	want := config.SecondaryTimers{MinRefresh: time.Second, MinRetry: time.Second, MinExpire: time.Second}
	if cfg.SecondaryTimers != want {
		t.Errorf("secondary timers %+v, want %+v", cfg.SecondaryTimers, want)
	}
	if cfg.Catalog == nil || cfg.Catalog.Zone != CatalogZone {
		t.Errorf("catalog %+v, want %s", cfg.Catalog, CatalogZone)
	}
}

func TestBirdTime(t *testing.T) {
	now := time.Date(2026, 3, 14, 15, 9, 26, 0, time.Local)
	tests := []struct {
		in   string
		want time.Time
	}{
		{"15:09:20.250", time.Date(2026, 3, 14, 15, 9, 20, 250e6, time.Local)},
		{"23:59:59.000", time.Date(2026, 3, 13, 23, 59, 59, 0, time.Local)}, // yesterday
		{"2026-03-12", time.Time{}},
		{"", time.Time{}},
	}
	for _, tt := range tests {
		if got := birdTime(tt.in, now); !got.Equal(tt.want) {
			t.Errorf("birdTime(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestOutageOutput: one JSON object per PoP with the keys the issue names,
// and a table row per PoP.
func TestOutageOutput(t *testing.T) {
	r := &Result{Scenario: "control-outage", Outage: []OutageLine{
		{Scenario: "control-outage", PoP: "A-pop", Announced: true, ExpiredZoneRcode: "SERVFAIL", OtherZoneRcode: "NOERROR", FileZoneRcode: "NOERROR",
			ExpiredZone: OutageExpiringZone, OtherZone: OutageSteadyZone, ExpiredMS: ms(2900 * time.Millisecond), ClientAnswers: 400},
		{Scenario: "control-outage", PoP: "B-pop", ExpiredZoneRcode: "NOERROR", OtherZoneRcode: "NOERROR"},
	}}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(js.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d JSON lines, want 2:\n%s", len(lines), js.String())
	}
	for _, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"scenario", "pop", "announced", "expired_zone_rcode", "other_zone_rcode"} {
			if _, ok := m[k]; !ok {
				t.Errorf("%s: no %q", line, k)
			}
		}
	}
	var tb bytes.Buffer
	if err := r.WriteTable(&tb); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"A-pop  true ", "SERVFAIL", "2900.0", "B-pop  false"} {
		if !strings.Contains(tb.String(), want) {
			t.Errorf("table has no %q:\n%s", want, tb.String())
		}
	}
}
