package zonesync

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
	"strings"
	"time"

	"github.com/miekg/dns"
)

// tsigKey is a validated TSIG key.
type tsigKey struct {
	name   string // canonical
	alg    string // miekg/dns constant, e.g. dns.HmacSHA256
	secret []byte
	b64    string
}

// keyring holds the TSIG keys by canonical name. It implements
// dns.TsigProvider and, unlike miekg/dns's map of secrets, insists that a
// message uses the algorithm configured for its key.
type keyring map[string]*tsigKey

// newKeyring checks keys and returns the keyring of the valid ones and
// the problems of the others.
func newKeyring(keys []Key) (keyring, []error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	ring := keyring{}
	for i, k := range keys {
		name := dns.CanonicalName(k.Name)
		alg, ok := algorithms[strings.TrimSuffix(strings.ToLower(k.Algorithm), ".")]
		secret, err := base64.StdEncoding.DecodeString(k.Secret)
		switch {
		case k.Name == "" || !validName(name):
			bad("tsig_keys[%d]: invalid name %q", i, k.Name)
		case !ok:
			bad("tsig_keys[%d]: unsupported algorithm %q", i, k.Algorithm)
		case err != nil || len(secret) == 0:
			bad("tsig_keys[%d]: secret is not base64", i)
		case ring[name] != nil:
			bad("tsig_keys[%d]: duplicate key %s", i, name)
		default:
			ring[name] = &tsigKey{name: name, alg: alg, secret: secret, b64: k.Secret}
		}
	}
	return ring, errs
}

// Keyring returns keys (a node's tsig_keys) as a dns.TsigProvider: the
// same keyring the secondary zones use, for the DNS server to verify and
// sign queries with (dnsserver.Handler.SetTSIG). Like the Manager's, it
// answers dns.ErrSecret for a key it does not hold and dns.ErrKeyAlg for
// one used with another algorithm than its own.
func Keyring(keys []Key) (dns.TsigProvider, error) {
	ring, errs := newKeyring(keys)
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
	}
	return ring, nil
}

// fudge is the TSIG time fudge we sign with and accept (RFC 8945 §10).
const fudge = 300

func (k keyring) lookup(t *dns.TSIG) (*tsigKey, error) {
	key := k[dns.CanonicalName(t.Hdr.Name)]
	if key == nil {
		return nil, dns.ErrSecret
	}
	if dns.CanonicalName(t.Algorithm) != key.alg {
		return nil, dns.ErrKeyAlg
	}
	return key, nil
}

// Generate implements dns.TsigProvider.
func (k keyring) Generate(msg []byte, t *dns.TSIG) ([]byte, error) {
	key, err := k.lookup(t)
	if err != nil {
		return nil, err
	}
	var h func() hash.Hash
	switch key.alg {
	case dns.HmacSHA1:
		h = sha1.New
	case dns.HmacSHA224:
		h = sha256.New224
	case dns.HmacSHA256:
		h = sha256.New
	case dns.HmacSHA384:
		h = sha512.New384
	case dns.HmacSHA512:
		h = sha512.New
	default:
		return nil, dns.ErrKeyAlg
	}
	m := hmac.New(h, key.secret)
	m.Write(msg)
	return m.Sum(nil), nil
}

// Verify implements dns.TsigProvider. Truncated MACs (RFC 8945 §5.2.2.1) are
// not accepted.
func (k keyring) Verify(msg []byte, t *dns.TSIG) error {
	want, err := k.Generate(msg, t)
	if err != nil {
		return err
	}
	got, err := hex.DecodeString(t.MAC)
	if err != nil || !hmac.Equal(want, got) {
		return dns.ErrSig
	}
	return nil
}

// sign packs m signed with key; requestMAC is the MAC of the request being
// answered ("" for a request). It returns the message and its MAC.
func (k keyring) sign(m *dns.Msg, key *tsigKey, requestMAC string) ([]byte, string, error) {
	m.SetTsig(key.name, key.alg, fudge, time.Now().Unix())
	return dns.TsigGenerateWithProvider(m, k, requestMAC, false)
}

// verify checks the TSIG of the raw message msg (which is not modified)
// against requestMAC; timersOnly is true for the second and later messages
// of a transfer.
func (k keyring) verify(msg []byte, requestMAC string, timersOnly bool) error {
	return dns.TsigVerifyWithProvider(bytes.Clone(msg), k, requestMAC, timersOnly)
}

// tsigRcode maps a verification error to the TSIG error code to report
// (RFC 8945 §5.2).
func tsigRcode(err error) uint16 {
	switch {
	case errors.Is(err, dns.ErrTime):
		return dns.RcodeBadTime
	case errors.Is(err, dns.ErrSecret), errors.Is(err, dns.ErrKeyAlg):
		return dns.RcodeBadKey
	}
	return dns.RcodeBadSig
}
