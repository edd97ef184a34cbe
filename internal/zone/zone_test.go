package zone

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := "testdata/" + name
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", name, d)
	}
}

func TestLoadGood(t *testing.T) {
	z, err := Load("example.com.", "testdata/good.zone")
	if err != nil {
		t.Fatal(err)
	}
	if z.Serial != 1 || z.NegTTL != 60 {
		t.Errorf("serial %d negttl %d", z.Serial, z.NegTTL)
	}
	var buf bytes.Buffer
	n, err := z.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) { // io.WriterTo: the bytes written
		t.Errorf("WriteTo returned %d, wrote %d bytes", n, buf.Len())
	}
	golden(t, "good.zone.golden", buf.Bytes())
}

func TestLoadErrorsNameFileAndLine(t *testing.T) {
	_, err := Load("example.com.", "testdata/bad.zone")
	if err == nil {
		t.Fatal("bad zone loaded")
	}
	golden(t, "bad.zone.err", []byte(strings.ReplaceAll(err.Error(), "; ", "\n")+"\n"))
	_, err = Load("example.com.", "testdata/syntax.zone")
	if err == nil || !strings.Contains(err.Error(), "testdata/syntax.zone") || !strings.Contains(err.Error(), "testdata/syntax.zone:4:") {
		t.Errorf("syntax error should name file and line 4: %v", err)
	}
	if !errors.Is(err, ErrSyntax) {
		t.Errorf("syntax error does not match ErrSyntax: %v", err)
	}
}

func TestStructure(t *testing.T) {
	z, err := Load("example.com.", "testdata/good.zone")
	if err != nil {
		t.Fatal(err)
	}
	w := func(s string) []byte { b, _ := NameWire(s); return b }
	tests := []struct {
		name  string
		exist bool
	}{
		{"example.com.", true},
		{"_tcp.example.com.", true}, // empty non-terminal
		{"_25._tcp.example.com.", true},
		{"esc\\.aped.example.com.", true},
		{"host3.example.com.", true},
		{"host4.example.com.", false},
		{"nope.example.com.", false},
	}
	for _, tt := range tests {
		if got := z.Lookup(w(tt.name)) != nil; got != tt.exist {
			t.Errorf("%s exists=%v, want %v", tt.name, got, tt.exist)
		}
	}
	if !z.Lookup(w("_tcp.example.com.")).Empty() {
		t.Error("_tcp should be an empty non-terminal")
	}
}

func TestCompare(t *testing.T) {
	// RFC 4034 §6.1 example order.
	order := []string{"example.", "a.example.", "yljkjljk.a.example.", "Z.a.example.", "zABC.a.EXAMPLE.", "z.example.", "\\001.z.example.", "*.z.example.", "\\200.z.example."}
	for i := 1; i < len(order); i++ {
		a, _ := NameWire(order[i-1])
		b, _ := NameWire(order[i])
		if Compare(a, b) >= 0 {
			t.Errorf("%s should sort before %s", order[i-1], order[i])
		}
	}
}

func TestSerialLess(t *testing.T) {
	tests := []struct {
		a, b uint32
		want bool
	}{{1, 2, true}, {2, 1, false}, {0xFFFFFFFF, 0, true}, {0, 0xFFFFFFFF, false}, {5, 5, false}}
	for _, tt := range tests {
		if got := SerialLess(tt.a, tt.b); got != tt.want {
			t.Errorf("SerialLess(%d,%d)=%v", tt.a, tt.b, got)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/good.zone", "testdata/bad.zone", "testdata/syntax.zone"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Fuzz(func(t *testing.T, text string) {
		recs, err := Parse(strings.NewReader(text), "example.com.", "")
		if err != nil {
			return
		}
		z, err := Build("example.com.", recs)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if _, err := z.WriteTo(&buf); err != nil {
			t.Fatalf("built zone does not print: %v", err)
		}
	})
}

func TestDiffApply(t *testing.T) {
	parse := func(text string) *Zone {
		t.Helper()
		recs, err := Parse(strings.NewReader(text), "example.com.", "test")
		if err != nil {
			t.Fatal(err)
		}
		z, err := Build("example.com.", recs)
		if err != nil {
			t.Fatal(err)
		}
		return z
	}
	a := parse(`$ORIGIN example.com.
@ 300 IN SOA ns1 h 1 2 3 4 5
@ 300 IN NS ns1
ns1 300 IN A 192.0.2.1
www 300 IN A 192.0.2.2
old 300 IN TXT "gone"
`)
	b := parse(`$ORIGIN example.com.
@ 300 IN SOA ns1 h 2 2 3 4 5
@ 300 IN NS ns1
ns1 300 IN A 192.0.2.1
www 60 IN A 192.0.2.2
new 300 IN TXT "here"
`)
	del, add, err := Diff(a, b)
	if err != nil {
		t.Fatal(err)
	}
	str := func(rrs []dns.RR) []string {
		var s []string
		for _, rr := range rrs {
			s = append(s, rr.String())
		}
		return s
	}
	// SOA first, then canonical order.
	wantDel := []string{"example.com.\t300\tIN\tSOA\tns1.example.com. h.example.com. 1 2 3 4 5", "old.example.com.\t300\tIN\tTXT\t\"gone\"", "www.example.com.\t300\tIN\tA\t192.0.2.2"}
	wantAdd := []string{"example.com.\t300\tIN\tSOA\tns1.example.com. h.example.com. 2 2 3 4 5", "new.example.com.\t300\tIN\tTXT\t\"here\"", "www.example.com.\t60\tIN\tA\t192.0.2.2"}
	if d := cmp.Diff(wantDel, str(del)); d != "" {
		t.Errorf("del (-want +got):\n%s", d)
	}
	if d := cmp.Diff(wantAdd, str(add)); d != "" {
		t.Errorf("add (-want +got):\n%s", d)
	}
	c, err := Apply(a, del, add)
	if err != nil {
		t.Fatal(err)
	}
	var bb, cb bytes.Buffer
	b.WriteTo(&bb)
	c.WriteTo(&cb)
	if d := cmp.Diff(bb.String(), cb.String()); d != "" {
		t.Errorf("Apply(Diff) differs from the target (-want +got):\n%s", d)
	}
	// An invalid result leaves an error, not a zone.
	if _, err := Apply(a, nil, []dns.RR{mustRR(t, "www.example.com. 300 IN CNAME ns1.example.com.")}); err == nil {
		t.Error("CNAME beside A accepted")
	}
}

func mustRR(t *testing.T, s string) dns.RR {
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

// MX preferences 65 and 97 are the bytes 'A' and 'a': only names compare
// without case.
func TestRdataCaseOnlyInNames(t *testing.T) {
	recs, err := Parse(strings.NewReader("$ORIGIN example.com.\n@ 300 SOA ns h 1 2 3 4 5\n@ 300 NS ns\nns 300 A 192.0.2.1\n@ 300 MX 65 mail\n@ 300 MX 97 mail\n@ 300 MX 10 MAIL\n"), "example.com.", "t")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Build("example.com.", recs); err != nil {
		t.Fatalf("MX 65 and MX 97 are different records: %v", err)
	}
	recs = append(recs, Record{RR: mustRR(t, "example.com. 300 MX 10 Mail.example.com.")})
	if _, err := Build("example.com.", recs); err == nil {
		t.Fatal("MX 10 mail and MX 10 Mail are the same record (names compare without case)")
	}
	a, _ := RRKey(mustRR(t, "x.example.com. 300 MX 65 mail.example.com."))
	b, _ := RRKey(mustRR(t, "x.example.com. 300 MX 97 mail.example.com."))
	if a == b {
		t.Error("rrKey confuses MX 65 and MX 97")
	}
}

func TestEmptyRdataRejected(t *testing.T) {
	text := "$ORIGIN example.com.\n@ 300 SOA ns h 1 2 3 4 5\n@ 300 NS ns\nns 300 A 192.0.2.1\nu 300 TYPE65400 \\# 0\n"
	recs, err := Parse(strings.NewReader(text), "example.com.", "t")
	if err != nil {
		t.Fatal(err)
	}
	// The API's record parser can yield an A without an address.
	empty := &dns.A{Hdr: dns.RR_Header{Name: "x.example.com.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}}
	recs = append(recs, Record{RR: empty, File: "t", Line: 9})
	_, err = Build("example.com.", recs)
	if err == nil || !strings.Contains(err.Error(), "t:9: x.example.com. A: record has no data") {
		t.Errorf("empty A accepted or misreported: %v", err)
	}
	if strings.Contains(fmt.Sprint(err), "TYPE65400") {
		t.Errorf("an unknown type may be empty (RFC 3597): %v", err)
	}
}

// sortCanonical must agree with Compare, escapes and binary labels included.
func TestSortCanonicalAgreesWithCompare(t *testing.T) {
	names := []string{"example.", "a.example.", "yljkjljk.a.example.", "Z.a.example.", "zABC.a.EXAMPLE.",
		"z.example.", "\\001.z.example.", "*.z.example.", "\\200.z.example.", "\\000.z.example.",
		"\\000\\001.z.example.", "\\001\\000.z.example.", "a\\000.z.example.", "a.z.example."}
	var nodes []*Node
	for i := len(names) - 1; i >= 0; i-- {
		w, err := NameWire(names[i])
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, &Node{Name: w})
	}
	sortCanonical(nodes)
	for i := 1; i < len(nodes); i++ {
		if Compare(nodes[i-1].Name, nodes[i].Name) >= 0 {
			t.Errorf("%s sorted before %s", NameString(nodes[i-1].Name), NameString(nodes[i].Name))
		}
	}
}

// TestCanonicalCase: RRKey (IXFR, store) and the builder's duplicate check
// agree on which records differ only in the case of a name that canonical
// form (RFC 4034 §6.2) lower-cases.
func TestCanonicalCase(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"x.example.com. 300 SRV 1 2 3 target.example.com.", "x.example.com. 300 SRV 1 2 3 TARGET.Example.com.", true},
		{"x.example.com. 300 NAPTR 100 10 \"S\" \"SIP+D2U\" \"\" _sip._udp.example.com.", "x.example.com. 300 NAPTR 100 10 \"S\" \"SIP+D2U\" \"\" _SIP._udp.EXAMPLE.com.", true},
		{"x.example.com. 300 NAPTR 100 10 \"S\" \"SIP+D2U\" \"\" _sip._udp.example.com.", "x.example.com. 300 NAPTR 100 10 \"s\" \"SIP+D2U\" \"\" _sip._udp.example.com.", false},
		{"x.example.com. 300 KX 10 kx.example.com.", "x.example.com. 300 KX 10 KX.example.com.", true},
		{"x.example.com. 300 AFSDB 1 afs.example.com.", "x.example.com. 300 AFSDB 1 AFS.example.com.", true},
		{"x.example.com. 300 RP mbox.example.com. txt.example.com.", "x.example.com. 300 RP MBOX.example.com. TXT.example.com.", true},
		{"x.example.com. 300 DNAME target.example.net.", "x.example.com. 300 DNAME Target.example.net.", true},
		{"x.example.com. 300 MX 10 mail.example.com.", "x.example.com. 300 MX 10 MAIL.example.com.", true},
		{"x.example.com. 300 MX 10 mail.example.com.", "x.example.com. 300 MX 10 \\077ail.example.com.", true}, // \077 = 'M'
		{"x.example.com. 300 TXT \"abc\"", "x.example.com. 300 TXT \"ABC\"", false},
		{"x.example.com. 300 HTTPS 1 svc.example.com.", "x.example.com. 300 HTTPS 1 SVC.example.com.", false}, // not in §6.2
		{"x.example.com. 300 TYPE65400 \\# 2 4142", "x.example.com. 300 TYPE65400 \\# 2 6162", false},
	} {
		a, b := mustRR(t, tc.a), mustRR(t, tc.b)
		ka, err := RRKey(a)
		if err != nil {
			t.Fatal(err)
		}
		kb, err := RRKey(b)
		if err != nil {
			t.Fatal(err)
		}
		if got := ka == kb; got != tc.same {
			t.Errorf("RRKey(%q) == RRKey(%q): %v, want %v", tc.a, tc.b, got, tc.same)
		}
		// The same pair in one zone: a duplicate exactly when the keys match.
		recs := []Record{
			{RR: mustRR(t, "example.com. 300 SOA ns.example.com. h.example.com. 1 2 3 4 5")},
			{RR: mustRR(t, "example.com. 300 NS ns.example.com.")},
			{RR: mustRR(t, "ns.example.com. 300 A 192.0.2.1")},
			{RR: a, File: "t", Line: 4}, {RR: b, File: "t", Line: 5},
		}
		_, err = Build("example.com.", recs)
		if dup := err != nil && strings.Contains(err.Error(), "duplicate record"); dup != tc.same {
			t.Errorf("Build with %q and %q: %v, want duplicate %v", tc.a, tc.b, err, tc.same)
		}
	}
	// The owner compares without case too.
	ka, _ := RRKey(mustRR(t, "X.Example.com. 300 A 192.0.2.1"))
	kb, _ := RRKey(mustRR(t, "x.example.com. 300 A 192.0.2.1"))
	if ka != kb {
		t.Error("RRKey keeps the owner's case")
	}
}

// FuzzCanonicalRdata: any rdata of a type with names, malformed included,
// is lower-cased without a panic, idempotently, and compares equal to its
// canonical form.
func FuzzCanonicalRdata(f *testing.F) {
	f.Add(uint16(dns.TypeSRV), []byte("\x00\x01\x00\x02\x00\x03\x06TARGET\x07example\x00"))
	f.Add(uint16(dns.TypeNAPTR), []byte("\x00\x64\x00\x0a\x01S\x07SIP+D2U\x00\x04_SIP\x00"))
	f.Add(uint16(dns.TypeRRSIG), make([]byte, 18))
	f.Add(uint16(dns.TypeMX), []byte("\x00\x0a\xc0\x0c"))
	f.Fuzz(func(t *testing.T, typ uint16, rd []byte) {
		c := canonicalRdata(typ, rd)
		if len(c) != len(rd) {
			t.Fatalf("length %d -> %d", len(rd), len(c))
		}
		if cc := canonicalRdata(typ, c); !bytes.Equal(cc, c) {
			t.Fatalf("not idempotent: %x -> %x -> %x", rd, c, cc)
		}
		if !rdataEqual(typ, rd, c) {
			t.Fatalf("rdata %x differs from its canonical form %x", rd, c)
		}
	})
}

// TestWriteToAddresses: the A and AAAA records WriteTo prints itself are
// the lines miekg/dns prints (the rest of WriteTo's way): escaped and wild
// owners, several records, IPv4-mapped and other IPv6 forms, signed sets.
func TestWriteToAddresses(t *testing.T) {
	text := `$ORIGIN example.com.
$TTL 300
@ SOA ns1 h 1 2 3 4 5
@ NS ns1
ns1 A 192.0.2.1
@ A 192.0.2.2
@ A 198.51.100.255
a\.b A 0.0.0.0
\032sp 60 A 255.255.255.255
*.wild AAAA 2001:db8::1
v6 AAAA ::
v6 AAAA ::1
v6 AAAA 2001:db8:0:0:1:0:0:1
v6 AAAA fe80::1:2:3:4
mapped AAAA ::ffff:192.0.2.9
compat AAAA ::192.0.2.9
signed A 192.0.2.77
signed RRSIG A 8 3 300 20300101000000 20200101000000 1 example.com. AAAA
mixed A 192.0.2.78
mixed TXT "x"
`
	recs, err := Parse(strings.NewReader(text), "example.com.", "t")
	if err != nil {
		t.Fatal(err)
	}
	z, err := Build("example.com.", recs)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if _, err := z.WriteTo(&got); err != nil {
		t.Fatal(err)
	}
	// What WriteTo printed before: a dns.RR per record, SOA first.
	var want strings.Builder
	z.Nodes(func(n *Node) {
		owner := NameString(n.Name)
		for _, first := range []bool{true, false} {
			for i := range n.Sets {
				if (n.Sets[i].Type == dns.TypeSOA) != first {
					continue
				}
				rrs, err := n.Sets[i].RRs(owner)
				if err != nil {
					t.Fatal(err)
				}
				for _, rr := range rrs {
					want.WriteString(rr.String() + "\n")
				}
			}
		}
	})
	if got.String() != want.String() {
		t.Errorf("WriteTo:\n%s\nwant (dns.RR.String):\n%s", got.String(), want.String())
	}
	for _, line := range []string{"mapped.example.com.\t300\tIN\tAAAA\t::ffff:192.0.2.9\n", "\\ sp.example.com.\t60\tIN\tA\t255.255.255.255\n"} {
		if !strings.Contains(got.String(), line) {
			t.Errorf("WriteTo lacks %q:\n%s", line, got.String())
		}
	}
}
