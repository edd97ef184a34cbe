package wire

import (
	"testing"

	"github.com/miekg/dns"
)

func TestReadName(t *testing.T) {
	tests := []struct {
		name string
		msg  []byte
		off  int
		want string
		end  int
		err  bool
	}{
		{"root", []byte{0}, 0, ".", 1, false},
		{"plain", []byte("\x03www\x07example\x03com\x00"), 0, "www.example.com.", 17, false},
		{"pointer", []byte("\x03com\x00\x03www\xC0\x00"), 5, "www.com.", 11, false},
		{"forward pointer", []byte("\xC0\x02\x00"), 0, "", 0, true},
		{"self pointer", []byte("\x01a\xC0\x02"), 2, "", 0, true},
		{"truncated label", []byte("\x05ab"), 0, "", 0, true},
		{"bad label type", []byte("\x40"), 0, "", 0, true},
		{"no terminator", []byte("\x01a"), 0, "", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, end, err := ReadName(nil, tt.msg, tt.off)
			if (err != nil) != tt.err {
				t.Fatalf("err %v, want error %v", err, tt.err)
			}
			if err != nil {
				return
			}
			s, _, err := dns.UnpackDomainName(got, 0)
			if err != nil || s != tt.want || end != tt.end {
				t.Errorf("got %q end %d (%v), want %q end %d", s, end, err, tt.want, tt.end)
			}
		})
	}
}

func TestIsSubdomain(t *testing.T) {
	w := func(s string) []byte {
		b := make([]byte, 256)
		n, _ := dns.PackDomainName(s, b, 0, nil, false)
		return b[:n]
	}
	tests := []struct {
		c, p string
		want bool
	}{
		{"a.example.com.", "example.com.", true},
		{"example.com.", "example.com.", true},
		{"aexample.com.", "example.com.", false},
		{"com.", "example.com.", false},
		{"x.", ".", true},
	}
	for _, tt := range tests {
		if got := IsSubdomain(w(tt.c), w(tt.p)); got != tt.want {
			t.Errorf("IsSubdomain(%s, %s) = %v", tt.c, tt.p, got)
		}
	}
}

func TestBuilderCompressesCaseInsensitively(t *testing.T) {
	var b Builder
	b.Reset(nil, 512)
	b.Header(1, 0x8400)
	q := []byte("\x03WwW\x07ExAmPlE\x03cOm\x00")
	b.Question(q, dns.TypeA, dns.ClassINET)
	if !b.RR(Answer, []byte("\x03www\x07example\x03com\x00"), dns.TypeA, dns.ClassINET, 60, []byte{192, 0, 2, 1}) {
		t.Fatal("RR did not fit")
	}
	// An NS RR whose rdata name compresses against the question's suffix.
	if !b.RR(Authority, []byte("\x07example\x03com\x00"), dns.TypeNS, dns.ClassINET, 60, []byte("\x03ns1\x07EXAMPLE\x03com\x00")) {
		t.Fatal("RR did not fit")
	}
	msg := b.Bytes()
	var m dns.Msg
	if err := m.Unpack(msg); err != nil {
		t.Fatal(err)
	}
	if m.Answer[0].Header().Name != "WwW.ExAmPlE.cOm." {
		t.Errorf("owner %q should take the question's case", m.Answer[0].Header().Name)
	}
	if m.Ns[0].(*dns.NS).Ns != "ns1.ExAmPlE.cOm." || m.Ns[0].Header().Name != "ExAmPlE.cOm." {
		t.Errorf("authority %v", m.Ns[0])
	}
	// header 12 + question 21 + answer (2+10+4) + ns (2+10+ 4+2)
	if want := 12 + 21 + 16 + 18; len(msg) != want {
		t.Errorf("length %d, want %d (compression missed)", len(msg), want)
	}
}

func TestBuilderLimit(t *testing.T) {
	var b Builder
	b.Reset(nil, 40)
	b.Header(1, 0)
	b.Question([]byte("\x01a\x00"), 1, 1)
	m := b.Save()
	if b.RR(Answer, []byte("\x01b\x00"), 16, 1, 0, make([]byte, 30)) {
		t.Fatal("oversized RR accepted")
	}
	if b.Save() != m || b.Len() != 12+7 {
		t.Fatal("failed RR left bytes behind")
	}
}

func FuzzReadName(f *testing.F) {
	f.Add([]byte("\x03www\x07example\x03com\x00"), 0)
	f.Add([]byte("\x03com\x00\x03www\xC0\x00"), 5)
	f.Fuzz(func(t *testing.T, msg []byte, off int) {
		if off < 0 || off > len(msg) {
			return
		}
		name, _, err := ReadName(nil, msg, off)
		if err != nil {
			return
		}
		if len(name) > MaxName {
			t.Fatalf("name of %d bytes", len(name))
		}
		if _, _, err := dns.UnpackDomainName(name, 0); err != nil {
			t.Fatalf("ReadName produced %x which miekg rejects: %v", name, err)
		}
	})
}

func TestNameLenAndSkipName(t *testing.T) {
	for _, tc := range []struct {
		name       string
		p          []byte
		plain, any int // NameLen, SkipName
	}{
		{"root", []byte{0}, 1, 1},
		{"two labels and more bytes", []byte{3, 'w', 'w', 'w', 2, 'e', 'x', 0, 0, 1}, 8, 8},
		{"pointer", []byte{0xC0, 12, 0, 1}, -1, 2},
		{"label then pointer", []byte{3, 'w', 'w', 'w', 0xC0, 12}, -1, 6},
		{"pointer cut short", []byte{3, 'w', 'w', 'w', 0xC0}, -1, -1},
		{"reserved label type", []byte{0x40, 0}, -1, -1},
		{"no root label", []byte{3, 'w', 'w', 'w'}, -1, -1},
		{"label longer than the rest", []byte{9, 'a'}, -1, -1},
		{"empty", nil, -1, -1},
	} {
		if got := NameLen(tc.p); got != tc.plain {
			t.Errorf("%s: NameLen = %d, want %d", tc.name, got, tc.plain)
		}
		if got := SkipName(tc.p); got != tc.any {
			t.Errorf("%s: SkipName = %d, want %d", tc.name, got, tc.any)
		}
	}
}
