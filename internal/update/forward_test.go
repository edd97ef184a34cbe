package update

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// primary accepts one TCP exchange per connection: it records the
// message and answers YXDOMAIN.
func primary(t *testing.T, got chan<- []byte) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			var l [2]byte
			if _, err := io.ReadFull(c, l[:]); err != nil {
				_ = c.Close()
				continue
			}
			req := make([]byte, binary.BigEndian.Uint16(l[:]))
			_, _ = io.ReadFull(c, req)
			got <- req
			var m, r dns.Msg
			_ = m.Unpack(req)
			r.SetRcode(&m, dns.RcodeYXDomain)
			b, _ := r.Pack()
			_, _ = c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...))
			_ = c.Close()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// TestForwarder: the message goes to the zone's primaries unchanged, the
// first that answers is relayed; a zone without primaries is NOTAUTH, no
// primary reachable SERVFAIL, garbage FORMERR.
func TestForwarder(t *testing.T) {
	got := make(chan []byte, 4)
	p := primary(t, got)
	// A closed port: refused at once.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := netip.MustParseAddrPort(dead.Addr().String())
	_ = dead.Close()
	f := &Forwarder{Timeout: 2 * time.Second, Primaries: func(zone string) []netip.AddrPort {
		switch zone {
		case "example.com.":
			return []netip.AddrPort{deadAddr, p}
		case "down.example.":
			return []netip.AddrPort{deadAddr}
		}
		return nil
	}}
	msg := func(zone string) []byte {
		m := new(dns.Msg)
		m.SetUpdate(zone)
		rr, _ := dns.NewRR(`_acme-challenge.example.com. 60 IN TXT "t"`)
		m.Insert([]dns.RR{rr})
		m.SetTsig("k.", dns.HmacSHA256, 300, time.Now().Unix())
		b, _, err := dns.TsigGenerate(m, "c2VjcmV0LXNlY3JldC1zZWNyZXQ=", "", false)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	src := netip.MustParseAddrPort("192.0.2.1:5353")
	rcode := func(b []byte) int {
		var m dns.Msg
		if err := m.Unpack(b); err != nil {
			t.Fatalf("answer does not parse: %v", err)
		}
		return m.Rcode
	}
	req := msg("Example.com.")
	if r := rcode(f.Forward(req, src)); r != dns.RcodeYXDomain {
		t.Errorf("forwarded: %s, want the primary's YXDOMAIN", dns.RcodeToString[r])
	}
	if fwd := <-got; !bytes.Equal(fwd, req) {
		t.Error("the primary got another message than the client sent")
	}
	if r := rcode(f.Forward(msg("other.example."), src)); r != dns.RcodeNotAuth {
		t.Errorf("zone without primaries: %s, want NOTAUTH", dns.RcodeToString[r])
	}
	if r := rcode(f.Forward(msg("down.example."), src)); r != dns.RcodeServerFailure {
		t.Errorf("primary down: %s, want SERVFAIL", dns.RcodeToString[r])
	}
	junk := append(req[:12:12], 0xff)
	if r := rcode(f.Forward(junk, src)); r != dns.RcodeFormatError {
		t.Errorf("garbage: %s, want FORMERR", dns.RcodeToString[r])
	}
	if f.Forward(req[:5], src) != nil {
		t.Error("a message shorter than a header is answered")
	}
}
