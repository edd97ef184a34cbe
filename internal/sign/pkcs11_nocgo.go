//go:build !cgo

package sign

import "errors"

// errNoCgo: PKCS#11 needs cgo, to load the token's library.
var errNoCgo = errors.New("built without cgo: PKCS#11 unavailable")

// Token is a PKCS#11 token. This build has no cgo: OpenToken fails.
type Token struct{ label string }

// OpenToken fails: the build has no cgo.
func OpenToken(TokenConfig) (*Token, error) { return nil, errNoCgo }

// Label returns the token's label.
func (t *Token) Label() string { return t.label }

// Close does nothing.
func (t *Token) Close() error { return nil }

func (t *Token) generate(Algorithm, int, string) (tokenKey, error) { return nil, errNoCgo }

func (t *Token) load(*tokenRef) (tokenKey, error) { return nil, errNoCgo }
