package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// soaNS is the content of a zone in zone-file form, relative to its origin.
const soaNS = "@ 3600 IN SOA ns1.example.net. hostmaster.example.net. 1 7200 3600 1209600 300\n@ 3600 IN NS ns1.example.net.\n"

func createJSON(name string, allowTLD bool) string {
	b, _ := json.Marshal(api.CreateZone{Name: name, Records: strings.Split(strings.TrimSpace(soaNS), "\n"), AllowTLD: allowTLD})
	return string(b)
}

// errorOf returns the message of an error answer.
func errorOf(t *testing.T, body []byte) string {
	t.Helper()
	var e api.Error
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("not an error answer: %s", body)
	}
	return e.Error
}

// TestZoneNames checks that every way of creating a zone refuses the names
// the nodes cannot serve (the rule of zone.ValidateZoneName, with its
// message), creates the root and top-level domains only when asked to, and
// that the root zone can be deleted.
func TestZoneNames(t *testing.T) {
	srv, _ := server(t, 0)
	type creator struct {
		how  string
		call func(name string, allowTLD bool) call
	}
	creators := []creator{
		{"POST json", func(name string, allow bool) call {
			return call{method: "POST", path: "/v1/zones", contentType: "application/json", body: createJSON(name, allow)}
		}},
		{"POST text/dns", func(name string, allow bool) call {
			p := "/v1/zones?name=" + strings.NewReplacer("\\", "%5C", "*", "%2A").Replace(name)
			if allow {
				p += "&allow_tld=true"
			}
			return call{method: "POST", path: p, contentType: "text/dns", body: soaNS}
		}},
		{"PUT zonefile", func(name string, allow bool) call {
			p := api.ZoneFilePath(name)
			if allow {
				p += "?allow_tld=true"
			}
			return call{method: "PUT", path: p, contentType: "text/dns", body: soaNS}
		}},
	}
	for _, c := range creators {
		for _, name := range []string{"*.test", `a\.b.test`, `a\000b.test`, `x\032y.test`, "a@b.test"} {
			resp, body := do(t, srv.URL, c.call(name, true))
			canon, err := api.CanonicalZone(name)
			if err != nil {
				t.Fatal(err)
			}
			verr := zone.ValidateZoneName(canon)
			if resp.StatusCode != http.StatusBadRequest || verr == nil || !strings.Contains(errorOf(t, body), verr.Error()) {
				t.Errorf("%s %q: %d %s, want 400 with %v", c.how, name, resp.StatusCode, body, verr)
			}
		}
	}
	// The names the nodes serve, one zone per way of creating it.
	for i, name := range []string{"0/25.2.0.192.in-addr.arpa", "_x.test", "xn--bcher-kva.test"} {
		c := creators[i]
		if resp, body := do(t, srv.URL, c.call(name, false)); resp.StatusCode/100 != 2 {
			t.Errorf("%s %q: %d %s", c.how, name, resp.StatusCode, body)
		}
	}
	// The root and top-level domains need allow_tld.
	for i, name := range []string{".", "test", "example"} {
		c := creators[i]
		resp, body := do(t, srv.URL, c.call(name, false))
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(errorOf(t, body), "allow_tld") {
			t.Errorf("%s %q without allow_tld: %d %s, want 400 naming allow_tld", c.how, name, resp.StatusCode, body)
		}
		if resp, body := do(t, srv.URL, c.call(name, true)); resp.StatusCode/100 != 2 {
			t.Errorf("%s %q with allow_tld: %d %s", c.how, name, resp.StatusCode, body)
		}
	}
	// Replacing an existing top-level zone needs no flag.
	if resp, body := do(t, srv.URL, call{method: "PUT", path: "/v1/zones/test/zonefile", body: soaNS}); resp.StatusCode != 200 {
		t.Errorf("import into the existing zone test.: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, srv.URL, call{method: "POST", path: "/v1/zones?name=net&allow_tld=maybe", contentType: "text/dns", body: soaNS}); resp.StatusCode != 400 ||
		!strings.Contains(errorOf(t, body), "allow_tld") {
		t.Errorf("allow_tld=maybe: %d %s", resp.StatusCode, body)
	}

	// The root zone's path.
	if p := api.ZonePath("."); p != "/v1/zones/%2E" {
		t.Errorf("ZonePath(.) = %q", p)
	}
	if resp, body := do(t, srv.URL, call{method: "GET", path: api.ZonePath(".")}); resp.StatusCode != 200 {
		t.Errorf("GET the root zone: %d %s", resp.StatusCode, body)
	}
	// Where a client takes "/v1/zones/." for "/v1/zones", the error says
	// where the root is.
	if resp, body := do(t, srv.URL, call{method: "DELETE", path: "/v1/zones"}); resp.StatusCode != 405 || !strings.Contains(errorOf(t, body), "/v1/zones/%2E") {
		t.Errorf("DELETE /v1/zones: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, srv.URL, call{method: "DELETE", path: api.ZonePath(".")}); resp.StatusCode != 204 {
		t.Errorf("DELETE the root zone: %d %s", resp.StatusCode, body)
	}
	if resp, _ := do(t, srv.URL, call{method: "GET", path: api.ZonePath(".")}); resp.StatusCode != 404 {
		t.Errorf("the root zone after its delete: %d", resp.StatusCode)
	}
}

// signedText is a zone as a signer writes it. The signatures are not
// checked by the API (the store's tests sign for real).
const signedText = `signed.example.	3600	IN	SOA	ns1.signed.example. hostmaster.signed.example. 10 7200 3600 1209600 300
signed.example.	3600	IN	RRSIG	SOA 15 2 3600 20360101000000 20240101000000 38413 signed.example. +Hp72fFlxorO2qQbMPg96D2RDpJBt7AElTKhRpke78FGUiXt96ZODaDmzljWmbyqXyJ99CQnOToAY2+4tw/kDQ==
signed.example.	3600	IN	NS	ns1.signed.example.
signed.example.	3600	IN	RRSIG	NS 15 2 3600 20360101000000 20240101000000 38413 signed.example. RU+WVzbOrj+hHtrbvXAqlFiQOoN6mGr1uKnHpbZoU9cXjWPTC4sMr18903nSn4Khkhh7doZpV4S/EcLMlazDBw==
signed.example.	3600	IN	DNSKEY	257 3 15 8Hymdopk5TfD9pt77J3HwAabPR/tQOxi/VKPtl+ybYI=
signed.example.	3600	IN	RRSIG	DNSKEY 15 2 3600 20360101000000 20240101000000 38413 signed.example. ehXbWwpox7qBwoY4XCY45N+46reBTYXcNsOruRSK9d3HrX+I31MmNKZQkZSUhq6rVuYqY6CmK70uVVORPHXnCQ==
signed.example.	300	IN	NSEC	ns1.signed.example. NS SOA RRSIG NSEC DNSKEY
signed.example.	300	IN	RRSIG	NSEC 15 2 300 20360101000000 20240101000000 38413 signed.example. dhb3ucYcOf22IENR3013lki2tExdNqHUxGsC0LGr5qidVrKIhh7swt4rcYkLtsMx6x2QH7iYyzoQTokjamlPDw==
ns1.signed.example.	3600	IN	A	192.0.2.1
ns1.signed.example.	3600	IN	RRSIG	A 15 3 3600 20360101000000 20240101000000 38413 signed.example. icQ+WLZuNmFheFG6uUPwMaL2W9TARGCBesHoNeqYyngYV9VvnLO71jDVYiDPiZrVQGY6ofjz+s/WotS67GWACg==
ns1.signed.example.	300	IN	NSEC	signed.example. A RRSIG NSEC
ns1.signed.example.	300	IN	RRSIG	NSEC 15 3 300 20360101000000 20240101000000 38413 signed.example. +kaOJdd9SzA0rlo3Am3bHsUVs5UAJMJMFZw/53ABbdHAyREIS/dleoqyw2zHiqxn8NOEDAoCrc4Raj294R0ICg==
`

// TestSignedZoneEdits checks that edits that would break a zone imported
// signed are refused with 409 and advice, and that whole-zone imports,
// signed with a newer serial or unsigned, are taken.
func TestSignedZoneEdits(t *testing.T) {
	srv, _ := server(t, 0)
	if resp, body := do(t, srv.URL, call{method: "PUT", path: "/v1/zones/signed.example/zonefile", body: signedText}); resp.StatusCode != 200 {
		t.Fatalf("import signed: %d %s", resp.StatusCode, body)
	}
	for _, c := range []call{
		{name: "put an RRset", method: "PUT", path: "/v1/zones/signed.example/rrsets/www/A", body: `{"ttl":300,"records":["192.0.2.80"]}`},
		{name: "put the SOA", method: "PUT", path: "/v1/zones/signed.example/rrsets/@/SOA", body: `{"ttl":3600,"records":["ns1 hostmaster 11 7200 3600 1209600 300"]}`},
		{name: "delete an RRset", method: "DELETE", path: "/v1/zones/signed.example/rrsets/ns1/A"},
		{name: "delete the signatures", method: "DELETE", path: "/v1/zones/signed.example/rrsets/ns1/RRSIG"},
		{name: "import changed, same serial", method: "PUT", path: "/v1/zones/signed.example/zonefile",
			body: strings.Replace(signedText, "192.0.2.1", "192.0.2.2", 1)},
	} {
		resp, body := do(t, srv.URL, c)
		msg := errorOf(t, body)
		if resp.StatusCode != http.StatusConflict || !strings.Contains(msg, "DNSSEC-signed") || !strings.Contains(msg, "import") {
			t.Errorf("%s: %d %s, want 409 saying the zone is signed and how to proceed", c.name, resp.StatusCode, body)
		}
	}
	// An RRset of a DNSSEC type is not written into an unsigned zone
	// either.
	if resp, body := do(t, srv.URL, call{method: "POST", path: "/v1/zones", body: createJSON("unsigned.example", false)}); resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, srv.URL, call{method: "PUT", path: "/v1/zones/unsigned.example/rrsets/@/DNSKEY",
		body: `{"ttl":3600,"records":["257 3 15 8Hymdopk5TfD9pt77J3HwAabPR/tQOxi/VKPtl+ybYI="]}`}); resp.StatusCode != http.StatusConflict {
		t.Errorf("put a DNSKEY: %d %s, want 409", resp.StatusCode, body)
	}

	// Signed again with a newer serial: taken as it is.
	resigned := strings.Replace(strings.Replace(signedText, " 10 7200", " 11 7200", 1), "192.0.2.1", "192.0.2.2", 1)
	resp, body := do(t, srv.URL, call{method: "PUT", path: "/v1/zones/signed.example/zonefile", body: resigned})
	var info api.ZoneInfo
	if err := json.Unmarshal(body, &info); resp.StatusCode != 200 || err != nil || info.Serial != 11 {
		t.Fatalf("import signed again: %d %s, want 200 with serial 11", resp.StatusCode, body)
	}
	// The unsigned zone replaces it; then it can be edited.
	unsigned := "$ORIGIN signed.example.\n" + soaNS + "ns1 3600 IN A 192.0.2.1\n"
	if resp, body := do(t, srv.URL, call{method: "PUT", path: "/v1/zones/signed.example/zonefile", body: unsigned}); resp.StatusCode != 200 {
		t.Fatalf("import unsigned: %d %s", resp.StatusCode, body)
	}
	if resp, body := do(t, srv.URL, call{method: "PUT", path: "/v1/zones/signed.example/rrsets/www/A", body: `{"ttl":300,"records":["192.0.2.80"]}`}); resp.StatusCode != 200 {
		t.Errorf("edit after the unsigned import: %d %s", resp.StatusCode, body)
	}
}

func putRRset(t *testing.T, base, path, body string) api.RRset {
	t.Helper()
	resp, b := do(t, base, call{method: "PUT", path: path, body: body})
	var res api.WriteResult
	if err := json.Unmarshal(b, &res); resp.StatusCode != 200 || err != nil || res.RRset == nil {
		t.Fatalf("PUT %s %s: %d %s", path, body, resp.StatusCode, b)
	}
	return *res.RRset
}

// TestPutRRsetWithoutTTL checks the TTL of a PUT without one: the RRset's
// own when it exists, else the TTL of the zone's SOA.
func TestPutRRsetWithoutTTL(t *testing.T) {
	srv, _ := server(t, 0)
	zoneFile := "$TTL 7200\n@ IN SOA ns1.example.net. hostmaster.example.net. 1 7200 3600 1209600 300\n@ IN NS ns1.example.net.\n"
	if resp, body := do(t, srv.URL, call{method: "POST", path: "/v1/zones?name=example.com", contentType: "text/dns", body: zoneFile}); resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	const www = "/v1/zones/example.com/rrsets/www/A"
	steps := []struct {
		body string
		ttl  uint32
	}{
		{`{"records":["192.0.2.1"]}`, 7200},              // new: the SOA's TTL (the $TTL)
		{`{"ttl":60,"records":["192.0.2.1"]}`, 60},       // given
		{`{"records":["192.0.2.2","192.0.2.3"]}`, 60},    // kept
		{`{"ttl":0,"records":["192.0.2.2"]}`, 0},         // 0 is a TTL
		{`{"records":["192.0.2.4"]}`, 0},                 // kept, 0 included
		{`{"ttl":86400,"records":["192.0.2.4"]}`, 86400}, // the TTL alone changes
	}
	for i, s := range steps {
		if got := putRRset(t, srv.URL, www, s.body); got.TTL != s.ttl {
			t.Errorf("step %d %s: TTL %d, want %d", i, s.body, got.TTL, s.ttl)
		}
	}
}

// TestTXTStrings checks that TXT data is one string when it is quoted as
// one, and that unquoted data with spaces, which presentation format would
// split into strings, is refused rather than split.
func TestTXTStrings(t *testing.T) {
	srv, _ := server(t, 0)
	if resp, body := do(t, srv.URL, call{method: "POST", path: "/v1/zones", body: createJSON("example.com", false)}); resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	const txt = "/v1/zones/example.com/rrsets/txt/TXT"
	for _, tc := range []struct{ records, want string }{
		{`["\"hello world\""]`, `"hello world"`},
		{`["\"two\" \"strings\""]`, `"two" "strings"`},
		{`["v=spf1"]`, `"v=spf1"`},
		{`["a\\ b"]`, `"a b"`},
		{`["\"v=spf1 include:_spf.example.net -all\""]`, `"v=spf1 include:_spf.example.net -all"`},
	} {
		got := putRRset(t, srv.URL, txt, `{"ttl":60,"records":`+tc.records+`}`)
		if len(got.Records) != 1 || got.Records[0] != tc.want {
			t.Errorf("records %s stored as %q, want %q", tc.records, got.Records, tc.want)
		}
	}
	for _, records := range []string{`["hello world"]`, `["v=spf1 -all"]`, "[\"a\\tb\"]"} {
		resp, body := do(t, srv.URL, call{method: "PUT", path: txt, body: `{"ttl":60,"records":` + records + `}`})
		if resp.StatusCode != 400 || !strings.Contains(errorOf(t, body), "not quoted") {
			t.Errorf("records %s: %d %s, want 400 asking for quotes", records, resp.StatusCode, body)
		}
	}
}
