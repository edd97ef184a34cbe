package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/role/control"
	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

const token = "test-token-0123456789"

var t0 = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	testkit.Golden(t, filepath.Join("testdata", name), got)
}

// server runs the API over a real store in a temporary directory.
func server(t testing.TB, maxBody int64, opts ...store.Option) (*httptest.Server, *store.Store) {
	t.Helper()
	s, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "zones.db"), nil,
		append([]store.Option{store.WithClock(func() time.Time { return t0 })}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.Handler(control.NewBackend(s), api.Config{Tokens: []string{"other-token-0123456789", token}, MaxBody: maxBody}, nil))
	t.Cleanup(func() {
		srv.Close()
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return srv, s
}

type call struct {
	name        string
	method      string
	path        string
	contentType string
	body        string
	header      map[string]string // extra request headers; "Authorization": "" for none
	status      int
	// golden is the file in testdata holding the expected body; "" for an
	// empty body.
	golden string
	check  func(t *testing.T, resp *http.Response, body []byte)
}

func do(t testing.TB, base string, c call) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(c.method, base+c.path, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	for k, v := range c.header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

const zoneJSON = `{"name": "Example.COM", "records": [
	"@ 3600 IN SOA ns1 hostmaster 2026031400 7200 3600 1209600 300",
	"@ 3600 IN NS ns1",
	"@ 3600 IN NS ns2.example.net.",
	"ns1 3600 IN A 192.0.2.1",
	"www 300 IN A 192.0.2.10",
	"www 300 IN AAAA 2001:db8::10",
	"@ 300 IN MX 10 mail",
	"txt 300 IN TXT \"hello world\" \"second string\""
]}`

const zoneText = `$ORIGIN example.org.
$TTL 3600
@	IN SOA ns1 hostmaster 1 7200 3600 1209600 300
	IN NS ns1
ns1	IN A 192.0.2.2
`

// TestAPI walks through every endpoint in order against one store, checking
// each answer's status and body against testdata.
func TestAPI(t *testing.T) {
	srv, _ := server(t, 4096)
	etag := func(want string) func(t *testing.T, resp *http.Response, _ []byte) {
		return func(t *testing.T, resp *http.Response, _ []byte) {
			if got := resp.Header.Get("ETag"); got != want {
				t.Errorf("ETag %q, want %q", got, want)
			}
		}
	}
	var wwwTag string
	calls := []call{
		{name: "no token", method: "GET", path: "/v1/zones", header: map[string]string{"Authorization": ""}, status: 401, golden: "unauthorized.json",
			check: func(t *testing.T, resp *http.Response, _ []byte) {
				if resp.Header.Get("WWW-Authenticate") == "" {
					t.Error("no WWW-Authenticate")
				}
			}},
		{name: "wrong token", method: "GET", path: "/v1/zones", header: map[string]string{"Authorization": "Bearer " + token + "x"}, status: 401, golden: "unauthorized.json"},
		{name: "basic auth", method: "GET", path: "/v1/zones", header: map[string]string{"Authorization": "Basic " + token}, status: 401, golden: "unauthorized.json"},
		{name: "list empty", method: "GET", path: "/v1/zones", status: 200, golden: "list_empty.json"},
		{name: "create", method: "POST", path: "/v1/zones", contentType: "application/json", body: zoneJSON, status: 201, golden: "create.json",
			check: func(t *testing.T, resp *http.Response, _ []byte) {
				if l := resp.Header.Get("Location"); l != "/v1/zones/example.com." {
					t.Errorf("Location %q", l)
				}
			}},
		{name: "create exists", method: "POST", path: "/v1/zones", body: zoneJSON, status: 409, golden: "create_exists.json"},
		{name: "create bad rdata", method: "POST", path: "/v1/zones", body: `{"name":"example.net","records":["@ SOA ns1 h 1 2 3 4 5","@ NS ns1","ns1 A 192.0.2.999"]}`,
			status: 400, golden: "create_bad_rdata.json"},
		{name: "create invalid zone", method: "POST", path: "/v1/zones", body: `{"name":"example.net","records":["@ SOA ns1 h 1 2 3 4 5","@ NS ns1","ns1 A 192.0.2.1","ns1 CNAME www"]}`,
			status: 400, golden: "create_invalid_zone.json"},
		{name: "create directive", method: "POST", path: "/v1/zones", body: `{"name":"example.net","records":["$INCLUDE /etc/passwd"]}`, status: 400, golden: "create_directive.json"},
		{name: "create unknown field", method: "POST", path: "/v1/zones", body: `{"name":"example.net","recs":[]}`, status: 400, golden: "create_unknown_field.json"},
		{name: "create wrong type", method: "POST", path: "/v1/zones", body: `{"name":"example.net","records":"@ SOA"}`, status: 400, golden: "create_wrong_type.json"},
		{name: "create bad policy", method: "POST", path: "/v1/zones", body: `{"name":"example.net","serial_policy":"weekly","records":["@ SOA ns1 h 1 2 3 4 5","@ NS ns1.example.com."]}`,
			status: 400, golden: "create_bad_policy.json"},
		{name: "create no name", method: "POST", path: "/v1/zones", body: `{"records":[]}`, status: 400, golden: "create_no_name.json"},
		{name: "create wrong media type", method: "POST", path: "/v1/zones", contentType: "application/xml", body: `<zone/>`, status: 415, golden: "create_media_type.json"},
		{name: "create from text", method: "POST", path: "/v1/zones?name=example.org&serial_policy=date", contentType: "text/dns", body: zoneText, status: 201, golden: "create_text.json"},
		{name: "create from text, syntax error", method: "POST", path: "/v1/zones?name=example.info", contentType: "text/dns", body: strings.ReplaceAll(zoneText, "192.0.2.2", "192.0.2.x"),
			status: 400, golden: "create_text_syntax.json"},
		{name: "create from text without name", method: "POST", path: "/v1/zones", contentType: "text/dns", body: zoneText, status: 400, golden: "create_text_no_name.json"},
		{name: "list", method: "GET", path: "/v1/zones", status: 200, golden: "list.json"},
		{name: "show", method: "GET", path: "/v1/zones/example.com", status: 200, golden: "show.json"},
		{name: "show missing", method: "GET", path: "/v1/zones/example.net.", status: 404, golden: "show_missing.json"},
		{name: "get rrset", method: "GET", path: "/v1/zones/example.com/rrsets/www/A", status: 200, golden: "rrset_get.json",
			check: func(t *testing.T, resp *http.Response, _ []byte) { wwwTag = resp.Header.Get("ETag") }},
		{name: "get rrset absolute name, lower-case type", method: "GET", path: "/v1/zones/example.com./rrsets/WWW.example.com./a", status: 200, golden: "rrset_get.json"},
		{name: "get rrset, name ending in the zone", method: "GET", path: "/v1/zones/example.com/rrsets/www.example.com/A", status: 200, golden: "rrset_get.json"},
		{name: "get rrset apex", method: "GET", path: "/v1/zones/example.com/rrsets/@/MX", status: 200, golden: "rrset_get_mx.json"},
		{name: "get rrset missing", method: "GET", path: "/v1/zones/example.com/rrsets/nope/A", status: 404, golden: "rrset_missing.json"},
		{name: "get rrset bad type", method: "GET", path: "/v1/zones/example.com/rrsets/www/BOGUS", status: 400, golden: "rrset_bad_type.json"},
		{name: "get rrset meta type", method: "GET", path: "/v1/zones/example.com/rrsets/www/ANY", status: 400, golden: "rrset_meta_type.json"},
		{name: "get rrset outside the zone", method: "GET", path: "/v1/zones/example.com/rrsets/www.example.net./A", status: 400, golden: "rrset_outside.json"},
		{name: "put rrset", method: "PUT", path: "/v1/zones/example.com/rrsets/mail/A", contentType: "application/json",
			body: `{"ttl": 600, "records": ["192.0.2.25", "192.0.2.26"]}`, status: 200, golden: "rrset_put.json"},
		{name: "put rrset with name and type", method: "PUT", path: "/v1/zones/example.com/rrsets/mail/A",
			body: `{"name":"mail.example.com.","type":"A","ttl": 600, "records": ["192.0.2.26", "192.0.2.25"]}`, status: 200, golden: "rrset_put.json"},
		{name: "put rrset relative rdata name", method: "PUT", path: "/v1/zones/example.com/rrsets/alias/CNAME",
			body: `{"ttl": 60, "records": ["www"]}`, status: 200, golden: "rrset_put_cname.json"},
		{name: "put rrset generic rdata", method: "PUT", path: "/v1/zones/example.com/rrsets/unk/TYPE65400",
			body: `{"ttl": 60, "records": ["\\# 4 0a000001"]}`, status: 200, golden: "rrset_put_generic.json"},
		{name: "put rrset bad rdata", method: "PUT", path: "/v1/zones/example.com/rrsets/mail/A",
			body: `{"ttl": 600, "records": ["192.0.2.25", "192.0.2.999"]}`, status: 400, golden: "rrset_put_bad_rdata.json"},
		{name: "put rrset two lines", method: "PUT", path: "/v1/zones/example.com/rrsets/mail/A",
			body: `{"ttl": 600, "records": ["192.0.2.25\nevil 60 IN A 192.0.2.66"]}`, status: 400, golden: "rrset_put_newline.json"},
		{name: "put rrset no ttl keeps the TTL", method: "PUT", path: "/v1/zones/example.com/rrsets/mail/A", body: `{"records": ["192.0.2.25", "192.0.2.26"]}`, status: 200, golden: "rrset_put_no_ttl.json"},
		{name: "put rrset ttl too big", method: "PUT", path: "/v1/zones/example.com/rrsets/mail/A", body: `{"ttl": 4294967296, "records": ["192.0.2.25"]}`, status: 400, golden: "rrset_put_ttl.json"},
		{name: "put rrset no records", method: "PUT", path: "/v1/zones/example.com/rrsets/mail/A", body: `{"ttl": 60, "records": []}`, status: 400, golden: "rrset_put_no_records.json"},
		{name: "put rrset type mismatch", method: "PUT", path: "/v1/zones/example.com/rrsets/mail/A", body: `{"type":"AAAA","ttl": 60, "records": ["192.0.2.1"]}`, status: 400, golden: "rrset_put_type_mismatch.json"},
		{name: "put rrset cname beside data", method: "PUT", path: "/v1/zones/example.com/rrsets/www/CNAME", body: `{"ttl": 60, "records": ["ns1"]}`, status: 400, golden: "rrset_put_cname_conflict.json"},
		{name: "put rrset duplicate", method: "PUT", path: "/v1/zones/example.com/rrsets/www/A", body: `{"ttl": 60, "records": ["192.0.2.1", "192.0.2.1"]}`, status: 400, golden: "rrset_put_duplicate.json"},
		{name: "put rrset missing zone", method: "PUT", path: "/v1/zones/example.net/rrsets/www/A", body: `{"ttl": 60, "records": ["192.0.2.1"]}`, status: 404, golden: "rrset_put_no_zone.json"},
		{name: "put rrset stale If-Match", method: "PUT", path: "/v1/zones/example.com/rrsets/www/A", header: map[string]string{"If-Match": `"0123"`},
			body: `{"ttl": 60, "records": ["192.0.2.11"]}`, status: 412, golden: "rrset_put_stale.json"},
		{name: "put rrset If-None-Match on an existing set", method: "PUT", path: "/v1/zones/example.com/rrsets/www/A", header: map[string]string{"If-None-Match": "*"},
			body: `{"ttl": 60, "records": ["192.0.2.11"]}`, status: 412, golden: "rrset_put_stale.json"},
		{name: "put rrset too large", method: "PUT", path: "/v1/zones/example.com/rrsets/www/TXT", body: `{"ttl": 60, "records": ["` + strings.Repeat("a", 5000) + `"]}`,
			status: 413, golden: "too_large.json"},
		{name: "delete rrset", method: "DELETE", path: "/v1/zones/example.com/rrsets/txt/TXT", status: 200, golden: "rrset_delete.json"},
		{name: "delete rrset missing", method: "DELETE", path: "/v1/zones/example.com/rrsets/txt/TXT", status: 404, golden: "rrset_delete_missing.json"},
		{name: "delete rrset If-Match on a missing set", method: "DELETE", path: "/v1/zones/example.com/rrsets/txt/TXT", header: map[string]string{"If-Match": "*"}, status: 412, golden: "rrset_delete_precondition.json"},
		{name: "delete apex NS", method: "DELETE", path: "/v1/zones/example.com/rrsets/@/NS", status: 400, golden: "rrset_delete_ns.json"},
		{name: "rrsets at a name", method: "GET", path: "/v1/zones/example.com/rrsets?name=www", status: 200, golden: "rrsets_www.json"},
		{name: "export", method: "GET", path: "/v1/zones/example.com/zonefile", status: 200, golden: "export.zone",
			check: func(t *testing.T, resp *http.Response, _ []byte) {
				if ct := resp.Header.Get("Content-Type"); ct != "text/dns" {
					t.Errorf("Content-Type %q", ct)
				}
			}},
		{name: "import", method: "PUT", path: "/v1/zones/example.org/zonefile", contentType: "text/dns", body: zoneText + "www IN A 192.0.2.80\n", status: 200, golden: "import.json"},
		{name: "import creates", method: "PUT", path: "/v1/zones/example.info/zonefile", body: strings.ReplaceAll(zoneText, "example.org", "example.info"), status: 200, golden: "import_create.json"},
		{name: "import invalid", method: "PUT", path: "/v1/zones/example.org/zonefile", body: zoneText + "ns1 IN CNAME www\n", status: 400, golden: "import_invalid.json"},
		{name: "import include", method: "PUT", path: "/v1/zones/example.org/zonefile", body: zoneText + "$INCLUDE /etc/passwd\n", status: 400, golden: "import_include.json"},
		{name: "import json", method: "PUT", path: "/v1/zones/example.org/zonefile", contentType: "application/json", body: `{}`, status: 415, golden: "import_media_type.json"},
		{name: "method not allowed", method: "PATCH", path: "/v1/zones/example.com", status: 405, golden: "method.json",
			check: func(t *testing.T, resp *http.Response, _ []byte) {
				if a := resp.Header.Get("Allow"); a != "GET, DELETE" {
					t.Errorf("Allow %q", a)
				}
			}},
		{name: "unknown path", method: "GET", path: "/v2/zones", status: 404, golden: "unknown_path.json"},
		{name: "delete zone", method: "DELETE", path: "/v1/zones/example.info", status: 204},
		{name: "delete zone again", method: "DELETE", path: "/v1/zones/example.info", status: 404, golden: "delete_missing.json"},
	}
	names := map[string]bool{}
	for _, c := range calls {
		if names[c.name] {
			t.Fatalf("two calls named %q", c.name)
		}
		names[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			resp, body := do(t, srv.URL, c)
			if resp.StatusCode != c.status {
				t.Errorf("status %d, want %d; body %s", resp.StatusCode, c.status, body)
			}
			if c.status >= 400 && resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("error with Content-Type %q", resp.Header.Get("Content-Type"))
			}
			if c.golden == "" {
				if len(body) != 0 {
					t.Errorf("body %q, want none", body)
				}
			} else {
				golden(t, c.golden, body)
			}
			if c.check != nil {
				c.check(t, resp, body)
			}
		})
	}

	// A read-modify-write with the ETag of a GET succeeds once, then the
	// same tag is stale.
	put := call{method: "PUT", path: "/v1/zones/example.com/rrsets/www/A", header: map[string]string{"If-Match": wwwTag}, body: `{"ttl":300,"records":["192.0.2.12"]}`}
	if resp, body := do(t, srv.URL, put); resp.StatusCode != 200 {
		t.Errorf("PUT with the current ETag: %d %s", resp.StatusCode, body)
	} else {
		var res api.WriteResult
		if err := json.Unmarshal(body, &res); err != nil {
			t.Fatal(err)
		}
		get := call{method: "GET", path: "/v1/zones/example.com/rrsets/www/A"}
		gresp, _ := do(t, srv.URL, get)
		etag(resp.Header.Get("ETag"))(t, gresp, nil)
	}
	if resp, body := do(t, srv.URL, put); resp.StatusCode != 412 {
		t.Errorf("PUT with a stale ETag: %d %s", resp.StatusCode, body)
	}
}

// TestConcurrentReadModifyWrite increments a counter from many clients at
// once, each with GET, then PUT with If-Match, retrying on 412: the final
// count is exact.
func TestConcurrentReadModifyWrite(t *testing.T) {
	srv, _ := server(t, 0)
	if resp, body := do(t, srv.URL, call{method: "POST", path: "/v1/zones", body: zoneJSON}); resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	const clients, increments = 6, 15
	path := "/v1/zones/example.com/rrsets/counter/TXT"
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	var conflicts sync.Map
	for c := range clients {
		wg.Go(func() {
			for i := 0; i < increments; {
				n := 0
				get := call{method: "GET", path: path}
				resp, body := do(t, srv.URL, get)
				hdr := map[string]string{"If-None-Match": "*"}
				switch resp.StatusCode {
				case 200:
					var set api.RRset
					if err := json.Unmarshal(body, &set); err != nil {
						errs <- err
						return
					}
					if _, err := fmt.Sscanf(set.Records[0], `"%d"`, &n); err != nil {
						errs <- fmt.Errorf("counter %q: %w", set.Records[0], err)
						return
					}
					hdr = map[string]string{"If-Match": resp.Header.Get("ETag")}
				case 404:
				default:
					errs <- fmt.Errorf("GET: %d %s", resp.StatusCode, body)
					return
				}
				put := call{method: "PUT", path: path, header: hdr, body: fmt.Sprintf(`{"ttl":60,"records":["\"%d\""]}`, n+1)}
				resp, body = do(t, srv.URL, put)
				switch resp.StatusCode {
				case 200:
					i++
				case 412:
					v, _ := conflicts.LoadOrStore(c, new(int))
					*v.(*int)++
				default:
					errs <- fmt.Errorf("PUT: %d %s", resp.StatusCode, body)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	resp, body := do(t, srv.URL, call{method: "GET", path: path})
	var set api.RRset
	if err := json.Unmarshal(body, &set); err != nil || resp.StatusCode != 200 {
		t.Fatalf("final GET: %d %s", resp.StatusCode, body)
	}
	if want := fmt.Sprintf(`"%d"`, clients*increments); set.Records[0] != want {
		t.Errorf("counter %s, want %s", set.Records[0], want)
	}
	total := 0
	conflicts.Range(func(_, v any) bool { total += *v.(*int); return true })
	t.Logf("%d increments, %d retries after 412", clients*increments, total)
}
