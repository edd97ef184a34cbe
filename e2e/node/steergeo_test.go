//go:build linux

package node

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/geodb/geodbtest"
	"github.com/anycastdns/anycastdns/internal/steer"
)

// geoConfig serves example.com. with a geo pool at svc and places clients
// by the MaxMind database geo.mmdb beside it.
const geoConfig = `identity: {name: geo-node}
listen: {{.Listen}}
zones:
  - name: example.com.
    file: example.com.zone
steering:
  regions: {192.0.2.0/24: us}
  geo_database: geo.mmdb
  countries: {DE: eu, US: us}
`

// geoZone is example.com. with a pool at svc: geo then first-n over an eu
// and a us endpoint, without a region map of its own.
func geoZone(t *testing.T) string {
	t.Helper()
	rd, err := steer.Encode(dns.TypeA, steer.Pool{TTL: 20, Policy: []string{"geo", "first-n"}, Endpoints: []steer.Endpoint{
		{Address: netip.MustParseAddr("192.0.2.10"), Region: "eu"}, {Address: netip.MustParseAddr("192.0.2.20"), Region: "us"}}})
	if err != nil {
		t.Fatal(err)
	}
	return zoneText("example.com.", 1, fmt.Sprintf("svc 300 IN TYPE%d \\# %d %s", steer.TypePool, len(rd), hex.EncodeToString(rd)))
}

// askECS asks svc.example.com. A with the ECS subnet and returns the
// address answered and the ECS scope.
func askECS(t *testing.T, addr netip.AddrPort, subnet string) (string, int) {
	t.Helper()
	p := netip.MustParsePrefix(subnet)
	m := question("svc.example.com.", dns.TypeA, dns.ClassINET)
	m.SetEdns0(1232, false)
	m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1,
		SourceNetmask: uint8(p.Bits()), Address: net.IP(p.Addr().AsSlice())})
	r := mustExchange(t, "udp", addr, m)
	if len(r.Answer) != 1 {
		t.Fatalf("%s: answer %v", subnet, r.Answer)
	}
	a, ok := r.Answer[0].(*dns.A)
	if !ok {
		t.Fatalf("%s: answer %v", subnet, r.Answer[0])
	}
	for _, o := range r.IsEdns0().Option {
		if e, ok := o.(*dns.EDNS0_SUBNET); ok {
			return a.A.String(), int(e.SourceScope)
		}
	}
	t.Fatalf("%s: no ECS in the answer", subnet)
	return "", 0
}

// TestSteeringGeoDatabase: the real node places ECS clients by its
// MaxMind database and prefix map (steering section), re-reads the
// database on SIGHUP, keeps the running map when the new file is bad (the
// log names it), and does not start with a bad one (the error names it).
func TestSteeringGeoDatabase(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "geo.mmdb")
	geodbtest.Write(t, db, []geodbtest.Place{
		{Network: "198.51.100.0/24", Country: "DE", Continent: "EU"},
		{Network: "203.0.113.0/24", Country: "US", Continent: "NA"},
	})
	writeFile(t, filepath.Join(dir, "example.com.zone"), geoZone(t))
	n := startNode(t, nodeOpts{dir: dir, config: geoConfig})
	addr := n.addr()
	expect := func(when, subnet, answer string, scope int) {
		t.Helper()
		if got, sc := askECS(t, addr, subnet); got != answer || sc != scope {
			t.Errorf("%s: %s got %s scope %d, want %s scope %d", when, subnet, got, sc, answer, scope)
		}
	}
	expect("start", "198.51.100.0/24", "192.0.2.10", 24) // DE → eu
	expect("start", "203.0.113.0/24", "192.0.2.20", 24)  // US → us
	expect("start", "192.0.2.0/24", "192.0.2.20", 24)    // the operator's prefix

	t.Log("a new database: 198.51.100.0/23 is in the US now")
	geodbtest.Write(t, db+".new", []geodbtest.Place{{Network: "198.51.100.0/23", Country: "US", Continent: "NA"}})
	if err := os.Rename(db+".new", db); err != nil {
		t.Fatal(err)
	}
	if log := n.reload(); !strings.Contains(log, "steering map of client places changed") {
		t.Errorf("reload did not log the new map:\n%s", log)
	}
	expect("reload", "198.51.100.0/24", "192.0.2.20", 23)
	expect("reload", "203.0.113.0/24", "192.0.2.10", 24) // in no region: first-n keeps the first

	t.Log("a bad database: the running map stays, the log names the file")
	writeFile(t, db, "198.51.100.0/24 DE\n")
	if log := n.reload(); !strings.Contains(log, "configuration rejected") || !strings.Contains(log, db) {
		t.Errorf("reload with a bad database did not name it:\n%s", log)
	}
	expect("bad reload", "198.51.100.0/24", "192.0.2.20", 23)

	t.Log("start with the bad database")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, anycastdBin, "node", "-config", filepath.Join(dir, "node.yaml"))
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), db) {
		t.Errorf("start with a bad database: %v, output does not name %s:\n%s", err, db, out)
	}
}
