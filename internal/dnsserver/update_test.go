package dnsserver

import (
	"bytes"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestForwardUpdate: an UPDATE reaches the forwarder byte for byte (its
// TSIG untouched, never checked by the node) over UDP and TCP, and the
// forwarder's answer is relayed — over UDP from a goroutine of its own,
// after Handle returned; a query is never forwarded; without a forwarder
// UPDATE is answered as before (FORMERR).
func TestForwardUpdate(t *testing.T) {
	s, addr := startServer(t, TCPLimits{})
	h := s.h
	u := new(dns.Msg)
	u.SetUpdate("example.com.")
	rr, _ := dns.NewRR(`_acme-challenge.example.com. 60 IN TXT "t"`)
	u.Insert([]dns.RR{rr})
	u.SetTsig("unknown-to-the-node.", dns.HmacSHA256, 300, time.Now().Unix())
	req, _, err := dns.TsigGenerate(u, "c2VjcmV0LXNlY3JldC1zZWNyZXQ=", "", false)
	if err != nil {
		t.Fatal(err)
	}

	without, err := exchangeRaw(addr, req, "udp")
	if err != nil {
		t.Fatal(err)
	}
	// As before: an UPDATE's sections are not a query's.
	if without.Rcode != dns.RcodeFormatError {
		t.Errorf("without a forwarder: %s, want FORMERR", dns.RcodeToString[without.Rcode])
	}

	var mu sync.Mutex
	var got [][]byte
	release := make(chan struct{})
	h.SetForward(func(p []byte, src netip.AddrPort) []byte {
		<-release
		mu.Lock()
		got = append(got, bytes.Clone(p))
		mu.Unlock()
		m := new(dns.Msg)
		var in dns.Msg
		if err := in.Unpack(p); err != nil {
			return nil
		}
		m.SetRcode(&in, dns.RcodeYXRrset)
		b, _ := m.Pack()
		return b
	})
	// While a forward over UDP waits, the socket's reader answers
	// queries.
	done := make(chan *dns.Msg, 1)
	go func() {
		m, err := exchangeRaw(addr, req, "udp")
		if err != nil {
			t.Error(err)
		}
		done <- m
	}()
	time.Sleep(100 * time.Millisecond)
	q := new(dns.Msg)
	q.SetQuestion("www.example.com.", dns.TypeA)
	qb, _ := q.Pack()
	if m, err := exchangeRaw(addr, qb, "udp"); err != nil || m.Rcode != dns.RcodeSuccess {
		t.Fatalf("query while an update is forwarded: %v %v", m, err)
	}
	close(release)
	if m := <-done; m == nil || m.Rcode != dns.RcodeYXRrset || m.Id != u.Id {
		t.Fatalf("UDP: relayed answer %v, want YXRRSET with the request's ID", m)
	}
	m, err := exchangeRaw(addr, req, "tcp")
	if err != nil {
		t.Fatal(err)
	}
	if m.Rcode != dns.RcodeYXRrset {
		t.Errorf("TCP: %s, want YXRRSET", dns.RcodeToString[m.Rcode])
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("%d forwarded, want 2 (a query is not forwarded)", len(got))
	}
	for i, p := range got {
		if !bytes.Equal(p, req) {
			t.Errorf("forward %d changed the message", i)
		}
	}
}

// exchangeRaw sends a message over UDP or TCP and reads the answer.
func exchangeRaw(addr netip.AddrPort, req []byte, network string) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: 3 * time.Second}
	conn, err := c.Dial(addr.String())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := conn.Write(req); err != nil {
		return nil, err
	}
	return conn.ReadMsg()
}
