package lab

import (
	"bytes"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/testkit"
	"github.com/anycastdns/anycastdns/internal/zone"
)

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	testkit.Golden(t, filepath.Join("testdata", "golden", name), got)
}

func testPlan(t *testing.T, ecmp bool) *plan {
	t.Helper()
	topo, err := DefaultTopology()
	if err != nil {
		t.Fatal(err)
	}
	topo.ECMP = ecmp
	return newPlan("test", topo)
}

// birdParses checks a configuration with BIRD's own parser (bird -p).
func birdParses(t *testing.T, conf string) {
	t.Helper()
	bird := testkit.RequireTool(t, "bird", "bird2")
	path := filepath.Join(t.TempDir(), "bird.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bird, "-p", "-c", path).CombinedOutput(); err != nil {
		t.Errorf("bird -p rejects the config: %v: %s\n%s", err, out, conf)
	}
}

func TestRouterConfig(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ecmp   bool
		router string
	}{
		{"A-router", false, "A-router"},
		{"B-router", false, "B-router"},
		{"ecmp-B-router", true, "B-router"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf, err := testPlan(t, tc.ecmp).routerConfig(tc.router)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.name+".bird.conf", []byte(conf))
			birdParses(t, conf)
		})
	}
	if _, err := testPlan(t, false).routerConfig("A-pop"); err == nil {
		t.Error("routerConfig accepted a PoP")
	}
}

// TestSteeringRouterConfig: in the steering topology B's router prepends
// its AS three more times towards A and C, and D's router (a stub) exports
// only its own networks, with one more prepend towards A.
func TestSteeringRouterConfig(t *testing.T) {
	topo, err := SteeringTopology()
	if err != nil {
		t.Fatal(err)
	}
	p := newPlan("test", topo)
	for _, router := range []string{"B-router", "D-router"} {
		t.Run(router, func(t *testing.T) {
			conf, err := p.routerConfig(router)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "steering-"+router+".bird.conf", []byte(conf))
			birdParses(t, conf)
		})
	}
}

func TestPoPSpeakerConfig(t *testing.T) {
	conf, err := testPlan(t, false).popSpeakerConfig("B-pop")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "B-pop.speaker.bird.conf", []byte(conf))
	birdParses(t, conf)
}

func TestNodeConfig(t *testing.T) {
	p := testPlan(t, false)
	b, err := p.nodeConfig("C-pop", DefaultNodeTiming, nil)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "C-pop.node.yaml", b)
	// anycastd itself must accept it, with the values the lab means.
	cfg, err := config.ParseNode(b, filepath.Join(t.TempDir(), "C-pop.node.yaml"))
	if err != nil {
		t.Fatalf("anycastd rejects the generated config: %v", err)
	}
	if cfg.Identity.Name != "C-pop" || !cfg.Identity.NSID {
		t.Errorf("identity %+v, want C-pop with NSID", cfg.Identity)
	}
	wantListen := []string{"192.0.2.53:53", "[2001:db8::53]:53", "203.0.113.103:53", "[2001:db8:0:103::1]:53"}
	var gotListen []string
	for _, a := range cfg.Listen {
		gotListen = append(gotListen, a.String())
	}
	if d := cmp.Diff(wantListen, gotListen); d != "" {
		t.Errorf("listen (-want +got):\n%s", d)
	}
	if len(cfg.Zones) != 1 || cfg.Zones[0].Name != ZoneName || filepath.Base(cfg.Zones[0].File) != "lab.example.zone" {
		t.Errorf("zones %+v", cfg.Zones)
	}
	if a := cfg.Admin.Listen; !a.Addr().IsLoopback() || a.Port() != AdminPort {
		t.Errorf("admin on %s, want loopback port %d", a, AdminPort)
	}
	h := cfg.Health
	if h.Interval != 100*time.Millisecond || h.Timeout != 80*time.Millisecond || h.Rise != 3 || h.Fall != 2 || h.QueryAddr.String() != "192.0.2.53:53" {
		t.Errorf("health %+v", h)
	}
	if cfg.DrainPeriod < time.Second || cfg.DrainPeriod > 2*time.Second {
		t.Errorf("drain period %s, want 1-2s", cfg.DrainPeriod)
	}
	if cfg.BGP == nil || cfg.BGP.ASN != 65103 || cfg.BGP.RouterID.String() != "203.0.113.103" {
		t.Fatalf("bgp %+v", cfg.BGP)
	}
	// The node's peers are the router's sessions to it, mirrored, with
	// BFD at the topology's rate; each prefix's next hop is the PoP's end
	// of the link in the prefix's family.
	var got NodeConfig
	if err := yaml.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	var mirrored []NodePeer
	for _, s := range p.sessions("C-router") {
		if s.Peer == "C-pop" {
			mirrored = append(mirrored, NodePeer{Address: s.Local.String(), ASN: 65003, LocalAddress: s.Remote.String(),
				HoldTime: "9s", Keepalive: "3s", BFD: NodeBFD{Enabled: true, Interval: "100ms", Multiplier: 3}})
		}
	}
	if d := cmp.Diff(mirrored, got.BGP.Peers); d != "" {
		t.Errorf("peers (-want +got):\n%s", d)
	}
	wantAnn := []NodeAnnounce{{Prefix: "192.0.2.53/32", NextHop: "100.64.0.9"}, {Prefix: "2001:db8::53/128", NextHop: "2001:db8:ffff::9"}}
	if d := cmp.Diff(wantAnn, got.BGP.Announce); d != "" {
		t.Errorf("announce (-want +got):\n%s", d)
	}
	if _, err := p.nodeConfig("C-client", DefaultNodeTiming, nil); err == nil {
		t.Error("nodeConfig accepted a client")
	}
}

// The example zone users read and the zone the nodes serve must not drift
// apart, and it must hold the name the probes ask for.
func TestLabZone(t *testing.T) {
	example, err := os.ReadFile("../../examples/lab/lab.example.zone")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(example, ZoneText()) {
		t.Error("examples/lab/lab.example.zone differs from internal/lab/lab.example.zone: copy one over the other")
	}
	if _, err := zone.Load(ZoneName, zoneFile); err != nil {
		t.Fatalf("the lab zone does not load: %v", err)
	}
}

func TestPlanAddresses(t *testing.T) {
	p := testPlan(t, false)
	type end struct{ Node, Ifname, Addr4, Addr6 string }
	var got [][2]end
	for _, l := range p.links {
		e := func(x LinkEnd) end { return end{x.Node, x.Ifname, x.Addr4.String(), x.Addr6.String()} }
		got = append(got, [2]end{e(l.A), e(l.B)})
	}
	want := [][2]end{
		{{"A-router", "A-pop", "100.64.0.0", "2001:db8:ffff::"}, {"A-pop", "A-router", "100.64.0.1", "2001:db8:ffff::1"}},
		{{"A-router", "A-client", "100.64.0.2", "2001:db8:ffff::2"}, {"A-client", "A-router", "100.64.0.3", "2001:db8:ffff::3"}},
		{{"B-router", "B-pop", "100.64.0.4", "2001:db8:ffff::4"}, {"B-pop", "B-router", "100.64.0.5", "2001:db8:ffff::5"}},
		{{"B-router", "B-client", "100.64.0.6", "2001:db8:ffff::6"}, {"B-client", "B-router", "100.64.0.7", "2001:db8:ffff::7"}},
		{{"C-router", "C-pop", "100.64.0.8", "2001:db8:ffff::8"}, {"C-pop", "C-router", "100.64.0.9", "2001:db8:ffff::9"}},
		{{"C-router", "C-client", "100.64.0.10", "2001:db8:ffff::a"}, {"C-client", "C-router", "100.64.0.11", "2001:db8:ffff::b"}},
		{{"A-router", "B-router", "100.64.0.12", "2001:db8:ffff::c"}, {"B-router", "A-router", "100.64.0.13", "2001:db8:ffff::d"}},
		{{"B-router", "C-router", "100.64.0.14", "2001:db8:ffff::e"}, {"C-router", "B-router", "100.64.0.15", "2001:db8:ffff::f"}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("links (-want +got):\n%s", d)
	}
	c, err := p.node("B-client")
	if err != nil {
		t.Fatal(err)
	}
	if c.Namespace != "acl-test-B-client" || c.Addr4 != netip.MustParseAddr("198.51.100.65") || c.Addr6 != netip.MustParseAddr("2001:db8:b::1") {
		t.Errorf("B-client: %+v", c)
	}
	var protos []string
	for _, s := range p.sessions("B-router") {
		protos = append(protos, s.Protocol)
	}
	if d := cmp.Diff([]string{"B_pop_v4", "B_pop_v6", "A_router_v4", "A_router_v6", "C_router_v4", "C_router_v6"}, protos); d != "" {
		t.Errorf("B-router sessions (-want +got):\n%s", d)
	}
	if n := len(p.expectedRoutes("A-router", true)); n != 2*(2+3+3)+2 {
		t.Errorf("A-router expects %d routes, want 2 families × (2 routers + 3 PoPs + 3 client networks) + 2 anycast", n)
	}
}

func TestNthAddr(t *testing.T) {
	for _, tc := range []struct {
		base string
		n    int
		want string
	}{
		{"100.64.0.0", 0, "100.64.0.0"},
		{"100.64.0.0", 255, "100.64.0.255"},
		{"100.64.0.0", 256, "100.64.1.0"},
		{"100.64.255.255", 1, "100.65.0.0"},
		{"2001:db8:ffff::", 17, "2001:db8:ffff::11"},
		{"2001:db8:ffff::ffff", 1, "2001:db8:ffff::1:0"},
	} {
		if got := nthAddr(netip.MustParseAddr(tc.base), tc.n); got.String() != tc.want {
			t.Errorf("nthAddr(%s, %d) = %s, want %s", tc.base, tc.n, got, tc.want)
		}
	}
}

func TestParseProtocols(t *testing.T) {
	out := `BIRD 2.0.12 ready.
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     23:26:37      
kernel_ipv4 Kernel    master4    up     23:26:37      
A_pop_v4   BGP        ---        start  23:26:37      Active        Socket: Connection refused
B_router_v4 BGP       ---        up     23:26:38      Established   
bfd1       BFD        ---        up     23:26:37      
`
	want := []ProtocolState{
		{Name: "device1", Proto: "Device", State: "up"},
		{Name: "kernel_ipv4", Proto: "Kernel", State: "up"},
		{Name: "A_pop_v4", Proto: "BGP", State: "start", Info: "Active Socket: Connection refused"},
		{Name: "B_router_v4", Proto: "BGP", State: "up", Info: "Established"},
		{Name: "bfd1", Proto: "BFD", State: "up"},
	}
	if d := cmp.Diff(want, parseProtocols(out)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}
