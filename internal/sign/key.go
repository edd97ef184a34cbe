package sign

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// Role is what a key signs.
type Role string

// The roles of keys: a KSK signs the DNSKEY RRset (and CDS, CDNSKEY), a ZSK
// every other RRset, a CSK both.
const (
	KSK Role = "ksk"
	ZSK Role = "zsk"
	CSK Role = "csk"
)

// DNSKEY flags.
const (
	flagZone = 0x0100
	flagSEP  = 0x0001
)

// Key is one DNSSEC key pair of a zone with its timing. Times that are
// zero have not been set (a key whose Publish and Activate are zero is
// published and active from the start; Retire and Remove zero: never).
type Key struct {
	ID        string // hex digest of the public key, unique per key pair
	Zone      string // lower case, fully qualified
	Role      Role
	Algorithm Algorithm
	Created   time.Time
	Publish   time.Time // from then on in the DNSKEY RRset
	Activate  time.Time // from then on signing
	Retire    time.Time // from then on no longer signing
	Remove    time.Time // from then on no longer in the DNSKEY RRset
	// WaitDS marks a new KSK or CSK of a rollover that is published (and,
	// with CDS, announced to the parent) but does not sign until its DS is
	// seen at the parent; DSSeen is when it was. Activate is then set.
	WaitDS bool
	DSSeen time.Time
	// Submit and Withdraw bound the time a KSK or CSK is in the CDS and
	// CDNSKEY RRsets (zero: from its publication, until its removal). An
	// algorithm rollover sets them: the new key's DS is asked for only
	// once its DNSKEY is in every cache, and the old key's is withdrawn
	// then, so that the parent replaces the DS instead of adding one.
	Submit   time.Time
	Withdraw time.Time
	// Private is the private key: *ecdsa.PrivateKey, ed25519.PrivateKey
	// or *rsa.PrivateKey.
	Private crypto.Signer
	public  []byte // the DNSKEY's public key field
}

// GenerateKey makes a new key pair for zone with the policy's algorithm.
func GenerateKey(zoneName string, role Role, p Policy, now time.Time) (*Key, error) {
	var priv crypto.Signer
	var err error
	switch p.Algorithm {
	case ECDSAP256SHA256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case ED25519:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case RSASHA256:
		priv, err = rsa.GenerateKey(rand.Reader, p.rsaBits())
	default:
		return nil, fmt.Errorf("generate key for %s: algorithm %s not supported", zoneName, p.Algorithm)
	}
	if err != nil {
		return nil, fmt.Errorf("generate %s key for %s: %w", p.Algorithm, zoneName, err)
	}
	return NewKey(zoneName, role, p.Algorithm, priv, now)
}

// NewKey makes a Key of an existing private key.
func NewKey(zoneName string, role Role, alg Algorithm, priv crypto.Signer, created time.Time) (*Key, error) {
	switch role {
	case KSK, ZSK, CSK:
	default:
		return nil, fmt.Errorf("key for %s: role %q is not ksk, zsk or csk", zoneName, role)
	}
	origin, err := canonicalZone(zoneName)
	if err != nil {
		return nil, err
	}
	pub, err := publicKey(alg, priv)
	if err != nil {
		return nil, fmt.Errorf("key for %s: %w", origin, err)
	}
	sum := sha256.Sum256(append([]byte{byte(alg)}, pub...))
	return &Key{
		ID: hex.EncodeToString(sum[:8]), Zone: origin, Role: role, Algorithm: alg,
		Created: created.UTC().Truncate(time.Second), Private: priv, public: pub,
	}, nil
}

// publicKey encodes the public key as the DNSKEY's field: RFC 6605 (X, Y),
// RFC 8080 (the 32 bytes), RFC 3110 (exponent length, exponent, modulus).
func publicKey(alg Algorithm, priv crypto.Signer) ([]byte, error) {
	if priv == nil {
		return nil, errors.New("no private key")
	}
	switch k := priv.Public().(type) { // a key in a token too (pkcs11ref.go)
	case *ecdsa.PublicKey:
		if alg != ECDSAP256SHA256 || k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("an ECDSA key is not an %s key", alg)
		}
		b, err := k.Bytes() // the uncompressed point: 0x04, X, Y
		if err != nil {
			return nil, err
		}
		return b[1:], nil
	case ed25519.PublicKey:
		if alg != ED25519 {
			return nil, fmt.Errorf("an Ed25519 key is not an %s key", alg)
		}
		return []byte(k), nil
	case *rsa.PublicKey:
		if alg != RSASHA256 {
			return nil, fmt.Errorf("an RSA key is not an %s key", alg)
		}
		e := big.NewInt(int64(k.E)).Bytes()
		var out []byte
		if len(e) < 256 {
			out = append(out, byte(len(e)))
		} else {
			out = append(out, 0, byte(len(e)>>8), byte(len(e)))
		}
		out = append(out, e...)
		return append(out, k.N.Bytes()...), nil
	}
	return nil, fmt.Errorf("private key of type %T not supported", priv)
}

// Flags returns the DNSKEY flags: 257 for a KSK or CSK, 256 for a ZSK.
func (k *Key) Flags() uint16 {
	if k.Role == ZSK {
		return flagZone
	}
	return flagZone | flagSEP
}

// DNSKEY returns the key's DNSKEY rdata.
func (k *Key) DNSKEY() []byte {
	rd := make([]byte, 4, 4+len(k.public))
	binary.BigEndian.PutUint16(rd, k.Flags())
	rd[2], rd[3] = 3, byte(k.Algorithm)
	return append(rd, k.public...)
}

// Tag returns the key tag (RFC 4034 Appendix B).
func (k *Key) Tag() uint16 { return keyTag(k.DNSKEY()) }

func keyTag(rd []byte) uint16 {
	var ac uint32
	for i, b := range rd {
		if i&1 == 0 {
			ac += uint32(b) << 8
		} else {
			ac += uint32(b)
		}
	}
	ac += ac >> 16 & 0xFFFF
	return uint16(ac)
}

// DS returns the key's DS rdata with a SHA-256 digest (RFC 4509).
func (k *Key) DS(origin []byte) []byte {
	h := sha256.New()
	h.Write(origin)
	h.Write(k.DNSKEY())
	rd := make([]byte, 4, 4+sha256.Size)
	binary.BigEndian.PutUint16(rd, k.Tag())
	rd[2], rd[3] = byte(k.Algorithm), 2
	return h.Sum(rd)
}

// published reports whether the key is in the DNSKEY RRset at t.
func (k *Key) published(t time.Time) bool {
	return !t.Before(k.Publish) && (k.Remove.IsZero() || t.Before(k.Remove))
}

// active reports whether the key signs at t: from Activate to Retire,
// while it is published. A KSK or CSK that waits for its DS with no
// Activate time (a KSK rollover) does not sign yet. The keys of an
// algorithm rollover sign outside their publication (RFC 6781 §4.1.4): a
// new key whose Activate is before its Publish signs from Activate, so
// that every cached RRset has its signatures before a cache can hold its
// DNSKEY; an old key whose Retire is after its Remove signs until Retire,
// until no cache holds a DNSKEY RRset with it.
func (k *Key) active(t time.Time) bool {
	if k.WaitDS && k.Activate.IsZero() {
		return false
	}
	if t.Before(k.Activate) || (!k.Retire.IsZero() && !t.Before(k.Retire)) {
		return false
	}
	switch {
	case k.published(t):
		return true
	case t.Before(k.Publish):
		return !k.Activate.IsZero() && k.Activate.Before(k.Publish)
	default: // removed
		return !k.Retire.IsZero() && k.Retire.After(k.Remove)
	}
}

// announced reports whether a KSK or CSK is in the CDS and CDNSKEY RRsets
// at t: while it is in the DNSKEY RRset, so that during a rollover the
// parent holds the DS of both keys (double-DS) from before the new one
// signs until the old one has left the zone, when no cached DNSKEY RRset
// is signed by the old key alone any more; within Submit and Withdraw
// when they are set (an algorithm rollover replaces the DS).
func (k *Key) announced(t time.Time) bool {
	return k.Role != ZSK && k.published(t) && !t.Before(k.Submit) && (k.Withdraw.IsZero() || t.Before(k.Withdraw))
}

// Gone reports whether the key has left the zone for good at t: out of
// the DNSKEY RRset and no longer signing.
func (k *Key) Gone(t time.Time) bool {
	return !k.Remove.IsZero() && !t.Before(k.Remove) && !k.active(t)
}

// Signs reports whether the key makes signatures at t.
func (k *Key) Signs(t time.Time) bool { return k.active(t) }

// Published reports whether the key is in the DNSKEY RRset at t.
func (k *Key) Published(t time.Time) bool { return k.published(t) }

// sign signs data with the key, in the form the RRSIG carries (RFC 6605
// r||s, RFC 8080, RFC 5702 PKCS #1 v1.5).
func (k *Key) sign(data []byte) ([]byte, error) {
	switch priv := k.Private.(type) {
	case *ecdsa.PrivateKey:
		return signECDSA(priv, data)
	case ed25519.PrivateKey:
		return ed25519.Sign(priv, data), nil
	case *rsa.PrivateKey:
		d := sha256.Sum256(data)
		return rsa.SignPKCS1v15(nil, priv, crypto.SHA256, d[:])
	case tokenKey:
		return priv.signDNSSEC(data)
	}
	return nil, fmt.Errorf("private key of type %T not supported", k.Private)
}

// marshalPrivate encodes the private key in PKCS #8.
func (k *Key) marshalPrivate() ([]byte, error) {
	return x509.MarshalPKCS8PrivateKey(k.Private)
}

// parsePrivate decodes a PKCS #8 private key.
func parsePrivate(der []byte) (crypto.Signer, error) {
	p, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, err
	}
	s, ok := p.(crypto.Signer)
	if !ok {
		return nil, errors.New("not a signing key")
	}
	return s, nil
}
