package config

import (
	"net/netip"

	"go.yaml.in/yaml/v3"
)

// SourceLimit configures the per-source query limit (limits.source): the
// UDP queries a second one source prefix may send, counted before they are
// parsed or answered, in a fixed table that a spoofed flood cannot grow.
// Off unless Rate is set; zero prefixes and buckets take the limiter's
// defaults (/24, /56, 65,536).
type SourceLimit struct {
	Rate       int            // queries a second per prefix; 0 = off; at most MaxSourceRate
	Burst      int            // queries at once; 0 = Rate; at most MaxSourceRate
	IPv4Prefix int            // 0..32 (0: /24)
	IPv6Prefix int            // 0..128 (0: /56)
	Buckets    int            // table size, rounded up to a power of two; 0..MaxSourceBuckets (0: 65,536)
	Exempt     []netip.Prefix // never limited (monitors, the lab's probes, known resolvers); at most MaxSourceExempt
}

// Bounds of SourceLimit (the limiter's own, ratelimit.SourceConfig).
const (
	MaxSourceRate    = 1 << 24
	MaxSourceBuckets = 1 << 24
	MaxSourceExempt  = 1024
)

func (d *decoder) sourceLimit(n *yaml.Node, path string, s *SourceLimit) {
	d.mapping(n, path, []field{
		{"rate", func(n *yaml.Node, p string) { d.intValue(n, p, &s.Rate) }},
		{"burst", func(n *yaml.Node, p string) { d.intValue(n, p, &s.Burst) }},
		{"ipv4_prefix", func(n *yaml.Node, p string) { d.intValue(n, p, &s.IPv4Prefix) }},
		{"ipv6_prefix", func(n *yaml.Node, p string) { d.intValue(n, p, &s.IPv6Prefix) }},
		{"buckets", func(n *yaml.Node, p string) { d.intValue(n, p, &s.Buckets) }},
		{"exempt", func(n *yaml.Node, p string) {
			items := d.sequence(n, p)
			s.Exempt = make([]netip.Prefix, len(items))
			for i, item := range items {
				s.Exempt[i], _ = parseScalar(d, item, indexPath(p, i), parsePrefixOrAddr)
			}
		}},
	})
}

func (s SourceLimit) validate(v *validator) {
	for _, f := range []struct {
		field   string
		v, max  int
		zeroMsg string
	}{
		{"rate", s.Rate, MaxSourceRate, " (off)"}, {"burst", s.Burst, MaxSourceRate, " (= rate)"},
		{"ipv4_prefix", s.IPv4Prefix, 32, ""}, {"ipv6_prefix", s.IPv6Prefix, 128, ""},
		{"buckets", s.Buckets, MaxSourceBuckets, " (default)"},
	} {
		if f.v < 0 || f.v > f.max {
			v.add("limits.source."+f.field, "must be 0%s to %d, got %d", f.zeroMsg, f.max, f.v)
		}
	}
	if len(s.Exempt) > MaxSourceExempt {
		v.add("limits.source.exempt", "at most %d prefixes, got %d", MaxSourceExempt, len(s.Exempt))
	}
	if s.Rate == 0 && (s.Burst != 0 || len(s.Exempt) > 0) {
		v.add("limits.source.rate", "must be set for burst or exempt to mean anything (0 = off)")
	}
	if s.Burst != 0 && s.Burst < s.Rate {
		v.add("limits.source.burst", "must be 0 (= rate) or at least rate %d, got %d", s.Rate, s.Burst)
	}
}
