package zone

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// zoneDiff describes the first difference between two zones, "" if they
// are the same: names, RRsets with TTLs and rdata bytes, RRSIGs, the
// delegation, DNAME and wildcard links, and the zone's own fields.
func zoneDiff(a, b *Zone) string {
	if a.Origin != b.Origin || !bytes.Equal(a.origin, b.origin) || a.Serial != b.Serial || a.NegTTL != b.NegTTL ||
		a.Signed != b.Signed || a.Records != b.Records || a.Len() != b.Len() || a.Source != b.Source ||
		a.nsec.Len() != b.nsec.Len() || a.nsec3.Len() != b.nsec3.Len() || (a.NSEC3 == nil) != (b.NSEC3 == nil) {
		return fmt.Sprintf("zone fields: serial %d/%d negttl %d/%d records %d/%d names %d/%d",
			a.Serial, b.Serial, a.NegTTL, b.NegTTL, a.Records, b.Records, a.Len(), b.Len())
	}
	name := func(n *Node) string {
		if n == nil {
			return "<nil>"
		}
		return NameString(n.Name)
	}
	var diff string
	a.Nodes(func(n *Node) {
		if diff != "" {
			return
		}
		m := b.Lookup(n.Name)
		switch {
		case m == nil:
			diff = "missing node " + name(n)
			return
		case len(n.Sets) != len(m.Sets):
			diff = fmt.Sprintf("%s: %d / %d RRsets", name(n), len(n.Sets), len(m.Sets))
			return
		case name(n.Cut) != name(m.Cut) || name(n.DNAME) != name(m.DNAME) || name(n.Wildcard) != name(m.Wildcard):
			diff = name(n) + ": links differ"
			return
		}
		for i := range n.Sets {
			s, t := &n.Sets[i], &m.Sets[i]
			if s.Type != t.Type || s.TTL != t.TTL || s.n != t.n || !bytes.Equal(s.data, t.data) ||
				s.SigLen() != t.SigLen() || s.SigTTL() != t.SigTTL() {
				diff = fmt.Sprintf("%s: RRset %d: %+v / %+v", name(n), i, *s, *t)
				return
			}
			if s.sigs != nil && !bytes.Equal(s.sigs.data, t.sigs.data) {
				diff = fmt.Sprintf("%s: RRSIGs of RRset %d differ", name(n), i)
				return
			}
		}
	})
	if diff != "" {
		return diff
	}
	var wa, wb bytes.Buffer
	if _, err := a.WriteTo(&wa); err != nil {
		return err.Error()
	}
	if _, err := b.WriteTo(&wb); err != nil {
		return err.Error()
	}
	if wa.String() != wb.String() {
		return "printed zones differ:\n" + wa.String() + "\n---\n" + wb.String()
	}
	return ""
}

// compareLoads loads path with the fast parser and with ZoneParser. It
// reports whether the fast parser handled it (its result must then equal
// ZoneParser's); when it did not, it must have asked for the fallback.
func compareLoads(t *testing.T, path string) bool {
	t.Helper()
	return compareLoadsOrigin(t, "example.com.", path)
}

func compareLoadsOrigin(t *testing.T, origin, path string) bool {
	t.Helper()
	fast, ferr := loadFast(origin, path)
	slow, serr := loadSlow(origin, path)
	if ferr != nil {
		if !errors.Is(ferr, errFallback) {
			t.Fatalf("fast parser failed without asking for the fallback: %v", ferr)
		}
		return false
	}
	if serr != nil {
		t.Fatalf("fast parser accepted what ZoneParser rejects: %v", serr)
	}
	if d := zoneDiff(fast, slow); d != "" {
		t.Fatalf("fast parser and ZoneParser disagree: %s", d)
	}
	return true
}

const fastIncluded = "inc A 192.0.2.7\n   AAAA 2001:db8::7\n$TTL 60\nttl60 TXT x\n"

func writeZoneFiles(t testing.TB, text string) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "inc.zone"), []byte(fastIncluded), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "z.zone")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const fastHead = "$ORIGIN example.com.\n@ 300 IN SOA ns1 hostmaster 1 7200 3600 1209600 60\n@ NS ns1\nns1 A 192.0.2.1\n"

// fastCases are accepted by both parsers; the fast one must handle them.
var fastCases = []string{
	fastHead,
	fastHead + "www 60 IN A 192.0.2.2\nwww IN 60 AAAA 2001:db8::2\n  TXT \"hello world\" plain \"\"\n",
	fastHead + "$TTL 1200\nx A 192.0.2.3\nx 30 A 192.0.2.4\ny MX 10 mail.example.net.\n",
	"$ORIGIN example.com.\n@ IN SOA ns1 hostmaster (\n  1 ; serial\n  7200\n  3600 1209600\n  60 )\n IN NS ns1\nns1 IN A 192.0.2.1\n",
	fastHead + "a\\.b CNAME c\\032d\nsub.deep 10 IN PTR @\n_sip._tcp SRV 10 20 5060 sip\nold DNAME new.example.net.\n",
	fastHead + "$INCLUDE inc.zone\nafter A 192.0.2.9\n",
	fastHead + "$INCLUDE inc.zone sub.example.com.\n",
	fastHead + "$ORIGIN sub.example.com.\nh A 192.0.2.5 ; comment\nWWW.Example.COM. a 192.0.2.6\n",
	strings.ReplaceAll(fastHead+"crlf A 192.0.2.8\n", "\n", "\r\n"),
	fastHead + "t TXT ( \"one\"\n  \"two\" )\n*.w A 192.0.2.10\nd NS ns.d\nns.d A 192.0.2.11\n",
	fastHead + "no-newline-at-end A 192.0.2.12",
	fastHead + manyCAA(slowRecordsMax),
	fastHead + "@ DNSKEY 257 3 13 ( mdsswUyr3DPW132mOi8V9xESWE8jTo0d\n  xCjjnopKl+GqJxpVXckHAeF+KkxLbxILfDLUT0rAK9iUzy1L53eKGQ== )\n" +
		"@ NSEC a.example.com. A NS SOA RRSIG NSEC DNSKEY TYPE65534\n" +
		"@ RRSIG NSEC 13 2 300 1700000000 1600000000 1 example.com. ( dGVz\n dA== )\n" +
		"@ RRSIG SOA ECDSAP256SHA256 2 300 20300101000000 20200101000000 1 example.com. dGVzdA==\n" +
		"sub NS ns.sub\nns.sub A 192.0.2.53\nsub DS 1 13 2 ( 3B1BA8F8 E7E5C6A3 )\n",
	fastHead + "a A 192.0.2.1\nb A 192.0.2.2\na AAAA 2001:db8::1\na 10 A 192.0.2.3\n",
	// Types outside the subset go to ZoneParser one record at a time.
	fastHead + "x CAA 0 issue \"ca.example\"\nx A 192.0.2.1\n",
	fastHead + "x TYPE1 \\# 4 c0000201\ny A \\# 4 c0000202\n",
	fastHead + "svc 60 HTTPS 1 . alpn=\"h2\" port=443\n_25._tcp IN TLSA 3 1 1 ( ABCDEF\n 0123456789 ) ; c\n",
	fastHead + "unk TYPE65400 \\# 0\nds DS 12345 13 2 ( 3B1BA8F8E7E5C6A3A4EFE0DC2A7E4A82E1B0A8F6B5B7F5E2C6D7B8A9C0D1E2F3 )\n" +
		"ds RRSIG DS 13 3 300 20300101000000 20200101000000 12345 example.com. dGVzdA==\n",
}

// slowCases need ZoneParser (or are invalid).
var slowCases = []string{
	fastHead + "x 1h A 192.0.2.1\n",                    // TTL units
	fastHead + "x ( CAA 0 issue \"ca.example\" )\n",    // parenthesis open at the type
	fastHead + "x A 192.0.2.1\nx A 192.0.2.1\n",        // duplicate
	fastHead + "x A 192.0.2.300\n",                     // syntax error
	fastHead + "x TXT \"a\\\"b\"\n",                    // escape in a string
	fastHead + "x A ( 192.0.2.1\n)y\n",                 // token joined across a parenthesis
	fastHead + "x CH A 192.0.2.1\n",                    // class
	fastHead + "x CNAME y\nx A 192.0.2.1\n",            // CNAME and other data
	fastHead + "out.example.net. A 192.0.2.1\n",        // out of zone
	fastHead + "$GENERATE 1-2 h$ A 192.0.2.$\n",        // $GENERATE
	fastHead + "x ANY A 192.0.2.1\n",                   // class ANY
	"$ORIGIN example.com.\n  A 192.0.2.1\n" + fastHead, // blank owner first
	fastHead + manyCAA(slowRecordsMax+1),               // mostly other types (as a signed zone)
}

func manyCAA(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "c%d CAA 0 issue \"ca.example\"\n", i)
	}
	return b.String()
}

func TestFastParseMatchesZoneParser(t *testing.T) {
	for i, text := range fastCases {
		t.Run(fmt.Sprint("fast", i), func(t *testing.T) {
			if !compareLoads(t, writeZoneFiles(t, text)) {
				t.Errorf("fast parser did not handle:\n%s", text)
			}
		})
	}
	for i, text := range slowCases {
		t.Run(fmt.Sprint("slow", i), func(t *testing.T) {
			if compareLoads(t, writeZoneFiles(t, text)) {
				t.Errorf("fast parser handled:\n%s", text)
			}
		})
	}
	for _, f := range []string{"testdata/good.zone", "testdata/bad.zone", "testdata/syntax.zone"} {
		compareLoads(t, f)
	}
}

// The signed and many-typed zones of the Knot comparison and the example
// zone load through the fast parser and equal ZoneParser's.
func TestFastParseRealZones(t *testing.T) {
	files, _ := filepath.Glob("../../e2e/knotdiff/testdata/*.zone")
	files = append(files, "../../examples/zones/example.com.zone")
	for _, f := range files {
		origin := strings.TrimSuffix(filepath.Base(f), "zone")
		if !compareLoadsOrigin(t, origin, f) {
			t.Errorf("%s: fast parser did not handle it", f)
		}
	}
}

// Entries cut by the end of the read buffer are read again whole: every
// buffer size gives the same zone.
func TestFastParseSmallBuffers(t *testing.T) {
	defer func(n int) { fastReadSize = n }(fastReadSize)
	files, _ := filepath.Glob("../../e2e/knotdiff/testdata/*.zone")
	for _, size := range []int{1, 2, 3, 7, 16, 61, 200} {
		fastReadSize = size
		for i, text := range fastCases {
			if !compareLoads(t, writeZoneFiles(t, text)) {
				t.Errorf("buffer %d: fastCases[%d] not handled", size, i)
			}
		}
		for _, f := range files {
			if !compareLoadsOrigin(t, strings.TrimSuffix(filepath.Base(f), "zone"), f) {
				t.Errorf("buffer %d: %s not handled", size, f)
			}
		}
	}
}

// A large zone file (ZONE_BENCH_FILE, e.g. the 1M-name bench zone) loads
// the same through both parsers.
func TestFastParseBenchFile(t *testing.T) {
	path := os.Getenv("ZONE_BENCH_FILE")
	if path == "" {
		t.Skip("ZONE_BENCH_FILE not set")
	}
	if !compareLoadsOrigin(t, "bench.example.", path) {
		t.Error("fast parser did not handle it")
	}
}

// The fallback gives the same zone and the same error messages as before.
func TestLoadFallsBack(t *testing.T) {
	path := writeZoneFiles(t, fastHead+"x A 192.0.2.1\nx A 192.0.2.1\n")
	_, err := Load("example.com.", path)
	if err == nil || !strings.Contains(err.Error(), path+":6: x.example.com. A: duplicate record (first at "+path+":5)") {
		t.Errorf("duplicate not reported with file:line: %v", err)
	}
}

// FuzzFastParse: on any input, the fast parser either asks for the
// fallback or builds exactly the zone ZoneParser builds.
func FuzzFastParse(f *testing.F) {
	for _, s := range append(append([]string{}, fastCases...), slowCases...) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		path := writeZoneFiles(t, text)
		compareLoads(t, path)
		// Again with a read buffer that cuts entries (and grows).
		defer func(n int) { fastReadSize = n }(fastReadSize)
		fastReadSize = 1 + len(text)%61
		compareLoads(t, path)
	})
}

// BenchmarkParsers compares Load (the fast parser, falling back to
// ZoneParser when it must) with ZoneParser alone (the generated zone, or
// $ZONE_BENCH_FILE).
func BenchmarkParsers(b *testing.B) {
	origin, path := benchZone(b, 100000)
	for _, p := range []struct {
		name string
		load func(string, string) (*Zone, error)
	}{{"load", Load}, {"zoneparser", loadSlow}} {
		b.Run(p.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.load(origin, path); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
