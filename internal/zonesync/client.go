package zonesync

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/tsig"
)

// Sentinel errors of exchanges with primaries, checked with errors.Is.
var (
	// ErrRcode: the primary answered with an error code (see RcodeError).
	ErrRcode = errors.New("primary refused")
	// ErrTSIG: the response's TSIG is missing or does not verify.
	ErrTSIG = errors.New("tsig")
	// ErrTLS: the TLS handshake with the primary failed (a certificate
	// not trusted, a name that does not match, no TLS on the port).
	ErrTLS = errors.New("xfr over tls")
	// errUnreachable: no connection to the primary could be made.
	errUnreachable = errors.New("primary unreachable")
)

// RcodeError is an error answer from a primary.
type RcodeError struct {
	Rcode     int
	TSIGError uint16 // the TSIG error of the answer, if any
}

func (e *RcodeError) Error() string {
	s := "primary answered " + dns.RcodeToString[e.Rcode]
	if e.TSIGError != 0 {
		s += " (TSIG " + dns.RcodeToString[int(e.TSIGError)] + ")"
	}
	return s
}

// Is makes RcodeError match ErrRcode.
func (e *RcodeError) Is(target error) bool { return target == ErrRcode }

// client talks to primaries: SOA queries and transfers, over TCP, signed
// when the primary has a key.
type client struct {
	dial       func(ctx context.Context, network, addr string) (net.Conn, error)
	ring       *tsig.Keyring
	timers     Timers
	maxRecords int
}

// alpnDoT is the ALPN protocol of zone transfers over TLS (RFC 9103 §7.1).
const alpnDoT = "dot"

// handshake makes conn a TLS client connection with conf, offering ALPN
// "dot", and completes the handshake by ctx's deadline; on an error it
// closes conn.
func handshake(ctx context.Context, conn net.Conn, conf *tls.Config) (net.Conn, error) {
	conf = conf.Clone()
	conf.NextProtos = []string{alpnDoT}
	tc := tls.Client(conn, conf)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	// A server that negotiates ALPN must pick "dot"; one without ALPN
	// (NegotiatedProtocol "") is accepted, as RFC 9103 §7.1 allows.
	if p := tc.ConnectionState().NegotiatedProtocol; p != "" && p != alpnDoT {
		_ = conn.Close()
		return nil, fmt.Errorf("tls: server chose ALPN %q, not %q", p, alpnDoT)
	}
	return tc, nil
}

// xconn is one TCP connection (or UDP socket) to a primary with the TSIG
// state of its exchange.
type xconn struct {
	c      net.Conn
	udp    bool
	ring   *tsig.Keyring
	key    string // the key's canonical name; "" = unsigned
	mac    string // MAC of the last signed message, for the next one
	read   int    // messages read
	idle   time.Duration
	buf    []byte
	closed func() bool
}

func (c *client) connect(ctx context.Context, p Primary) (*xconn, error) {
	return c.open(ctx, p, "tcp", c.timers.IdleTimeout)
}

func (c *client) open(ctx context.Context, p Primary, network string, idle time.Duration) (*xconn, error) {
	key := ""
	if p.Key != "" {
		if !c.ring.Has(p.Key) {
			return nil, fmt.Errorf("unknown tsig key %q", p.Key)
		}
		key = dns.CanonicalName(p.Key)
	}
	dctx, cancel := context.WithTimeout(ctx, c.timers.DialTimeout)
	defer cancel()
	conn, err := c.dial(dctx, network, p.Addr.String())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errUnreachable, err)
	}
	if p.TLS != nil && network != "udp" {
		if conn, err = handshake(dctx, conn, p.TLS); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrTLS, err)
		}
	}
	x := &xconn{c: conn, udp: network == "udp", ring: c.ring, key: key, idle: idle}
	// Closing the connection when ctx ends unblocks a read in progress.
	x.closed = context.AfterFunc(ctx, func() { _ = conn.Close() })
	return x, nil
}

func (x *xconn) close() {
	x.closed()
	_ = x.c.Close()
}

// send writes a request, signing it when the connection has a key.
func (x *xconn) send(m *dns.Msg) error {
	var out []byte
	var err error
	if x.key != "" {
		out, x.mac, err = x.ring.Sign(m, x.key, "")
	} else {
		out, err = m.Pack()
	}
	if err != nil {
		return fmt.Errorf("pack request: %w", err)
	}
	frame := out
	if !x.udp {
		frame = binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(out)), uint16(len(out)))
		frame = append(frame, out...)
	}
	if err := x.c.SetWriteDeadline(time.Now().Add(x.idle)); err != nil {
		return err
	}
	_, err = x.c.Write(frame)
	return err
}

// readMsg reads the next message: one datagram, or one length-prefixed
// message over TCP.
func (x *xconn) readMsg() ([]byte, error) {
	if x.udp {
		if cap(x.buf) < dns.MaxMsgSize {
			x.buf = make([]byte, dns.MaxMsgSize)
		}
		n, err := x.c.Read(x.buf[:dns.MaxMsgSize])
		if err != nil {
			return nil, fmt.Errorf("read: %w", err)
		}
		return x.buf[:n], nil
	}
	var l [2]byte
	if _, err := io.ReadFull(x.c, l[:]); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	n := int(binary.BigEndian.Uint16(l[:]))
	if cap(x.buf) < n {
		x.buf = make([]byte, n)
	}
	raw := x.buf[:n]
	if _, err := io.ReadFull(x.c, raw); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return raw, nil
}

// recv reads the next message of the response to q and checks its ID, its
// rcode and (with a key) its TSIG. Every message of a signed response must
// be signed: RFC 8945 §5.3.1 lets a server leave out up to 99, but BIND,
// Knot, NSD and PowerDNS sign each one.
func (x *xconn) recv(q *dns.Msg) (*dns.Msg, error) {
	if err := x.c.SetReadDeadline(time.Now().Add(x.idle)); err != nil {
		return nil, err
	}
	raw, err := x.readMsg()
	if err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	if err := m.Unpack(raw); err != nil {
		return nil, fmt.Errorf("%w: unpack: %w", ErrStream, err)
	}
	if m.Id != q.Id || !m.Response || m.Opcode != q.Opcode {
		return nil, fmt.Errorf("%w: response id %d opcode %d does not match the request", ErrStream, m.Id, m.Opcode)
	}
	if x.read == 0 && len(m.Question) > 0 {
		mq, rq := m.Question[0], q.Question[0]
		if !strings.EqualFold(mq.Name, rq.Name) || mq.Qtype != rq.Qtype {
			return nil, fmt.Errorf("%w: response is for %s %s", ErrStream, mq.Name, dns.TypeToString[mq.Qtype])
		}
	}
	t := m.IsTsig()
	if m.Rcode != dns.RcodeSuccess {
		e := &RcodeError{Rcode: m.Rcode}
		if t != nil {
			e.TSIGError = t.Error
		}
		return nil, e
	}
	if x.key != "" {
		if t == nil {
			return nil, fmt.Errorf("%w: message %d of the response is not signed", ErrTSIG, x.read+1)
		}
		if !strings.EqualFold(t.Hdr.Name, x.key) {
			return nil, fmt.Errorf("%w: response signed with key %s, not %s", ErrTSIG, t.Hdr.Name, x.key)
		}
		if err := x.ring.Check(raw, x.mac, x.read > 0); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrTSIG, err)
		}
		x.mac = t.MAC
	}
	x.read++
	return m, nil
}

func query(origin string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(origin, qtype)
	m.RecursionDesired = false
	return m
}

// soa asks p for the serial of origin.
func (c *client) soa(ctx context.Context, p Primary, origin string) (uint32, error) {
	x, err := c.connect(ctx, p)
	if err != nil {
		return 0, err
	}
	defer x.close()
	q := query(origin, dns.TypeSOA)
	if err := x.send(q); err != nil {
		return 0, err
	}
	m, err := x.recv(q)
	if err != nil {
		return 0, err
	}
	for _, rr := range m.Answer {
		if soa, ok := rr.(*dns.SOA); ok && strings.EqualFold(soa.Hdr.Name, origin) {
			if !m.Authoritative {
				return 0, fmt.Errorf("primary is not authoritative for %s (AA not set)", origin)
			}
			return soa.Serial, nil
		}
	}
	return 0, fmt.Errorf("%w: no SOA for %s in the answer", ErrStream, origin)
}

// transfer pulls origin from p: IXFR from have, or AXFR when have is nil.
// The result is complete (done) or the error says why not.
func (c *client) transfer(ctx context.Context, p Primary, origin string, have *dns.SOA) (*xfrParser, error) {
	x, err := c.connect(ctx, p)
	if err != nil {
		return nil, err
	}
	defer x.close()
	qtype := dns.TypeAXFR
	if have != nil {
		qtype = dns.TypeIXFR
	}
	q := query(origin, qtype)
	if have != nil {
		q.Ns = []dns.RR{have}
	}
	if err := x.send(q); err != nil {
		return nil, err
	}
	parser := newParser(origin, have, c.maxRecords)
	for !parser.done {
		m, err := x.recv(q)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		if len(m.Answer) == 0 {
			return nil, fmt.Errorf("%w: empty message %d", ErrStream, x.read)
		}
		if err := parser.feed(m.Answer); err != nil {
			return nil, err
		}
	}
	return parser, nil
}

// errNeedTCP: an IXFR over UDP was answered with a newer SOA alone (the
// differences did not fit, or the primary sends them over TCP only).
var errNeedTCP = errors.New("newer version, to transfer over TCP")

// udpTimeout bounds an IXFR over UDP; past it, the refresh goes over TCP.
const udpTimeout = time.Second

// ixfrUDP asks p over UDP for the differences from have (RFC 1995 §2). It
// returns a complete response (up to date, or the differences in one
// message), errNeedTCP when p answered with a newer SOA alone or set TC,
// or another error when UDP did not work out at all.
func (c *client) ixfrUDP(ctx context.Context, p Primary, origin string, have *dns.SOA) (*xfrParser, error) {
	ctx, cancel := context.WithTimeout(ctx, udpTimeout)
	defer cancel()
	x, err := c.open(ctx, p, "udp", udpTimeout)
	if err != nil {
		return nil, err
	}
	defer x.close()
	q := query(origin, dns.TypeIXFR)
	q.Ns = []dns.RR{have}
	q.SetEdns0(1232, false) // no fragments (DNS flag day 2020)
	if err := x.send(q); err != nil {
		return nil, err
	}
	m, err := x.recv(q)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("no answer over udp in %s", udpTimeout)
		}
		return nil, err
	}
	if m.Truncated {
		return nil, errNeedTCP
	}
	parser := newParser(origin, have, c.maxRecords)
	if err := parser.feed(m.Answer); err != nil {
		return nil, err
	}
	switch {
	case parser.done:
		return parser, nil
	case len(m.Answer) == 1:
		return nil, errNeedTCP
	}
	return nil, fmt.Errorf("%w: incomplete IXFR over udp (%d records)", ErrStream, len(m.Answer))
}
