package node

import (
	"log/slog"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/dnsserver"
	"github.com/anycastdns/anycastdns/internal/dnstap"
)

// TestTapConfig: the dnstap and query_log sections become the tap's
// outputs, with the node's identity and version; without them the DNS
// server has no Tap at all (a nil interface, not a nil *dnstap.Tap), so
// the query path pays one comparison.
func TestTapConfig(t *testing.T) {
	cfg := &config.Node{Identity: config.Identity{Name: "pop-ams-1", Version: "anycastdns 9"}}
	tap := dnstap.New(slog.New(slog.DiscardHandler))
	var s dnsserver.Settings
	applyTap(tap, cfg, &s)
	if s.Tap != nil || s.TapEvery != 0 {
		t.Errorf("both off: the DNS server's Tap is %#v (every %d), want nil", s.Tap, s.TapEvery)
	}

	cfg.Dnstap = &config.Dnstap{TCP: netip.MustParseAddrPort("[::1]:6000"), Sample: 100, Queue: 10}
	cfg.QueryLog = &config.QueryLog{File: "/var/log/q.jsonl", Sample: 1000, Queue: 20, MaxSize: 1 << 20}
	want := dnstap.Config{
		Dnstap: &dnstap.FrameConfig{Collector: dnstap.Collector{Network: "tcp", Address: "[::1]:6000"},
			Identity: "pop-ams-1", Version: "anycastdns 9", Sample: 100, Queue: 10},
		QueryLog: &dnstap.LogConfig{File: "/var/log/q.jsonl", MaxSize: 1 << 20, Identity: "pop-ams-1", Sample: 1000, Queue: 20},
	}
	if diff := cmp.Diff(want, tapConfig(cfg)); diff != "" {
		t.Errorf("tapConfig (-want +got):\n%s", diff)
	}
	applyTap(tap, cfg, &s)
	if s.Tap != tap || s.TapEvery != 100 {
		t.Errorf("outputs on: the DNS server's Tap is %#v sampling 1 in %d, want the node's, 1 in 100 (the smaller sample)", s.Tap, s.TapEvery)
	}

	cfg.Dnstap = &config.Dnstap{Socket: "/run/dnstap.sock", Sample: 1, Queue: 1}
	cfg.QueryLog = nil
	if got := tapConfig(cfg); got.Dnstap.Collector != (dnstap.Collector{Network: "unix", Address: "/run/dnstap.sock"}) || got.QueryLog != nil {
		t.Errorf("tapConfig with a socket = %+v", got)
	}
}
