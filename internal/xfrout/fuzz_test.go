package xfrout

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/update"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// FuzzHandle feeds arbitrary requests to the request handler, over UDP and
// TCP, signed or not, UPDATEs included (planned by package update on the
// source's zone): it must not panic, and every message it sends must be
// framed right, parse, and answer the request's ID.
func FuzzHandle(f *testing.F) {
	src, _ := sourceWithVersions(f)
	cfg := aclConfig()
	cfg.Catalog = "catalog.invalid."
	cfg.Listen = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")} // never bound
	pol, err := update.NewPolicy([]update.Rule{{Key: keyA, Match: update.MatchZone}})
	if err != nil {
		f.Fatal(err)
	}
	cfg.Update = func(ctx context.Context, m *dns.Msg, key string, _ netip.AddrPort) int {
		r, err := update.Parse(m)
		if err == nil {
			var z *zone.Zone
			if z, err = src.Zone(ctx, r.Zone); err == nil {
				_, err = update.Plan(z, r, key, pol)
			}
		}
		var ue *update.Error
		switch {
		case err == nil:
			return dns.RcodeSuccess
		case errors.As(err, &ue):
			return ue.Rcode
		}
		return dns.RcodeNotAuth
	}
	s, err := New(cfg, src, testLogger(f))
	if err != nil {
		f.Fatal(err)
	}
	if _, err := s.cat.update([]string{origin}); err != nil {
		f.Fatal(err)
	}
	seed := func(q *dns.Msg, key *clientKey) {
		b, _ := pack(f, q, key)
		f.Add(b, true, uint8(1))
		f.Add(b, false, uint8(2))
	}
	seed(soaQuery(origin), nil)
	seed(soaQuery(origin), signA)
	seed(axfrQuery(origin), signA)
	seed(axfrQuery("catalog.invalid."), signA)
	seed(ixfrQuery(origin, 2), signA)
	seed(ixfrQuery(origin, 2), signB)
	seed(ixfrQuery("catalog.invalid.", 1), nil)
	seed(axfrQuery(origin), &clientKey{name: keyA, alg: dns.HmacSHA256, secret: secretB})
	seed(axfrQuery(origin), &clientKey{name: keyA, alg: dns.HmacSHA256, secret: secretA, timeShift: -time.Hour})
	upd := new(dns.Msg)
	upd.SetUpdate(origin)
	txt, _ := dns.NewRR(`_acme-challenge.example.com. 60 IN TXT "t"`)
	upd.Insert([]dns.RR{txt})
	upd.RRsetUsed([]dns.RR{&dns.ANY{Hdr: dns.RR_Header{Name: "www.example.com.", Rrtype: dns.TypeA}}})
	seed(upd, signA)
	seed(upd, nil)
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}, false, uint8(1))
	f.Fuzz(func(t *testing.T, req []byte, tcp bool, from uint8) {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, from}), 5300)
		// An UPDATE over UDP is answered from a goroutine of its own:
		// problems are collected and reported once it is done.
		var mu sync.Mutex
		var frames int
		var problems []string
		bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
		var id uint16
		if len(req) >= 2 {
			id = binary.BigEndian.Uint16(req)
		}
		s.handle(t.Context(), req, src, tcp, func(frame []byte) error {
			mu.Lock()
			defer mu.Unlock()
			frames++
			if int(binary.BigEndian.Uint16(frame)) != len(frame)-2 {
				bad("frame length %d, message %d bytes", binary.BigEndian.Uint16(frame), len(frame)-2)
			}
			var m dns.Msg
			if err := m.Unpack(frame[2:]); err != nil {
				bad("answer does not parse: %v", err)
			} else if m.Id != id || !m.Response {
				bad("answer id %d qr=%t to request id %d", m.Id, m.Response, id)
			}
			if !tcp && len(frame)-2 > 1232 {
				bad("UDP answer of %d bytes", len(frame)-2)
			}
			return nil
		})
		s.updating.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, p := range problems {
			t.Error(p)
		}
		if !tcp && frames > 1 {
			t.Fatalf("%d UDP answers to one request", frames)
		}
	})
}
