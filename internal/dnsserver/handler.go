// Package dnsserver is the node's DNS front end: UDP and TCP listeners, query
// parsing, EDNS(0), NSID and CH identity answers, size limits and truncation,
// with the answer itself delegated to package authority.
//
// The per-query path parses the request in place and builds the response in a
// per-worker buffer; it does not allocate (see BenchmarkHandle).
package dnsserver

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/authority"
	"github.com/anycastdns/anycastdns/internal/ratelimit"
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

// Handler answers queries against the current zone snapshot. It is safe for
// concurrent use; per-worker state lives in a Worker.
type Handler struct {
	zones  atomic.Pointer[zone.Set]
	notify atomic.Pointer[NotifyFunc]
	self   atomic.Pointer[settings]
	rrl    atomic.Pointer[ratelimit.RRL]     // nil: no response rate limiting
	cookie atomic.Pointer[ratelimit.Cookies] // nil: COOKIE options ignored
	tsig   atomic.Pointer[tsig.Keyring]      // nil: no keys, every signed query is BADKEY
	maxUDP int                               // capacity of the UDP response buffers
	stats  *Stats
}

// settings are the reloadable parts of a Handler.
type settings struct {
	identity Identity
	maxUDP   int
	nsid     []byte // NSID option data, nil when off
}

// NewHandler returns a handler that answers from an empty zone set until
// SetZones is called.
func NewHandler(id Identity, maxUDP int, stats *Stats) *Handler {
	h := &Handler{maxUDP: maxUDPLimit, stats: stats}
	h.zones.Store(zone.NewSet())
	h.SetIdentity(id, maxUDP)
	return h
}

// maxUDPLimit is the largest UDP payload the configuration may ask for.
const maxUDPLimit = 4096

// SetIdentity changes the identity answers and the UDP payload limit of a
// running handler (on reload).
func (h *Handler) SetIdentity(id Identity, maxUDP int) {
	if maxUDP < minUDP || maxUDP > maxUDPLimit {
		maxUDP = defaultUDP
	}
	st := &settings{identity: id, maxUDP: maxUDP}
	if id.NSID && id.Name != "" {
		st.nsid = []byte(id.Name)
	}
	h.self.Store(st)
}

// NotifyFunc answers a NOTIFY message (RFC 1996): it gets the raw request
// and its source and returns the raw response, or nil to drop it. It runs on
// the query path, so it must hand real work to another goroutine.
type NotifyFunc func(req []byte, src netip.AddrPort) []byte

// SetNotify installs the NOTIFY handler; without one NOTIFY is NOTIMP.
func (h *Handler) SetNotify(f NotifyFunc) { h.notify.Store(&f) }

// SetRRL installs the UDP response rate limiter; nil turns limiting off.
func (h *Handler) SetRRL(l *ratelimit.RRL) { h.rrl.Store(l) }

// SetCookies turns DNS Cookies (RFC 7873, 9018) on with c, or off with nil:
// then COOKIE options are ignored, as by a server without cookies.
func (h *Handler) SetCookies(c *ratelimit.Cookies) { h.cookie.Store(c) }

// SetTSIG installs the TSIG keys (RFC 8945) that signed queries are checked
// and answered with: the node's keyring (tsig_keys, the one the secondary
// zones use). A query signed with a key keys does not hold, with a wrong
// MAC or at a time outside its fudge gets NOTAUTH with BADKEY, BADSIG or
// BADTIME; a valid one gets a signed answer. nil removes every key.
func (h *Handler) SetTSIG(keys *tsig.Keyring) { h.tsig.Store(keys) }

// SetZones atomically replaces the served zones.
func (h *Handler) SetZones(s *zone.Set) { h.zones.Store(s) }

// Zones returns the served zones.
func (h *Handler) Zones() *zone.Set { return h.zones.Load() }

// Worker holds the scratch state of one reader goroutine.
type Worker struct {
	// Src is the source of the query being handled; the listeners set it.
	Src   netip.AddrPort
	h     *Handler
	st    *settings // of the query being handled
	ans   authority.Answerer
	b     wire.Builder
	out   []byte
	qname [wire.MaxName + 1]byte
	lower [wire.MaxName + 1]byte
	local *workerStats
	// Of the query being handled, for rate limiting: the lower-cased
	// name (nil when unparsed) and the answering zone (nil for none).
	qlower []byte
	zone   *zone.Zone
	// The COOKIE option to answer with (client and server cookie; nil
	// for none) and whether the query's Server Cookie was valid.
	cookieOut   []byte
	cookieValid bool
	cookieBuf   [ratelimit.ClientCookieLen + ratelimit.ServerCookieLen]byte
	// The signer of the answer to a signed query (nil for an unsigned
	// one, the fast path).
	sig *tsig.Signer
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
}

// Handle answers one query. It returns the response (valid until the next
// call on this worker) or nil when the packet is to be dropped.
func (w *Worker) Handle(req []byte, t Transport) []byte {
	w.qlower, w.zone, w.cookieOut, w.cookieValid, w.sig = nil, nil, nil, false, nil
	resp, rcode, qtype := w.handle(req, t)
	if w.sig != nil && resp != nil {
		resp = w.sig.Sign(resp)
	}
	// A valid Server Cookie shows that the source address is not spoofed:
	// such clients are not rate limited (as in Knot and Unbound); nor are
	// queries signed with one of our keys.
	if t == UDP && resp != nil && !w.cookieValid && !w.signedOK() {
		if l := w.h.rrl.Load(); l != nil {
			if c, name, ok := w.rrlClass(resp, rcode); ok {
				switch l.Check(w.Src.Addr(), c, name) {
				case ratelimit.Drop:
					if w.local != nil {
						w.local.rrlDropped.Add(1)
					}
					return nil
				case ratelimit.Slip:
					if w.local != nil {
						w.local.rrlSlipped.Add(1)
					}
					resp = slip(resp)
				}
			}
		}
	}
	if w.local != nil {
		if resp == nil {
			w.local.dropped.Add(1)
		} else {
			w.local.count(t, qtype, rcode)
		}
	}
	return resp
}

// rrlClass sorts an answer for the rate limiter (ratelimit.RRL): answers and
// NODATA by query name, NXDOMAIN and referrals by zone, errors by source
// alone. ok is false for answers that are not limited: those to other
// opcodes than QUERY (NOTIFY).
func (w *Worker) rrlClass(resp []byte, rcode int) (c ratelimit.Class, name []byte, ok bool) {
	flags := binary.BigEndian.Uint16(resp[2:])
	if int(flags>>11)&0xF != dns.OpcodeQuery {
		return 0, nil, false
	}
	var origin []byte
	if w.zone != nil {
		origin = w.zone.OriginWire()
	}
	switch {
	case rcode == dns.RcodeNameError:
		return ratelimit.NXDomain, origin, true
	case rcode != dns.RcodeSuccess:
		return ratelimit.Error, nil, true
	case flags&flagAA == 0:
		return ratelimit.Referral, origin, true
	case binary.BigEndian.Uint16(resp[6:]) == 0:
		return ratelimit.NoData, w.qlower, true
	}
	return ratelimit.Positive, w.qlower, true
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

func (w *Worker) handle(p []byte, t Transport) ([]byte, int, uint16) {
	w.st = w.h.self.Load()
	if len(p) < wire.HeaderLen {
		return nil, 0, 0 // too short to answer
	}
	var r request
	r.id = binary.BigEndian.Uint16(p)
	r.flags = binary.BigEndian.Uint16(p[2:])
	if r.flags&flagQR != 0 {
		return nil, 0, 0 // a response: never answer it
	}
	qd := binary.BigEndian.Uint16(p[4:])
	an := binary.BigEndian.Uint16(p[6:])
	ns := binary.BigEndian.Uint16(p[8:])
	ar := binary.BigEndian.Uint16(p[10:])
	opcode := int(r.flags>>11) & 0xF

	limit := minUDP
	if t == TCP {
		limit = 65535
	}
	if opcode == dns.OpcodeNotify {
		if f := w.h.notify.Load(); f != nil {
			return (*f)(p, w.Src), 0, dns.TypeSOA
		}
	}
	if qd != 1 {
		return w.header(&r, dns.RcodeFormatError, limit, false), dns.RcodeFormatError, 0
	}
	name, off, err := wire.ReadName(w.qname[:0], p, wire.HeaderLen)
	if err != nil || off+4 > len(p) {
		return w.header(&r, dns.RcodeFormatError, limit, false), dns.RcodeFormatError, 0
	}
	r.qname = name
	r.lower = wire.LowerName(w.lower[:len(name)], name)
	w.qlower = r.lower
	r.qtype = binary.BigEndian.Uint16(p[off:])
	r.qclass = binary.BigEndian.Uint16(p[off+2:])
	r.qend = off + 4
	if an != 0 || ns != 0 {
		return w.header(&r, dns.RcodeFormatError, limit, true), dns.RcodeFormatError, r.qtype
	}
	// Every byte must belong to a record: trailing garbage is a format error.
	if !w.parseAdditional(p, r.qend, int(ar), &r) {
		r.edns = false
		return w.header(&r, dns.RcodeFormatError, limit, true), dns.RcodeFormatError, r.qtype
	}
	if r.cookie != nil {
		if c := w.h.cookie.Load(); c != nil {
			client := r.cookie[:ratelimit.ClientCookieLen]
			out := append(w.cookieBuf[:0], client...)
			w.cookieOut, w.cookieValid = c.Answer(out, client, r.cookie[ratelimit.ClientCookieLen:], w.Src.Addr())
		}
	}
	if opcode != dns.OpcodeQuery {
		return w.header(&r, dns.RcodeNotImplemented, limit, true), dns.RcodeNotImplemented, r.qtype
	}
	st := w.h.self.Load()
	w.st = st
	if t == UDP {
		limit = minUDP
		if r.edns {
			limit = min(max(r.udpSize, minUDP), st.maxUDP)
		}
	}
	if r.tsigAt > 0 {
		// Signed: checked before anything else is answered (RFC 8945
		// §5.2), off the fast path.
		if !w.checkTSIG(p, &r, w.h.tsig.Load()) {
			return w.header(&r, dns.RcodeFormatError, limit, true), dns.RcodeFormatError, r.qtype
		}
		if w.sig.Err() != 0 {
			return w.header(&r, dns.RcodeNotAuth, limit, true), dns.RcodeNotAuth, r.qtype
		}
	}
	if r.edns && r.version > 0 {
		return w.header(&r, dns.RcodeBadVers, limit, true), dns.RcodeBadVers, r.qtype
	}
	switch r.qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		if t == UDP && r.qtype == dns.TypeAXFR {
			return w.header(&r, dns.RcodeFormatError, limit, true), dns.RcodeFormatError, r.qtype
		}
		return w.header(&r, dns.RcodeRefused, limit, true), dns.RcodeRefused, r.qtype
	case dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeMAILA, dns.TypeMAILB:
		return w.header(&r, dns.RcodeFormatError, limit, true), dns.RcodeFormatError, r.qtype
	}
	if r.qclass == dns.ClassCHAOS {
		resp, rc := w.chaos(&r, limit)
		return resp, rc, r.qtype
	}
	b := &w.b
	b.Reset(w.out, limit)
	b.Header(r.id, 0)
	b.Question(r.qname, r.qtype, r.qclass)
	b.Reserve(w.trailerLen(&r))
	res := w.ans.Answer(w.h.zones.Load(), authority.Query{Name: r.lower, Type: r.qtype, Class: r.qclass, DO: r.do}, b)
	w.zone = res.Zone
	// RD is copied; CD is cleared in authoritative answers (RFC 4035 §3.1.6).
	flags := flagQR | r.flags&flagRD | uint16(res.Rcode&0xF)
	if res.AA {
		flags |= flagAA
	}
	if res.TC {
		flags |= flagTC
	}
	b.SetFlags(flags)
	w.appendOPT(&r, res.Rcode)
	return b.Bytes(), res.Rcode, r.qtype
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
func (w *Worker) optLen(r *request) int {
	if !r.edns {
		return 0
	}
	n := optFixedLen
	if r.nsid && w.st.nsid != nil {
		n += 4 + len(w.st.nsid)
	}
	if w.cookieOut != nil {
		n += 4 + len(w.cookieOut)
	}
	return n
}

// trailerLen is the room to keep for the records appended after the
// sections: the OPT record and, for a signed query, the TSIG record.
func (w *Worker) trailerLen(r *request) int {
	n := w.optLen(r)
	if w.sig != nil {
		n += w.sig.Size()
	}
	return n
}

// appendOPT adds our OPT record when the query had one (RFC 6891 §6.1.1).
func (w *Worker) appendOPT(r *request, rcode int) {
	if !r.edns {
		return
	}
	var opt [optFixedLen + 6 + 4 + 255 + 4 + ratelimit.ClientCookieLen + ratelimit.ServerCookieLen]byte
	o := opt[:0]
	o = append(o, 0) // root owner
	o = binary.BigEndian.AppendUint16(o, dns.TypeOPT)
	o = binary.BigEndian.AppendUint16(o, uint16(w.st.maxUDP))
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
	if r.nsid && w.st.nsid != nil && len(w.st.nsid) <= 255 {
		o = binary.BigEndian.AppendUint16(o, ednsNSID)
		o = binary.BigEndian.AppendUint16(o, uint16(len(w.st.nsid)))
		o = append(o, w.st.nsid...)
	}
	if w.cookieOut != nil {
		o = binary.BigEndian.AppendUint16(o, ednsCookie)
		o = binary.BigEndian.AppendUint16(o, uint16(len(w.cookieOut)))
		o = append(o, w.cookieOut...)
	}
	binary.BigEndian.PutUint16(o[rdlenAt:], uint16(len(o)-rdlenAt-2))
	w.b.AppendRaw(wire.Additional, 1, o)
}

// header builds an answer with no records: an error or an empty reply. With
// question it echoes the question (when it was parsed).
func (w *Worker) header(r *request, rcode int, limit int, question bool) []byte {
	b := &w.b
	b.Reset(w.out, limit)
	b.Header(r.id, flagQR|r.flags&(0xF<<11|flagRD)|uint16(rcode&0xF))
	if question && r.qname != nil {
		b.Question(r.qname, r.qtype, r.qclass)
	}
	w.appendOPT(r, rcode)
	return b.Bytes()
}

// chaos answers the CH TXT identity names (id.server., hostname.bind.,
// version.bind., version.server.).
func (w *Worker) chaos(r *request, limit int) ([]byte, int) {
	id := w.st.identity
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
		return w.header(r, dns.RcodeRefused, limit, true), dns.RcodeRefused
	}
	b := &w.b
	b.Reset(w.out, limit)
	b.Header(r.id, flagQR|r.flags&flagRD)
	b.Question(r.qname, r.qtype, r.qclass)
	b.Reserve(w.trailerLen(r))
	var rd [256]byte
	if len(text) > 255 {
		text = text[:255]
	}
	rd[0] = byte(len(text))
	copy(rd[1:], text)
	b.RR(wire.Answer, r.lower, dns.TypeTXT, dns.ClassCHAOS, 0, rd[:1+len(text)])
	w.appendOPT(r, 0)
	return b.Bytes(), dns.RcodeSuccess
}
