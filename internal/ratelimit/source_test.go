package ratelimit

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func sourceClocked(t *testing.T, cfg SourceConfig) (*SourceLimiter, *time.Duration) {
	t.Helper()
	l, err := NewSourceLimiter(cfg)
	if err != nil {
		t.Fatal(err)
	}
	now := new(time.Duration)
	l.now = func() time.Duration { return *now }
	return l, now
}

func sourceVerdicts(l *SourceLimiter, src string, n int) string {
	var b strings.Builder
	a := netip.MustParseAddr(src)
	for range n {
		b.WriteByte(".EL"[l.Check(a)])
	}
	return b.String()
}

func TestSourceLimit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   SourceConfig
		steps []struct {
			at   time.Duration
			src  string
			want string // . allowed, E exempt, L limited
		}
	}{
		{"rate is the burst", SourceConfig{Rate: 3}, steps(0, "192.0.2.1", "...LL")},
		{"burst above rate", SourceConfig{Rate: 1, Burst: 4}, steps(0, "192.0.2.1", "....L")},
		{"one /24 shares", SourceConfig{Rate: 2},
			append(steps(0, "192.0.2.1", ".."), steps(0, "192.0.2.200", "L")...)},
		{"another /24 has its own", SourceConfig{Rate: 2},
			append(steps(0, "192.0.2.1", "..L"), steps(0, "198.51.100.1", "..L")...)},
		{"/32 prefixes", SourceConfig{Rate: 1, IPv4Prefix: 32},
			append(steps(0, "192.0.2.1", ".L"), steps(0, "192.0.2.2", ".L")...)},
		{"one /56 shares", SourceConfig{Rate: 2},
			append(steps(0, "2001:db8:0:1::1", ".."), steps(0, "2001:db8:0:ff::2", "L")...)},
		{"another /56", SourceConfig{Rate: 1},
			append(steps(0, "2001:db8:0:100::1", ".L"), steps(0, "2001:db8:0:200::1", ".L")...)},
		{"mapped v4 is v4", SourceConfig{Rate: 1},
			append(steps(0, "192.0.2.1", "."), steps(0, "::ffff:192.0.2.9", "L")...)},
		{"refill by the millisecond", SourceConfig{Rate: 10},
			append(append(steps(0, "192.0.2.1", "..........L"), steps(99*time.Millisecond, "192.0.2.1", "L")...),
				steps(100*time.Millisecond, "192.0.2.1", ".L")...)},
		{"refill stops at the burst", SourceConfig{Rate: 2},
			append(steps(0, "192.0.2.1", "..L"), steps(time.Hour, "192.0.2.1", "..L")...)},
		{"exempt v4", SourceConfig{Rate: 1, Exempt: []netip.Prefix{netip.MustParsePrefix("192.0.2.128/25")}},
			append(steps(0, "192.0.2.200", "EEEE"), steps(0, "192.0.2.1", ".L")...)},
		{"exempt v6", SourceConfig{Rate: 1, Exempt: []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}},
			append(steps(0, "2001:db8::1", "EEE"), steps(0, "2001:db9::1", ".L")...)},
		{"exempt unmasked", SourceConfig{Rate: 1, Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
			steps(0, "127.9.9.9", "EE")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, now := sourceClocked(t, tc.cfg)
			for i, s := range tc.steps {
				*now = s.at
				if got := sourceVerdicts(l, s.src, len(s.want)); got != s.want {
					t.Errorf("step %d (%s at %s): %s, want %s", i, s.src, s.at, got, s.want)
				}
			}
		})
	}
}

func steps(at time.Duration, src, want string) []struct {
	at   time.Duration
	src  string
	want string
} {
	return []struct {
		at   time.Duration
		src  string
		want string
	}{{at, src, want}}
}

// TestSourceTableBounded: a spoofed flood from a million prefixes leaves the
// table at its size, and a prefix over its limit stays limited unless a
// spoofed one takes its bucket (then it starts afresh, never above burst).
func TestSourceTableBounded(t *testing.T) {
	l, _ := sourceClocked(t, SourceConfig{Rate: 1, Buckets: 1000})
	if l.Len() != 1024 {
		t.Fatalf("table of %d buckets, want 1024", l.Len())
	}
	for i := range 1 << 20 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.Check(a)
	}
	if l.Len() != 1024 || cap(l.slots) != 1024 {
		t.Errorf("table grew to %d (cap %d)", l.Len(), cap(l.slots))
	}
}

func TestSourceOff(t *testing.T) {
	l, err := NewSourceLimiter(SourceConfig{})
	if err != nil || l != nil {
		t.Fatalf("rate 0: %v, %v; want nil, nil", l, err)
	}
	if v := l.Check(netip.MustParseAddr("192.0.2.1")); v != SourceAllow {
		t.Errorf("nil limiter: %d", v)
	}
}

func TestSourceValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  SourceConfig
		want string
	}{
		{SourceConfig{Rate: -1}, "rate:"},
		{SourceConfig{Rate: MaxSourceRate + 1}, "rate:"},
		{SourceConfig{Rate: 1, Burst: -1}, "burst:"},
		{SourceConfig{Rate: 1, IPv4Prefix: 33}, "ipv4_prefix:"},
		{SourceConfig{Rate: 1, IPv6Prefix: 129}, "ipv6_prefix:"},
		{SourceConfig{Rate: 1, Buckets: MaxSourceBuckets + 1}, "buckets:"},
		{SourceConfig{Rate: 1, Exempt: []netip.Prefix{{}}}, "exempt[0]"},
	} {
		_, err := NewSourceLimiter(tc.cfg)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %s...", tc.cfg, err, tc.want)
		}
	}
}

func TestSourceCheckDoesNotAllocate(t *testing.T) {
	l, _ := sourceClocked(t, SourceConfig{Rate: 1, Exempt: []netip.Prefix{netip.MustParsePrefix("2001:db8::/32")}})
	v4, v6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db9::1")
	if n := testing.AllocsPerRun(100, func() { l.Check(v4); l.Check(v6) }); n != 0 {
		t.Errorf("%v allocations per check", n)
	}
}

func BenchmarkSourceCheck(b *testing.B) {
	l, _ := NewSourceLimiter(SourceConfig{Rate: 1})
	a := netip.MustParseAddr("192.0.2.1")
	for b.Loop() {
		l.Check(a)
	}
}
