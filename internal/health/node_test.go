package health

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/dnsserver"
	"github.com/anycastdns/anycastdns/internal/zone"
)

const testZone = `$ORIGIN example.com.
$TTL 3600
@    IN SOA ns1 hostmaster 2026010101 7200 3600 1209600 300
     IN NS  ns1
ns1  IN A   192.0.2.1
www  IN A   192.0.2.80
`

// TestNodeChecks runs the checks a node runs against the project's own DNS
// server on loopback, and drives the state with each way of failing: the
// operator switch, the maintenance file, and the DNS server going away.
func TestNodeChecks(t *testing.T) {
	recs, err := zone.Parse(strings.NewReader(testZone), "example.com.", "test")
	if err != nil {
		t.Fatal(err)
	}
	z, err := zone.Build("example.com.", recs)
	if err != nil {
		t.Fatal(err)
	}
	h := dnsserver.NewHandler(dnsserver.Settings{MaxUDP: 1232, TCP: dnsserver.TCPLimits{MaxQueries: 1}}, &dnsserver.Stats{})
	h.SetZones(zone.NewSet(z))
	logger := testLogger(t)
	srv, err := dnsserver.New(dnsserver.Config{Listen: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}, Readers: 1}, h, logger)
	if err != nil {
		t.Fatal(err)
	}
	dnsCtx, stopDNS := context.WithCancel(t.Context())
	dnsDone := make(chan error, 1)
	go func() { dnsDone <- srv.Run(dnsCtx) }()
	t.Cleanup(func() { stopDNS(); <-dnsDone })
	select {
	case <-srv.Ready():
	case err := <-dnsDone:
		t.Fatal(err)
	}

	flag := &FlagCheck{}
	file := &FileCheck{Path: filepath.Join(t.TempDir(), "maintenance")}
	checks := []Check{
		&DNSCheck{Addr: srv.Addrs()[0], Zones: func() []string { return []string{"example.com."} }},
		&ZoneCheck{Want: func() []string { return []string{"example.com."} }, Loaded: func() map[string]ZoneState {
			m := map[string]ZoneState{}
			for _, z := range h.Zones().Zones() {
				m[z.Origin] = ZoneState{Serial: z.Serial}
			}
			return m
		}},
		flag, file,
	}
	// Generous timeout: other tests may share the two cores.
	c, err := New(Config{Interval: 200 * time.Millisecond, Timeout: 150 * time.Millisecond, Rise: 2, Fall: 2}, checks, logger)
	if err != nil {
		t.Fatal(err)
	}
	start(t, c)

	expect := func(step string, want bool) {
		t.Helper()
		select {
		case got := <-c.Changes():
			if got != want {
				t.Fatalf("%s: change to %v, want %v; status %+v", step, got, want, c.Status())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no change to %v; status %+v", step, want, c.Status())
		}
		if c.Healthy() != want {
			t.Fatalf("%s: Healthy() = %v, want %v", step, c.Healthy(), want)
		}
	}
	failing := func(step, check, text string) {
		t.Helper()
		for _, st := range c.Status().Checks {
			if st.Name == check && (st.OK || !strings.Contains(st.Error, text)) {
				t.Errorf("%s: check %s ok=%v error %q, want an error with %q", step, check, st.OK, st.Error, text)
			}
		}
	}

	expect("start", true)

	flag.Set(true)
	c.CheckNow()
	expect("drain", false)
	failing("drain", "drain", "drained by operator")
	flag.Set(false)
	c.CheckNow()
	expect("undrain", true)

	if err := os.WriteFile(file.Path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	expect("maintenance file", false)
	failing("maintenance file", "maintenance_file", "maintenance file present")
	if err := os.Remove(file.Path); err != nil {
		t.Fatal(err)
	}
	expect("maintenance file removed", true)

	stopDNS()
	if err := <-dnsDone; err != nil {
		t.Fatal(err)
	}
	dnsDone <- nil // for the cleanup
	expect("dns server stopped", false)
	failing("dns server stopped", "dns", "example.com. over udp")
	failing("dns server stopped", "dns", "dial tcp")
}
