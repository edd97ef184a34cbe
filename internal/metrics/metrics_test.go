package metrics_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/anycastdns/anycastdns/internal/dnsserver"
	"github.com/anycastdns/anycastdns/internal/metrics"
	"github.com/anycastdns/anycastdns/internal/version"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// buildInfo returns the labels of anycastd_build_info in reg, failing when
// it is not there exactly once with the value 1.
func buildInfo(t *testing.T, reg *prometheus.Registry) map[string]string {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "anycastd_build_info" {
			continue
		}
		if len(f.GetMetric()) != 1 || f.GetMetric()[0].GetGauge().GetValue() != 1 {
			t.Fatalf("anycastd_build_info: %v, want one series of value 1", f)
		}
		labels := map[string]string{}
		for _, l := range f.GetMetric()[0].GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		return labels
	}
	t.Fatal("no anycastd_build_info")
	return nil
}

func TestBuildInfoEveryRole(t *testing.T) {
	info := version.Get()
	want := map[string]string{"version": info.Version, "revision": info.Revision, "goversion": info.GoVersion}
	for name, reg := range map[string]*prometheus.Registry{
		"node":    metrics.NewNode(&dnsserver.Stats{}, func() []*zone.Zone { return nil }).Registry,
		"control": metrics.NewControl().Registry,
	} {
		got := buildInfo(t, reg)
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: anycastd_build_info{%s=%q}, want %q", name, k, got[k], v)
			}
		}
	}
}

func TestBuildInfoLabels(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.BuildInfo(version.Info{Version: "v1.2.0", Revision: "abc", GoVersion: "go1.26.0"}))
	got := buildInfo(t, reg)
	if got["version"] != "v1.2.0" || got["revision"] != "abc" || got["goversion"] != "go1.26.0" {
		t.Errorf("labels %v", got)
	}
}
