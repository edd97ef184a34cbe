package lab

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/anycastdns/anycastdns/internal/config"
)

// TestControlReplicasConfig: with two replicas on PostgreSQL, every PoP
// lists both as catalog primaries (the first first), NOTIFY senders and
// stream servers, and each replica listens on its own address, in a
// namespace of another region, with the shared database; anycastd
// accepts every generated file. With one replica nothing of that appears.
func TestControlReplicasConfig(t *testing.T) {
	const dsn = "host=/tmp/pgtest-x/sock port=5432 user=postgres dbname=postgres sslmode=disable"
	for _, tc := range []struct {
		replicas  int
		dsn       string
		nodes     []string // the replicas' namespaces
		servers   []string // control.servers of a PoP
		primaries []string // catalog primaries of a PoP
		notify    []string // notify_allow prefixes of a PoP
	}{
		{1, "", []string{"B-client"}, []string{"http://198.51.100.65:8054"}, []string{"198.51.100.65:53"}, []string{"198.51.100.65/32"}},
		{2, dsn, []string{"B-client", "A-client"}, []string{"http://198.51.100.65:8054", "http://198.51.100.1:8054"},
			[]string{"198.51.100.65:53", "198.51.100.1:53"}, []string{"198.51.100.65/32", "198.51.100.1/32"}},
		{3, dsn, []string{"B-client", "A-client", "C-client"}, []string{"http://198.51.100.65:8054", "http://198.51.100.1:8054", "http://198.51.100.129:8054"},
			[]string{"198.51.100.65:53", "198.51.100.1:53", "198.51.100.129:53"}, []string{"198.51.100.65/32", "198.51.100.1/32", "198.51.100.129/32"}},
	} {
		p := testPlan(t, false)
		ctl, err := p.newControlPlan()
		if err != nil {
			t.Fatal(err)
		}
		ctl.Stream = true
		if tc.replicas > 1 {
			if err := p.placeReplicas(ctl, tc.replicas); err != nil {
				t.Fatal(err)
			}
			ctl.DSN = tc.dsn
		}
		var nodes []string
		for _, s := range ctl.sites() {
			nodes = append(nodes, s.Node)
		}
		if d := cmp.Diff(tc.nodes, nodes); d != "" {
			t.Errorf("%d replicas: namespaces (-want +got):\n%s", tc.replicas, d)
		}
		b, err := p.nodeConfig("C-pop", DefaultNodeTiming, ctl)
		if err != nil {
			t.Fatal(err)
		}
		node, err := config.ParseNode(b, filepath.Join(t.TempDir(), "C-pop.node.yaml"))
		if err != nil {
			t.Fatalf("%d replicas: anycastd rejects the node config: %v\n%s", tc.replicas, err, b)
		}
		var primaries, notify []string
		for _, pr := range node.Catalog.Primaries {
			primaries = append(primaries, pr.Addr.String())
		}
		for _, n := range node.NotifyAllow {
			notify = append(notify, n.Prefix.String())
		}
		if d := cmp.Diff(tc.servers, node.Control.Servers); d != "" {
			t.Errorf("%d replicas: control.servers (-want +got):\n%s", tc.replicas, d)
		}
		if d := cmp.Diff(tc.primaries, primaries); d != "" {
			t.Errorf("%d replicas: catalog primaries (-want +got):\n%s", tc.replicas, d)
		}
		if d := cmp.Diff(tc.notify, notify); d != "" {
			t.Errorf("%d replicas: notify_allow (-want +got):\n%s", tc.replicas, d)
		}
		dirs := map[string]bool{}
		for i, s := range ctl.sites() {
			b, err := p.renderControlConfig(ctl, i)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := config.ParseControl(b, filepath.Join(t.TempDir(), controlFileOf(i)))
			if err != nil {
				t.Fatalf("replica %d of %d: anycastd rejects the control config: %v\n%s", i+1, tc.replicas, err, b)
			}
			if want := []netip.AddrPort{netip.AddrPortFrom(s.Addr4, ControlXfrPort)}; !cmp.Equal(want, cfg.Xfr.Listen, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })) {
				t.Errorf("replica %d of %d: transfers on %v, want %v", i+1, tc.replicas, cfg.Xfr.Listen, want)
			}
			if want := []netip.AddrPort{netip.AddrPortFrom(s.Addr4, ControlStreamPort)}; !cmp.Equal(want, cfg.Stream.Listen, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })) {
				t.Errorf("replica %d of %d: stream on %v, want %v", i+1, tc.replicas, cfg.Stream.Listen, want)
			}
			switch {
			case tc.dsn == "" && cfg.Store.Postgres != nil:
				t.Errorf("one replica: store %+v, want SQLite", cfg.Store.Postgres)
			case tc.dsn != "" && (cfg.Store.Postgres == nil || cfg.Store.Postgres.DSN != tc.dsn):
				t.Errorf("replica %d of %d: store %+v, want PostgreSQL at %s", i+1, tc.replicas, cfg.Store.Postgres, tc.dsn)
			}
			dirs[cfg.DataDir] = true
		}
		if len(dirs) != tc.replicas {
			t.Errorf("%d replicas share data directories: %v", tc.replicas, dirs)
		}
	}
}

// TestPlaceReplicasTooFew: a topology with fewer regions with a client
// namespace than replicas is refused, saying how many it has.
func TestPlaceReplicasTooFew(t *testing.T) {
	p := testPlan(t, false)
	ctl, err := p.newControlPlan()
	if err != nil {
		t.Fatal(err)
	}
	err = p.placeReplicas(ctl, 4)
	if err == nil || !strings.Contains(err.Error(), "4 replicas need 4 regions") || !strings.Contains(err.Error(), "has 3") {
		t.Errorf("4 replicas on 3 regions: %v, want an error saying so", err)
	}
}

// TestControlFailoverFailures: each bound the scenario checks fails the
// run when missed, and an outcome within every bound passes.
func TestControlFailoverFailures(t *testing.T) {
	gap := func(v float64) *float64 { return &v }
	good := func() ControlFailoverLine {
		return ControlFailoverLine{Scenario: "control-failover", Writes: 100, Acknowledged: 100, GapMS: gap(150), PoPsConverged: true, SerialsIncreasing: true}
	}
	for _, tc := range []struct {
		name   string
		change func(*ControlFailoverLine)
		want   string // "" = passes
	}{
		{"within every bound", func(*ControlFailoverLine) {}, ""},
		{"gap at the bound", func(c *ControlFailoverLine) { c.GapMS = gap(2000) }, ""},
		{"lost write", func(c *ControlFailoverLine) { c.Lost, c.MissingDB = 1, 1 }, "1 acknowledged writes lost"},
		{"gap over the bound", func(c *ControlFailoverLine) { c.GapMS = gap(2000.1) }, "more than 2s"},
		{"no failover", func(c *ControlFailoverLine) { c.GapMS = nil }, "no failover measured"},
		{"not converged", func(c *ControlFailoverLine) { c.PoPsConverged = false }, "not every PoP"},
		{"serial twice", func(c *ControlFailoverLine) { c.SerialsIncreasing = false }, "serials did not increase"},
	} {
		c := good()
		tc.change(&c)
		got := strings.Join(c.failures(), "; ")
		switch {
		case tc.want == "" && got != "":
			t.Errorf("%s: failures %q, want none", tc.name, got)
		case tc.want != "" && !strings.Contains(got, tc.want):
			t.Errorf("%s: failures %q, want one saying %q", tc.name, got, tc.want)
		}
	}
}
