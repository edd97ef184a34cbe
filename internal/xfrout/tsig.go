package xfrout

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // hmac-sha1 is still a TSIG algorithm (RFC 8945)
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/zone"
)

// tsigKey is a validated TSIG key.
type tsigKey struct {
	name   string // canonical
	alg    string // miekg/dns constant, e.g. dns.HmacSHA256
	secret []byte
}

func (k *tsigKey) hash() func() hash.Hash {
	switch k.alg {
	case dns.HmacSHA1:
		return sha1.New
	case dns.HmacSHA224:
		return sha256.New224
	case dns.HmacSHA256:
		return sha256.New
	case dns.HmacSHA384:
		return sha512.New384
	case dns.HmacSHA512:
		return sha512.New
	}
	return nil
}

// keyring holds the TSIG keys by canonical name. It implements
// dns.TsigProvider and, unlike miekg/dns's map of secrets, insists that a
// message uses the algorithm configured for its key.
type keyring map[string]*tsigKey

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
	m := hmac.New(key.hash(), key.secret)
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

// verify checks the TSIG of a request (msg is not modified).
func (k keyring) verify(msg []byte) error {
	return dns.TsigVerifyWithProvider(bytes.Clone(msg), k, "", false)
}

// tsigRcode maps a verification error to the TSIG error to report
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

// signer signs the messages of one response, a stream of several for a
// transfer (RFC 8945 §5.3.1: every message is signed, the first with the
// request's MAC and the full TSIG variables, the next ones with the
// previous MAC and the timers only).
//
// A signer with a nil key writes the unsigned TSIG record of a BADKEY or
// BADSIG answer (§5.3.2), named after the request's key and algorithm.
type signer struct {
	key     *tsigKey
	keyWire []byte // owner of the TSIG record
	algWire []byte
	prior   []byte // the request's MAC, then the previous message's
	err     uint16 // TSIG error of the answer
	n       int    // messages signed
	mac     hash.Hash
	now     func() time.Time
}

func newSigner(key *tsigKey, keyName, alg string, requestMAC []byte, tsigErr uint16, now func() time.Time) (*signer, error) {
	kw, err := zone.NameWire(keyName)
	if err != nil {
		return nil, err
	}
	aw, err := zone.NameWire(alg)
	if err != nil {
		return nil, err
	}
	s := &signer{key: key, keyWire: kw, algWire: aw, prior: requestMAC, err: tsigErr, now: now}
	if key != nil {
		s.mac = hmac.New(key.hash(), key.secret)
	}
	return s, nil
}

// size is the most bytes sign appends.
func (s *signer) size() int {
	macLen := 0
	if s.mac != nil {
		macLen = s.mac.Size()
	}
	// owner, type, class, ttl, rdlength; algorithm, time, fudge, MAC
	// size, MAC, original id, error, other length, other data (BADTIME).
	return len(s.keyWire) + 10 + len(s.algWire) + 6 + 2 + 2 + macLen + 2 + 2 + 2 + 6
}

// sign appends a TSIG record to msg, a complete message whose ID is the
// original ID, and returns it. msg must have room for size() more bytes to
// avoid a copy.
func (s *signer) sign(msg []byte) []byte {
	now := uint64(s.now().Unix())
	var other []byte
	if s.err == dns.RcodeBadTime {
		other = binary.BigEndian.AppendUint64(nil, now)[2:]
	}
	var mac []byte
	if s.mac != nil && s.err != dns.RcodeBadKey && s.err != dns.RcodeBadSig {
		h := s.mac
		h.Reset()
		var b [2]byte
		binary.BigEndian.PutUint16(b[:], uint16(len(s.prior)))
		h.Write(b[:])
		h.Write(s.prior)
		h.Write(msg)
		var v [10]byte
		putUint48(v[:], now)
		binary.BigEndian.PutUint16(v[6:], fudge)
		if s.n == 0 {
			// Key name, class ANY, TTL 0, algorithm, time signed,
			// fudge, error, other data (RFC 8945 §4.3.3).
			h.Write(s.keyWire)
			h.Write([]byte{0, 255, 0, 0, 0, 0}) // class ANY, TTL 0
			h.Write(s.algWire)
			h.Write(v[:8])
			binary.BigEndian.PutUint16(b[:], s.err)
			h.Write(b[:])
			binary.BigEndian.PutUint16(b[:], uint16(len(other)))
			h.Write(b[:])
			h.Write(other)
		} else {
			h.Write(v[:8]) // timers only
		}
		mac = h.Sum(nil)
		s.prior = mac
	}
	s.n++
	id := binary.BigEndian.Uint16(msg)
	msg = append(msg, s.keyWire...)
	msg = binary.BigEndian.AppendUint16(msg, dns.TypeTSIG)
	msg = binary.BigEndian.AppendUint16(msg, dns.ClassANY)
	msg = binary.BigEndian.AppendUint32(msg, 0)
	rdlen := len(s.algWire) + 16 + len(mac) + len(other)
	msg = binary.BigEndian.AppendUint16(msg, uint16(rdlen))
	msg = append(msg, s.algWire...)
	var v [6]byte
	putUint48(v[:], now)
	msg = append(msg, v[:]...)
	msg = binary.BigEndian.AppendUint16(msg, fudge)
	msg = binary.BigEndian.AppendUint16(msg, uint16(len(mac)))
	msg = append(msg, mac...)
	msg = binary.BigEndian.AppendUint16(msg, id)
	msg = binary.BigEndian.AppendUint16(msg, s.err)
	msg = binary.BigEndian.AppendUint16(msg, uint16(len(other)))
	msg = append(msg, other...)
	binary.BigEndian.PutUint16(msg[10:], binary.BigEndian.Uint16(msg[10:])+1) // ARCOUNT
	return msg
}

func putUint48(b []byte, v uint64) {
	binary.BigEndian.PutUint16(b, uint16(v>>32))
	binary.BigEndian.PutUint32(b[2:], uint32(v))
}
