//go:build cgo

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
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"sync"

	"github.com/miekg/pkcs11"
)

// PKCS#11 values that github.com/miekg/pkcs11 v1.1.2 lacks (PKCS#11 3.0).
const (
	ckkECEdwards           = 0x00000040
	ckmECEdwardsKeyPairGen = 0x00001055
	ckmEdDSA               = 0x00001057
)

const (
	tokenSessions     = 4  // sessions kept open, so that a few signatures are made at once
	tokenObjectIDLen  = 16 // random bytes of a key's CKA_ID
	rsaPublicExponent = 65537
)

// The DER of the named curves' OIDs (CKA_EC_PARAMS).
var (
	oidP256    = []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}
	oidEd25519 = []byte{0x06, 0x03, 0x2b, 0x65, 0x70}
)

// modules are the PKCS#11 libraries loaded by the process, by path: a
// library is initialised once per process, however many tokens use it.
var modules = struct {
	sync.Mutex
	m map[string]*module
}{m: map[string]*module{}}

type module struct {
	ctx  *pkcs11.Ctx
	refs int
}

func loadModule(path string) (*pkcs11.Ctx, error) {
	modules.Lock()
	defer modules.Unlock()
	if m := modules.m[path]; m != nil {
		m.refs++
		return m.ctx, nil
	}
	ctx := pkcs11.New(path)
	if ctx == nil {
		return nil, fmt.Errorf("module %s: cannot load it (not there, or not a PKCS#11 library)", path)
	}
	if err := ctx.Initialize(); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) {
		ctx.Destroy()
		return nil, fmt.Errorf("module %s: initialize: %w", path, err)
	}
	modules.m[path] = &module{ctx: ctx, refs: 1}
	return ctx, nil
}

func releaseModule(path string) {
	modules.Lock()
	defer modules.Unlock()
	m := modules.m[path]
	if m == nil {
		return
	}
	if m.refs--; m.refs > 0 {
		return
	}
	delete(modules.m, path)
	_ = m.ctx.Finalize()
	m.ctx.Destroy()
}

// Token is a PKCS#11 token, logged in, that keeps signing keys. It is
// safe for concurrent use.
type Token struct {
	module string
	label  string
	ctx    *pkcs11.Ctx
	slot   uint
	idle   chan pkcs11.SessionHandle
	mu     sync.RWMutex // held for reading while a session is in use
	closed bool
}

// OpenToken loads the module, finds the token by its label and logs in
// with the PIN. Close it when done.
func OpenToken(c TokenConfig) (*Token, error) {
	if c.Module == "" || c.Label == "" || c.PIN == "" {
		return nil, errors.New("open PKCS#11 token: module, token label and PIN are required")
	}
	ctx, err := loadModule(c.Module)
	if err != nil {
		return nil, fmt.Errorf("open PKCS#11 token %q: %w", c.Label, err)
	}
	t := &Token{module: c.Module, label: c.Label, ctx: ctx, idle: make(chan pkcs11.SessionHandle, tokenSessions)}
	if err := t.open(c.PIN); err != nil {
		t.closeSessions()
		releaseModule(c.Module)
		return nil, fmt.Errorf("open PKCS#11 token %q of %s: %w", c.Label, c.Module, err)
	}
	return t, nil
}

func (t *Token) open(pin string) error {
	slots, err := t.ctx.GetSlotList(true)
	if err != nil {
		return fmt.Errorf("list slots: %w", err)
	}
	found, labels := false, []string{}
	for _, s := range slots {
		info, err := t.ctx.GetTokenInfo(s)
		if err != nil {
			continue
		}
		l := strings.TrimRight(info.Label, " \x00")
		labels = append(labels, fmt.Sprintf("%q", l))
		if l == t.label {
			if found {
				return errors.New("two tokens have this label")
			}
			t.slot, found = s, true
		}
	}
	if !found {
		return fmt.Errorf("no token has this label (the tokens: %s)", strings.Join(labels, ", "))
	}
	for i := range tokenSessions {
		sh, err := t.ctx.OpenSession(t.slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
		if err != nil {
			return fmt.Errorf("open a session: %w", err)
		}
		t.idle <- sh
		if i > 0 {
			continue
		}
		// The login holds for every session of the process with the token.
		if err := t.ctx.Login(sh, pkcs11.CKU_USER, pin); err != nil && !errors.Is(err, pkcs11.Error(pkcs11.CKR_USER_ALREADY_LOGGED_IN)) {
			if errors.Is(err, pkcs11.Error(pkcs11.CKR_PIN_INCORRECT)) {
				return errors.New("log in: wrong PIN")
			}
			return fmt.Errorf("log in: %w", err)
		}
	}
	return nil
}

// Label returns the token's label.
func (t *Token) Label() string { return t.label }

// Close closes the token's sessions (which logs out) and unloads the
// module when no other token uses it; it waits for the signatures under
// way. Keys of the token stop signing.
func (t *Token) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	t.closeSessions()
	releaseModule(t.module)
	return nil
}

// closeSessions closes the idle sessions: all of them, under t.mu.
func (t *Token) closeSessions() {
	for {
		select {
		case sh := <-t.idle:
			_ = t.ctx.CloseSession(sh)
		default:
			return
		}
	}
}

// with runs f with a session of the token.
func (t *Token) with(f func(sh pkcs11.SessionHandle) error) error {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.closed {
		return fmt.Errorf("PKCS#11 token %q is closed", t.label)
	}
	sh := <-t.idle
	defer func() { t.idle <- sh }()
	return f(sh)
}

// find returns the one object of class with CKA_ID id.
func (t *Token) find(sh pkcs11.SessionHandle, class uint, id []byte) (pkcs11.ObjectHandle, bool, error) {
	if err := t.ctx.FindObjectsInit(sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
		pkcs11.NewAttribute(pkcs11.CKA_ID, id),
	}); err != nil {
		return 0, false, err
	}
	objs, _, err := t.ctx.FindObjects(sh, 2)
	if ferr := t.ctx.FindObjectsFinal(sh); err == nil {
		err = ferr
	}
	switch {
	case err != nil:
		return 0, false, err
	case len(objs) == 0:
		return 0, false, nil
	case len(objs) > 1:
		return 0, false, fmt.Errorf("two objects have id %x", id)
	}
	return objs[0], true, nil
}

// generate makes a key pair in the token: the private key sensitive, not
// extractable, both objects labelled label.
func (t *Token) generate(alg Algorithm, rsaBits int, label string) (tokenKey, error) {
	id := make([]byte, tokenObjectIDLen)
	_, _ = rand.Read(id)
	common := func(class uint) []*pkcs11.Attribute {
		return []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, class),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_ID, id),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
		}
	}
	pub := append(common(pkcs11.CKO_PUBLIC_KEY), pkcs11.NewAttribute(pkcs11.CKA_VERIFY, true))
	priv := append(common(pkcs11.CKO_PRIVATE_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_SIGN, true))
	var mech uint
	switch alg {
	case ECDSAP256SHA256:
		mech = pkcs11.CKM_EC_KEY_PAIR_GEN
		pub = append(pub, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC), pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, oidP256))
		priv = append(priv, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_EC))
	case ED25519:
		mech = ckmECEdwardsKeyPairGen
		pub = append(pub, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ckkECEdwards), pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, oidEd25519))
		priv = append(priv, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, ckkECEdwards))
	case RSASHA256:
		mech = pkcs11.CKM_RSA_PKCS_KEY_PAIR_GEN
		pub = append(pub, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA),
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS_BITS, rsaBits),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, big.NewInt(rsaPublicExponent).Bytes()))
		priv = append(priv, pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_RSA))
	default:
		return nil, fmt.Errorf("algorithm %s not supported", alg)
	}
	var k *p11Key
	err := t.with(func(sh pkcs11.SessionHandle) error {
		ph, sh2, err := t.ctx.GenerateKeyPair(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, pub, priv)
		if err != nil {
			return fmt.Errorf("generate the key pair: %w", err)
		}
		pk, err := t.publicKey(sh, alg, ph)
		if err != nil {
			_ = t.ctx.DestroyObject(sh, ph)
			_ = t.ctx.DestroyObject(sh, sh2)
			return err
		}
		k = &p11Key{t: t, alg: alg, id: id, priv: sh2, pub: pk}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// publicKey reads the public key of the public key object o.
func (t *Token) publicKey(sh pkcs11.SessionHandle, alg Algorithm, o pkcs11.ObjectHandle) (crypto.PublicKey, error) {
	if alg == RSASHA256 {
		attrs, err := t.ctx.GetAttributeValue(sh, o, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_MODULUS, nil), pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, nil)})
		if err != nil {
			return nil, fmt.Errorf("read the public key: %w", err)
		}
		e := new(big.Int).SetBytes(attrs[1].Value)
		if !e.IsInt64() || e.Int64() > 1<<31-1 {
			return nil, errors.New("read the public key: exponent out of range")
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(attrs[0].Value), E: int(e.Int64())}, nil
	}
	attrs, err := t.ctx.GetAttributeValue(sh, o, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil)})
	if err != nil {
		return nil, fmt.Errorf("read the public key: %w", err)
	}
	point := attrs[0].Value
	// CKA_EC_POINT is DER (an OCTET STRING) in PKCS#11; some tokens give
	// the raw point.
	var inner []byte
	if rest, err := asn1.Unmarshal(point, &inner); err == nil && len(rest) == 0 {
		point = inner
	}
	switch alg {
	case ECDSAP256SHA256:
		pk, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
		if err != nil {
			return nil, fmt.Errorf("read the public key: %w", err)
		}
		return pk, nil
	case ED25519:
		if len(point) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("read the public key: %d bytes, not an Ed25519 key", len(point))
		}
		return ed25519.PublicKey(point), nil
	}
	return nil, fmt.Errorf("algorithm %s not supported", alg)
}

// load finds the key that r names and checks that the token's public key
// is the one r holds.
func (t *Token) load(r *tokenRef) (tokenKey, error) {
	want, err := x509.ParsePKIXPublicKey(r.Public)
	if err != nil {
		return nil, err
	}
	var alg Algorithm
	switch want.(type) {
	case *ecdsa.PublicKey:
		alg = ECDSAP256SHA256
	case ed25519.PublicKey:
		alg = ED25519
	case *rsa.PublicKey:
		alg = RSASHA256
	default:
		return nil, fmt.Errorf("public key of type %T not supported", want)
	}
	id, _ := hex.DecodeString(r.ID)
	var k *p11Key
	err = t.with(func(sh pkcs11.SessionHandle) error {
		ph, ok, err := t.find(sh, pkcs11.CKO_PRIVATE_KEY, id)
		if err != nil {
			return fmt.Errorf("find private key %s: %w", r.ID, err)
		}
		if !ok {
			return fmt.Errorf("token %q has no private key %s (deleted from the token?)", t.label, r.ID)
		}
		if oh, ok, err := t.find(sh, pkcs11.CKO_PUBLIC_KEY, id); err == nil && ok {
			have, err := t.publicKey(sh, alg, oh)
			if err != nil {
				return err
			}
			if !have.(interface{ Equal(crypto.PublicKey) bool }).Equal(want) {
				return fmt.Errorf("token %q: the public key of object %s is not the stored one", t.label, r.ID)
			}
		}
		k = &p11Key{t: t, alg: alg, id: id, priv: ph, pub: want}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// p11Key is a private key in a token; a crypto.Signer.
type p11Key struct {
	t    *Token
	alg  Algorithm
	id   []byte
	priv pkcs11.ObjectHandle
	pub  crypto.PublicKey
}

func (k *p11Key) Public() crypto.PublicKey { return k.pub }

func (k *p11Key) ref() *tokenRef {
	der, _ := x509.MarshalPKIXPublicKey(k.pub) // P-256, Ed25519, RSA: never fails
	return &tokenRef{Token: k.t.label, ID: hex.EncodeToString(k.id), Public: der}
}

// raw signs in with mechanism mech.
func (k *p11Key) raw(mech uint, in []byte) ([]byte, error) {
	var sig []byte
	err := k.t.with(func(sh pkcs11.SessionHandle) error {
		if err := k.t.ctx.SignInit(sh, []*pkcs11.Mechanism{pkcs11.NewMechanism(mech, nil)}, k.priv); err != nil {
			return err
		}
		var err error
		sig, err = k.t.ctx.Sign(sh, in)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sign with PKCS#11 token %q, key %x: %w", k.t.label, k.id, err)
	}
	return sig, nil
}

// signDNSSEC implements tokenKey: ECDSA r||s over SHA-256 (RFC 6605),
// Ed25519 (RFC 8080), RSASSA-PKCS1-v1_5 with SHA-256 (RFC 5702).
func (k *p11Key) signDNSSEC(data []byte) ([]byte, error) {
	switch k.alg {
	case ECDSAP256SHA256:
		d := sha256.Sum256(data)
		sig, err := k.raw(pkcs11.CKM_ECDSA, d[:])
		if err == nil && len(sig) != 64 {
			err = fmt.Errorf("sign with PKCS#11 token %q: an ECDSA P-256 signature of %d bytes", k.t.label, len(sig))
		}
		return sig, err
	case ED25519:
		return k.raw(ckmEdDSA, data)
	case RSASHA256:
		return k.raw(pkcs11.CKM_SHA256_RSA_PKCS, data)
	}
	return nil, fmt.Errorf("algorithm %s not supported", k.alg)
}

// sha256Prefix is the DER of the DigestInfo of a SHA-256 digest (RFC 8017).
var sha256Prefix = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

// Sign implements crypto.Signer: ECDSA in ASN.1, Ed25519 of the message
// itself, RSA PKCS #1 v1.5 of a SHA-256 digest.
func (k *p11Key) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	switch k.alg {
	case ECDSAP256SHA256:
		sig, err := k.raw(pkcs11.CKM_ECDSA, digest)
		if err != nil {
			return nil, err
		}
		if len(sig)%2 != 0 {
			return nil, errors.New("sign: odd ECDSA signature")
		}
		n := len(sig) / 2
		return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])})
	case ED25519:
		if opts.HashFunc() != 0 {
			return nil, errors.New("sign: Ed25519 signs the message, not a digest")
		}
		return k.raw(ckmEdDSA, digest)
	case RSASHA256:
		if _, pss := opts.(*rsa.PSSOptions); pss || opts.HashFunc() != crypto.SHA256 || len(digest) != sha256.Size {
			return nil, errors.New("sign: only PKCS #1 v1.5 with SHA-256 is supported")
		}
		return k.raw(pkcs11.CKM_RSA_PKCS, append(append([]byte{}, sha256Prefix...), digest...))
	}
	return nil, fmt.Errorf("algorithm %s not supported", k.alg)
}

// destroy implements tokenKey.
func (k *p11Key) destroy() error {
	return k.t.with(func(sh pkcs11.SessionHandle) error {
		var errs []error
		for _, class := range []uint{pkcs11.CKO_PRIVATE_KEY, pkcs11.CKO_PUBLIC_KEY} {
			o, ok, err := k.t.find(sh, class, k.id)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if ok {
				errs = append(errs, k.t.ctx.DestroyObject(sh, o))
			}
		}
		return errors.Join(errs...)
	})
}
