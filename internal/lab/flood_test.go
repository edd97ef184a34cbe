package lab

import (
	"bytes"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestFloodTopology(t *testing.T) {
	topo, err := FloodTopology()
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../../examples/lab/flood.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(example, FloodTopologyYAML()) {
		t.Error("examples/lab/flood.yaml differs from internal/lab/flood.yaml: copy one over the other")
	}
	// Every PoP hangs off a plain veth (no wire on the flood's path);
	// the clients keep the default lab's delays.
	p := newPlan("t", topo)
	for _, k := range p.links {
		a, b := p.byName[k.A.Node], p.byName[k.B.Node]
		switch {
		case a.Role == RolePoP || b.Role == RolePoP:
			if k.Wired() {
				t.Errorf("link %s is wired (%+v), want a plain veth", k.Name, k.Spec)
			}
		case a.Role == RoleClient || b.Role == RoleClient:
			if k.Spec.Delay != 5*time.Millisecond {
				t.Errorf("link %s delay %s, want the default lab's 5ms", k.Name, k.Spec.Delay)
			}
		}
	}
	// The networks the scenario adds are none of the lab's, and none is
	// exempt from the PoPs' limits.
	exempt := p.labLimits().Source.Exempt
	for _, a := range []netip.Addr{attackerNet4.Addr(), attackerNet6.Addr(), floodSources()[255], victimAddr.Addr()} {
		for _, e := range exempt {
			if netip.MustParsePrefix(e).Contains(a) {
				t.Errorf("flood address %s is exempt (%s)", a, e)
			}
		}
		for _, n := range p.nodes {
			if n.Network4.Contains(a) || n.Network6.Contains(a) || n.Addr4 == a || n.Addr6 == a {
				t.Errorf("flood address %s belongs to %s", a, n.Name)
			}
		}
	}
}

func TestFloodSources(t *testing.T) {
	srcs := floodSources()
	if len(srcs) != 256 {
		t.Fatalf("%d sources, want 256", len(srcs))
	}
	seen56, seen64 := map[netip.Prefix]bool{}, map[netip.Prefix]bool{}
	for _, s := range srcs {
		if !attackerNet6.Contains(s) {
			t.Errorf("source %s outside %s", s, attackerNet6)
		}
		seen56[netip.PrefixFrom(s, 56).Masked()] = true
		seen64[netip.PrefixFrom(s, 64).Masked()] = true
	}
	if len(seen56) != 256 || len(seen64) != 256 {
		t.Errorf("sources in %d /56s and %d /64s, want 256 each (a bucket each in RRL and the source limiter)", len(seen56), len(seen64))
	}
}

func TestRoutesTowards(t *testing.T) {
	topo, err := FloodTopology()
	if err != nil {
		t.Fatal(err)
	}
	p := newPlan("t", topo)
	end := func(from, to string) [2]netip.Addr {
		for _, k := range p.links {
			if l, r, ok := k.End(from); ok && r.Node == to {
				_ = l
				return [2]netip.Addr{r.Addr4, r.Addr6}
			}
		}
		t.Fatalf("no link %s—%s", from, to)
		return [2]netip.Addr{}
	}
	for _, tc := range []struct {
		region string
		want   map[string]string // router → the neighbour it routes via
	}{
		{"A", map[string]string{"B-router": "A-router", "C-router": "B-router"}},
		{"C", map[string]string{"A-router": "B-router", "B-router": "C-router"}},
		{"B", map[string]string{"A-router": "B-router", "C-router": "B-router"}},
	} {
		routes, err := p.routesTowards(tc.region)
		if err != nil {
			t.Fatal(err)
		}
		if len(routes) != len(tc.want) {
			t.Errorf("towards %s: %d routes, want %d", tc.region, len(routes), len(tc.want))
		}
		for _, r := range routes {
			nb, ok := tc.want[r.Router]
			if !ok {
				t.Errorf("towards %s: route in %s, want none", tc.region, r.Router)
				continue
			}
			if got, want := [2]netip.Addr{r.Via4, r.Via6}, end(r.Router, nb); got != want {
				t.Errorf("towards %s: %s via %v, want %s's end %v", tc.region, r.Router, got, nb, want)
			}
		}
	}
	if _, err := p.routesTowards("Z"); err == nil {
		t.Error("routes towards a region that does not exist: no error")
	}
}

func TestRandomSubdomainQuery(t *testing.T) {
	q, err := randomSubdomainQuery()
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	names := map[string]bool{}
	for range 100 {
		fillRandomLabel(q, rnd)
		m := new(dns.Msg)
		if err := m.Unpack(q); err != nil {
			t.Fatalf("random-subdomain query does not parse: %v", err)
		}
		name := m.Question[0].Name
		if !dns.IsSubDomain(ZoneName, name) || dns.CountLabel(name) != dns.CountLabel(ZoneName)+1 || len(dns.SplitDomainName(name)[0]) != randomLabelLen {
			t.Fatalf("name %s: want one %d-letter label under %s", name, randomLabelLen, ZoneName)
		}
		if m.Response || m.RecursionDesired || m.IsEdns0() == nil {
			t.Fatalf("query flags: %v", m.MsgHdr)
		}
		names[name] = true
	}
	if len(names) < 99 {
		t.Errorf("%d different names in 100 queries", len(names))
	}
}

// TestGarbagePacket holds each kind of the garbage attack to what makes it
// garbage: none is a query the server would answer normally.
func TestGarbagePacket(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, 4096)
	for i := range 20 * len(garbageKinds) {
		kind := garbageKinds[i%len(garbageKinds)]
		b := garbagePacket(buf, i, rnd)
		m := new(dns.Msg)
		uerr := m.Unpack(b)
		var ok bool
		switch kind {
		case "short":
			ok = len(b) < 12
		case "response":
			ok = uerr == nil && m.Response
		case "random", "bad-label":
			ok = uerr != nil && len(b) >= 12 && b[2]&0x80 == 0
		case "two-questions":
			ok = len(b) >= 12 && b[5] == 2 && b[2]&0x80 == 0
		case "class-hs":
			ok = uerr == nil && !m.Response && len(m.Question) == 1 && m.Question[0].Qclass == dns.ClassHESIOD
		case "opcode-update":
			ok = uerr == nil && !m.Response && m.Opcode == dns.OpcodeUpdate
		default:
			t.Fatalf("kind %q untested", kind)
		}
		if !ok {
			t.Errorf("packet %d (%s) %x: not what its kind says (unpack: %v)", i, kind, b, uerr)
		}
	}
}

func TestReflectionQuery(t *testing.T) {
	q, err := reflectionQuery()
	if err != nil {
		t.Fatal(err)
	}
	m := new(dns.Msg)
	if err := m.Unpack(q); err != nil {
		t.Fatal(err)
	}
	if m.Question[0].Qtype != dns.TypeANY || m.Question[0].Name != ZoneName || m.IsEdns0().UDPSize() != 4096 {
		t.Errorf("reflection query %v: want %s ANY with EDNS 4096", m.Question, ZoneName)
	}
}

func TestFloodOptions(t *testing.T) {
	d := FloodOptions{}.withDefaults()
	if d.Duration != 20*time.Second || d.Rate != 10_000 || !slices.Equal(d.Attacks, FloodAttacks) || d.Validate() != nil {
		t.Errorf("defaults %+v (%v)", d, d.Validate())
	}
	for _, tc := range []struct {
		name string
		f    FloodOptions
		want string
	}{
		{"rate", FloodOptions{Rate: maxFloodRate + 1}, "flood rate"},
		{"negative rate", FloodOptions{Rate: -1}, "flood rate"},
		{"sweep rate", FloodOptions{Sweep: []int{1000, maxFloodRate * 2}}, "flood rate"},
		{"duration", FloodOptions{Duration: time.Hour}, "flood duration"},
		{"tcp open", FloodOptions{TCPOpen: maxTCPOpen + 1}, "open TCP"},
		{"attack", FloodOptions{Attacks: []string{"smurf"}}, `attack "smurf"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.f.withDefaults().Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate: %v, want an error with %q", err, tc.want)
			}
		})
	}
	if a, err := ParseAttacks("garbage, reflection"); err != nil || !slices.Equal(a, []string{"garbage", "reflection"}) {
		t.Errorf("ParseAttacks: %v %v", a, err)
	}
	if _, err := ParseAttacks("garbage,smurf"); err == nil {
		t.Error("ParseAttacks(smurf): no error")
	}
	if r, err := ParseRates("1000, 5000"); err != nil || !slices.Equal(r, []int{1000, 5000}) {
		t.Errorf("ParseRates: %v %v", r, err)
	}
	for _, bad := range []string{"0", "x", "1000,,2000", "9999999"} {
		if _, err := ParseRates(bad); err == nil {
			t.Errorf("ParseRates(%q): no error", bad)
		}
	}
}

func TestFloodViolations(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	good := func() *FloodResult {
		return &FloodResult{
			AttackRegion: "A",
			Lines: []FloodLine{
				{Attack: "none", Client: "A-client", Region: "A", Sent: 100, Answered: 90, P95MS: f(10), P95MSNormal: f(10)},
				{Attack: AttackGarbage, Client: "A-client", Region: "A", Sent: 1000, Answered: 990, P95MS: f(30), P95MSNormal: f(10), TCPSent: 10, TCPAnswered: 5},
				{Attack: AttackGarbage, Client: "B-client", Region: "B", Sent: 1000, Answered: 1000, P95MS: f(20), P95MSNormal: f(10), TCPSent: 10, TCPAnswered: 10},
				{Attack: AttackReflection, Client: "C-client", Region: "C", Sent: 1000, Answered: 1000, P95MS: f(10), P95MSNormal: f(10), Amplification: f(1.0)},
				{Attack: AttackRandomSubdomain, Sweep: true, Client: "A-client", Region: "A", Sent: 1000, Answered: 10, P95MS: f(300), P95MSNormal: f(10)},
			},
			PoPs: []FloodPoPLine{{PoP: "A-pop", RSSMBBefore: 40, RSSMBMax: 90, Announced: true}},
		}
	}
	if v := good().Violations(); len(v) != 0 {
		t.Fatalf("on the bounds: %q, want none", v)
	}
	for _, tc := range []struct {
		name   string
		change func(*FloodResult)
		want   string
	}{
		{"attacked region answered", func(r *FloodResult) { r.Lines[1].Answered = 989 }, "989 of 1000 answered"},
		{"attacked region p95", func(r *FloodResult) { r.Lines[1].P95MS = f(30.1) }, "above normal"},
		{"other region one lost", func(r *FloodResult) { r.Lines[2].Answered = 999 }, "want all"},
		{"other region p95", func(r *FloodResult) { r.Lines[2].P95MS = f(20.1) }, "above normal"},
		{"other region TCP", func(r *FloodResult) { r.Lines[2].TCPAnswered = 9 }, "TCP queries"},
		{"no p95", func(r *FloodResult) { r.Lines[3].P95MS = nil }, "no p95"},
		{"nothing sent", func(r *FloodResult) { r.Lines[1].Sent, r.Lines[1].Answered = 0, 0 }, "0 of 0"},
		{"amplification", func(r *FloodResult) { r.Lines[3].Amplification = f(1.01) }, "amplification 1.010"},
		{"rss", func(r *FloodResult) { r.PoPs[0].RSSMBMax = 90.1 }, "RSS"},
		{"withdrawn", func(r *FloodResult) {
			r.PoPs[0].Announced, r.PoPs[0].NotAnnounced, r.PoPs[0].FirstProblem = false, 3, "192.0.2.53/32 not announced"
		}, "not announced in 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := good()
			tc.change(r)
			v := r.Violations()
			if len(v) != 1 || !strings.Contains(v[0], tc.want) {
				t.Errorf("violations %q, want one with %q", v, tc.want)
			}
		})
	}
}

func TestFloodWriteJSON(t *testing.T) {
	amp, vb, ab := 0.5, int64(50), int64(100)
	r := &Result{Scenario: "flood", Flood: &FloodResult{
		Lines: []FloodLine{{Scenario: "flood", Attack: AttackReflection, Client: "A-client", Region: "A", Sent: 2, Answered: 2, Amplification: &amp, VictimBytes: &vb, AttackerBytes: &ab}},
		PoPs:  []FloodPoPLine{{Scenario: "flood", PoP: "A-pop", RSSMBBefore: 1, RSSMBMax: 2, Announced: true}},
	}}
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), b.String())
	}
	for _, want := range []string{`"scenario":"flood"`, `"attack":"reflection"`, `"client":"A-client"`, `"region":"A"`, `"sent":2`, `"answered":2`, `"p95_ms":null`, `"amplification":0.5`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("client line %s: no %s", lines[0], want)
		}
	}
	for _, want := range []string{`"pop":"A-pop"`, `"rss_mb_before":1`, `"rss_mb_max":2`, `"announced":true`} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("PoP line %s: no %s", lines[1], want)
		}
	}
	var tb bytes.Buffer
	if err := r.WriteTable(&tb); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tb.String(), "0.500 (50/100 B)") || !strings.Contains(tb.String(), "A-pop") {
		t.Errorf("table:\n%s", tb.String())
	}
}

func TestParseCounters(t *testing.T) {
	text := `# HELP anycastd_queries_total DNS queries answered.
# TYPE anycastd_queries_total counter
anycastd_queries_total{qtype="A",rcode="NXDOMAIN",transport="udp"} 10
anycastd_queries_total{qtype="AAAA",rcode="NXDOMAIN",transport="udp"} 5
anycastd_queries_total{qtype="A",rcode="NOERROR",transport="tcp"} 7
anycastd_dropped_total 3
anycastd_early_drops_total{reason="short"} 2
anycastd_early_drops_total{reason="source_limit"} 1e+06
anycastd_rrl_limited_total{action="slip"} 4
anycastd_tcp_evicted_total 9
anycastd_tcp_connections 12
go_goroutines 40
`
	got, err := parseCounters(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"answered_NXDOMAIN": 15, "answered_NOERROR": 7, "dropped": 3, "early_short": 2, "early_source_limit": 1e6, "rrl_slip": 4, "tcp_evicted": 9}
	if !maps.Equal(got, want) {
		t.Errorf("counters %v, want %v", got, want)
	}
	if _, err := parseCounters(strings.NewReader("anycastd_dropped_total x\n")); err == nil {
		t.Error("a bad value: no error")
	}
}

// TestFloodServerConfs checks the NSD and Knot configurations of the
// flood comparison with the servers' own checkers (skipped when they are
// not installed) and holds them to the lab's RRL settings.
func TestFloodServerConfs(t *testing.T) {
	dir := t.TempDir()
	zone := dir + "/" + zoneFile
	if err := os.WriteFile(zone, labZone, 0o644); err != nil {
		t.Fatal(err)
	}
	addrs := []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("2001:db8::53"), netip.MustParseAddr("203.0.113.101")}
	topo, err := FloodTopology()
	if err != nil {
		t.Fatal(err)
	}
	exempt := newPlan("t", topo).labLimits().Source.Exempt
	for _, tc := range []struct {
		server, conf string
		check        func(path string) []string
		want         []string
	}{
		{"nsd", nsdFloodConf(dir, "A-pop", addrs, zone), func(p string) []string { return []string{"nsd-checkconf", p} },
			[]string{"rrl-ratelimit: 20", "rrl-slip: 2", "rrl-ipv6-prefix-length: 56", `nsid: "ascii_A-pop"`, "ip-address: 2001:db8::53", "rrl-whitelist: positive"}},
		{"knot", knotFloodConf(dir, "A-pop", addrs, zone, exempt), func(p string) []string { return []string{"knotc", "-c", p, "conf-check"} },
			[]string{"rate-limit: 20", "slip: 2", `nsid: "A-pop"`, "192.0.2.53@53", "198.51.100.0/26", "global-module: mod-rrl/lab"}},
	} {
		t.Run(tc.server, func(t *testing.T) {
			for _, w := range tc.want {
				if !strings.Contains(tc.conf, w) {
					t.Errorf("no %q in\n%s", w, tc.conf)
				}
			}
			path := dir + "/" + tc.server + ".conf"
			if err := os.WriteFile(path, []byte(tc.conf), 0o644); err != nil {
				t.Fatal(err)
			}
			argv := tc.check(path)
			if _, err := exec.LookPath(argv[0]); err != nil {
				t.Skipf("%s not installed", argv[0])
			}
			out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
			if err != nil {
				t.Errorf("%s: %v: %s\n%s", strings.Join(argv, " "), err, out, tc.conf)
			}
		})
	}
}
