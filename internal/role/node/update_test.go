package node

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/anycastdns/anycastdns/internal/config"
)

// TestUpdatePrimaries: an UPDATE goes to the primaries of its secondary
// zone, to the catalog's for a member, nowhere for a file zone or a zone
// not served.
func TestUpdatePrimaries(t *testing.T) {
	a := netip.MustParseAddrPort("192.0.2.1:53")
	b := netip.MustParseAddrPort("192.0.2.2:5300")
	c := netip.MustParseAddrPort("[2001:db8::1]:53")
	cfg := &config.Node{
		Zones: []config.Zone{
			{Name: "sec.example.", Primaries: []config.Primary{{Addr: a}, {Addr: b, Key: "k."}}},
			{Name: "file.example.", File: "file.zone"},
		},
		Catalog: &config.Catalog{Zone: "catalog.invalid.", Primaries: []config.Primary{{Addr: c}}},
	}
	members := func() []string { return []string{"member.example.", "sec.example."} }
	prim := updatePrimaries(cfg, members)
	for zone, want := range map[string][]netip.AddrPort{
		"sec.example.":    {a, b},
		"member.example.": {c},
		"file.example.":   nil,
		"other.example.":  nil,
	} {
		if got := prim(zone); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", zone, got, want)
		}
	}
	cfg.Catalog = nil
	if got := updatePrimaries(cfg, members)("member.example."); got != nil {
		t.Errorf("member without a catalog: %v", got)
	}
}
