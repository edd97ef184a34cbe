package anycastctl_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/anycastctl"
)

// pop is a DNS server on 127.0.0.1 (UDP and TCP on one port) that answers
// like a PoP: NSID when asked for it, truncation over UDP.
type pop struct {
	addr string

	mu      sync.Mutex
	n       int
	queries []*dns.Msg
	// script gives the NSID of the nth query (from 1), or drop to not answer.
	script func(n int) (nsid []byte, drop bool)
}

func startPoP(t *testing.T, script func(n int) ([]byte, bool)) *pop {
	t.Helper()
	p := &pop{script: script}
	var pc net.PacketConn
	var ln net.Listener
	for range 20 {
		var err error
		pc, err = net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
		pc = nil
	}
	if pc == nil {
		t.Fatal("no port free for both UDP and TCP")
	}
	p.addr = pc.LocalAddr().String()
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: p}, {Listener: ln, Handler: p}} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
	return p
}

func (p *pop) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	p.mu.Lock()
	p.n++
	n := p.n
	p.queries = append(p.queries, r.Copy())
	p.mu.Unlock()
	nsid, drop := p.script(n)
	if drop {
		return
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	q := r.Question[0]
	switch {
	case q.Name == "www.example.com." && q.Qtype == dns.TypeA:
		rr, _ := dns.NewRR("www.example.com. 300 IN A 192.0.2.1")
		m.Answer = append(m.Answer, rr)
	case q.Name == "big.example.com." && q.Qtype == dns.TypeTXT:
		for i := range 7 {
			rr, _ := dns.NewRR(fmt.Sprintf("big.example.com. 60 IN TXT %q", strings.Repeat(string(rune('a'+i)), 200)))
			m.Answer = append(m.Answer, rr)
		}
	case q.Name == "other.example.com.":
		m.Question[0].Name = "mismatch.example.com."
	default:
		m.Rcode = dns.RcodeNameError
		rr, _ := dns.NewRR("example.com. 3600 IN SOA ns1.example.com. admin.example.com. 1 7200 3600 1209600 300")
		m.Ns = append(m.Ns, rr)
	}
	if o := r.IsEdns0(); o != nil {
		m.SetEdns0(1232, false)
		for _, e := range o.Option {
			if _, ok := e.(*dns.EDNS0_NSID); ok && nsid != nil {
				m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: hex.EncodeToString(nsid)})
			}
		}
	}
	if w.RemoteAddr().Network() == "udp" {
		size := dns.MinMsgSize
		if o := r.IsEdns0(); o != nil {
			size = int(o.UDPSize())
		}
		m.Truncate(size)
	}
	w.WriteMsg(m)
}

func (p *pop) Queries() []*dns.Msg {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*dns.Msg(nil), p.queries...)
}

func always(nsid string) func(int) ([]byte, bool) {
	return func(int) ([]byte, bool) { return []byte(nsid), false }
}

func mustQuestion(t *testing.T, name, typ string) anycastctl.Question {
	t.Helper()
	q, err := anycastctl.ParseQuestion(name, typ)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestQuery(t *testing.T) {
	for _, tc := range []struct {
		name        string
		script      func(int) ([]byte, bool)
		tcp         bool
		qname, qtyp string
		wantPoP     string
		wantNSID    []byte
		wantRcode   int
		wantAnswers int
		wantVia     string
		wantRetried bool
	}{
		{name: "udp", script: always("ams1"), qname: "www.example.com", wantPoP: "ams1", wantNSID: []byte("ams1"),
			wantAnswers: 1, wantVia: "udp"},
		{name: "tcp", script: always("fra1"), tcp: true, qname: "www.example.com", qtyp: "a", wantPoP: "fra1",
			wantNSID: []byte("fra1"), wantAnswers: 1, wantVia: "tcp"},
		{name: "nxdomain", script: always("ams1"), qname: "nope.example.com", qtyp: "AAAA", wantPoP: "ams1",
			wantNSID: []byte("ams1"), wantRcode: dns.RcodeNameError, wantVia: "udp"},
		{name: "truncated then tcp", script: always("ams1"), qname: "big.example.com", qtyp: "TXT", wantPoP: "ams1",
			wantNSID: []byte("ams1"), wantAnswers: 7, wantVia: "tcp", wantRetried: true},
		{name: "no nsid", script: func(int) ([]byte, bool) { return nil, false }, qname: "www.example.com",
			wantAnswers: 1, wantVia: "udp"},
		{name: "binary nsid", script: func(int) ([]byte, bool) { return []byte{0, 1, 0xfe}, false }, qname: "www.example.com",
			wantPoP: "0x0001fe", wantNSID: []byte{0, 1, 0xfe}, wantAnswers: 1, wantVia: "udp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startPoP(t, tc.script)
			q := mustQuestion(t, tc.qname, tc.qtyp)
			r, err := anycastctl.Query(t.Context(), anycastctl.DigOptions{Server: p.addr, TCP: tc.tcp, Timeout: 5 * time.Second}, q)
			if err != nil {
				t.Fatal(err)
			}
			if r.PoP() != tc.wantPoP || !bytes.Equal(r.NSID, tc.wantNSID) {
				t.Errorf("PoP %q, NSID %x; want %q, %x", r.PoP(), r.NSID, tc.wantPoP, tc.wantNSID)
			}
			if r.Msg.Rcode != tc.wantRcode || len(r.Msg.Answer) != tc.wantAnswers {
				t.Errorf("rcode %d with %d answers, want %d with %d", r.Msg.Rcode, len(r.Msg.Answer), tc.wantRcode, tc.wantAnswers)
			}
			if r.Transport != tc.wantVia || r.Retried != tc.wantRetried {
				t.Errorf("transport %s retried %v, want %s %v", r.Transport, r.Retried, tc.wantVia, tc.wantRetried)
			}
			if r.RTT <= 0 {
				t.Errorf("rtt %v", r.RTT)
			}
			for _, m := range p.Queries() {
				o := m.IsEdns0()
				if o == nil || len(o.Option) != 1 || o.Option[0].Option() != dns.EDNS0NSID {
					t.Errorf("query without exactly the NSID option: %v", m)
				}
				if m.RecursionDesired {
					t.Error("query with RD set")
				}
			}
		})
	}
}

func TestQueryErrors(t *testing.T) {
	p := startPoP(t, func(n int) ([]byte, bool) { return nil, true })
	opts := anycastctl.DigOptions{Server: p.addr, Timeout: 100 * time.Millisecond}
	_, err := anycastctl.Query(t.Context(), opts, mustQuestion(t, "www.example.com", ""))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("dropped query: %v, want a timeout", err)
	}
	if err != nil && !strings.HasPrefix(err.Error(), "udp "+p.addr+": ") {
		t.Errorf("error %q does not name transport and server", err)
	}

	// Cancellation interrupts a read long before the timeout.
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err = anycastctl.Query(ctx, anycastctl.DigOptions{Server: p.addr, Timeout: time.Minute}, mustQuestion(t, "www.example.com", ""))
	if !errors.Is(err, context.Canceled) || time.Since(start) > 10*time.Second {
		t.Errorf("cancelled query: %v after %v, want context.Canceled at once", err, time.Since(start))
	}

	good := startPoP(t, always("ams1"))
	_, err = anycastctl.Query(t.Context(), anycastctl.DigOptions{Server: good.addr}, mustQuestion(t, "other.example.com", ""))
	if err == nil || !strings.Contains(err.Error(), "another question") {
		t.Errorf("answer to another question: %v", err)
	}
}

func TestRepeatFailover(t *testing.T) {
	// ams1 answers three queries, then fails (one query lost while the
	// routes converge), then fra1 answers.
	p := startPoP(t, func(n int) ([]byte, bool) {
		switch {
		case n <= 3:
			return []byte("ams1"), false
		case n == 4:
			return nil, true
		}
		return []byte("fra1"), false
	})
	var out bytes.Buffer
	opts := anycastctl.DigOptions{Server: p.addr, Timeout: 200 * time.Millisecond}
	if err := anycastctl.Repeat(t.Context(), &out, opts, mustQuestion(t, "www.example.com", "A"), 6, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var pops []string
	row := regexp.MustCompile(`^\s+(\d+)\s+(\S+)\s+(\S+)`)
	for _, l := range lines {
		if m := row.FindStringSubmatch(l); m != nil {
			pops = append(pops, m[2]+" "+m[3])
		}
	}
	want := []string{"ams1 NOERROR", "ams1 NOERROR", "ams1 NOERROR", "- error", "fra1 NOERROR", "fra1 NOERROR"}
	if diff := cmp.Diff(want, pops); diff != "" {
		t.Errorf("per-query lines (-want +got):\n%s\n%s", diff, out.String())
	}
	summary := "--- www.example.com. A @" + p.addr + ": 6 queries, 5 answers, 1 error, 1 PoP change"
	if !strings.Contains(out.String(), summary) {
		t.Errorf("output lacks %q:\n%s", summary, out.String())
	}
	for _, re := range []string{`(?m)^ams1\s+3\s+60\.0%\s`, `(?m)^fra1\s+2\s+40\.0%\s`} {
		if !regexp.MustCompile(re).MatchString(out.String()) {
			t.Errorf("summary lacks %s:\n%s", re, out.String())
		}
	}
}

func TestRepeatUntilCancelled(t *testing.T) {
	p := startPoP(t, always("ams1"))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- anycastctl.Repeat(ctx, &out, anycastctl.DigOptions{Server: p.addr}, mustQuestion(t, "www.example.com", ""), 0, time.Millisecond)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for len(p.Queries()) < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Repeat: %v", err)
	}
	if !strings.Contains(out.String(), "--- www.example.com. A @") {
		t.Errorf("no summary after interrupt:\n%s", out.String())
	}
}

func TestRepeatNoAnswer(t *testing.T) {
	p := startPoP(t, func(int) ([]byte, bool) { return nil, true })
	var out bytes.Buffer
	err := anycastctl.Repeat(t.Context(), &out, anycastctl.DigOptions{Server: p.addr, Timeout: 50 * time.Millisecond},
		mustQuestion(t, "www.example.com", ""), 2, 0)
	if err == nil || err.Error() != "no answer to 2 queries" {
		t.Errorf("error %v, want no answer to 2 queries", err)
	}
	if !strings.Contains(out.String(), "2 queries, 0 answers, 2 errors, 0 PoP changes") {
		t.Errorf("summary:\n%s", out.String())
	}
}

func TestWriteReplyGolden(t *testing.T) {
	p := startPoP(t, always("ams1"))
	var out bytes.Buffer
	for _, tc := range []struct {
		name, typ string
		tcp       bool
	}{{"www.example.com", "A", false}, {"nope.example.com", "A", true}, {"big.example.com", "TXT", false}} {
		q := mustQuestion(t, tc.name, tc.typ)
		r, err := anycastctl.Query(t.Context(), anycastctl.DigOptions{Server: p.addr, TCP: tc.tcp}, q)
		if err != nil {
			t.Fatal(err)
		}
		r.RTT = 1234567 * time.Nanosecond
		r.Msg.Id = 4321
		if err := anycastctl.WriteReply(&out, "192.0.2.53:53", q, r); err != nil {
			t.Fatal(err)
		}
		out.WriteString("====\n")
	}
	golden(t, "dig.golden", out.Bytes())
}

func TestTallyGolden(t *testing.T) {
	reply := func(nsid string, rtt time.Duration) anycastctl.Reply {
		var b []byte
		if nsid != "-" {
			b = []byte(nsid)
		}
		return anycastctl.Reply{NSID: b, RTT: rtt}
	}
	var tl anycastctl.Tally
	tl.Add(reply("ams1", 800*time.Microsecond), nil)
	tl.Add(reply("ams1", 1200*time.Microsecond), nil)
	tl.Add(anycastctl.Reply{}, errors.New("timeout"))
	tl.Add(reply("fra1", 12*time.Millisecond), nil)
	tl.Add(reply("-", 3*time.Millisecond), nil)
	tl.Add(reply("fra1", 14*time.Millisecond), nil)
	tl.Add(reply("fra1", 13*time.Millisecond), nil)
	var out bytes.Buffer
	if err := tl.WriteSummary(&out, "192.0.2.53:53", mustQuestion(t, "www.example.com", "AAAA")); err != nil {
		t.Fatal(err)
	}
	golden(t, "summary.golden", out.Bytes())
}

func TestParseQuestion(t *testing.T) {
	for _, tc := range []struct {
		name, typ string
		want      anycastctl.Question
		wantErr   string
	}{
		{name: "example.com", want: anycastctl.Question{Name: "example.com.", Type: dns.TypeA}},
		{name: "example.com.", typ: "aaaa", want: anycastctl.Question{Name: "example.com.", Type: dns.TypeAAAA}},
		{name: ".", typ: "NS", want: anycastctl.Question{Name: ".", Type: dns.TypeNS}},
		{name: "x.example", typ: "TYPE65", want: anycastctl.Question{Name: "x.example.", Type: dns.TypeHTTPS}},
		{name: "x.example", typ: "type65280", want: anycastctl.Question{Name: "x.example.", Type: 65280}},
		{name: "x.example", typ: "TXT", want: anycastctl.Question{Name: "x.example.", Type: dns.TypeTXT}},
		{name: "x.example", typ: "BOGUS", wantErr: `unknown query type "BOGUS"`},
		{name: "x.example", typ: "TYPE70000", wantErr: `unknown query type "TYPE70000"`},
		{name: "x.example", typ: "65", wantErr: `unknown query type "65"`},
		{name: "x.example", typ: "AXFR", wantErr: "query type AXFR: zone transfers are not supported"},
		{name: "x.example", typ: "OPT", wantErr: "query type OPT cannot be asked"},
		{name: "", wantErr: `invalid name ""`},
		{name: "a..b", wantErr: `invalid name "a..b"`},
	} {
		t.Run(tc.name+"/"+tc.typ, func(t *testing.T) {
			got, err := anycastctl.ParseQuestion(tc.name, tc.typ)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Errorf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestServerAddr(t *testing.T) {
	for _, tc := range []struct {
		in, want, wantErr string
	}{
		{in: "192.0.2.53", want: "192.0.2.53:53"},
		{in: "192.0.2.53:5353", want: "192.0.2.53:5353"},
		{in: "::1", want: "[::1]:53"},
		{in: "[2001:db8::53]", want: "[2001:db8::53]:53"},
		{in: "[::1]:5353", want: "[::1]:5353"},
		{in: "ns1.example.net", want: "ns1.example.net:53"},
		{in: "ns1.example.net:8053", want: "ns1.example.net:8053"},
		{in: "", wantErr: "empty server address"},
		{in: "1.2.3.4:0", wantErr: `invalid server address "1.2.3.4:0": bad port "0"`},
		{in: "1.2.3.4:dns", wantErr: `invalid server address "1.2.3.4:dns": bad port "dns"`},
		{in: ":53", wantErr: `invalid server address ":53": no host`},
		{in: "[::1", wantErr: `invalid server address "[::1"`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := anycastctl.ServerAddr(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Errorf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestQueryRefused: a query to a port nothing listens on fails with an
// error that names the transport and the address and matches
// ErrNoServer, and Hint points at -server and the standalone's port.
func TestQueryRefused(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close() // now nothing listens: the kernel answers port unreachable
	for _, tcp := range []bool{false, true} {
		opts := anycastctl.DigOptions{Server: addr, TCP: tcp, Timeout: 2 * time.Second}
		_, err := anycastctl.Query(t.Context(), opts, mustQuestion(t, "www.example.com", ""))
		transport := map[bool]string{false: "udp", true: "tcp"}[tcp]
		if !errors.Is(err, anycastctl.ErrNoServer) || err.Error() != transport+" "+addr+": nothing listens there (connection refused)" {
			t.Errorf("%s: %v, want ErrNoServer naming the address", transport, err)
		}
		hint := anycastctl.Hint(addr, err)
		if !strings.Contains(hint, "Nothing serves DNS at "+addr) || !strings.Contains(hint, "-server 127.0.0.1:5353") {
			t.Errorf("hint %q", hint)
		}
	}
	var out bytes.Buffer
	err = anycastctl.Repeat(t.Context(), &out, anycastctl.DigOptions{Server: addr, Timeout: time.Second}, mustQuestion(t, "www.example.com", ""), 2, 0)
	if !errors.Is(err, anycastctl.ErrNoServer) {
		t.Errorf("Repeat: %v, want ErrNoServer", err)
	}
	if h := anycastctl.Hint(addr, errors.New("timeout")); h != "" {
		t.Errorf("hint for another error: %q", h)
	}
	if h := anycastctl.Hint(anycastctl.StandaloneServer, err); strings.Contains(h, "serves on") {
		t.Errorf("hint %q suggests the address already asked", h)
	}
}
