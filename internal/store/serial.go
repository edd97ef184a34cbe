package store

import (
	"time"

	"github.com/anycastdns/anycastdns/internal/zone"
)

// nextSerial returns the serial that follows old under policy p: always
// newer than old in RFC 1982 arithmetic. Serial 0 is skipped when
// incrementing wraps around, since some secondaries treat it as unset.
func nextSerial(p SerialPolicy, old uint32, now time.Time) uint32 {
	if p == SerialDate {
		if d, ok := dateSerial(now); ok && zone.SerialLess(old, d) {
			return d
		}
	}
	n := old + 1
	if n == 0 {
		n = 1
	}
	return n
}

// dateSerial is YYYYMMDD00 of now in UTC; false from the year 4295 on, when it
// no longer fits in 32 bits.
func dateSerial(now time.Time) (uint32, bool) {
	y, m, d := now.UTC().Date()
	v := uint64(y)*1_000_000 + uint64(m)*10_000 + uint64(d)*100
	if y < 0 || v > 1<<32-1 {
		return 0, false
	}
	return uint32(v), true
}

// bumpSerial returns the serial of a new version of a zone at serial old.
// A serial the writer proposed (in the SOA it wrote) is kept when it is
// newer than the one the policy gives; anything else would go backwards or
// stand still, so the policy's serial is used.
func bumpSerial(p SerialPolicy, old uint32, proposed uint32, hasProposed bool, now time.Time) uint32 {
	n := nextSerial(p, old, now)
	if hasProposed && zone.SerialLess(old, proposed) && zone.SerialLess(n, proposed) {
		return proposed
	}
	return n
}

// createSerial returns the serial of a new zone whose SOA says given: under
// the date policy, at least today's YYYYMMDD00.
func createSerial(p SerialPolicy, given uint32, now time.Time) uint32 {
	if p == SerialDate {
		if d, ok := dateSerial(now); ok && zone.SerialLess(given, d) {
			return d
		}
	}
	return given
}
