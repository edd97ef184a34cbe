package announce

import (
	"fmt"
	"net/netip"

	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// family returns the GoBGP address family of a prefix.
func family(p netip.Prefix) bgp.Family {
	if p.Addr().Is4() {
		return bgp.RF_IPv4_UC
	}
	return bgp.RF_IPv6_UC
}

// path builds the GoBGP path for an announcement. localASN is repeated
// a.Prepend times at the head of the AS path; GoBGP itself prepends the one
// mandatory copy when it exports to an eBGP peer.
func path(a Announcement, localASN uint32, withdraw bool) (*apiutil.Path, error) {
	nlri, err := bgp.NewIPAddrPrefix(a.Prefix)
	if err != nil {
		return nil, fmt.Errorf("nlri %v: %w", a.Prefix, err)
	}
	fam := family(a.Prefix)
	// An unspecified next hop makes GoBGP put the session's local address in
	// its place when it exports to an eBGP peer ("next hop self").
	nh := a.NextHop
	if !nh.IsValid() {
		if fam == bgp.RF_IPv4_UC {
			nh = netip.IPv4Unspecified()
		} else {
			nh = netip.IPv6Unspecified()
		}
	}
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	if fam == bgp.RF_IPv4_UC {
		a, err := bgp.NewPathAttributeNextHop(nh)
		if err != nil {
			return nil, fmt.Errorf("next hop %v: %w", nh, err)
		}
		attrs = append(attrs, a)
	} else {
		a, err := bgp.NewPathAttributeMpReachNLRI(fam, []bgp.PathNLRI{{NLRI: nlri}}, nh)
		if err != nil {
			return nil, fmt.Errorf("next hop %v: %w", nh, err)
		}
		attrs = append(attrs, a)
	}
	var segs []bgp.AsPathParamInterface
	if a.Prepend > 0 {
		asns := make([]uint32, a.Prepend)
		for i := range asns {
			asns[i] = localASN
		}
		segs = append(segs, bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, asns))
	}
	attrs = append(attrs, bgp.NewPathAttributeAsPath(segs))
	if a.MED != nil {
		attrs = append(attrs, bgp.NewPathAttributeMultiExitDisc(*a.MED))
	}
	if len(a.Communities) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeCommunities(append([]uint32(nil), a.Communities...)))
	}
	if len(a.LargeCommunities) > 0 {
		lcs := make([]*bgp.LargeCommunity, len(a.LargeCommunities))
		for i, c := range a.LargeCommunities {
			lcs[i] = bgp.NewLargeCommunity(c[0], c[1], c[2])
		}
		attrs = append(attrs, bgp.NewPathAttributeLargeCommunities(lcs))
	}
	return &apiutil.Path{Family: fam, Nlri: nlri, Attrs: attrs, Withdrawal: withdraw}, nil
}
