package dnsserver

import (
	"bytes"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// recordingTap keeps copies of what it is given.
type recordingTap struct {
	mu   sync.Mutex
	msgs []TapMessage
}

func (r *recordingTap) Tap(m TapMessage) {
	m.Query = bytes.Clone(m.Query)
	m.Response = bytes.Clone(m.Response)
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

func (r *recordingTap) taken() []TapMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]TapMessage(nil), r.msgs...)
}

// TestTapFromServer: the UDP and TCP loops hand every answered query to
// the snapshot's Tap with both messages, the client, the address it
// arrived on, its transport and when it was read; a dropped packet and a
// server without a Tap hand nothing.
func TestTapFromServer(t *testing.T) {
	s, addr := startServer(t, TCPLimits{})
	rec := &recordingTap{}
	set(s.h, func(st *Settings) { st.Tap = rec })
	before := time.Now()

	m := new(dns.Msg)
	m.SetQuestion("www.example.com.", dns.TypeA)
	query, _ := m.Pack()
	for _, network := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: network, Timeout: 3 * time.Second}
		if _, _, err := c.Exchange(m, addr.String()); err != nil {
			t.Fatalf("%s: %v", network, err)
		}
	}
	// A response (QR=1) is dropped unanswered: not tapped.
	resp := new(dns.Msg)
	resp.SetReply(m)
	c := &dns.Client{Net: "udp", Timeout: 200 * time.Millisecond}
	_, _, _ = c.Exchange(resp, addr.String())

	got := rec.taken()
	if len(got) != 2 {
		t.Fatalf("tapped %d messages, want 2 (the UDP and the TCP query)", len(got))
	}
	for i, want := range []Transport{UDP, TCP} {
		g := got[i]
		if g.Transport != want || g.Server != addr || g.Client.Addr() != netip.MustParseAddr("127.0.0.1") || g.Client.Port() == 0 {
			t.Errorf("message %d: transport %v server %v client %v; want %v, %v, 127.0.0.1", i, g.Transport, g.Server, g.Client, want, addr)
		}
		// The query as sent, but for its ID (each exchange draws one).
		if len(g.Query) != len(query) || !bytes.Equal(g.Query[2:], query[2:]) {
			t.Errorf("message %d: query %x, want %x", i, g.Query, query)
		}
		var r dns.Msg
		if err := r.Unpack(g.Response); err != nil || !r.Response || r.Id != uint16(g.Query[0])<<8|uint16(g.Query[1]) || len(r.Answer) != 1 {
			t.Errorf("message %d: response %v (%v)", i, r.String(), err)
		}
		if g.Received.Before(before) || time.Since(g.Received) > time.Minute {
			t.Errorf("message %d: received at %v, the test started at %v", i, g.Received, before)
		}
	}

	set(s.h, func(st *Settings) { st.Tap = nil })
	if _, _, err := (&dns.Client{Timeout: 3 * time.Second}).Exchange(m, addr.String()); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.taken()); n != 2 {
		t.Errorf("Tap removed: %d messages, want still 2", n)
	}
}

// TestTapOffDoesNotAllocate: a worker whose snapshot has no Tap hands
// nothing on and allocates nothing.
func TestTapOffDoesNotAllocate(t *testing.T) {
	w := testHandler(t).NewWorker()
	m := new(dns.Msg)
	m.SetQuestion("www.example.com.", dns.TypeA)
	p, _ := m.Pack()
	now := time.Now()
	server := netip.MustParseAddrPort("127.0.0.1:53")
	if a := testing.AllocsPerRun(1000, func() {
		resp, _ := w.Handle(p, testSrc, UDP)
		if w.Tapping() {
			w.Tap(p, resp, server, UDP, now)
		}
	}); a != 0 {
		t.Errorf("%.1f allocations a query, want 0", a)
	}
}

// countingTap counts what it is given.
type countingTap struct{ n int }

func (c *countingTap) Tap(TapMessage) { c.n++ }

// TestTapEvery: with TapEvery a worker hands 1 in TapEvery answered
// queries to the Tap, at random gaps, and every one without it.
func TestTapEvery(t *testing.T) {
	m := new(dns.Msg)
	m.SetQuestion("www.example.com.", dns.TypeA)
	p, _ := m.Pack()
	server := netip.MustParseAddrPort("127.0.0.1:53")
	for _, tc := range []struct{ every, lo, hi int }{{0, 20000, 20000}, {1, 20000, 20000}, {10, 1900, 2100}, {1000, 10, 30}} {
		h := testHandler(t)
		c := &countingTap{}
		set(h, func(s *Settings) { s.Tap, s.TapEvery = c, tc.every })
		w := h.NewWorker()
		for range 20000 {
			resp, _ := w.Handle(p, testSrc, UDP)
			w.Tap(p, resp, server, UDP, time.Time{})
		}
		if c.n < tc.lo || c.n > tc.hi {
			t.Errorf("TapEvery %d: %d of 20000 tapped, want %d..%d", tc.every, c.n, tc.lo, tc.hi)
		}
	}
}

// TestTapEveryChange: a new rate draws a new gap, so the first query after
// a reload to a rare rate is not taken just because the old rate was 1.
func TestTapEveryChange(t *testing.T) {
	m := new(dns.Msg)
	m.SetQuestion("www.example.com.", dns.TypeA)
	p, _ := m.Pack()
	h := testHandler(t)
	c := &countingTap{}
	set(h, func(s *Settings) { s.Tap, s.TapEvery = c, 2 })
	w := h.NewWorker()
	for range 100 {
		resp, _ := w.Handle(p, testSrc, UDP)
		w.Tap(p, resp, testSrc, UDP, time.Time{})
	}
	before := c.n
	set(h, func(s *Settings) { s.TapEvery = 1_000_000 })
	for range 100 { // taken with a chance of 1 in 10,000
		resp, _ := w.Handle(p, testSrc, UDP)
		w.Tap(p, resp, testSrc, UDP, time.Time{})
	}
	if c.n != before {
		t.Errorf("after the change to 1 in 1,000,000, %d of 100 queries were taken", c.n-before)
	}
}
