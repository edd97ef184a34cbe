package steer

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// FuzzDecode feeds arbitrary pool records (as a zone transfer or an import
// may bring them) to Decode and Compile: never a panic; a record that
// decodes compiles, encodes back to a record that decodes to the same
// pool, and decides within its endpoints, alike on a second engine.
func FuzzDecode(f *testing.F) {
	for _, p := range []Pool{
		{TTL: 30, Policy: []string{"up", "weighted"}, Endpoints: []Endpoint{{Address: netip.MustParseAddr("192.0.2.1"), Weight: w(7)}, {Address: netip.MustParseAddr("192.0.2.2")}}},
		{Policy: []string{"geo", "latency", "least-load", "first-n"}, FirstN: 2, Regions: map[string]string{"10.0.0.0/8": "eu"},
			Endpoints: []Endpoint{{Name: "a.example.", Region: "eu", Capacity: 3}, {Address: netip.MustParseAddr("192.0.2.9")}}},
	} {
		rd, err := Encode(dns.TypeA, p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(rd)
	}
	f.Add([]byte{0, 1, 1, '{', '}'})
	f.Add([]byte{0, 28, 1, '{', '"', 'e', '"', ':', '[', ']', '}'})
	f.Fuzz(func(t *testing.T, rd []byte) {
		typ, p, err := Decode(rd)
		c := Compile(rd)
		if (err == nil) != (c.Err() == nil) {
			t.Fatalf("Decode error %v, Compile error %v", err, c.Err())
		}
		if err != nil {
			return
		}
		again, err := Encode(typ, p)
		if err != nil {
			t.Fatalf("decoded pool does not encode: %v", err)
		}
		if _, p2, err := Decode(again); err != nil || len(p2.Endpoints) != len(p.Endpoints) || p2.TTL != p.TTL {
			t.Fatalf("re-encoded pool decodes to %+v, %v", p2, err)
		}
		e1, e2 := NewEngine(), NewEngine()
		var d1, d2 Decision
		for _, cl := range []Client{NewClient(netip.MustParseAddr("10.1.2.3"), 24, true), NewClient(netip.MustParseAddr("2001:db8::1"), 56, false)} {
			if !e1.Decide(rd, cl, &d1) || !e2.Decide(bytes.Clone(rd), cl, &d2) {
				t.Fatal("a valid pool refused")
			}
			if d1.Len() < 1 || d1.Len() > len(p.Endpoints) || d1.Len() != d2.Len() || d1.Scope != d2.Scope {
				t.Fatalf("decisions %d/%d endpoints, scopes %d/%d", d1.Len(), d2.Len(), d1.Scope, d2.Scope)
			}
			for i := range d1.Len() {
				if !bytes.Equal(d1.Rdata(i), d2.Rdata(i)) {
					t.Fatalf("engines differ at %d", i)
				}
				if !d1.IsName(i) && len(d1.Rdata(i)) != map[uint16]int{dns.TypeA: 4, dns.TypeAAAA: 16}[typ] {
					t.Fatalf("endpoint %d: %d-byte address for type %d", i, len(d1.Rdata(i)), typ)
				}
			}
		}
	})
}
