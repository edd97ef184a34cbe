package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/anycastdns/anycastdns/internal/api"
)

const weightedPool = `{"ttl": 20, "policy": ["up", "weighted"], "endpoints": [
	{"address": "192.0.2.1", "weight": 70, "region": "eu"},
	{"address": "192.0.2.2", "weight": 30, "region": "us", "capacity": 100}]}`

func mustStatus(t *testing.T, base string, c call) []byte {
	t.Helper()
	resp, body := do(t, base, c)
	if resp.StatusCode != c.status {
		t.Fatalf("%s %s: status %d, want %d: %s", c.method, c.path, resp.StatusCode, c.status, body)
	}
	return body
}

// TestPools: a pool is defined, read, listed beside a second one at the
// same name, exported with the zone as its TypePool record, and deleted;
// each type at a name is its own pool.
func TestPools(t *testing.T) {
	srv, _ := server(t, 1<<20)
	mustStatus(t, srv.URL, call{method: "POST", path: "/v1/zones", body: zoneJSON, contentType: "application/json", status: 201})

	var w api.PoolWrite
	body := mustStatus(t, srv.URL, call{method: "PUT", path: "/v1/zones/example.com/pools/svc/A", body: weightedPool, status: 200})
	if err := json.Unmarshal(body, &w); err != nil {
		t.Fatal(err)
	}
	if w.Serial == 0 || w.Pool.Name != "svc.example.com." || w.Pool.Type != "A" || w.Pool.TTL != 20 || len(w.Pool.Endpoints) != 2 ||
		*w.Pool.Endpoints[0].Weight != 70 || w.Pool.Endpoints[1].Capacity != 100 {
		t.Fatalf("stored %s", body)
	}
	mustStatus(t, srv.URL, call{method: "PUT", path: "/v1/zones/example.com/pools/svc/aaaa",
		body: `{"ttl": 60, "endpoints": [{"address": "2001:db8::1"}]}`, status: 200})

	var p api.Pool
	if err := json.Unmarshal(mustStatus(t, srv.URL, call{method: "GET", path: "/v1/zones/example.com/pools/svc.example.com./A", status: 200}), &p); err != nil {
		t.Fatal(err)
	}
	if p.TTL != 20 || strings.Join(p.Policy, ",") != "up,weighted" || p.Endpoints[0].Region != "eu" {
		t.Fatalf("got %+v", p)
	}
	var list api.PoolList
	if err := json.Unmarshal(mustStatus(t, srv.URL, call{method: "GET", path: "/v1/zones/example.com/pools", status: 200}), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Pools) != 2 || list.Pools[0].Type != "A" || list.Pools[1].Type != "AAAA" || list.Pools[1].TTL != 60 {
		t.Fatalf("list %+v", list)
	}
	// The pools replicate as records of the zone: in its text, in its
	// transfers.
	text := string(mustStatus(t, srv.URL, call{method: "GET", path: "/v1/zones/example.com/zonefile", status: 200}))
	if n := strings.Count(text, "TYPE65320"); n != 2 {
		t.Fatalf("%d pool records in the zone file:\n%s", n, text)
	}
	// Replacing one pool keeps the other.
	mustStatus(t, srv.URL, call{method: "PUT", path: "/v1/zones/example.com/pools/svc/A",
		body: `{"ttl": 5, "policy": ["first-n"], "endpoints": [{"name": "edge.example.net"}]}`, status: 200})
	if err := json.Unmarshal(mustStatus(t, srv.URL, call{method: "GET", path: "/v1/zones/example.com/pools/svc/A", status: 200}), &p); err != nil {
		t.Fatal(err)
	}
	if p.TTL != 5 || p.Endpoints[0].Name != "edge.example.net." {
		t.Fatalf("replaced: %+v", p)
	}
	mustStatus(t, srv.URL, call{method: "GET", path: "/v1/zones/example.com/pools/svc/AAAA", status: 200})

	mustStatus(t, srv.URL, call{method: "DELETE", path: "/v1/zones/example.com/pools/svc/A", status: 200})
	mustStatus(t, srv.URL, call{method: "GET", path: "/v1/zones/example.com/pools/svc/A", status: 404})
	mustStatus(t, srv.URL, call{method: "DELETE", path: "/v1/zones/example.com/pools/svc/A", status: 404})
	mustStatus(t, srv.URL, call{method: "DELETE", path: "/v1/zones/example.com/pools/svc/AAAA", status: 200})
	if err := json.Unmarshal(mustStatus(t, srv.URL, call{method: "GET", path: "/v1/zones/example.com/pools", status: 200}), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Pools) != 0 {
		t.Fatalf("left %+v", list)
	}
}

// TestPoolErrors: bad pools are refused naming the field; pools are
// written only through their endpoints; a signed zone refuses them.
func TestPoolErrors(t *testing.T) {
	srv, _ := server(t, 1<<20)
	mustStatus(t, srv.URL, call{method: "POST", path: "/v1/zones", body: zoneJSON, contentType: "application/json", status: 201})
	mustStatus(t, srv.URL, call{method: "PUT", path: "/v1/zones/signed.example/zonefile", body: signedText, status: 200})
	mustStatus(t, srv.URL, call{method: "PUT", path: "/v1/zones/example.com/rrsets/alias/CNAME", body: `{"records": ["www"]}`, contentType: "application/json", status: 200})
	tests := []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"type", "PUT", "/v1/zones/example.com/pools/svc/MX", weightedPool, 400, "type MX: a pool steers A or AAAA"},
		{"family", "PUT", "/v1/zones/example.com/pools/svc/AAAA", weightedPool, 400, "endpoints[0].address 192.0.2.1: not an address of type AAAA"},
		{"policy", "PUT", "/v1/zones/example.com/pools/svc/A", `{"policy": ["nearest"], "endpoints": [{"address": "192.0.2.1"}]}`, 400, "unknown (one of up, geo, latency"},
		{"no endpoints", "PUT", "/v1/zones/example.com/pools/svc/A", `{"ttl": 5}`, 400, "endpoints: 0 given"},
		{"bad address", "PUT", "/v1/zones/example.com/pools/svc/A", `{"endpoints": [{"address": "192.0.2"}]}`, 400, "invalid JSON"},
		{"unknown field", "PUT", "/v1/zones/example.com/pools/svc/A", `{"endpoints": [{"address": "192.0.2.1"}], "ttl2": 3}`, 400, "ttl2"},
		{"other name", "PUT", "/v1/zones/example.com/pools/svc/A", `{"name": "www", "endpoints": [{"address": "192.0.2.1"}]}`, 400, "not the name of the path"},
		{"outside the zone", "PUT", "/v1/zones/example.com/pools/svc.example.net./A", weightedPool, 400, "not in zone"},
		{"no zone", "PUT", "/v1/zones/example.net/pools/svc/A", weightedPool, 404, "example.net"},
		{"raw write", "PUT", "/v1/zones/example.com/rrsets/svc/TYPE65320", `{"records": ["\\# 3 000101"]}`, 400, "holds pools: write them through /v1/zones/example.com./pools/svc.example.com./{A,AAAA}"},
		{"signed zone", "PUT", "/v1/zones/signed.example/pools/svc/A", weightedPool, 409, "zone signed.example. is DNSSEC-signed elsewhere (imported signed): a steered answer would not validate"},
		{"beside a CNAME", "PUT", "/v1/zones/example.com/pools/alias/A", weightedPool, 400, "CNAME"},
		{"none", "GET", "/v1/zones/example.com/pools/www/A", "", 404, "rrset www.example.com. TYPE65320"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := do(t, srv.URL, call{method: tt.method, path: tt.path, body: tt.body, contentType: "application/json"})
			if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.want) {
				t.Fatalf("status %d %s, want %d with %q", resp.StatusCode, body, tt.status, tt.want)
			}
		})
	}
	var list api.PoolList
	if err := json.Unmarshal(mustStatus(t, srv.URL, call{method: "GET", path: "/v1/zones/example.com/pools", status: http.StatusOK}), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Pools) != 0 {
		t.Fatalf("a refused write left %+v", list)
	}
}
