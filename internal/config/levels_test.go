package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/config"
)

// TestMonitorReportTokenFile: the monitor's token is read from its file
// (first token line), which must not be readable by others.
func TestMonitorReportTokenFile(t *testing.T) {
	dir := t.TempDir()
	const base = "vantage: a\ncanary_zone: example.com.\npops: [{name: A-pop, dns: 192.0.2.1:53}]\nreport:\n  url: http://127.0.0.1:8080\n  token_file: monitor.token\n"
	conf := filepath.Join(dir, "monitor.yaml")
	if err := os.WriteFile(conf, []byte(base), 0o600); err != nil {
		t.Fatal(err)
	}
	token := filepath.Join(dir, "monitor.token")
	tests := []struct {
		name, content string
		mode          os.FileMode
		want, err     string
	}{
		{"first token", "# the monitor's token\n\n0123456789abcdef-mon\nsecond-token-0123456\n", 0o600, "0123456789abcdef-mon", ""},
		{"world readable", "0123456789abcdef-mon\n", 0o644, "", "monitor.yaml:6:15: report.token_file: the token file is accessible to other users (mode 0644)"},
		{"empty", "# nothing\n", 0o600, "", "monitor.yaml:6:15: report.token_file: the token file holds no token"},
		{"short", "abc\n", 0o600, "", "monitor.yaml:6:15: report.token_file: the token must be 16 to 512 characters long, got 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(token, []byte(tt.content), tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(token, tt.mode); err != nil {
				t.Fatal(err)
			}
			m, err := config.LoadMonitor(conf)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("LoadMonitor: %v, want an error containing %q", err, tt.err)
				}
				if strings.Contains(err.Error(), tt.content) {
					t.Errorf("the error shows the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadMonitor: %v", err)
			}
			if m.Report == nil || m.Report.Token != tt.want || m.Report.TokenFile != token || m.Report.URL != "http://127.0.0.1:8080" {
				t.Errorf("Report = %+v, want token %q from %s", m.Report, tt.want, token)
			}
		})
	}
}

// TestLevelsDefaults: "levels:" with no keys gives the documented
// defaults; without it there are no levels.
func TestLevelsDefaults(t *testing.T) {
	const base = "data_dir: /d\napi: {tokens: [\"0123456789abcdef\"]}\nxfr:\n  listen: [\"127.0.0.1:5300\"]\n  tsig_keys: [{name: k, secret: \"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==\"}]\n  allow_transfer: [{prefix: 127.0.0.0/8}]\nstream: {listen: [\"127.0.0.1:8055\"]}\n"
	c, err := config.ParseControl([]byte(base), "control.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Levels != nil {
		t.Errorf("Levels = %+v without a levels section, want nil", c.Levels)
	}
	c, err = config.ParseControl([]byte(base+"levels: {}\n"), "control.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := config.Levels{Interval: 250 * time.Millisecond, Quorum: 2, Stale: 2 * time.Second,
		Validity: 10 * time.Second, Hold: 10 * time.Second, MaxShed: 1, MinNormal: 1}
	if c.Levels == nil || *c.Levels != want || config.DefaultLevels() != want {
		t.Errorf("Levels = %+v, DefaultLevels() = %+v, want %+v", c.Levels, config.DefaultLevels(), want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	l := *c.Levels
	l.LowRTT = time.Millisecond
	c.Levels = &l
	if err := c.Validate(); err == nil || err.Error() != "control.yaml:8:9: levels.low_rtt: set without high_rtt (0 = not used)" {
		t.Errorf("Validate with low_rtt alone: %v", err)
	}
}
