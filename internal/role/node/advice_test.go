package node

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/anycastdns/anycastdns/internal/config"
)

// TestStartupAdvice: a node listening outside loopback without RRL warns
// at start, naming the setting and where; cookies are on without being
// asked for. (New binds nothing, so the documentation address is safe.)
func TestStartupAdvice(t *testing.T) {
	for _, tt := range []struct {
		name, doc string
		warn      bool
	}{
		{"public", "identity: {name: a}\nlisten: [\"192.0.2.53:53\"]\n", true},
		{"public with rrl", "identity: {name: a}\nlisten: [\"192.0.2.53:53\"]\nlimits: {rrl: {rate: 20}}\n", false},
		{"loopback", "identity: {name: a}\nlisten: [\"127.0.0.1:5353\"]\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.ParseNode([]byte(tt.doc), "n.yaml")
			if err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			if _, err := New(cfg, "", slog.New(slog.NewTextHandler(&log, nil)), nil); err != nil {
				t.Fatal(err)
			}
			warned := strings.Contains(log.String(), "level=WARN msg=\"configuration: response rate limiting is off while DNS listens on 192.0.2.53:53") &&
				strings.Contains(log.String(), "setting=limits.rrl.rate at=n.yaml:2:10")
			if warned != tt.warn {
				t.Errorf("RRL warning logged: %t, want %t:\n%s", warned, tt.warn, log.String())
			}
			if !strings.Contains(log.String(), "dns cookies on with a random secret") {
				t.Errorf("cookies not on by default:\n%s", log.String())
			}
		})
	}
}
