package xfrout

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// FuzzHandle feeds arbitrary requests to the request handler, over UDP and
// TCP, signed or not: it must not panic, and every message it sends must
// be framed right, parse, and answer the request's ID.
func FuzzHandle(f *testing.F) {
	src, _ := sourceWithVersions(f)
	cfg := aclConfig()
	cfg.Catalog = "catalog.invalid."
	cfg.Listen = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")} // never bound
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
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}, false, uint8(1))
	f.Fuzz(func(t *testing.T, req []byte, tcp bool, from uint8) {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, from}), 5300)
		var frames int
		s.handle(t.Context(), req, src, tcp, func(frame []byte) error {
			frames++
			if int(binary.BigEndian.Uint16(frame)) != len(frame)-2 {
				t.Fatalf("frame length %d, message %d bytes", binary.BigEndian.Uint16(frame), len(frame)-2)
			}
			var m dns.Msg
			if err := m.Unpack(frame[2:]); err != nil {
				t.Fatalf("answer does not parse: %v", err)
			}
			if m.Id != binary.BigEndian.Uint16(req) || !m.Response {
				t.Fatalf("answer id %d qr=%t to request id %d", m.Id, m.Response, binary.BigEndian.Uint16(req))
			}
			if !tcp && len(frame)-2 > 1232 {
				t.Fatalf("UDP answer of %d bytes", len(frame)-2)
			}
			return nil
		})
		if !tcp && frames > 1 {
			t.Fatalf("%d UDP answers to one request", frames)
		}
	})
}
