package xfrout

import (
	"context"
	"net/netip"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// updateCalls records what the server hands to Config.Update.
type updateCalls struct {
	mu    sync.Mutex
	keys  []string
	srcs  []netip.Addr
	rcode int
}

func (u *updateCalls) fn(_ context.Context, m *dns.Msg, key string, src netip.AddrPort) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	if m.Opcode != dns.OpcodeUpdate {
		return dns.RcodeServerFailure
	}
	u.keys = append(u.keys, key)
	u.srcs = append(u.srcs, src.Addr())
	return u.rcode
}

func (u *updateCalls) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.keys)
}

func updateMsg() *dns.Msg {
	m := new(dns.Msg)
	m.SetUpdate(origin)
	rr, _ := dns.NewRR(`_acme-challenge.example.com. 60 IN TXT "t"`)
	m.Insert([]dns.RR{rr})
	return m
}

// TestUpdate: UPDATE reaches Config.Update over UDP and TCP with the key
// that signed it, from a source in no allow_transfer prefix too; the
// answer carries its rcode, signed. A bad signature never reaches it,
// nor a source outside UpdateFrom; without Update, UPDATE is NOTIMP.
func TestUpdate(t *testing.T) {
	src, _ := sourceWithVersions(t)
	calls := &updateCalls{rcode: dns.RcodeNXRrset}
	cfg := aclConfig()
	cfg.Update = calls.fn
	cfg.UpdateFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("127.0.0.5/32")}
	_, addr := startServer(t, cfg, src)

	m, _, err := exchangeUDP(t, addr, updateMsg(), signA)
	if err != nil {
		t.Fatal(err)
	}
	if m.Rcode != dns.RcodeNXRrset || m.Opcode != dns.OpcodeUpdate || m.IsTsig() == nil {
		t.Errorf("UDP: rcode %s opcode %d tsig %v, want a signed NXRRSET UPDATE answer", dns.RcodeToString[m.Rcode], m.Opcode, m.IsTsig())
	}
	// 127.0.0.5 is in no allow_transfer prefix: the connection is
	// accepted for UPDATE.
	resp, err := exchangeTCPFrom(t, netip.MustParseAddr("127.0.0.5"), addr, updateMsg(), signB)
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.msgs[0]; r.Rcode != dns.RcodeNXRrset || len(r.Question) != 1 || r.Question[0].Name != origin {
		t.Errorf("TCP: %v", r)
	}
	resp, err = exchangeTCPFrom(t, netip.MustParseAddr("127.0.0.1"), addr, updateMsg(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.msgs[0]; r.Rcode != dns.RcodeNXRrset || r.IsTsig() != nil {
		t.Errorf("unsigned: %v, want an unsigned NXRRSET (what Update said)", r)
	}
	if calls.count() != 3 {
		t.Fatalf("%d calls, want 3", calls.count())
	}
	if got := calls.keys; got[0] != keyA || got[1] != keyB || got[2] != "" {
		t.Errorf("keys %q, want %s, %s and none", got, keyA, keyB)
	}
	// A bad MAC: NOTAUTH, not applied.
	resp, err = exchangeTCPFrom(t, netip.MustParseAddr("127.0.0.1"), addr, updateMsg(), &clientKey{name: keyA, alg: dns.HmacSHA256, secret: secretB})
	if err != nil {
		t.Fatal(err)
	}
	if resp.msgs[0].Rcode != dns.RcodeNotAuth {
		t.Errorf("bad MAC: rcode %s, want NOTAUTH", dns.RcodeToString[resp.msgs[0].Rcode])
	}
	// 127.0.0.2 may transfer but is not in UpdateFrom.
	resp, err = exchangeTCPFrom(t, netip.MustParseAddr("127.0.0.2"), addr, updateMsg(), signA)
	if err != nil {
		t.Fatal(err)
	}
	if resp.msgs[0].Rcode != dns.RcodeRefused || resp.msgs[0].IsTsig() == nil {
		t.Errorf("outside update_from: rcode %s, want a signed REFUSED", dns.RcodeToString[resp.msgs[0].Rcode])
	}
	if calls.count() != 3 {
		t.Errorf("%d calls, want still 3", calls.count())
	}

	// An SOA query signed with a key, from a source that may update but
	// not transfer, is answered (UPDATE clients look the zone up first);
	// a transfer is not.
	resp, err = exchangeTCPFrom(t, netip.MustParseAddr("127.0.0.5"), addr, soaQuery(origin), signB)
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.msgs[0]; r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || !r.Authoritative {
		t.Errorf("signed SOA query from an update source: %v", r)
	}
	resp, err = exchangeTCPFrom(t, netip.MustParseAddr("127.0.0.5"), addr, soaQuery(origin), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.msgs[0]; r.Rcode != dns.RcodeRefused {
		t.Errorf("unsigned SOA query from an update source: %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
	resp, err = exchangeTCPFrom(t, netip.MustParseAddr("127.0.0.5"), addr, axfrQuery(origin), signB)
	if err != nil {
		t.Fatal(err)
	}
	if r := resp.msgs[0]; r.Rcode != dns.RcodeRefused {
		t.Errorf("AXFR from an update source: %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}

	// Without Update: NOTIMP.
	_, addr2 := startServer(t, aclConfig(), src)
	m, _, err = exchangeUDP(t, addr2, updateMsg(), signA)
	if err != nil {
		t.Fatal(err)
	}
	if m.Rcode != dns.RcodeNotImplemented {
		t.Errorf("without Update: rcode %s, want NOTIMP", dns.RcodeToString[m.Rcode])
	}
}
