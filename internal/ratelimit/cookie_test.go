package ratelimit

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"testing"
	"time"
)

// knotVector is a Server Cookie made by Knot DNS 3.2.6 (mod-cookies, secret
// e5e973e5a6b2a43f48e7dc849e37bfcf) for client cookie 2464c4abcf10c957
// from 127.0.0.1: kdig +cookie=2464c4abcf10c957 printed
// 2464C4ABCF10C957 010000006B091C3F 7601526B5F2936B0.
var knotVector = struct {
	secret, client, server string
	ip                     netip.Addr
	ts                     uint32
}{"e5e973e5a6b2a43f48e7dc849e37bfcf", "2464c4abcf10c957", "010000006b091c3f7601526b5f2936b0",
	netip.MustParseAddr("127.0.0.1"), 0x6b091c3f}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func vectorCookies(t *testing.T, at uint32) *Cookies {
	t.Helper()
	var secret [16]byte
	if n, err := hex.Decode(secret[:], []byte(knotVector.secret)); err != nil || n != len(secret) {
		t.Fatalf("test vector secret: %d bytes, %v", n, err)
	}
	c := NewCookies(secret)
	c.now = func() time.Time { return time.Unix(int64(at), 0) }
	return c
}

// TestCookieKnotVector: the same secret, client cookie, address and time
// give Knot's Server Cookie byte for byte (RFC 9018 interoperability).
func TestCookieKnotVector(t *testing.T) {
	v := knotVector
	c := vectorCookies(t, v.ts)
	client, server := unhex(t, v.client), unhex(t, v.server)
	if got := c.make(nil, client, v.ts, v.ip); !bytes.Equal(got, server) {
		t.Errorf("made %x, Knot made %x", got, server)
	}
	out, valid := c.Answer(nil, client, server, v.ip)
	if !valid || !bytes.Equal(out, server) {
		t.Errorf("Answer(Knot's cookie) = %x, valid %v; want it echoed and valid", out, valid)
	}
	// A v4-mapped source is the same client.
	if _, valid := c.Answer(nil, client, server, netip.MustParseAddr("::ffff:127.0.0.1")); !valid {
		t.Error("v4-mapped 127.0.0.1 not accepted")
	}
}

func TestCookieValidity(t *testing.T) {
	v := knotVector
	client, server := unhex(t, v.client), unhex(t, v.server)
	flip := func(i int) []byte { b := bytes.Clone(server); b[i] ^= 1; return b }
	for _, tc := range []struct {
		name   string
		at     uint32 // server clock
		client []byte
		server []byte
		ip     string
		valid  bool
		echo   bool // the same cookie comes back
	}{
		{"fresh", v.ts + 60, client, server, "127.0.0.1", true, true},
		{"29 minutes old", v.ts + 29*60, client, server, "127.0.0.1", true, true},
		{"31 minutes old: valid, renewed", v.ts + 31*60, client, server, "127.0.0.1", true, false},
		{"61 minutes old", v.ts + 61*60, client, server, "127.0.0.1", false, false},
		{"4 minutes ahead", v.ts - 4*60, client, server, "127.0.0.1", true, true},
		{"6 minutes ahead", v.ts - 6*60, client, server, "127.0.0.1", false, false},
		{"other address", v.ts, client, server, "127.0.0.2", false, false},
		{"other client cookie", v.ts, unhex(t, "2464c4abcf10c958"), server, "127.0.0.1", false, false},
		{"hash changed", v.ts, client, flip(15), "127.0.0.1", false, false},
		{"timestamp changed", v.ts, client, flip(7), "127.0.0.1", false, false},
		{"version 2", v.ts, client, append([]byte{2}, server[1:]...), "127.0.0.1", false, false},
		{"reserved set", v.ts, client, flip(2), "127.0.0.1", false, false},
		{"short", v.ts, client, server[:8], "127.0.0.1", false, false},
		{"none", v.ts, client, nil, "127.0.0.1", false, false},
	} {
		c := vectorCookies(t, tc.at)
		out, valid := c.Answer(nil, tc.client, tc.server, netip.MustParseAddr(tc.ip))
		if valid != tc.valid || bytes.Equal(out, tc.server) != tc.echo {
			t.Errorf("%s: valid %v, echoed %v; want %v, %v", tc.name, valid, bytes.Equal(out, tc.server), tc.valid, tc.echo)
		}
		// Whatever came in, what goes out is a valid cookie now.
		if len(out) != ServerCookieLen {
			t.Fatalf("%s: answered a %d-byte cookie", tc.name, len(out))
		}
		if _, ok := c.Answer(nil, tc.client, out, netip.MustParseAddr(tc.ip)); !ok {
			t.Errorf("%s: the cookie answered (%x) is not valid", tc.name, out)
		}
	}
}

func TestCookieIPv6(t *testing.T) {
	c := NewCookies(RandomCookieSecret())
	client := unhex(t, "22681ab97d52c298")
	a, b := netip.MustParseAddr("2001:db8::53"), netip.MustParseAddr("2001:db8::54")
	out, _ := c.Answer(nil, client, nil, a)
	if _, ok := c.Answer(nil, client, out, a); !ok {
		t.Error("own IPv6 cookie not valid")
	}
	if _, ok := c.Answer(nil, client, out, b); ok {
		t.Error("cookie valid from another IPv6 address")
	}
}

func TestRandomCookieSecret(t *testing.T) {
	if a, b := RandomCookieSecret(), RandomCookieSecret(); a == b {
		t.Error("two random secrets are equal")
	}
}

func BenchmarkCookieAnswer(b *testing.B) {
	c := NewCookies(RandomCookieSecret())
	ip := netip.MustParseAddr("192.0.2.1")
	client := []byte("12345678")
	server, _ := c.Answer(nil, client, nil, ip)
	buf := make([]byte, 0, 32)
	b.ReportAllocs()
	for b.Loop() {
		c.Answer(buf, client, server, ip)
	}
}
