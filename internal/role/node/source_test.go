package node

import (
	"net/netip"
	"testing"

	"github.com/anycastdns/anycastdns/internal/config"
)

// TestSourceBounds: every limits.source the configuration accepts makes a
// limiter, and the first value past each bound is refused by the
// configuration (the bounds live in config and ratelimit both).
func TestSourceBounds(t *testing.T) {
	for _, s := range []config.SourceLimit{
		{},
		{Rate: config.MaxSourceRate, Burst: config.MaxSourceRate, IPv4Prefix: 32, IPv6Prefix: 128, Buckets: config.MaxSourceBuckets,
			Exempt: make([]netip.Prefix, 0, config.MaxSourceExempt)},
		{Rate: 1, IPv4Prefix: 0, IPv6Prefix: 0, Buckets: 1, Exempt: []netip.Prefix{netip.MustParsePrefix("::1/128")}},
	} {
		if _, err := sourceLimiter(s); err != nil {
			t.Errorf("sourceLimiter(%+v): %v", s, err)
		}
	}
	base := "identity: {name: a}\nlisten: [\"127.0.0.1:53\"]\nlimits:\n  source: {rate: 1, "
	for _, field := range []string{
		"burst: 16777217", "ipv4_prefix: 33", "ipv6_prefix: 129", "buckets: 16777217", "buckets: -1",
	} {
		if _, err := config.ParseNode([]byte(base+field+"}\n"), "test"); err == nil {
			t.Errorf("limits.source {%s} accepted", field)
		}
	}
	if _, err := config.ParseNode([]byte("identity: {name: a}\nlisten: [\"127.0.0.1:53\"]\nlimits:\n  source: {rate: 16777217}\n"), "test"); err == nil {
		t.Error("limits.source rate 16777217 accepted")
	}
}
