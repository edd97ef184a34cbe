package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Role is what a namespace is for.
type Role string

// Roles of the lab's namespaces.
const (
	RoleRouter Role = "router"
	RolePoP    Role = "pop"
	RoleClient Role = "client"
)

// Node is one namespace of the lab.
type Node struct {
	Name      string // "A-router", "A-pop", "A-client"; also the interface name its neighbours use for it
	Role      Role
	Region    string
	Namespace string // "acl-<id>-A-router"
	ASN       uint32 // routers and PoPs
	// Addr4 and Addr6 are the node's own addresses, on lo: a router's
	// loopback, a PoP's unicast address, a client's first network address.
	Addr4 netip.Addr
	Addr6 netip.Addr
	// Network4 and Network6 are a client's networks.
	Network4 netip.Prefix
	Network6 netip.Prefix
}

// Addrs returns the node's own addresses.
func (n *Node) Addrs() []netip.Addr { return []netip.Addr{n.Addr4, n.Addr6} }

// LinkEnd is one side of a point-to-point link.
type LinkEnd struct {
	Node   string     `json:"node"`
	Ifname string     `json:"ifname"`
	Addr4  netip.Addr `json:"addr4"`
	Addr6  netip.Addr `json:"addr6"`
}

// Link joins two nodes.
type Link struct {
	Name string   `json:"name"`
	Spec LinkSpec `json:"spec"`
	A    LinkEnd  `json:"a"`
	B    LinkEnd  `json:"b"`
	// Prepend is a router—router link's extra AS hops (RegionLink).
	Prepend int `json:"prepend,omitempty"`
}

// Wired reports whether a wire process carries the link (delay or loss);
// otherwise it is a veth pair.
func (l *Link) Wired() bool { return l.Spec.Impaired() }

// End returns the end of the link on node and the end opposite it.
func (l *Link) End(node string) (local, remote LinkEnd, ok bool) {
	switch node {
	case l.A.Node:
		return l.A, l.B, true
	case l.B.Node:
		return l.B, l.A, true
	}
	return LinkEnd{}, LinkEnd{}, false
}

// Session is a BGP session seen from one router, per address family.
type Session struct {
	Protocol string // BIRD protocol name, e.g. "B_router_v4"
	Peer     string // node name
	PeerRole Role
	PeerASN  uint32
	Local    netip.Addr
	Remote   netip.Addr
	Prepend  int // extra AS hops of the link (router—router)
}

// plan is the concrete network a topology turns into: every node, every
// link with its addresses and interface names. It does no I/O.
type plan struct {
	id     string
	topo   *Topology
	nodes  []*Node
	byName map[string]*Node
	links  []*Link
	// added are PoPs added after the lab was built; their links follow the
	// topology's, so that no address of the running lab moves.
	added []AddedPoP
}

// AddedPoP is a PoP added to a running lab (Lab.AddPoP).
type AddedPoP struct {
	Region string `json:"region"`
	PoP    PoP    `json:"pop"`
}

func nodeName(region, member string) string { return region + "-" + member }

// NamespacePrefix is the prefix of every namespace of lab id.
func NamespacePrefix(id string) string { return "acl-" + id + "-" }

func newPlan(id string, t *Topology) *plan {
	p := &plan{id: id, topo: t, byName: map[string]*Node{}}
	for _, r := range t.Regions {
		router := &Node{Name: nodeName(r.Name, "router"), Role: RoleRouter, Region: r.Name, ASN: r.ASN, Addr4: r.Loopback4, Addr6: r.Loopback6}
		p.add(router)
		for _, pop := range r.PoPs {
			p.addPoPNode(r, router, pop)
		}
		for _, c := range r.Clients {
			n := &Node{Name: nodeName(r.Name, c.Name), Role: RoleClient, Region: r.Name,
				Addr4: c.Network4.Addr().Next(), Addr6: c.Network6.Addr().Next(),
				Network4: c.Network4, Network6: c.Network6}
			p.add(n)
			spec := r.Link
			if c.Link != nil {
				spec = *c.Link
			}
			p.connect(router, n, spec)
		}
	}
	for _, l := range t.Links {
		k := p.connect(p.byName[nodeName(l.A, "router")], p.byName[nodeName(l.B, "router")], l.LinkSpec)
		k.Prepend = l.Prepend
	}
	return p
}

func (p *plan) add(n *Node) {
	n.Namespace = NamespacePrefix(p.id) + n.Name
	p.nodes = append(p.nodes, n)
	p.byName[n.Name] = n
}

// connect adds a link from a to b with the next addresses of the pools.
func (p *plan) connect(a, b *Node, spec LinkSpec) *Link {
	i := len(p.links)
	t := p.topo
	k := &Link{
		Name: a.Name + "~" + b.Name,
		Spec: spec,
		A:    LinkEnd{Node: a.Name, Ifname: b.Name, Addr4: nthAddr(t.LinkPool4.Addr(), 2*i), Addr6: nthAddr(t.LinkPool6.Addr(), 2*i)},
		B:    LinkEnd{Node: b.Name, Ifname: a.Name, Addr4: nthAddr(t.LinkPool4.Addr(), 2*i+1), Addr6: nthAddr(t.LinkPool6.Addr(), 2*i+1)},
	}
	p.links = append(p.links, k)
	return k
}

func (p *plan) addPoPNode(r Region, router *Node, pop PoP) (*Node, *Link) {
	n := &Node{Name: nodeName(r.Name, pop.Name), Role: RolePoP, Region: r.Name, ASN: pop.ASN, Addr4: pop.Unicast4, Addr6: pop.Unicast6}
	p.add(n)
	spec := r.Link
	if pop.Link != nil {
		spec = *pop.Link
	}
	return n, p.connect(router, n, spec)
}

// withAdded returns a copy of the topology with every added PoP, and a, in
// its region: what the lab is once a is added, for validation.
func (p *plan) withAdded(more ...AddedPoP) *Topology {
	t := *p.topo
	t.Regions = slices.Clone(t.Regions)
	for i := range t.Regions {
		t.Regions[i].PoPs = slices.Clone(t.Regions[i].PoPs)
	}
	for _, a := range append(slices.Clone(p.added), more...) {
		for i := range t.Regions {
			if t.Regions[i].Name == a.Region {
				t.Regions[i].PoPs = append(t.Regions[i].PoPs, a.PoP)
			}
		}
	}
	return &t
}

// addPoP adds a PoP to a region of the plan, after checking that the lab
// with it is still a valid topology. Its link comes after every other.
func (p *plan) addPoP(a AddedPoP) (*Node, *Link, error) {
	var region *Region
	for i := range p.topo.Regions {
		if p.topo.Regions[i].Name == a.Region {
			region = &p.topo.Regions[i]
		}
	}
	if region == nil {
		return nil, nil, fmt.Errorf("add pop: no region %q", a.Region)
	}
	if err := p.withAdded(a).Validate(); err != nil {
		return nil, nil, fmt.Errorf("add pop %s to region %s: %w", a.PoP.Name, a.Region, err)
	}
	p.added = append(p.added, a)
	n, k := p.addPoPNode(*region, p.byName[nodeName(a.Region, "router")], a.PoP)
	return n, k, nil
}

// newPoP proposes a PoP to add to region: the next free name "popN", ASN
// one above the highest PoP ASN, and unicast addresses one above the
// highest PoP addresses (the next /64 for IPv6).
func (p *plan) newPoP(region string) (PoP, error) {
	var pop PoP
	found := false
	names := map[string]bool{}
	for _, n := range p.nodes {
		if n.Region == region {
			found = true
			names[strings.TrimPrefix(n.Name, region+"-")] = true
		}
		if n.Role != RolePoP {
			continue
		}
		pop.ASN = max(pop.ASN, n.ASN)
		if !pop.Unicast4.IsValid() || pop.Unicast4.Less(n.Addr4) {
			pop.Unicast4 = n.Addr4
		}
		if !pop.Unicast6.IsValid() || pop.Unicast6.Less(n.Addr6) {
			pop.Unicast6 = n.Addr6
		}
	}
	if !found {
		return PoP{}, fmt.Errorf("no region %q", region)
	}
	if pop.ASN == 0 {
		return PoP{}, errors.New("the lab has no PoP to derive a new one from")
	}
	for i := 2; ; i++ {
		if name := fmt.Sprintf("pop%d", i); !names[name] {
			pop.Name = name
			break
		}
	}
	pop.ASN++
	pop.Unicast4 = pop.Unicast4.Next()
	b := pop.Unicast6.As16()
	for i := 7; i >= 0; i-- { // next /64, same interface identifier
		b[i]++
		if b[i] != 0 {
			break
		}
	}
	pop.Unicast6 = netip.AddrFrom16(b)
	return pop, nil
}

// nthAddr returns a+n.
func nthAddr(a netip.Addr, n int) netip.Addr {
	b := a.As16()
	carry := uint(n)
	for i := 15; i >= 0 && carry > 0; i-- {
		s := uint(b[i]) + carry&0xff
		b[i] = byte(s)
		carry = carry>>8 + s>>8
	}
	r := netip.AddrFrom16(b)
	if a.Is4() {
		return r.Unmap()
	}
	return r
}

// linksOf returns the links of node in plan order.
func (p *plan) linksOf(node string) []*Link {
	var out []*Link
	for _, l := range p.links {
		if l.A.Node == node || l.B.Node == node {
			out = append(out, l)
		}
	}
	return out
}

// uplink is the link of a PoP or client to its router.
func (p *plan) uplink(node string) *Link {
	for _, l := range p.links {
		if l.B.Node == node {
			return l
		}
	}
	return nil
}

func protocolName(peer string, v6 bool) string {
	s := strings.ReplaceAll(peer, "-", "_")
	if v6 {
		return s + "_v6"
	}
	return s + "_v4"
}

// sessions lists the BGP sessions of a router (to routers and to PoPs) or of
// a PoP (to its router), two per neighbour: one per address family.
func (p *plan) sessions(node string) []Session {
	var out []Session
	for _, l := range p.linksOf(node) {
		local, remote, _ := l.End(node)
		peer := p.byName[remote.Node]
		if peer.Role == RoleClient {
			continue
		}
		out = append(out,
			Session{Protocol: protocolName(peer.Name, false), Peer: peer.Name, PeerRole: peer.Role, PeerASN: peer.ASN, Local: local.Addr4, Remote: remote.Addr4, Prepend: l.Prepend},
			Session{Protocol: protocolName(peer.Name, true), Peer: peer.Name, PeerRole: peer.Role, PeerASN: peer.ASN, Local: local.Addr6, Remote: remote.Addr6, Prepend: l.Prepend},
		)
	}
	return out
}

// expectedRoutes are the prefixes every router must have in its kernel table
// once the lab has converged: every other router's loopback, every PoP's
// unicast address and every client network; with speakers on the PoPs, also
// the anycast prefixes.
func (p *plan) expectedRoutes(router string, anycast bool) []netip.Prefix {
	var out []netip.Prefix
	for _, n := range p.nodes {
		switch {
		case n.Name == router:
		case n.Role == RoleClient:
			out = append(out, n.Network4, n.Network6)
		default:
			out = append(out, netip.PrefixFrom(n.Addr4, 32), netip.PrefixFrom(n.Addr6, 128))
		}
	}
	if anycast {
		hasPoP := false
		for _, n := range p.nodes {
			hasPoP = hasPoP || n.Role == RolePoP
		}
		if hasPoP {
			out = append(out, p.topo.Anycast...)
		}
	}
	return out
}

func (p *plan) node(name string) (*Node, error) {
	n, ok := p.byName[name]
	if !ok {
		return nil, fmt.Errorf("no node %q in lab %s", name, p.id)
	}
	return n, nil
}
