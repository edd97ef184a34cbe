package lab

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/anycastdns/anycastdns/internal/config"
)

func steeringPlan(t *testing.T) *plan {
	t.Helper()
	topo, err := SteeringTopology()
	if err != nil {
		t.Fatal(err)
	}
	return newPlan("test", topo)
}

// TestMonitorConfig: one monitor per region with a PoP, in its client
// namespace, probing every PoP at its unicast address (DNS and load) and
// reporting to the control plane's own address with a token file that
// anycastd accepts; the stub regions have none.
func TestMonitorConfig(t *testing.T) {
	p := steeringPlan(t)
	ctl, err := p.newControlPlan()
	if err != nil {
		t.Fatal(err)
	}
	ms := p.monitors()
	want := []Monitor{{"A", "A-client"}, {"B", "B-client"}, {"C", "C-client"}}
	if d := cmp.Diff(want, ms); d != "" {
		t.Fatalf("monitors (-want +got):\n%s", d)
	}
	if ctl.Node != "B-client" {
		t.Fatalf("control plane in %s, want B-client", ctl.Node)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, monitorToken), []byte(ctl.MonitorToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := p.renderMonitorConfig(ms[2], ctl)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.ParseMonitor(b, filepath.Join(dir, "C.monitor.yaml"))
	if err != nil {
		t.Fatalf("anycastd rejects the generated monitor config: %v\n%s", err, b)
	}
	if cfg.Vantage != "C" || cfg.Interval != MonitorInterval || cfg.Timeout != MonitorTimeout || cfg.Fall != MonitorFall || cfg.Window != MonitorWindow {
		t.Errorf("vantage %s interval %s timeout %s fall %d window %s", cfg.Vantage, cfg.Interval, cfg.Timeout, cfg.Fall, cfg.Window)
	}
	var pops []string
	for _, pp := range cfg.PoPs {
		pops = append(pops, pp.Name+" "+pp.DNS.String()+" "+pp.Load)
	}
	wantPoPs := []string{
		"A 203.0.113.101:53 http://203.0.113.101:9153",
		"B 203.0.113.102:53 http://203.0.113.102:9153",
		"C 203.0.113.103:53 http://203.0.113.103:9153",
	}
	if d := cmp.Diff(wantPoPs, pops); d != "" {
		t.Errorf("pops (-want +got):\n%s", d)
	}
	if cfg.Report == nil || cfg.Report.URL != "http://198.51.100.65:8080" || cfg.Report.Token != ctl.MonitorToken {
		t.Errorf("report %+v, want the control plane at B-client's address with the monitor token", cfg.Report)
	}
	// The PoP names are those the nodes give in their streams.
	ctl.Stream = true
	node, err := p.nodeConfigFor("B-pop", DefaultNodeTiming, ctl)
	if err != nil {
		t.Fatal(err)
	}
	if node.Control == nil || node.Control.PoP != "B" {
		t.Errorf("B-pop's stream names its PoP %+v, want B", node.Control)
	}
	if node.Metrics.Listen != "203.0.113.102:9153" {
		t.Errorf("B-pop's metrics on %s, want its unicast address (the monitors read the load there)", node.Metrics.Listen)
	}
}

// TestControlConfigLevels: the levels the lab gives the control plane are
// what anycastd reads, and its API listens where the monitors reach it.
func TestControlConfigLevels(t *testing.T) {
	p := steeringPlan(t)
	ctl, err := p.newControlPlan()
	if err != nil {
		t.Fatal(err)
	}
	ctl.Stream = true
	lv := SteeringLevels
	ctl.Levels = &lv
	b, err := p.renderControlConfig(ctl, 0)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.ParseControl(b, filepath.Join(t.TempDir(), "control.yaml"))
	if err != nil {
		t.Fatalf("anycastd rejects the generated control config: %v\n%s", err, b)
	}
	if cfg.Levels == nil {
		t.Fatal("no levels section")
	}
	got := *cfg.Levels
	want := config.Levels{Interval: lv.Interval, Quorum: lv.Quorum, Stale: lv.Stale, Validity: lv.Validity, Hold: lv.Hold,
		HighRTT: lv.HighRTT, LowRTT: lv.LowRTT, MaxShed: lv.MaxShed, MinNormal: lv.MinNormal}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("levels (-want +got):\n%s", d)
	}
	if a := cfg.API.Listen; !a.Addr().IsUnspecified() || a.Port() != ControlAPIPort {
		t.Errorf("API on %s, want every address of the namespace, port %d", a, ControlAPIPort)
	}
}
