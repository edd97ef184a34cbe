package benchkit

import "encoding/binary"

// MsgBuilder assembles DNS messages for tests, without compression unless
// a raw name is given.
type MsgBuilder struct {
	b      []byte
	counts [4]uint16
}

// NewMsg starts a message with the given ID and flags (the second 16 bits
// of the header: QR, opcode, AA, TC, RD, RA, rcode).
func NewMsg(id, flags uint16) *MsgBuilder {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[2:], flags)
	return &MsgBuilder{b: b}
}

// Question appends a question (class IN).
func (m *MsgBuilder) Question(name string, t uint16) *MsgBuilder {
	m.b, _ = PackName(m.b, name)
	m.b = binary.BigEndian.AppendUint16(m.b, t)
	m.b = binary.BigEndian.AppendUint16(m.b, 1)
	m.counts[0]++
	return m
}

// RR appends a record (class IN, TTL 3600) to section (1 answer, 2
// authority, 3 additional).
// A nil wireName packs name.
func (m *MsgBuilder) RR(section int, name string, wireName []byte, t uint16, rdata []byte) *MsgBuilder {
	if wireName == nil {
		m.b, _ = PackName(m.b, name)
	} else {
		m.b = append(m.b, wireName...)
	}
	m.b = binary.BigEndian.AppendUint16(m.b, t)
	m.b = binary.BigEndian.AppendUint16(m.b, 1)
	m.b = binary.BigEndian.AppendUint32(m.b, 3600)
	m.b = binary.BigEndian.AppendUint16(m.b, uint16(len(rdata)))
	m.b = append(m.b, rdata...)
	m.counts[section]++
	return m
}

// Bytes returns the message with the section counts filled in.
func (m *MsgBuilder) Bytes() []byte {
	for i, c := range m.counts {
		binary.BigEndian.PutUint16(m.b[4+2*i:], c)
	}
	return m.b
}

// WireName returns the uncompressed wire form of a name.
func WireName(s string) []byte {
	b, _ := PackName(nil, s)
	return b
}
