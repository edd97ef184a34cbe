package geodb

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anycastdns/anycastdns/internal/geodb/geodbtest"
	"github.com/anycastdns/anycastdns/internal/steer"
)

// testPlaces: a country database as GeoLite2-Country lays it out.
var testPlaces = []geodbtest.Place{
	{Network: "198.51.100.0/24", Country: "DE", Registered: "DE", Continent: "EU"},
	{Network: "198.51.101.0/24", Country: "DE", Registered: "DE", Continent: "EU"}, // the same record as the one before
	{Network: "203.0.113.0/24", Country: "US", Registered: "US", Continent: "NA"},
	{Network: "192.0.2.0/24", Country: "", Registered: "FR", Continent: "EU"}, // no country: the registered country
	{Network: "100.64.0.0/10", Country: "", Registered: "", Continent: "OC"},  // a continent only
	{Network: "2001:db8:1::/48", Country: "JP", Registered: "JP", Continent: "AS"},
	{Network: "2001:db8:2::/48", Country: "BR", Registered: "BR", Continent: "SA"}, // mapped to nothing
}

func writeTestDB(t *testing.T, places []geodbtest.Place) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.mmdb")
	geodbtest.Write(t, path, places)
	return path
}

var testMapping = Mapping{
	Countries:  map[string]string{"DE": "eu", "FR": "eu", "US": "us"},
	Continents: map[string]string{"AS": "ap", "OC": "ap", "EU": "eu-other"},
}

func TestLoad(t *testing.T) {
	path := writeTestDB(t, testPlaces)
	nets, info, err := Load(path, testMapping)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, n := range nets {
		got[n.Prefix.String()] = n.Region
	}
	want := map[string]string{
		"198.51.100.0/23": "eu", "203.0.113.0/24": "us", // the writer merged the two /24 of one record
		"192.0.2.0/24": "eu", "100.64.0.0/10": "ap", "2001:db8:1::/48": "ap",
	}
	if len(got) != len(want) || len(nets) != len(want) {
		t.Errorf("networks %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("network %s: region %q, want %q", k, got[k], v)
		}
	}
	if info.Type != "GeoLite2-Country" || info.Networks != len(testPlaces)-1 || info.Mapped != len(want) ||
		info.Countries != 5 || info.Built.Unix() != 1765000000 {
		t.Errorf("info %+v", info)
	}

	// The networks make a map that places clients by them, ECS scope the
	// widest block of one region, the operator's prefixes first.
	g, err := steer.NewGeoMapDB(map[netip.Prefix]string{netip.MustParsePrefix("203.0.112.0/23"): "eu"}, nets)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		client string
		region string
		scope  uint8
	}{
		{"198.51.101.0/24", "eu", 23},
		{"192.0.2.0/24", "eu", 24},
		{"100.66.0.0/24", "ap", 10},
		{"203.0.113.0/24", "eu", 23}, // the operator's prefix wins over the database's us
		{"203.0.113.200/32", "eu", 23},
		{"2001:db8:1:ab00::/56", "ap", 48},
		{"2001:db8:2::/56", "", 56},
	} {
		p := netip.MustParsePrefix(tc.client)
		region, scope, _ := g.Lookup(steer.NewClient(p.Addr(), p.Bits(), true))
		if region != tc.region || scope != tc.scope {
			t.Errorf("Lookup(%s) = %q/%d, want %q/%d", tc.client, region, scope, tc.region, tc.scope)
		}
	}
}

// TestLoadBadFiles: every bad file gives an error that names it.
func TestLoadBadFiles(t *testing.T) {
	dir := t.TempDir()
	good, err := os.ReadFile(writeTestDB(t, testPlaces))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"empty.mmdb":     {},
		"text.mmdb":      []byte("198.51.100.0/24 DE\n"),
		"truncated.mmdb": good[:len(good)/2],
		"corrupt.mmdb":   corrupt(good),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	names := []string{"missing.mmdb"}
	for name := range files {
		names = append(names, name)
	}
	for _, name := range names {
		path := filepath.Join(dir, name)
		_, _, err := Load(path, testMapping)
		if err == nil {
			t.Errorf("%s: loaded", name)
			continue
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %q does not name the file", name, err)
		}
	}
	// A database without a network.
	if _, _, err := Load(writeTestDB(t, nil), testMapping); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty database: %v", err)
	}
}

// corrupt overwrites the search tree's first records so that they point
// past the data section.
func corrupt(good []byte) []byte {
	b := append([]byte(nil), good...)
	for i := range 64 {
		b[i] = 0xff
	}
	return b
}
