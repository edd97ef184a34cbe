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
