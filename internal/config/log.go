package config

import (
	"fmt"
	"io"
	"log/slog"

	"go.yaml.in/yaml/v3"
)

// LogFormat selects the slog handler.
type LogFormat string

// Log formats.
const (
	LogText LogFormat = "text"
	LogJSON LogFormat = "json"
)

// Log configures the process logger.
type Log struct {
	Level  slog.Level // debug, info, warn or error (default info)
	Format LogFormat  // text or json (default text)
}

func defaultLog() Log { return Log{Level: slog.LevelInfo, Format: LogText} }

var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug,
	"info":  slog.LevelInfo,
	"warn":  slog.LevelWarn,
	"error": slog.LevelError,
}

func parseLogLevel(s string) (slog.Level, error) {
	if l, ok := logLevels[s]; ok {
		return l, nil
	}
	return 0, fmt.Errorf("invalid level %q (want debug, info, warn or error)", s)
}

func parseLogFormat(s string) (LogFormat, error) {
	switch f := LogFormat(s); f {
	case LogText, LogJSON:
		return f, nil
	}
	return "", fmt.Errorf("invalid format %q (want text or json)", s)
}

func (d *decoder) log(n *yaml.Node, path string, l *Log) {
	d.mapping(n, path, []field{
		{"level", func(n *yaml.Node, p string) {
			if v, ok := parseScalar(d, n, p, parseLogLevel); ok {
				l.Level = v
			}
		}},
		{"format", func(n *yaml.Node, p string) {
			if v, ok := parseScalar(d, n, p, parseLogFormat); ok {
				l.Format = v
			}
		}},
	})
}

func (v *validator) log(path string, l Log) {
	if _, err := parseLogFormat(string(l.Format)); err != nil {
		v.add(path+".format", "%v", err)
	}
}

// NewLogger is the one log setup of every role: a text or JSON handler on w
// at a level that can be changed later (a reload sets the returned LevelVar).
//
// Durations are written as Go duration strings ("1.5s", "250ms") in both
// formats: the text handler does so already, and the JSON handler would
// write a bare integer of nanoseconds, whose unit a reader of the log
// cannot know.
func NewLogger(l Log, w io.Writer) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	level.Set(l.Level)
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: durationString}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if l.Format == LogJSON {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h), level
}

// durationString renders a time.Duration attribute as its String form.
func durationString(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}
