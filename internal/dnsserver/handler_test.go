package dnsserver

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/ratelimit"
	"github.com/anycastdns/anycastdns/internal/zone"
)

func testHandler(t testing.TB) *Handler {
	t.Helper()
	z, err := zone.Load("example.com.", "testdata/example.com.zone")
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(Settings{Identity: Identity{Name: "pop-test", NSID: true, IDServer: true, HostnameBind: true, VersionBind: true, Version: "anycastdns-test"}, MaxUDP: 1232}, &Stats{})
	h.SetZones(zone.NewSet(z))
	return h
}

// testSrc is where the tests' queries come from.
var testSrc = netip.MustParseAddrPort("192.0.2.7:5300")

// answer is w's response to p from testSrc.
func answer(w *Worker, p []byte, tr Transport) []byte {
	resp, _ := w.Handle(p, testSrc, tr)
	return resp
}

// set changes the handler's settings, as a reload does: a new set whole.
func set(h *Handler, change func(s *Settings)) {
	s := h.Settings()
	change(&s)
	h.SetSettings(s)
}

func ask(t testing.TB, w *Worker, m *dns.Msg, tr Transport) *dns.Msg {
	t.Helper()
	return askFrom(t, w, testSrc, m, tr)
}

// askFrom is ask from src.
func askFrom(t testing.TB, w *Worker, src netip.AddrPort, m *dns.Msg, tr Transport) *dns.Msg {
	t.Helper()
	p, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := w.Handle(p, src, tr)
	if resp == nil {
		return nil
	}
	out := new(dns.Msg)
	if err := out.Unpack(resp); err != nil {
		t.Fatalf("unpack response to %v: %v", m.Question, err)
	}
	return out
}

func TestHandleBasics(t *testing.T) {
	h := testHandler(t)
	w := h.NewWorker()
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		rcode  int
		aa     bool
		answer int
		ns     int
		extra  int
	}{
		{"positive", "www.example.com.", dns.TypeA, dns.RcodeSuccess, true, 1, 0, 0},
		{"case", "WwW.ExAmPlE.CoM.", dns.TypeAAAA, dns.RcodeSuccess, true, 1, 0, 0},
		{"nodata", "www.example.com.", dns.TypeMX, dns.RcodeSuccess, true, 0, 1, 0},
		{"nxdomain", "nope.example.com.", dns.TypeA, dns.RcodeNameError, true, 0, 1, 0},
		{"cname chain", "chain.example.com.", dns.TypeA, dns.RcodeSuccess, true, 3, 0, 0},
		{"cname out", "out.example.com.", dns.TypeA, dns.RcodeSuccess, true, 1, 0, 0},
		{"wildcard", "x.wild.example.com.", dns.TypeA, dns.RcodeSuccess, true, 1, 0, 0},
		{"referral", "host.sub.example.com.", dns.TypeA, dns.RcodeSuccess, false, 0, 1, 1},
		{"ent", "b.ent.example.com.", dns.TypeA, dns.RcodeSuccess, true, 0, 1, 0},
		{"mx additional", "example.com.", dns.TypeMX, dns.RcodeSuccess, true, 1, 0, 1},
		{"dname", "www.dn.example.com.", dns.TypeA, dns.RcodeSuccess, true, 2, 0, 0},
		{"refused", "example.org.", dns.TypeA, dns.RcodeRefused, false, 0, 0, 0},
		{"any", "www.example.com.", dns.TypeANY, dns.RcodeSuccess, true, 1, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := new(dns.Msg)
			m.SetQuestion(tt.qname, tt.qtype)
			r := ask(t, w, m, UDP)
			if r.Rcode != tt.rcode || r.Authoritative != tt.aa || len(r.Answer) != tt.answer || len(r.Ns) != tt.ns || len(r.Extra) != tt.extra {
				t.Errorf("got rcode=%d aa=%v an=%d ns=%d ar=%d\n%v", r.Rcode, r.Authoritative, len(r.Answer), len(r.Ns), len(r.Extra), r)
			}
			if r.Question[0].Name != tt.qname {
				t.Errorf("question %q, want the query's case %q", r.Question[0].Name, tt.qname)
			}
			if r.Id != m.Id {
				t.Errorf("id %d, want %d", r.Id, m.Id)
			}
		})
	}
}

func TestTruncationAndEDNS(t *testing.T) {
	h := testHandler(t)
	w := h.NewWorker()
	m := new(dns.Msg)
	m.SetQuestion("big.example.com.", dns.TypeTXT)
	r := ask(t, w, m, UDP)
	if !r.Truncated {
		t.Errorf("512-byte answer not truncated: %v", r)
	}
	m.SetEdns0(4096, false)
	r = ask(t, w, m, UDP)
	if r.Truncated || len(r.Answer) != 5 || r.IsEdns0() == nil || r.IsEdns0().UDPSize() != 1232 {
		t.Errorf("EDNS answer wrong: %v", r)
	}
	r = ask(t, w, m, TCP)
	if r.Truncated || len(r.Answer) != 5 {
		t.Errorf("TCP answer wrong: %v", r)
	}
	m.IsEdns0().SetVersion(1)
	r = ask(t, w, m, UDP)
	if r.Rcode != dns.RcodeBadVers {
		t.Errorf("rcode %d, want BADVERS", r.Rcode)
	}
}

func TestNSIDAndChaos(t *testing.T) {
	h := testHandler(t)
	w := h.NewWorker()
	m := new(dns.Msg)
	m.SetQuestion("www.example.com.", dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
	r := ask(t, w, m, UDP)
	var got string
	for _, o := range r.IsEdns0().Option {
		if n, ok := o.(*dns.EDNS0_NSID); ok {
			got = n.Nsid
		}
	}
	if got != "706f702d74657374" {
		t.Errorf("nsid %q", got)
	}
	m = new(dns.Msg)
	m.SetQuestion("id.server.", dns.TypeTXT)
	m.Question[0].Qclass = dns.ClassCHAOS
	r = ask(t, w, m, UDP)
	if len(r.Answer) != 1 || r.Answer[0].(*dns.TXT).Txt[0] != "pop-test" {
		t.Errorf("id.server: %v", r)
	}
}

func TestMalformed(t *testing.T) {
	h := testHandler(t)
	w := h.NewWorker()
	for _, p := range [][]byte{
		nil,
		{1, 2, 3},
		{0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0}, // a response
		{0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1},
		{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'w'},
		{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1},
	} {
		resp := answer(w, p, UDP)
		if resp == nil {
			continue
		}
		var m dns.Msg
		if err := m.Unpack(resp); err != nil {
			t.Errorf("%x: unparsable response %x: %v", p, resp, err)
			continue
		}
		if m.Rcode != dns.RcodeFormatError {
			t.Errorf("%x: rcode %d, want FORMERR", p, m.Rcode)
		}
	}
}

func BenchmarkHandle(b *testing.B) {
	h := testHandler(b)
	w := h.NewWorker()
	queries := map[string]*dns.Msg{}
	for _, q := range []struct {
		n string
		t uint16
	}{{"www.example.com.", dns.TypeA}, {"nope.example.com.", dns.TypeA}, {"x.wild.example.com.", dns.TypeA}, {"host.sub.example.com.", dns.TypeA}, {"chain.example.com.", dns.TypeA}} {
		m := new(dns.Msg)
		m.SetQuestion(q.n, q.t)
		queries[q.n] = m
	}
	for name, m := range queries {
		p, _ := m.Pack()
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if answer(w, p, UDP) == nil {
					b.Fatal("no answer")
				}
			}
		})
	}
}

func TestNotifyDispatch(t *testing.T) {
	h := testHandler(t)
	w := h.NewWorker()
	m := new(dns.Msg)
	m.SetNotify("example.com.")
	p, _ := m.Pack()
	// Without a handler NOTIFY is not implemented.
	var r dns.Msg
	if err := r.Unpack(answer(w, p, UDP)); err != nil || r.Rcode != dns.RcodeNotImplemented {
		t.Fatalf("no handler: %v %v", err, r.Rcode)
	}
	var got []byte
	h.SetNotify(func(req []byte, _ netip.AddrPort) []byte {
		got = req
		resp := new(dns.Msg)
		resp.SetReply(m)
		out, _ := resp.Pack()
		return out
	})
	if err := r.Unpack(answer(w, p, UDP)); err != nil || r.Rcode != dns.RcodeSuccess || r.Opcode != dns.OpcodeNotify {
		t.Fatalf("with handler: %v %v", err, r)
	}
	if string(got) != string(p) {
		t.Error("handler did not get the raw request")
	}
}

// TestRRL: over UDP, answers past the rate are dropped or, every Slip-th,
// sent truncated with the question only; TCP and NOTIFY are not limited;
// answers are limited per class and name.
func TestRRL(t *testing.T) {
	h := testHandler(t)
	l, err := ratelimit.NewRRL(ratelimit.RRLConfig{Rate: 2, Slip: 2})
	if err != nil {
		t.Fatal(err)
	}
	set(h, func(s *Settings) { s.RRL = l })
	w := h.NewWorker()
	src := testSrc

	pattern := func(qname string, qtype uint16, tr Transport, n int) string {
		t.Helper()
		var s []byte
		for range n {
			m := new(dns.Msg)
			m.SetQuestion(qname, qtype)
			m.SetEdns0(1232, false)
			r := askFrom(t, w, src, m, tr)
			switch {
			case r == nil:
				s = append(s, 'D')
			case r.Truncated:
				if len(r.Question) != 1 || r.Question[0].Name != qname || len(r.Answer)+len(r.Ns)+len(r.Extra) != 0 {
					t.Errorf("slipped answer to %s: %v", qname, r)
				}
				s = append(s, 'S')
			default:
				s = append(s, '.')
			}
		}
		return string(s)
	}
	for _, tc := range []struct {
		qname string
		qtype uint16
		tr    Transport
		want  string
	}{
		{"www.example.com.", dns.TypeA, UDP, "..DSDS"},
		{"WWW.example.com.", dns.TypeA, UDP, "DS"},      // same name, other case: same bucket
		{"www.example.com.", dns.TypeMX, UDP, "..DS"},   // NODATA: its own class
		{"www.example.com.", dns.TypeA, TCP, "....."},   // TCP is never limited
		{"nope1.example.com.", dns.TypeA, UDP, ".."},    // NXDOMAIN: by zone,
		{"nope2.example.com.", dns.TypeA, UDP, "DS"},    // so random names share it
		{"host.sub.example.com.", dns.TypeA, UDP, ".."}, // referral: by zone too
		{"other.sub.example.com.", dns.TypeA, UDP, "DS"},
		{"example.org.", dns.TypeA, UDP, "..DS"}, // REFUSED: an error, by source
		{"example.net.", dns.TypeA, UDP, "DS"},
	} {
		if got := pattern(tc.qname, tc.qtype, tc.tr, len(tc.want)); got != tc.want {
			t.Errorf("%s %s over %v: %s, want %s", tc.qname, dns.TypeToString[tc.qtype], tc.tr, got, tc.want)
		}
	}
	if d, s := h.stats.RRL(); d != 8 || s != 8 {
		t.Errorf("counted %d dropped, %d slipped; want 8 and 8", d, s)
	}

	// Another client network has buckets of its own.
	src = netip.MustParseAddrPort("198.51.100.7:5300")
	if got := pattern("www.example.com.", dns.TypeA, UDP, 3); got != "..D" {
		t.Errorf("other network: %s", got)
	}
	set(h, func(s *Settings) { s.RRL = nil })
	if got := pattern("www.example.com.", dns.TypeA, UDP, 3); got != "..." {
		t.Errorf("limiting off: %s", got)
	}
}

func TestSlipMalformed(t *testing.T) {
	// A response whose question does not parse keeps only its header.
	resp := []byte{0, 1, 0x84, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0xff}
	got := slip(resp)
	if len(got) != 12 || got[2]&0x02 == 0 || got[5] != 0 || got[7] != 0 {
		t.Errorf("slip = %x", got)
	}
}

func BenchmarkHandleRRL(b *testing.B) {
	h := testHandler(b)
	l, err := ratelimit.NewRRL(ratelimit.RRLConfig{Rate: ratelimit.MaxRate})
	if err != nil {
		b.Fatal(err)
	}
	set(h, func(s *Settings) { s.RRL = l })
	w := h.NewWorker()
	m := new(dns.Msg)
	m.SetQuestion("www.example.com.", dns.TypeA)
	p, _ := m.Pack()
	// Past MaxRate answers a second some are dropped; they cost the same
	// (the answer is built before the check).
	b.ReportAllocs()
	for b.Loop() {
		answer(w, p, UDP)
	}
}

// withCookie adds an EDNS COOKIE option of data (hex) to a new query.
func withCookie(t *testing.T, qname, data string) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(qname, dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: data})
	return m
}

func cookieOf(r *dns.Msg) string {
	if o := r.IsEdns0(); o != nil {
		for _, opt := range o.Option {
			if c, ok := opt.(*dns.EDNS0_COOKIE); ok {
				return c.Cookie
			}
		}
	}
	return ""
}

// TestCookies: a client cookie gets a Server Cookie back, a valid one is
// echoed, malformed options are FORMERR, valid cookies are exempt from
// rate limiting, and with cookies off the option is ignored.
func TestCookies(t *testing.T) {
	h := testHandler(t)
	set(h, func(s *Settings) { s.Cookies = ratelimit.NewCookies(ratelimit.RandomCookieSecret()) })
	w := h.NewWorker()
	const client = "0123456789abcdef"

	r := ask(t, w, withCookie(t, "www.example.com.", client), UDP)
	got := cookieOf(r)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || len(got) != 48 || got[:16] != client {
		t.Fatalf("first query: rcode %d, %d answers, cookie %q; want an answer and client+16-byte server cookie", r.Rcode, len(r.Answer), got)
	}
	if again := cookieOf(ask(t, w, withCookie(t, "www.example.com.", got), UDP)); again != got {
		t.Errorf("valid cookie not echoed: sent %s, got %s", got, again)
	}
	if tcp := cookieOf(ask(t, w, withCookie(t, "www.example.com.", got), TCP)); tcp != got {
		t.Errorf("over TCP: %s", tcp)
	}
	// Another client's cookie, or a forged one, is answered with a fresh one.
	forged := client + "01000000" + "00000000" + "0000000000000000"
	if c := cookieOf(ask(t, w, withCookie(t, "www.example.com.", forged), UDP)); c == forged || len(c) != 48 {
		t.Errorf("forged cookie answered with %s", c)
	}
	for _, bad := range []string{"0123", "0123456789abcdef0011", client + client + client + client + client + "00"} {
		if r := ask(t, w, withCookie(t, "www.example.com.", bad), UDP); r.Rcode != dns.RcodeFormatError {
			t.Errorf("COOKIE of %d bytes: rcode %s, want FORMERR", len(bad)/2, dns.RcodeToString[r.Rcode])
		}
	}

	l, err := ratelimit.NewRRL(ratelimit.RRLConfig{Rate: 1})
	if err != nil {
		t.Fatal(err)
	}
	set(h, func(s *Settings) { s.RRL = l })
	answered := func(data string) int {
		n := 0
		for range 5 {
			if r := ask(t, w, withCookie(t, "mail.example.com.", data), UDP); r != nil && !r.Truncated {
				n++
			}
		}
		return n
	}
	if n := answered(got); n != 5 {
		t.Errorf("valid cookie under RRL at 1/s: %d of 5 answered, want all", n)
	}
	if n := answered(client); n != 1 {
		t.Errorf("client cookie alone under RRL at 1/s: %d of 5 answered, want 1", n)
	}
	set(h, func(s *Settings) { s.RRL = nil })

	set(h, func(s *Settings) { s.Cookies = nil })
	if c := cookieOf(ask(t, w, withCookie(t, "www.example.com.", client), UDP)); c != "" {
		t.Errorf("cookies off: answered with cookie %s", c)
	}
}
