package sign

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"errors"
	"fmt"
)

// signECDSA signs data with a P-256 key (ECDSAP256SHA256, RFC 6605) and
// returns r||s, 32 bytes each. The nonce is derived from the key and the
// hash (RFC 6979, crypto/ecdsa with no random source): the hedged nonce of
// crypto/ecdsa with a random source costs an HMAC-DRBG over SHA-512 more
// per signature, about a sixth of the time of signing a whole zone, where
// RFC 6979's runs over SHA-256 (in hardware on most CPUs). The same
// RRset signed with the same key, inception and expiration gets the same
// signature, which the zone does not mind: every PoP serves what the
// control plane signed once.
func signECDSA(priv *ecdsa.PrivateKey, data []byte) ([]byte, error) {
	d := sha256.Sum256(data)
	der, err := priv.Sign(nil, d[:], crypto.SHA256)
	if err != nil {
		return nil, err
	}
	return rawSignature(der, (priv.Curve.Params().BitSize+7)/8)
}

// rawSignature turns an ASN.1 ECDSA-Sig-Value (SEQUENCE of the INTEGERs r
// and s, DER, as crypto/ecdsa gives it) into r||s, each left-padded to
// size bytes (RFC 6605 §4).
func rawSignature(der []byte, size int) ([]byte, error) {
	if len(der) < 2 || der[0] != 0x30 || der[1] >= 0x80 || int(der[1]) != len(der)-2 {
		return nil, errors.New("ecdsa signature: not a short DER SEQUENCE")
	}
	out := make([]byte, 2*size)
	rest := der[2:]
	for i := range 2 {
		if len(rest) < 2 || rest[0] != 0x02 || rest[1] >= 0x80 || int(rest[1]) > len(rest)-2 {
			return nil, fmt.Errorf("ecdsa signature: bad INTEGER %d", i+1)
		}
		v := rest[2 : 2+rest[1]]
		rest = rest[2+rest[1]:]
		for len(v) > 0 && v[0] == 0 {
			v = v[1:]
		}
		if len(v) > size {
			return nil, fmt.Errorf("ecdsa signature: INTEGER %d has %d bytes, more than %d", i+1, len(v), size)
		}
		copy(out[(i+1)*size-len(v):(i+1)*size], v)
	}
	if len(rest) != 0 {
		return nil, errors.New("ecdsa signature: bytes after s")
	}
	return out, nil
}
