package main

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// msgBuilder assembles DNS messages for tests, without compression unless
// a raw name is given.
type msgBuilder struct {
	b      []byte
	counts [4]uint16
}

func newMsg(id, flags uint16) *msgBuilder {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[2:], flags)
	return &msgBuilder{b: b}
}

func (m *msgBuilder) question(name string, t uint16) *msgBuilder {
	m.b, _ = packName(m.b, name)
	m.b = binary.BigEndian.AppendUint16(m.b, t)
	m.b = binary.BigEndian.AppendUint16(m.b, 1)
	m.counts[0]++
	return m
}

// rr appends a record to section (1 answer, 2 authority, 3 additional).
// A nil wireName packs name.
func (m *msgBuilder) rr(section int, name string, wireName []byte, t uint16, rdata []byte) *msgBuilder {
	if wireName == nil {
		m.b, _ = packName(m.b, name)
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

func (m *msgBuilder) bytes() []byte {
	for i, c := range m.counts {
		binary.BigEndian.PutUint16(m.b[4+2*i:], c)
	}
	return m.b
}

func wireName(s string) []byte {
	b, _ := packName(nil, s)
	return b
}

func TestBuildQuery(t *testing.T) {
	got, err := buildQuery(0x1234, "wWw.Example.", typeAAAA)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0,
		3, 'w', 'W', 'w', 7, 'E', 'x', 'a', 'm', 'p', 'l', 'e', 0,
		0, 28, 0, 1,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("query (-want +got):\n%s", diff)
	}
}

func TestPackNameErrors(t *testing.T) {
	long := make([]byte, 64)
	for i := range long {
		long[i] = 'a'
	}
	for _, name := range []string{"a..b.", ".a.", string(long) + ".example."} {
		t.Run(name, func(t *testing.T) {
			if _, err := packName(nil, name); err == nil {
				t.Errorf("packName(%q) succeeded", name)
			}
		})
	}
	root, err := packName(nil, ".")
	if err != nil || len(root) != 1 || root[0] != 0 {
		t.Errorf("packName(.) = %v, %v; want [0]", root, err)
	}
}

func TestParseMessage(t *testing.T) {
	// Answer owner compressed to the question name (offset 12); MX target
	// compressed to the question's parent.
	m := newMsg(7, 0x8400|3).
		question("Mail.Example.", typeMX).
		rr(1, "", []byte{0xc0, 12}, typeMX, []byte{0, 10, 2, 'm', 'x', 0xc0, 17}).
		rr(2, "example.", nil, typeSOA, []byte{0}).
		rr(3, "mx.example.", nil, typeA, []byte{192, 0, 2, 1})
	raw := m.bytes()
	got, err := parseMessage(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != 7 || !got.Response || !got.AA || got.TC || got.RCode != 3 || got.QType != typeMX {
		t.Errorf("header = %+v", got)
	}
	if diff := cmp.Diff(wireName("Mail.Example."), got.QNameWire); diff != "" {
		t.Errorf("question name (-want +got):\n%s", diff)
	}
	names := func(rrs []rr) []string {
		var s []string
		for _, r := range rrs {
			s = append(s, r.Name+" "+typeString(r.Type))
		}
		return s
	}
	if diff := cmp.Diff([]string{"mail.example. MX"}, names(got.Answer)); diff != "" {
		t.Errorf("answer (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"example. SOA"}, names(got.Authority)); diff != "" {
		t.Errorf("authority (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"mx.example. A"}, names(got.Extra)); diff != "" {
		t.Errorf("additional (-want +got):\n%s", diff)
	}
	target, err := got.rdataName(got.Answer[0], 2)
	if err != nil || target != "mx.example." {
		t.Errorf("MX target = %q, %v; want mx.example.", target, err)
	}
}

func TestParseMessageErrors(t *testing.T) {
	valid := newMsg(1, 0x8400).question("a.example.", typeA).
		rr(1, "a.example.", nil, typeA, []byte{192, 0, 2, 1}).bytes()
	loop := newMsg(1, 0x8400).bytes()
	loop[7] = 1 // one answer whose owner points at itself
	loop = append(loop, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0)
	tests := []struct {
		name string
		msg  []byte
		want error
	}{
		{"header", []byte{0, 1, 2}, errShort},
		{"cut in rdata", valid[:len(valid)-1], errShort},
		{"cut in question", valid[:20], errShort},
		{"pointer to itself", loop, errPointer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parseMessage(tt.msg); !errors.Is(err, tt.want) {
				t.Errorf("parseMessage = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := parseMessage(valid); err != nil {
		t.Errorf("valid message: %v", err)
	}
}
