package zonesync

import (
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/tsig"
)

func TestNotify(t *testing.T) {
	m, err := New(Config{
		DataDir: t.TempDir(),
		Keys:    append(testKeys(), tsig.Key{Name: "other.", Algorithm: "hmac-sha512", Secret: otherSecret}),
		Zones: []Zone{
			{Name: origin, Primaries: []Primary{{Addr: mustAddrPort("192.0.2.1:53"), Key: testKey}}},
			{Name: "open.example.", Primaries: []Primary{{Addr: mustAddrPort("[2001:db8::1]:53")}}},
		},
		NotifyAllow: []NotifyACL{
			{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Key: "other."},
			{Prefix: netip.MustParsePrefix("203.0.113.7/32")},
		},
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	signed := func(name, key, alg, secret string) []byte {
		msg := new(dns.Msg)
		msg.SetNotify(name)
		msg.SetTsig(key, alg, 300, time.Now().Unix())
		out, _, err := dns.TsigGenerate(msg, secret, "", false)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	badQuery := new(dns.Msg)
	badQuery.SetNotify(origin)
	badQuery.Question[0].Qtype = dns.TypeA
	badPacked, _ := badQuery.Pack()
	oldTime := new(dns.Msg)
	oldTime.SetNotify(origin)
	oldTime.SetTsig(testKey, dns.HmacSHA256, 300, time.Now().Add(-time.Hour).Unix())
	oldPacked, _, _ := dns.TsigGenerate(oldTime, testSecret, "", false)

	tests := []struct {
		name      string
		req       []byte
		src       string
		rcode     int // -1 = no answer
		tsigErr   uint16
		signed    bool
		triggered string
	}{
		{"primary with its key", notifyMsg(t, origin, testKey, testSecret), "192.0.2.1:5353", dns.RcodeSuccess, 0, true, origin},
		{"primary as v4-mapped address", notifyMsg(t, origin, testKey, testSecret), "[::ffff:192.0.2.1]:53", dns.RcodeSuccess, 0, true, origin},
		{"primary without its key", notifyMsg(t, origin, "", ""), "192.0.2.1:53", dns.RcodeRefused, 0, false, ""},
		{"primary with another valid key", signed(origin, "other.", dns.HmacSHA512, otherSecret), "192.0.2.1:53", dns.RcodeRefused, 0, true, ""},
		{"unkeyed primary unsigned", notifyMsg(t, "open.example.", "", ""), "[2001:db8::1]:53", dns.RcodeSuccess, 0, false, "open.example."},
		{"acl prefix with its key", signed("open.example.", "other.", dns.HmacSHA512, otherSecret), "198.51.100.9:53", dns.RcodeSuccess, 0, true, "open.example."},
		{"acl prefix without key", notifyMsg(t, origin, "", ""), "198.51.100.9:53", dns.RcodeRefused, 0, false, ""},
		{"acl address without key requirement", notifyMsg(t, origin, "", ""), "203.0.113.7:53", dns.RcodeSuccess, 0, false, origin},
		{"stranger", notifyMsg(t, origin, "", ""), "192.0.2.2:53", dns.RcodeRefused, 0, false, ""},
		{"unknown zone", notifyMsg(t, "example.org.", testKey, testSecret), "192.0.2.1:53", dns.RcodeNotAuth, 0, true, ""},
		{"bad signature", notifyMsg(t, origin, testKey, otherSecret), "192.0.2.1:53", dns.RcodeNotAuth, dns.RcodeBadSig, false, ""},
		{"unknown key", notifyMsg(t, origin, "nokey.", testSecret), "192.0.2.1:53", dns.RcodeNotAuth, dns.RcodeBadKey, false, ""},
		{"wrong algorithm for the key", signed(origin, testKey, dns.HmacSHA1, testSecret), "192.0.2.1:53", dns.RcodeNotAuth, dns.RcodeBadKey, false, ""},
		{"signed an hour ago", oldPacked, "192.0.2.1:53", dns.RcodeNotAuth, dns.RcodeBadTime, false, ""},
		{"not SOA", badPacked, "192.0.2.1:53", dns.RcodeFormatError, 0, false, ""},
		{"garbage after a header", append(notifyMsg(t, origin, "", "")[:12], 0xff, 0xff), "192.0.2.1:53", dns.RcodeFormatError, 0, false, ""},
		{"shorter than a header", []byte{1, 2, 3}, "192.0.2.1:53", -1, 0, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, s := range m.zones { // drain earlier triggers
				select {
				case <-s.trigger:
				default:
				}
			}
			resp := m.Notify(tt.req, mustAddrPort(tt.src))
			if tt.rcode < 0 {
				if resp != nil {
					t.Fatalf("answered %x, want no answer", resp)
				}
				return
			}
			var r dns.Msg
			if err := r.Unpack(resp); err != nil {
				t.Fatalf("unpack answer: %v", err)
			}
			if r.Rcode != tt.rcode || !r.Response || r.Opcode != dns.OpcodeNotify {
				t.Errorf("rcode %s qr %t opcode %d, want %s, true, NOTIFY", dns.RcodeToString[r.Rcode], r.Response, r.Opcode, dns.RcodeToString[tt.rcode])
			}
			if r.Authoritative != (tt.rcode == dns.RcodeSuccess) {
				t.Errorf("AA = %t", r.Authoritative)
			}
			var q dns.Msg
			if q.Unpack(tt.req) == nil && r.Id != q.Id {
				t.Errorf("id %d, want %d", r.Id, q.Id)
			}
			ts := r.IsTsig()
			if tt.tsigErr != 0 {
				if ts == nil || ts.Error != tt.tsigErr || ts.MAC != "" {
					t.Errorf("TSIG %v, want error %s and no MAC", ts, dns.RcodeToString[int(tt.tsigErr)])
				}
			}
			if tt.signed {
				if ts == nil {
					t.Fatal("answer to a signed NOTIFY is not signed")
				}
				// The answer's MAC covers the request's MAC.
				var q dns.Msg
				_ = q.Unpack(tt.req)
				secret := testSecret
				if ts.Hdr.Name == "other." {
					secret = otherSecret
				}
				// (miekg/dns refuses to verify any NOTAUTH answer.)
				if err := dns.TsigVerify(resp, secret, q.IsTsig().MAC, false); err != nil && r.Rcode != dns.RcodeNotAuth {
					t.Errorf("answer's TSIG does not verify: %v", err)
				}
			}
			for name, s := range m.zones {
				got := len(s.trigger) == 1
				if got != (name == tt.triggered) {
					t.Errorf("zone %s triggered = %t", name, got)
				}
			}
		})
	}
}
