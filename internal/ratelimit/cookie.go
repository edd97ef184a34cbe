package ratelimit

import (
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/dchest/siphash"
)

// DNS Cookies (RFC 7873) with the interoperable Server Cookie of RFC 9018:
//
//	Server Cookie = Version (1) | Reserved (0, 3 bytes) | Timestamp (4) | Hash (8)
//	Hash = SipHash-2-4(Client Cookie | Version | Reserved | Timestamp | Client IP, Secret)
//
// Every PoP of an anycast set must have the same secret, so that a client
// moved to another PoP keeps a valid cookie; Knot DNS, BIND and Unbound
// compute the same cookie from the same secret (RFC 9018 §5).

// Cookie lengths (RFC 7873 §4).
const (
	ClientCookieLen    = 8
	ServerCookieLen    = 16 // what this server makes (RFC 9018)
	MinServerCookieLen = 8
	MaxServerCookieLen = 32
	cookieVersion      = 1
)

// A Server Cookie is valid from 5 minutes in the future to 1 hour in the
// past, and one older than half an hour is replaced by a new one (RFC 9018
// §4.3).
const (
	cookieMaxAge    = time.Hour
	cookieMaxFuture = 5 * time.Minute
	cookieRenew     = 30 * time.Minute
)

// Cookies makes and checks Server Cookies. It is safe for concurrent use.
type Cookies struct {
	k0, k1 uint64
	now    func() time.Time // replaced in tests
}

// RandomCookieSecret returns a fresh secret for a node on its own.
func RandomCookieSecret() [16]byte {
	var s [16]byte
	_, _ = rand.Read(s[:]) // crypto/rand.Read never fails
	return s
}

// NewCookies returns cookies made with secret.
func NewCookies(secret [16]byte) *Cookies {
	return &Cookies{
		k0: binary.LittleEndian.Uint64(secret[:8]), k1: binary.LittleEndian.Uint64(secret[8:]),
		now: time.Now,
	}
}

// hash is the RFC 9018 hash of a cookie made at ts for client and ip.
func (c *Cookies) hash(client []byte, ts uint32, ip netip.Addr) uint64 {
	var buf [ClientCookieLen + 8 + 16]byte
	b := append(buf[:0], client...)
	b = append(b, cookieVersion, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, ts)
	ip = ip.Unmap()
	if ip.Is4() {
		a := ip.As4()
		b = append(b, a[:]...)
	} else {
		a := ip.As16()
		b = append(b, a[:]...)
	}
	return siphash.Hash(c.k0, c.k1, b)
}

// make appends a new Server Cookie for client and ip at ts to dst.
func (c *Cookies) make(dst, client []byte, ts uint32, ip netip.Addr) []byte {
	dst = append(dst, cookieVersion, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, ts)
	return binary.LittleEndian.AppendUint64(dst, c.hash(client, ts, ip))
}

// Answer checks the cookies of a query from ip (client: 8 bytes; server:
// what the client sent, possibly none) and appends to dst the Server Cookie
// to answer with: the one received when it is valid and less than half an
// hour old, a new one otherwise. valid reports whether the query carried
// a valid Server Cookie, which shows that the client's address is not
// spoofed.
func (c *Cookies) Answer(dst, client, server []byte, ip netip.Addr) (out []byte, valid bool) {
	now := c.now()
	nowTS := uint32(now.Unix())
	if len(server) == ServerCookieLen && server[0] == cookieVersion && server[1]|server[2]|server[3] == 0 {
		ts := binary.BigEndian.Uint32(server[4:])
		// RFC 1982 serial arithmetic on the 32-bit timestamp.
		age := time.Duration(int32(nowTS-ts)) * time.Second
		if age <= cookieMaxAge && age >= -cookieMaxFuture &&
			binary.LittleEndian.Uint64(server[8:]) == c.hash(client, ts, ip) {
			if age < cookieRenew {
				return append(dst, server...), true
			}
			return c.make(dst, client, nowTS, ip), true
		}
	}
	return c.make(dst, client, nowTS, ip), false
}
