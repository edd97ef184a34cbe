package config_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/config"
)

// TestNewLoggerDurations checks that durations carry their unit in both
// formats: a JSON reader must not have to guess that 1500000000 is
// nanoseconds.
func TestNewLoggerDurations(t *testing.T) {
	for _, format := range []config.LogFormat{config.LogJSON, config.LogText} {
		t.Run(string(format), func(t *testing.T) {
			var buf bytes.Buffer
			logger, _ := config.NewLogger(config.Log{Level: slog.LevelInfo, Format: format}, &buf)
			logger.With("component", "test").Info("zones loaded",
				"duration", 1500*time.Millisecond, "count", 3,
				slog.Group("timers", "refresh", 2*time.Hour), "startup", 250*time.Microsecond)
			line := strings.TrimSpace(buf.String())
			if format == config.LogText {
				for _, want := range []string{"duration=1.5s", "timers.refresh=2h0m0s", "startup=250µs", "count=3"} {
					if !strings.Contains(line, want) {
						t.Errorf("%q lacks %q", line, want)
					}
				}
				return
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("not JSON: %v: %s", err, line)
			}
			if m["duration"] != "1.5s" || m["startup"] != "250µs" {
				t.Errorf("durations %v and %v, want \"1.5s\" and \"250µs\": %s", m["duration"], m["startup"], line)
			}
			if g, _ := m["timers"].(map[string]any); g["refresh"] != "2h0m0s" {
				t.Errorf("timers.refresh %v, want \"2h0m0s\": %s", g["refresh"], line)
			}
			if m["count"] != float64(3) {
				t.Errorf("count %v, want the number 3", m["count"])
			}
		})
	}
}

// TestNewLoggerLevel checks that the returned LevelVar moves the level.
func TestNewLoggerLevel(t *testing.T) {
	var buf bytes.Buffer
	logger, level := config.NewLogger(config.Log{Level: slog.LevelWarn, Format: config.LogJSON}, &buf)
	logger.Info("hidden")
	level.Set(slog.LevelDebug)
	logger.Debug("shown")
	if s := buf.String(); strings.Contains(s, "hidden") || !strings.Contains(s, "shown") {
		t.Errorf("log %q: want only the debug line after the level changed", s)
	}
}
