package node

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/geodb/geodbtest"
	"github.com/anycastdns/anycastdns/internal/steer"
	"github.com/anycastdns/anycastdns/internal/stream"
)

// answers is what the engine answers a client for an up,least-load pool
// over .1 and .2.
func answers(t *testing.T, e *steer.Engine) []string {
	t.Helper()
	rd, err := steer.Encode(dns.TypeA, steer.Pool{TTL: 5, Policy: []string{"up", "least-load"},
		Endpoints: []steer.Endpoint{{Address: netip.MustParseAddr("192.0.2.1")}, {Address: netip.MustParseAddr("192.0.2.2")}}})
	if err != nil {
		t.Fatal(err)
	}
	var d steer.Decision
	if !e.Decide(rd, steer.NewClient(netip.MustParseAddr("198.51.100.7"), 32, false), &d) {
		t.Fatal("pool refused")
	}
	var out []string
	for i := range d.Len() {
		out = append(out, net.IP(d.Rdata(i)).String())
	}
	return out
}

// TestSteeringApplied: a steering frame becomes the engine's state (a down
// endpoint leaves the answers, load steers least-load), an older or equal
// version is dropped, and the status shows the version in force.
func TestSteeringApplied(t *testing.T) {
	s := newSteering()
	if got := answers(t, s.engine); len(got) != 2 {
		t.Fatalf("without a state: %v, want both", got)
	}
	if s.status() != nil {
		t.Fatal("status before any state")
	}
	now := time.Now()
	if !s.apply(stream.Steering{Version: 10, Endpoints: map[string]stream.SteeringEndpoint{"192.0.2.1": {Down: true}}}, now) {
		t.Fatal("version 10 not applied")
	}
	if got := answers(t, s.engine); len(got) != 1 || got[0] != "192.0.2.2" {
		t.Fatalf("with .1 down: %v, want [192.0.2.2]", got)
	}
	if s.apply(stream.Steering{Version: 9}, now) || s.apply(stream.Steering{Version: 10}, now) {
		t.Fatal("an older or equal version applied")
	}
	if got := answers(t, s.engine); len(got) != 1 {
		t.Fatalf("after a dropped state: %v", got)
	}
	lo, hi := 1.0, 50.0
	s.apply(stream.Steering{Version: 11, Endpoints: map[string]stream.SteeringEndpoint{"192.0.2.1": {Load: &hi}, "192.0.2.2": {Load: &lo}}}, now)
	if got := answers(t, s.engine); len(got) != 1 || got[0] != "192.0.2.2" {
		t.Fatalf("least-load with loads 50 and 1: %v, want [192.0.2.2]", got)
	}
	s.apply(stream.Steering{Version: 12, Endpoints: map[string]stream.SteeringEndpoint{"192.0.2.1": {Load: &lo}, "192.0.2.2": {Load: &hi}}}, now)
	if got := answers(t, s.engine); len(got) != 1 || got[0] != "192.0.2.1" {
		t.Fatalf("least-load with loads 1 and 50: %v, want [192.0.2.1]", got)
	}
	st := s.status()
	if st == nil || st.Version != 12 || len(st.Endpoints) != 2 || st.Endpoints[0].Endpoint != "192.0.2.1" || *st.Endpoints[1].Load != 50 {
		t.Fatalf("status %+v", st)
	}
	rtt := stateOf(stream.Steering{RTTms: map[string]map[string]float64{"eu": {"192.0.2.1": 2.5}}}).RTT
	if rtt["eu"]["192.0.2.1"] != 2500*time.Microsecond {
		t.Errorf("RTT %v, want 2.5ms", rtt)
	}
}

// TestSteeringGeo: the node's map of client places (configuration section
// steering: prefixes and a MaxMind database) places clients for geo pools,
// stays under every steering frame applied after it, and is replaced whole
// by the next; a database that cannot be read is an error naming it.
func TestSteeringGeo(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "geo.mmdb")
	geodbtest.Write(t, db, []geodbtest.Place{
		{Network: "198.51.100.0/24", Country: "DE", Continent: "EU"},
		{Network: "203.0.113.0/24", Country: "US", Continent: "NA"},
		{Network: "2001:db8:1::/48", Country: "JP", Continent: "AS"},
	})
	cfg := config.Steering{
		Regions:     map[netip.Prefix]string{netip.MustParsePrefix("192.0.2.0/24"): "us"},
		GeoDatabase: db,
		Countries:   map[string]string{"DE": "eu"},
		Continents:  map[string]string{"NA": "us", "AS": "eu"},
	}
	rd, err := steer.Encode(dns.TypeA, steer.Pool{TTL: 5, Policy: []string{"up", "geo", "first-n"},
		Endpoints: []steer.Endpoint{{Address: netip.MustParseAddr("192.0.2.1"), Region: "eu"}, {Address: netip.MustParseAddr("192.0.2.2"), Region: "us"}}})
	if err != nil {
		t.Fatal(err)
	}
	place := func(s *steering, client string) (string, uint8) {
		t.Helper()
		p := netip.MustParsePrefix(client)
		var d steer.Decision
		if !s.engine.Decide(rd, steer.NewClient(p.Addr(), p.Bits(), true), &d) || d.Len() != 1 {
			t.Fatalf("%s: no decision", client)
		}
		return net.IP(d.Rdata(0)).String(), d.Scope
	}
	want := func(s *steering, client, answer string, scope uint8) {
		t.Helper()
		if got, sc := place(s, client); got != answer || sc != scope {
			t.Errorf("%s: %s scope %d, want %s scope %d", client, got, sc, answer, scope)
		}
	}

	s := newSteering()
	g, info, err := geoMap(cfg, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s.setGeo(g, info)
	want(s, "198.51.100.0/24", "192.0.2.1", 24) // DE → eu, from the database
	want(s, "203.0.113.0/24", "192.0.2.2", 24)  // NA → us
	want(s, "192.0.2.0/24", "192.0.2.2", 24)    // the operator's prefix
	want(s, "2001:db8:1::/56", "192.0.2.1", 48) // AS → eu
	st := s.status()
	if st == nil || st.Geo == nil || st.Geo.Digest != g.Digest() || st.Geo.Prefixes != 1 || st.Geo.Ranges != 3 ||
		st.Geo.Networks != 3 || st.Geo.Mapped != 3 || st.Geo.Database != db || st.Geo.DatabaseType != "GeoLite2-Country" {
		t.Fatalf("status %+v", st)
	}

	// A steering frame keeps the map: .1 down sends the eu client to us.
	s.apply(stream.Steering{Version: 5, Endpoints: map[string]stream.SteeringEndpoint{"192.0.2.1": {Down: true}}}, time.Now())
	want(s, "198.51.100.0/24", "192.0.2.2", 24)
	s.apply(stream.Steering{Version: 6}, time.Now())
	want(s, "198.51.100.0/24", "192.0.2.1", 24)

	// A new database (DE now us) replaces the map; the frame in force stays.
	s.apply(stream.Steering{Version: 7, Endpoints: map[string]stream.SteeringEndpoint{"192.0.2.9": {Down: true}}}, time.Now())
	geodbtest.Write(t, db, []geodbtest.Place{{Network: "198.51.100.0/23", Country: "DE", Continent: "EU"}})
	cfg.Countries = map[string]string{"DE": "us"}
	g2, info2, err := geoMap(cfg, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if g2.Digest() == g.Digest() {
		t.Fatal("a different map, the same digest")
	}
	s.setGeo(g2, info2)
	want(s, "198.51.100.0/24", "192.0.2.2", 23)
	want(s, "203.0.113.0/24", "192.0.2.1", 24) // in no region now: both stay, first-n keeps the first
	if st := s.engine.State(); st == nil || !st.Endpoints["192.0.2.9"].Down {
		t.Fatal("the frame in force was lost with the new map")
	}

	// Without the section: no map.
	if g, _, err := geoMap(config.Steering{}, time.Now()); g != nil || err != nil {
		t.Fatalf("empty section: %v, %v", g, err)
	}
	// Bad files: the error names the file.
	bad := filepath.Join(dir, "bad.mmdb")
	if err := os.WriteFile(bad, []byte("not a database"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{bad, filepath.Join(dir, "missing.mmdb")} {
		cfg.GeoDatabase = path
		if _, _, err := geoMap(cfg, time.Now()); err == nil || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %v does not name the file", path, err)
		}
	}
}
