package knotdiff

import (
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

// TestCompareViews checks the comparator without any server: each case is a
// pair of responses, and whether they must compare equal, and through which
// accepted differences. It proves that every field the test claims to compare
// does make a difference, and that each accepted difference applies only
// where it is meant to.
func TestCompareViews(t *testing.T) {
	const id = 0x1234
	zone := map[string][]dns.RR{}
	for _, s := range []string{
		"www.example.com. 3600 IN A 192.0.2.80",
		"www.example.com. 3600 IN AAAA 2001:db8::80",
		"www.example.com. 3600 IN TXT \"web server\"",
		"*.wild.example.com. 3600 IN A 192.0.2.200",
		"*.wild.example.com. 3600 IN TXT \"from the wildcard\"",
		"many.example.com. 3600 IN A 192.0.2.1",
		"many.example.com. 3600 IN A 192.0.2.2",
	} {
		rr := mustRR(t, s)
		zone[strings.ToLower(rr.Header().Name)] = append(zone[strings.ToLower(rr.Header().Name)], rr)
	}

	wwwA := &query{qname: "www.example.com.", qtype: dns.TypeA, edns: e0()}
	base := func(q *query) *dns.Msg {
		m := new(dns.Msg)
		m.Id = id
		m.Response = true
		m.Authoritative = true
		m.Question = []dns.Question{{Name: q.qname, Qtype: q.qtype, Qclass: q.class()}}
		if q.edns != nil {
			m.SetEdns0(1232, q.edns.do)
		}
		return m
	}

	tests := []struct {
		name     string
		q        *query
		knot     func(q *query) *dns.Msg // nil: no answer
		ours     func(q *query) *dns.Msg // nil: no answer
		wantDiff bool
		wantUsed []string
	}{
		{
			name: "identical",
			q:    wwwA,
			knot: func(q *query) *dns.Msg {
				return withAnswer(base(q), mustRR(t, "www.example.com. 3600 IN A 192.0.2.80"))
			},
			ours: func(q *query) *dns.Msg {
				return withAnswer(base(q), mustRR(t, "www.example.com. 3600 IN A 192.0.2.80"))
			},
		},
		{
			name: "record order within a section does not matter",
			q:    &query{qname: "many.example.com.", qtype: dns.TypeA},
			knot: func(q *query) *dns.Msg {
				return withAnswer(base(q), mustRR(t, "many.example.com. 3600 IN A 192.0.2.1"), mustRR(t, "many.example.com. 3600 IN A 192.0.2.2"))
			},
			ours: func(q *query) *dns.Msg {
				return withAnswer(base(q), mustRR(t, "many.example.com. 3600 IN A 192.0.2.2"), mustRR(t, "many.example.com. 3600 IN A 192.0.2.1"))
			},
		},
		{
			name: "TTL differs",
			q:    wwwA,
			knot: func(q *query) *dns.Msg {
				return withAnswer(base(q), mustRR(t, "www.example.com. 3600 IN A 192.0.2.80"))
			},
			ours:     func(q *query) *dns.Msg { return withAnswer(base(q), mustRR(t, "www.example.com. 300 IN A 192.0.2.80")) },
			wantDiff: true,
		},
		{
			name: "record missing",
			q:    &query{qname: "many.example.com.", qtype: dns.TypeA},
			knot: func(q *query) *dns.Msg {
				return withAnswer(base(q), mustRR(t, "many.example.com. 3600 IN A 192.0.2.1"), mustRR(t, "many.example.com. 3600 IN A 192.0.2.2"))
			},
			ours: func(q *query) *dns.Msg {
				return withAnswer(base(q), mustRR(t, "many.example.com. 3600 IN A 192.0.2.1"))
			},
			wantDiff: true,
		},
		{
			name: "extra additional record",
			q:    wwwA,
			knot: func(q *query) *dns.Msg { return base(q) },
			ours: func(q *query) *dns.Msg {
				m := base(q)
				m.Extra = append([]dns.RR{mustRR(t, "ns1.example.com. 3600 IN A 192.0.2.53")}, m.Extra...)
				return m
			},
			wantDiff: true,
		},
		{
			name: "same record in another section",
			q:    wwwA,
			knot: func(q *query) *dns.Msg {
				m := base(q)
				m.Ns = []dns.RR{mustRR(t, "example.com. 300 IN SOA ns1.example.com. h.example.com. 1 2 3 4 300")}
				return m
			},
			ours: func(q *query) *dns.Msg {
				return withAnswer(base(q), mustRR(t, "example.com. 300 IN SOA ns1.example.com. h.example.com. 1 2 3 4 300"))
			},
			wantDiff: true,
		},
		{
			name:     "AA differs",
			q:        wwwA,
			knot:     func(q *query) *dns.Msg { return base(q) },
			ours:     func(q *query) *dns.Msg { m := base(q); m.Authoritative = false; return m },
			wantDiff: true,
		},
		{
			name:     "RA differs",
			q:        wwwA,
			knot:     func(q *query) *dns.Msg { return base(q) },
			ours:     func(q *query) *dns.Msg { m := base(q); m.RecursionAvailable = true; return m },
			wantDiff: true,
		},
		{
			name:     "CD differs",
			q:        wwwA,
			knot:     func(q *query) *dns.Msg { m := base(q); m.CheckingDisabled = true; return m },
			ours:     func(q *query) *dns.Msg { return base(q) },
			wantDiff: true,
		},
		{
			name:     "AD differs",
			q:        wwwA,
			knot:     func(q *query) *dns.Msg { return base(q) },
			ours:     func(q *query) *dns.Msg { m := base(q); m.AuthenticatedData = true; return m },
			wantDiff: true,
		},
		{
			name:     "RCODE differs",
			q:        wwwA,
			knot:     func(q *query) *dns.Msg { return base(q) },
			ours:     func(q *query) *dns.Msg { m := base(q); m.Rcode = dns.RcodeNameError; return m },
			wantDiff: true,
		},
		{
			name:     "extended RCODE differs",
			q:        wwwA,
			knot:     func(q *query) *dns.Msg { m := base(q); m.Rcode = dns.RcodeBadVers; return m },
			ours:     func(q *query) *dns.Msg { return base(q) },
			wantDiff: true,
		},
		{
			name:     "ID not echoed",
			q:        wwwA,
			knot:     func(q *query) *dns.Msg { return base(q) },
			ours:     func(q *query) *dns.Msg { m := base(q); m.Id = id + 1; return m },
			wantDiff: true,
		},
		{
			name:     "question case not echoed",
			q:        &query{qname: "WwW.eXaMpLe.CoM.", qtype: dns.TypeA},
			knot:     func(q *query) *dns.Msg { return base(q) },
			ours:     func(q *query) *dns.Msg { m := base(q); m.Question[0].Name = "www.example.com."; return m },
			wantDiff: true,
		},
		{
			name: "owner case outside the question",
			q:    &query{qname: "WwW.eXaMpLe.CoM.", qtype: dns.TypeA},
			knot: func(q *query) *dns.Msg {
				return withAnswer(base(q), mustRR(t, "WwW.eXaMpLe.CoM. 3600 IN A 192.0.2.80"))
			},
			ours: func(q *query) *dns.Msg {
				return withAnswer(base(q), mustRR(t, "www.example.com. 3600 IN A 192.0.2.80"))
			},
			wantUsed: []string{"name-case"},
		},
		{
			name: "RDATA case of a synthesized CNAME",
			q:    &query{qname: "WWW.old.example.com.", qtype: dns.TypeA},
			knot: func(q *query) *dns.Msg {
				return withAnswer(base(q), mustRR(t, "WWW.old.example.com. 3600 IN CNAME WWW.new.example.com."))
			},
			ours: func(q *query) *dns.Msg {
				return withAnswer(base(q), mustRR(t, "WWW.old.example.com. 3600 IN CNAME www.new.example.com."))
			},
			wantUsed: []string{"name-case"},
		},
		{
			name:     "TXT case is data, not a name",
			q:        &query{qname: "www.example.com.", qtype: dns.TypeTXT},
			knot:     func(q *query) *dns.Msg { return withAnswer(base(q), mustRR(t, "www.example.com. 3600 IN TXT \"Web\"")) },
			ours:     func(q *query) *dns.Msg { return withAnswer(base(q), mustRR(t, "www.example.com. 3600 IN TXT \"web\"")) },
			wantDiff: true,
		},
		{
			name:     "EDNS missing",
			q:        wwwA,
			knot:     func(q *query) *dns.Msg { return base(q) },
			ours:     func(q *query) *dns.Msg { m := base(q); m.Extra = nil; return m },
			wantDiff: true,
		},
		{
			name:     "EDNS DO differs",
			q:        wwwA,
			knot:     func(q *query) *dns.Msg { return base(q) },
			ours:     func(q *query) *dns.Msg { m := base(q); m.IsEdns0().SetDo(); return m },
			wantDiff: true,
		},
		{
			name:     "EDNS version differs",
			q:        wwwA,
			knot:     func(q *query) *dns.Msg { return base(q) },
			ours:     func(q *query) *dns.Msg { m := base(q); m.IsEdns0().SetVersion(1); return m },
			wantDiff: true,
		},
		{
			name:     "UDP size, both valid",
			q:        wwwA,
			knot:     func(q *query) *dns.Msg { return base(q) },
			ours:     func(q *query) *dns.Msg { m := base(q); m.IsEdns0().SetUDPSize(4096); return m },
			wantUsed: []string{"edns-udp-size"},
		},
		{
			name:     "UDP size under 512",
			q:        wwwA,
			knot:     func(q *query) *dns.Msg { return base(q) },
			ours:     func(q *query) *dns.Msg { m := base(q); m.IsEdns0().SetUDPSize(400); return m },
			wantDiff: true,
		},
		{
			name:     "NSID differs",
			q:        wwwA,
			knot:     func(q *query) *dns.Msg { return withNSID(base(q), identity) },
			ours:     func(q *query) *dns.Msg { return withNSID(base(q), "other") },
			wantDiff: true,
		},
		{
			name:     "NSID missing",
			q:        wwwA,
			knot:     func(q *query) *dns.Msg { return withNSID(base(q), identity) },
			ours:     func(q *query) *dns.Msg { return base(q) },
			wantDiff: true,
		},
		{
			// A truncated answer is compared in full: one that carries
			// fewer whole RRsets than fit is a difference (RFC 2181 §9).
			name: "both truncated, Knot fits one more RRset",
			q:    &query{qname: "www.big.example.com.", qtype: dns.TypeA},
			knot: func(q *query) *dns.Msg {
				m := withExtra(base(q), mustRR(t, "ns06.big.example.com. 3600 IN A 192.0.2.146"))
				m.Truncated = true
				return m
			},
			ours:     func(q *query) *dns.Msg { m := base(q); m.Truncated = true; return m },
			wantDiff: true,
		},
		{
			name: "only one truncated",
			q:    &query{qname: "many.example.com.", qtype: dns.TypeA},
			knot: func(q *query) *dns.Msg { m := base(q); m.Truncated = true; return m },
			ours: func(q *query) *dns.Msg {
				return withAnswer(base(q), mustRR(t, "many.example.com. 3600 IN A 192.0.2.1"))
			},
			wantDiff: true,
		},
		{
			name: "ANY: another complete RRset",
			q:    &query{qname: "www.example.com.", qtype: dns.TypeANY},
			knot: func(q *query) *dns.Msg {
				return withAnswer(base(q), mustRR(t, "www.example.com. 3600 IN A 192.0.2.80"))
			},
			ours: func(q *query) *dns.Msg {
				return withAnswer(base(q), mustRR(t, "www.example.com. 3600 IN TXT \"web server\""))
			},
			wantUsed: []string{"any-subset"},
		},
		{
			name: "ANY: synthesized HINFO",
			q:    &query{qname: "www.example.com.", qtype: dns.TypeANY},
			knot: func(q *query) *dns.Msg {
				return withAnswer(base(q), mustRR(t, "www.example.com. 3600 IN A 192.0.2.80"))
			},
			ours: func(q *query) *dns.Msg {
				return withAnswer(base(q), mustRR(t, "www.example.com. 3600 IN HINFO \"RFC8482\" \"\""))
			},
			wantUsed: []string{"any-subset"},
		},
		{
			name: "ANY: wildcard-synthesized RRset",
			q:    &query{qname: "host.wild.example.com.", qtype: dns.TypeANY},
			knot: func(q *query) *dns.Msg {
				return withAnswer(base(q), mustRR(t, "host.wild.example.com. 3600 IN A 192.0.2.200"))
			},
			ours: func(q *query) *dns.Msg {
				return withAnswer(base(q), mustRR(t, "host.wild.example.com. 3600 IN TXT \"from the wildcard\""))
			},
			wantUsed: []string{"any-subset"},
		},
		{
			name: "ANY: incomplete RRset",
			q:    &query{qname: "many.example.com.", qtype: dns.TypeANY},
			knot: func(q *query) *dns.Msg {
				return withAnswer(base(q), mustRR(t, "many.example.com. 3600 IN A 192.0.2.1"), mustRR(t, "many.example.com. 3600 IN A 192.0.2.2"))
			},
			ours: func(q *query) *dns.Msg {
				return withAnswer(base(q), mustRR(t, "many.example.com. 3600 IN A 192.0.2.1"))
			},
			wantDiff: true,
		},
		{
			name: "ANY: record not in the zone",
			q:    &query{qname: "www.example.com.", qtype: dns.TypeANY},
			knot: func(q *query) *dns.Msg {
				return withAnswer(base(q), mustRR(t, "www.example.com. 3600 IN A 192.0.2.80"))
			},
			ours: func(q *query) *dns.Msg {
				return withAnswer(base(q), mustRR(t, "www.example.com. 3600 IN A 192.0.2.81"))
			},
			wantDiff: true,
		},
		{
			name: "ANY: empty answer",
			q:    &query{qname: "www.example.com.", qtype: dns.TypeANY},
			knot: func(q *query) *dns.Msg {
				return withAnswer(base(q), mustRR(t, "www.example.com. 3600 IN A 192.0.2.80"))
			},
			ours:     func(q *query) *dns.Msg { return base(q) },
			wantDiff: true,
		},
		{
			name: "not ANY: another RRset is a difference",
			q:    wwwA,
			knot: func(q *query) *dns.Msg {
				return withAnswer(base(q), mustRR(t, "www.example.com. 3600 IN A 192.0.2.80"))
			},
			ours: func(q *query) *dns.Msg {
				return withAnswer(base(q), mustRR(t, "www.example.com. 3600 IN TXT \"web server\""))
			},
			wantDiff: true,
		},
		{
			name:     "version.bind text",
			q:        &query{qname: "version.bind.", qtype: dns.TypeTXT, qclass: dns.ClassCHAOS},
			knot:     func(q *query) *dns.Msg { return withAnswer(base(q), mustRR(t, "version.bind. 0 CH TXT \"knot\"")) },
			ours:     func(q *query) *dns.Msg { return withAnswer(base(q), mustRR(t, "version.bind. 0 CH TXT \"anycastd\"")) },
			wantUsed: []string{"version-text"},
		},
		{
			name:     "version.bind refused",
			q:        &query{qname: "version.bind.", qtype: dns.TypeTXT, qclass: dns.ClassCHAOS},
			knot:     func(q *query) *dns.Msg { return withAnswer(base(q), mustRR(t, "version.bind. 0 CH TXT \"knot\"")) },
			ours:     func(q *query) *dns.Msg { m := base(q); m.Rcode = dns.RcodeRefused; return m },
			wantDiff: true,
		},
		{
			name: "id.server text is the identity",
			q:    &query{qname: "id.server.", qtype: dns.TypeTXT, qclass: dns.ClassCHAOS},
			knot: func(q *query) *dns.Msg {
				return withAnswer(base(q), mustRR(t, "id.server. 0 CH TXT \"knotdiff-node\""))
			},
			ours:     func(q *query) *dns.Msg { return withAnswer(base(q), mustRR(t, "id.server. 0 CH TXT \"anycastd\"")) },
			wantDiff: true,
		},
		{
			name: "DNAME overflow: Knot's NXDOMAIN corrected",
			q:    &query{qname: strings.Repeat("p", 63) + "." + strings.Repeat("q", 63) + ".long.example.com.", qtype: dns.TypeA},
			knot: func(q *query) *dns.Msg {
				m := withAnswer(base(q), mustRR(t, longDNAME))
				m.Rcode = dns.RcodeNameError
				m.Ns = []dns.RR{mustRR(t, "example.com. 300 IN SOA ns1.example.com. h.example.com. 1 2 3 4 300")}
				return m
			},
			ours: func(q *query) *dns.Msg {
				m := withAnswer(base(q), mustRR(t, longDNAME))
				m.Rcode = dns.RcodeYXDomain
				return m
			},
			wantUsed: []string{"knot-dname-overflow"},
		},
		{
			name: "DNAME overflow: NXDOMAIN from us too is wrong",
			q:    &query{qname: strings.Repeat("p", 63) + "." + strings.Repeat("q", 63) + ".long.example.com.", qtype: dns.TypeA},
			knot: func(q *query) *dns.Msg {
				m := withAnswer(base(q), mustRR(t, longDNAME))
				m.Rcode = dns.RcodeNameError
				return m
			},
			ours: func(q *query) *dns.Msg {
				m := withAnswer(base(q), mustRR(t, longDNAME))
				m.Rcode = dns.RcodeNameError
				return m
			},
			wantDiff: true,
			wantUsed: []string{"knot-dname-overflow"},
		},
		{
			name: "DNAME NXDOMAIN that fits is not corrected",
			q:    &query{qname: "nothere.long.example.com.", qtype: dns.TypeA},
			knot: func(q *query) *dns.Msg {
				m := withAnswer(base(q), mustRR(t, longDNAME))
				m.Rcode = dns.RcodeNameError
				return m
			},
			ours: func(q *query) *dns.Msg {
				m := withAnswer(base(q), mustRR(t, longDNAME))
				m.Rcode = dns.RcodeYXDomain
				return m
			},
			wantDiff: true,
		},
		{
			name: "malformed: Knot drops, we answer FORMERR",
			q:    &query{raw: header(0, 2, 0, 0, 0)},
			ours: func(q *query) *dns.Msg {
				m := new(dns.Msg)
				m.Id = id
				m.Response = true
				m.Rcode = dns.RcodeFormatError
				return m
			},
			wantUsed: []string{"malformed-drop"},
		},
		{
			name:     "malformed: Knot drops, we answer NOERROR",
			q:        &query{raw: header(0, 2, 0, 0, 0)},
			ours:     func(q *query) *dns.Msg { m := new(dns.Msg); m.Id = id; m.Response = true; return m },
			wantDiff: true,
		},
		{
			name: "malformed: Knot answers FORMERR, we drop",
			q:    &query{raw: header(0, 0, 0, 0, 0)},
			knot: func(q *query) *dns.Msg {
				m := new(dns.Msg)
				m.Id = id
				m.Response = true
				m.Rcode = dns.RcodeFormatError
				return m
			},
			wantDiff: true,
		},
		{
			name: "a response (QR=1) must not be answered",
			q:    &query{raw: header(0x8000, 1, 0, 0, 0)},
			ours: func(q *query) *dns.Msg {
				m := new(dns.Msg)
				m.Id = id
				m.Response = true
				m.Rcode = dns.RcodeFormatError
				return m
			},
			wantDiff: true,
		},
		{
			name: "malformed: only the RCODE counts",
			q:    &query{raw: header(0, 0, 0, 0, 0)},
			knot: func(q *query) *dns.Msg {
				m := new(dns.Msg)
				m.Id = id
				m.Response = true
				m.Rcode = dns.RcodeFormatError
				return m
			},
			ours:     func(q *query) *dns.Msg { m := base(wwwA); m.Rcode = dns.RcodeFormatError; return m },
			wantUsed: nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kv := viewOf(t, tc.q, tc.knot)
			ov := viewOf(t, tc.q, tc.ours)
			diff, used := compareViews(tc.q, kv, ov, acceptedDifferences(zone))
			if (diff != "") != tc.wantDiff {
				t.Errorf("difference found = %t, want %t; diff:\n%s", diff != "", tc.wantDiff, diff)
			}
			if d := cmp.Diff(tc.wantUsed, used); d != "" {
				t.Errorf("accepted differences used (-want +got):\n%s", d)
			}
		})
	}
}

const longDNAME = "long.example.com. 3600 IN DNAME " +
	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.example.com."

// TestAcceptedDifferencesDocumented checks that README.md lists every
// accepted difference by its ID, so the list and its documentation agree.
func TestAcceptedDifferencesDocumented(t *testing.T) {
	readme := readFile(t, "README.md")
	for _, a := range acceptedDifferences(nil) {
		if !strings.Contains(readme, "`"+a.id+"`") {
			t.Errorf("accepted difference %q is not in README.md", a.id)
		}
		if a.reason == "" || !strings.Contains(a.reason, "RFC") {
			t.Errorf("accepted difference %q gives no RFC reason", a.id)
		}
	}
	for _, a := range tsigAccepted {
		if !strings.Contains(readme, "`"+a.id+"`") {
			t.Errorf("accepted TSIG difference %q is not in README.md", a.id)
		}
		if !strings.Contains(a.reason, "RFC") {
			t.Errorf("accepted TSIG difference %q gives no RFC reason", a.id)
		}
	}
}

// TestMixCase checks that the random-case names are deterministic, change
// case, and keep the name.
func TestMixCase(t *testing.T) {
	a, b := mixCase("www.example.com.", 1), mixCase("www.example.com.", 1)
	if a != b {
		t.Fatalf("mixCase is not deterministic: %q then %q", a, b)
	}
	if !strings.EqualFold(a, "www.example.com.") {
		t.Errorf("mixCase changed the name: %q", a)
	}
	if a == "www.example.com." || a == strings.ToUpper("www.example.com.") {
		t.Errorf("mixCase gave no mixed case: %q", a)
	}
}

func viewOf(t *testing.T, q *query, build func(*query) *dns.Msg) *view {
	t.Helper()
	if build == nil {
		return newView(0x1234, nil, errNoAnswer)
	}
	wire, err := build(q).Pack()
	if err != nil {
		t.Fatalf("pack: %v", err)
	}
	return newView(0x1234, wire, nil)
}

func withAnswer(m *dns.Msg, rrs ...dns.RR) *dns.Msg {
	m.Answer = append(m.Answer, rrs...)
	return m
}

func withExtra(m *dns.Msg, rrs ...dns.RR) *dns.Msg {
	m.Extra = append(m.Extra, rrs...)
	return m
}

func withNSID(m *dns.Msg, text string) *dns.Msg {
	opt := m.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: hex.EncodeToString([]byte(text))})
	return m
}

func mustRR(t *testing.T, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return rr
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
