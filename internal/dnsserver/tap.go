package dnsserver

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"time"
)

// Tap receives a copy of the answered queries (1 in Settings.TapEvery):
// the node's dnstap output and query log (package dnstap). Settings.Tap nil costs the query path one
// comparison.
//
// Tap runs on the query path, once per answered query: it must not block,
// and it must copy what it keeps, since the message's slices are the
// worker's buffers, reused by the next query.
type Tap interface {
	Tap(m TapMessage)
}

// TapMessage is one answered query as the server saw it.
type TapMessage struct {
	Query, Response []byte         // the wire messages, valid during Tap only
	Client          netip.AddrPort // the query's source
	Server          netip.AddrPort // the address it arrived on (invalid if unknown)
	Transport       Transport
	// Received is when the query was read (for UDP, when its batch was).
	Received time.Time
}

// Tapping reports whether the snapshot that answered w's last query has a
// Tap: the TCP loop asks before working out the connection's local
// address, which only Tap needs; Tap checks it again itself.
func (w *Worker) Tapping() bool { return w.q.rt != nil && w.q.rt.settings.Tap != nil }

// Tap hands a query that w just answered (resp is what Handle returned)
// to the Tap of the snapshot that answered it, if there is one and an
// answer went out, 1 in Settings.TapEvery of them. The UDP and TCP loops
// call it after Handle. A query not sampled costs a decrement: the gap to
// the next one is drawn when one is taken, uniform in [1, 2*TapEvery-1]
// (mean TapEvery).
func (w *Worker) Tap(req, resp []byte, server netip.AddrPort, t Transport, received time.Time) {
	rt := w.q.rt
	if rt == nil || rt.settings.Tap == nil || resp == nil {
		return
	}
	if every := rt.settings.TapEvery; every > 1 && !w.tap.take(every) {
		return
	}
	rt.settings.Tap.Tap(TapMessage{
		Query: req, Response: resp, Client: w.q.src, Server: server, Transport: t, Received: received,
	})
}

// tapSampler is a worker's countdown to the next query it hands to the
// Tap.
type tapSampler struct {
	wait  int // answered queries until the next one is taken
	every int // the rate wait was drawn for
}

// take reports whether this query is taken, sampling 1 in every.
func (s *tapSampler) take(every int) bool {
	if s.every != every {
		// A new rate (a reload, or the first query): a gap of its own,
		// from a random phase, rather than taking the next query.
		s.every, s.wait = every, s.gap(every)
	}
	if s.wait--; s.wait > 0 {
		return false
	}
	s.wait = s.gap(every)
	return true
}

// gap is the distance to the next query taken: uniform in [1, 2*every-1],
// mean every.
func (s *tapSampler) gap(every int) int {
	return 1 + rand.IntN(2*every-1) //nolint:gosec // sampling, not a secret
}

// udpLocal is the address a UDP socket is bound to, IPv4 unmapped.
func udpLocal(u *net.UDPConn) netip.AddrPort {
	if a, ok := u.LocalAddr().(*net.UDPAddr); ok {
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}
