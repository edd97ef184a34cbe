package steer

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func w(n uint32) *uint32 { return &n }

func mustEncode(t testing.TB, typ uint16, p Pool) []byte {
	t.Helper()
	rd, err := Encode(typ, p)
	if err != nil {
		t.Fatal(err)
	}
	return rd
}

func addrs(d *Decision) string {
	var out []string
	for i := range d.Len() {
		e := d.Endpoint(i)
		if e.Address.IsValid() {
			out = append(out, e.Address.String())
		} else {
			out = append(out, e.Name)
		}
	}
	return strings.Join(out, " ")
}

func client(s string, ecs bool) Client {
	p := netip.MustParsePrefix(s)
	return NewClient(p.Addr(), p.Bits(), ecs)
}

func TestNewClientPrivacy(t *testing.T) {
	tests := []struct {
		addr string
		bits int
		want string
	}{
		{"198.51.100.77", 32, "198.51.100.0/24"},
		{"198.51.100.77", 20, "198.51.96.0/20"},
		{"2001:db8:1:2345:3::1", 128, "2001:db8:1:2300::/56"},
		{"2001:db8:1:2:3::1", 48, "2001:db8:1::/48"},
		{"::ffff:198.51.100.77", 32, "198.51.100.0/24"},
		{"198.51.100.77", 0, "0.0.0.0/0"},
	}
	for _, tt := range tests {
		c := NewClient(netip.MustParseAddr(tt.addr), tt.bits, true)
		if got := netip.PrefixFrom(c.Addr, int(c.Bits)).String(); got != tt.want {
			t.Errorf("NewClient(%s, %d) = %s, want %s", tt.addr, tt.bits, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	a := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	tests := []struct {
		name string
		typ  uint16
		p    Pool
		want string // part of the error; "" = valid
	}{
		{"ok", dns.TypeA, Pool{TTL: 30, Policy: []string{"up", "weighted"}, Endpoints: []Endpoint{{Address: a("192.0.2.1")}}}, ""},
		{"name", dns.TypeAAAA, Pool{Endpoints: []Endpoint{{Name: "a.example.net"}}}, ""},
		{"type", dns.TypeMX, Pool{Endpoints: []Endpoint{{Address: a("192.0.2.1")}}}, "steers A or AAAA"},
		{"family", dns.TypeA, Pool{Endpoints: []Endpoint{{Address: a("2001:db8::1")}}}, "endpoints[0].address 2001:db8::1: not an address of type A"},
		{"mapped", dns.TypeAAAA, Pool{Endpoints: []Endpoint{{Address: a("::ffff:192.0.2.1")}}}, "not an address of type AAAA"},
		{"policy", dns.TypeA, Pool{Policy: []string{"random"}, Endpoints: []Endpoint{{Address: a("192.0.2.1")}}}, `policy[0] "random": unknown`},
		{"twice", dns.TypeA, Pool{Policy: []string{"up", "up"}, Endpoints: []Endpoint{{Address: a("192.0.2.1")}}}, `policy[1] "up": given twice`},
		{"none", dns.TypeA, Pool{}, "endpoints: 0 given"},
		{"both", dns.TypeA, Pool{Endpoints: []Endpoint{{Address: a("192.0.2.1"), Name: "x."}}}, "address and name both given"},
		{"empty", dns.TypeA, Pool{Endpoints: []Endpoint{{}}}, "an address or a name is needed"},
		{"dup", dns.TypeA, Pool{Endpoints: []Endpoint{{Address: a("192.0.2.1")}, {Address: a("192.0.2.1")}}}, "endpoints[1]: 192.0.2.1 is endpoints[0] already"},
		{"capacity", dns.TypeA, Pool{Endpoints: []Endpoint{{Address: a("192.0.2.1"), Capacity: -1}}}, "capacity -1"},
		{"ttl", dns.TypeA, Pool{TTL: 1 << 31, Endpoints: []Endpoint{{Address: a("192.0.2.1")}}}, "ttl 2147483648"},
		{"firstn", dns.TypeA, Pool{FirstN: 65, Endpoints: []Endpoint{{Address: a("192.0.2.1")}}}, "first_n 65"},
		{"badname", dns.TypeA, Pool{Endpoints: []Endpoint{{Name: "a..b"}}}, "not a domain name"},
		{"regions ok", dns.TypeA, Pool{Regions: map[string]string{"198.51.100.0/24": "eu", "2001:db8::/32": "us"}, Endpoints: []Endpoint{{Address: a("192.0.2.1")}}}, ""},
		{"regions prefix", dns.TypeA, Pool{Regions: map[string]string{"198.51.100.0": "eu"}, Endpoints: []Endpoint{{Address: a("192.0.2.1")}}}, `regions "198.51.100.0": not a prefix`},
		{"regions host bits", dns.TypeA, Pool{Regions: map[string]string{"198.51.100.1/24": "eu"}, Endpoints: []Endpoint{{Address: a("192.0.2.1")}}}, "host bits set or not a plain IPv4/IPv6 prefix (198.51.100.0/24?)"},
		{"regions empty region", dns.TypeA, Pool{Regions: map[string]string{"198.51.100.0/24": ""}, Endpoints: []Endpoint{{Address: a("192.0.2.1")}}}, `region "": 1 to 63 characters`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate(tt.typ)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			case tt.want != "" && !errors.Is(err, ErrInvalid):
				t.Fatalf("error %v is not ErrInvalid", err)
			}
		})
	}
}

func TestEncodeDecode(t *testing.T) {
	p := Pool{TTL: 20, Policy: []string{"up", "first-n"}, FirstN: 2, Endpoints: []Endpoint{
		{Address: netip.MustParseAddr("192.0.2.1"), Weight: w(3), Region: "eu", Capacity: 10},
		{Name: "b.example.net"},
	}}
	rd := mustEncode(t, dns.TypeA, p)
	if RdataType(rd) != dns.TypeA {
		t.Fatalf("type %d", RdataType(rd))
	}
	typ, got, err := Decode(rd)
	if err != nil || typ != dns.TypeA {
		t.Fatal(typ, err)
	}
	if got.Endpoints[1].Name != "b.example.net." || *got.Endpoints[0].Weight != 3 || got.FirstN != 2 {
		t.Fatalf("decoded %+v", got)
	}
	for _, bad := range [][]byte{nil, {0, 1}, {0, 1, 2, '{', '}'}, append([]byte{0, 1, 1}, "{"...), append([]byte{0, 1, 1}, `{"endpoints":[]}`...)} {
		if _, _, err := Decode(bad); err == nil {
			t.Errorf("Decode(%q) accepted", bad)
		}
	}
}

// testState: endpoints a (eu), b (us), c (ap); the map puts
// 198.51.100.0/24 in eu, 203.0.113.0/24 in us, 2001:db8:ab::/48 in ap,
// 192.0.0.0/8 in us with 192.0.2.0/24 in eu inside it, 100.64.0.0/10 in ap.
func testState(t testing.TB) *State {
	t.Helper()
	g, err := NewGeoMap(map[netip.Prefix]string{
		netip.MustParsePrefix("198.51.100.0/24"):  "eu",
		netip.MustParsePrefix("203.0.113.0/24"):   "us",
		netip.MustParsePrefix("2001:db8:ab::/48"): "ap",
		netip.MustParsePrefix("192.0.0.0/8"):      "us",
		netip.MustParsePrefix("192.0.2.0/24"):     "eu",
		netip.MustParsePrefix("100.64.0.0/10"):    "ap",
	})
	if err != nil {
		t.Fatal(err)
	}
	return &State{
		Geo:       g,
		Endpoints: map[string]EndpointState{},
		RTT: map[string]map[string]time.Duration{
			"eu": {"10.0.0.1": 30 * time.Millisecond, "10.0.0.2": 10 * time.Millisecond, "10.0.0.3": 80 * time.Millisecond},
			"us": {"10.0.0.1": 90 * time.Millisecond, "10.0.0.2": 40 * time.Millisecond, "10.0.0.3": 40 * time.Millisecond},
		},
	}
}

var threeEndpoints = []Endpoint{
	{Address: netip.MustParseAddr("10.0.0.1"), Region: "eu", Capacity: 100},
	{Address: netip.MustParseAddr("10.0.0.2"), Region: "us", Capacity: 10},
	{Address: netip.MustParseAddr("10.0.0.3"), Region: "ap"},
}

func TestDecide(t *testing.T) {
	down := func(keys ...string) func(*State) {
		return func(s *State) {
			for _, k := range keys {
				s.Endpoints[k] = EndpointState{Down: true}
			}
		}
	}
	load := func(l1, l2, l3 float64) func(*State) {
		return func(s *State) {
			for i, l := range []float64{l1, l2, l3} {
				if l >= 0 {
					s.Endpoints[threeEndpoints[i].Key()] = EndpointState{Load: l, HasLoad: true}
				}
			}
		}
	}
	tests := []struct {
		name   string
		policy []string
		firstN int
		state  func(*State)
		client Client
		want   string
		scope  uint8
	}{
		{"no chain", nil, 0, nil, client("198.51.100.0/24", true), "10.0.0.1 10.0.0.2 10.0.0.3", 0},
		{"up", []string{"up"}, 0, down("10.0.0.2"), client("198.51.100.0/24", true), "10.0.0.1 10.0.0.3", 0},
		{"up fails open", []string{"up"}, 0, down("10.0.0.1", "10.0.0.2", "10.0.0.3"), client("198.51.100.0/24", true), "10.0.0.1 10.0.0.2 10.0.0.3", 0},
		{"geo eu", []string{"geo"}, 0, nil, client("198.51.100.0/24", true), "10.0.0.1", 24},
		{"geo us by a nested /8", []string{"geo"}, 0, nil, client("192.0.5.0/24", true), "10.0.0.2", 24},
		{"geo nested eu", []string{"geo"}, 0, nil, client("192.0.2.0/24", true), "10.0.0.1", 24},
		{"geo /16 inside a nested /8", []string{"geo"}, 0, nil, client("192.1.0.0/16", true), "10.0.0.2", 16},
		{"geo v6 ap", []string{"geo"}, 0, nil, client("2001:db8:ab:cd::/64", true), "10.0.0.3", 48},
		{"geo by a /10", []string{"geo"}, 0, nil, client("100.65.7.0/24", true), "10.0.0.3", 10},
		{"geo unknown keeps all", []string{"geo"}, 0, nil, client("100.128.0.0/24", true), "10.0.0.1 10.0.0.2 10.0.0.3", 24},
		{"geo short source", []string{"geo"}, 0, nil, client("198.51.0.0/16", true), "10.0.0.1 10.0.0.2 10.0.0.3", 16},
		{"geo region down", []string{"up", "geo"}, 0, down("10.0.0.1"), client("198.51.100.0/24", true), "10.0.0.2 10.0.0.3", 24},
		{"latency eu", []string{"latency"}, 0, nil, client("198.51.100.0/24", true), "10.0.0.2", 24},
		{"latency us tie", []string{"latency"}, 0, nil, client("203.0.113.0/24", true), "10.0.0.2 10.0.0.3", 24},
		{"latency no row", []string{"latency"}, 0, nil, client("2001:db8:ab::/56", true), "10.0.0.1 10.0.0.2 10.0.0.3", 48},
		{"latency after up", []string{"up", "latency"}, 0, down("10.0.0.2"), client("198.51.100.0/24", true), "10.0.0.1", 24},
		{"least-load", []string{"least-load"}, 0, load(50, 10, -1), client("198.51.100.0/24", true), "10.0.0.1", 0},
		{"least-load unknown", []string{"least-load"}, 0, nil, client("198.51.100.0/24", true), "10.0.0.1 10.0.0.2 10.0.0.3", 0},
		{"least-load raw", []string{"least-load"}, 0, load(-1, -1, 3), client("198.51.100.0/24", true), "10.0.0.3", 0},
		{"first-n", []string{"first-n"}, 2, nil, client("198.51.100.0/24", true), "10.0.0.1 10.0.0.2", 0},
		{"first-n default", []string{"up", "first-n"}, 0, down("10.0.0.1"), client("198.51.100.0/24", true), "10.0.0.2", 0},
		{"weighted scope", []string{"weighted"}, 0, nil, client("198.51.100.0/24", true), "", 24},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testState(t)
			if tt.state != nil {
				tt.state(s)
			}
			c := Compile(mustEncode(t, dns.TypeA, Pool{TTL: 30, Policy: tt.policy, FirstN: tt.firstN, Endpoints: threeEndpoints}))
			if c.Err() != nil {
				t.Fatal(c.Err())
			}
			var d Decision
			Decide(c, s, tt.client, &d)
			got := addrs(&d)
			if tt.want != "" && got != tt.want {
				t.Errorf("endpoints %q, want %q", got, tt.want)
			}
			if tt.want == "" && d.Len() != 1 {
				t.Errorf("endpoints %q, want one", got)
			}
			if d.Scope != tt.scope {
				t.Errorf("scope %d, want %d", d.Scope, tt.scope)
			}
		})
	}
}

// TestWeightedSplit: a 70/30 pool over 10,000 client subnets gives each
// endpoint its share within ±2 points, and one subnet always the same
// endpoint.
func TestWeightedSplit(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		t.Run(fmt.Sprintf("v6=%v", v6), func(t *testing.T) {
			c := Compile(mustEncode(t, dns.TypeA, Pool{Policy: []string{"up", "weighted"}, Endpoints: []Endpoint{
				{Address: netip.MustParseAddr("192.0.2.1"), Weight: w(70)},
				{Address: netip.MustParseAddr("192.0.2.2"), Weight: w(30)},
			}}))
			count := map[string]int{}
			var d Decision
			const n = 10000
			for i := range n {
				var cl Client
				if v6 {
					cl = client(fmt.Sprintf("2001:db8:%x:%x00::/56", i>>8, i&0xff), true)
				} else {
					cl = client(fmt.Sprintf("10.%d.%d.0/24", i>>8, i&0xff), true)
				}
				Decide(c, nil, cl, &d)
				first := addrs(&d)
				count[first]++
				for range 3 {
					Decide(c, nil, cl, &d)
					if got := addrs(&d); got != first {
						t.Fatalf("client %v: %s then %s", cl, first, got)
					}
				}
			}
			share := float64(count["192.0.2.1"]) / n * 100
			if share < 68 || share > 72 {
				t.Errorf("70%% endpoint got %.2f%% (%v)", share, count)
			}
			t.Logf("70/30 split: %.2f%% / %.2f%%", share, 100-share)
		})
	}
}

// TestWeightedZero: weight 0 is never picked while another has weight.
func TestWeightedZero(t *testing.T) {
	c := Compile(mustEncode(t, dns.TypeA, Pool{Policy: []string{"weighted"}, Endpoints: []Endpoint{
		{Address: netip.MustParseAddr("192.0.2.1"), Weight: w(0)},
		{Address: netip.MustParseAddr("192.0.2.2"), Weight: w(5)},
	}}))
	var d Decision
	for i := range 500 {
		Decide(c, nil, client(fmt.Sprintf("10.0.%d.0/24", i%256), true), &d)
		if addrs(&d) != "192.0.2.2" {
			t.Fatalf("picked %s", addrs(&d))
		}
	}
}

// TestSamePoolSameAnswer: two engines (two PoPs) decide alike.
func TestSamePoolSameAnswer(t *testing.T) {
	rd := mustEncode(t, dns.TypeA, Pool{Policy: []string{"up", "geo", "weighted"}, Endpoints: threeEndpoints})
	e1, e2 := NewEngine(), NewEngine()
	e1.SetState(testState(t))
	e2.SetState(testState(t))
	var d1, d2 Decision
	for i := range 1000 {
		cl := client(fmt.Sprintf("10.%d.%d.0/24", i>>8, i&0xff), true)
		if !e1.Decide(rd, cl, &d1) || !e2.Decide(append([]byte(nil), rd...), cl, &d2) {
			t.Fatal("pool refused")
		}
		if addrs(&d1) != addrs(&d2) || d1.Scope != d2.Scope {
			t.Fatalf("%v: %s/%d against %s/%d", cl, addrs(&d1), d1.Scope, addrs(&d2), d2.Scope)
		}
	}
}

// TestPoolRegions: a pool's own region map places the client, over the
// State's; a pool without one uses the State's.
func TestPoolRegions(t *testing.T) {
	own := Compile(mustEncode(t, dns.TypeA, Pool{Policy: []string{"geo"}, Endpoints: threeEndpoints,
		Regions: map[string]string{"198.51.0.0/16": "us", "198.51.100.128/25": "ap", "10.0.0.0/8": "eu"}}))
	state := Compile(mustEncode(t, dns.TypeA, Pool{Policy: []string{"geo"}, Endpoints: threeEndpoints}))
	tests := []struct {
		c      *Compiled
		client Client
		want   string
		scope  uint8
	}{
		{own, client("198.51.100.0/24", true), "10.0.0.2", 24}, // the /16 holds a /25: the answer holds for the /24
		{own, client("198.51.7.0/24", true), "10.0.0.2", 24},
		{own, client("10.9.9.0/24", true), "10.0.0.1", 8},
		{own, client("203.0.113.0/24", true), "10.0.0.1 10.0.0.2 10.0.0.3", 24},
		{state, client("198.51.100.0/24", true), "10.0.0.1", 24},
		{state, client("203.0.113.0/24", true), "10.0.0.2", 24},
	}
	for _, tt := range tests {
		var d Decision
		Decide(tt.c, testState(t), tt.client, &d)
		if got := addrs(&d); got != tt.want || d.Scope != tt.scope {
			t.Errorf("%v: %q scope %d, want %q scope %d", tt.client, got, d.Scope, tt.want, tt.scope)
		}
	}
}

// TestEngineCache: with far more pools than the cache holds, from several
// goroutines at once, every decision is the one of its own pool, and a
// pool in steady use is found without compiling it again.
func TestEngineCache(t *testing.T) {
	e := NewEngine()
	const n = 3 * cacheSlots * 2
	rds := make([][]byte, n)
	for i := range rds {
		rds[i] = mustEncode(t, dns.TypeA, Pool{TTL: uint32(i), Endpoints: []Endpoint{{Address: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})}}})
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var d Decision
			for k := range n {
				i := (k*7 + g*1013) % n
				if !e.Decide(rds[i], Client{}, &d) || d.TTL() != uint32(i) {
					t.Errorf("pool %d: decided with TTL %d", i, d.TTL())
					return
				}
			}
		}()
	}
	wg.Wait()
	// 20 pools in steady use are compiled once each (evicting one needs
	// three of them in one of 8,192 sets: odds of about 1 in 60,000).
	e = NewEngine()
	var d Decision
	for range 50 {
		for _, rd := range rds[:20] {
			e.Decide(rd, Client{}, &d)
		}
	}
	if got := e.Compiles(); got != 20 {
		t.Fatalf("%d compiles for 20 pools", got)
	}
}

func TestEngineBadPool(t *testing.T) {
	e := NewEngine()
	var d Decision
	if e.Decide([]byte{0, 1, 9, '{'}, Client{}, &d) {
		t.Fatal("bad pool used")
	}
	if e.Pool([]byte{0, 1, 9, '{'}).Err() == nil {
		t.Fatal("no error kept")
	}
}

func TestGeoMapErrors(t *testing.T) {
	for _, m := range []map[netip.Prefix]string{
		{netip.MustParsePrefix("192.0.2.1/24"): "eu"},
		{netip.MustParsePrefix("192.0.2.0/24"): ""},
		{{}: "eu"},
	} {
		if _, err := NewGeoMap(m); err == nil {
			t.Errorf("NewGeoMap(%v) accepted", m)
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	chains := map[string][]string{
		"up+geo+weighted":    {"up", "geo", "weighted"},
		"up+latency+first-n": {"up", "latency", "first-n"},
		"least-load":         {"least-load"},
	}
	e := NewEngine()
	e.SetState(testState(b))
	cl := client("198.51.100.0/24", true)
	for name, chain := range chains {
		rd := mustEncode(b, dns.TypeA, Pool{Policy: chain, Endpoints: threeEndpoints})
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var d Decision
			for b.Loop() {
				if !e.Decide(rd, cl, &d) || d.Len() == 0 {
					b.Fatal("no decision")
				}
			}
		})
	}
}

func TestDecideAllocs(t *testing.T) {
	e := NewEngine()
	e.SetState(testState(t))
	rd := mustEncode(t, dns.TypeA, Pool{Policy: []string{"up", "geo", "latency", "least-load", "weighted", "first-n"}, Endpoints: threeEndpoints})
	cl := client("198.51.100.0/24", true)
	var d Decision
	e.Decide(rd, cl, &d)
	if n := testing.AllocsPerRun(100, func() { e.Decide(rd, cl, &d) }); n != 0 {
		t.Fatalf("%v allocations per decision", n)
	}
}

func TestCheck(t *testing.T) {
	ep := []Endpoint{{Address: netip.MustParseAddr("192.0.2.1")}}
	tests := []struct {
		name string
		json string
		want string // "" = valid
	}{
		{"http defaults", `{"type":"http"}`, ""},
		{"https full", `{"type":"https","port":8443,"path":"/health","host":"svc.example","status":204,"body":"ok","insecure":true,
			"interval":"250ms","timeout":"100ms","rise":2,"fall":2,"quorum":2,"load":{"type":"json","url":"http://{address}:9000/load","field":"conns.open"}}`, ""},
		{"tcp", `{"type":"tcp","port":443,"interval":"1s"}`, ""},
		{"dns", `{"type":"dns","query":"svc.example.","query_type":"a"}`, ""},
		{"prometheus load", `{"type":"tcp","port":22,"load":{"type":"prometheus","url":"https://[2001:db8::1]/metrics","metric":"http_inflight{job=\"web\"}"}}`, ""},
		{"type", `{"type":"icmp"}`, `check.type "icmp": http, https, tcp or dns`},
		{"tcp without port", `{"type":"tcp"}`, "check.port: required for a tcp check"},
		{"dns without query", `{"type":"dns"}`, "check.query: the name a dns check asks for is required"},
		{"dns bad type", `{"type":"dns","query":"x.","query_type":"BOGUS"}`, `check.query_type "BOGUS": unknown type`},
		{"http fields on tcp", `{"type":"tcp","port":1,"path":"/x"}`, "path, host, status, body and insecure are for http and https checks"},
		{"path", `{"type":"http","path":"health"}`, `check.path "health": an absolute path`},
		{"status", `{"type":"http","status":99}`, "check.status 99"},
		{"interval", `{"type":"http","interval":"10ms"}`, "check.interval 10ms: 100ms to 1h0m0s"},
		{"timeout", `{"type":"http","interval":"1s","timeout":"1s"}`, "check.timeout 1s: more than 0 and less than the interval (1s)"},
		{"rise", `{"type":"http","rise":101}`, "check.rise 101: 1 to 100"},
		{"quorum", `{"type":"http","quorum":-1}`, "check.quorum -1: 1 to 100"},
		{"load url", `{"type":"http","load":{"type":"json","url":"ftp://x/","field":"a"}}`, `check.load.url "ftp://x/"`},
		{"load field", `{"type":"http","load":{"type":"prometheus","url":"http://x/","field":"a"}}`, "a prometheus load needs metric"},
		{"load type", `{"type":"http","load":{"type":"snmp","url":"http://x/"}}`, `check.load.type "snmp"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Check
			if err := json.Unmarshal([]byte(tt.json), &c); err != nil {
				t.Fatal(err)
			}
			p := Pool{Endpoints: ep, Check: &c}
			err := p.Validate(dns.TypeA)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if err == nil {
				// It survives the pool record.
				rd := mustEncode(t, dns.TypeA, p)
				if _, back, err := Decode(rd); err != nil || back.Check == nil || !reflect.DeepEqual(back.Check.WithDefaults(), c.WithDefaults()) {
					t.Fatalf("round trip: %+v %v", back.Check, err)
				}
			}
		})
	}
	d := Check{Type: "https"}.WithDefaults()
	if d.Port != 443 || d.Path != "/" || d.Status != 200 || d.Interval.Duration != 5*time.Second || d.Timeout.Duration != 2*time.Second ||
		d.Rise != 2 || d.Fall != 3 || d.Quorum != 2 {
		t.Fatalf("defaults %+v", d)
	}
	var bad Check
	if err := json.Unmarshal([]byte(`{"type":"http","interval":5}`), &bad); err == nil || !strings.Contains(err.Error(), `a duration is a string such as "5s"`) {
		t.Fatalf("numeric interval: %v", err)
	}
}
