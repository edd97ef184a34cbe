package dnsserver

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/listen"
	"github.com/anycastdns/anycastdns/internal/ratelimit"
)

// TestOutcome: Handle returns what answering came to — rcode, zone,
// flags, cookie state, TSIG, rate limiting — and the worker keeps no query
// state between two queries.
func TestOutcome(t *testing.T) {
	h := testHandler(t)
	l, err := ratelimit.NewRRL(ratelimit.RRLConfig{Rate: 1, Slip: 0})
	if err != nil {
		t.Fatal(err)
	}
	set(h, func(s *Settings) {
		s.Cookies = ratelimit.NewCookies(ratelimit.RandomCookieSecret())
		s.TSIG = testKeys()
		s.RRL = l
	})
	w := h.NewWorker()
	pack := func(m *dns.Msg) []byte {
		p, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	query := func(name string, qtype uint16) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		return m
	}
	src := netip.MustParseAddrPort("192.0.2.9:1")

	resp, out := w.Handle(pack(query("www.example.com.", dns.TypeA)), src, UDP)
	if resp == nil || out.Rcode != dns.RcodeSuccess || out.Qtype != dns.TypeA || out.Zone == nil || out.Zone.Origin != "example.com." ||
		out.Flags&flagAA == 0 || out.Flags&flagQR == 0 || out.Cookie != CookieNone || out.Signed || out.RRL != ratelimit.Pass {
		t.Errorf("answer: %+v", out)
	}
	// The same again from the same network is over the rate: dropped.
	resp, out = w.Handle(pack(query("www.example.com.", dns.TypeA)), src, UDP)
	if resp != nil || out.RRL != ratelimit.Drop || out.Flags != 0 {
		t.Errorf("over the rate: %v, %+v", resp != nil, out)
	}
	// Refused: no zone, whatever the previous query found.
	_, out = w.Handle(pack(query("example.org.", dns.TypeA)), netip.MustParseAddrPort("198.51.100.1:1"), TCP)
	if out.Rcode != dns.RcodeRefused || out.Zone != nil || out.RRL != ratelimit.Pass {
		t.Errorf("refused: %+v", out)
	}
	// A client cookie gets a new server cookie; the server cookie back is
	// valid and exempt from the limit.
	resp, out = w.Handle(pack(withCookie(t, "mail.example.com.", "0123456789abcdef")), src, UDP)
	if out.Cookie != CookieNew || resp == nil {
		t.Fatalf("client cookie: %+v", out)
	}
	var r dns.Msg
	if err := r.Unpack(resp); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		resp, out = w.Handle(pack(withCookie(t, "mail.example.com.", cookieOf(&r))), src, UDP)
		if out.Cookie != CookieValid || resp == nil || out.RRL != ratelimit.Pass {
			t.Fatalf("valid cookie: %+v", out)
		}
	}
	// A plain query after them: nothing of theirs is left in its answer
	// (the worker resets its query state).
	resp, out = w.Handle(pack(query("www.example.com.", dns.TypeTXT)), netip.MustParseAddrPort("203.0.113.1:1"), TCP)
	var plain dns.Msg
	if err := plain.Unpack(resp); err != nil {
		t.Fatal(err)
	}
	if plain.IsEdns0() != nil || out.Cookie != CookieNone || out.Zone == nil {
		t.Errorf("plain query after a cookie: OPT %v, %+v", plain.IsEdns0(), out)
	}
	// Signed with an unknown key: NOTAUTH with BADKEY.
	q, _ := signedQuery(t, "www.example.com.", dns.TypeA, false, "k2.", dns.HmacSHA256, testSecret, 0)
	if _, out = w.Handle(q, src, TCP); !out.Signed || out.TSIG != dns.RcodeBadKey || out.Rcode != dns.RcodeNotAuth || out.Cookie != CookieNone {
		t.Errorf("unknown key: %+v", out)
	}
	// A plain query after a signed one is not signed.
	if resp, out = w.Handle(pack(query("www.example.com.", dns.TypeA)), src, TCP); out.Signed || out.Rcode != dns.RcodeSuccess {
		t.Errorf("plain query after a signed one: %+v", out)
	} else if err := plain.Unpack(resp); err != nil || plain.IsTsig() != nil {
		t.Errorf("plain answer after a signed query has a TSIG record: %v", err)
	}
	// Identity: no zone.
	ch := query("id.server.", dns.TypeTXT)
	ch.Question[0].Qclass = dns.ClassCHAOS
	if _, out = w.Handle(pack(ch), src, TCP); out.Rcode != dns.RcodeSuccess || out.Zone != nil || out.Signed {
		t.Errorf("identity: %+v", out)
	}
	// Dropped without an answer: a response.
	resp, out = w.Handle(pack(new(dns.Msg).SetReply(query("www.example.com.", dns.TypeA))), src, UDP)
	if resp != nil || out.Flags != 0 {
		t.Errorf("a response was answered: %+v", out)
	}
}

// TestOneSnapshot: settings replaced while queries run never mix: each
// answer has the identity and the cookie setting of one snapshot.
func TestOneSnapshot(t *testing.T) {
	h := testHandler(t)
	a := h.Settings()
	a.Identity.Name, a.Cookies = "pop-a", nil
	b := a
	b.Identity.Name, b.Cookies = "pop-b", ratelimit.NewCookies(ratelimit.RandomCookieSecret())
	h.SetSettings(a)
	m := withCookie(t, "www.example.com.", "0123456789abcdef")
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
	p, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				h.SetSettings(b)
			} else {
				h.SetSettings(a)
			}
		}
	})
	w := h.NewWorker()
	deadline := time.Now().Add(300 * time.Millisecond)
	for n := 0; time.Now().Before(deadline); n++ {
		resp, out := w.Handle(p, testSrc, UDP)
		var r dns.Msg
		if err := r.Unpack(resp); err != nil {
			t.Fatal(err)
		}
		nsid := ""
		for _, o := range r.IsEdns0().Option {
			if n, ok := o.(*dns.EDNS0_NSID); ok {
				nsid = n.Nsid
			}
		}
		cookie := cookieOf(&r) != ""
		if (nsid == "706f702d61" && (cookie || out.Cookie != CookieNone)) || (nsid == "706f702d62" && (!cookie || out.Cookie != CookieNew)) ||
			(nsid != "706f702d61" && nsid != "706f702d62") {
			t.Fatalf("query %d: NSID %s with cookie %t (%v): two snapshots mixed", n, nsid, cookie, out.Cookie)
		}
	}
	close(stop)
	wg.Wait()
}

// TestTCPDefaults: the DNS server's TCP limits, as the listener applies
// them: a new connection is never refused for want of room (eviction),
// 64 per source prefix (/32, /64), a 1s idle timeout past half of 1,024
// slots; the busy timeout is never longer than the idle one.
func TestTCPDefaults(t *testing.T) {
	h := NewHandler(Settings{}, nil)
	got := h.Runtime().tcp
	want := listen.TCPLimits{MaxConns: 1024, PerSource: 64, SourceV4: 32, SourceV6: 64, Idle: 10 * time.Second, BusyIdle: time.Second, Evict: true}
	if got != want {
		t.Errorf("defaults %+v, want %+v", got, want)
	}
	h.SetSettings(Settings{TCP: TCPLimits{Idle: 500 * time.Millisecond, PerSource: 5000, MaxConns: 10}})
	if got := h.Runtime().tcp; got.BusyIdle != 500*time.Millisecond || got.PerSource != 10 {
		t.Errorf("bounded: %+v, want the busy timeout at most the idle one and per source at most all", got)
	}
}
