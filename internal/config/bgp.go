package config

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// BGP configures the speaker that announces the anycast prefixes.
type BGP struct {
	ASN      uint32     // local AS number, 1..4294967295 (not 23456, AS_TRANS)
	RouterID netip.Addr // BGP identifier, an IPv4 address other than 0.0.0.0
	// ListenPort is the TCP port to accept sessions on; 0 (the default)
	// means do not listen, only connect out.
	ListenPort uint16
	Peers      []Peer         // at least one
	Announce   []Announcement // at least one; announced while healthy
	// Levels are what the shed levels add to every announcement:
	// Levels[0] is bgp.levels.shed-1, [1] shed-2, [2] shed-3. A level
	// absent from the file prepends 1, 2 or 3 copies of the local AS —
	// none when a peer is iBGP (it would see its own AS and drop the
	// route as a loop).
	Levels [3]LevelAttributes
}

// LevelAttributes are what a shed level adds to each announcement's own
// attributes, so that part of the PoP's catchment moves to other PoPs.
type LevelAttributes struct {
	Prepend          uint8            // more copies of the local AS after the announcement's own, 0..10
	Communities      []Community      // added to the announcement's
	LargeCommunities []LargeCommunity // added to the announcement's
	MED              *uint32          // replaces the announcement's; nil = keep it
}

// ShedLevels names the keys of bgp.levels, in order.
var ShedLevels = [3]string{"shed-1", "shed-2", "shed-3"}

// Peer is one BGP neighbour.
type Peer struct {
	Address      netip.Addr
	ASN          uint32
	LocalAddress netip.Addr // source address of the session; unset = chosen by the kernel
	Passive      bool       // wait for the peer to connect
	// HoldTime is whole seconds, at least 3s (default 9s); Keepalive whole
	// seconds, >0 and <= HoldTime (default HoldTime/3).
	HoldTime  time.Duration
	Keepalive time.Duration
	Password  string // TCP MD5 signature key (RFC 2385), at most 80 bytes; empty = none
	Multihop  uint8  // eBGP multihop TTL; 0 = directly connected
	BFD       BFD
}

// BFD configures Bidirectional Forwarding Detection for a peer.
type BFD struct {
	Enabled    bool
	Interval   time.Duration // desired transmit and receive interval, >= 10ms (default 300ms)
	Multiplier uint8         // detection multiplier, >= 1 (default 3)
}

// Announcement is one prefix the node announces while it is healthy.
type Announcement struct {
	Prefix           netip.Prefix
	NextHop          netip.Addr // same family as Prefix; unset = the session's local address
	Communities      []Community
	LargeCommunities []LargeCommunity
	MED              *uint32 // nil = not sent
	Prepend          uint8   // extra copies of the local AS in the path, 0..10
}

// Community is an RFC 1997 community, written "ASN:value".
type Community struct {
	ASN, Value uint16
}

func (c Community) String() string { return fmt.Sprintf("%d:%d", c.ASN, c.Value) }

// ParseCommunity parses "ASN:value", both 0..65535.
func ParseCommunity(s string) (Community, error) {
	f := strings.Split(s, ":")
	if len(f) == 2 {
		a, errA := strconv.ParseUint(f[0], 10, 16)
		v, errV := strconv.ParseUint(f[1], 10, 16)
		if errA == nil && errV == nil {
			return Community{ASN: uint16(a), Value: uint16(v)}, nil
		}
	}
	return Community{}, fmt.Errorf("invalid community %q (want ASN:value, both 0..65535)", s)
}

// LargeCommunity is an RFC 8092 large community, written
// "ASN:data1:data2".
type LargeCommunity struct {
	ASN, Data1, Data2 uint32
}

func (c LargeCommunity) String() string { return fmt.Sprintf("%d:%d:%d", c.ASN, c.Data1, c.Data2) }

// ParseLargeCommunity parses "ASN:data1:data2", each 0..4294967295.
func ParseLargeCommunity(s string) (LargeCommunity, error) {
	f := strings.Split(s, ":")
	if len(f) == 3 {
		var v [3]uint32
		ok := true
		for i := range f {
			n, err := strconv.ParseUint(f[i], 10, 32)
			ok = ok && err == nil
			v[i] = uint32(n)
		}
		if ok {
			return LargeCommunity{ASN: v[0], Data1: v[1], Data2: v[2]}, nil
		}
	}
	return LargeCommunity{}, fmt.Errorf("invalid large community %q (want ASN:data1:data2, each 0..4294967295)", s)
}

const (
	asTrans          = 23456 // RFC 6793
	defaultHoldTime  = 9 * time.Second
	minHoldTime      = 3 * time.Second
	maxHoldTime      = 65535 * time.Second
	defaultBFD       = 300 * time.Millisecond
	minBFD           = 10 * time.Millisecond
	maxBFD           = time.Duration(math.MaxUint32) * time.Microsecond
	defaultBFDMult   = 3
	maxPrepend       = 10
	maxMD5KeyLen     = 80 // TCP_MD5SIG_MAXKEYLEN
	defaultKeepDivid = 3
)

// defaultKeepalive is a third of the hold time in whole seconds, at least 1s.
func defaultKeepalive(hold time.Duration) time.Duration {
	return max((hold / defaultKeepDivid).Truncate(time.Second), time.Second)
}

func (d *decoder) bgp(n *yaml.Node, path string) *BGP {
	if isNull(n) {
		return nil
	}
	b := &BGP{}
	d.mapping(n, path, []field{
		{"asn", func(n *yaml.Node, p string) { d.asn(n, p, &b.ASN) }},
		{"router_id", func(n *yaml.Node, p string) { b.RouterID, _ = parseScalar(d, n, p, parseAddr) }},
		{"listen_port", func(n *yaml.Node, p string) {
			v, _ := d.bounded(n, p, 0, math.MaxUint16)
			b.ListenPort = uint16(v)
		}},
		{"peers", func(n *yaml.Node, p string) {
			items := d.sequence(n, p)
			b.Peers = make([]Peer, len(items))
			for i, item := range items {
				d.peer(item, indexPath(p, i), &b.Peers[i])
			}
		}},
		{"announce", func(n *yaml.Node, p string) {
			items := d.sequence(n, p)
			b.Announce = make([]Announcement, len(items))
			for i, item := range items {
				d.announcement(item, indexPath(p, i), &b.Announce[i])
			}
		}},
		{"levels", func(n *yaml.Node, p string) {
			fields := make([]field, len(ShedLevels))
			for i, name := range ShedLevels {
				fields[i] = field{name, func(n *yaml.Node, p string) { d.levelAttributes(n, p, &b.Levels[i]) }}
			}
			d.mapping(n, p, fields)
		}},
	})
	// Default prepends, once the peers are known: 1, 2, 3 extra copies of
	// the local AS, unless a peer is iBGP.
	ibgp := false
	for _, p := range b.Peers {
		ibgp = ibgp || p.ASN != 0 && p.ASN == b.ASN
	}
	for i, name := range ShedLevels {
		if !d.present[keyPath(keyPath(path, "levels"), name)+".prepend"] && !ibgp {
			b.Levels[i].Prepend = uint8(i + 1)
		}
	}
	return b
}

// levelAttributes decodes one entry of bgp.levels.
func (d *decoder) levelAttributes(n *yaml.Node, path string, l *LevelAttributes) {
	d.mapping(n, path, []field{
		{"prepend", func(n *yaml.Node, p string) {
			v, _ := d.bounded(n, p, 0, maxPrepend)
			l.Prepend = uint8(v)
		}},
		{"communities", func(n *yaml.Node, p string) { l.Communities = d.communities(n, p) }},
		{"large_communities", func(n *yaml.Node, p string) { l.LargeCommunities = d.largeCommunities(n, p) }},
		{"med", func(n *yaml.Node, p string) { l.MED = d.med(n, p) }},
	})
}

func (d *decoder) communities(n *yaml.Node, path string) []Community {
	items := d.sequence(n, path)
	out := make([]Community, len(items))
	for i, item := range items {
		out[i], _ = parseScalar(d, item, indexPath(path, i), ParseCommunity)
	}
	return out
}

func (d *decoder) largeCommunities(n *yaml.Node, path string) []LargeCommunity {
	items := d.sequence(n, path)
	out := make([]LargeCommunity, len(items))
	for i, item := range items {
		out[i], _ = parseScalar(d, item, indexPath(path, i), ParseLargeCommunity)
	}
	return out
}

func (d *decoder) med(n *yaml.Node, path string) *uint32 {
	v, ok := d.bounded(n, path, 0, math.MaxUint32)
	if !ok {
		return nil
	}
	med := uint32(v)
	return &med
}

func (d *decoder) asn(n *yaml.Node, path string, dst *uint32) {
	if v, ok := d.bounded(n, path, 1, math.MaxUint32); ok {
		*dst = uint32(v)
	}
}

func (d *decoder) peer(n *yaml.Node, path string, p *Peer) {
	p.HoldTime = defaultHoldTime
	p.BFD = BFD{Interval: defaultBFD, Multiplier: defaultBFDMult}
	d.mapping(n, path, []field{
		{"address", func(n *yaml.Node, path string) { p.Address, _ = parseScalar(d, n, path, parseAddr) }},
		{"asn", func(n *yaml.Node, path string) { d.asn(n, path, &p.ASN) }},
		{"local_address", func(n *yaml.Node, path string) { p.LocalAddress, _ = parseScalar(d, n, path, parseOptionalAddr) }},
		{"passive", func(n *yaml.Node, path string) { d.boolean(n, path, &p.Passive) }},
		{"hold_time", func(n *yaml.Node, path string) { d.duration(n, path, &p.HoldTime) }},
		{"keepalive", func(n *yaml.Node, path string) { d.duration(n, path, &p.Keepalive) }},
		{"password", func(n *yaml.Node, path string) { d.str(n, path, &p.Password) }},
		{"multihop", func(n *yaml.Node, path string) {
			v, _ := d.bounded(n, path, 0, math.MaxUint8)
			p.Multihop = uint8(v)
		}},
		{"bfd", func(n *yaml.Node, path string) {
			d.mapping(n, path, []field{
				{"enabled", func(n *yaml.Node, path string) { d.boolean(n, path, &p.BFD.Enabled) }},
				{"interval", func(n *yaml.Node, path string) { d.duration(n, path, &p.BFD.Interval) }},
				{"multiplier", func(n *yaml.Node, path string) {
					v, ok := d.bounded(n, path, 1, math.MaxUint8)
					if ok {
						p.BFD.Multiplier = uint8(v)
					}
				}},
			})
		}},
	})
	if !d.present[path+".keepalive"] {
		p.Keepalive = defaultKeepalive(p.HoldTime)
	}
}

func (d *decoder) announcement(n *yaml.Node, path string, a *Announcement) {
	d.mapping(n, path, []field{
		{"prefix", func(n *yaml.Node, p string) { a.Prefix, _ = parseScalar(d, n, p, parsePrefix) }},
		{"next_hop", func(n *yaml.Node, p string) { a.NextHop, _ = parseScalar(d, n, p, parseOptionalAddr) }},
		{"communities", func(n *yaml.Node, p string) { a.Communities = d.communities(n, p) }},
		{"large_communities", func(n *yaml.Node, p string) { a.LargeCommunities = d.largeCommunities(n, p) }},
		{"med", func(n *yaml.Node, p string) { a.MED = d.med(n, p) }},
		{"prepend", func(n *yaml.Node, p string) {
			v, _ := d.bounded(n, p, 0, maxPrepend)
			a.Prepend = uint8(v)
		}},
	})
}

func (v *validator) bgp(b *BGP) {
	switch b.ASN {
	case 0:
		v.add("bgp.asn", "required")
	case asTrans:
		v.add("bgp.asn", "AS %d (AS_TRANS) is reserved", asTrans)
	}
	switch {
	case !b.RouterID.IsValid():
		v.add("bgp.router_id", "required")
	case !b.RouterID.Is4():
		v.add("bgp.router_id", "must be an IPv4 address, got %s", b.RouterID)
	case b.RouterID.IsUnspecified():
		v.add("bgp.router_id", "must not be 0.0.0.0")
	}

	if len(b.Peers) == 0 {
		v.add("bgp.peers", "at least one peer is required")
	}
	peers := map[netip.Addr]int{}
	for i := range b.Peers {
		v.peer(b, i, peers)
	}

	if len(b.Announce) == 0 {
		v.add("bgp.announce", "at least one prefix is required")
	}
	prefixes := map[netip.Prefix]int{}
	for i := range b.Announce {
		v.announcement(&b.Announce[i], i, prefixes)
	}
	v.levels(b)
}

// levels checks bgp.levels: a higher level never prepends less than the
// one below it, and prepends go to eBGP peers only.
func (v *validator) levels(b *BGP) {
	ibgp := netip.Addr{}
	for _, p := range b.Peers {
		if p.ASN != 0 && p.ASN == b.ASN {
			ibgp = p.Address
			break
		}
	}
	prev := -1 // index of the level below when its prepend is right
	for i, name := range ShedLevels {
		path := "bgp.levels." + name
		l := &b.Levels[i]
		ok := false
		switch {
		case v.bad(path + ".prepend"):
		case l.Prepend > maxPrepend:
			v.add(path+".prepend", "%s", rangeMsg(int64(l.Prepend), 0, maxPrepend))
		case l.Prepend > 0 && ibgp.IsValid():
			v.add(path+".prepend", "prepending is for eBGP only, and peer %s is iBGP (it would drop the route as a loop): set 0 and steer with communities or med", ibgp)
		case prev >= 0 && l.Prepend < b.Levels[prev].Prepend:
			v.add(path+".prepend", "%d is less than %s's %d: a higher level must not attract more traffic", l.Prepend, ShedLevels[prev], b.Levels[prev].Prepend)
		default:
			ok = true
		}
		prev = -1
		if ok {
			prev = i
		}
		v.communities(path, l.Communities)
		v.largeCommunities(path, l.LargeCommunities)
	}
}

func (v *validator) communities(path string, cs []Community) {
	seen := map[Community]int{}
	for k, c := range cs {
		p := indexPath(path+".communities", k)
		if v.bad(p) {
			continue
		}
		if j, dup := seen[c]; dup {
			v.add(p, "duplicate community %s (also communities[%d])", c, j)
		} else {
			seen[c] = k
		}
	}
}

func (v *validator) largeCommunities(path string, cs []LargeCommunity) {
	seen := map[LargeCommunity]int{}
	for k, c := range cs {
		p := indexPath(path+".large_communities", k)
		if v.bad(p) {
			continue
		}
		if j, dup := seen[c]; dup {
			v.add(p, "duplicate large community %s (also large_communities[%d])", c, j)
		} else {
			seen[c] = k
		}
	}
}

func (v *validator) peer(b *BGP, i int, seen map[netip.Addr]int) {
	p := &b.Peers[i]
	path := indexPath("bgp.peers", i)
	switch a := p.Address; {
	case !a.IsValid():
		v.add(path+".address", "required")
	case a.IsUnspecified() || a.IsMulticast():
		v.add(path+".address", "%s is not a unicast address", a)
	case !v.bad(path + ".address"):
		if j, dup := seen[a]; dup {
			v.add(path+".address", "duplicate peer %s (also bgp.peers[%d])", a, j)
		} else {
			seen[a] = i
		}
	}
	switch p.ASN {
	case 0:
		v.add(path+".asn", "required")
	case asTrans:
		v.add(path+".asn", "AS %d (AS_TRANS) is reserved", asTrans)
	}
	if l := p.LocalAddress; l.IsValid() && p.Address.IsValid() && l.Is4() != p.Address.Is4() {
		v.add(path+".local_address", "%s is not in the address family of peer %s", l, p.Address)
	}
	switch h := p.HoldTime; {
	case h < minHoldTime || h > maxHoldTime:
		v.add(path+".hold_time", "must be between %s and %s, got %s", minHoldTime, maxHoldTime, h)
	case h%time.Second != 0:
		v.add(path+".hold_time", "must be whole seconds, got %s", h)
	}
	switch k := p.Keepalive; {
	case k <= 0:
		v.add(path+".keepalive", "must be greater than 0, got %s", k)
	case k > p.HoldTime && !v.bad(path+".hold_time"):
		v.add(path+".keepalive", "must not exceed hold_time (%s), got %s", p.HoldTime, k)
	case k%time.Second != 0:
		v.add(path+".keepalive", "must be whole seconds, got %s", k)
	}
	if len(p.Password) > maxMD5KeyLen {
		v.add(path+".password", "TCP MD5 keys are at most %d bytes, got %d", maxMD5KeyLen, len(p.Password))
	}
	if p.Multihop > 0 && p.ASN != 0 && p.ASN == b.ASN {
		v.add(path+".multihop", "applies only to eBGP; this peer's asn is the local asn")
	}
	if p.BFD.Enabled {
		if iv := p.BFD.Interval; iv < minBFD || iv > maxBFD {
			v.add(path+".bfd.interval", "must be between %s and %s, got %s", minBFD, maxBFD, iv)
		}
		if p.BFD.Multiplier < 1 {
			v.add(path+".bfd.multiplier", "must be at least 1, got %d", p.BFD.Multiplier)
		}
	}
}

func (v *validator) announcement(a *Announcement, i int, seen map[netip.Prefix]int) {
	path := indexPath("bgp.announce", i)
	switch p := a.Prefix; {
	case !p.IsValid():
		v.add(path+".prefix", "required")
	case p != p.Masked():
		v.add(path+".prefix", "%s has host bits set (did you mean %s?)", p, p.Masked())
	case !v.bad(path + ".prefix"):
		if j, dup := seen[p]; dup {
			v.add(path+".prefix", "duplicate prefix %s (also bgp.announce[%d])", p, j)
		} else {
			seen[p] = i
		}
	}
	if nh := a.NextHop; nh.IsValid() {
		switch {
		case nh.IsUnspecified() || nh.IsMulticast():
			v.add(path+".next_hop", "%s is not a unicast address (leave empty for self)", nh)
		case a.Prefix.IsValid() && nh.Is4() != a.Prefix.Addr().Is4():
			v.add(path+".next_hop", "%s is not in the address family of prefix %s", nh, a.Prefix)
		}
	}
	v.communities(path, a.Communities)
	v.largeCommunities(path, a.LargeCommunities)
	if a.Prepend > maxPrepend {
		v.add(path+".prepend", "%s", rangeMsg(int64(a.Prepend), 0, maxPrepend))
	}
}
