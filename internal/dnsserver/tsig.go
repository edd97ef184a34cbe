package dnsserver

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"time"

	"github.com/miekg/dns"
)

// Signed queries (RFC 8945) leave the fast path: the TSIG record is only
// located while the additional section is parsed, and everything else —
// verification with miekg/dns's primitives against the node's keyring,
// signing the answer — happens here, for the queries that carry one.

// tsigKeys wraps the keyring so that it can sit in an atomic.Pointer.
type tsigKeys struct{ p dns.TsigProvider }

// tsigFudge is the fudge we sign answers with (RFC 8945 §10).
const tsigFudge = 300

// tsigAnswer is what the answer to a signed query needs: the request's
// key, algorithm, MAC and time, and the TSIG error to report.
type tsigAnswer struct {
	keys    dns.TsigProvider // nil when the node has no keys
	name    string           // the key name, canonical
	alg     string           // the algorithm name, canonical
	nameW   []byte           // both in wire form, as signed (RFC 8945 §4.3.3)
	algW    []byte
	reqMAC  []byte
	reqTime uint64
	fudge   uint16
	err     uint16 // 0, BADKEY, BADSIG or BADTIME
	macLen  int    // of the answer's MAC; 0 when it is not signed
}

// valid reports whether the query was signed with a key we hold and
// verified: its answer is signed.
func (s *tsigAnswer) valid() bool { return s != nil && s.err == 0 }

// checkTSIG verifies the TSIG record of p at r.tsigAt and sets w.sig. It
// returns false when the record cannot be read (a format error).
func (w *Worker) checkTSIG(p []byte, r *request) bool {
	rr, _, err := dns.UnpackRR(p, r.tsigAt)
	t, ok := rr.(*dns.TSIG)
	if err != nil || !ok {
		return false
	}
	mac, err := hex.DecodeString(t.MAC)
	if err != nil {
		return false
	}
	s := &tsigAnswer{
		name: dns.CanonicalName(t.Hdr.Name), alg: dns.CanonicalName(t.Algorithm),
		reqMAC: mac, reqTime: t.TimeSigned, fudge: t.Fudge,
	}
	if s.nameW, err = packName(s.name); err != nil {
		return false
	}
	if s.algW, err = packName(s.alg); err != nil {
		return false
	}
	var verr error
	if k := w.h.tsig.Load(); k != nil {
		s.keys = k.p
		// TsigVerifyWithProvider rewrites the ID and ARCOUNT of what it
		// is given.
		verr = dns.TsigVerifyWithProvider(bytes.Clone(p), k.p, "", false)
	} else {
		verr = dns.ErrSecret
	}
	switch {
	case verr == nil:
	case errors.Is(verr, dns.ErrSecret), errors.Is(verr, dns.ErrKeyAlg):
		s.err = dns.RcodeBadKey
	case errors.Is(verr, dns.ErrTime):
		s.err = dns.RcodeBadTime
	case errors.Is(verr, dns.ErrSig):
		s.err = dns.RcodeBadSig
	default:
		return false // the message itself did not parse
	}
	if s.err == 0 || s.err == dns.RcodeBadTime {
		s.macLen = macSize(s.alg)
	}
	w.sig = s
	return true
}

// macSize is the MAC length of a TSIG algorithm we know.
func macSize(alg string) int {
	switch alg {
	case dns.HmacSHA1:
		return 20
	case dns.HmacSHA224:
		return 28
	case dns.HmacSHA256:
		return 32
	case dns.HmacSHA384:
		return 48
	case dns.HmacSHA512:
		return 64
	}
	return 0
}

func packName(name string) ([]byte, error) {
	b := make([]byte, 256)
	n, err := dns.PackDomainName(name, b, 0, nil, false)
	if err != nil {
		return nil, err
	}
	return b[:n], nil
}

// size is the most bytes sign appends.
func (s *tsigAnswer) size() int {
	// owner, type, class, TTL, rdlength; algorithm, time, fudge, MAC
	// size, MAC, original ID, error, other length, other data (BADTIME).
	return len(s.nameW) + 10 + len(s.algW) + 6 + 2 + 2 + s.macLen + 2 + 2 + 2 + 6
}

// sign appends the TSIG record to the answer msg (RFC 8945 §5.3): signed
// with the request's key over the request MAC, the answer and the TSIG
// variables; for BADKEY and BADSIG unsigned (§5.3.2), with the request's
// time and fudge; for BADTIME signed, with the request's time and fudge
// and our time in Other Data (§5.2.3). The original ID is the answer's.
func (w *Worker) sign(msg []byte) []byte {
	s := w.sig
	now := uint64(time.Now().Unix())
	signed, fudge := now, uint16(tsigFudge)
	var other []byte
	switch s.err {
	case dns.RcodeBadKey, dns.RcodeBadSig:
		signed, fudge = s.reqTime, s.fudge
	case dns.RcodeBadTime:
		signed, fudge = s.reqTime, s.fudge
		other = putUint48(nil, now)
	}
	var mac []byte
	if s.macLen > 0 && s.keys != nil {
		buf := make([]byte, 0, 2+len(s.reqMAC)+len(msg)+len(s.nameW)+len(s.algW)+32)
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(s.reqMAC)))
		buf = append(buf, s.reqMAC...)
		buf = append(buf, msg...)
		buf = append(buf, s.nameW...)
		buf = binary.BigEndian.AppendUint16(buf, dns.ClassANY)
		buf = binary.BigEndian.AppendUint32(buf, 0) // TTL
		buf = append(buf, s.algW...)
		buf = putUint48(buf, signed)
		buf = binary.BigEndian.AppendUint16(buf, fudge)
		buf = binary.BigEndian.AppendUint16(buf, s.err)
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(other)))
		buf = append(buf, other...)
		t := &dns.TSIG{Hdr: dns.RR_Header{Name: s.name}, Algorithm: s.alg}
		m, err := s.keys.Generate(buf, t)
		if err == nil && len(m) == s.macLen {
			mac = m
		}
		// Otherwise the key went away since the query was verified (a
		// reload): the answer goes out with an empty MAC, which the
		// client rejects, rather than with a wrong one.
	}
	id := binary.BigEndian.Uint16(msg)
	msg = append(msg, s.nameW...)
	msg = binary.BigEndian.AppendUint16(msg, dns.TypeTSIG)
	msg = binary.BigEndian.AppendUint16(msg, dns.ClassANY)
	msg = binary.BigEndian.AppendUint32(msg, 0)
	msg = binary.BigEndian.AppendUint16(msg, uint16(len(s.algW)+16+len(mac)+len(other)))
	msg = append(msg, s.algW...)
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
