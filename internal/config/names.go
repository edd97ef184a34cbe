package config

import (
	"strings"

	"github.com/anycastdns/anycastdns/internal/zone"
)

// canonicalZoneName returns name lower-cased and fully qualified (with the
// trailing dot), or an error if it is not a usable zone name by
// zone.ValidateZoneName, the one rule the API and the nodes share: labels
// of 1 to 63 characters from letters, digits, '-', '_' and '/' (RFC 2317
// reverse zones), at most 255 octets in wire form. "." is the root zone.
func canonicalZoneName(name string) (string, error) {
	fqdn := strings.ToLower(name)
	if fqdn != "" && !strings.HasSuffix(fqdn, ".") {
		fqdn += "."
	}
	if err := zone.ValidateZoneName(fqdn); err != nil {
		return "", err
	}
	return fqdn, nil
}
