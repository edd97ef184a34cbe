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

// checkTSIG verifies the TSIG record of p at q.tsigAt against the keyring
// of q's snapshot and sets q.sig to the signer of the answer. It returns
// false when the record cannot be read (a format error).
func (q *query) checkTSIG(p []byte) bool {
	ring := q.rt.settings.TSIG
	rr, _, err := dns.UnpackRR(p, q.tsigAt)
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
	q.sig = s
	return true
}
