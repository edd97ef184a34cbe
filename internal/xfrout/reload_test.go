package xfrout

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/tsig"
)

// soaRcode asks the server for the SOA of origin over TCP from 127.0.0.1,
// signed with key (nil = unsigned), and returns the rcode and TSIG error.
func soaRcode(t *testing.T, addr netip.AddrPort, key *clientKey) (rcode int, tsigErr uint16) {
	t.Helper()
	resp, err := exchangeTCP(t, addr, soaQuery(origin), key)
	if err != nil {
		t.Fatalf("soa: %v", err)
	}
	m := resp.msgs[0]
	if ts := m.IsTsig(); ts != nil {
		tsigErr = ts.Error
	}
	return m.Rcode, tsigErr
}

// TestReconfigure changes the keys, the ACL and the notify targets of a
// running server: each change is in force for the next request, a new
// target is notified of every zone, a removed one hears nothing more, and a
// bad configuration changes nothing.
func TestReconfigure(t *testing.T) {
	old := startReceiver(t, 0, dns.RcodeSuccess, signA)
	fresh := startReceiver(t, 0, dns.RcodeSuccess, nil)
	src := newMemSource()
	src.set(t, makeZone(t, origin, 1, 1))
	src.set(t, makeZone(t, "example.net.", 7, 1))
	cfg := notifyConfig(old, 3)
	cfg.AllowTransfer = []ACL{{Prefix: netip.MustParsePrefix("127.0.0.1/32"), Key: keyA}}
	s, addr := startServer(t, cfg, src)
	old.waitFor(t, origin, 1)
	old.waitFor(t, "example.net.", 7)

	if rc, _ := soaRcode(t, addr, signA); rc != dns.RcodeSuccess {
		t.Fatalf("before: signed with key A: %s, want NOERROR", dns.RcodeToString[rc])
	}
	if rc, _ := soaRcode(t, addr, signB); rc != dns.RcodeRefused {
		t.Fatalf("before: signed with key B: %s, want REFUSED", dns.RcodeToString[rc])
	}

	// Key B only, and the notify target replaced.
	next := cfg
	next.AllowTransfer = []ACL{{Prefix: netip.MustParsePrefix("127.0.0.1/32"), Key: keyB}}
	next.Notify = []NotifyTarget{{Addr: fresh.addr}}
	if err := s.Reconfigure(t.Context(), next); err != nil {
		t.Fatal(err)
	}
	if rc, _ := soaRcode(t, addr, signA); rc != dns.RcodeRefused {
		t.Errorf("after: signed with key A: %s, want REFUSED", dns.RcodeToString[rc])
	}
	if rc, _ := soaRcode(t, addr, signB); rc != dns.RcodeSuccess {
		t.Errorf("after: signed with key B: %s, want NOERROR", dns.RcodeToString[rc])
	}
	fresh.waitFor(t, origin, 1) // the new target hears of every zone
	fresh.waitFor(t, "example.net.", 7)
	before := len(old.all())
	src.set(t, makeZone(t, origin, 2, 2))
	fresh.waitFor(t, origin, 2)
	for _, g := range old.all()[before:] {
		t.Errorf("the removed target got %+v", g)
	}

	// A bad configuration is refused whole: the ACL stays as it was.
	bad := next
	bad.AllowTransfer = []ACL{{Prefix: netip.MustParsePrefix("127.0.0.0/8")}}
	bad.Keys = append(testKeys(), tsig.Key{Name: "key-c.", Algorithm: "hmac-md5", Secret: secretA})
	err := s.Reconfigure(t.Context(), bad)
	if err == nil || !strings.Contains(err.Error(), "unsupported algorithm") {
		t.Fatalf("Reconfigure with a bad key: %v, want an unsupported algorithm error", err)
	}
	if rc, _ := soaRcode(t, addr, nil); rc != dns.RcodeRefused {
		t.Errorf("after a refused reconfiguration: unsigned: %s, want REFUSED (the ACL unchanged)", dns.RcodeToString[rc])
	}

	// A new secret for key B: the old one no longer verifies.
	rotated := next
	rotated.Keys = []tsig.Key{{Name: keyA, Algorithm: "hmac-sha256", Secret: secretA}, {Name: keyB, Algorithm: "hmac-sha512", Secret: secretA}}
	if err := s.Reconfigure(t.Context(), rotated); err != nil {
		t.Fatal(err)
	}
	if rc, te := soaRcode(t, addr, signB); rc != dns.RcodeNotAuth || te != dns.RcodeBadSig {
		t.Errorf("old secret of key B: %s/%s, want NOTAUTH/BADSIG", dns.RcodeToString[rc], dns.RcodeToString[int(te)])
	}
	newB := &clientKey{name: keyB, alg: dns.HmacSHA512, secret: secretA}
	if rc, _ := soaRcode(t, addr, newB); rc != dns.RcodeSuccess {
		t.Errorf("new secret of key B: %s, want NOERROR", dns.RcodeToString[rc])
	}
}
