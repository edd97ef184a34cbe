package zone_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/anycastdns/anycastdns/internal/zone"
)

func TestValidateZoneName(t *testing.T) {
	long := strings.Repeat("a", 63) + "."
	for _, tc := range []struct {
		name string
		want string // "" when the name is valid, else a part of the error
	}{
		{".", ""},
		{"com.", ""},
		{"example.com.", ""},
		{"Example.COM.", ""},
		{"0/25.2.0.192.in-addr.arpa.", ""}, // RFC 2317
		{"_tcp.example.com.", ""},
		{"xn--bcher-kva.example.", ""},
		{strings.Repeat(long, 3) + strings.Repeat("a", 61) + ".", ""}, // 254 characters, 255 octets
		{"", "must not be empty"},
		{"example.com", "not fully qualified"},
		{"*.test.", "a wildcard cannot be a zone"},
		{`a\.b.test.`, `contains '\\': escapes`},
		{`a\000b.test.`, `contains '\\': escapes`},
		{`x\032y.test.`, `contains '\\': escapes`},
		{"a b.test.", `contains ' '`},
		{"a@b.test.", `contains '@'`},
		{"caf\xc3\xa9.test.", "non-ASCII"},
		{"a\x00b.test.", `contains '\x00'`},
		{"a..test.", "empty label"},
		{".test.", "empty label"},
		{strings.Repeat("a", 64) + ".test.", "longer than 63"},
		{strings.Repeat(long, 4), "longer than 255 octets"},
	} {
		err := zone.ValidateZoneName(tc.name)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("ValidateZoneName(%q) = %v, want nil", tc.name, err)
		case tc.want != "" && err == nil:
			t.Errorf("ValidateZoneName(%q) = nil, want an error with %q", tc.name, tc.want)
		case tc.want != "" && (!strings.Contains(err.Error(), tc.want) || !errors.Is(err, zone.ErrZoneName)):
			t.Errorf("ValidateZoneName(%q) = %v, want an ErrZoneName with %q", tc.name, err, tc.want)
		}
	}
}
