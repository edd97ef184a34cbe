package api

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// FuzzRRsetRequest feeds arbitrary PUT bodies and types to the parser of
// RRset writes. It must not panic; what it accepts must be records of the
// path's owner and type; and what the API shows of them (toRRset) must parse
// back to the same records, so that a GET can always be PUT again.
func FuzzRRsetRequest(f *testing.F) {
	for _, s := range []struct{ body, typ string }{
		{`{"ttl":300,"records":["192.0.2.1","192.0.2.2"]}`, "A"},
		{`{"ttl":300,"records":["2001:db8::1"]}`, "AAAA"},
		{`{"name":"www","type":"TXT","ttl":0,"records":["\"a b\" \"c\\\"d\"","\"\\010\\255\""]}`, "TXT"},
		{`{"ttl":60,"records":["10 mail","20 mx.example.net."]}`, "MX"},
		{`{"ttl":60,"records":["0 issue \"ca.example\""]}`, "CAA"},
		{`{"ttl":60,"records":["1 . alpn=h2 port=443"]}`, "HTTPS"},
		{`{"ttl":60,"records":["3 1 1 ABCDEF0123456789"]}`, "TLSA"},
		{`{"ttl":60,"records":["\\# 4 0a000001"]}`, "TYPE65400"},
		{`{"ttl":60,"records":["ns1 hostmaster 1 2 3 4 5"]}`, "SOA"},
		{`{"ttl":60,"records":["1 1 5 abcd"]}`, "SSHFP"},
		{`{"ttl":60,"records":["v=spf1 -all"]}`, "TXT"},
		{`{"ttl":60,"records":["0 0 1 ."]}`, "SRV"},
		{`{"ttl":-1,"records":[]}`, "A"},
		{`{"ttl":60,"records":["192.0.2.1 ; comment"]}`, "A"},
		{`{"ttl":60,"records":["( 192.0.2.1 )"]}`, "A"},
		{`[]`, "A"},
	} {
		f.Add([]byte(s.body), s.typ)
	}
	const zname, owner = "example.com.", "www.example.com."
	f.Fuzz(func(t *testing.T, body []byte, typ string) {
		tt, err := ParseType(typ)
		if err != nil {
			return
		}
		rrs, _, err := parseRRsetRequest(body, zname, owner, tt)
		if err != nil {
			return
		}
		if len(rrs) == 0 {
			t.Fatal("accepted an RRset without records")
		}
		for _, rr := range rrs {
			if h := rr.Header(); h.Rrtype != tt || !strings.EqualFold(h.Name, owner) || h.Class != dns.ClassINET {
				t.Fatalf("accepted %v for %s %s", rr, owner, typeString(tt))
			}
		}
		shown := toRRset(owner, tt, rrs)
		again, err := ParseRRset(zname, owner, tt, shown.TTL, shown.Records)
		if err != nil {
			t.Fatalf("the API's own rendering %q does not parse: %v", shown.Records, err)
		}
		for i := range rrs {
			if a, b := pack(t, rrs[i]), pack(t, again[i]); a != b {
				t.Fatalf("record %d changed through the API's rendering: %v became %v", i, rrs[i], again[i])
			}
		}
	})
}

// FuzzParseRecords feeds arbitrary record lines to the parser of zone
// creation. Accepted lines must give one record whose text parses back to
// the same record.
func FuzzParseRecords(f *testing.F) {
	for _, s := range []string{
		"@ 3600 IN SOA ns1 hostmaster 1 7200 3600 1209600 300",
		"www 300 IN A 192.0.2.1",
		"www IN AAAA 2001:db8::1",
		`txt TXT "a" "b c"`,
		"$INCLUDE /etc/passwd",
		"$GENERATE 1-100 h$ A 192.0.2.$",
		" indented A 192.0.2.1",
		"a ( 300 IN A 192.0.2.1 )",
		"b 300 IN A 192.0.2.1 ; comment",
		"c.example.net. 60 IN A 192.0.2.1",
		`d 60 IN TYPE65400 \# 2 abcd`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		rrs, err := ParseRecords("example.com.", []string{line})
		if err != nil {
			return
		}
		if len(rrs) != 1 {
			t.Fatalf("%q gave %d records", line, len(rrs))
		}
		again, err := ParseRecords("example.com.", []string{rrs[0].String()})
		if err != nil {
			t.Fatalf("%q parsed to %q, which does not parse: %v", line, rrs[0].String(), err)
		}
		if pack(t, rrs[0]) != pack(t, again[0]) {
			t.Fatalf("%q: %v became %v", line, rrs[0], again[0])
		}
	})
}

// pack returns a record in uncompressed wire format.
func pack(t *testing.T, rr dns.RR) string {
	t.Helper()
	buf := make([]byte, dns.Len(rr)+16)
	n, err := dns.PackRR(rr, buf, 0, nil, false)
	if err != nil {
		t.Fatalf("accepted %v, which does not encode: %v", rr, err)
	}
	return string(buf[:n])
}

// TestFuzzRegressions holds the inputs the fuzzers found problems with
// (testdata/fuzz/FuzzParseRecords/regression_*), each named after it.
func TestFuzzRegressions(t *testing.T) {
	tests := []struct {
		name, line, want string
	}{
		// The parser takes a type without data as the "delete" form of a
		// dynamic update: an A record with no address.
		{"A without data", "0000000000 A", `records[0]: "0000000000 A": no record data`},
		// Fields left zero render as text that reads back differently.
		{"SOA without data", "000000000 SOA", `records[0]: "000000000 SOA": missing or incomplete record data (it reads as "  0 0 0 0 0")`},
		// A line of only a type is a record with an empty owner.
		{"type as owner", "tXt", `records[0]: "tXt": the owner name is missing`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRecords("example.com.", []string{tt.line})
			if err == nil || err.Error() != tt.want {
				t.Errorf("ParseRecords(%q) error %v, want %s", tt.line, err, tt.want)
			}
		})
	}
}
