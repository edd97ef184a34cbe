package tsig

import (
	"crypto/hmac"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"time"

	"github.com/miekg/dns"
)

// Request is what the TSIG record of an answer takes from the request's.
type Request struct {
	Key       string // the key name, as the request has it
	Algorithm string
	MAC       []byte
	Time      uint64 // time signed
	Fudge     uint16
}

// RequestOf returns the Request of a request's TSIG record.
func RequestOf(t *dns.TSIG) (Request, error) {
	mac, err := hex.DecodeString(t.MAC)
	if err != nil {
		return Request{}, fmt.Errorf("tsig: MAC: %w", err)
	}
	return Request{Key: t.Hdr.Name, Algorithm: t.Algorithm, MAC: mac, Time: t.TimeSigned, Fudge: t.Fudge}, nil
}

// Signer appends the TSIG record to each message of one answer (RFC 8945
// §5.3): a single message, or a transfer's stream, where the first is
// signed over the request's MAC and the full TSIG variables and each next
// one over the previous MAC and the timers only (§5.3.1).
//
// The answer to a request that did not verify carries the TSIG error:
// BADKEY and BADSIG unsigned, with the request's time and fudge (§5.3.2);
// BADTIME signed, with the request's time and fudge and our time in Other
// Data (§5.2.3).
type Signer struct {
	keyWire, algWire []byte // owner and algorithm, canonical, in wire form
	mac              hash.Hash
	prior            []byte // the request's MAC, then the previous message's
	err              uint16
	reqTime          uint64
	reqFudge         uint16
	n                int // messages signed
	now              func() time.Time
}

// Signer returns the signer of the answer to req with TSIG error tsigErr
// (0, dns.RcodeBadKey, dns.RcodeBadSig or dns.RcodeBadTime). now is the
// clock (nil: time.Now). For tsigErr 0 the ring must hold req's key with
// req's algorithm.
func (r *Keyring) Signer(req Request, tsigErr uint16, now func() time.Time) (*Signer, error) {
	if now == nil {
		now = time.Now
	}
	kw, err := nameWire(req.Key)
	if err != nil {
		return nil, fmt.Errorf("tsig: key name: %w", err)
	}
	aw, err := nameWire(req.Algorithm)
	if err != nil {
		return nil, fmt.Errorf("tsig: algorithm: %w", err)
	}
	s := &Signer{keyWire: kw, algWire: aw, prior: req.MAC, err: tsigErr, reqTime: req.Time, reqFudge: req.Fudge, now: now}
	if tsigErr == 0 || tsigErr == dns.RcodeBadTime {
		e, err := r.lookup(&dns.TSIG{Hdr: dns.RR_Header{Name: req.Key}, Algorithm: req.Algorithm})
		switch {
		case err == nil:
			s.mac = hmac.New(e.hash(), e.secret)
		case tsigErr == 0:
			return nil, fmt.Errorf("tsig: key %s: %w", req.Key, err)
		}
	}
	return s, nil
}

// Err is the TSIG error of the answer.
func (s *Signer) Err() uint16 { return s.err }

// Size is the most bytes Sign appends to a message.
func (s *Signer) Size() int {
	macLen := 0
	if s.mac != nil {
		macLen = s.mac.Size()
	}
	// owner, type, class, TTL, rdlength; algorithm, time, fudge, MAC
	// size, MAC, original ID, error, other length, other data (BADTIME).
	return len(s.keyWire) + 10 + len(s.algWire) + 6 + 2 + 2 + macLen + 2 + 2 + 2 + 6
}

// Sign appends the TSIG record to msg, a complete message whose ID is the
// original ID, and returns it. msg needs room for Size() more bytes to be
// extended in place.
func (s *Signer) Sign(msg []byte) []byte {
	now := uint64(s.now().Unix())
	signed, fudge := now, uint16(Fudge)
	var other []byte
	switch s.err {
	case dns.RcodeBadKey, dns.RcodeBadSig:
		signed, fudge = s.reqTime, s.reqFudge
	case dns.RcodeBadTime:
		signed, fudge = s.reqTime, s.reqFudge
		other = putUint48(nil, now)
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
		timers := putUint48(make([]byte, 0, 8), signed)
		timers = binary.BigEndian.AppendUint16(timers, fudge)
		if s.n == 0 {
			// Key name, class ANY, TTL 0, algorithm, time signed,
			// fudge, error, other data (RFC 8945 §4.3.3).
			h.Write(s.keyWire)
			h.Write([]byte{0, dns.ClassANY, 0, 0, 0, 0})
			h.Write(s.algWire)
			h.Write(timers)
			binary.BigEndian.PutUint16(b[:], s.err)
			h.Write(b[:])
			binary.BigEndian.PutUint16(b[:], uint16(len(other)))
			h.Write(b[:])
			h.Write(other)
		} else {
			h.Write(timers) // timers only
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
	msg = binary.BigEndian.AppendUint16(msg, uint16(len(s.algWire)+16+len(mac)+len(other)))
	msg = append(msg, s.algWire...)
	msg = putUint48(msg, signed)
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

// putUint48 appends the low 48 bits of v.
func putUint48(b []byte, v uint64) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(v>>32))
	return binary.BigEndian.AppendUint32(b, uint32(v))
}

// nameWire is the canonical (lower-case) uncompressed wire form of a name.
func nameWire(name string) ([]byte, error) {
	b := make([]byte, 256)
	n, err := dns.PackDomainName(dns.CanonicalName(name), b, 0, nil, false)
	if err != nil {
		return nil, err
	}
	return b[:n], nil
}
