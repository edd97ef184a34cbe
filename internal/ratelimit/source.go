package ratelimit

import (
	"fmt"
	"hash/maphash"
	"net/netip"
	"sync"
	"time"
)

// SourceConfig sets the per-source query limit: queries a second from one
// source prefix, whatever they ask, counted before a query is answered. A
// zero Rate turns it off.
type SourceConfig struct {
	// Rate is the number of queries a second one prefix may send; Burst
	// (default Rate) is how many it may send at once.
	Rate  int
	Burst int
	// IPv4Prefix and IPv6Prefix are the prefix sizes that share a budget
	// (default 24 and 56).
	IPv4Prefix int
	IPv6Prefix int
	// Buckets is the table size, rounded up to a power of two (default
	// 65536); the table never grows.
	Buckets int
	// Exempt are prefixes never limited (monitors, known resolvers).
	Exempt []netip.Prefix
}

// Bounds of SourceConfig.
const (
	MaxSourceRate    = 1 << 24
	MaxSourceBuckets = 1 << 24
	MaxSourceExempt  = 1024
)

// Validate reports the first field out of range, by its name.
func (c SourceConfig) Validate() error {
	switch {
	case c.Rate < 0 || c.Rate > MaxSourceRate:
		return fmt.Errorf("rate: must be 0 (off) to %d, got %d", MaxSourceRate, c.Rate)
	case c.Burst < 0 || c.Burst > MaxSourceRate:
		return fmt.Errorf("burst: must be 0 (= rate) to %d, got %d", MaxSourceRate, c.Burst)
	case c.IPv4Prefix < 0 || c.IPv4Prefix > 32:
		return fmt.Errorf("ipv4_prefix: must be 0 to 32, got %d", c.IPv4Prefix)
	case c.IPv6Prefix < 0 || c.IPv6Prefix > 128:
		return fmt.Errorf("ipv6_prefix: must be 0 to 128, got %d", c.IPv6Prefix)
	case c.Buckets < 0 || c.Buckets > MaxSourceBuckets:
		return fmt.Errorf("buckets: must be 0 (default) to %d, got %d", MaxSourceBuckets, c.Buckets)
	case len(c.Exempt) > MaxSourceExempt:
		return fmt.Errorf("exempt: at most %d prefixes, got %d", MaxSourceExempt, len(c.Exempt))
	}
	for i, p := range c.Exempt {
		if !p.IsValid() {
			return fmt.Errorf("exempt[%d]: not a valid prefix", i)
		}
	}
	return nil
}

// SourceLimiter limits the queries of each source prefix with a token
// bucket in a fixed table indexed by a seeded hash of the prefix: a flood
// from spoofed random sources only overwrites buckets, it never makes the
// table grow. A prefix whose bucket another one took starts afresh. It is
// safe for concurrent use; a nil SourceLimiter allows everything.
type SourceLimiter struct {
	rate, burst int64 // tokens are in 1/1000 of a query
	v4, v6      int
	mask        uint64
	seed        maphash.Seed
	exempt4     []netip.Prefix
	exempt6     []netip.Prefix
	start       time.Time
	now         func() time.Duration // since start; replaced in tests
	slots       []sourceSlot
	locks       [64]sync.Mutex // slot i is guarded by locks[i%64]
}

type sourceSlot struct {
	key    uint64
	last   int64 // when tokens were last filled, in ms since start
	tokens int64 // in 1/1000 of a query
}

// SourceVerdict is what the limiter says of one query.
type SourceVerdict uint8

// The verdicts.
const (
	SourceAllow   SourceVerdict = iota // within the limit
	SourceExempt                       // from an exempt prefix
	SourceLimited                      // over the limit: drop it
)

// NewSourceLimiter returns a limiter, or nil (no limiting) when cfg.Rate
// is 0.
func NewSourceLimiter(cfg SourceConfig) (*SourceLimiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Rate == 0 {
		return nil, nil
	}
	if cfg.Burst == 0 {
		cfg.Burst = cfg.Rate
	}
	if cfg.IPv4Prefix == 0 {
		cfg.IPv4Prefix = DefaultIPv4Prefix
	}
	if cfg.IPv6Prefix == 0 {
		cfg.IPv6Prefix = DefaultIPv6Prefix
	}
	n := tableSize(cfg.Buckets)
	l := &SourceLimiter{
		rate: int64(cfg.Rate), burst: int64(cfg.Burst) * 1000, v4: cfg.IPv4Prefix, v6: cfg.IPv6Prefix,
		mask: uint64(n - 1), seed: maphash.MakeSeed(), start: time.Now(), slots: make([]sourceSlot, n),
	}
	for _, p := range cfg.Exempt {
		p = p.Masked()
		if p.Addr().Is4() {
			l.exempt4 = append(l.exempt4, p)
		} else {
			l.exempt6 = append(l.exempt6, p)
		}
	}
	l.now = func() time.Duration { return time.Since(l.start) }
	return l, nil
}

// Len is the number of buckets: the table's fixed size.
func (l *SourceLimiter) Len() int {
	if l == nil {
		return 0
	}
	return len(l.slots)
}

// Check counts one query from src and says whether to answer it.
func (l *SourceLimiter) Check(src netip.Addr) SourceVerdict {
	if l == nil {
		return SourceAllow
	}
	src = src.Unmap()
	exempt := l.exempt6
	if src.Is4() {
		exempt = l.exempt4
	}
	for _, p := range exempt {
		if p.Contains(src) {
			return SourceExempt
		}
	}
	var buf [16]byte
	key := maphash.Bytes(l.seed, appendPrefix(buf[:0], src, l.v4, l.v6)) | 1 // never 0: 0 marks an empty slot
	i := key & l.mask
	now := int64(l.now() / time.Millisecond)

	mu := &l.locks[i%uint64(len(l.locks))]
	mu.Lock()
	defer mu.Unlock()
	s := &l.slots[i]
	if s.key != key {
		*s = sourceSlot{key: key, last: now, tokens: l.burst - 1000}
		return SourceAllow
	}
	if elapsed := now - s.last; elapsed > 0 {
		// rate queries a second = rate tokens of 1/1000 a millisecond.
		s.tokens = min(l.burst, s.tokens+elapsed*l.rate)
		s.last = now
	}
	if s.tokens >= 1000 {
		s.tokens -= 1000
		return SourceAllow
	}
	return SourceLimited
}
