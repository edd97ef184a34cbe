package health

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// authServer answers SOA queries for its zones; the fields break it.
type authServer struct {
	zones    []string
	rcode    int    // for the zones; 0 = NOERROR
	noAA     bool   // clear the AA flag
	soas     int    // SOA records in the answer; 0 = 1
	owner    string // owner of the SOA; "" = the zone
	truncate bool

	mu      sync.Mutex
	queries map[string]int // by transport
	remotes map[string]bool
}

func (a *authServer) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	a.mu.Lock()
	if a.queries == nil {
		a.queries, a.remotes = map[string]int{}, map[string]bool{}
	}
	a.queries[w.RemoteAddr().Network()]++
	a.remotes[w.RemoteAddr().Network()+" "+w.RemoteAddr().String()] = true
	a.mu.Unlock()

	m := new(dns.Msg)
	m.SetReply(req)
	q := req.Question[0]
	served := false
	for _, z := range a.zones {
		served = served || strings.EqualFold(q.Name, z)
	}
	if !served || q.Qtype != dns.TypeSOA {
		m.Rcode = dns.RcodeRefused
		_ = w.WriteMsg(m)
		return
	}
	m.Rcode = a.rcode
	m.Authoritative = !a.noAA
	m.Truncated = a.truncate
	owner := q.Name
	if a.owner != "" {
		owner = a.owner
	}
	for i := range max(a.soas, 1) {
		if a.soas < 0 {
			break
		}
		rr, err := dns.NewRR(fmt.Sprintf("%s 300 IN SOA ns1.%s hostmaster.%s %d 7200 3600 1209600 300", owner, owner, owner, 100+i))
		if err != nil {
			panic(err)
		}
		m.Answer = append(m.Answer, rr)
	}
	_ = w.WriteMsg(m)
}

func (a *authServer) count(network string) (queries, conns int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for r := range a.remotes {
		if strings.HasPrefix(r, network+" ") {
			conns++
		}
	}
	return a.queries[network], conns
}

// listenPair opens a UDP socket and a TCP listener on the same loopback port.
func listenPair(t *testing.T) (net.PacketConn, net.Listener) {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln
		}
		_ = pc.Close()
	}
	t.Fatal("no loopback port free for both UDP and TCP")
	return nil, nil
}

// serve runs h on a loopback port over UDP and TCP, leaving out what is not
// wanted. maxTCP limits the queries per TCP connection (0 = no limit).
func serve(t *testing.T, h dns.Handler, udp, tcp bool, maxTCP int) netip.AddrPort {
	t.Helper()
	pc, ln := listenPair(t)
	addr := netip.MustParseAddrPort(pc.LocalAddr().String())
	start := func(s *dns.Server) {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		errc := make(chan error, 1)
		go func() { errc <- s.ActivateAndServe() }()
		select {
		case <-started:
		case err := <-errc:
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Shutdown() })
	}
	if udp {
		start(&dns.Server{PacketConn: pc, Handler: h})
	} else {
		_ = pc.Close()
	}
	if tcp {
		start(&dns.Server{Listener: ln, Handler: h, MaxTCPQueries: maxTCP})
	} else {
		_ = ln.Close()
	}
	return addr
}

// silent reads queries over UDP and accepts TCP connections, and never answers.
func silent(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, ln := listenPair(t)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = pc.Close()
		_ = ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		buf := make([]byte, 512)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	})
	wg.Go(func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	})
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

func zones(z ...string) func() []string { return func() []string { return z } }

func TestDNSCheck(t *testing.T) {
	const timeout = 2 * time.Second
	tests := []struct {
		name      string
		srv       *authServer
		udp, tcp  bool
		maxTCP    int
		zones     []string
		expired   []string // DNSCheck.Expired
		want      []string // substrings of the error; nil = passes
		notWanted []string // must not be in the error
	}{
		{
			name: "authoritative over udp and tcp",
			srv:  &authServer{zones: []string{"example.com.", "example.net."}},
			udp:  true, tcp: true,
			zones: []string{"example.com.", "example.net."},
		},
		{
			name: "zone names in any case, without the dot",
			srv:  &authServer{zones: []string{"example.com."}},
			udp:  true, tcp: true,
			zones: []string{"EXAMPLE.Com"},
		},
		{
			name: "server closing tcp after each query",
			srv:  &authServer{zones: []string{"a.test.", "b.test.", "c.test."}},
			udp:  true, tcp: true, maxTCP: 1,
			zones: []string{"a.test.", "b.test.", "c.test."},
		},
		{
			name: "tcp closed",
			srv:  &authServer{zones: []string{"example.com."}},
			udp:  true, tcp: false,
			zones:     []string{"example.com."},
			want:      []string{"dial tcp", "connection refused"},
			notWanted: []string{"over udp"},
		},
		{
			name: "udp closed",
			srv:  &authServer{zones: []string{"example.com."}},
			udp:  false, tcp: true,
			zones:     []string{"example.com."},
			want:      []string{"example.com. over udp:", "connection refused"},
			notWanted: []string{"tcp"},
		},
		{
			name: "servfail",
			srv:  &authServer{zones: []string{"example.com."}, rcode: dns.RcodeServerFailure},
			udp:  true, tcp: true,
			zones: []string{"example.com."},
			want:  []string{"example.com. over udp: rcode SERVFAIL", "example.com. over tcp: rcode SERVFAIL"},
		},
		{
			name: "no AA flag",
			srv:  &authServer{zones: []string{"example.com."}, noAA: true},
			udp:  true, tcp: true,
			zones: []string{"example.com."},
			want:  []string{"example.com. over udp: not authoritative (no AA flag)", "example.com. over tcp: not authoritative"},
		},
		{
			name: "zone not served",
			srv:  &authServer{zones: []string{"example.com."}},
			udp:  true, tcp: true,
			zones:     []string{"example.com.", "example.net."},
			want:      []string{"example.net. over udp: rcode REFUSED", "example.net. over tcp: rcode REFUSED"},
			notWanted: []string{"example.com."},
		},
		{
			name: "two SOA records",
			srv:  &authServer{zones: []string{"example.com."}, soas: 2},
			udp:  true, tcp: true,
			zones: []string{"example.com."},
			want:  []string{"over udp: 2 SOA records for the zone in the answer, want 1"},
		},
		{
			name: "no SOA record",
			srv:  &authServer{zones: []string{"example.com."}, soas: -1},
			udp:  true, tcp: true,
			zones: []string{"example.com."},
			want:  []string{"over tcp: 0 SOA records for the zone in the answer, want 1"},
		},
		{
			name: "SOA of another zone",
			srv:  &authServer{zones: []string{"example.com."}, owner: "example.org."},
			udp:  true, tcp: true,
			zones: []string{"example.com."},
			want:  []string{"over udp: 0 SOA records for the zone"},
		},
		{
			name: "truncated",
			srv:  &authServer{zones: []string{"example.com."}, truncate: true},
			udp:  true, tcp: true,
			zones: []string{"example.com."},
			want:  []string{"example.com. over udp: truncated"},
		},
		{
			// Expired zones answer SERVFAIL: they are not asked while
			// other zones are served.
			name: "expired zones not asked",
			srv:  &authServer{zones: []string{"example.com."}},
			udp:  true, tcp: true,
			zones:   []string{"example.com."},
			expired: []string{"old.example."},
		},
		{
			// Every zone expired: SERVFAIL proves the listeners answer.
			name: "every zone expired",
			srv:  &authServer{zones: []string{"a.example.", "b.example."}, rcode: dns.RcodeServerFailure},
			udp:  true, tcp: true,
			expired: []string{"a.example.", "b.example."},
		},
		{
			name: "every zone expired, tcp closed",
			srv:  &authServer{zones: []string{"a.example."}, rcode: dns.RcodeServerFailure},
			udp:  true, tcp: false,
			expired: []string{"a.example."},
			want:    []string{"dial tcp", "connection refused"},
		},
		{
			name: "expired zone not answered SERVFAIL",
			srv:  &authServer{zones: []string{"a.example."}},
			udp:  true, tcp: true,
			expired: []string{"a.example."},
			want:    []string{"a.example. over udp: expired zone answered NOERROR, want SERVFAIL"},
		},
		{
			name: "no zones",
			srv:  &authServer{},
			udp:  true, tcp: true,
			want: []string{"no zones to query"},
		},
		{
			name: "failures beyond three are counted",
			srv:  &authServer{},
			udp:  true, tcp: false,
			zones: []string{"a.", "b.", "c.", "d.", "e."},
			want:  []string{"a. over udp: rcode REFUSED, b. over udp: rcode REFUSED, c. over udp: rcode REFUSED and 2 more"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := serve(t, tt.srv, tt.udp, tt.tcp, tt.maxTCP)
			d := &DNSCheck{Addr: addr, Zones: zones(tt.zones...)}
			if tt.expired != nil {
				d.Expired = zones(tt.expired...)
			}
			ctx, cancel := context.WithTimeout(t.Context(), timeout)
			defer cancel()
			err := d.Check(ctx)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				asked := len(tt.zones)
				if asked == 0 {
					asked = len(tt.expired)
				}
				q, _ := tt.srv.count("udp")
				if q != asked {
					t.Errorf("udp queries = %d, want %d", q, asked)
				}
				q, conns := tt.srv.count("tcp")
				if q != asked {
					t.Errorf("tcp queries = %d, want %d", q, asked)
				}
				wantConns := 1
				if tt.maxTCP > 0 {
					wantConns = (asked + tt.maxTCP - 1) / tt.maxTCP
				}
				if conns != wantConns {
					t.Errorf("tcp connections = %d, want %d", conns, wantConns)
				}
				return
			}
			if err == nil {
				t.Fatal("Check passed")
			}
			t.Logf("error: %v", err)
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q", w)
				}
			}
			for _, w := range tt.notWanted {
				if strings.Contains(err.Error(), w) {
					t.Errorf("error contains %q", w)
				}
			}
		})
	}
}

func TestDNSCheckNoAnswerTimesOut(t *testing.T) {
	const timeout = 300 * time.Millisecond
	d := &DNSCheck{Addr: silent(t), Zones: zones("example.com.", "example.net.")}
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	start := time.Now()
	err := d.Check(ctx)
	took := time.Since(start)
	if err == nil {
		t.Fatal("Check passed")
	}
	t.Logf("error after %s: %v", took, err)
	if took > timeout+200*time.Millisecond {
		t.Errorf("Check took %s, want at most the timeout %s (+200ms for scheduling)", took, timeout)
	}
	// UDP gives each query half the time left (and a retry the rest), so
	// it reaches both zones; TCP waits for the first zone until the end.
	for _, w := range []string{"example.com. over udp:", "example.net. over udp:", "example.com. over tcp:",
		"i/o timeout", "1 zones not queried over tcp"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not contain %q", w)
		}
	}
}

func TestDNSCheckCancel(t *testing.T) {
	d := &DNSCheck{Addr: silent(t), Zones: zones("example.com.")}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	if err := d.Check(ctx); err == nil {
		t.Fatal("Check passed")
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Check returned %s after start, want soon after the cancel at 100ms", took)
	}
}

// udpDropper drops every other UDP query.
type udpDropper struct {
	authServer
	udp int // UDP queries received
}

func (u *udpDropper) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	u.mu.Lock()
	drop := false
	if w.RemoteAddr().Network() == "udp" {
		u.udp++
		drop = u.udp%2 == 1
	}
	u.mu.Unlock()
	if drop {
		return
	}
	u.authServer.ServeDNS(w, req)
}

func TestDNSCheckRetriesLostUDP(t *testing.T) {
	srv := &udpDropper{authServer: authServer{zones: []string{"example.com."}}}
	d := &DNSCheck{Addr: serve(t, srv, true, true, 0), Zones: zones("example.com.")}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := d.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	srv.mu.Lock()
	q := srv.udp
	srv.mu.Unlock()
	if q != 2 {
		t.Errorf("udp queries = %d, want 2 (one lost, one retried)", q)
	}
	// The retry waits for half the time left.
	if took := time.Since(start); took < 140*time.Millisecond || took > 250*time.Millisecond {
		t.Errorf("Check took %s, want about 150ms", took)
	}
}
