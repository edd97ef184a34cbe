package zone

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

const applyBase = `$ORIGIN example.
@ 300 SOA ns1 h 1 2 3 4 5
@ 300 NS ns1
@ 300 NS ns2
ns1 300 A 192.0.2.1
ns2 300 A 192.0.2.2
www 300 A 192.0.2.10
www 300 AAAA 2001:db8::10
alias 300 CNAME www
sub 300 NS ns.sub
sub 300 NS ns.other
ns.sub 300 A 192.0.2.20
deep.ns.sub 300 TXT "occluded"
other 300 NS ns.other
ns.other 300 A 192.0.2.21
*.wild 300 A 192.0.2.30
leaf.ent.x 300 TXT "under two empty non-terminals"
dn 300 DNAME example.net.
under.dn 300 A 192.0.2.40
`

func parseZone(t *testing.T, text string) *Zone {
	t.Helper()
	recs, err := Parse(strings.NewReader(text), "example.", "base")
	if err != nil {
		t.Fatal(err)
	}
	z, err := Build("example.", recs)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func wireList(t *testing.T, lines ...string) []RR {
	t.Helper()
	var out []RR
	for _, l := range lines {
		rr, err := dns.NewRR("$ORIGIN example.\n$TTL 300\n" + l)
		if err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		out = append(out, mustWire(t, rr))
	}
	return out
}

func wname(t *testing.T, s string) []byte {
	t.Helper()
	w, err := NameWire(s)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestApply(t *testing.T) {
	soa1 := "@ SOA ns1 h 1 2 3 4 5"
	soa2 := "@ SOA ns1 h 2 2 3 4 5"
	exists := func(name string, want bool) func(*testing.T, *Zone, *Zone) {
		return func(t *testing.T, old, z *Zone) {
			if got := z.Lookup(wname(t, name)) != nil; got != want {
				t.Errorf("%s exists: %v, want %v", name, got, want)
			}
		}
	}
	tests := []struct {
		name     string
		base     string // zone text; applyBase if empty
		del, add []string
		err      string // a problem Apply must report
		errIs    error
		check    []func(t *testing.T, old, z *Zone)
	}{
		{name: "new SOA only", del: []string{soa1}, add: []string{soa2},
			check: []func(*testing.T, *Zone, *Zone){func(t *testing.T, old, z *Zone) {
				if z.Serial != 2 || old.Serial != 1 {
					t.Errorf("serial %d (old %d)", z.Serial, old.Serial)
				}
				if z.Lookup(wname(t, "www.example.")) != old.Lookup(wname(t, "www.example.")) {
					t.Error("an untouched node was copied")
				}
			}}},
		{name: "apex: add TXT, delete one NS", del: []string{soa1, "@ NS ns2"}, add: []string{soa2, `@ TXT "v=spf1 -all"`},
			check: []func(*testing.T, *Zone, *Zone){func(t *testing.T, _, z *Zone) {
				if z.Apex.Get(dns.TypeTXT) == nil || z.Apex.Get(dns.TypeNS).Len() != 1 {
					t.Error("apex RRsets not changed")
				}
			}}},
		{name: "apex: every NS deleted", del: []string{soa1, "@ NS ns1", "@ NS ns2"}, add: []string{soa2},
			err: "no NS records at the zone apex example."},
		{name: "apex: second SOA", add: []string{soa2}, err: "more than one SOA record at the apex"},
		{name: "apex: SOA deleted", del: []string{soa1}, err: "no SOA record at the zone apex example."},
		{name: "SOA below the apex", del: []string{soa1}, add: []string{soa2, "www SOA ns1 h 1 2 3 4 5"},
			err: "www.example. SOA: SOA record not at the zone apex"},
		{name: "one A replaced", del: []string{soa1, "www A 192.0.2.10"}, add: []string{soa2, "www A 192.0.2.11"},
			check: []func(*testing.T, *Zone, *Zone){func(t *testing.T, old, z *Zone) {
				if rd := z.Lookup(wname(t, "www.example.")).Get(dns.TypeA).First(); string(rd) != "\xc0\x00\x02\x0b" {
					t.Errorf("A %v", rd)
				}
				if rd := old.Lookup(wname(t, "www.example.")).Get(dns.TypeA).First(); string(rd) != "\xc0\x00\x02\x0a" {
					t.Errorf("old version changed: A %v", rd)
				}
			}}},
		{name: "TTL change", del: []string{soa1, "www A 192.0.2.10"}, add: []string{soa2, "www 60 A 192.0.2.10"},
			check: []func(*testing.T, *Zone, *Zone){func(t *testing.T, _, z *Zone) {
				if ttl := z.Lookup(wname(t, "www.example.")).Get(dns.TypeA).TTL; ttl != 60 {
					t.Errorf("TTL %d", ttl)
				}
			}}},
		{name: "letter case of owner and rdata names", del: []string{soa1, "ALIAS CNAME WWW"}, add: []string{soa2, "Alias CNAME ns1"},
			check: []func(*testing.T, *Zone, *Zone){exists("alias.example.", true)}},
		{name: "delete a record the zone does not have", del: []string{soa1, "www A 192.0.2.99"}, add: []string{soa2},
			err: "delete www.example.\t300\tIN\tA\t192.0.2.99: record to delete is not in the zone", errIs: ErrNoRecord},
		{name: "delete at a name the zone does not have", del: []string{"nope TXT x"},
			err: "record to delete is not in the zone", errIs: ErrNoRecord},
		{name: "duplicate", del: []string{soa1}, add: []string{soa2, "www A 192.0.2.10"},
			err: "www.example. A: duplicate record (first at base:7)"},
		{name: "out of zone", add: []string{"www.example.net. A 192.0.2.1"}, err: "www.example.net. A: out-of-zone data (not in example.)"},
		{name: "CNAME beside an A", del: []string{soa1}, add: []string{soa2, "www CNAME ns1"},
			err: "base:7: www.example. A: CNAME and other data at the same name"},
		{name: "A beside a CNAME", del: []string{soa1}, add: []string{soa2, "alias A 192.0.2.1"},
			err: "alias.example. A: CNAME and other data at the same name"},
		{name: "second CNAME", del: []string{soa1}, add: []string{soa2, "alias CNAME ns1"}, err: "alias.example. CNAME: more than one CNAME record"},
		{name: "second DNAME", del: []string{soa1}, add: []string{soa2, "dn DNAME example.org."}, err: "dn.example. DNAME: more than one DNAME record"},
		{name: "orphan RRSIG", del: []string{soa1}, add: []string{soa2, "www RRSIG TXT 8 2 300 20300101000000 20200101000000 1 example. AAAA"},
			err: "www.example. RRSIG: RRSIG covers TXT, which has no RRset here"},
		{name: "glue deleted", del: []string{soa1, "ns.sub A 192.0.2.20"}, add: []string{soa2},
			err: "base:10: sub.example. NS: missing glue: name server ns.sub.example. is inside the delegation but has no A or AAAA record"},
		{name: "glue of another delegation deleted", del: []string{soa1, "ns.other A 192.0.2.21"}, add: []string{soa2},
			err: "sub.example. NS: missing glue: name server ns.other.example."},
		{name: "delegation added without glue", del: []string{soa1}, add: []string{soa2, "new NS ns.new"},
			err: "new.example. NS: missing glue: name server ns.new.example."},
		{name: "delegation added with glue", del: []string{soa1}, add: []string{soa2, "new NS ns.new", "ns.new A 192.0.2.50"},
			check: []func(*testing.T, *Zone, *Zone){func(t *testing.T, _, z *Zone) {
				cut := z.Lookup(wname(t, "new.example."))
				if cut == nil || cut.Cut != cut || z.Lookup(wname(t, "ns.new.example.")).Cut != cut {
					t.Error("delegation not linked")
				}
			}}},
		{name: "delegation over a name servers' names", del: []string{soa1}, add: []string{soa2, "ns1 NS ns.other"},
			check: []func(*testing.T, *Zone, *Zone){func(t *testing.T, _, z *Zone) {
				if n := z.Lookup(wname(t, "ns1.example.")); n.Cut != n {
					t.Error("ns1 is not a delegation")
				}
			}}},
		{name: "new delegation above a name server another delegation names", base: applyBase + "far 300 NS ns.in.mid\nns.in.mid 300 TXT \"no address\"\nx.mid 300 A 192.0.2.60\n",
			del: []string{soa1}, add: []string{soa2, "mid NS ns.other"},
			err: "far.example. NS: missing glue: name server ns.in.mid.example."},
		{name: "new delegation above a name server that does not exist", base: applyBase + "far 300 NS ns.none.mid2\nx.mid2 300 A 192.0.2.60\n",
			del: []string{soa1}, add: []string{soa2, "mid2 NS ns.other"},
			err: "far.example. NS: missing glue: name server ns.none.mid2.example."},
		{name: "delegation removed: its names become authoritative", del: []string{soa1, "sub NS ns.sub", "sub NS ns.other"}, add: []string{soa2},
			check: []func(*testing.T, *Zone, *Zone){func(t *testing.T, old, z *Zone) {
				for _, n := range []string{"sub.example.", "ns.sub.example.", "deep.ns.sub.example."} {
					if c := z.Lookup(wname(t, n)).Cut; c != nil {
						t.Errorf("%s still below a delegation", n)
					}
				}
				if old.Lookup(wname(t, "deep.ns.sub.example.")).Cut == nil {
					t.Error("old version relinked")
				}
			}}},
		{name: "DS added at a delegation relinks its subtree", del: []string{soa1}, add: []string{soa2, "sub DS 12345 8 2 0123456789abcdef"},
			check: []func(*testing.T, *Zone, *Zone){func(t *testing.T, old, z *Zone) {
				cut := z.Lookup(wname(t, "sub.example."))
				if z.Lookup(wname(t, "deep.ns.sub.example.")).Cut != cut || old.Lookup(wname(t, "deep.ns.sub.example.")).Cut == cut {
					t.Error("subtree not relinked to the new delegation node")
				}
			}}},
		{name: "DNAME changed relinks its subtree", del: []string{soa1, "dn DNAME example.net."}, add: []string{soa2, "dn DNAME example.org."},
			check: []func(*testing.T, *Zone, *Zone){func(t *testing.T, _, z *Zone) {
				if z.Lookup(wname(t, "under.dn.example.")).DNAME != z.Lookup(wname(t, "dn.example.")) {
					t.Error("DNAME link not renewed")
				}
			}}},
		{name: "DNAME deleted", del: []string{soa1, "dn DNAME example.net."}, add: []string{soa2},
			check: []func(*testing.T, *Zone, *Zone){func(t *testing.T, _, z *Zone) {
				if z.Lookup(wname(t, "under.dn.example.")).DNAME != nil {
					t.Error("DNAME link kept")
				}
			}}},
		{name: "wildcard added", del: []string{soa1}, add: []string{soa2, "*.ent.x TXT wild"},
			check: []func(*testing.T, *Zone, *Zone){func(t *testing.T, _, z *Zone) {
				if w := z.Lookup(wname(t, "ent.x.example.")).Wildcard; w == nil || w != z.Lookup(wname(t, "*.ent.x.example.")) {
					t.Error("wildcard not linked to its parent")
				}
			}}},
		{name: "wildcard changed", del: []string{soa1, "*.wild A 192.0.2.30"}, add: []string{soa2, "*.wild A 192.0.2.31"},
			check: []func(*testing.T, *Zone, *Zone){func(t *testing.T, _, z *Zone) {
				if z.Lookup(wname(t, "wild.example.")).Wildcard != z.Lookup(wname(t, "*.wild.example.")) {
					t.Error("parent points to the old wildcard")
				}
			}}},
		{name: "wildcard deleted", del: []string{soa1, "*.wild A 192.0.2.30"}, add: []string{soa2},
			check: []func(*testing.T, *Zone, *Zone){exists("*.wild.example.", false), exists("wild.example.", false)}},
		{name: "empty non-terminals appear", del: []string{soa1}, add: []string{soa2, "a.b.c.d A 192.0.2.70"},
			check: []func(*testing.T, *Zone, *Zone){exists("b.c.d.example.", true), exists("c.d.example.", true), exists("d.example.", true),
				func(t *testing.T, _, z *Zone) {
					if !z.Lookup(wname(t, "c.d.example.")).Empty() {
						t.Error("c.d is not empty")
					}
				}}},
		{name: "empty non-terminals disappear", del: []string{soa1, `leaf.ent.x TXT "under two empty non-terminals"`}, add: []string{soa2},
			check: []func(*testing.T, *Zone, *Zone){exists("leaf.ent.x.example.", false), exists("ent.x.example.", false), exists("x.example.", false)}},
		{name: "a name emptied keeps what is below it", del: []string{soa1, "ns.sub A 192.0.2.20", "sub NS ns.sub", "sub NS ns.other"}, add: []string{soa2},
			check: []func(*testing.T, *Zone, *Zone){exists("ns.sub.example.", true), exists("deep.ns.sub.example.", true),
				func(t *testing.T, _, z *Zone) {
					if !z.Lookup(wname(t, "ns.sub.example.")).Empty() {
						t.Error("ns.sub should be an empty non-terminal")
					}
				}}},
		{name: "a name emptied while a name appears below it", del: []string{soa1, "www A 192.0.2.10", "www AAAA 2001:db8::10"}, add: []string{soa2, "a.www A 192.0.2.80"},
			check: []func(*testing.T, *Zone, *Zone){exists("www.example.", true), exists("a.www.example.", true)}},
		{name: "an empty non-terminal loses its child and gains another", del: []string{soa1, `leaf.ent.x TXT "under two empty non-terminals"`}, add: []string{soa2, "other.x A 192.0.2.81"},
			check: []func(*testing.T, *Zone, *Zone){exists("x.example.", true), exists("ent.x.example.", false), exists("other.x.example.", true)}},
		{name: "NSEC chain neighbours", base: nsecZone, del: []string{soa1, "b NSEC d.example. A NSEC"}, add: []string{soa2, "c A 192.0.2.3", "c NSEC d.example. A NSEC", "b NSEC c.example. A NSEC"},
			check: []func(*testing.T, *Zone, *Zone){func(t *testing.T, old, z *Zone) {
				if got := NameString(z.CoveringNSEC(wname(t, "cc.example.")).Name); got != "c.example." {
					t.Errorf("cc covered by %s", got)
				}
				if got := NameString(old.CoveringNSEC(wname(t, "cc.example.")).Name); got != "b.example." {
					t.Errorf("old version: cc covered by %s", got)
				}
				if got := NameString(z.CoveringNSEC(wname(t, "a.example.")).Name); got != "example." {
					t.Errorf("a covered by %s", got)
				}
			}}},
		{name: "NSEC chain: last owner deleted", base: nsecZone, del: []string{soa1, "d A 192.0.2.4", "d NSEC example. A NSEC", "b NSEC d.example. A NSEC"}, add: []string{soa2, "b NSEC example. A NSEC"},
			check: []func(*testing.T, *Zone, *Zone){func(t *testing.T, _, z *Zone) {
				if got := NameString(z.CoveringNSEC(wname(t, "zzz.example.")).Name); got != "b.example." {
					t.Errorf("zzz covered by %s", got)
				}
			}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := tt.base
			if base == "" {
				base = applyBase
			}
			old := parseZone(t, base)
			before := printed(t, old)
			del, add := wireList(t, tt.del...), wireList(t, tt.add...)
			z, err := old.Apply(del, add)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one with %q", err, tt.err)
				}
				if tt.errIs != nil && !errors.Is(err, tt.errIs) {
					t.Errorf("error %v is not %v", err, tt.errIs)
				}
				if tt.errIs == nil && !errors.Is(err, ErrInvalid) {
					t.Errorf("error %v is not ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := verifyZone(z); err != nil {
				t.Fatal(err)
			}
			want := buildApplied(t, old, del, add)
			want.Source = z.Source
			if d := zoneDiff(want, z); d != "" {
				t.Errorf("differs from Build of the same records: %s", d)
			}
			for _, c := range tt.check {
				c(t, old, z)
			}
			if printed(t, old) != before {
				t.Error("the old version changed")
			}
			if err := verifyZone(old); err != nil {
				t.Errorf("old version: %v", err)
			}
		})
	}
}

const nsecZone = `$ORIGIN example.
@ 300 SOA ns1 h 1 2 3 4 5
@ 300 NS ns1
@ 300 NSEC b.example. SOA NS NSEC
ns1 300 A 192.0.2.1
b 300 A 192.0.2.2
b 300 NSEC d.example. A NSEC
d 300 A 192.0.2.4
d 300 NSEC example. A NSEC
`

// TestApplyErrorsNameRecords: problems name the record and where it came
// from, the loaded file's line or the label given to the change.
func TestApplyErrorsNameRecords(t *testing.T) {
	old := parseZone(t, applyBase)
	_, err := old.apply(nil, wireList(t, "www CNAME ns1", "x.example.net. A 192.0.2.1"), func(i int) string { return []string{"records[0]", "records[1]"}[i] }, "")
	for _, want := range []string{
		"zone example.: invalid zone: ",
		"records[1]: x.example.net. A: out-of-zone data (not in example.)",
		"base:7: www.example. A: CNAME and other data at the same name",
		"base:8: www.example. AAAA: CNAME and other data at the same name",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want one with %q", err, want)
		}
	}
}

func TestHasAndKey(t *testing.T) {
	z := parseZone(t, applyBase+"www 300 RRSIG A 8 2 300 20300101000000 20200101000000 1 example. AAAA\n")
	for _, tt := range []struct {
		rr   string
		want bool
	}{
		{"WWW 60 A 192.0.2.10", true},
		{"www A 192.0.2.11", false},
		{"alias CNAME WWW", true}, // CNAME's target compares without case
		{"www TXT x", false},
		{"nope A 192.0.2.10", false},
		{"www RRSIG A 8 2 300 20300101000000 20200101000000 1 example. AAAA", true},
		{"www RRSIG AAAA 8 2 300 20300101000000 20200101000000 1 example. AAAA", false},
	} {
		r := wireList(t, tt.rr)[0]
		if got := z.Has(r); got != tt.want {
			t.Errorf("Has(%s) = %v, want %v", tt.rr, got, tt.want)
		}
		rr, err := r.DNS()
		if err != nil {
			t.Fatal(err)
		}
		k, err := RRKey(rr)
		if err != nil {
			t.Fatal(err)
		}
		// RRKey packs the TTL as 0 and the rdata length; Key has neither.
		if r.Key() != k[:len(r.Name)+2]+k[len(r.Name)+10:] {
			t.Errorf("Key(%s) differs from RRKey", tt.rr)
		}
	}
}

// TestApplyNamed: a writer's names for its records and for the rest, in
// this change's errors and in later ones.
func TestApplyNamed(t *testing.T) {
	old := parseZone(t, applyBase)
	name := func(i int) string { return fmt.Sprintf("records[%d]", i) }
	_, err := old.ApplyNamed(nil, wireList(t, "txt TXT a", "txt TXT a"), name, "in the zone")
	if err == nil || !strings.Contains(err.Error(), "records[1]: txt.example. TXT: duplicate record (first at records[0])") {
		t.Errorf("duplicate: %v", err)
	}
	_, err = old.ApplyNamed(nil, wireList(t, "www CNAME ns1"), name, "in the zone")
	if err == nil || !strings.Contains(err.Error(), "in the zone: www.example. A: CNAME and other data at the same name") {
		t.Errorf("kept RRset not named as kept: %v", err)
	}
	// What a change makes is named as kept in the next one.
	z, err := old.ApplyNamed(nil, wireList(t, "txt TXT a"), name, "in the zone")
	if err != nil {
		t.Fatal(err)
	}
	_, err = z.ApplyNamed(nil, wireList(t, "txt CNAME ns1"), name, "in the zone")
	if err == nil || !strings.Contains(err.Error(), "in the zone: txt.example. TXT: CNAME and other data at the same name") {
		t.Errorf("RRset of an earlier change: %v", err)
	}
	if len(z.files) > len(old.files)+1 {
		t.Errorf("the names of a change stay in the zone: %q", z.files)
	}
}

// TestBuildManyPlaces: past 65,535 places (a writer naming each record,
// "records[70000]"), records are named by no place rather than by
// another record's.
func TestBuildManyPlaces(t *testing.T) {
	recs := []Record{
		{RR: mustRR(t, "example. 300 IN SOA ns h 1 2 3 4 5"), File: "records[0]"},
		{RR: mustRR(t, "example. 300 IN NS ns.example.net."), File: "records[1]"},
	}
	for i := 2; i < 70000; i++ {
		recs = append(recs, Record{RR: mustRR(t, fmt.Sprintf("h%d.example. 300 IN TXT x", i)), File: fmt.Sprintf("records[%d]", i)})
	}
	recs = append(recs, Record{RR: mustRR(t, "h69999.example. 300 IN CNAME example."), File: "records[70000]"})
	_, err := Build("example.", recs)
	if err == nil || !strings.Contains(err.Error(), "invalid zone: h69999.example. TXT: CNAME and other data at the same name") {
		t.Errorf("error %v", err)
	}
}

// TestQueryPathAllocs: the lookups of the query path allocate nothing, on
// a built zone and on one a change made.
func TestQueryPathAllocs(t *testing.T) {
	built := parseZone(t, nsecZone+"0p9mhaveqvm6t7vbl5lop2u3t2rp3tom 300 NSEC3 1 0 0 - 2t7b4g4vsa5smi47k61mv5bv1a22bojr A\n@ 300 NSEC3PARAM 1 0 0 -\n")
	changed, err := built.Apply(wireList(t, "@ SOA ns1 h 1 2 3 4 5"), wireList(t, "@ SOA ns1 h 2 2 3 4 5", "c A 192.0.2.3"))
	if err != nil {
		t.Fatal(err)
	}
	b, c, nope := wname(t, "b.example."), wname(t, "cc.example."), wname(t, "nope.example.")
	for _, z := range []*Zone{built, changed} {
		h := z.HashName(b)
		if n := testing.AllocsPerRun(100, func() {
			_ = z.Lookup(b)
			_ = z.Lookup(nope)
			_ = z.CoveringNSEC(c)
			_, _ = z.NSEC3Match(h)
		}); n != 0 {
			t.Errorf("%v allocations", n)
		}
	}
}

// TestDerived: versions made by Apply from a built zone, directly or
// through others, are Derived from it and from each other; two Builds of
// the same text are not.
func TestDerived(t *testing.T) {
	z := parseZone(t, applyBase)
	v1, err := z.Apply(wireList(t, "@ SOA ns1 h 1 2 3 4 5"), wireList(t, "@ SOA ns1 h 2 2 3 4 5", "new A 192.0.2.99"))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := v1.Apply(wireList(t, "@ SOA ns1 h 2 2 3 4 5", "new A 192.0.2.99"), wireList(t, "@ SOA ns1 h 3 2 3 4 5"))
	if err != nil {
		t.Fatal(err)
	}
	other := parseZone(t, applyBase)
	for _, tt := range []struct {
		name string
		a, b *Zone
		want bool
	}{
		{"applied", v1, z, true},
		{"applied twice", v2, z, true},
		{"siblings", v1, v2, true},
		{"itself", z, z, true},
		{"another build", other, z, false},
		{"from another build", v2, other, false},
		{"nil", z, nil, false},
	} {
		if got := tt.a.Derived(tt.b); got != tt.want {
			t.Errorf("%s: Derived = %v, want %v", tt.name, got, tt.want)
		}
	}
}
