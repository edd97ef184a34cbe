package dnsserver

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/ratelimit"
	"github.com/miekg/dns"
)

// FuzzHandle feeds arbitrary packets to the query path: it must never panic,
// and every response it sends must be a well-formed DNS message that echoes
// the query ID. Response rate limiting is on at one answer a second and
// slip 1, so that after the first few every UDP answer goes through slip,
// DNS Cookies are on, and the TSIG key k1. is held (signed seeds: valid,
// unknown key, wrong MAC, wrong time).
func FuzzHandle(f *testing.F) {
	for _, q := range []struct {
		n string
		t uint16
	}{{"www.example.com.", dns.TypeA}, {"nope.example.com.", dns.TypeAAAA}, {"x.wild.example.com.", dns.TypeTXT}, {"host.sub.example.com.", dns.TypeNS}, {"id.server.", dns.TypeTXT}} {
		m := new(dns.Msg)
		m.SetQuestion(q.n, q.t)
		p, _ := m.Pack()
		f.Add(p, false)
		m.SetEdns0(4096, true)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
		p, _ = m.Pack()
		f.Add(p, true)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: "0123456789abcdef01000000000000000000000000000000"})
		p, _ = m.Pack()
		f.Add(p, false)
		e := m.Copy()
		e.IsEdns0().Option = append(e.IsEdns0().Option, &dns.EDNS0_LOCAL{Code: ednsECS, Data: ecsData(1, 22, 0, 198, 51, 100)})
		p, _ = e.Pack()
		f.Add(p, false)
		for _, k := range []struct{ name, secret string }{{"k1.", testSecret}, {"k2.", testSecret}, {"k1.", otherSecret}} {
			for _, skew := range []int64{0, -3600} {
				s := m.Copy()
				s.SetTsig(k.name, dns.HmacSHA256, 300, time.Now().Unix()+skew)
				if p, _, err := dns.TsigGenerate(s, k.secret, "", false); err == nil {
					f.Add(p, skew == 0)
				}
			}
		}
	}
	h := testHandler(f)
	set(h, func(s *Settings) { s.TSIG = testKeys() })
	l, err := ratelimit.NewRRL(ratelimit.RRLConfig{Rate: 1, Slip: 1})
	if err != nil {
		f.Fatal(err)
	}
	set(h, func(s *Settings) { s.RRL = l })
	set(h, func(s *Settings) { s.Cookies = ratelimit.NewCookies(ratelimit.RandomCookieSecret()) })
	w := h.NewWorker()
	f.Fuzz(func(t *testing.T, p []byte, tcp bool) {
		tr := UDP
		if tcp {
			tr = TCP
		}
		resp := answer(w, p, tr)
		if resp == nil {
			return
		}
		if tr == UDP && len(resp) > 1232 {
			t.Fatalf("UDP response of %d bytes", len(resp))
		}
		var m dns.Msg
		if err := m.Unpack(resp); err != nil {
			t.Fatalf("response does not parse: %v\nquery %x\nresponse %x", err, p, resp)
		}
		if len(p) >= 2 && m.Id != uint16(p[0])<<8|uint16(p[1]) {
			t.Fatalf("id %d does not echo the query", m.Id)
		}
	})
}

// FuzzHandleSteered feeds arbitrary packets to a handler serving pools:
// never a panic, every response a well-formed message echoing the ID,
// with at most one ECS option, whose scope is never more than the
// privacy limit.
func FuzzHandleSteered(f *testing.F) {
	for _, name := range []string{"svc.example.com.", "geo.example.com.", "v6.example.com.", "alias.example.com.", "x.wild.example.com.", "big.example.com."} {
		for _, ecs := range [][]byte{nil, ecsData(1, 24, 0, 198, 51, 100), ecsData(2, 56, 0, 0x20, 1, 0xd, 0xb8, 0, 1, 2), ecsData(1, 0, 0)} {
			f.Add(steerQuery(f, name, dns.TypeA, ecs), false)
			f.Add(steerQuery(f, name, dns.TypeAAAA, ecs), true)
		}
	}
	w := steerHandler(f).NewWorker()
	f.Fuzz(func(t *testing.T, p []byte, tcp bool) {
		tr := UDP
		if tcp {
			tr = TCP
		}
		resp := answer(w, p, tr)
		if resp == nil {
			return
		}
		var m dns.Msg
		if err := m.Unpack(resp); err != nil {
			t.Fatalf("response does not parse: %v\nquery %x\nresponse %x", err, p, resp)
		}
		if len(p) >= 2 && m.Id != uint16(p[0])<<8|uint16(p[1]) {
			t.Fatalf("id %d does not echo the query", m.Id)
		}
		data, n := echoedECS(t, resp)
		if n > 1 || n == 1 && (data[3] > 56 || binary.BigEndian.Uint16(data) == 1 && data[3] > 24) {
			t.Fatalf("ECS %v (%d options)\nquery %x", data, n, p)
		}
	})
}
