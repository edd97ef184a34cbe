package update

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/store"
)

// TestApplyStore: an UPDATE through a real store is one new version;
// unsigned, unknown-zone and refused ones change nothing.
func TestApplyStore(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "zones.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	if _, err := st.CreateZoneFromText(ctx, "example.com.", strings.NewReader(zoneText), ""); err != nil {
		t.Fatal(err)
	}
	u, err := New(st, []Rule{{Key: "acme.", Zones: []string{"example.com."}, Match: MatchSubdomain, Name: "_acme-challenge.example.com.", Types: []uint16{dns.TypeTXT}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	src := netip.MustParseAddrPort("192.0.2.9:5353")
	add := []dns.RR{rr(t, `_acme-challenge.example.com. 60 IN TXT "one"`), rr(t, `_acme-challenge.example.com. 60 IN TXT "two"`)}
	for _, tc := range []struct {
		name   string
		zone   string
		key    string
		upd    []dns.RR
		want   int
		serial uint32
	}{
		{"unsigned", "example.com.", "", add, dns.RcodeRefused, 100},
		{"unknown zone", "example.org.", "acme.", nil, dns.RcodeNotAuth, 100},
		{"refused by policy", "example.com.", "acme.", []dns.RR{rr(t, "www.example.com. 60 IN A 192.0.2.1")}, dns.RcodeRefused, 100},
		{"added, one serial step for two records", "example.com.", "acme.", add, dns.RcodeSuccess, 101},
		{"deleted", "example.com.", "acme.", []dns.RR{hdr("_acme-challenge.example.com.", dns.ClassANY, dns.TypeTXT)}, dns.RcodeSuccess, 102},
	} {
		m := new(dns.Msg)
		m.SetUpdate(tc.zone)
		m.Ns = tc.upd
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		var in dns.Msg
		if err := in.Unpack(b); err != nil {
			t.Fatal(err)
		}
		res := u.Apply(ctx, &in, tc.key, src)
		if res.Rcode != tc.want {
			t.Errorf("%s: rcode %s (%v), want %s", tc.name, dns.RcodeToString[res.Rcode], res.Err, dns.RcodeToString[tc.want])
		}
		z, _ := st.Zone(ctx, "example.com.")
		if z.Serial != tc.serial {
			t.Errorf("%s: serial %d, want %d", tc.name, z.Serial, tc.serial)
		}
	}
	txt, _ := st.RRset(ctx, "example.com.", "_acme-challenge.example.com.", dns.TypeTXT)
	if len(txt) != 0 {
		t.Errorf("after the delete: %v", txt)
	}
}
