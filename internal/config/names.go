package config

import (
	"fmt"
	"strings"
)

// canonicalZoneName returns name lower-cased and fully qualified (with the
// trailing dot), or an error if it is not a usable zone name: labels of 1 to
// 63 characters from letters, digits, '-', '_' and '/' (RFC 2317 reverse
// zones), at most 255 octets in wire form. "." is the root zone.
func canonicalZoneName(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("zone name must not be empty")
	}
	if name == "." {
		return name, nil
	}
	fqdn := strings.ToLower(name)
	if !strings.HasSuffix(fqdn, ".") {
		fqdn += "."
	}
	if len(fqdn)+1 > 255 {
		return "", fmt.Errorf("zone name %q is longer than 255 octets", name)
	}
	for label := range strings.SplitSeq(fqdn[:len(fqdn)-1], ".") {
		if label == "" {
			return "", fmt.Errorf("zone name %q has an empty label", name)
		}
		if len(label) > 63 {
			return "", fmt.Errorf("zone name %q has a label longer than 63 characters", name)
		}
		for _, c := range []byte(label) {
			if !isNameChar(c) {
				return "", fmt.Errorf("zone name %q contains %q (allowed: letters, digits, '-', '_', '/')", name, c)
			}
		}
	}
	return fqdn, nil
}

func isNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '/'
}
