package dnsserver

import (
	"errors"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/tsig"
)

// Signed queries (RFC 8945) leave the fast path: the TSIG record is only
// located while the additional section is parsed, and everything else —
// verification against the node's keyring, signing the answer with
// tsig.Signer — happens here, for the queries that carry one.

// checkTSIG verifies the TSIG record of p at r.tsigAt against ring and sets
// w.sig to the signer of the answer. It returns false when the record
// cannot be read (a format error).
func (w *Worker) checkTSIG(p []byte, r *request, ring *tsig.Keyring) bool {
	rr, _, err := dns.UnpackRR(p, r.tsigAt)
	t, ok := rr.(*dns.TSIG)
	if err != nil || !ok {
		return false
	}
	req, err := tsig.RequestOf(t)
	if err != nil {
		return false
	}
	var code uint16
	switch verr := ring.Check(p, "", false); {
	case verr == nil:
	case errors.Is(verr, dns.ErrSecret), errors.Is(verr, dns.ErrKeyAlg),
		errors.Is(verr, dns.ErrTime), errors.Is(verr, dns.ErrSig):
		code = tsig.Rcode(verr)
	default:
		return false // the message itself did not parse
	}
	s, err := ring.Signer(req, code, nil)
	if err != nil {
		return false // a key or algorithm name that does not pack
	}
	w.sig = s
	return true
}

// signedOK reports whether the query was signed with a key we hold and
// verified: its answer is signed, and it is not rate limited.
func (w *Worker) signedOK() bool { return w.sig != nil && w.sig.Err() == 0 }
