package update

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// Forwarder is the node's side of UPDATE: it passes each message it gets,
// unchanged — its TSIG stays the client's, checked and answered by the
// control plane, which holds the keys — to the primaries of the zone it
// names, as a secondary forwards to its primary (RFC 2136 §6), and
// relays the first answer.
type Forwarder struct {
	// Primaries returns the primaries of a zone (canonical name), tried
	// in order; none: the node has no primary for it (NOTAUTH).
	Primaries func(zone string) []netip.AddrPort
	// Timeout bounds the whole forward (5s); each primary gets an equal
	// share of it.
	Timeout time.Duration
	Log     *slog.Logger
	// Dial opens connections; nil = a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Forward forwards req, from src, over TCP (an UPDATE and its answer may
// be larger than a UDP message) and returns the answer to relay: the
// primary's, or the node's own NOTAUTH (no primary for the zone), FORMERR
// (the message does not parse) or SERVFAIL (no primary answered), with
// the request's ID.
func (f *Forwarder) Forward(req []byte, src netip.AddrPort) []byte {
	log := f.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var m dns.Msg
	if err := m.Unpack(req); err != nil || len(m.Question) != 1 {
		log.Debug("update forward: message does not parse", "src", src, "err", err)
		return errorAnswer(req, dns.RcodeFormatError)
	}
	zoneName := dns.CanonicalName(m.Question[0].Name)
	prim := f.Primaries(zoneName)
	log = log.With("zone", zoneName, "src", src.String())
	if len(prim) == 0 {
		log.Info("update for a zone the node has no primary for", "rcode", "NOTAUTH")
		return errorAnswer(req, dns.RcodeNotAuth)
	}
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for i, p := range prim {
		share := time.Until(deadline(ctx)) / time.Duration(len(prim)-i)
		resp, err := f.exchange(ctx, p, req, share)
		if err == nil {
			log.Info("update forwarded", "primary", p.String(), "rcode", rcodeName(resp))
			return resp
		}
		log.Warn("update forward failed", "primary", p.String(), "err", err)
	}
	return errorAnswer(req, dns.RcodeServerFailure)
}

func deadline(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// exchange sends req to p over TCP and reads one answer with the same ID.
func (f *Forwarder) exchange(ctx context.Context, p netip.AddrPort, req []byte, within time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	dial := f.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	c, err := dial(ctx, "tcp", p.String())
	if err != nil {
		return nil, err
	}
	defer func() { _ = c.Close() }()
	if d, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(d)
	}
	if len(req) > 65535 {
		return nil, fmt.Errorf("message of %d bytes", len(req))
	}
	frame := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(req)), uint16(len(req)))
	if _, err := c.Write(append(frame, req...)); err != nil {
		return nil, fmt.Errorf("send: %w", err)
	}
	var lenb [2]byte
	if _, err := io.ReadFull(c, lenb[:]); err != nil {
		return nil, fmt.Errorf("read the answer: %w", err)
	}
	resp := make([]byte, binary.BigEndian.Uint16(lenb[:]))
	if _, err := io.ReadFull(c, resp); err != nil {
		return nil, fmt.Errorf("read the answer: %w", err)
	}
	if len(resp) < 12 || resp[0] != req[0] || resp[1] != req[1] || resp[2]&0x80 == 0 {
		return nil, fmt.Errorf("the answer (%d bytes) is not one to the update", len(resp))
	}
	return resp, nil
}

// errorAnswer is the node's own answer to req: its header (ID, opcode,
// RD) and zone section with rcode, unsigned (the node does not hold the
// client's key).
func errorAnswer(req []byte, rcode int) []byte {
	if len(req) < 12 {
		return nil
	}
	var m dns.Msg
	out := &dns.Msg{}
	if err := m.Unpack(req); err == nil {
		out.SetRcode(&m, rcode)
		out.Answer, out.Ns, out.Extra = nil, nil, nil
		if b, err := out.Pack(); err == nil {
			return b
		}
	}
	b := make([]byte, 12)
	copy(b, req[:4])
	b[2] = req[2]&0x79 | 0x80
	b[3] = byte(rcode & 0xf)
	return b
}

func rcodeName(resp []byte) string {
	if len(resp) < 4 {
		return "?"
	}
	return dns.RcodeToString[int(resp[3]&0xf)]
}
