package zonesync

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/tsig"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// Test keys (base64 secrets).
const (
	testKey     = "xfr-key."
	testSecret  = "KmSBOQmjtyYzILPFjRYDIUmaEGkpbDVAkwbzmB8pfLE="
	otherSecret = "c2VjcmV0LW9mLWFub3RoZXIta2V5LTAxMjM0NTY3ODk="
)

// primary is an in-process primary: it answers SOA, AXFR and IXFR (from the
// history of versions set with set) for its zones, signing with TSIG, over a
// real loopback listener or an in-memory one.
type primary struct {
	t    testing.TB
	srv  *dns.Server
	addr string

	mu       sync.Mutex
	versions map[string][]*zone.Zone // by origin, oldest first; the last is current
	// inject is added to every AXFR and IXFR stream before the closing SOA.
	inject []dns.RR
	// Behaviour switches.
	noIXFR     bool          // answer IXFR AXFR-style
	brokenIXFR bool          // IXFR steps that delete a record that does not exist
	refuse     bool          // answer everything REFUSED
	unsigned   bool          // do not sign answers
	perMsg     int           // records per message (default 7, to make multi-message streams)
	delay      time.Duration // before each answer

	soas, axfrs, ixfrs atomic.Int64 // answered queries by type
	queries            atomic.Int64 // every query, refused ones included
}

// signingProvider verifies requests with the right secret but can be told to
// sign answers with another one.
type signingProvider struct {
	verify, sign dns.TsigProvider
}

func (p signingProvider) Generate(msg []byte, t *dns.TSIG) ([]byte, error) {
	return p.sign.Generate(msg, t)
}
func (p signingProvider) Verify(msg []byte, t *dns.TSIG) error { return p.verify.Verify(msg, t) }

func secretRing(secret string) *tsig.Keyring {
	ring, err := tsig.New([]tsig.Key{{Name: testKey, Algorithm: "hmac-sha256", Secret: secret}})
	if err != nil {
		panic(err)
	}
	return ring
}

// newPrimary starts a primary for z on l (nil = 127.0.0.1:0). signSecret is
// the secret it signs answers with ("" = testSecret).
func newPrimary(t testing.TB, l net.Listener, z *zone.Zone, signSecret string) *primary {
	t.Helper()
	if l == nil {
		var err error
		l, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
	}
	if signSecret == "" {
		signSecret = testSecret
	}
	p := &primary{t: t, versions: map[string][]*zone.Zone{z.Origin: {z}}, perMsg: 7, addr: l.Addr().String()}
	started := make(chan struct{})
	p.srv = &dns.Server{
		Listener: l, Net: "tcp", Handler: p,
		TsigProvider:      signingProvider{verify: secretRing(testSecret), sign: secretRing(signSecret)},
		NotifyStartedFunc: func() { close(started) },
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = p.srv.ActivateAndServe()
	}()
	<-started
	t.Cleanup(func() {
		_ = p.srv.Shutdown()
		<-done
	})
	return p
}

// set makes z the current version of its zone (adding the zone).
func (p *primary) set(z *zone.Zone) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.versions[z.Origin] = append(p.versions[z.Origin], z)
}

func (p *primary) current(name string) *zone.Zone {
	p.mu.Lock()
	defer p.mu.Unlock()
	v := p.versions[name]
	if len(v) == 0 {
		return nil
	}
	return v[len(v)-1]
}

// with changes the primary's behaviour under its lock.
func (p *primary) with(f func(p *primary)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

func (p *primary) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	defer w.Close()
	p.queries.Add(1)
	p.mu.Lock()
	refuse, unsigned, noIXFR, broken, perMsg, inject := p.refuse, p.unsigned, p.noIXFR, p.brokenIXFR, p.perMsg, p.inject
	var versions []*zone.Zone
	if len(r.Question) == 1 {
		versions = append(versions, p.versions[dns.CanonicalName(r.Question[0].Name)]...)
	}
	delay := p.delay
	p.mu.Unlock()
	time.Sleep(delay)

	reply := func(m *dns.Msg) {
		if t := r.IsTsig(); t != nil && !unsigned {
			m.SetTsig(t.Hdr.Name, t.Algorithm, 300, time.Now().Unix())
		}
		_ = w.WriteMsg(m)
	}
	m := new(dns.Msg)
	switch {
	case len(r.Question) != 1:
		reply(m.SetRcode(r, dns.RcodeFormatError))
		return
	case w.TsigStatus() != nil:
		// RFC 8945 §5.2: unsigned NOTAUTH for a bad key or signature.
		_ = w.WriteMsg(m.SetRcode(r, dns.RcodeNotAuth))
		return
	case r.IsTsig() == nil:
		reply(m.SetRcode(r, dns.RcodeNotAuth))
		return
	case refuse || len(versions) == 0:
		reply(m.SetRcode(r, dns.RcodeRefused))
		return
	}
	cur := versions[len(versions)-1]
	soa := cur.SOA()
	switch r.Question[0].Qtype {
	case dns.TypeSOA:
		p.soas.Add(1)
		m.SetReply(r)
		m.Authoritative = true
		m.Answer = []dns.RR{soa}
		reply(m)
		return
	case dns.TypeAXFR:
		p.axfrs.Add(1)
		rrs, err := cur.RRs()
		if err != nil {
			panic(err)
		}
		p.stream(w, r, append(append(rrs, inject...), soa), perMsg, unsigned)
		return
	case dns.TypeIXFR:
		p.ixfrs.Add(1)
		have := r.Ns[0].(*dns.SOA).Serial
		if !zone.SerialLess(have, cur.Serial) {
			m.SetReply(r)
			m.Authoritative = true
			m.Answer = []dns.RR{soa}
			reply(m)
			return
		}
		start := -1
		for i, v := range versions {
			if v.Serial == have {
				start = i
			}
		}
		if start < 0 || noIXFR {
			rrs, err := cur.RRs()
			if err != nil {
				panic(err)
			}
			p.stream(w, r, append(append(rrs, inject...), soa), perMsg, unsigned)
			return
		}
		out := []dns.RR{soa}
		for i := start; i+1 < len(versions); i++ {
			del, add, err := zone.Diff(versions[i], versions[i+1])
			if err != nil {
				panic(err)
			}
			if broken {
				bogus, _ := dns.NewRR("not-there." + cur.Origin + " 300 IN A 192.0.2.99")
				del = append(del, bogus)
			}
			out = append(append(out, del...), add...)
		}
		p.stream(w, r, append(append(out, inject...), soa), perMsg, unsigned)
	default:
		reply(m.SetRcode(r, dns.RcodeNotImplemented))
	}
}

// stream sends rrs in messages of perMsg records, each signed.
func (p *primary) stream(w dns.ResponseWriter, r *dns.Msg, rrs []dns.RR, perMsg int, unsigned bool) {
	ch := make(chan *dns.Envelope)
	tr := new(dns.Transfer)
	errc := make(chan error, 1)
	if unsigned {
		go func() {
			for e := range ch {
				m := new(dns.Msg)
				m.SetReply(r)
				m.Authoritative = true
				m.Answer = e.RR
				_ = w.WriteMsg(m)
			}
			errc <- nil
		}()
	} else {
		go func() {
			err := tr.Out(w, r, ch)
			for range ch { // Out stops at a write error: let the sender finish
			}
			errc <- err
		}()
	}
	for len(rrs) > 0 {
		n := min(perMsg, len(rrs))
		ch <- &dns.Envelope{RR: rrs[:n]}
		rrs = rrs[n:]
	}
	close(ch)
	<-errc
}

// pipeNet is an in-memory network of listeners by address, for tests in a
// synctest bubble (where real sockets would stop the fake clock from
// advancing while a goroutine waits on them).
type pipeNet struct {
	mu        sync.Mutex
	listeners map[string]*pipeListener
}

type pipeListener struct {
	addr   string
	ch     chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func (n *pipeNet) listen(addr string) *pipeListener {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.listeners == nil {
		n.listeners = map[string]*pipeListener{}
	}
	l := &pipeListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
	n.listeners[addr] = l
	return l
}

func (n *pipeNet) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if network != "tcp" {
		// A pipe is a stream: IXFR over UDP has nothing to go through,
		// and the refresh takes the TCP path (loopback_test.go covers UDP).
		return nil, fmt.Errorf("dial %s %s: network unreachable", network, addr)
	}
	n.mu.Lock()
	l := n.listeners[addr]
	n.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("dial %s: connection refused", addr)
	}
	c, s := net.Pipe()
	select {
	case l.ch <- s:
		return c, nil
	case <-l.done:
		return nil, fmt.Errorf("dial %s: connection refused", addr)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr(l.addr) }

type pipeAddr string

func (a pipeAddr) Network() string { return "tcp" }
func (a pipeAddr) String() string  { return string(a) }
