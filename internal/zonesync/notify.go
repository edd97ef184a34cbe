package zonesync

import (
	"encoding/binary"
	"net/netip"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/tsig"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// Notify answers a NOTIFY (RFC 1996) received from src and, when it is
// accepted, makes the zone refresh at once (bursts coalesce into one
// refresh). It is the node's DNS server's NOTIFY handler
// (dnsserver.NotifyFunc). It does not block.
//
// A NOTIFY is accepted when its source is in a notify_allow prefix (signed
// with that entry's key, if it has one) or is the address of one of the
// zone's primaries (signed with the primary's key, if it has one). The
// answer is NOERROR with AA set, signed when the request was. Otherwise:
// FORMERR for a malformed request, NOTAUTH with the TSIG error for a TSIG
// that does not verify (RFC 8945 §5.2), NOTAUTH for a zone that is not a
// secondary here, REFUSED for a source or key that is not allowed.
func (m *Manager) Notify(req []byte, src netip.AddrPort) []byte {
	var q dns.Msg
	if err := q.Unpack(req); err != nil {
		m.met.notifies.WithLabelValues("formerr").Inc()
		return headerOnly(req, dns.RcodeFormatError)
	}
	if q.Response {
		return nil
	}
	if q.Opcode != dns.OpcodeNotify || len(q.Question) != 1 ||
		q.Question[0].Qtype != dns.TypeSOA || q.Question[0].Qclass != dns.ClassINET {
		m.met.notifies.WithLabelValues("formerr").Inc()
		return m.reply(&q, dns.RcodeFormatError, "", "")
	}
	// keyName is the canonical name of the key the request was signed
	// with; "" = unsigned.
	var keyName, reqMAC string
	if t := q.IsTsig(); t != nil {
		if err := m.ring.Check(req, "", false); err != nil {
			m.met.notifies.WithLabelValues("notauth").Inc()
			m.log.Debug("notify with bad tsig", "src", src, "zone", q.Question[0].Name, "key", t.Hdr.Name, "err", err)
			return m.tsigError(&q, t, tsig.Rcode(err))
		}
		keyName, reqMAC = dns.CanonicalName(t.Hdr.Name), t.MAC
	}
	name := dns.CanonicalName(q.Question[0].Name)
	m.mu.RLock()
	s := m.zones[name]
	m.mu.RUnlock()
	if s == nil {
		m.met.notifies.WithLabelValues("notauth").Inc()
		// RFC 1996: not authoritative for the zone. The first NOTIFY
		// of a new catalog member usually comes before the catalog
		// that lists it: not an error on either side.
		m.log.Debug("notify for a zone not served here (yet); answered NOTAUTH", "src", src, "zone", name)
		return m.reply(&q, dns.RcodeNotAuth, keyName, reqMAC)
	}
	if !m.notifyAllowed(s, src.Addr().Unmap(), keyName) {
		m.met.notifies.WithLabelValues("refused").Inc()
		m.log.Debug("notify refused", "src", src, "zone", name, "key", keyName)
		return m.reply(&q, dns.RcodeRefused, keyName, reqMAC)
	}
	m.met.notifies.WithLabelValues("accepted").Inc()
	serial := uint32(0)
	for _, rr := range q.Answer {
		if soa, ok := rr.(*dns.SOA); ok {
			serial = soa.Serial
		}
	}
	if cur, expired := s.serving(); serial != 0 && cur != nil && !expired && !zone.SerialLess(cur.Serial, serial) {
		// Already current (as BIND does, "zone is up to date"): a primary
		// that re-sends NOTIFYs for every zone, at its start or after
		// retries, does not make every zone query its serial again.
		m.log.Debug("notify for a serial we have", "src", src, "zone", name, "serial", serial, "key", keyName)
		return m.reply(&q, dns.RcodeSuccess, keyName, reqMAC)
	}
	m.log.Debug("notify accepted", "src", src, "zone", name, "serial", serial, "key", keyName)
	if !m.deferNotify(s, serial) {
		s.kick()
	}
	return m.reply(&q, dns.RcodeSuccess, keyName, reqMAC)
}

// notifyAllowed applies the NOTIFY ACL: the zone's primaries and
// notify_allow, each entry with its key requirement.
func (m *Manager) notifyAllowed(s *secondary, addr netip.Addr, keyName string) bool {
	keyOK := func(want string) bool { return want == "" || dns.CanonicalName(want) == keyName }
	for _, p := range s.primaries {
		if p.Addr.Addr().Unmap() == addr && keyOK(p.Key) {
			return true
		}
	}
	for _, a := range m.cfg.NotifyAllow {
		if a.Prefix.Contains(addr) && keyOK(a.Key) {
			return true
		}
	}
	return false
}

// reply packs the answer to q, signed with the key named keyName when the
// request was.
func (m *Manager) reply(q *dns.Msg, rcode int, keyName, reqMAC string) []byte {
	r := new(dns.Msg)
	r.SetRcode(q, rcode)
	r.Authoritative = rcode == dns.RcodeSuccess
	r.RecursionAvailable = false
	if keyName != "" {
		out, _, err := m.ring.Sign(r, keyName, reqMAC)
		if err == nil {
			return out
		}
		r.Extra = nil
	}
	out, err := r.Pack()
	if err != nil {
		return headerOnly(nil, dns.RcodeServerFailure)
	}
	return out
}

// tsigError answers a request whose TSIG failed: NOTAUTH, with a TSIG
// record that carries the error and no MAC (RFC 8945 §5.2).
func (m *Manager) tsigError(q *dns.Msg, t *dns.TSIG, code uint16) []byte {
	r := new(dns.Msg)
	r.SetRcode(q, dns.RcodeNotAuth)
	r.Extra = []dns.RR{&dns.TSIG{
		Hdr:       dns.RR_Header{Name: t.Hdr.Name, Rrtype: dns.TypeTSIG, Class: dns.ClassANY},
		Algorithm: t.Algorithm, TimeSigned: t.TimeSigned, Fudge: t.Fudge, OrigId: q.Id, Error: code,
	}}
	out, err := r.Pack()
	if err != nil {
		return headerOnly(nil, dns.RcodeServerFailure)
	}
	return out
}

// headerOnly answers an unparsable request with its ID and opcode and no
// sections; nil when not even the header is there.
func headerOnly(req []byte, rcode int) []byte {
	if len(req) < 12 {
		return nil
	}
	out := make([]byte, 12)
	copy(out, req[:2])
	flags := binary.BigEndian.Uint16(req[2:])
	flags = 1<<15 | flags&(0xF<<11) | uint16(rcode&0xF)
	binary.BigEndian.PutUint16(out[2:], flags)
	return out
}
