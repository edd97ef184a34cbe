package wire

import "encoding/binary"

// Sections of a message, as indexes into the header counts.
const (
	Question = iota
	Answer
	Authority
	Additional
)

// HeaderLen is the size of the fixed DNS header.
const HeaderLen = 12

// maxTargets bounds the compression dictionary; beyond it names are simply
// written uncompressed, which is always correct.
const maxTargets = 96

type target struct {
	off uint16 // offset of a label start in the message
	n   uint16 // uncompressed length of the name from that label to the root
}

// Builder writes a DNS message into a caller-owned buffer. The zero value is
// not usable; call Reset. It never allocates once its buffer is large enough.
type Builder struct {
	buf     []byte
	limit   int
	reserve int
	targets [maxTargets]target
	ntarget int
	counts  [4]uint16
}

// Mark is a point to roll a Builder back to.
type Mark struct {
	n       int
	ntarget int
	counts  [4]uint16
}

// Reset starts a new message in buf (its capacity is reused) that may grow to
// limit bytes.
func (b *Builder) Reset(buf []byte, limit int) {
	if limit > 65535 {
		limit = 65535
	}
	if cap(buf) < limit {
		buf = make([]byte, 0, limit)
	}
	b.buf = buf[:0]
	b.limit = limit
	b.reserve = 0
	b.ntarget = 0
	b.counts = [4]uint16{}
}

// Reserve keeps n bytes free at the end (for the OPT record).
func (b *Builder) Reserve(n int) { b.reserve = n }

// Limit returns the size the message may grow to.
func (b *Builder) Limit() int { return b.limit }

// Len is the number of bytes written so far.
func (b *Builder) Len() int { return len(b.buf) }

// Count returns the number of records written to a section.
func (b *Builder) Count(section int) int { return int(b.counts[section]) }

// Bytes returns the message with the section counts filled in.
func (b *Builder) Bytes() []byte {
	if len(b.buf) >= HeaderLen {
		for i, c := range b.counts {
			binary.BigEndian.PutUint16(b.buf[4+2*i:], c)
		}
	}
	return b.buf
}

// Header writes the fixed header with zero counts.
func (b *Builder) Header(id, flags uint16) {
	b.buf = b.buf[:HeaderLen]
	binary.BigEndian.PutUint16(b.buf[0:], id)
	binary.BigEndian.PutUint16(b.buf[2:], flags)
	clear(b.buf[4:HeaderLen])
}

// SetFlags rewrites the flags word of the header.
func (b *Builder) SetFlags(flags uint16) { binary.BigEndian.PutUint16(b.buf[2:], flags) }

// Flags returns the flags word of the header.
func (b *Builder) Flags() uint16 { return binary.BigEndian.Uint16(b.buf[2:]) }

// Save returns a mark to roll back to.
func (b *Builder) Save() Mark { return Mark{n: len(b.buf), ntarget: b.ntarget, counts: b.counts} }

// Restore rolls the message back to m.
func (b *Builder) Restore(m Mark) {
	b.buf = b.buf[:m.n]
	b.ntarget = m.ntarget
	b.counts = m.counts
}

// Question writes the question; name is copied as given (the query's case).
// The question is always allowed to use the whole limit.
func (b *Builder) Question(name []byte, qtype, qclass uint16) bool {
	if len(b.buf)+len(name)+4 > b.limit {
		return false
	}
	b.writeName(name)
	b.buf = binary.BigEndian.AppendUint16(b.buf, qtype)
	b.buf = binary.BigEndian.AppendUint16(b.buf, qclass)
	b.counts[Question]++
	return true
}

// RR appends one record to section. owner is an uncompressed wire name and
// rdata the record's uncompressed rdata; names inside the rdata of the RFC 1035
// types are compressed. If the record does not fit, nothing is written and RR
// returns false.
func (b *Builder) RR(section int, owner []byte, rtype, class uint16, ttl uint32, rdata []byte) bool {
	m := b.Save()
	max := b.limit - b.reserve
	// Worst case without compression; only check precisely when close.
	if len(b.buf)+len(owner)+10+len(rdata) > max {
		if !b.rrSlow(owner, rtype, class, ttl, rdata, max) {
			b.Restore(m)
			return false
		}
		b.counts[section]++
		return true
	}
	b.writeName(owner)
	b.buf = binary.BigEndian.AppendUint16(b.buf, rtype)
	b.buf = binary.BigEndian.AppendUint16(b.buf, class)
	b.buf = binary.BigEndian.AppendUint32(b.buf, ttl)
	lenAt := len(b.buf)
	b.buf = append(b.buf, 0, 0)
	b.writeRdata(rtype, rdata)
	binary.BigEndian.PutUint16(b.buf[lenAt:], uint16(len(b.buf)-lenAt-2))
	b.counts[section]++
	return true
}

// rrSlow writes into a scratch-free path and checks the limit at the end; the
// caller restores on failure. Compression can only shrink the record, so the
// result is exact.
func (b *Builder) rrSlow(owner []byte, rtype, class uint16, ttl uint32, rdata []byte, max int) bool {
	b.writeName(owner)
	b.buf = binary.BigEndian.AppendUint16(b.buf, rtype)
	b.buf = binary.BigEndian.AppendUint16(b.buf, class)
	b.buf = binary.BigEndian.AppendUint32(b.buf, ttl)
	lenAt := len(b.buf)
	b.buf = append(b.buf, 0, 0)
	b.writeRdata(rtype, rdata)
	if len(b.buf) > max {
		return false
	}
	binary.BigEndian.PutUint16(b.buf[lenAt:], uint16(len(b.buf)-lenAt-2))
	return true
}

// AppendRaw appends bytes that are already in wire form (for example an OPT
// record) to section, counting them as n records. It ignores the reserve,
// which exists precisely for such trailers.
func (b *Builder) AppendRaw(section int, n int, p []byte) bool {
	if len(b.buf)+len(p) > b.limit {
		return false
	}
	b.buf = append(b.buf, p...)
	b.counts[section] += uint16(n)
	return true
}

// compressible reports the rdata layout of the RFC 1035 types whose embedded
// names may be compressed (RFC 3597 §4): the number of leading fixed bytes and
// the number of names.
func compressible(rtype uint16) (prefix, names int, ok bool) {
	switch rtype {
	case 2, 3, 4, 5, 7, 8, 9, 12: // NS MD MF CNAME MB MG MR PTR
		return 0, 1, true
	case 6, 14: // SOA, MINFO
		return 0, 2, true
	case 15: // MX
		return 2, 1, true
	}
	return 0, 0, false
}

func (b *Builder) writeRdata(rtype uint16, rdata []byte) {
	prefix, names, ok := compressible(rtype)
	if !ok || len(rdata) < prefix {
		b.buf = append(b.buf, rdata...)
		return
	}
	b.buf = append(b.buf, rdata[:prefix]...)
	off := prefix
	for range names {
		n := NameLen(rdata[off:])
		if n < 0 {
			b.buf = append(b.buf, rdata[off:]...)
			return
		}
		b.writeName(rdata[off : off+n])
		off += n
	}
	b.buf = append(b.buf, rdata[off:]...)
}

// writeName writes an uncompressed wire name, using a pointer to the longest
// suffix already in the message (compared without regard to case).
func (b *Builder) writeName(name []byte) {
	for i := 0; i < len(name) && name[i] != 0; i += int(name[i]) + 1 {
		if ptr, ok := b.find(name[i:]); ok {
			b.addTargets(name[:i], len(name))
			b.buf = append(b.buf, name[:i]...)
			b.buf = append(b.buf, byte(0xC0|ptr>>8), byte(ptr))
			return
		}
	}
	b.addTargets(name[:len(name)-1], len(name))
	b.buf = append(b.buf, name...)
}

// addTargets registers the label starts of prefix (about to be written at the
// current end of the buffer) whose full name is total bytes long.
func (b *Builder) addTargets(prefix []byte, total int) {
	base := len(b.buf)
	for i := 0; i < len(prefix); i += int(prefix[i]) + 1 {
		if b.ntarget == maxTargets || base+i > 0x3FFF {
			return
		}
		b.targets[b.ntarget] = target{off: uint16(base + i), n: uint16(total - i)}
		b.ntarget++
	}
}

func (b *Builder) find(suffix []byte) (int, bool) {
	for _, t := range b.targets[:b.ntarget] {
		if int(t.n) == len(suffix) && b.equalAt(int(t.off), suffix) {
			return int(t.off), true
		}
	}
	return 0, false
}

// equalAt compares the (possibly compressed) name at off in the message with
// an uncompressed name, ignoring case.
func (b *Builder) equalAt(off int, name []byte) bool {
	i := 0
	for hops := 0; hops < 64; {
		c := int(b.buf[off])
		if c&0xC0 == 0xC0 {
			off = (c&0x3F)<<8 | int(b.buf[off+1])
			hops++
			continue
		}
		if i >= len(name) || int(name[i]) != c {
			return false
		}
		if c == 0 {
			return true
		}
		for k := 1; k <= c; k++ {
			if ToLower(b.buf[off+k]) != ToLower(name[i+k]) {
				return false
			}
		}
		off += c + 1
		i += c + 1
	}
	return false
}
