package xfrout

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/tsig"
)

// TestAccess applies the ACL and TSIG checks: aclConfig allows key A from
// 127.0.0.1, anyone from 127.0.0.2 and key B from 127.0.0.3.
func TestAccess(t *testing.T) {
	src, vs := sourceWithVersions(t)
	s, addr := startServer(t, aclConfig(), src)
	for _, tc := range []struct {
		name      string
		from      string
		key       *clientKey
		wantRcode int
		wantTSIG  uint16 // TSIG error of the answer
		signed    bool   // the answer carries a MAC
	}{
		{"required key, unsigned", "127.0.0.1", nil, dns.RcodeRefused, 0, false},
		{"required key, signed with it", "127.0.0.1", signA, dns.RcodeSuccess, 0, true},
		{"required key, signed with another known key", "127.0.0.1", signB, dns.RcodeRefused, 0, true},
		{"no key required, unsigned", "127.0.0.2", nil, dns.RcodeSuccess, 0, false},
		{"no key required, signed", "127.0.0.2", signA, dns.RcodeSuccess, 0, true},
		{"key B (hmac-sha512)", "127.0.0.3", signB, dns.RcodeSuccess, 0, true},
		{"unknown key", "127.0.0.1", &clientKey{name: "key-c.", alg: dns.HmacSHA256, secret: secretA}, dns.RcodeNotAuth, dns.RcodeBadKey, false},
		{"wrong secret", "127.0.0.1", &clientKey{name: keyA, alg: dns.HmacSHA256, secret: secretB}, dns.RcodeNotAuth, dns.RcodeBadSig, false},
		{"wrong algorithm for the key", "127.0.0.1", &clientKey{name: keyA, alg: dns.HmacSHA512, secret: secretA}, dns.RcodeNotAuth, dns.RcodeBadKey, false},
		{"signed an hour ago", "127.0.0.1", &clientKey{name: keyA, alg: dns.HmacSHA256, secret: secretA, timeShift: -time.Hour}, dns.RcodeNotAuth, dns.RcodeBadTime, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := exchangeTCPFrom(t, netip.MustParseAddr(tc.from), addr, axfrQuery(origin), tc.key)
			if err != nil {
				t.Fatal(err)
			}
			m := resp.msgs[0]
			if m.Rcode != tc.wantRcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.wantRcode])
			}
			ts := m.IsTsig()
			if tc.key == nil {
				if ts != nil {
					t.Errorf("answer to an unsigned request carries %v", ts)
				}
			} else {
				if ts == nil {
					t.Fatal("answer to a signed request has no TSIG record")
				}
				if ts.Error != tc.wantTSIG {
					t.Errorf("TSIG error %s, want %s", dns.RcodeToString[int(ts.Error)], dns.RcodeToString[int(tc.wantTSIG)])
				}
				if (ts.MACSize > 0) != tc.signed {
					t.Errorf("MAC size %d, want a MAC: %t", ts.MACSize, tc.signed)
				}
				if ts.Error == dns.RcodeBadTime && len(ts.OtherData) != 12 {
					t.Errorf("BADTIME answer other data %q, want the server's time (6 bytes)", ts.OtherData)
				}
			}
			if tc.wantRcode == dns.RcodeSuccess {
				if got, want := len(resp.records())-1, vs[3].Records; got != want {
					t.Errorf("AXFR of %d records, want %d", got, want)
				}
			} else if len(m.Answer) != 0 {
				t.Errorf("refused answer carries records: %v", m.Answer)
			}
		})
	}
	// Counted once answered: wait for the last. (A source in no prefix
	// is closed at accept: TestDeniedAtAccept.)
	waitFor(t, "2 refused and 4 notauth counted", func() bool {
		return counter(t, s, "anycastd_xfrout_requests_total", map[string]string{"type": "axfr", "result": "refused"}) == 2 &&
			counter(t, s, "anycastd_xfrout_requests_total", map[string]string{"type": "axfr", "result": "notauth"}) == 4
	})
}

// TestDeniedAtAccept: a TCP connection from a source in no allow_transfer
// prefix is closed as soon as it is accepted, before it sends anything, so
// that outsiders cannot hold the transfer server's connection slots; one
// from an allowed source stays open.
func TestDeniedAtAccept(t *testing.T) {
	src, _ := sourceWithVersions(t)
	cfg := aclConfig()
	cfg.IdleTimeout = time.Minute
	s, addr := startServer(t, cfg, src)
	dial := func(from string) net.Conn {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(from), 0)), Timeout: 5 * time.Second}
		c, err := d.Dial("tcp", addr.String())
		if errors.Is(err, syscall.ECONNRESET) {
			return nil // reset before Dial even looked
		}
		if err != nil {
			t.Fatalf("dial from %s: %v", from, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	closedWithin := func(c net.Conn, d time.Duration) bool {
		if c == nil {
			return true
		}
		_ = c.SetReadDeadline(time.Now().Add(d))
		var b [1]byte
		_, err := c.Read(b[:])
		return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
	}
	allowed := dial("127.0.0.2")
	for range 3 {
		if c := dial("127.0.0.4"); !closedWithin(c, 2*time.Second) {
			t.Fatal("connection from 127.0.0.4 (in no allow_transfer prefix) still open 2s after accept, without a byte sent")
		}
	}
	if closedWithin(allowed, 500*time.Millisecond) {
		t.Error("an idle connection from an allowed source was closed")
	}
	if got := counter(t, s, "anycastd_xfrout_tcp_denied_total", nil); got != 3 {
		t.Errorf("anycastd_xfrout_tcp_denied_total = %v, want 3", got)
	}
	// The allowed connection still works.
	req, _ := pack(t, soaQuery(origin), nil)
	if _, err := allowed.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(req))), req...)); err != nil {
		t.Fatal(err)
	}
	_ = allowed.SetReadDeadline(time.Now().Add(5 * time.Second))
	var l [2]byte
	if _, err := io.ReadFull(allowed, l[:]); err != nil {
		t.Fatalf("allowed connection: %v", err)
	}

	// A reload that allows 127.0.0.4 and no longer 127.0.0.2 moves the
	// accept-time check with it.
	next := cfg
	next.AllowTransfer = []ACL{{Prefix: netip.MustParsePrefix("127.0.0.4/32")}}
	if err := s.Reconfigure(t.Context(), next); err != nil {
		t.Fatal(err)
	}
	if c := dial("127.0.0.4"); closedWithin(c, 500*time.Millisecond) {
		t.Error("after the reload, a connection from 127.0.0.4 (now allowed) was closed")
	}
	if c := dial("127.0.0.2"); !closedWithin(c, 2*time.Second) {
		t.Error("after the reload, a connection from 127.0.0.2 (no longer allowed) is still open")
	}
}

// TestAlgorithms transfers with a key of each algorithm; miekg/dns checks
// every message's MAC.
func TestAlgorithms(t *testing.T) {
	src, vs := sourceWithVersions(t)
	for _, alg := range []struct{ name, miekg string }{
		{"hmac-sha1", dns.HmacSHA1},
		{"hmac-sha224", dns.HmacSHA224},
		{"hmac-sha256", dns.HmacSHA256},
		{"hmac-sha384", dns.HmacSHA384},
		{"hmac-sha512", dns.HmacSHA512},
	} {
		t.Run(alg.name, func(t *testing.T) {
			cfg := Config{
				Keys:          []tsig.Key{{Name: "k.", Algorithm: alg.name, Secret: secretA}},
				AllowTransfer: []ACL{{Prefix: netip.MustParsePrefix("127.0.0.0/8"), Key: "k."}},
				MessageSize:   700,
			}
			_, addr := startServer(t, cfg, src)
			q := axfrQuery(origin)
			q.SetTsig("k.", alg.miekg, tsig.Fudge, 0)
			tr := &dns.Transfer{TsigSecret: map[string]string{"k.": secretA}}
			ch, err := tr.In(q, addr.String())
			if err != nil {
				t.Fatal(err)
			}
			n, envelopes := 0, 0
			for env := range ch {
				if env.Error != nil {
					t.Fatalf("envelope %d: %v", envelopes, env.Error)
				}
				envelopes++
				n += len(env.RR)
			}
			if n-1 != vs[3].Records || envelopes < 5 {
				t.Errorf("%d records in %d envelopes, want %d records in several", n-1, envelopes, vs[3].Records)
			}
		})
	}
}

// TestTamperedStream checks that the stream's MACs chain: a message that
// is changed in transit, or dropped, fails verification.
func TestTamperedStream(t *testing.T) {
	src, _ := sourceWithVersions(t)
	_, addr := startServer(t, aclConfig(), src)
	q := axfrQuery(origin)
	resp, err := exchangeTCP(t, addr, q, signA)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.raw) < 3 {
		t.Fatalf("%d messages, want at least 3", len(resp.raw))
	}
	first := resp.msgs[0].IsTsig().MAC
	verify := func(raw []byte, mac string) error {
		return dns.TsigVerify(append([]byte(nil), raw...), secretA, mac, true)
	}
	// Skipping message 1: message 2 does not verify against message 0's MAC.
	if err := verify(resp.raw[2], first); err == nil {
		t.Error("message 2 verified against the MAC of message 0")
	}
	// Message 1 does verify against message 0's MAC, but not once changed.
	if err := verify(resp.raw[1], first); err != nil {
		t.Fatalf("message 1: %v", err)
	}
	bad := append([]byte(nil), resp.raw[1]...)
	bad[len(bad)/2] ^= 1
	if err := verify(bad, first); err == nil {
		t.Error("a changed message verified")
	}
}
