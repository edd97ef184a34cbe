// Package dnsserver is the node's DNS front end: UDP and TCP listeners, query
// parsing, EDNS(0), NSID and CH identity answers, size limits and truncation,
// with the answer itself delegated to package authority.
//
// The per-query path parses the request in place and builds the response in a
// per-worker buffer; it does not allocate (see BenchmarkHandle).
package dnsserver

import (
	"encoding/binary"
	"net"
	"net/netip"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/authority"
	"github.com/anycastdns/anycastdns/internal/ratelimit"
	"github.com/anycastdns/anycastdns/internal/steer"
	"github.com/anycastdns/anycastdns/internal/tsig"
	"github.com/anycastdns/anycastdns/internal/wire"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// Transport of a query.
type Transport int

// Transports.
const (
	UDP Transport = iota
	TCP
	numTransports
)

func (t Transport) String() string {
	if t == TCP {
		return "tcp"
	}
	return "udp"
}

// Identity is what the node says about itself.
type Identity struct {
	Name         string // NSID payload and id.server./hostname.bind. text
	NSID         bool
	IDServer     bool
	HostnameBind bool
	VersionBind  bool
	Version      string
}

// Header flag bits.
const (
	flagQR = 1 << 15
	flagAA = 1 << 10
	flagTC = 1 << 9
	flagRD = 1 << 8
)

const (
	ednsNSID   = 3
	ednsCookie = 10
	ednsEDE    = 15

	edeNotAuthoritative = 20
	defaultUDP          = 1232
	minUDP              = 512
	optFixedLen         = 11
)

// Worker holds the scratch state of one reader goroutine: buffers, and the
// query being handled, reset by Handle and passed explicitly to what
// answers it; what answering it came to is Handle's Outcome.
type Worker struct {
	h         *Handler
	ans       authority.Answerer
	b         wire.Builder
	out       []byte
	qname     [wire.MaxName + 1]byte
	lower     [wire.MaxName + 1]byte
	cookieBuf [ratelimit.ClientCookieLen + ratelimit.ServerCookieLen]byte
	local     *workerStats
	src       steer.Source  // the client of the query being handled, for steering
	steer     *steer.Engine // the engine w.ans steers with
	udp       *net.UDPConn  // the socket the worker reads; nil for TCP
	// q is the query being handled. It lives here rather than on Handle's
	// stack so that a query resets a few fields instead of zeroing the
	// whole struct (240 bytes, 5% of a query's time in BenchmarkHandle).
	q query
	// tap picks the answered queries that go to the Tap (tap.go).
	tap tapSampler
}

// NewWorker returns per-goroutine state for h with counters of its own.
func (h *Handler) NewWorker() *Worker {
	var ws *workerStats
	if h.stats != nil {
		ws = h.stats.newWorker()
	}
	return h.newWorker(ws)
}

// newWorker returns per-goroutine state counting into ws (may be shared).
func (h *Handler) newWorker(ws *workerStats) *Worker {
	return &Worker{h: h, out: make([]byte, 0, 65535), local: ws}
}

// request is the parsed form of a query.
type request struct {
	id      uint16
	flags   uint16
	qname   []byte // as sent
	lower   []byte
	qtype   uint16
	qclass  uint16
	qend    int // offset just past the question
	edns    bool
	version uint8
	do      bool
	udpSize int
	nsid    bool
	cookie  []byte // COOKIE option data: client cookie, then server cookie if any
	tsigAt  int    // offset of the TSIG record (the last one); 0 = unsigned
	// The first ECS option (RFC 7871), when hasECS; badECS when an ECS
	// option was malformed (FORMERR).
	ecs    ecsOpt
	hasECS bool
	badECS bool
}

// query is one query being handled: the snapshot it is answered from, its
// source, and what answering it found out.
type query struct {
	request
	rt  *Runtime
	src netip.AddrPort
	t   Transport
	// The COOKIE option to answer with (client and server cookie, in the
	// worker's buffer; nil for none), and the signer of the answer to a
	// signed query (nil for an unsigned one, the fast path).
	cookieOut []byte
	sig       *tsig.Signer
	// scope is the ECS SCOPE PREFIX-LENGTH of the answer: the client
	// address bits a steered answer depended on, 0 for any other.
	scope uint8
	// out is the outcome, filled in as the query is answered and returned
	// by Handle (a copy).
	out Outcome
	// drop is why the query was dropped before an answer was built
	// (DropNone when it was not).
	drop DropReason
}

// DropReason is why a packet was dropped early: before any answer was
// built, at the least cost the reason allows.
type DropReason uint8

// The drop reasons; each is counted (Stats.EarlyDrops).
const (
	DropNone     DropReason = iota
	DropShort               // shorter than a DNS header
	DropResponse            // QR=1: a response, never answered (reflection loops)
	DropClass               // a QUERY in a class never served (not IN, CH or ANY)
	DropSource              // the source prefix is over its query rate (Settings.Source)
	NumDropReasons
)

func (r DropReason) String() string {
	return [...]string{"none", "short", "response", "class", "source_limit"}[r]
}

// CookieState is what a query's DNS COOKIE option (RFC 7873) came to.
type CookieState uint8

// Cookie states.
const (
	CookieNone  CookieState = iota // no option, or cookies off
	CookieNew                      // answered with a new Server Cookie
	CookieValid                    // the Server Cookie was ours and fresh: the source is proven
)

// Outcome is what answering a query came to, for the caller: Handle
// returns it instead of leaving it in the worker.
type Outcome struct {
	Rcode int
	// Qtype is the query's type; 0 when the question did not parse,
	// SOA for a NOTIFY handed to the NOTIFY handler.
	Qtype uint16
	// Flags are the header flags (and opcode) of the answer; 0 when it
	// was dropped.
	Flags uint16
	// Zone is the zone that answered; nil for none (refused, an error,
	// identity, NOTIFY).
	Zone   *zone.Zone
	Cookie CookieState
	// TSIG is the TSIG error of a signed query (0: verified, its answer
	// signed); Signed tells whether it was signed at all.
	Signed bool
	TSIG   uint16
	// RRL is the rate limiter's verdict on a UDP answer (ratelimit.Pass
	// when it was not limited or not checked).
	RRL ratelimit.Verdict
	// Drop is why the packet was dropped early, DropNone when it was not.
	Drop DropReason
	// SourceExempt tells that the source was in an exempt prefix of the
	// per-source limit.
	SourceExempt bool
	// Forwarded tells that the message, an UPDATE received over UDP, is
	// being forwarded: its answer is sent when it comes (no answer now).
	Forwarded bool
}

// reset readies q for a new query answered from rt: every field that a
// query does not always set is cleared.
func (q *query) reset(rt *Runtime, src netip.AddrPort, t Transport) {
	q.rt, q.src, q.t = rt, src, t
	r := &q.request
	r.qname, r.edns, r.version, r.do, r.udpSize, r.nsid, r.cookie, r.tsigAt = nil, false, 0, false, 0, false, nil, 0
	r.hasECS, r.badECS = false, false
	q.cookieOut, q.sig, q.out, q.scope, q.drop = nil, nil, Outcome{}, 0, DropNone
}

// signedOK reports whether the query was signed with a key we hold and
// verified: its answer is signed, and it is not rate limited.
func (q *query) signedOK() bool { return q.sig != nil && q.sig.Err() == 0 }

// Handle answers one query from src. It returns the response (valid until
// the next call on this worker), or nil when the packet is to be dropped,
// and what answering it came to. It reads the handler's settings once, so
// the whole answer comes from one snapshot.
func (w *Worker) Handle(req []byte, src netip.AddrPort, t Transport) ([]byte, Outcome) {
	q := &w.q
	q.reset(w.h.rt.Load(), src, t)
	if q.early(req) {
		if w.local != nil {
			w.local.early[q.drop].Add(1)
			w.local.dropped.Add(1)
		}
		q.out.Drop = q.drop
		return nil, q.out
	}
	if q.out.SourceExempt && w.local != nil {
		w.local.exempt.Add(1)
	}
	resp := w.handle(req, q)
	if q.drop != DropNone {
		if w.local != nil {
			w.local.early[q.drop].Add(1)
			w.local.dropped.Add(1)
		}
		q.out.Drop = q.drop
		return nil, q.out
	}
	if q.sig != nil && resp != nil {
		resp = q.sig.Sign(resp)
	}
	out := &q.out // the copy returned is the caller's
	if q.sig != nil {
		out.Signed, out.TSIG = true, q.sig.Err()
	}
	// A valid Server Cookie shows that the source address is not spoofed:
	// such clients are not rate limited (as in Knot and Unbound); nor are
	// queries signed with one of our keys, nor sources in the exempt
	// prefixes of the per-source limit (monitors, known resolvers: Knot's
	// rrl whitelist, BIND's exempt-clients).
	if t == UDP && resp != nil && q.out.Cookie != CookieValid && !q.signedOK() && !q.out.SourceExempt {
		if l := q.rt.settings.RRL; l != nil {
			if c, name, ok := q.rrlClass(resp); ok {
				out.RRL = l.Check(src.Addr(), c, name)
				switch out.RRL {
				case ratelimit.Drop:
					// Counted as limited, not as an answer or a drop.
					if w.local != nil {
						w.local.rrlDropped.Add(1)
					}
					return nil, *out
				case ratelimit.Slip:
					if w.local != nil {
						w.local.rrlSlipped.Add(1)
					}
					resp = slip(resp)
				}
			}
		}
	}
	if resp != nil {
		out.Flags = binary.BigEndian.Uint16(resp[2:])
	}
	if w.local != nil {
		if resp == nil && !out.Forwarded {
			w.local.dropped.Add(1)
		} else {
			w.local.count(t, q.out.Qtype, q.out.Rcode)
		}
	}
	return resp, *out
}

// early decides from the header alone, before anything is parsed or
// built, whether p is dropped: too short, a response, or (UDP) a source
// over its query rate. It records the reason in q.drop.
func (q *query) early(p []byte) bool {
	switch {
	case len(p) < wire.HeaderLen:
		q.drop = DropShort
	case p[2]&0x80 != 0: // QR
		q.drop = DropResponse
	case q.t == UDP && q.rt.settings.Source != nil:
		switch q.rt.settings.Source.Check(q.src.Addr()) {
		case ratelimit.SourceLimited:
			q.drop = DropSource
		case ratelimit.SourceExempt:
			q.out.SourceExempt = true
		}
	}
	return q.drop != DropNone
}

// servedClass tells whether a query in class c is answered: IN, CH
// (identity) and ANY. Others are dropped unanswered.
func servedClass(c uint16) bool {
	return c == dns.ClassINET || c == dns.ClassCHAOS || c == dns.ClassANY
}

// rrlClass sorts an answer for the rate limiter (ratelimit.RRL): answers and
// NODATA by query name, NXDOMAIN and referrals by zone, errors by source
// alone. ok is false for answers that are not limited: those to other
// opcodes than QUERY (NOTIFY).
func (q *query) rrlClass(resp []byte) (c ratelimit.Class, name []byte, ok bool) {
	flags := binary.BigEndian.Uint16(resp[2:])
	if int(flags>>11)&0xF != dns.OpcodeQuery {
		return 0, nil, false
	}
	var origin []byte
	if q.out.Zone != nil {
		origin = q.out.Zone.OriginWire()
	}
	switch {
	case q.out.Rcode == dns.RcodeNameError:
		return ratelimit.NXDomain, origin, true
	case q.out.Rcode != dns.RcodeSuccess:
		return ratelimit.Error, nil, true
	case flags&flagAA == 0:
		return ratelimit.Referral, origin, true
	case binary.BigEndian.Uint16(resp[6:]) == 0:
		return ratelimit.NoData, q.lower, true
	}
	return ratelimit.Positive, q.lower, true
}

// slip cuts resp to its header and question with TC set: the truncated
// answer that tells a real client behind a limited network to ask again
// over TCP (RFC 1035 §4.2.1).
func slip(resp []byte) []byte {
	end := wire.HeaderLen
	if binary.BigEndian.Uint16(resp[4:]) == 1 {
		n := wire.SkipName(resp[wire.HeaderLen:])
		if n < 0 || wire.HeaderLen+n+4 > len(resp) {
			end = wire.HeaderLen
			binary.BigEndian.PutUint16(resp[4:], 0)
		} else {
			end = wire.HeaderLen + n + 4
		}
	}
	binary.BigEndian.PutUint16(resp[2:], binary.BigEndian.Uint16(resp[2:])|flagTC)
	clear(resp[6:wire.HeaderLen]) // no answer, authority or additional records
	return resp[:end]
}

// handle answers the query in p, recording in q what it finds.
func (w *Worker) handle(p []byte, q *query) []byte {
	if len(p) < wire.HeaderLen {
		return nil // too short to answer
	}
	r := &q.request
	r.id = binary.BigEndian.Uint16(p)
	r.flags = binary.BigEndian.Uint16(p[2:])
	if r.flags&flagQR != 0 {
		return nil // a response: never answer it
	}
	qd := binary.BigEndian.Uint16(p[4:])
	an := binary.BigEndian.Uint16(p[6:])
	ns := binary.BigEndian.Uint16(p[8:])
	ar := binary.BigEndian.Uint16(p[10:])
	opcode := int(r.flags>>11) & 0xF
	rt := q.rt

	limit := minUDP
	if q.t == TCP {
		limit = 65535
	}
	if opcode == dns.OpcodeNotify && rt.notify != nil {
		q.out.Qtype = dns.TypeSOA
		return rt.notify(p, q.src)
	}
	if opcode == dns.OpcodeUpdate && rt.forward != nil {
		return w.forward(p, q)
	}
	if qd != 1 {
		return w.header(q, dns.RcodeFormatError, limit, false)
	}
	name, off, err := wire.ReadName(w.qname[:0], p, wire.HeaderLen)
	if err != nil || off+4 > len(p) {
		return w.header(q, dns.RcodeFormatError, limit, false)
	}
	r.qname = name
	r.lower = wire.LowerName(w.lower[:len(name)], name)
	r.qtype = binary.BigEndian.Uint16(p[off:])
	r.qclass = binary.BigEndian.Uint16(p[off+2:])
	r.qend = off + 4
	q.out.Qtype = r.qtype
	if opcode == dns.OpcodeQuery && !servedClass(r.qclass) {
		q.drop = DropClass
		return nil
	}
	if an != 0 || ns != 0 {
		return w.header(q, dns.RcodeFormatError, limit, true)
	}
	// Every byte must belong to a record: trailing garbage is a format error.
	if !w.parseAdditional(p, r.qend, int(ar), r) {
		r.edns = false
		return w.header(q, dns.RcodeFormatError, limit, true)
	}
	if r.cookie != nil && rt.settings.Cookies != nil {
		client := r.cookie[:ratelimit.ClientCookieLen]
		out := append(w.cookieBuf[:0], client...)
		var valid bool
		q.cookieOut, valid = rt.settings.Cookies.Answer(out, client, r.cookie[ratelimit.ClientCookieLen:], q.src.Addr())
		q.out.Cookie = CookieNew
		if valid {
			q.out.Cookie = CookieValid
		}
	}
	if opcode != dns.OpcodeQuery {
		return w.header(q, dns.RcodeNotImplemented, limit, true)
	}
	if q.t == UDP {
		limit = minUDP
		if r.edns {
			limit = min(max(r.udpSize, minUDP), rt.maxUDP)
		}
	}
	if r.tsigAt > 0 {
		// Signed: checked before anything else is answered (RFC 8945
		// §5.2), off the fast path.
		if !q.checkTSIG(p) {
			return w.header(q, dns.RcodeFormatError, limit, true)
		}
		if q.sig.Err() != 0 {
			return w.header(q, dns.RcodeNotAuth, limit, true)
		}
	}
	if r.edns && r.version > 0 {
		return w.header(q, dns.RcodeBadVers, limit, true)
	}
	if r.badECS {
		return w.header(q, dns.RcodeFormatError, limit, true)
	}
	switch r.qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		if q.t == UDP && r.qtype == dns.TypeAXFR {
			return w.header(q, dns.RcodeFormatError, limit, true)
		}
		return w.header(q, dns.RcodeRefused, limit, true)
	case dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeMAILA, dns.TypeMAILB:
		return w.header(q, dns.RcodeFormatError, limit, true)
	}
	if r.qclass == dns.ClassCHAOS {
		return w.chaos(q, limit)
	}
	b := &w.b
	b.Reset(w.out, limit)
	b.Header(r.id, 0)
	b.Question(r.qname, r.qtype, r.qclass)
	b.Reserve(w.trailerLen(q))
	r.source(q.src.Addr(), &w.src)
	if w.steer != rt.steer {
		w.steer = rt.steer
		w.ans.SetSteering(rt.steer, &w.src)
	}
	res := w.ans.Answer(rt.zones, authority.Query{Name: r.lower, Type: r.qtype, Class: r.qclass, DO: r.do}, b)
	q.out.Zone = res.Zone
	if r.hasECS {
		q.scope = w.ans.Scope()
	}
	// RD is copied; CD is cleared in authoritative answers (RFC 4035 §3.1.6).
	flags := flagQR | r.flags&flagRD | uint16(res.Rcode&0xF)
	if res.AA {
		flags |= flagAA
	}
	if res.TC {
		flags |= flagTC
	}
	b.SetFlags(flags)
	q.out.Rcode = res.Rcode
	w.appendOPT(q, res.Rcode)
	return b.Bytes()
}

// parseAdditional reads the additional section, which starts at start in
// msg, looking for OPT and TSIG. A second OPT or an OPT not owned by the
// root is a format error (RFC 6891 §6.1.1), and so is a TSIG that is not
// the last record (RFC 8945 §5.1).
func (w *Worker) parseAdditional(msg []byte, start, count int, r *request) bool {
	p := msg[start:]
	off := 0
	for i := range count {
		if off >= len(p) {
			return false
		}
		// Owner name: OPT must have the root; skip others.
		owner := p[off]
		nl := wire.SkipName(p[off:])
		if nl < 0 || off+nl+10 > len(p) {
			return false
		}
		off += nl
		typ := binary.BigEndian.Uint16(p[off:])
		class := binary.BigEndian.Uint16(p[off+2:])
		ttl := binary.BigEndian.Uint32(p[off+4:])
		rdlen := int(binary.BigEndian.Uint16(p[off+8:]))
		off += 10
		if off+rdlen > len(p) {
			return false
		}
		if typ == dns.TypeTSIG {
			if i != count-1 {
				return false
			}
			r.tsigAt = start + off - nl - 10
		}
		if typ == dns.TypeOPT {
			if r.edns || nl != 1 || owner != 0 {
				return false
			}
			r.edns = true
			r.udpSize = int(class)
			r.version = uint8(ttl >> 16)
			r.do = ttl&0x8000 != 0
			if !w.parseOptions(p[off:off+rdlen], r) {
				return false
			}
		}
		off += rdlen
	}
	return off == len(p)
}

func (w *Worker) parseOptions(p []byte, r *request) bool {
	for len(p) > 0 {
		if len(p) < 4 {
			return false
		}
		code := binary.BigEndian.Uint16(p)
		n := int(binary.BigEndian.Uint16(p[2:]))
		if len(p) < 4+n {
			return false
		}
		switch code {
		case ednsNSID:
			r.nsid = true
		case ednsECS:
			// Only the first ECS option counts; a malformed one is
			// answered with FORMERR once the header is known.
			if !r.hasECS && !r.badECS {
				r.ecs, r.hasECS = parseECS(p[4 : 4+n])
				r.badECS = !r.hasECS
			}
		case ednsCookie:
			// A client cookie alone, or with a server cookie of 8 to 32
			// bytes; anything else is a format error (RFC 7873 §5.2.2).
			// Only the first COOKIE option counts.
			if n != ratelimit.ClientCookieLen && (n < ratelimit.ClientCookieLen+ratelimit.MinServerCookieLen ||
				n > ratelimit.ClientCookieLen+ratelimit.MaxServerCookieLen) {
				return false
			}
			if r.cookie == nil {
				r.cookie = p[4 : 4+n]
			}
		}
		p = p[4+n:]
	}
	return true
}

// optLen is the size of the OPT record an answer with records will carry,
// reserved while the records are written so that as many fit as the client's
// buffer allows (RFC 2181 §9). The Extended DNS Error that appendOPT adds to
// REFUSED is not counted: a REFUSED answer has no records, so its OPT is
// appended to a message that is otherwise only the header and question.
func (w *Worker) optLen(q *query) int {
	if !q.edns {
		return 0
	}
	n := optFixedLen
	if q.nsid && q.rt.nsid != nil {
		n += 4 + len(q.rt.nsid)
	}
	if q.cookieOut != nil {
		n += 4 + len(q.cookieOut)
	}
	if q.hasECS {
		n += 4 + q.ecs.len()
	}
	return n
}

// trailerLen is the room to keep for the records appended after the
// sections: the OPT record and, for a signed query, the TSIG record.
func (w *Worker) trailerLen(q *query) int {
	n := w.optLen(q)
	if q.sig != nil {
		n += q.sig.Size()
	}
	return n
}

// appendOPT adds our OPT record when the query had one (RFC 6891 §6.1.1).
func (w *Worker) appendOPT(q *query, rcode int) {
	r := &q.request
	if !r.edns {
		return
	}
	var opt [optFixedLen + 6 + 4 + 255 + 4 + ratelimit.ClientCookieLen + ratelimit.ServerCookieLen + 4 + 4 + 16]byte
	o := opt[:0]
	o = append(o, 0) // root owner
	o = binary.BigEndian.AppendUint16(o, dns.TypeOPT)
	o = binary.BigEndian.AppendUint16(o, uint16(q.rt.maxUDP))
	ttl := uint32(rcode>>4) << 24 // extended rcode, version 0
	if r.do {
		ttl |= 0x8000
	}
	o = binary.BigEndian.AppendUint32(o, ttl)
	rdlenAt := len(o)
	o = append(o, 0, 0)
	// An Extended DNS Error (RFC 8914) tells why a query was refused:
	// 20 "Not Authoritative" for names outside our zones.
	if rcode == dns.RcodeRefused {
		o = binary.BigEndian.AppendUint16(o, ednsEDE)
		o = binary.BigEndian.AppendUint16(o, 2)
		o = binary.BigEndian.AppendUint16(o, edeNotAuthoritative)
	}
	if nsid := q.rt.nsid; r.nsid && nsid != nil && len(nsid) <= 255 {
		o = binary.BigEndian.AppendUint16(o, ednsNSID)
		o = binary.BigEndian.AppendUint16(o, uint16(len(nsid)))
		o = append(o, nsid...)
	}
	if q.cookieOut != nil {
		o = binary.BigEndian.AppendUint16(o, ednsCookie)
		o = binary.BigEndian.AppendUint16(o, uint16(len(q.cookieOut)))
		o = append(o, q.cookieOut...)
	}
	if r.hasECS {
		// FAMILY, SOURCE PREFIX-LENGTH and ADDRESS as the query had them,
		// SCOPE PREFIX-LENGTH what the answer depended on (RFC 7871
		// §7.2.1): 0 for every answer that is not steered.
		o = binary.BigEndian.AppendUint16(o, ednsECS)
		o = binary.BigEndian.AppendUint16(o, uint16(r.ecs.len()))
		o = binary.BigEndian.AppendUint16(o, r.ecs.family)
		o = append(o, r.ecs.source, q.scope)
		o = append(o, r.ecs.addr...)
	}
	binary.BigEndian.PutUint16(o[rdlenAt:], uint16(len(o)-rdlenAt-2))
	w.b.AppendRaw(wire.Additional, 1, o)
}

// header builds an answer with no records: an error or an empty reply. With
// question it echoes the question (when it was parsed).
func (w *Worker) header(q *query, rcode int, limit int, question bool) []byte {
	r := &q.request
	q.out.Rcode = rcode
	b := &w.b
	b.Reset(w.out, limit)
	b.Header(r.id, flagQR|r.flags&(0xF<<11|flagRD)|uint16(rcode&0xF))
	if question && r.qname != nil {
		b.Question(r.qname, r.qtype, r.qclass)
	}
	w.appendOPT(q, rcode)
	return b.Bytes()
}

// chaos answers the CH TXT identity names (id.server., hostname.bind.,
// version.bind., version.server.).
func (w *Worker) chaos(q *query, limit int) []byte {
	r := &q.request
	id := q.rt.settings.Identity
	var text string
	ok := false
	switch string(r.lower) {
	case "\x02id\x06server\x00":
		text, ok = id.Name, id.IDServer && id.Name != ""
	case "\x08hostname\x04bind\x00":
		text, ok = id.Name, id.HostnameBind && id.Name != ""
	case "\x07version\x04bind\x00", "\x07version\x06server\x00":
		text, ok = id.Version, id.VersionBind && id.Version != ""
	}
	if !ok || (r.qtype != dns.TypeTXT && r.qtype != dns.TypeANY) {
		return w.header(q, dns.RcodeRefused, limit, true)
	}
	b := &w.b
	b.Reset(w.out, limit)
	b.Header(r.id, flagQR|r.flags&flagRD)
	b.Question(r.qname, r.qtype, r.qclass)
	b.Reserve(w.trailerLen(q))
	var rd [256]byte
	if len(text) > 255 {
		text = text[:255]
	}
	rd[0] = byte(len(text))
	copy(rd[1:], text)
	b.RR(wire.Answer, r.lower, dns.TypeTXT, dns.ClassCHAOS, 0, rd[:1+len(text)])
	q.out.Rcode = dns.RcodeSuccess
	w.appendOPT(q, 0)
	return b.Bytes()
}
