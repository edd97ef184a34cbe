// Package tsig is anycastd's one TSIG (RFC 8945) keyring: the keys of a
// configuration, validated once, and everything done with them — checking
// the signature of a request or response, signing a request, and signing
// the messages of an answer, alone or as a transfer stream.
//
// The configuration (internal/config) declares keys as Key values and
// checks them with ParseAlgorithm and DecodeSecret; the DNS server, the
// transfer server (xfrout) and the secondary zones (zonesync) each hold a
// *Keyring built by New and replaced whole on reload.
package tsig

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // hmac-sha1 is still a TSIG algorithm (RFC 8945)
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Key is a TSIG key as a configuration declares it.
type Key struct {
	Name string // a domain name, "xfr-key." or "xfr-key"
	// Algorithm is one of Algorithms, with or without the final dot, in
	// any case.
	Algorithm string
	Secret    string // base64, as tsig-keygen and keymgr print it
}

// Algorithms are the accepted algorithm names, the ones miekg/dns
// implements, the default first.
var Algorithms = []string{"hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1"}

// DefaultAlgorithm is the algorithm of a key that names none.
const DefaultAlgorithm = "hmac-sha256"

// Fudge is the time fudge we sign with and accept (RFC 8945 §10).
const Fudge = 300

// wireAlgorithm maps an accepted name to miekg/dns's (the algorithm's
// domain name, as in a TSIG record).
var wireAlgorithm = map[string]string{
	"hmac-sha1":   dns.HmacSHA1,
	"hmac-sha224": dns.HmacSHA224,
	"hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384,
	"hmac-sha512": dns.HmacSHA512,
}

// ParseAlgorithm returns the accepted name of an algorithm written in any
// case, with or without the final dot.
func ParseAlgorithm(s string) (string, error) {
	name := strings.TrimSuffix(strings.ToLower(s), ".")
	if _, ok := wireAlgorithm[name]; !ok {
		return "", fmt.Errorf("unsupported algorithm %q (want one of %s)", s, strings.Join(Algorithms, ", "))
	}
	return name, nil
}

// DecodeSecret decodes a base64 secret; an empty one is an error.
func DecodeSecret(s string) ([]byte, error) {
	switch b, err := base64.StdEncoding.DecodeString(s); {
	case s == "":
		return nil, errors.New("secret is required (base64)")
	case err != nil:
		return nil, errors.New("secret is not base64")
	default:
		return b, nil
	}
}

// entry is a validated key.
type entry struct {
	name   string // canonical
	alg    string // miekg/dns's name, e.g. dns.HmacSHA256
	secret []byte
}

func (e *entry) hash() func() hash.Hash {
	switch e.alg {
	case dns.HmacSHA1:
		return sha1.New
	case dns.HmacSHA224:
		return sha256.New224
	case dns.HmacSHA256:
		return sha256.New
	case dns.HmacSHA384:
		return sha512.New384
	}
	return sha512.New
}

func (e *entry) equal(o *entry) bool {
	return e.name == o.name && e.alg == o.alg && hmac.Equal(e.secret, o.secret)
}

// Keyring holds validated keys by canonical name. It is immutable: a
// reload builds a new one. It implements dns.TsigProvider and, unlike
// miekg/dns's map of secrets, insists that a message uses the algorithm
// of its key. A nil *Keyring holds no key.
type Keyring struct {
	keys map[string]*entry
}

// New validates keys and returns their keyring, or every problem, each
// naming the key by its index ("keys[2]: ...").
func New(keys []Key) (*Keyring, error) {
	var errs []error
	r := &Keyring{keys: make(map[string]*entry, len(keys))}
	for i, k := range keys {
		name := dns.CanonicalName(k.Name)
		alg, algErr := ParseAlgorithm(k.Algorithm)
		secret, secretErr := DecodeSecret(k.Secret)
		switch {
		case k.Name == "" || name == "." || !validName(name):
			errs = append(errs, fmt.Errorf("keys[%d]: invalid name %q", i, k.Name))
		case algErr != nil:
			errs = append(errs, fmt.Errorf("keys[%d]: %w", i, algErr))
		case secretErr != nil:
			errs = append(errs, fmt.Errorf("keys[%d]: %w", i, secretErr))
		case r.keys[name] != nil:
			errs = append(errs, fmt.Errorf("keys[%d]: duplicate key %s", i, name))
		default:
			r.keys[name] = &entry{name: name, alg: wireAlgorithm[alg], secret: secret}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// validName reports whether name packs as a domain name.
func validName(name string) bool {
	_, err := dns.PackDomainName(name, make([]byte, 256), 0, nil, false)
	return err == nil
}

// Len is the number of keys.
func (r *Keyring) Len() int {
	if r == nil {
		return 0
	}
	return len(r.keys)
}

// Has reports whether the ring holds the key name (any case).
func (r *Keyring) Has(name string) bool { return r.get(name) != nil }

// Names returns the canonical names of the keys, sorted.
func (r *Keyring) Names() []string {
	if r == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(r.keys))
}

func (r *Keyring) get(name string) *entry {
	if r == nil {
		return nil
	}
	return r.keys[dns.CanonicalName(name)]
}

// Only returns the keyring of the one key name; nil when r does not hold
// it. A component that must go on signing with a key whatever a reload
// does to the rest (a NOTIFY target) keeps its own.
func (r *Keyring) Only(name string) *Keyring {
	e := r.get(name)
	if e == nil {
		return nil
	}
	return &Keyring{keys: map[string]*entry{e.name: e}}
}

// Equal reports whether two keyrings hold the same keys (names,
// algorithms and secrets).
func (r *Keyring) Equal(o *Keyring) bool {
	if r.Len() != o.Len() {
		return false
	}
	for name, e := range r.all() {
		if oe := o.get(name); oe == nil || !e.equal(oe) {
			return false
		}
	}
	return true
}

func (r *Keyring) all() map[string]*entry {
	if r == nil {
		return nil
	}
	return r.keys
}

func (r *Keyring) lookup(t *dns.TSIG) (*entry, error) {
	e := r.get(t.Hdr.Name)
	if e == nil {
		return nil, dns.ErrSecret
	}
	if dns.CanonicalName(t.Algorithm) != e.alg {
		return nil, dns.ErrKeyAlg
	}
	return e, nil
}

// Generate implements dns.TsigProvider: dns.ErrSecret for a key the ring
// does not hold, dns.ErrKeyAlg for one used with another algorithm than
// its own.
func (r *Keyring) Generate(msg []byte, t *dns.TSIG) ([]byte, error) {
	e, err := r.lookup(t)
	if err != nil {
		return nil, err
	}
	m := hmac.New(e.hash(), e.secret)
	m.Write(msg)
	return m.Sum(nil), nil
}

// Verify implements dns.TsigProvider. Truncated MACs (RFC 8945 §5.2.2.1)
// are not accepted.
func (r *Keyring) Verify(msg []byte, t *dns.TSIG) error {
	want, err := r.Generate(msg, t)
	if err != nil {
		return err
	}
	got, err := hex.DecodeString(t.MAC)
	if err != nil || !hmac.Equal(want, got) {
		return dns.ErrSig
	}
	return nil
}

// Check verifies the TSIG record of the raw message msg, which it does not
// modify: a request (requestMAC ""), or a response to a request whose MAC
// was requestMAC; timersOnly for the second and later messages of a
// transfer. The errors are miekg/dns's: dns.ErrSecret, dns.ErrKeyAlg,
// dns.ErrSig, dns.ErrTime, or one for a message that does not parse.
func (r *Keyring) Check(msg []byte, requestMAC string, timersOnly bool) error {
	// TsigVerifyWithProvider rewrites the ID and ARCOUNT of what it is
	// given.
	return dns.TsigVerifyWithProvider(bytes.Clone(msg), r, requestMAC, timersOnly)
}

// SetTsig adds to m the TSIG record of the key name, with its algorithm,
// Fudge and the time now, for Sign, a dns.Client or a dns.Transfer to fill
// in. It reports whether the ring holds the key.
func (r *Keyring) SetTsig(m *dns.Msg, name string) bool {
	e := r.get(name)
	if e == nil {
		return false
	}
	m.SetTsig(e.name, e.alg, Fudge, time.Now().Unix())
	return true
}

// Sign packs m signed with the key name; requestMAC is the MAC of the
// request being answered ("" for a request). It returns the message and
// its MAC.
func (r *Keyring) Sign(m *dns.Msg, name, requestMAC string) ([]byte, string, error) {
	if !r.SetTsig(m, name) {
		return nil, "", fmt.Errorf("tsig: no key %s: %w", name, dns.ErrSecret)
	}
	return dns.TsigGenerateWithProvider(m, r, requestMAC, false)
}

// Rcode is the TSIG error to report for a verification error (RFC 8945
// §5.2): BADTIME, BADKEY, else BADSIG.
func Rcode(err error) uint16 {
	switch {
	case errors.Is(err, dns.ErrTime):
		return dns.RcodeBadTime
	case errors.Is(err, dns.ErrSecret), errors.Is(err, dns.ErrKeyAlg):
		return dns.RcodeBadKey
	}
	return dns.RcodeBadSig
}
