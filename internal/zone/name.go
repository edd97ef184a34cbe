package zone

import (
	"errors"
	"fmt"
	"strings"
)

// ErrZoneName marks a name that ValidateZoneName refuses.
var ErrZoneName = errors.New("not a usable zone name")

// ValidateZoneName reports whether name, in presentation form and fully
// qualified (with the trailing dot), is a zone name the nodes serve: the
// root ".", or labels of 1 to 63 characters from letters, digits, '-', '_'
// and '/' (RFC 2317 classless reverse zones), at most 255 octets in wire
// form. Escapes (\. \000 \032), wildcards and every other character are
// refused: a node keeps a zone in files named after it and lists it in
// its status and logs by that name.
//
// It is the one rule for zone names: the API checks the zones it creates
// with it, a node the zones of its configuration and the members of a
// catalog, so that the control plane never accepts a zone that its nodes
// would skip. The error matches ErrZoneName and names the problem.
func ValidateZoneName(name string) error {
	bad := func(format string, args ...any) error {
		return &nameError{fmt.Sprintf(format, args...)}
	}
	switch {
	case name == "":
		return bad("zone name must not be empty")
	case name == ".":
		return nil
	case !strings.HasSuffix(name, "."):
		return bad("zone name %q is not fully qualified (no trailing dot)", name)
	case len(name)+1 > 255:
		return bad("zone name %q is longer than 255 octets", name)
	}
	for label := range strings.SplitSeq(name[:len(name)-1], ".") {
		if label == "" {
			return bad("zone name %q has an empty label", name)
		}
		if len(label) > 63 {
			return bad("zone name %q has a label longer than 63 characters", name)
		}
		for _, c := range []byte(label) {
			if isZoneNameChar(c) {
				continue
			}
			switch c {
			case '\\':
				return bad("zone name %q contains %q: escapes such as \\. or \\000 are not allowed (allowed: letters, digits, '-', '_', '/')", name, c)
			case '*':
				return bad("zone name %q contains '*': a wildcard cannot be a zone (allowed: letters, digits, '-', '_', '/')", name)
			}
			if c >= 0x80 {
				return bad("zone name %q contains a non-ASCII character (write internationalized names in their xn-- form)", name)
			}
			return bad("zone name %q contains %q (allowed: letters, digits, '-', '_', '/')", name, c)
		}
	}
	return nil
}

func isZoneNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '/'
}

// nameError is a refusal of ValidateZoneName: its message alone, matching
// ErrZoneName.
type nameError struct{ msg string }

func (e *nameError) Error() string        { return e.msg }
func (e *nameError) Is(target error) bool { return target == ErrZoneName }
