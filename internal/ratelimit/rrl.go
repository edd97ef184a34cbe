// Package ratelimit protects the node from floods. RRL is response rate
// limiting for UDP answers (as in BIND, Knot DNS and NSD): a client network that draws more than Rate answers a second
// of one kind gets the rest dropped, or every Slip-th of them truncated so
// that a real resolver behind a spoofed flood can still ask again over TCP.
//
// An answer's kind is its class and a name: the query name for answers and
// NODATA, the zone for NXDOMAIN and referrals (so that random names under
// one zone share a bucket), none for errors. Buckets live in a fixed-size
// table, so memory is bounded whatever the traffic: a bucket that another
// key hashes onto starts that key afresh.
package ratelimit

import (
	"fmt"
	"hash/maphash"
	"math/bits"
	"net/netip"
	"sync"
	"time"
)

// RRLConfig sets the limits; a zero Rate turns limiting off.
type RRLConfig struct {
	// Rate is the number of answers a second each bucket passes; it is
	// also the burst.
	Rate int
	// Slip: of the answers over the limit, every Slip-th is sent truncated
	// (TC=1, no records) and the others are dropped; 0 drops them all, 1
	// truncates them all.
	Slip int
	// IPv4Prefix and IPv6Prefix are the client network sizes that share
	// buckets (default 24 and 56).
	IPv4Prefix int
	IPv6Prefix int
	// Buckets is the table size, rounded up to a power of two (default
	// 65536, 1.5 MiB).
	Buckets int
}

// Defaults of the zero fields, and the bounds Validate checks.
const (
	DefaultSlip       = 2
	DefaultIPv4Prefix = 24
	DefaultIPv6Prefix = 56
	DefaultBuckets    = 1 << 16
	MaxBuckets        = 1 << 24
	MaxRate           = 1 << 20
	MaxSlip           = 100
)

// Validate reports the first field out of range, by its name.
func (c RRLConfig) Validate() error {
	switch {
	case c.Rate < 0 || c.Rate > MaxRate:
		return fmt.Errorf("rate: must be 0 (off) to %d, got %d", MaxRate, c.Rate)
	case c.Slip < 0 || c.Slip > MaxSlip:
		return fmt.Errorf("slip: must be 0 to %d, got %d", MaxSlip, c.Slip)
	case c.IPv4Prefix < 0 || c.IPv4Prefix > 32:
		return fmt.Errorf("ipv4_prefix: must be 0 to 32, got %d", c.IPv4Prefix)
	case c.IPv6Prefix < 0 || c.IPv6Prefix > 128:
		return fmt.Errorf("ipv6_prefix: must be 0 to 128, got %d", c.IPv6Prefix)
	case c.Buckets < 0 || c.Buckets > MaxBuckets:
		return fmt.Errorf("buckets: must be 0 (default) to %d, got %d", MaxBuckets, c.Buckets)
	}
	return nil
}

// Class is the kind of an answer.
type Class uint8

// The classes; each has buckets of its own.
const (
	Positive Class = iota + 1 // records in the answer section
	NoData                    // NOERROR, authoritative, no answer
	NXDomain                  // name error
	Referral                  // NOERROR, not authoritative
	Error                     // any other rcode
)

// Verdict says what to do with an answer.
type Verdict uint8

// The verdicts.
const (
	Pass Verdict = iota
	Drop
	Slip
)

// RRL is safe for concurrent use.
type RRL struct {
	rate  int32
	slip  uint32
	v4    int
	v6    int
	mask  uint64
	seed  maphash.Seed
	start time.Time
	now   func() time.Duration // since start; replaced in tests
	slots []slot
	locks [64]sync.Mutex // slot i is guarded by locks[i%64]
}

type slot struct {
	key     uint64
	second  int64 // when tokens were last filled, in seconds since start
	tokens  int32
	limited uint32 // answers over the limit since the bucket was set up
}

// NewRRL returns a limiter, or nil (no limiting) when cfg.Rate is 0.
func NewRRL(cfg RRLConfig) (*RRL, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Rate == 0 {
		return nil, nil
	}
	if cfg.IPv4Prefix == 0 {
		cfg.IPv4Prefix = DefaultIPv4Prefix
	}
	if cfg.IPv6Prefix == 0 {
		cfg.IPv6Prefix = DefaultIPv6Prefix
	}
	n := tableSize(cfg.Buckets)
	l := &RRL{
		rate: int32(cfg.Rate), slip: uint32(cfg.Slip), v4: cfg.IPv4Prefix, v6: cfg.IPv6Prefix,
		mask: uint64(n - 1), seed: maphash.MakeSeed(), start: time.Now(), slots: make([]slot, n),
	}
	l.now = func() time.Duration { return time.Since(l.start) }
	return l, nil
}

// Check counts one answer of class c for name (lower-case wire form; nil
// for none) to src and says whether to send it. A nil RRL passes all.
func (l *RRL) Check(src netip.Addr, c Class, name []byte) Verdict {
	if l == nil {
		return Pass
	}
	var buf [16 + 1 + 256]byte
	k := buf[:0]
	k = appendPrefix(k, src.Unmap(), l.v4, l.v6)
	k = append(k, byte(c))
	if len(name) > 256 {
		name = name[:256]
	}
	k = append(k, name...)
	key := maphash.Bytes(l.seed, k) | 1 // never 0: 0 marks an empty slot
	i := key & l.mask
	now := int64(l.now() / time.Second)

	mu := &l.locks[i%uint64(len(l.locks))]
	mu.Lock()
	defer mu.Unlock()
	s := &l.slots[i]
	if s.key != key {
		*s = slot{key: key, second: now, tokens: l.rate - 1}
		return Pass
	}
	if elapsed := now - s.second; elapsed > 0 {
		s.tokens = int32(min(int64(l.rate), int64(s.tokens)+elapsed*int64(l.rate)))
		s.second = now
	}
	if s.tokens > 0 {
		s.tokens--
		return Pass
	}
	s.limited++
	if l.slip > 0 && s.limited%l.slip == 0 {
		return Slip
	}
	return Drop
}

// tableSize is the number of slots of a bucket table asked for n (0: the
// default), rounded up to a power of two so that a key's slot is a mask.
func tableSize(n int) int {
	if n == 0 {
		n = DefaultBuckets
	}
	return 1 << bits.Len(uint(n-1))
}

// appendPrefix appends the address of src's network — its first v4 (IPv4)
// or v6 (IPv6) bits — to dst: the client a bucket counts. src is unmapped.
func appendPrefix(dst []byte, src netip.Addr, v4, v6 int) []byte {
	if src.Is4() {
		p, _ := src.Prefix(v4)
		a := p.Addr().As4()
		return append(dst, a[:]...)
	}
	p, _ := src.Prefix(v6)
	a := p.Addr().As16()
	return append(dst, a[:]...)
}
