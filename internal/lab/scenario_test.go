package lab

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

// stream builds answers 10 ms apart from t0: pops[i] is the PoP that
// answered query i ("" = lost), each answered rtt after it was sent.
func stream(t0 time.Time, rtt time.Duration, pops ...string) []Answer {
	var qs []Answer
	for i, p := range pops {
		a := Answer{Seq: i, Sent: t0.Add(time.Duration(i) * 10 * time.Millisecond)}
		if p == "" {
			a.Err = "timeout"
		} else {
			a.Recv, a.PoP = a.Sent.Add(rtt), p
		}
		qs = append(qs, a)
	}
	return qs
}

func TestAnalyzeFailover(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for _, tc := range []struct {
		name       string
		qs         []Answer
		event, end time.Time
		want       failover
	}{
		{
			// sent at 0..70 ms, answered 20 ms later; the event at 25 ms:
			// the answer at 30 ms is still B, A first answers at 50 ms;
			// the end at 45 ms, B is back at 80 ms.
			name:  "switch and recover",
			qs:    stream(t0, 20*time.Millisecond, "B", "B", "", "A", "A", "", "B", "B"),
			event: at(25), end: at(45),
			want: failover{sent: 8, lost: 2, firstLost: at(20), lastLost: at(50), before: "B", during: "A", last: "B",
				switched: 25 * time.Millisecond, didSwitch: true, recovered: 35 * time.Millisecond, didRecover: true},
		},
		{
			name:  "never switched",
			qs:    stream(t0, 20*time.Millisecond, "C", "C", "C", "C"),
			event: at(25), end: at(35),
			want: failover{sent: 4, before: "C", last: "C"},
		},
		{
			name:  "switched for good",
			qs:    stream(t0, 20*time.Millisecond, "B", "A", "A", "A"),
			event: at(25), end: at(40),
			want: failover{sent: 4, before: "B", during: "A", last: "A", switched: 5 * time.Millisecond, didSwitch: true},
		},
		{
			// a late answer is a lost query and no evidence of a PoP
			name: "late answers do not count",
			qs: func() []Answer {
				qs := stream(t0, 20*time.Millisecond, "B", "B", "B")
				qs[2].Err = "late"
				return qs
			}(),
			event: at(25), end: at(30),
			want: failover{sent: 3, lost: 1, late: 1, firstLost: at(20), lastLost: at(20), before: "B", last: "B"},
		},
		{
			name:  "nothing answered before the event",
			qs:    stream(t0, 20*time.Millisecond, "", "A"),
			event: at(5), end: at(6),
			want: failover{sent: 2, lost: 1, firstLost: at(0), lastLost: at(0), last: "A"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := analyzeFailover(tc.qs, tc.event, tc.end)
			if d := cmp.Diff(tc.want, got, cmp.AllowUnexported(failover{})); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{50: 50 * time.Millisecond, 95: 95 * time.Millisecond, 100: 100 * time.Millisecond, 0: time.Millisecond} {
		if got := percentile(ds, p); got != want {
			t.Errorf("p%.0f = %s, want %s", p, got, want)
		}
	}
	if got := percentile([]time.Duration{7}, 95); got != 7 {
		t.Errorf("p95 of one = %s", got)
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of none = %s", got)
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("percentile sorted its input in place")
	}
}

func TestNearestAndCentral(t *testing.T) {
	p := testPlan(t, false)
	for _, c := range []string{"A-client", "B-client", "C-client"} {
		want := []string{c[:1] + "-pop"}
		if d := cmp.Diff(want, p.nearestPoPs(c)); d != "" {
			t.Errorf("%s nearest (-want +got):\n%s", c, d)
		}
	}
	if d := p.delays("A-client")["C-pop"]; d != (5+20+40+5)*time.Millisecond {
		t.Errorf("A-client → C-pop %s, want 70ms", d)
	}
	// B is 30 ms from A-client and 50 ms from C-client; A and C are 70 ms
	// from the far client.
	if got := p.centralPoP(); got != "B-pop" {
		t.Errorf("central PoP %s, want B-pop", got)
	}
	// A second PoP in B ties with B-pop for B-client.
	pop, err := p.newPoP("B")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.addPoP(AddedPoP{Region: "B", PoP: pop}); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"B-pop", "B-pop2"}, p.nearestPoPs("B-client")); d != "" {
		t.Errorf("nearest after adding B-pop2 (-want +got):\n%s", d)
	}
}

// Adding a PoP to a running lab must not move any address the lab already
// uses, and must stay a valid topology.
func TestAddPoP(t *testing.T) {
	p := testPlan(t, false)
	before := make([]Link, len(p.links))
	for i, k := range p.links {
		before[i] = *k
	}
	pop, err := p.newPoP("B")
	if err != nil {
		t.Fatal(err)
	}
	want := PoP{Name: "pop2", ASN: 65104, Unicast4: netip.MustParseAddr("203.0.113.104"), Unicast6: netip.MustParseAddr("2001:db8:0:104::1")}
	if d := cmp.Diff(want, pop, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Fatalf("newPoP (-want +got):\n%s", d)
	}
	n, k, err := p.addPoP(AddedPoP{Region: "B", PoP: pop})
	if err != nil {
		t.Fatal(err)
	}
	for i := range before {
		if d := cmp.Diff(before[i], *p.links[i], cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
			t.Errorf("link %d moved (-before +after):\n%s", i, d)
		}
	}
	if n.Name != "B-pop2" || n.Namespace != "acl-test-B-pop2" || k != p.links[len(p.links)-1] {
		t.Errorf("added %+v over %+v", n, k)
	}
	if k.A.Node != "B-router" || k.A.Addr4.String() != "100.64.0.16" || k.B.Addr6.String() != "2001:db8:ffff::11" {
		t.Errorf("new link %+v, want B-router—B-pop2 on the next /31 and /127", k)
	}
	// The router's configuration gains the sessions to the new PoP, and
	// the new node's its peers.
	conf, err := p.routerConfig("B-router")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"protocol bgp B_pop2_v4", "protocol bgp B_pop2_v6", "route 203.0.113.104/32 via 100.64.0.17; # B-pop2"} {
		if !strings.Contains(conf, s) {
			t.Errorf("B-router config lacks %q", s)
		}
	}
	birdParses(t, conf)
	bgp, err := p.nodeBGP("B-pop2")
	if err != nil || bgp.ASN != 65104 || len(bgp.Peers) != 2 || bgp.Peers[0].Address != "100.64.0.16" {
		t.Errorf("B-pop2 bgp %+v, %v", bgp, err)
	}
	// The same PoP twice, an unknown region, an address in use: refused,
	// and the plan unchanged.
	nlinks := len(p.links)
	for _, a := range []AddedPoP{
		{Region: "B", PoP: pop},
		{Region: "X", PoP: want},
		{Region: "C", PoP: PoP{Name: "pop9", ASN: 65190, Unicast4: netip.MustParseAddr("203.0.113.101"), Unicast6: netip.MustParseAddr("2001:db8:0:190::1")}},
	} {
		if _, _, err := p.addPoP(a); err == nil {
			t.Errorf("addPoP(%+v) accepted", a)
		}
	}
	if len(p.links) != nlinks || len(p.added) != 1 {
		t.Errorf("refused additions changed the plan: %d links, %d added", len(p.links), len(p.added))
	}
	if _, err := p.newPoP("X"); err == nil {
		t.Error("newPoP accepted an unknown region")
	}
}

func TestBestProtocol(t *testing.T) {
	out := `BIRD 2.0.12 ready.
Table master4:
192.0.2.53/32        unicast [A_router_v4 23:55:07.897] (100) [AS65101i]
	via 100.64.0.12 on A-router
                     unicast [B_pop_v4 23:55:07.893] * (100) [AS65102i]
	via 100.64.0.5 on B-pop
`
	if got := bestProtocol(out); got != "B_pop_v4" {
		t.Errorf("best %q, want B_pop_v4", got)
	}
	if got := bestProtocol("BIRD 2.0.12 ready.\nNetwork not found\n"); got != "" {
		t.Errorf("best of nothing %q", got)
	}
}

func answer(t *testing.T, edit func(*dns.Msg)) []byte {
	t.Helper()
	q, err := probeQuery(dns.TypeA)
	if err != nil {
		t.Fatal(err)
	}
	var m dns.Msg
	if err := m.Unpack(q); err != nil {
		t.Fatal(err)
	}
	m.Id = 4242
	m.Response, m.Authoritative = true, true
	rr, _ := dns.NewRR(ProbeName + " 300 IN A 192.0.2.80")
	m.Answer = []dns.RR{rr}
	m.IsEdns0().Option = []dns.EDNS0{&dns.EDNS0_NSID{Code: dns.EDNS0NSID, Nsid: "422d706f70"}} // "B-pop"
	if edit != nil {
		edit(&m)
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestProbeQueryAndAnswer(t *testing.T) {
	q, err := probeQuery(dns.TypeAAAA)
	if err != nil {
		t.Fatal(err)
	}
	var m dns.Msg
	if err := m.Unpack(q); err != nil {
		t.Fatal(err)
	}
	opt := m.IsEdns0()
	if m.Id != 0 || m.RecursionDesired || m.Question[0].Name != ProbeName || m.Question[0].Qtype != dns.TypeAAAA || opt == nil || len(opt.Option) != 1 || opt.Option[0].Option() != dns.EDNS0NSID {
		t.Fatalf("probe query %v", &m)
	}
	for _, tc := range []struct {
		name    string
		edit    func(*dns.Msg)
		pop     string
		wantErr string
	}{
		{"good", nil, "B-pop", ""},
		{"refused", func(m *dns.Msg) { m.Rcode = dns.RcodeRefused; m.Answer = nil }, "B-pop", "rcode REFUSED"},
		{"not authoritative", func(m *dns.Msg) { m.Authoritative = false }, "B-pop", "not authoritative"},
		{"no nsid", func(m *dns.Msg) { m.IsEdns0().Option = nil }, "", "without NSID"},
		{"empty", func(m *dns.Msg) { m.Answer = nil }, "B-pop", "empty answer"},
		{"other question", func(m *dns.Msg) { m.Question[0].Name = "ns.lab.example." }, "B-pop", "another question"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, pop, err := parseAnswer(answer(t, tc.edit))
			if id != 4242 || pop != tc.pop {
				t.Errorf("id %d pop %q, want 4242 %q", id, pop, tc.pop)
			}
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("err %v, want %q", err, tc.wantErr)
			}
		})
	}
	if _, _, err := parseAnswer([]byte{1, 2, 3}); err == nil {
		t.Error("garbage accepted")
	}
}

func TestResultOutput(t *testing.T) {
	v := 12.5
	tr := true
	r := &Result{Scenario: "drain", Notes: []string{"B-pop drained"}, Lines: []Line{
		{Scenario: "drain", Client: "A-client", Transport: "udp4", PoP: "A-pop", Sent: 300, Target: "B-pop", PoPBefore: "A-pop"},
		{Scenario: "drain", Client: "B-client", Transport: "udp4", PoP: "B-pop", Sent: 300, Lost: 1, SwitchMS: &v, RecoverMS: &v, Target: "B-pop", PoPBefore: "B-pop"},
	}}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(js.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d JSON lines", len(lines))
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatal(err)
	}
	// switch_ms and recover_ms are always there (null when nothing
	// happened); fields of other scenarios are not.
	for k, want := range map[string]any{"scenario": "drain", "client": "A-client", "transport": "udp4", "pop": "A-pop", "sent": 300.0, "lost": 0.0,
		"switch_ms": nil, "recover_ms": nil, "pop_before": "A-pop", "target": "B-pop"} {
		got, ok := m[k]
		if !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, want)
		}
	}
	for _, k := range []string{"nearest", "anycast_p50_ms", "unicast_p50_ms", "ecmp", "pops_after"} {
		if _, ok := m[k]; ok {
			t.Errorf("drain line has %s", k)
		}
	}
	var tab bytes.Buffer
	if err := r.WriteTable(&tab); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"== drain", "B-pop drained", "SWITCH ms", "12.5"} {
		if !strings.Contains(tab.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, tab.String())
		}
	}
	so := &Result{Scenario: "scale-out", Lines: []Line{{Scenario: "scale-out", Client: "B-client", ECMP: &tr, PoPsBefore: map[string]int{"B-pop": 3}, PoPsAfter: map[string]int{"B-pop2": 1, "B-pop": 2}}}}
	tab.Reset()
	if err := so.WriteTable(&tab); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tab.String(), "B-pop:2 B-pop2:1") {
		t.Errorf("scale-out table:\n%s", tab.String())
	}
}
