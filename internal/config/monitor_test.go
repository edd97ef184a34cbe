package config_test

import (
	"log/slog"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/anycastdns/anycastdns/internal/config"
)

var monitorFieldLine = regexp.MustCompile(`^testdata/monitor/[a-z0-9_]+\.bad\.yaml:[0-9]+(:[0-9]+: [a-z_]+[a-z0-9_.\[\]"]*)?: \S`)

// TestMonitorBad loads every testdata/monitor/*.bad.yaml and compares the
// error with the paired .bad.err file (rewritten with -update).
func TestMonitorBad(t *testing.T) {
	badFiles(t, "testdata/monitor", "LoadMonitor", config.LoadMonitor, func(t *testing.T, _, line string) {
		if !monitorFieldLine.MatchString(line) {
			t.Errorf("line does not name file:line:column and a field path: %q", line)
		}
		if strings.Contains(line, "secret") {
			t.Errorf("the error shows a password from a URL: %q", line)
		}
	})
}

func TestMonitorGood(t *testing.T) {
	tests := map[string]*config.Monitor{
		"testdata/monitor/minimal.good.yaml": {
			Vantage: "lab-a", Listen: addrPort("127.0.0.1:8055"), CanaryZone: "example.com.",
			Interval: time.Second, Timeout: 500 * time.Millisecond, Rise: 2, Fall: 3, Window: time.Minute,
			PoPs: []config.MonitorPoP{{Name: "A-pop", DNS: addrPort("192.0.2.1:53")}},
			Log:  config.Log{Level: slog.LevelInfo, Format: config.LogText},
		},
		"testdata/monitor/full.good.yaml": {
			Vantage: "region-b", Listen: addrPort("[::1]:9160"), CanaryZone: "canary.example.",
			Interval: 250 * time.Millisecond, Timeout: 200 * time.Millisecond, Rise: 3, Fall: 2, Window: 30 * time.Second,
			PoPs: []config.MonitorPoP{
				{Name: "A-pop", DNS: addrPort("192.0.2.1:53"), Load: "http://192.0.2.1:9153"},
				{Name: "B-pop", DNS: addrPort("[2001:db8::53]:5353"), Load: "https://b-pop.example:8443/base/"},
			},
			Report: &config.MonitorReport{URL: "http://198.51.100.190:8080/", Token: "0123456789abcdef-monitor"},
			Log:    config.Log{Level: slog.LevelDebug, Format: config.LogJSON},
		},
	}
	files, _ := filepath.Glob("testdata/monitor/*.good.yaml")
	for _, f := range files {
		if _, ok := tests[f]; !ok {
			t.Errorf("%s has no expected Monitor in TestMonitorGood", f)
		}
	}
	for file, want := range tests {
		t.Run(filepath.Base(file), func(t *testing.T) {
			got, err := config.LoadMonitor(file)
			if err != nil {
				t.Fatalf("LoadMonitor: %v", err)
			}
			if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(config.Monitor{}), cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
				t.Errorf("LoadMonitor(%s) (-want +got):\n%s", file, diff)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate on the loaded Monitor: %v", err)
			}
		})
	}
}

// TestMonitorValidateInCode: a Monitor built in code gets its problems by
// field path.
func TestMonitorValidateInCode(t *testing.T) {
	m := &config.Monitor{Vantage: "a", Listen: addrPort("127.0.0.1:8055"), CanaryZone: "example.com.",
		Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1, Window: time.Second,
		PoPs: []config.MonitorPoP{{Name: "p", DNS: addrPort("192.0.2.1:53")}}, Log: config.Log{Format: config.LogText}}
	if err := m.Validate(); err != nil {
		t.Fatalf("valid Monitor: %v", err)
	}
	m.PoPs = append(m.PoPs, config.MonitorPoP{Name: "p", DNS: addrPort("192.0.2.1:53")})
	m.Fall = 0
	want := "fall: must be between 1 and 100, got 0\npops[1].name: duplicate PoP p (also pops[0])\npops[1].dns: 192.0.2.1:53 is also the address of pops[0]"
	if err := m.Validate(); err == nil || err.Error() != want {
		t.Errorf("Validate:\n%v\nwant\n%s", err, want)
	}
}

func TestExampleMonitor(t *testing.T) {
	m, err := config.LoadMonitor("../../examples/monitor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.PoPs) != 3 || m.PoPs[0].Load == "" {
		t.Errorf("example decoded unexpectedly: %+v", m)
	}
}
