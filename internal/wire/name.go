// Package wire holds the DNS wire-format primitives of the query path: names in
// uncompressed wire form, a case-insensitive comparison, and a response Builder
// that compresses names against everything already written (including the
// question, so that answer owners take the query's letter case as Knot and NSD
// do) and that knows how to truncate.
//
// It is deliberately small and allocation-free: the per-query path writes into
// a caller-owned buffer and never builds dns.Msg values.
package wire

import (
	"errors"
)

// MaxName is the longest domain name in wire form (RFC 1035 §2.3.4).
const MaxName = 255

// Errors returned by the name parsers.
var (
	ErrName      = errors.New("malformed domain name")
	ErrTruncated = errors.New("message truncated")
)

// ToLower maps ASCII upper case to lower case, leaving every other byte alone
// (RFC 4343: only ASCII letters are case-insensitive).
func ToLower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// LowerName writes the lower-cased copy of the uncompressed wire name src into
// dst and returns it. dst must have room for len(src) bytes.
func LowerName(dst, src []byte) []byte {
	dst = dst[:len(src)]
	for i, c := range src {
		dst[i] = ToLower(c)
	}
	return dst
}

// EqualFold reports whether two uncompressed wire names are equal ignoring
// ASCII case. Length bytes never fall in 'A'..'Z' confusion because labels are
// compared position by position with the same layout.
func EqualFold(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if ToLower(a[i]) != ToLower(b[i]) {
			return false
		}
	}
	return true
}

// ReadName parses an uncompressed or compressed name at off in msg, appending
// its uncompressed wire form to dst. It returns the extended dst and the offset
// just past the name in msg.
func ReadName(dst, msg []byte, off int) ([]byte, int, error) {
	end := -1
	hops := 0
	start := len(dst)
	for {
		if off >= len(msg) {
			return dst, 0, ErrTruncated
		}
		c := int(msg[off])
		switch c & 0xC0 {
		case 0x00:
			if c == 0 {
				dst = append(dst, 0)
				if len(dst)-start > MaxName {
					return dst, 0, ErrName
				}
				if end < 0 {
					end = off + 1
				}
				return dst, end, nil
			}
			if off+1+c > len(msg) {
				return dst, 0, ErrTruncated
			}
			dst = append(dst, msg[off:off+1+c]...)
			if len(dst)-start > MaxName {
				return dst, 0, ErrName
			}
			off += 1 + c
		case 0xC0:
			if off+1 >= len(msg) {
				return dst, 0, ErrTruncated
			}
			if end < 0 {
				end = off + 2
			}
			hops++
			if hops > 64 {
				return dst, 0, ErrName
			}
			ptr := (c&0x3F)<<8 | int(msg[off+1])
			if ptr >= off {
				// Only backward pointers are valid; this also rules out loops.
				return dst, 0, ErrName
			}
			off = ptr
		default:
			return dst, 0, ErrName // 0x40 and 0x80 label types are obsolete
		}
	}
}

// Labels returns the number of labels in an uncompressed wire name, not
// counting the root.
func Labels(name []byte) int {
	n := 0
	for i := 0; i < len(name) && name[i] != 0; i += int(name[i]) + 1 {
		n++
	}
	return n
}

// Parent returns the name with its first label removed; the root's parent is
// the root.
func Parent(name []byte) []byte {
	if len(name) == 0 || name[0] == 0 {
		return name
	}
	return name[int(name[0])+1:]
}

// IsSubdomain reports whether child equals parent or lies below it. Both
// must be lower-cased uncompressed wire names.
func IsSubdomain(child, parent []byte) bool {
	if len(child) < len(parent) {
		return false
	}
	off := 0
	for len(child)-off > len(parent) {
		off += int(child[off]) + 1
	}
	return len(child)-off == len(parent) && string(child[off:]) == string(parent)
}

// NameLen returns the length of the uncompressed wire name at the start of
// p, or -1 when p does not start with one (a compression pointer, a
// reserved label type, or no root label within p).
func NameLen(p []byte) int {
	for i := 0; i < len(p); {
		c := int(p[i])
		if c == 0 {
			return i + 1
		}
		if c&0xC0 != 0 {
			return -1
		}
		i += c + 1
	}
	return -1
}

// SkipName returns the length in the message of the name at the start of
// p, which may end with a compression pointer, or -1 when it is malformed
// or cut short. It does not follow the pointer.
func SkipName(p []byte) int {
	for i := 0; i < len(p); {
		c := int(p[i])
		switch {
		case c == 0:
			return i + 1
		case c&0xC0 == 0xC0:
			if i+1 >= len(p) {
				return -1
			}
			return i + 2
		case c&0xC0 != 0:
			return -1
		}
		i += c + 1
	}
	return -1
}
