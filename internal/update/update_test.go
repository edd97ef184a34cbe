package update

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/zone"
)

const zoneText = `
$ORIGIN example.com.
@        3600 IN SOA ns1 hostmaster 100 7200 3600 1209600 300
@        3600 IN NS  ns1
@        3600 IN NS  ns2
@        3600 IN MX  10 mail
ns1      3600 IN A   192.0.2.1
ns2      3600 IN A   192.0.2.2
www      300  IN A   192.0.2.10
www      300  IN A   192.0.2.11
www      300  IN TXT "hello"
alias    300  IN CNAME www
_acme-challenge.www 60 IN TXT "old"
a.b.c    60   IN A   192.0.2.3
`

func testZone(t testing.TB) *zone.Zone {
	t.Helper()
	recs, err := zone.Parse(strings.NewReader(zoneText), "example.com.", "test")
	if err != nil {
		t.Fatal(err)
	}
	z, err := zone.Build("example.com.", recs)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func rr(t testing.TB, s string) dns.RR {
	t.Helper()
	r, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return r
}

// hdr is a record without data, as the class ANY and NONE forms have it.
func hdr(name string, class, typ uint16) dns.RR {
	return &dns.RR_Header{Name: name, Rrtype: typ, Class: class}
}

// wire packs and unpacks an UPDATE, as the server receives it.
func wire(t testing.TB, prereq, upd []dns.RR) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetUpdate("example.com.")
	m.Answer, m.Ns = prereq, upd
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	var out dns.Msg
	if err := out.Unpack(b); err != nil {
		t.Fatal(err)
	}
	return &out
}

var allowAll = []Rule{{Key: "k.", Match: MatchZone, Types: []uint16{dns.TypeA, dns.TypeTXT, dns.TypeMX, dns.TypeCNAME, dns.TypeNS, dns.TypeSOA, dns.TypeAAAA}}}

func mustPolicy(t testing.TB, rules []Rule) *Policy {
	t.Helper()
	p, err := NewPolicy(rules)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func rcodeOf(err error) int {
	if err == nil {
		return dns.RcodeSuccess
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Rcode
	}
	return -1
}

// TestPrerequisites: each prerequisite form of RFC 2136 §2.4 against the
// zone, with the rcode of §3.2 when it fails.
func TestPrerequisites(t *testing.T) {
	z := testZone(t)
	pol := mustPolicy(t, allowAll)
	for _, tc := range []struct {
		name   string
		prereq []dns.RR
		want   int
	}{
		{"name in use", []dns.RR{hdr("www.example.com.", dns.ClassANY, dns.TypeANY)}, dns.RcodeSuccess},
		{"name in use: empty non-terminal is not", []dns.RR{hdr("b.c.example.com.", dns.ClassANY, dns.TypeANY)}, dns.RcodeNameError},
		{"name in use: absent", []dns.RR{hdr("nope.example.com.", dns.ClassANY, dns.TypeANY)}, dns.RcodeNameError},
		{"name not in use", []dns.RR{hdr("nope.example.com.", dns.ClassNONE, dns.TypeANY)}, dns.RcodeSuccess},
		{"name not in use: present", []dns.RR{hdr("WWW.example.com.", dns.ClassNONE, dns.TypeANY)}, dns.RcodeYXDomain},
		{"rrset exists (value independent)", []dns.RR{hdr("www.example.com.", dns.ClassANY, dns.TypeTXT)}, dns.RcodeSuccess},
		{"rrset exists: absent", []dns.RR{hdr("www.example.com.", dns.ClassANY, dns.TypeAAAA)}, dns.RcodeNXRrset},
		{"rrset does not exist", []dns.RR{hdr("www.example.com.", dns.ClassNONE, dns.TypeAAAA)}, dns.RcodeSuccess},
		{"rrset does not exist: present", []dns.RR{hdr("www.example.com.", dns.ClassNONE, dns.TypeA)}, dns.RcodeYXRrset},
		{"rrset exists (value dependent)", []dns.RR{
			rr(t, "www.example.com. 0 IN A 192.0.2.11"), rr(t, "www.example.com. 0 IN A 192.0.2.10"),
		}, dns.RcodeSuccess},
		{"value dependent: duplicates count once", []dns.RR{
			rr(t, "www.example.com. 0 IN A 192.0.2.11"), rr(t, "www.example.com. 0 IN A 192.0.2.10"), rr(t, "www.example.com. 0 IN A 192.0.2.10"),
		}, dns.RcodeSuccess},
		{"value dependent: a subset is not the RRset", []dns.RR{rr(t, "www.example.com. 0 IN A 192.0.2.10")}, dns.RcodeNXRrset},
		{"value dependent: other data", []dns.RR{
			rr(t, "www.example.com. 0 IN A 192.0.2.11"), rr(t, "www.example.com. 0 IN A 192.0.2.99"),
		}, dns.RcodeNXRrset},
		{"value dependent: names in data ignore case", []dns.RR{rr(t, "alias.example.com. 0 IN CNAME WWW.EXAMPLE.COM.")}, dns.RcodeSuccess},
		{"TTL not 0", []dns.RR{rr(t, "www.example.com. 60 IN A 192.0.2.10")}, dns.RcodeFormatError},
		{"class ANY with data", []dns.RR{func() dns.RR {
			r := rr(t, "www.example.com. 0 IN A 192.0.2.10")
			r.Header().Class = dns.ClassANY
			return r
		}()}, dns.RcodeFormatError},
		{"class CH", []dns.RR{hdr("www.example.com.", dns.ClassCHAOS, dns.TypeA)}, dns.RcodeFormatError},
		{"outside the zone", []dns.RR{hdr("www.example.net.", dns.ClassANY, dns.TypeANY)}, dns.RcodeNotZone},
		{"the first failure decides", []dns.RR{
			hdr("www.example.com.", dns.ClassNONE, dns.TypeANY), hdr("nope.example.com.", dns.ClassANY, dns.TypeANY),
		}, dns.RcodeYXDomain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := wire(t, tc.prereq, []dns.RR{rr(t, "new.example.com. 60 IN A 192.0.2.50")})
			r, err := Parse(m)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Plan(z, r, "k.", pol)
			if got := rcodeOf(err); got != tc.want {
				t.Errorf("rcode %s (%v), want %s", dns.RcodeToString[got], err, dns.RcodeToString[tc.want])
			}
		})
	}
}

// TestPolicy: which key may change which names and types.
func TestPolicy(t *testing.T) {
	rules := []Rule{
		{Key: "acme.", Zones: []string{"example.com."}, Match: MatchSubdomain, Name: "_acme-challenge.example.com.", Types: []uint16{dns.TypeTXT}},
		{Key: "acme.", Zones: []string{"example.com."}, Match: MatchWildcard, Name: "*.acme.example.com.", Types: []uint16{dns.TypeTXT}},
		{Key: "host.", Match: MatchName, Name: "www.example.com."},
		{Key: "admin.", Zones: []string{"example.com.", "example.org."}, Match: MatchZone},
		{Key: "ns.", Zones: []string{"example.com."}, Match: MatchZone, Types: []uint16{dns.TypeNS, dns.TypeSOA}},
	}
	pol := mustPolicy(t, rules)
	for _, tc := range []struct {
		key, zone, owner string
		typ              uint16
		want             bool
	}{
		{"acme.", "example.com.", "_acme-challenge.example.com.", dns.TypeTXT, true},
		{"acme.", "example.com.", "x._acme-challenge.example.com.", dns.TypeTXT, true},
		{"acme.", "example.com.", "_acme-challenge.example.com.", dns.TypeA, false},
		{"acme.", "example.com.", "www.example.com.", dns.TypeTXT, false},
		{"acme.", "example.org.", "_acme-challenge.example.com.", dns.TypeTXT, false},
		{"acme.", "example.com.", "a.acme.example.com.", dns.TypeTXT, true},
		{"acme.", "example.com.", "a.b.acme.example.com.", dns.TypeTXT, true},
		{"acme.", "example.com.", "acme.example.com.", dns.TypeTXT, false},
		{"host.", "example.com.", "www.example.com.", dns.TypeA, true},
		{"host.", "example.net.", "www.example.com.", dns.TypeAAAA, true},
		{"host.", "example.com.", "a.www.example.com.", dns.TypeA, false},
		{"host.", "example.com.", "www.example.com.", dns.TypeNS, false},
		{"host.", "example.com.", "www.example.com.", dns.TypeSOA, false},
		{"host.", "example.com.", "www.example.com.", dns.TypeRRSIG, false},
		{"admin.", "example.org.", "deep.name.example.org.", dns.TypeMX, true},
		{"admin.", "example.net.", "x.example.net.", dns.TypeMX, false},
		{"admin.", "example.com.", "example.com.", dns.TypeNS, false},
		{"ns.", "example.com.", "example.com.", dns.TypeNS, true},
		{"ns.", "example.com.", "example.com.", dns.TypeA, false},
		{"other.", "example.com.", "www.example.com.", dns.TypeA, false},
		{"", "example.com.", "www.example.com.", dns.TypeA, false},
	} {
		if got := pol.Allows(tc.key, tc.zone, tc.owner, tc.typ); got != tc.want {
			t.Errorf("Allows(%s, %s, %s, %s) = %v, want %v", tc.key, tc.zone, tc.owner, dns.Type(tc.typ), got, tc.want)
		}
	}
}

func TestPolicyErrors(t *testing.T) {
	for _, tc := range []struct {
		rule Rule
		want string
	}{
		{Rule{Match: MatchZone}, "key: required"},
		{Rule{Key: "k.", Match: "regex", Name: "x."}, `match: "regex" is not one of`},
		{Rule{Key: "k.", Match: MatchName}, "name: required with match name"},
		{Rule{Key: "k.", Match: MatchZone, Name: "x."}, "name: not used with match zone"},
		{Rule{Key: "k.", Match: MatchWildcard, Name: "x.example."}, `name: "x.example.": a wildcard rule's name starts with "*."`},
		{Rule{Key: "k.", Match: MatchZone, Types: []uint16{dns.TypeANY}}, "types[0]: ANY is not a type of zone data"},
		{Rule{Key: "k.", Match: MatchZone, Zones: []string{""}}, `zones[0]: invalid zone name ""`},
		{Rule{Key: "k.", Match: MatchName, Name: strings.Repeat("a", 64) + "."}, "name: invalid domain name"},
	} {
		_, err := NewPolicy([]Rule{{Key: "ok.", Match: MatchZone}, tc.rule})
		if err == nil || !strings.Contains(err.Error(), "rules[1]: "+tc.want) {
			t.Errorf("%+v: %v, want rules[1]: %s", tc.rule, err, tc.want)
		}
	}
}

// TestPlan: the changes of the update section (§3.4.2), their ignored
// cases, permission (§3.3) and the prescan (§3.4.1).
func TestPlan(t *testing.T) {
	z := testZone(t)
	acme := []Rule{{Key: "acme.", Zones: []string{"example.com."}, Match: MatchSubdomain, Name: "_acme-challenge.www.example.com.", Types: []uint16{dns.TypeTXT}}}
	anyA := func(name string) dns.RR { return hdr(name, dns.ClassANY, dns.TypeA) }
	del := func(s string) dns.RR { r := rr(t, s); r.Header().Class, r.Header().Ttl = dns.ClassNONE, 0; return r }
	for _, tc := range []struct {
		name  string
		rules []Rule
		key   string
		upd   []dns.RR
		want  int
		sets  string // the RRsets written: "name type: rdata|rdata; ..."
	}{
		{"add to a new name", allowAll, "k.", []dns.RR{rr(t, "new.example.com. 60 IN A 192.0.2.50")}, 0, "new.example.com. A 60: 192.0.2.50"},
		{"add to an RRset: all take the new TTL", allowAll, "k.", []dns.RR{rr(t, "www.example.com. 30 IN A 192.0.2.12")}, 0,
			"www.example.com. A 30: 192.0.2.10|192.0.2.11|192.0.2.12"},
		{"add a duplicate changes nothing", allowAll, "k.", []dns.RR{rr(t, "www.example.com. 300 IN A 192.0.2.10")}, 0, ""},
		{"add a duplicate with a new TTL", allowAll, "k.", []dns.RR{rr(t, "www.example.com. 20 IN A 192.0.2.10")}, 0,
			"www.example.com. A 20: 192.0.2.11|192.0.2.10"},
		{"add then delete in one message", allowAll, "k.", []dns.RR{rr(t, "x.example.com. 60 IN TXT \"t\""), del(`x.example.com. 0 IN TXT "t"`)}, 0, ""},
		{"delete an RRset", allowAll, "k.", []dns.RR{anyA("www.example.com.")}, 0, "www.example.com. A: -"},
		{"delete every RRset of a name", allowAll, "k.", []dns.RR{hdr("www.example.com.", dns.ClassANY, dns.TypeANY)}, 0,
			"www.example.com. A: -; www.example.com. TXT: -"},
		{"delete every RRset of the apex keeps SOA and NS", allowAll, "k.", []dns.RR{hdr("example.com.", dns.ClassANY, dns.TypeANY)}, 0,
			"example.com. MX: -"},
		{"delete one record", allowAll, "k.", []dns.RR{del("www.example.com. 0 IN A 192.0.2.10")}, 0, "www.example.com. A 300: 192.0.2.11"},
		{"delete a record that is not there", allowAll, "k.", []dns.RR{del("www.example.com. 0 IN A 192.0.2.99")}, 0, ""},
		{"apex SOA and NS RRsets are not deleted", allowAll, "k.", []dns.RR{hdr("example.com.", dns.ClassANY, dns.TypeNS), hdr("example.com.", dns.ClassANY, dns.TypeSOA)}, 0, ""},
		{"the last apex NS stays", allowAll, "k.", []dns.RR{del("example.com. 0 IN NS ns1.example.com."), del("example.com. 0 IN NS ns2.example.com.")}, 0,
			"example.com. NS 3600: ns2.example.com."},
		{"SOA with an older serial is ignored", allowAll, "k.", []dns.RR{rr(t, "example.com. 3600 IN SOA ns1.example.com. h.example.com. 99 1 1 1 1")}, 0, ""},
		{"SOA with a newer serial replaces it", allowAll, "k.", []dns.RR{rr(t, "example.com. 3600 IN SOA ns1.example.com. h.example.com. 200 1 1 1 1")}, 0,
			"example.com. SOA 3600: ns1.example.com. h.example.com. 200 1 1 1 1"},
		{"SOA below the apex is ignored", allowAll, "k.", []dns.RR{rr(t, "www.example.com. 3600 IN SOA ns1.example.com. h.example.com. 200 1 1 1 1")}, 0, ""},
		{"no CNAME beside other data", allowAll, "k.", []dns.RR{rr(t, "www.example.com. 60 IN CNAME example.com.")}, 0, ""},
		{"no other data beside a CNAME", allowAll, "k.", []dns.RR{rr(t, "alias.example.com. 60 IN A 192.0.2.1")}, 0, ""},
		{"a CNAME replaces the CNAME", allowAll, "k.", []dns.RR{rr(t, "alias.example.com. 60 IN CNAME ns1.example.com.")}, 0,
			"alias.example.com. CNAME 60: ns1.example.com."},
		{"acme: allowed", acme, "acme.", []dns.RR{rr(t, `_acme-challenge.www.example.com. 60 IN TXT "token"`)}, 0,
			`_acme-challenge.www.example.com. TXT 60: "old"|"token"`},
		{"acme: another type is refused", acme, "acme.", []dns.RR{rr(t, "_acme-challenge.www.example.com. 60 IN A 192.0.2.1")}, dns.RcodeRefused, ""},
		{"acme: another name is refused, with the allowed one", acme, "acme.", []dns.RR{
			rr(t, `_acme-challenge.www.example.com. 60 IN TXT "token"`), rr(t, `www.example.com. 60 IN TXT "x"`),
		}, dns.RcodeRefused, ""},
		{"acme: delete all at a name needs every type", acme, "acme.", []dns.RR{hdr("_acme-challenge.www.example.com.", dns.ClassANY, dns.TypeANY)}, 0,
			"_acme-challenge.www.example.com. TXT: -"},
		{"acme: delete all of www is refused (A)", acme, "acme.", []dns.RR{hdr("www.example.com.", dns.ClassANY, dns.TypeANY)}, dns.RcodeRefused, ""},
		{"unknown key", acme, "other.", []dns.RR{rr(t, `_acme-challenge.www.example.com. 60 IN TXT "token"`)}, dns.RcodeRefused, ""},
		{"update outside the zone", allowAll, "k.", []dns.RR{rr(t, "www.example.net. 60 IN A 192.0.2.1")}, dns.RcodeNotZone, ""},
		{"prescan: add of type ANY", allowAll, "k.", []dns.RR{hdr("www.example.com.", dns.ClassINET, dns.TypeANY)}, dns.RcodeRefused, ""},
		{"prescan: class ANY with a TTL", allowAll, "k.", []dns.RR{&dns.RR_Header{Name: "www.example.com.", Rrtype: dns.TypeA, Class: dns.ClassANY, Ttl: 5}}, dns.RcodeFormatError, ""},
		{"prescan: class NONE with a TTL", allowAll, "k.", []dns.RR{func() dns.RR { r := del("www.example.com. 0 IN A 192.0.2.10"); r.Header().Ttl = 5; return r }()}, dns.RcodeFormatError, ""},
		{"prescan: class CH", allowAll, "k.", []dns.RR{hdr("www.example.com.", dns.ClassCHAOS, dns.TypeA)}, dns.RcodeFormatError, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse(wire(t, nil, tc.upd))
			if err != nil {
				t.Fatal(err)
			}
			ws, err := Plan(z, r, tc.key, mustPolicy(t, tc.rules))
			if got := rcodeOf(err); got != tc.want {
				t.Fatalf("rcode %s (%v), want %s", dns.RcodeToString[got], err, dns.RcodeToString[tc.want])
			}
			if err != nil {
				return
			}
			if got := describe(z, ws); got != tc.sets {
				t.Errorf("writes\n %s\nwant\n %s", got, tc.sets)
			}
		})
	}
}

// describe prints the writes that change something.
func describe(z *zone.Zone, ws []store.RRsetWrite) string {
	w := &work{z: z, zone: "example.com."}
	var parts []string
	for _, s := range ws {
		if sameSet(s.RRs, w.stored(s.Name, s.Type)) && sameTTL(s.RRs, w.stored(s.Name, s.Type)) {
			continue
		}
		if len(s.RRs) == 0 {
			parts = append(parts, fmt.Sprintf("%s %s: -", s.Name, dns.Type(s.Type)))
			continue
		}
		var data []string
		for _, r := range s.RRs {
			f := strings.Fields(r.String())
			data = append(data, strings.Join(f[4:], " "))
		}
		parts = append(parts, fmt.Sprintf("%s %s %d: %s", s.Name, dns.Type(s.Type), s.RRs[0].Header().Ttl, strings.Join(data, "|")))
	}
	return strings.Join(parts, "; ")
}

func sameTTL(a, b []dns.RR) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(x dns.RR) bool { return x.Header().Ttl != b[0].Header().Ttl })
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(m *dns.Msg)
		want int
	}{
		{"ok", func(*dns.Msg) {}, 0},
		{"two zones", func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }, dns.RcodeFormatError},
		{"no zone", func(m *dns.Msg) { m.Question = nil }, dns.RcodeFormatError},
		{"zone type A", func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeA }, dns.RcodeFormatError},
		{"zone class CH", func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }, dns.RcodeNotAuth},
		{"opcode query", func(m *dns.Msg) { m.Opcode = dns.OpcodeQuery }, dns.RcodeFormatError},
	} {
		m := new(dns.Msg)
		m.SetUpdate("Example.COM.")
		tc.edit(m)
		r, err := Parse(m)
		if got := rcodeOf(err); got != tc.want {
			t.Errorf("%s: rcode %s (%v), want %s", tc.name, dns.RcodeToString[got], err, dns.RcodeToString[tc.want])
		}
		if err == nil && r.Zone != "example.com." {
			t.Errorf("%s: zone %q", tc.name, r.Zone)
		}
	}
}
