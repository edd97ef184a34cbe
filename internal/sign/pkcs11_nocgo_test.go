//go:build !cgo

package sign

import (
	"errors"
	"testing"
)

// TestOpenTokenWithoutCgo: a build without cgo says why it has no token.
func TestOpenTokenWithoutCgo(t *testing.T) {
	_, err := OpenToken(TokenConfig{Module: "/usr/lib/softhsm/libsofthsm2.so", Label: "x", PIN: "1234"})
	if !errors.Is(err, errNoCgo) || err.Error() != "built without cgo: PKCS#11 unavailable" {
		t.Errorf("OpenToken without cgo: %v", err)
	}
}
