package benchkit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// A deliberately small DNS wire codec: the benchmarks only need to build
// plain queries and inspect the sections of an answer to check that each
// server answered what they expect. It does not depend on the project's DNS
// packages so that it measures them from the outside.

// DNS type codes used by the benchmark.
const (
	TypeA     uint16 = 1
	TypeNS    uint16 = 2
	TypeCNAME uint16 = 5
	TypeSOA   uint16 = 6
	TypeMX    uint16 = 15
	TypeTXT   uint16 = 16
	TypeAAAA  uint16 = 28
	TypeSRV   uint16 = 33
)

// DNS response codes.
const (
	RCodeNoError  = 0
	RCodeNXDomain = 3
)

var typeNames = map[uint16]string{
	TypeA: "A", TypeNS: "NS", TypeCNAME: "CNAME", TypeSOA: "SOA",
	TypeMX: "MX", TypeTXT: "TXT", TypeAAAA: "AAAA", TypeSRV: "SRV",
}

// TypeString returns the mnemonic of t, or TYPEnnn.
func TypeString(t uint16) string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return fmt.Sprintf("TYPE%d", t)
}

var (
	errShort   = errors.New("message truncated")
	errPointer = errors.New("bad compression pointer")
)

// PackName encodes a presentation-format name without escapes, keeping the
// letter case exactly as given (the benchmark sends mixed-case names).
func PackName(b []byte, name string) ([]byte, error) {
	name = strings.TrimSuffix(name, ".")
	if name != "" {
		for label := range strings.SplitSeq(name, ".") {
			if label == "" || len(label) > 63 {
				return nil, fmt.Errorf("pack name %q: bad label length %d", name, len(label))
			}
			b = append(b, byte(len(label)))
			b = append(b, label...)
		}
	}
	return append(b, 0), nil
}

// BuildQuery returns a query message without EDNS and with RD clear, like
// the queries dnsperf sends.
func BuildQuery(id uint16, name string, qtype uint16) ([]byte, error) {
	b := make([]byte, 12, 12+len(name)+6)
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[4:], 1) // QDCOUNT
	b, err := PackName(b, name)
	if err != nil {
		return nil, err
	}
	b = binary.BigEndian.AppendUint16(b, qtype)
	return binary.BigEndian.AppendUint16(b, 1), nil // class IN
}

// RR is one resource record of a parsed message.
type RR struct {
	Name  string // lower-cased, dot-terminated
	Type  uint16
	RData []byte
	// rdataOff is the offset of RData in the message, needed to decode
	// names inside RDATA that use compression.
	rdataOff int
}

// Message is a parsed response.
type Message struct {
	ID        uint16
	Response  bool
	AA        bool
	TC        bool
	RCode     int
	QNameWire []byte // question name exactly as on the wire (case kept)
	QType     uint16
	Answer    []RR
	Authority []RR
	Extra     []RR
	raw       []byte
}

// ParseMessage parses a response: header, question and the three sections.
func ParseMessage(b []byte) (*Message, error) {
	if len(b) < 12 {
		return nil, errShort
	}
	m := &Message{raw: b}
	m.ID = binary.BigEndian.Uint16(b[0:])
	flags := binary.BigEndian.Uint16(b[2:])
	m.Response = flags&0x8000 != 0
	m.AA = flags&0x0400 != 0
	m.TC = flags&0x0200 != 0
	m.RCode = int(flags & 0x000f)
	qd := int(binary.BigEndian.Uint16(b[4:]))
	counts := [3]int{
		int(binary.BigEndian.Uint16(b[6:])),
		int(binary.BigEndian.Uint16(b[8:])),
		int(binary.BigEndian.Uint16(b[10:])),
	}
	off := 12
	if qd > 1 {
		return nil, fmt.Errorf("qdcount %d", qd)
	}
	if qd == 1 {
		start := off
		_, next, err := readName(b, off)
		if err != nil {
			return nil, fmt.Errorf("question: %w", err)
		}
		m.QNameWire = b[start:next]
		if next+4 > len(b) {
			return nil, errShort
		}
		m.QType = binary.BigEndian.Uint16(b[next:])
		off = next + 4
	}
	sections := [3]*[]RR{&m.Answer, &m.Authority, &m.Extra}
	for i, n := range counts {
		for range n {
			name, next, err := readName(b, off)
			if err != nil {
				return nil, fmt.Errorf("section %d: %w", i, err)
			}
			if next+10 > len(b) {
				return nil, errShort
			}
			t := binary.BigEndian.Uint16(b[next:])
			rdlen := int(binary.BigEndian.Uint16(b[next+8:]))
			rdOff := next + 10
			if rdOff+rdlen > len(b) {
				return nil, errShort
			}
			*sections[i] = append(*sections[i], RR{Name: name, Type: t, RData: b[rdOff : rdOff+rdlen], rdataOff: rdOff})
			off = rdOff + rdlen
		}
	}
	return m, nil
}

// readName decodes the (possibly compressed) name at off. It returns the
// lower-cased, dot-terminated name and the offset just after the name's
// encoding at off.
func readName(b []byte, off int) (string, int, error) {
	var sb strings.Builder
	end := -1
	hops := 0
	for {
		if off >= len(b) {
			return "", 0, errShort
		}
		l := int(b[off])
		switch {
		case l == 0:
			if end < 0 {
				end = off + 1
			}
			if sb.Len() == 0 {
				return ".", end, nil
			}
			return strings.ToLower(sb.String()), end, nil
		case l&0xc0 == 0xc0:
			if off+1 >= len(b) {
				return "", 0, errShort
			}
			if end < 0 {
				end = off + 2
			}
			hops++
			if hops > 64 {
				return "", 0, errPointer
			}
			ptr := int(binary.BigEndian.Uint16(b[off:]) & 0x3fff)
			if ptr >= off {
				return "", 0, errPointer
			}
			off = ptr
		case l&0xc0 != 0:
			return "", 0, fmt.Errorf("label type %#x", l&0xc0)
		default:
			if off+1+l > len(b) {
				return "", 0, errShort
			}
			sb.Write(b[off+1 : off+1+l])
			sb.WriteByte('.')
			off += 1 + l
		}
	}
}

// RDataName decodes a domain name that starts at byte skip of r's RDATA
// (NS and CNAME: 0, MX: 2).
func (m *Message) RDataName(r RR, skip int) (string, error) {
	if skip > len(r.RData) {
		return "", errShort
	}
	name, _, err := readName(m.raw, r.rdataOff+skip)
	return name, err
}

// CountType counts the records of type t in rrs.
func CountType(rrs []RR, t uint16) int {
	n := 0
	for _, r := range rrs {
		if r.Type == t {
			n++
		}
	}
	return n
}
