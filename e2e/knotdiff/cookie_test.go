package knotdiff

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// cookieSecret is shared by Knot and anycastd, as by two PoPs of one
// anycast set.
const cookieSecret = "e5e973e5a6b2a43f48e7dc849e37bfcf"

// startKnotCookies starts Knot with mod-cookies and cookieSecret.
func startKnotCookies(t *testing.T, zones []testZone) *process {
	t.Helper()
	return startKnotWith(t, "knotd-cookies", zones, func(_ *testing.T, conf string) string {
		return strings.Replace(conf, "template:\n  - id: default\n",
			"mod-cookies:\n  - id: interop\n    secret: 0x"+cookieSecret+"\n\n"+
				"template:\n  - id: default\n    global-module: mod-cookies/interop\n", 1)
	})
}

// startAnycastdCookies starts the node with cookies on and cookieSecret.
func startAnycastdCookies(t *testing.T, zones []testZone) *process {
	t.Helper()
	return startAnycastdConfig(t, "anycastd-cookies", zones,
		fmt.Sprintf("limits:\n  cookies:\n    enabled: true\n    secret: %s\n", cookieSecret))
}

// askCookie sends an A query for name with COOKIE data (hex) over UDP and
// returns the answer and its COOKIE (hex, "" for none).
func askCookie(t *testing.T, addr netip.AddrPort, name, data string) (*dns.Msg, string) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeSOA)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_COOKIE{Code: dns.EDNS0COOKIE, Cookie: data})
	c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr.String())
	if err != nil {
		t.Fatalf("query %s with cookie %s: %v", addr, data, err)
	}
	if o := r.IsEdns0(); o != nil {
		for _, opt := range o.Option {
			if ck, ok := opt.(*dns.EDNS0_COOKIE); ok {
				return r, strings.ToLower(ck.Cookie)
			}
		}
	}
	return r, ""
}

// TestCookiesInterop: with the same secret, Knot and anycastd accept each
// other's Server Cookies (RFC 9018 §5: a client moved between PoPs of
// different implementations keeps its cookie).
func TestCookiesInterop(t *testing.T) {
	zones := testZones()[:1]
	knot := startKnotCookies(t, zones)
	node := startAnycastdCookies(t, zones)
	name := zones[0].origin

	var cb [8]byte
	_, _ = rand.Read(cb[:])
	client := hex.EncodeToString(cb[:])

	// Knot's cookie, shown to anycastd: valid, so echoed unchanged.
	_, fromKnot := askCookie(t, knot.addr, name, client)
	if len(fromKnot) != 48 || fromKnot[:16] != client {
		t.Fatalf("Knot answered cookie %q", fromKnot)
	}
	r, back := askCookie(t, node.addr, name, fromKnot)
	if r.Rcode != dns.RcodeSuccess || back != fromKnot {
		t.Errorf("anycastd with Knot's cookie %s: rcode %s, cookie %s; want it accepted and echoed",
			fromKnot, dns.RcodeToString[r.Rcode], back)
	}

	// anycastd's cookie, shown to Knot: Knot answers, no BADCOOKIE.
	_, fromNode := askCookie(t, node.addr, name, client)
	if len(fromNode) != 48 || fromNode[:16] != client {
		t.Fatalf("anycastd answered cookie %q", fromNode)
	}
	r, _ = askCookie(t, knot.addr, name, fromNode)
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("Knot with anycastd's cookie %s: rcode %s, %d answers; want NOERROR with the SOA",
			fromNode, dns.RcodeToString[r.Rcode], len(r.Answer))
	}

	// The control: a cookie with one bit changed is BADCOOKIE to Knot.
	forged := fromNode[:len(fromNode)-1] + string("01"[(fromNode[len(fromNode)-1]-'0'+1)%2])
	if forged == fromNode {
		t.Fatal("forged cookie equals the real one")
	}
	if r, _ = askCookie(t, knot.addr, name, forged); r.Rcode != dns.RcodeBadCookie {
		t.Errorf("Knot with a forged cookie: rcode %s, want BADCOOKIE (the check above proves nothing)", dns.RcodeToString[r.Rcode])
	}
}
