package benchkit

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBuildQuery(t *testing.T) {
	got, err := BuildQuery(0x1234, "wWw.Example.", TypeAAAA)
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
			if _, err := PackName(nil, name); err == nil {
				t.Errorf("packName(%q) succeeded", name)
			}
		})
	}
	root, err := PackName(nil, ".")
	if err != nil || len(root) != 1 || root[0] != 0 {
		t.Errorf("packName(.) = %v, %v; want [0]", root, err)
	}
}

func TestParseMessage(t *testing.T) {
	// Answer owner compressed to the question name (offset 12); MX target
	// compressed to the question's parent.
	m := NewMsg(7, 0x8400|3).
		Question("Mail.Example.", TypeMX).
		RR(1, "", []byte{0xc0, 12}, TypeMX, []byte{0, 10, 2, 'm', 'x', 0xc0, 17}).
		RR(2, "example.", nil, TypeSOA, []byte{0}).
		RR(3, "mx.example.", nil, TypeA, []byte{192, 0, 2, 1})
	raw := m.Bytes()
	got, err := ParseMessage(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != 7 || !got.Response || !got.AA || got.TC || got.RCode != 3 || got.QType != TypeMX {
		t.Errorf("header = %+v", got)
	}
	if diff := cmp.Diff(WireName("Mail.Example."), got.QNameWire); diff != "" {
		t.Errorf("question name (-want +got):\n%s", diff)
	}
	names := func(rrs []RR) []string {
		var s []string
		for _, r := range rrs {
			s = append(s, r.Name+" "+TypeString(r.Type))
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
	target, err := got.RDataName(got.Answer[0], 2)
	if err != nil || target != "mx.example." {
		t.Errorf("MX target = %q, %v; want mx.example.", target, err)
	}
}

func TestParseMessageErrors(t *testing.T) {
	valid := NewMsg(1, 0x8400).Question("a.example.", TypeA).
		RR(1, "a.example.", nil, TypeA, []byte{192, 0, 2, 1}).Bytes()
	loop := NewMsg(1, 0x8400).Bytes()
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
			if _, err := ParseMessage(tt.msg); !errors.Is(err, tt.want) {
				t.Errorf("parseMessage = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := ParseMessage(valid); err != nil {
		t.Errorf("valid message: %v", err)
	}
}
