package xfrout

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/tsig"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// versions returns four versions of example.com. (serials 1 to 4), each a
// change of the one before: additions, a deletion, a TTL change, new types.
func versions(t testing.TB) []*zone.Zone {
	t.Helper()
	const hosts = 200
	v1 := makeZone(t, origin, 1, hosts)
	v2 := makeZone(t, origin, 2, hosts, "new1.example.com. 300 IN A 198.51.100.1")
	// host0 deleted, host1's TTL changed (the RRset is replaced).
	v3rrs, err := v2.RRs()
	if err != nil {
		t.Fatal(err)
	}
	var keep []dns.RR
	for _, rr := range v3rrs {
		switch {
		case rr.Header().Name == "host0.example.com.":
			continue
		case rr.Header().Name == "host1.example.com.":
			rr.Header().Ttl = 60
		case rr.Header().Rrtype == dns.TypeSOA:
			rr.(*dns.SOA).Serial = 3
		}
		keep = append(keep, rr)
	}
	for _, l := range []string{
		`example.com. 300 IN TXT "v=spf1 -all"`,
		"example.com. 300 IN MX 10 mail.example.com.",
		"mail.example.com. 300 IN A 198.51.100.25",
	} {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatal(err)
		}
		keep = append(keep, rr)
	}
	v3, err := zone.FromRecords(origin, keep, "test")
	if err != nil {
		t.Fatal(err)
	}
	v4rrs, err := v3.RRs()
	if err != nil {
		t.Fatal(err)
	}
	keep = keep[:0]
	for _, rr := range v4rrs {
		if rr.Header().Name == "new1.example.com." {
			continue
		}
		if soa, ok := rr.(*dns.SOA); ok {
			soa.Serial = 4
		}
		keep = append(keep, rr)
	}
	aaaa, err := dns.NewRR("www.example.com. 300 IN AAAA 2001:db8::80")
	if err != nil {
		t.Fatal(err)
	}
	v4, err := zone.FromRecords(origin, append(keep, aaaa), "test")
	if err != nil {
		t.Fatal(err)
	}
	return []*zone.Zone{v1, v2, v3, v4}
}

// sourceWithVersions returns a memSource holding example.com. at version 4
// with the three changes in its journal, and the versions.
func sourceWithVersions(t testing.TB) (*memSource, []*zone.Zone) {
	src := newMemSource()
	vs := versions(t)
	for _, v := range vs {
		src.set(t, v)
	}
	return src, vs
}

// aclConfig allows key A from 127.0.0.1, anyone unsigned from 127.0.0.2
// and key B from 127.0.0.3.
func aclConfig() Config {
	return Config{
		Keys: testKeys(),
		AllowTransfer: []ACL{
			{Prefix: netip.MustParsePrefix("127.0.0.1/32"), Key: keyA},
			{Prefix: netip.MustParsePrefix("127.0.0.2/32")},
			{Prefix: netip.MustParsePrefix("127.0.0.3/32"), Key: keyB},
		},
		MessageSize: 1024,
	}
}

// parseIXFR splits an IXFR answer into its newest SOA and its changes, or
// reports that it is AXFR-style.
func parseIXFR(t testing.TB, rrs []dns.RR) (newest *dns.SOA, changes []store.Change, axfrStyle bool) {
	t.Helper()
	if len(rrs) < 2 {
		t.Fatalf("IXFR answer of %d records", len(rrs))
	}
	newest = rrs[0].(*dns.SOA)
	last, ok := rrs[len(rrs)-1].(*dns.SOA)
	if !ok || last.Serial != newest.Serial {
		t.Fatalf("IXFR answer does not end with the SOA of serial %d: %v", newest.Serial, rrs[len(rrs)-1])
	}
	if _, ok := rrs[1].(*dns.SOA); !ok {
		return newest, nil, true
	}
	body := rrs[1 : len(rrs)-1]
	for i := 0; i < len(body); {
		from := body[i].(*dns.SOA)
		c := store.Change{From: from.Serial, Del: []dns.RR{from}}
		i++
		for ; i < len(body); i++ {
			if _, ok := body[i].(*dns.SOA); ok {
				break
			}
			c.Del = append(c.Del, body[i])
		}
		if i == len(body) {
			t.Fatalf("IXFR change from %d has no additions", c.From)
		}
		to := body[i].(*dns.SOA)
		c.To, c.Add = to.Serial, []dns.RR{to}
		i++
		for ; i < len(body); i++ {
			if _, ok := body[i].(*dns.SOA); ok {
				break
			}
			c.Add = append(c.Add, body[i])
		}
		changes = append(changes, c)
	}
	return newest, changes, false
}

func changeStrings(cs []store.Change) []string {
	var out []string
	for _, c := range cs {
		for _, rr := range c.Del {
			out = append(out, "-"+strings.ReplaceAll(rr.String(), "\t", " "))
		}
		for _, rr := range c.Add {
			out = append(out, "+"+strings.ReplaceAll(rr.String(), "\t", " "))
		}
	}
	return out
}

// TestAXFR checks the content, framing and signatures of an AXFR.
func TestAXFR(t *testing.T) {
	src, vs := sourceWithVersions(t)
	cfg := aclConfig()
	cfg.MessageSize = 512
	s, addr := startServer(t, cfg, src)
	resp, err := exchangeTCP(t, addr, axfrQuery(origin), signA)
	if err != nil {
		t.Fatal(err)
	}
	rrs := resp.records()
	if _, ok := rrs[0].(*dns.SOA); !ok {
		t.Fatalf("first record %v, want the SOA", rrs[0])
	}
	if diff := cmp.Diff(rrs[0].String(), rrs[len(rrs)-1].String()); diff != "" {
		t.Errorf("last record is not the first SOA (-first +last):\n%s", diff)
	}
	if diff := cmp.Diff(zoneStrings(t, vs[3]), rrStrings(rrs[:len(rrs)-1])); diff != "" {
		t.Errorf("AXFR content (-zone +axfr):\n%s", diff)
	}
	if len(resp.msgs) < 10 {
		t.Errorf("%d records in %d messages of at most 512 bytes; want several messages", len(rrs), len(resp.msgs))
	}
	for i, raw := range resp.raw {
		if len(raw) > 512 {
			t.Errorf("message %d is %d bytes, more than MessageSize 512", i, len(raw))
		}
		m := resp.msgs[i]
		if !m.Authoritative || m.Rcode != dns.RcodeSuccess || len(m.Question) != 1 || m.Question[0].Name != origin {
			t.Errorf("message %d: aa=%t rcode=%s question=%v", i, m.Authoritative, dns.RcodeToString[m.Rcode], m.Question)
		}
	}
	waitFor(t, "requests_total{axfr,ok} = 1", func() bool {
		return counter(t, s, "anycastd_xfrout_requests_total", map[string]string{"type": "axfr", "result": "ok"}) == 1
	})
	if got := counter(t, s, "anycastd_xfrout_transfer_bytes_total", map[string]string{"type": "axfr"}); got < 5000 {
		t.Errorf("transfer_bytes_total{axfr} = %v, want the bytes of the transfer", got)
	}
}

// TestAXFRLibraryClient transfers with miekg/dns's own client, which checks
// the TSIG of each envelope.
func TestAXFRLibraryClient(t *testing.T) {
	src, vs := sourceWithVersions(t)
	_, addr := startServer(t, aclConfig(), src)
	q := axfrQuery(origin)
	q.SetTsig(keyA, dns.HmacSHA256, tsig.Fudge, 0)
	tr := &dns.Transfer{TsigSecret: map[string]string{keyA: secretA}}
	ch, err := tr.In(q, addr.String())
	if err != nil {
		t.Fatal(err)
	}
	var rrs []dns.RR
	envelopes := 0
	for env := range ch {
		if env.Error != nil {
			t.Fatalf("envelope %d: %v", envelopes, env.Error)
		}
		envelopes++
		rrs = append(rrs, env.RR...)
	}
	if envelopes < 2 {
		t.Errorf("%d envelopes, want several (MessageSize 1024)", envelopes)
	}
	if diff := cmp.Diff(zoneStrings(t, vs[3]), rrStrings(rrs[:len(rrs)-1])); diff != "" {
		t.Errorf("AXFR content (-zone +axfr):\n%s", diff)
	}
}

// TestIXFR covers the IXFR answers over TCP.
func TestIXFR(t *testing.T) {
	src, vs := sourceWithVersions(t)
	s, addr := startServer(t, aclConfig(), src)
	journal, err := src.Changes(t.Context(), origin, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		client uint32
		want   string // uptodate, ixfr or full
		steps  []store.Change
	}{
		{"multi-step from 1", 1, resultIXFR, journal},
		{"two steps from 2", 2, resultIXFR, journal[1:]},
		{"one step from 3", 3, resultIXFR, journal[2:]},
		{"up to date", 4, resultUpToDate, nil},
		{"client newer", 10, resultUpToDate, nil},
		{"serial not in the journal", 0, resultFull, nil},
		{"serial far ahead wraps to older", 4 + 1<<31 + 1, resultFull, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := counter(t, s, "anycastd_xfrout_requests_total", map[string]string{"type": "ixfr", "result": tc.want})
			resp, err := exchangeTCP(t, addr, ixfrQuery(origin, tc.client), signA)
			if err != nil {
				t.Fatal(err)
			}
			rrs := resp.records()
			switch tc.want {
			case resultUpToDate:
				if len(resp.msgs) != 1 || len(rrs) != 1 || rrs[0].(*dns.SOA).Serial != 4 {
					t.Fatalf("want the current SOA alone, got %d messages: %v", len(resp.msgs), rrs)
				}
			case resultIXFR:
				newest, changes, axfrStyle := parseIXFR(t, rrs)
				if axfrStyle || newest.Serial != 4 {
					t.Fatalf("want an incremental answer to serial 4, got axfr-style=%t serial %d", axfrStyle, newest.Serial)
				}
				if diff := cmp.Diff(changeStrings(tc.steps), changeStrings(changes)); diff != "" {
					t.Errorf("IXFR sequences (-journal +ixfr):\n%s", diff)
				}
				// Applied to the client's version, the answer gives the
				// current one.
				z := vs[tc.client-1]
				for _, c := range changes {
					if z, err = zone.Apply(z, c.Del, c.Add); err != nil {
						t.Fatalf("apply %d→%d: %v", c.From, c.To, err)
					}
				}
				if diff := cmp.Diff(zoneStrings(t, vs[3]), zoneStrings(t, z)); diff != "" {
					t.Errorf("client zone after IXFR (-current +applied):\n%s", diff)
				}
			case resultFull:
				_, _, axfrStyle := parseIXFR(t, rrs)
				if !axfrStyle {
					t.Fatal("want an AXFR-style answer")
				}
				if diff := cmp.Diff(zoneStrings(t, vs[3]), rrStrings(rrs[:len(rrs)-1])); diff != "" {
					t.Errorf("AXFR-style content (-zone +ixfr):\n%s", diff)
				}
				if resp.msgs[0].Question[0].Qtype != dns.TypeIXFR {
					t.Errorf("question type %d, want IXFR", resp.msgs[0].Question[0].Qtype)
				}
			}
			// The server counts once the answer is written.
			waitFor(t, "requests_total{ixfr,"+tc.want+"} to grow by 1", func() bool {
				return counter(t, s, "anycastd_xfrout_requests_total", map[string]string{"type": "ixfr", "result": tc.want}) == before+1
			})
		})
	}
}

// TestIXFRTrimmedJournal: once the journal lost a serial, an IXFR from it
// gets the whole zone, and one from a serial still there the differences.
func TestIXFRTrimmedJournal(t *testing.T) {
	src, vs := sourceWithVersions(t)
	src.trim(origin, 1) // only 3→4 is left
	_, addr := startServer(t, aclConfig(), src)
	for _, tc := range []struct {
		client    uint32
		axfrStyle bool
	}{{1, true}, {2, true}, {3, false}} {
		resp, err := exchangeTCP(t, addr, ixfrQuery(origin, tc.client), signA)
		if err != nil {
			t.Fatal(err)
		}
		rrs := resp.records()
		_, changes, axfrStyle := parseIXFR(t, rrs)
		if axfrStyle != tc.axfrStyle {
			t.Fatalf("IXFR from %d: axfr-style=%t, want %t", tc.client, axfrStyle, tc.axfrStyle)
		}
		if axfrStyle {
			if diff := cmp.Diff(zoneStrings(t, vs[3]), rrStrings(rrs[:len(rrs)-1])); diff != "" {
				t.Errorf("IXFR from %d (-zone +ixfr):\n%s", tc.client, diff)
			}
		} else if len(changes) != 1 || changes[0].From != 3 || changes[0].To != 4 {
			t.Errorf("IXFR from 3: %d changes, want 3→4", len(changes))
		}
	}
}

// TestSourceFailure: a change log that cannot be read gets SERVFAIL.
func TestSourceFailure(t *testing.T) {
	src, _ := sourceWithVersions(t)
	src.changesErr = errors.New("disk on fire")
	s, addr := startServer(t, aclConfig(), src)
	resp, err := exchangeTCP(t, addr, ixfrQuery(origin, 1), signA)
	if err != nil {
		t.Fatal(err)
	}
	if m := resp.msgs[0]; len(resp.msgs) != 1 || m.Rcode != dns.RcodeServerFailure || m.IsTsig() == nil {
		t.Fatalf("%d messages, the first %v; want one signed SERVFAIL", len(resp.msgs), m)
	}
	waitFor(t, "requests_total{ixfr,failed} = 1", func() bool {
		return counter(t, s, "anycastd_xfrout_requests_total", map[string]string{"type": "ixfr", "result": "failed"}) == 1
	})
}

// TestSingleMessageAnswers covers SOA queries, IXFR over UDP and the
// answers to requests that cannot be served.
func TestSingleMessageAnswers(t *testing.T) {
	src, _ := sourceWithVersions(t)
	cfg := aclConfig()
	_, addr := startServer(t, cfg, src)
	aQuery := new(dns.Msg)
	aQuery.SetQuestion("host5."+origin, dns.TypeA)
	noSOA := ixfrQuery(origin, 1)
	noSOA.Ns = nil
	chaos := soaQuery(origin)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	edns := soaQuery(origin)
	edns.SetEdns0(4096, false)
	for _, tc := range []struct {
		name      string
		udp       bool
		q         *dns.Msg
		wantRcode int
		wantSOA   uint32 // 0 = no answer records
		wantOPT   bool
	}{
		{"soa over udp", true, soaQuery(origin), dns.RcodeSuccess, 4, false},
		{"soa over tcp", false, soaQuery(origin), dns.RcodeSuccess, 4, false},
		{"soa with edns", true, edns, dns.RcodeSuccess, 4, true},
		{"soa of an unknown zone", true, soaQuery("example.org."), dns.RcodeRefused, 0, false},
		{"soa below the apex", true, soaQuery("host1." + origin), dns.RcodeRefused, 0, false},
		{"ixfr over udp: current soa", true, ixfrQuery(origin, 1), dns.RcodeSuccess, 4, false},
		{"ixfr over udp, up to date", true, ixfrQuery(origin, 4), dns.RcodeSuccess, 4, false},
		{"axfr over udp", true, axfrQuery(origin), dns.RcodeFormatError, 0, false},
		{"axfr of an unknown zone", false, axfrQuery("example.org."), dns.RcodeNotAuth, 0, false},
		{"ixfr of an unknown zone", false, ixfrQuery("example.org.", 1), dns.RcodeNotAuth, 0, false},
		{"ixfr without the client's soa", false, noSOA, dns.RcodeFormatError, 0, false},
		{"other query type", true, aQuery, dns.RcodeRefused, 0, false},
		{"class CH", true, chaos, dns.RcodeRefused, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m *dns.Msg
			if tc.udp {
				var err error
				if m, _, err = exchangeUDP(t, addr, tc.q, signA); err != nil {
					t.Fatal(err)
				}
			} else {
				resp, err := exchangeTCP(t, addr, tc.q, signA)
				if err != nil {
					t.Fatal(err)
				}
				if len(resp.msgs) != 1 {
					t.Fatalf("%d messages, want 1", len(resp.msgs))
				}
				m = resp.msgs[0]
			}
			if m.Rcode != tc.wantRcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[m.Rcode], dns.RcodeToString[tc.wantRcode])
			}
			if m.IsTsig() == nil {
				t.Error("answer to a signed request is not signed")
			}
			if (m.IsEdns0() != nil) != tc.wantOPT {
				t.Errorf("OPT record present=%t, want %t", m.IsEdns0() != nil, tc.wantOPT)
			}
			if tc.wantSOA == 0 {
				if len(m.Answer) != 0 {
					t.Errorf("answer %v, want none", m.Answer)
				}
				return
			}
			if !m.Authoritative || len(m.Answer) != 1 {
				t.Fatalf("aa=%t answer %v, want one authoritative SOA", m.Authoritative, m.Answer)
			}
			if soa, ok := m.Answer[0].(*dns.SOA); !ok || soa.Serial != tc.wantSOA || soa.Hdr.Name != origin {
				t.Errorf("answer %v, want the SOA of %s serial %d", m.Answer[0], origin, tc.wantSOA)
			}
		})
	}
}

// TestIXFROverUDP: differences that fit in one UDP message are sent over
// UDP (RFC 1995 §2), signed; those that do not fit are answered with the
// current SOA alone, which sends the client to TCP.
func TestIXFROverUDP(t *testing.T) {
	src, _ := sourceWithVersions(t)
	_, addr := startServer(t, aclConfig(), src)
	for _, tc := range []struct {
		name    string
		from    uint32
		edns    uint16 // 0: no EDNS (512 bytes)
		wantSOA bool   // the SOA alone
	}{
		{"one step fits", 3, 1232, false},
		{"two steps fit", 2, 1232, false},
		{"the whole history is too large without EDNS", 1, 0, true},
		{"up to date", 4, 1232, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := ixfrQuery(origin, tc.from)
			if tc.edns != 0 {
				q.SetEdns0(tc.edns, false)
			}
			m, raw, err := exchangeUDP(t, addr, q, signA)
			if err != nil {
				t.Fatal(err)
			}
			if m.Rcode != dns.RcodeSuccess || !m.Authoritative || m.Truncated || m.IsTsig() == nil {
				t.Fatalf("rcode %s aa=%t tc=%t signed=%t", dns.RcodeToString[m.Rcode], m.Authoritative, m.Truncated, m.IsTsig() != nil)
			}
			limit := 512
			if tc.edns != 0 {
				limit = int(tc.edns)
			}
			if len(raw) > limit {
				t.Errorf("answer of %d bytes, limit %d", len(raw), limit)
			}
			if tc.wantSOA {
				if len(m.Answer) != 1 {
					t.Fatalf("answer %v, want the SOA alone", m.Answer)
				}
				return
			}
			newest, changes, axfrStyle := parseIXFR(t, m.Answer)
			if axfrStyle || newest.Serial != 4 || len(changes) != int(4-tc.from) || changes[0].From != tc.from {
				t.Fatalf("newest %d, %d changes (axfr style %t), want %d changes from %d to 4", newest.Serial, len(changes), axfrStyle, 4-tc.from, tc.from)
			}
		})
	}
}

// TestMalformed sends requests that cannot be parsed or are not queries.
func TestMalformed(t *testing.T) {
	src, _ := sourceWithVersions(t)
	_, addr := startServer(t, aclConfig(), src)
	notify := new(dns.Msg)
	notify.SetNotify(origin)
	notifyWire, err := notify.Pack()
	if err != nil {
		t.Fatal(err)
	}
	soaWire, err := soaQuery(origin).Pack()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		wire      []byte
		wantRcode int // -1: no answer
	}{
		{"truncated question", soaWire[:len(soaWire)-3], dns.RcodeFormatError},
		{"notify", notifyWire, dns.RcodeNotImplemented},
		{"two questions", func() []byte {
			b := append([]byte(nil), soaWire...)
			b[5] = 2
			return append(b, soaWire[12:]...)
		}(), dns.RcodeFormatError},
		{"response", func() []byte {
			b := append([]byte(nil), soaWire...)
			b[2] |= 0x80
			return b
		}(), -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := rawUDP(addr, tc.wire)
			if tc.wantRcode < 0 {
				if err == nil {
					t.Fatalf("answered %x, want no answer", resp)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m := new(dns.Msg)
			if err := m.Unpack(resp); err != nil {
				t.Fatal(err)
			}
			if m.Rcode != tc.wantRcode || !m.Response {
				t.Errorf("rcode %s qr=%t, want %s", dns.RcodeToString[m.Rcode], m.Response, dns.RcodeToString[tc.wantRcode])
			}
			if m.Id != uint16(tc.wire[0])<<8|uint16(tc.wire[1]) {
				t.Errorf("id %d, want the request's", m.Id)
			}
		})
	}
}
