package lab

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"net/netip"
	"time"

	"go.yaml.in/yaml/v3"
)

// The zone every PoP serves; the same text as examples/lab/lab.example.zone.
//
//go:embed lab.example.zone
var labZone []byte

// Zone is the example zone the lab's nodes serve.
const (
	ZoneName = "lab.example."
	zoneFile = "lab.example.zone"
	// ProbeName is the name the scenarios ask for.
	ProbeName = "www.lab.example."
)

// ZoneText returns the text of the example zone.
func ZoneText() []byte { return bytes.Clone(labZone) }

// What a lab node listens on, besides its addresses: DNS on port 53, the
// admin API on the loopback of its own namespace (every PoP has its own,
// so the ports are the same on each), metrics and GET /v1/load on its
// unicast IPv4 address, where the monitors read the load.
const (
	DNSPort     = 53
	AdminPort   = 8053
	MetricsPort = 9153
)

// NodeTiming is how quickly a lab node notices trouble and how long it keeps
// answering after it withdrew.
type NodeTiming struct {
	HealthInterval time.Duration
	HealthTimeout  time.Duration
	Rise, Fall     int
	DrainPeriod    time.Duration
}

// DefaultNodeTiming withdraws a node whose DNS fails after two failed
// rounds (200-300 ms) and announces a recovered one after three good ones.
var DefaultNodeTiming = NodeTiming{
	HealthInterval: 100 * time.Millisecond,
	HealthTimeout:  80 * time.Millisecond,
	Rise:           3,
	Fall:           2,
	DrainPeriod:    1500 * time.Millisecond,
}

// NodeConfig is anycastd's node configuration as the lab generates it for
// each PoP (see examples/node.yaml for every key). Durations are strings
// ("9s") as in every anycastd config file.
type NodeConfig struct {
	Identity    NodeIdentity `yaml:"identity"`
	Listen      []string     `yaml:"listen"`
	Zones       []NodeZone   `yaml:"zones"`
	Admin       NodeListen   `yaml:"admin"`
	Metrics     NodeListen   `yaml:"metrics"`
	DrainPeriod string       `yaml:"drain_period"`
	BGP         NodeBGP      `yaml:"bgp"`
	Health      NodeHealth   `yaml:"health"`
	// Limits are the recommended settings of a public node (labLimits).
	Limits NodeLimits `yaml:"limits"`
	// With a control plane (Options.Control): where transferred zones are
	// kept, the transfer key, who may NOTIFY, and the catalog to follow.
	DataDir     string          `yaml:"data_dir,omitempty"`
	TSIGKeys    []TSIGKey       `yaml:"tsig_keys,omitempty"`
	NotifyAllow []NodeNotifyACL `yaml:"notify_allow,omitempty"`
	Catalog     *NodeCatalog    `yaml:"catalog,omitempty"`
	// SecondaryTimers lowers the floors under the SOA timers, so that a
	// zone with tiny SOA timers (the control-outage scenario's) expires in
	// seconds; zones with ordinary timers are unaffected.
	SecondaryTimers *NodeSecondaryTimers `yaml:"secondary_timers,omitempty"`
	// Control is the stream to the control plane (unless
	// Options.NoStream).
	Control *NodeControl `yaml:"control,omitempty"`
}

// NodeControl is the node's stream to its control plane.
type NodeControl struct {
	Servers []string `yaml:"servers"`
	Key     string   `yaml:"key"`
	PoP     string   `yaml:"pop"`
}

// NodeSecondaryTimers are the floors under secondary zones' SOA timers.
type NodeSecondaryTimers struct {
	MinRefresh string `yaml:"min_refresh"`
	MinRetry   string `yaml:"min_retry"`
	MinExpire  string `yaml:"min_expire"`
}

// TSIGKey is a TSIG key as anycastd's node and control configurations
// spell it.
type TSIGKey struct {
	Name      string `yaml:"name"`
	Algorithm string `yaml:"algorithm"`
	Secret    string `yaml:"secret"`
}

// NodeNotifyACL allows NOTIFY from a prefix, signed with a key.
type NodeNotifyACL struct {
	Prefix string `yaml:"prefix"`
	Key    string `yaml:"key"`
}

// NodeCatalog is the catalog zone a node provisions its zones from.
type NodeCatalog struct {
	Zone      string        `yaml:"zone"`
	Primaries []NodePrimary `yaml:"primaries"`
}

// NodePrimary is a primary server of secondary zones.
type NodePrimary struct {
	Addr string `yaml:"addr"`
	Key  string `yaml:"key"`
}

// NodeLimits is the part of the node's limits section the lab sets.
type NodeLimits struct {
	RRL     NodeRRL     `yaml:"rrl"`
	Source  NodeSource  `yaml:"source"`
	Cookies NodeCookies `yaml:"cookies"`
}

// NodeRRL is response rate limiting.
type NodeRRL struct {
	Rate int `yaml:"rate"`
	Slip int `yaml:"slip"`
}

// NodeSource is the per-source query limit and its exempt prefixes (which
// RRL exempts too).
type NodeSource struct {
	Rate   int      `yaml:"rate"`
	Burst  int      `yaml:"burst"`
	Exempt []string `yaml:"exempt"`
}

// NodeCookies are DNS Cookies with the secret every PoP shares.
type NodeCookies struct {
	Enabled bool   `yaml:"enabled"`
	Secret  string `yaml:"secret"`
}

// The recommended limits of a public node (examples/node.yaml), which the
// lab runs with.
const (
	LabRRLRate     = 20
	LabRRLSlip     = 2
	LabSourceRate  = 1000
	LabSourceBurst = 2000
)

// labLimits are the recommended limits (examples/node.yaml) for a PoP of
// the lab: RRL at 20 answers a second with slip 2, the per-source limit at
// 1000 queries a second, cookies with one secret for the whole anycast set
// (derived from the lab's id). Exempt from both limits are the lab's own
// measuring points, as an operator exempts its monitors: the client
// networks, whose probes and loads ask one name at up to 10,000 queries a
// second, and the anycast and PoP addresses the nodes check themselves
// from. A scenario that floods does so from elsewhere.
func (p *plan) labLimits() NodeLimits {
	secret := sha256.Sum256([]byte("anycastlab cookie secret " + p.id))
	l := NodeLimits{
		RRL:     NodeRRL{Rate: LabRRLRate, Slip: LabRRLSlip},
		Source:  NodeSource{Rate: LabSourceRate, Burst: LabSourceBurst},
		Cookies: NodeCookies{Enabled: true, Secret: hex.EncodeToString(secret[:16])},
	}
	for _, a := range p.topo.Anycast {
		l.Source.Exempt = append(l.Source.Exempt, a.String())
	}
	for _, n := range p.nodes {
		switch n.Role {
		case RoleClient:
			l.Source.Exempt = append(l.Source.Exempt, n.Network4.String(), n.Network6.String())
		case RolePoP:
			for _, a := range n.Addrs() {
				l.Source.Exempt = append(l.Source.Exempt, netip.PrefixFrom(a, a.BitLen()).String())
			}
		}
	}
	return l
}

// NodeIdentity is the node's name, which its NSID answers carry.
type NodeIdentity struct {
	Name string `yaml:"name"`
}

// NodeZone is a zone served from a file (relative to the config file).
type NodeZone struct {
	Name string `yaml:"name"`
	File string `yaml:"file"`
}

// NodeListen is an HTTP endpoint's address.
type NodeListen struct {
	Listen string `yaml:"listen"`
}

// NodeHealth is the self-check that decides whether the node announces.
type NodeHealth struct {
	Interval  string `yaml:"interval"`
	Timeout   string `yaml:"timeout"`
	Rise      int    `yaml:"rise"`
	Fall      int    `yaml:"fall"`
	QueryAddr string `yaml:"query_addr"`
}

// NodeBGP is the bgp section of anycastd's node configuration, as the lab
// generates it for each PoP.
type NodeBGP struct {
	ASN      uint32         `yaml:"asn"`
	RouterID string         `yaml:"router_id"`
	Peers    []NodePeer     `yaml:"peers"`
	Announce []NodeAnnounce `yaml:"announce"`
}

// NodePeer is one BGP neighbour of a node.
type NodePeer struct {
	Address      string  `yaml:"address"`
	ASN          uint32  `yaml:"asn"`
	LocalAddress string  `yaml:"local_address"`
	Passive      bool    `yaml:"passive"`
	HoldTime     string  `yaml:"hold_time"`
	Keepalive    string  `yaml:"keepalive"`
	BFD          NodeBFD `yaml:"bfd"`
}

// NodeBFD is a peer's BFD setting.
type NodeBFD struct {
	Enabled    bool   `yaml:"enabled"`
	Interval   string `yaml:"interval"`
	Multiplier int    `yaml:"multiplier"`
}

// NodeAnnounce is one prefix the node announces while healthy.
type NodeAnnounce struct {
	Prefix  string `yaml:"prefix"`
	NextHop string `yaml:"next_hop"`
}

// nodeBGP builds the bgp section for a PoP: one session per address family
// to its router, BFD on, the topology's anycast prefixes announced.
func (p *plan) nodeBGP(pop string) (NodeBGP, error) {
	n, err := p.node(pop)
	if err != nil {
		return NodeBGP{}, err
	}
	if n.Role != RolePoP {
		return NodeBGP{}, fmt.Errorf("%s is a %s, not a pop", pop, n.Role)
	}
	t := p.topo
	cfg := NodeBGP{ASN: n.ASN, RouterID: n.Addr4.String()}
	for _, s := range p.sessions(pop) {
		cfg.Peers = append(cfg.Peers, NodePeer{
			Address:      s.Remote.String(),
			ASN:          s.PeerASN,
			LocalAddress: s.Local.String(),
			HoldTime:     t.BGP.HoldTime.String(),
			Keepalive:    t.BGP.Keepalive.String(),
			BFD:          NodeBFD{Enabled: true, Interval: t.BFD.Interval.String(), Multiplier: t.BFD.Multiplier},
		})
	}
	// Every session offers every prefix, but each router session carries
	// one family (BIRD negotiates only its channel's), so a prefix goes
	// over the session of its family; its next hop is the PoP's end of the
	// link in that family, which anycastd needs spelled out because "next
	// hop self" has no meaning over a session of the other family.
	up := p.uplink(pop)
	local, _, _ := up.End(pop)
	for _, a := range t.Anycast {
		nh := local.Addr4
		if a.Addr().Is6() {
			nh = local.Addr6
		}
		cfg.Announce = append(cfg.Announce, NodeAnnounce{Prefix: a.String(), NextHop: nh.String()})
	}
	return cfg, nil
}

// healthAddr is where a node checks itself: the first IPv4 anycast address
// (else the first anycast address), port 53, so that a listener that fails
// on the anycast address withdraws the node.
func (p *plan) healthAddr() netip.AddrPort {
	a := p.topo.Anycast[0].Addr()
	for _, pf := range p.topo.Anycast {
		if pf.Addr().Is4() {
			a = pf.Addr()
			break
		}
	}
	return netip.AddrPortFrom(a, DNSPort)
}

// nodeConfigFor builds the complete node configuration of a PoP: identity =
// the PoP's name (its NSID), DNS on every anycast address and on its unicast
// addresses, the lab zone, admin and metrics on the namespace's loopback,
// BGP with BFD to its router, and the self-check on the anycast address.
func (p *plan) nodeConfigFor(pop string, tm NodeTiming, ctl *controlPlan) (NodeConfig, error) {
	bgp, err := p.nodeBGP(pop)
	if err != nil {
		return NodeConfig{}, err
	}
	n, _ := p.node(pop)
	cfg := NodeConfig{
		Identity: NodeIdentity{Name: n.Name},
		Zones:    []NodeZone{{Name: ZoneName, File: zoneFile}},
		Admin:    NodeListen{Listen: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), AdminPort).String()},
		// The monitors read GET /v1/load here, from other namespaces.
		Metrics:     NodeListen{Listen: netip.AddrPortFrom(n.Addr4, MetricsPort).String()},
		DrainPeriod: tm.DrainPeriod.String(),
		BGP:         bgp,
		Health: NodeHealth{
			Interval: tm.HealthInterval.String(), Timeout: tm.HealthTimeout.String(),
			Rise: tm.Rise, Fall: tm.Fall, QueryAddr: p.healthAddr().String(),
		},
		Limits: p.labLimits(),
	}
	for _, a := range p.topo.Anycast {
		cfg.Listen = append(cfg.Listen, netip.AddrPortFrom(a.Addr(), DNSPort).String())
	}
	for _, a := range n.Addrs() {
		cfg.Listen = append(cfg.Listen, netip.AddrPortFrom(a, DNSPort).String())
	}
	if ctl != nil {
		ctl.nodeSettings(&cfg, pop)
	}
	return cfg, nil
}

// nodeConfig renders the node configuration file of a PoP.
func (p *plan) nodeConfig(pop string, tm NodeTiming, ctl *controlPlan) ([]byte, error) {
	cfg, err := p.nodeConfigFor(pop, tm, ctl)
	if err != nil {
		return nil, err
	}
	body, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("node config for %s: %w", pop, err)
	}
	head := fmt.Sprintf("# Generated by anycastlab for %s of lab %s: `anycastd node -config` in\n# the PoP's namespace; anycast %v is configured on lo.\n", pop, p.id, p.topo.Anycast)
	return append([]byte(head), body...), nil
}
