package dnsserver

import (
	"bytes"
	"net"
	"net/netip"

	"github.com/miekg/dns"
)

// DNS UPDATE (RFC 2136) is not served by the node: it is forwarded to the
// control plane, as a secondary forwards to its primary (§6), by a
// ForwardFunc the node installs. The query path only compares the opcode,
// which it reads for NOTIFY already; everything else happens here.

// ForwardFunc forwards an UPDATE message, unchanged (its TSIG stays the
// client's), and returns the answer to relay, or nil to drop it. It may
// block for a network round trip, and must bound it.
type ForwardFunc func(req []byte, src netip.AddrPort) []byte

// maxForwards bounds the UPDATEs received over UDP being forwarded at once;
// more are answered SERVFAIL (the client retries, as after a loss).
const maxForwards = 16

// SetForward installs the UPDATE forwarder; without one UPDATE is NOTIMP.
func (h *Handler) SetForward(f ForwardFunc) { h.update(func(rt *Runtime) { rt.forward = f }) }

// forward hands an UPDATE to the forwarder. Over TCP the connection's
// goroutine waits for the answer. Over UDP the reader goes on: the message
// is copied, forwarded on a goroutine of its own and answered from the
// socket it came in on; Handle returns no answer for it.
func (w *Worker) forward(p []byte, q *query) []byte {
	f := q.rt.forward
	q.out.Qtype = dns.TypeSOA
	if q.t == TCP || w.udp == nil {
		return f(p, q.src)
	}
	select {
	case w.h.forwards <- struct{}{}:
	default:
		q.out.Rcode = dns.RcodeServerFailure
		return rcodeOnly(p, dns.RcodeServerFailure)
	}
	q.out.Forwarded = true
	req, src, u := bytes.Clone(p), q.src, w.udp
	go func() {
		defer func() { <-w.h.forwards }()
		if resp := f(req, src); resp != nil {
			_, _ = u.WriteToUDPAddrPort(resp, src)
		}
	}()
	return nil
}

// rcodeOnly is the answer to p with its header (ID, opcode, RD) and rcode
// alone.
func rcodeOnly(p []byte, rcode int) []byte {
	out := make([]byte, 12)
	copy(out, p[:4])
	out[2] = p[2]&0x79 | 0x80 // QR, the opcode and RD
	out[3] = byte(rcode & 0xf)
	return out
}

// setUDP tells the worker the socket it reads, to answer forwarded
// UPDATEs from.
func (w *Worker) setUDP(u *net.UDPConn) { w.udp = u }
