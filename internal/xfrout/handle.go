package xfrout

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/steer"
	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/tsig"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// Results of requests, the "result" label of the metrics.
const (
	resultOK       = "ok"       // SOA answered, AXFR sent
	resultIXFR     = "ixfr"     // IXFR answered with differences
	resultUpToDate = "uptodate" // IXFR: the client is current, one SOA
	resultFull     = "full"     // IXFR answered AXFR-style (serial not in the journal)
	resultUDP      = "udp"      // IXFR over UDP: the current SOA only (too large, or no differences)
	resultIXFRUDP  = "ixfr_udp" // IXFR over UDP: the differences in one message
	resultRefused  = "refused"  // ACL
	resultNotAuth  = "notauth"  // TSIG failed or zone unknown
	resultFormErr  = "formerr"
	resultNotImp   = "notimp"
	resultFailed   = "failed" // source error or connection lost mid-stream
)

// request is a parsed request that passed the header checks.
type request struct {
	src   netip.AddrPort
	tcp   bool
	msg   dns.Msg
	qname string       // canonical
	qwire []byte       // as sent
	tsig  tsig.Request // of a signed request that verified
	key   string       // its key's canonical name; "" = unsigned
	send  func([]byte) error
	ring  *tsig.Keyring // the keys in force when the request arrived
	node  bool          // signed with a node key: the pools are sent
}

// handle answers one request; send writes one message (frame[2:], with its
// length in frame[:2]). It returns false when the connection should be
// closed (a write failed).
func (s *Server) handle(ctx context.Context, raw []byte, src netip.AddrPort, tcp bool, send func([]byte) error) bool {
	if len(raw) < 12 || raw[2]&0x80 != 0 {
		return true // too short to answer, or a response: drop
	}
	r := &request{src: src, tcp: tcp, send: send}
	if err := r.msg.Unpack(raw); err != nil {
		return s.headerOnly(raw, dns.RcodeFormatError, resultFormErr, send)
	}
	q := &r.msg
	pol := s.pol.Load()
	if q.Opcode != dns.OpcodeQuery && (q.Opcode != dns.OpcodeUpdate || pol.update == nil) {
		return s.headerOnly(raw, dns.RcodeNotImplemented, resultNotImp, send)
	}
	if len(q.Question) != 1 {
		return s.headerOnly(raw, dns.RcodeFormatError, resultFormErr, send)
	}
	qt := q.Question[0].Qtype
	typ := typeLabel(qt)
	if q.Opcode == dns.OpcodeUpdate {
		typ = "update"
	}
	var err error
	if r.qwire, err = nameWireAsIs(q.Question[0].Name); err != nil {
		return s.headerOnly(raw, dns.RcodeFormatError, resultFormErr, send)
	}
	r.qname = dns.CanonicalName(q.Question[0].Name)
	for i, rr := range q.Extra {
		if rr.Header().Rrtype == dns.TypeTSIG && i != len(q.Extra)-1 {
			s.met.result(typ, resultFormErr)
			return s.reply(r, dns.RcodeFormatError) == nil
		}
	}

	r.ring = pol.ring
	if t := q.IsTsig(); t != nil {
		req, err := tsig.RequestOf(t)
		if err == nil {
			err = pol.ring.Check(raw, "", false)
		}
		if err != nil {
			s.met.result(typ, resultNotAuth)
			s.log.Debug("request with a bad tsig", "src", src, "zone", r.qname, "qtype", typ, "key", t.Hdr.Name, "err", err)
			return s.tsigError(r, req, tsig.Rcode(err)) == nil
		}
		r.tsig, r.key = req, dns.CanonicalName(t.Hdr.Name)
	}
	if q.Opcode == dns.OpcodeUpdate {
		return s.update(ctx, r, pol) == nil
	}
	r.node = pol.node(r.key)
	keyName := r.key
	// UPDATE clients (nsupdate, certbot) look up the zone's SOA with
	// their key first: a signed SOA query from a source that may send
	// UPDATE is answered too.
	if !pol.allowed(src.Addr(), keyName, overTLS(ctx)) && (qt != dns.TypeSOA || keyName == "" || !pol.mayUpdate(src.Addr())) {
		s.met.result(typ, resultRefused)
		s.log.Debug("request refused", "src", src, "zone", r.qname, "qtype", typ, "key", keyName)
		return s.reply(r, dns.RcodeRefused) == nil
	}
	if q.Question[0].Qclass != dns.ClassINET {
		s.met.result(typ, resultRefused)
		return s.reply(r, dns.RcodeRefused) == nil
	}

	switch qt {
	case dns.TypeSOA:
		return s.answerSOA(ctx, r) == nil
	case dns.TypeAXFR, dns.TypeIXFR:
		if qt == dns.TypeAXFR && !tcp {
			s.met.result(typ, resultFormErr)
			return s.reply(r, dns.RcodeFormatError) == nil // RFC 5936 §4.2: TCP only
		}
		return s.transfer(ctx, r) == nil
	}
	s.met.result(typ, resultRefused)
	return s.reply(r, dns.RcodeRefused) == nil
}

// typeLabel is the "type" label of a query type.
func typeLabel(t uint16) string {
	switch t {
	case dns.TypeSOA:
		return "soa"
	case dns.TypeAXFR:
		return "axfr"
	case dns.TypeIXFR:
		return "ixfr"
	}
	return "other"
}

// allowed applies the transfer ACL of p to a source, the key the request
// was signed with ("" = unsigned) and whether it came over TLS.
func (p *policy) allowed(addr netip.Addr, keyName string, tls bool) bool {
	addr = addr.Unmap()
	for _, a := range p.allow {
		if a.Prefix.Contains(addr) && (a.Key == "" || dns.CanonicalName(a.Key) == keyName) && (tls || !a.TLS) {
			return true
		}
	}
	return false
}

// newStream returns a stream answering r with rcode, signed when r was.
func (s *Server) newStream(r *request, rcode int, aa bool) (*stream, error) {
	q := &r.msg
	flags := uint16(flagQR) | uint16(q.Opcode&0xf)<<11 | uint16(rcode&0xf)
	if aa {
		flags |= flagAA
	}
	if q.RecursionDesired {
		flags |= flagRD
	}
	st := &stream{
		limit: s.cfg.MessageSize, udp: !r.tcp, id: q.Id, flags: flags,
		qname: r.qwire, qtype: q.Question[0].Qtype, opt: q.IsEdns0() != nil, send: r.send,
	}
	if st.udp {
		st.limit = dns.MinMsgSize
		if o := q.IsEdns0(); o != nil {
			st.limit = max(dns.MinMsgSize, min(int(o.UDPSize()), 1232))
		}
	}
	if r.key != "" {
		sig, err := r.ring.Signer(r.tsig, 0, time.Now)
		if err != nil {
			return nil, err
		}
		st.sig = sig
	}
	return st, nil
}

// reply sends a message without records: an error, or an empty answer.
func (s *Server) reply(r *request, rcode int) error {
	st, err := s.newStream(r, rcode, false)
	if err != nil {
		return err
	}
	return st.flush()
}

// tsigError answers a request whose TSIG did not verify (RFC 8945 §5.2):
// NOTAUTH, with the TSIG error in an unsigned TSIG record, or a signed one
// for BADTIME.
func (s *Server) tsigError(r *request, req tsig.Request, tsigErr uint16) error {
	st, err := s.newStream(r, dns.RcodeNotAuth, false)
	if err != nil {
		return err
	}
	sig, err := r.ring.Signer(req, tsigErr, time.Now)
	if err != nil {
		return s.reply(r, dns.RcodeNotAuth)
	}
	st.sig = sig
	return st.flush()
}

// headerOnly answers a request that cannot be parsed with its header and
// rcode alone.
func (s *Server) headerOnly(raw []byte, rcode int, result string, send func([]byte) error) bool {
	s.met.result("other", result)
	var frame [14]byte
	binary.BigEndian.PutUint16(frame[:], 12)
	copy(frame[2:], raw[:4])
	frame[4] = raw[2]&0x79 | 0x80 // QR, the opcode and RD
	frame[5] = byte(rcode & 0xf)
	return send(frame[:]) == nil
}

// answerSOA answers an SOA query.
func (s *Server) answerSOA(ctx context.Context, r *request) error {
	z, err := s.currentZone(ctx, r.qname)
	if err != nil {
		return s.zoneError(r, "soa", err)
	}
	st, err := s.newStream(r, dns.RcodeSuccess, true)
	if err != nil {
		return err
	}
	if err := st.soa(z); err != nil {
		return err
	}
	s.met.result("soa", resultOK)
	return st.flush()
}

// zoneError answers a request for a zone that could not be read: REFUSED
// for an SOA query of a zone we do not have (as authoritative servers do),
// NOTAUTH for a transfer of one (RFC 5936 §2.2.1), SERVFAIL when the source
// failed.
func (s *Server) zoneError(r *request, typ string, err error) error {
	if !errors.Is(err, store.ErrNotFound) {
		s.met.result(typ, resultFailed)
		s.log.Error("reading zone", "zone", r.qname, "err", err)
		return s.reply(r, dns.RcodeServerFailure)
	}
	if typ == "soa" {
		s.met.result(typ, resultRefused)
		return s.reply(r, dns.RcodeRefused)
	}
	s.met.result(typ, resultNotAuth)
	return s.reply(r, dns.RcodeNotAuth)
}

// transfer answers AXFR and IXFR.
func (s *Server) transfer(ctx context.Context, r *request) error {
	q := &r.msg
	ixfr := q.Question[0].Qtype == dns.TypeIXFR
	typ := typeLabel(q.Question[0].Qtype)
	var client uint32
	if ixfr {
		// RFC 1995 §3: the authority section holds the client's SOA.
		var soa *dns.SOA
		if len(q.Ns) == 1 {
			soa, _ = q.Ns[0].(*dns.SOA)
		}
		if soa == nil || dns.CanonicalName(soa.Hdr.Name) != r.qname {
			s.met.result(typ, resultFormErr)
			return s.reply(r, dns.RcodeFormatError)
		}
		client = soa.Serial
	}
	z, err := s.currentZone(ctx, r.qname)
	if err != nil {
		return s.zoneError(r, typ, err)
	}
	st, err := s.newStream(r, dns.RcodeSuccess, true)
	if err != nil {
		return err
	}
	// In a zone the control plane signs, the pools and their answers'
	// signatures are signed data in the NSEC/NSEC3 bitmaps (issue #16):
	// every peer gets them, or its copy would not verify.
	st.noPools = !r.node && !z.Signed
	log := s.log.With("zone", r.qname, "type", typ, "src", r.src)
	if r.key != "" {
		log = log.With("key", r.key)
	}
	var result string
	switch {
	case ixfr && !zone.SerialLess(client, z.Serial):
		// RFC 1995 §2: up to date (or newer): the current SOA alone.
		result = resultUpToDate
		err = s.single(st, z)
	case ixfr && !r.tcp:
		result, err = s.udpIXFR(ctx, st, z, client, log)
	default:
		select {
		case s.xfrs <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		start := time.Now()
		result, err = s.stream(ctx, st, z, ixfr, client, log)
		<-s.xfrs
		if err == nil {
			log.Info("transfer sent", "result", result, "from_serial", client, "serial", z.Serial,
				"messages", st.msgs, "records", st.records, "bytes", st.bytes, "duration", time.Since(start))
		}
	}
	if err != nil {
		s.met.result(typ, resultFailed)
		log.Warn("transfer failed", "err", err, "messages_sent", st.msgs)
		if st.msgs == 0 && !errors.Is(err, errSend) {
			// Nothing sent yet: the client can be told.
			return s.reply(r, dns.RcodeServerFailure)
		}
		return err // the stream is cut: close the connection
	}
	s.met.bytes.WithLabelValues(typ).Add(float64(st.bytes))
	s.met.result(typ, result)
	return nil
}

// udpIXFR answers an IXFR over UDP (RFC 1995 §2): with the differences
// when they fit in one message, else with the current SOA alone, which
// tells the client to ask again over TCP. A change that fits spares the
// secondary the TCP handshake: a NOTIFY is then followed by one round trip.
func (s *Server) udpIXFR(ctx context.Context, st *stream, z *zone.Zone, client uint32, log *slog.Logger) (string, error) {
	changes, err := s.changes(ctx, z.Origin, client)
	if err == nil && len(changes) > 0 && changes[len(changes)-1].To == z.Serial && checkChain(changes, client) == nil {
		if err := s.writeChanges(st, changes); err != nil {
			return "", err
		}
		if st.b.Flags()&flagTC == 0 {
			return resultIXFRUDP, st.flush()
		}
		st.open = false // too large: drop it, send the SOA instead
	} else if err != nil && !errors.Is(err, store.ErrNoJournal) {
		log.Debug("no differences for an IXFR over UDP", "from_serial", client, "err", err)
	}
	return resultUDP, s.single(st, z)
}

// single sends the SOA of z alone.
func (s *Server) single(st *stream, z *zone.Zone) error {
	if err := st.soa(z); err != nil {
		return err
	}
	return st.flush()
}

// stream sends an AXFR, or an IXFR from serial client: the differences
// from the change log (RFC 1995 §4), or the whole zone AXFR-style when the
// log does not reach back to client.
func (s *Server) stream(ctx context.Context, st *stream, z *zone.Zone, ixfr bool, client uint32, log *slog.Logger) (string, error) {
	if ixfr {
		changes, err := s.changes(ctx, z.Origin, client)
		switch {
		case err == nil && len(changes) > 0:
			if err := checkChain(changes, client); err != nil {
				log.Error("change log unusable, sending the whole zone", "err", err)
				break
			}
			return resultIXFR, s.sendChanges(st, changes)
		case err == nil:
			// The source is at the client's serial, z at another
			// (the zone was re-created meanwhile): send z whole.
			log.Debug("zone changed during the request")
		case errors.Is(err, store.ErrNoJournal):
			log.Debug("serial not in the change log, sending the whole zone", "from_serial", client)
		default:
			return "", fmt.Errorf("changes of %s from %d: %w", z.Origin, client, err)
		}
	}
	if err := st.zone(z); err != nil {
		return "", err
	}
	if err := st.soa(z); err != nil {
		return "", err
	}
	if err := st.flush(); err != nil {
		return "", err
	}
	if ixfr {
		return resultFull, nil
	}
	return resultOK, nil
}

// checkChain checks that changes lead from serial from to the last one's To,
// each Del and Add list starting with the SOA of its serial.
func checkChain(changes []store.Change, from uint32) error {
	next := from
	for _, c := range changes {
		if c.From != next {
			return fmt.Errorf("change %d→%d does not start at %d", c.From, c.To, next)
		}
		for _, side := range []struct {
			rrs    []dns.RR
			serial uint32
		}{{c.Del, c.From}, {c.Add, c.To}} {
			if len(side.rrs) == 0 {
				return fmt.Errorf("change %d→%d: no SOA", c.From, c.To)
			}
			soa, ok := side.rrs[0].(*dns.SOA)
			if !ok || soa.Serial != side.serial {
				return fmt.Errorf("change %d→%d: the lists do not start with the SOA of serial %d", c.From, c.To, side.serial)
			}
		}
		next = c.To
	}
	return nil
}

// sendChanges writes the IXFR sequence: the newest SOA, each change's
// deletions and additions (each starting with its SOA), the newest SOA.
func (s *Server) sendChanges(st *stream, changes []store.Change) error {
	if err := s.writeChanges(st, changes); err != nil {
		return err
	}
	return st.flush()
}

// writeChanges writes the IXFR sequence into st without completing its
// last message.
func (s *Server) writeChanges(st *stream, changes []store.Change) error {
	newest := changes[len(changes)-1].Add[0]
	if err := st.rrValue(newest); err != nil {
		return err
	}
	for _, c := range changes {
		for _, rrs := range [][]dns.RR{c.Del, c.Add} {
			for _, rr := range rrs {
				if st.noPools && rr.Header().Rrtype == steer.TypePool {
					continue
				}
				if err := st.rrValue(rr); err != nil {
					return err
				}
			}
		}
	}
	return st.rrValue(newest)
}

// nameWireAsIs packs a presentation name to uncompressed wire form keeping
// its case.
func nameWireAsIs(name string) ([]byte, error) {
	buf := make([]byte, 256)
	n, err := dns.PackDomainName(dns.Fqdn(name), buf, 0, nil, false)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}
