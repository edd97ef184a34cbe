package dnsserver

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/steer"
)

// ecsQuery is a query for name/type with an ECS option whose data is raw.
func ecsQuery(t testing.TB, name string, qtype uint16, raw ...[]byte) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(1232, false)
	for _, r := range raw {
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_LOCAL{Code: ednsECS, Data: r})
	}
	p, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// ecsData is ECS option data.
func ecsData(family uint16, source, scope uint8, addr ...byte) []byte {
	d := binary.BigEndian.AppendUint16(nil, family)
	return append(append(d, source, scope), addr...)
}

// echoedECS returns the data of the ECS option of resp (nil for none) and
// how many there are.
func echoedECS(t testing.TB, resp []byte) ([]byte, int) {
	t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(resp); err != nil {
		t.Fatal(err)
	}
	opt := m.IsEdns0()
	if opt == nil {
		return nil, 0
	}
	var data []byte
	n := 0
	for _, o := range opt.Option {
		if o.Option() == ednsECS {
			n++
			l, ok := o.(*dns.EDNS0_SUBNET)
			if !ok {
				t.Fatalf("ECS option of type %T", o)
			}
			if l.Family == 1 {
				data = ecsData(l.Family, l.SourceNetmask, l.SourceScope, l.Address.To4()[:(l.SourceNetmask+7)/8]...)
			} else {
				data = ecsData(l.Family, l.SourceNetmask, l.SourceScope, l.Address.To16()[:(l.SourceNetmask+7)/8]...)
			}
		}
	}
	return data, n
}

// TestECS: malformed ECS options are FORMERR (RFC 7871 §6); a valid one is
// echoed with FAMILY, SOURCE PREFIX-LENGTH and ADDRESS as sent and SCOPE
// PREFIX-LENGTH 0 on an answer that is not steered (§7.2.1), whatever the
// answer (positive, NXDOMAIN, REFUSED).
func TestECS(t *testing.T) {
	h := testHandler(t)
	w := h.NewWorker()
	tests := []struct {
		name  string
		qname string
		opts  [][]byte
		rcode int
		echo  []byte // nil: no ECS in the answer
	}{
		{"v4 /24", "www.example.com.", [][]byte{ecsData(1, 24, 0, 198, 51, 100)}, dns.RcodeSuccess, ecsData(1, 24, 0, 198, 51, 100)},
		{"v4 /32 beyond the privacy limit", "www.example.com.", [][]byte{ecsData(1, 32, 0, 198, 51, 100, 7)}, dns.RcodeSuccess, ecsData(1, 32, 0, 198, 51, 100, 7)},
		{"v4 /22", "www.example.com.", [][]byte{ecsData(1, 22, 0, 198, 51, 100)}, dns.RcodeSuccess, ecsData(1, 22, 0, 198, 51, 100)},
		{"v4 /0", "www.example.com.", [][]byte{ecsData(1, 0, 0)}, dns.RcodeSuccess, ecsData(1, 0, 0)},
		{"v6 /56", "www.example.com.", [][]byte{ecsData(2, 56, 0, 0x20, 1, 0xd, 0xb8, 0, 1, 2)}, dns.RcodeSuccess, ecsData(2, 56, 0, 0x20, 1, 0xd, 0xb8, 0, 1, 2)},
		{"nxdomain", "nope.example.com.", [][]byte{ecsData(1, 24, 0, 198, 51, 100)}, dns.RcodeNameError, ecsData(1, 24, 0, 198, 51, 100)},
		{"refused", "www.example.org.", [][]byte{ecsData(1, 24, 0, 198, 51, 100)}, dns.RcodeRefused, ecsData(1, 24, 0, 198, 51, 100)},
		{"second option ignored", "www.example.com.", [][]byte{ecsData(1, 24, 0, 198, 51, 100), ecsData(1, 16, 0, 10, 1)}, dns.RcodeSuccess, ecsData(1, 24, 0, 198, 51, 100)},
		{"unknown family", "www.example.com.", [][]byte{ecsData(3, 24, 0, 198, 51, 100)}, dns.RcodeFormatError, nil},
		{"family 0", "www.example.com.", [][]byte{ecsData(0, 0, 0)}, dns.RcodeFormatError, nil},
		{"v4 source too long", "www.example.com.", [][]byte{ecsData(1, 33, 0, 198, 51, 100, 7, 0)}, dns.RcodeFormatError, nil},
		{"v6 source too long", "www.example.com.", [][]byte{ecsData(2, 129, 0, make([]byte, 17)...)}, dns.RcodeFormatError, nil},
		{"scope in a query ignored", "www.example.com.", [][]byte{ecsData(1, 24, 16, 198, 51, 100)}, dns.RcodeSuccess, ecsData(1, 24, 0, 198, 51, 100)},
		{"too many octets", "www.example.com.", [][]byte{ecsData(1, 24, 0, 198, 51, 100, 0)}, dns.RcodeFormatError, nil},
		{"too few octets", "www.example.com.", [][]byte{ecsData(1, 24, 0, 198, 51)}, dns.RcodeFormatError, nil},
		{"bits beyond the source", "www.example.com.", [][]byte{ecsData(1, 22, 0, 198, 51, 101)}, dns.RcodeFormatError, nil},
		{"short option", "www.example.com.", [][]byte{{0, 1, 24}}, dns.RcodeFormatError, nil},
		{"malformed second option", "www.example.com.", [][]byte{ecsData(1, 24, 0, 198, 51, 100), {0, 1}}, dns.RcodeSuccess, ecsData(1, 24, 0, 198, 51, 100)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, tr := range []Transport{UDP, TCP} {
				resp := answer(w, ecsQuery(t, tt.qname, dns.TypeA, tt.opts...), tr)
				m := new(dns.Msg)
				if err := m.Unpack(resp); err != nil {
					t.Fatal(err)
				}
				if m.Rcode != tt.rcode {
					t.Fatalf("%v: rcode %s, want %s", tr, dns.RcodeToString[m.Rcode], dns.RcodeToString[tt.rcode])
				}
				if m.IsEdns0() == nil {
					t.Fatalf("%v: no OPT in the answer", tr)
				}
				got, n := echoedECS(t, resp)
				if n > 1 {
					t.Fatalf("%v: %d ECS options", tr, n)
				}
				if !bytes.Equal(got, tt.echo) {
					t.Fatalf("%v: ECS echoed %v, want %v", tr, got, tt.echo)
				}
			}
		})
	}
}

// TestECSNoOption: a query without ECS gets none back.
func TestECSNoOption(t *testing.T) {
	w := testHandler(t).NewWorker()
	resp := answer(w, ecsQuery(t, "www.example.com.", dns.TypeA), UDP)
	if _, n := echoedECS(t, resp); n != 0 {
		t.Fatalf("%d ECS options in the answer to a query without one", n)
	}
}

func TestECSClient(t *testing.T) {
	resolver := netip.MustParseAddr("192.0.2.7")
	tests := []struct {
		data []byte
		want string
		ecs  bool
	}{
		{ecsData(1, 32, 0, 198, 51, 100, 7), "198.51.100.0/24", true},
		{ecsData(1, 20, 0, 198, 51, 96), "198.51.96.0/20", true},
		{ecsData(1, 0, 0), "192.0.2.0/24", false},
		{ecsData(2, 64, 0, 0x20, 1, 0xd, 0xb8, 0, 1, 2, 3), "2001:db8:1:200::/56", true},
	}
	for _, tt := range tests {
		o, ok := parseECS(tt.data)
		if !ok {
			t.Fatalf("%v refused", tt.data)
		}
		r := request{ecs: o, hasECS: true}
		var src steer.Source
		r.source(resolver, &src)
		c := src.Client()
		if got := netip.PrefixFrom(c.Addr, int(c.Bits)).String(); got != tt.want || c.ECS != tt.ecs {
			t.Errorf("%v: client %s ecs=%v, want %s ecs=%v", tt.data, got, c.ECS, tt.want, tt.ecs)
		}
	}
	var r request
	var src steer.Source
	r.source(netip.MustParseAddr("2001:db8::53"), &src)
	if c := src.Client(); c.Bits != 56 || c.ECS {
		t.Errorf("resolver client %+v", c)
	}
}

// FuzzECS: parseECS never panics, and what it accepts is a well-formed
// option (RFC 7871 §6) that miekg/dns reads as the same subnet.
func FuzzECS(f *testing.F) {
	for _, d := range [][]byte{
		ecsData(1, 24, 0, 198, 51, 100), ecsData(2, 56, 0, 0x20, 1, 0xd, 0xb8, 0, 1, 2), ecsData(1, 0, 0),
		ecsData(1, 22, 0, 198, 51, 101), ecsData(3, 8, 0, 1), ecsData(1, 24, 8, 1, 2, 3), {0, 1},
	} {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o, ok := parseECS(data)
		if !ok {
			return
		}
		max := 32
		if o.family == 2 {
			max = 128
		}
		if o.family != 1 && o.family != 2 || int(o.source) > max || len(o.addr) != (int(o.source)+7)/8 {
			t.Fatalf("accepted %x as %+v", data, o)
		}
		in := new(dns.Msg)
		if err := in.Unpack(ecsQuery(t, "example.com.", dns.TypeA, data)); err != nil {
			t.Fatalf("accepted %x, miekg/dns refuses it: %v", data, err)
		}
		ref, isSubnet := in.IsEdns0().Option[0].(*dns.EDNS0_SUBNET)
		if !isSubnet {
			t.Fatalf("accepted %x, miekg/dns reads it as %T", data, in.IsEdns0().Option[0])
		}
		addr, _ := netip.AddrFromSlice(ref.Address)
		p, err := addr.Unmap().Prefix(int(ref.SourceNetmask))
		if err != nil || p.Addr() != addr.Unmap() {
			t.Fatalf("accepted %x with bits beyond its prefix (%v)", data, ref.Address)
		}
		r := request{ecs: o, hasECS: true}
		var src steer.Source
		r.source(netip.MustParseAddr("192.0.2.1"), &src)
		c := src.Client()
		if o.source > 0 && (!c.ECS || !netip.PrefixFrom(c.Addr, int(c.Bits)).Contains(p.Addr())) {
			t.Fatalf("%x: client %+v outside %v", data, c, p)
		}
		if c.Bits > 56 || c.Addr.Is4() && c.Bits > 24 {
			t.Fatalf("%x: client %+v beyond the privacy limit", data, c)
		}
	})
}
