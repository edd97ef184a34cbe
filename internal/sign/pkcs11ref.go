package sign

import (
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// PKCS#11 keys (issue #16, point 4). With a token (OpenToken), a
// Sealer's GenerateKey makes the private key inside the token, sensitive
// and not extractable; the Key's Private is then a handle that signs
// through the token, and what a store keeps of the key (SealKey, Export)
// is a reference: the token's label, the object's CKA_ID and the public
// key, never the private key. Keys made before (PKCS #8, sealed) keep
// working beside them. The code that talks to the token needs cgo
// (pkcs11.go); a build without cgo refuses to open a token
// (pkcs11_nocgo.go).

// ErrNoToken means that a key is kept in a PKCS#11 token and none is configured.
var ErrNoToken = errors.New("the key is kept in a PKCS#11 token and no token is configured (signing.pkcs11)")

// TokenConfig says which PKCS#11 token keeps the keys.
type TokenConfig struct {
	Module string // the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so
	Label  string // the token's label
	PIN    string // the user PIN
}

// tokenRef is what a store keeps of a key in a token.
type tokenRef struct {
	Token  string `json:"token"`  // the token's label
	ID     string `json:"id"`     // the objects' CKA_ID, hex
	Public []byte `json:"public"` // PKIX
}

// tokenKey is a private key kept in a token.
type tokenKey interface {
	crypto.Signer
	// signDNSSEC signs data in the form the RRSIG carries.
	signDNSSEC(data []byte) ([]byte, error)
	// ref is the key's reference.
	ref() *tokenRef
	// destroy removes the key's objects from the token.
	destroy() error
}

// ReadPIN reads a PIN file: the PIN on its first line. The file must not
// be readable by others.
func ReadPIN(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s: mode %v lets others read it; chmod 600", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	pin, _, _ := strings.Cut(string(b), "\n")
	pin = strings.TrimSuffix(pin, "\r")
	if pin == "" {
		return "", fmt.Errorf("%s: empty: want the PIN on the first line", path)
	}
	return pin, nil
}

// WithToken returns a copy of the sealer that makes new keys in t and
// opens the references of keys kept there. The sealer still seals what the
// store keeps of every key (a token key's reference included).
func (s *Sealer) WithToken(t *Token) *Sealer {
	c := *s
	c.token = t
	return &c
}

// Token returns the sealer's token; nil without one.
func (s *Sealer) Token() *Token { return s.token }

// Close closes the sealer's token, if it has one.
func (s *Sealer) Close() error {
	if s == nil || s.token == nil {
		return nil
	}
	return s.token.Close()
}

// GenerateKey makes a new key pair like the package's GenerateKey; with a
// token (WithToken), inside it.
func (s *Sealer) GenerateKey(zoneName string, role Role, p Policy, now time.Time) (*Key, error) {
	if s == nil || s.token == nil {
		return GenerateKey(zoneName, role, p, now)
	}
	origin, err := canonicalZone(zoneName)
	if err != nil {
		return nil, err
	}
	bits := 0
	if p.Algorithm == RSASHA256 {
		bits = p.rsaBits()
	}
	tk, err := s.token.generate(p.Algorithm, bits, origin+" "+string(role))
	if err != nil {
		return nil, fmt.Errorf("generate %s key for %s in PKCS#11 token %q: %w", p.Algorithm, origin, s.token.Label(), err)
	}
	k, err := NewKey(origin, role, p.Algorithm, tk, now)
	if err != nil {
		_ = tk.destroy()
		return nil, err
	}
	return k, nil
}

// InToken reports whether the key's private key is kept in a PKCS#11
// token.
func (k *Key) InToken() bool {
	_, ok := k.Private.(tokenKey)
	return ok
}

// Destroy removes a key kept in a token from the token (its private and
// public key objects), for a key that has left its zone for good. A key
// that is not in a token has nothing to remove.
func (k *Key) Destroy() error {
	tk, ok := k.Private.(tokenKey)
	if !ok {
		return nil
	}
	if err := tk.destroy(); err != nil {
		return fmt.Errorf("remove key %s of %s from its PKCS#11 token: %w", k.ID, k.Zone, err)
	}
	return nil
}

// refOf returns the reference of a key kept in a token; nil for another.
func refOf(k *Key) *tokenRef {
	if tk, ok := k.Private.(tokenKey); ok {
		return tk.ref()
	}
	return nil
}

// openRef returns the private key that a reference names, in the token t.
func openRef(t *Token, r *tokenRef) (crypto.Signer, error) {
	if t == nil {
		return nil, fmt.Errorf("token %q, object %s: %w", r.Token, r.ID, ErrNoToken)
	}
	if r.Token != t.Label() {
		return nil, fmt.Errorf("the key is kept in PKCS#11 token %q and the configured token is %q", r.Token, t.Label())
	}
	if _, err := hex.DecodeString(r.ID); err != nil || r.ID == "" {
		return nil, fmt.Errorf("token %q: bad object id %q", r.Token, r.ID)
	}
	if _, err := x509.ParsePKIXPublicKey(r.Public); err != nil {
		return nil, fmt.Errorf("token %q, object %s: public key: %w", r.Token, r.ID, err)
	}
	return t.load(r)
}
