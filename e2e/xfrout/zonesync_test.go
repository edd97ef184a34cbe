//go:build linux

package xfrout

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/anycastdns/anycastdns/internal/dnsserver"
	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/tsig"
	"github.com/anycastdns/anycastdns/internal/zone"
	"github.com/anycastdns/anycastdns/internal/zonesync"
)

// TestZonesyncSecondary: the node's own secondary (internal/zonesync, its
// NOTIFY receiver on a dnsserver listener) follows the control plane's
// catalog and zones: members appear, change by IXFR and disappear, with
// the store's exact content.
func TestZonesyncSecondary(t *testing.T) {
	ctx := t.Context()
	st := openStore(t)
	for _, z := range []string{"a.example.", "b.example."} {
		if _, err := st.CreateZoneFromText(ctx, z, strings.NewReader(memberText(z, 10)), store.SerialIncrement); err != nil {
			t.Fatal(err)
		}
	}

	// The node: a DNS listener handing NOTIFYs to the zone manager.
	h := dnsserver.NewHandler(dnsserver.Settings{MaxUDP: 1232}, nil)
	dnsSrv, err := dnsserver.New(dnsserver.Config{Listen: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")}, Readers: 1}, h, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	runTask(t, "dnsserver", dnsSrv.Run, dnsSrv.Ready())
	primary := startServer(t, st, dnsSrv.Addrs()[0], true)

	m, err := zonesync.New(zonesync.Config{
		DataDir:     t.TempDir(),
		Keys:        []tsig.Key{{Name: keyName, Algorithm: "hmac-sha256", Secret: keySecret}},
		Catalog:     &zonesync.Catalog{Zone: catalog, Primaries: []zonesync.Primary{{Addr: primary, Key: keyName}}},
		NotifyAllow: []zonesync.NotifyACL{{Prefix: netip.MustParsePrefix("127.0.0.1/32"), Key: keyName}},
	}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	h.SetNotify(m.Notify)
	runTask(t, "zonesync", m.Run, nil)

	// waitSame waits until the node serves exactly the store's zones.
	waitSame := func(step string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			diff := compareZones(t, st, m.Zones())
			if diff == "" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the node's zones differ from the store's 30s later (-store +node):\n%s", step, diff)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitSame("initial transfers")

	if _, err := st.SetRRset(ctx, "a.example.", "new.a.example.", dns.TypeTXT, []dns.RR{mustRR(t, `new.a.example. 300 IN TXT "x"`)}); err != nil {
		t.Fatal(err)
	}
	waitSame("after a change")
	// A change this small fits in one UDP message (RFC 1995 §2).
	if n := zonesyncCounter(t, m, "anycastd_zonesync_transfers_total", map[string]string{"type": "ixfr_udp", "result": "ok"}); n < 1 {
		t.Errorf("the node did %v IXFRs over UDP, want the change to come by IXFR", n)
	}

	if _, err := st.CreateZoneFromText(ctx, "c.example.", strings.NewReader(memberText("c.example.", 5)), store.SerialIncrement); err != nil {
		t.Fatal(err)
	}
	waitSame("after a zone creation")
	if err := st.DeleteZone(ctx, "b.example."); err != nil {
		t.Fatal(err)
	}
	waitSame("after a zone deletion")
}

// runTask runs a task until the test ends; ready, when not nil, is waited
// for.
func runTask(t *testing.T, name string, run func(context.Context) error, ready <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: %v", name, err)
		}
	})
	if ready == nil {
		return
	}
	select {
	case <-ready:
	case err := <-done:
		done <- err // for the cleanup
		t.Fatalf("%s: %v", name, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("%s not ready after 10s", name)
	}
}

// compareZones returns the differences between the store's zones and
// served, "" when there are none.
func compareZones(t *testing.T, st *store.Store, served []*zone.Zone) string {
	t.Helper()
	infos, err := st.ListZones(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{}
	for _, zi := range infos {
		want[zi.Name], _ = storeRecords(t, st, zi.Name)
	}
	got := map[string][]string{}
	for _, z := range served {
		rrs, err := z.RRs()
		if err != nil {
			t.Fatal(err)
		}
		got[z.Origin] = rrStrings(rrs)
	}
	return cmp.Diff(want, got)
}

// zonesyncCounter reads a counter of the zone manager, summed over the
// series that have labels.
func zonesyncCounter(t *testing.T, m *zonesync.Manager, name string, labels map[string]string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	for _, c := range m.Collectors() {
		if err := reg.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, mt := range f.GetMetric() {
			if hasLabels(mt, labels) {
				total += mt.GetCounter().GetValue()
			}
		}
	}
	return total
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
			n++
		}
	}
	return n == len(want)
}
