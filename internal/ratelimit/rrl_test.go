package ratelimit

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// clocked returns a limiter whose clock the test moves.
func clocked(t *testing.T, cfg RRLConfig) (*RRL, *time.Duration) {
	t.Helper()
	l, err := NewRRL(cfg)
	if err != nil {
		t.Fatal(err)
	}
	now := new(time.Duration)
	l.now = func() time.Duration { return *now }
	return l, now
}

var (
	www  = []byte("\x03www\x07example\x03com\x00")
	mail = []byte("\x04mail\x07example\x03com\x00")
)

func verdicts(l *RRL, src string, c Class, name []byte, n int) string {
	var b strings.Builder
	a := netip.MustParseAddr(src)
	for range n {
		b.WriteByte(".DS"[l.Check(a, c, name)])
	}
	return b.String()
}

func TestRateAndSlip(t *testing.T) {
	for _, tc := range []struct {
		rate, slip int
		want       string // . pass, D drop, S slip
	}{
		{3, 2, "...DSDSDS"},
		{3, 0, "...DDDDDD"},
		{3, 1, "...SSSSSS"},
		{1, 3, ".DDSDDS"},
	} {
		l, _ := clocked(t, RRLConfig{Rate: tc.rate, Slip: tc.slip})
		if got := verdicts(l, "192.0.2.1", Positive, www, len(tc.want)); got != tc.want {
			t.Errorf("rate %d slip %d: %s, want %s", tc.rate, tc.slip, got, tc.want)
		}
	}
}

func TestRefill(t *testing.T) {
	l, now := clocked(t, RRLConfig{Rate: 2})
	if got := verdicts(l, "192.0.2.1", Positive, www, 3); got != "..D" {
		t.Fatalf("first second: %s", got)
	}
	*now = 999 * time.Millisecond
	if got := verdicts(l, "192.0.2.1", Positive, www, 1); got != "D" {
		t.Errorf("same second: %s, want D", got)
	}
	*now = time.Second
	if got := verdicts(l, "192.0.2.1", Positive, www, 3); got != "..D" {
		t.Errorf("next second: %s, want two passed", got)
	}
	// Idle for long: the burst is the rate, not the time idle times rate.
	*now = time.Hour
	if got := verdicts(l, "192.0.2.1", Positive, www, 3); got != "..D" {
		t.Errorf("after an hour: %s, want two passed", got)
	}
}

// TestBuckets: what shares a bucket and what does not.
func TestBuckets(t *testing.T) {
	l, _ := clocked(t, RRLConfig{Rate: 1, Slip: 0, IPv4Prefix: 24, IPv6Prefix: 56})
	if got := verdicts(l, "192.0.2.1", Positive, www, 2); got != ".D" {
		t.Fatalf("%s", got)
	}
	for _, tc := range []struct {
		src  string
		c    Class
		name []byte
		want string
	}{
		{"192.0.2.200", Positive, www, "D"},      // the same /24
		{"::ffff:192.0.2.9", Positive, www, "D"}, // the same /24, v4-mapped
		{"192.0.3.1", Positive, www, "."},        // another /24
		{"192.0.2.1", Positive, mail, "."},       // another name
		{"192.0.2.1", NoData, www, "."},          // another class
		{"2001:db8:0:1::1", Error, nil, "."},     // v6
		{"2001:db8:0:1:ffff::2", Error, nil, "D"},
		{"2001:db8:0:ff::2", Error, nil, "D"},  // the same /56
		{"2001:db8:0:100::2", Error, nil, "."}, // another /56
	} {
		if got := verdicts(l, tc.src, tc.c, tc.name, 1); got != tc.want {
			t.Errorf("%s class %d %q: %s, want %s", tc.src, tc.c, tc.name, got, tc.want)
		}
	}
}

// TestBoundedTable: a table of 4 buckets serves any number of keys; a key
// whose bucket was taken starts afresh.
func TestBoundedTable(t *testing.T) {
	l, _ := clocked(t, RRLConfig{Rate: 1, Buckets: 3})
	if len(l.slots) != 4 {
		t.Fatalf("%d buckets, want 3 rounded up to 4", len(l.slots))
	}
	for i := range 1000 {
		a := netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})
		l.Check(a, Positive, www)
	}
	if len(l.slots) != 4 {
		t.Fatalf("table grew to %d", len(l.slots))
	}
}

func TestOffAndInvalid(t *testing.T) {
	l, err := NewRRL(RRLConfig{})
	if err != nil || l != nil {
		t.Fatalf("rate 0: %v, %v; want no limiter", l, err)
	}
	if v := l.Check(netip.MustParseAddr("192.0.2.1"), Positive, www); v != Pass {
		t.Errorf("nil limiter: %d, want pass", v)
	}
	for _, c := range []RRLConfig{
		{Rate: -1}, {Rate: 5, Slip: -1}, {Rate: 5, Slip: 101}, {Rate: 5, IPv4Prefix: 33},
		{Rate: 5, IPv6Prefix: 129}, {Rate: 5, Buckets: MaxBuckets + 1}, {Rate: MaxRate + 1},
	} {
		if _, err := NewRRL(c); err == nil {
			t.Errorf("NewRRL(%+v) accepted", c)
		}
	}
}

func BenchmarkCheck(b *testing.B) {
	l, err := NewRRL(RRLConfig{Rate: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	a := netip.MustParseAddr("192.0.2.1")
	b.ReportAllocs()
	for b.Loop() {
		l.Check(a, Positive, www)
	}
}
