package lab

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDefaultTopology(t *testing.T) {
	topo, err := DefaultTopology()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range topo.Regions {
		names = append(names, r.Name)
		if len(r.PoPs) != 1 || len(r.Clients) != 1 {
			t.Errorf("region %s: %d PoPs and %d clients, want one of each", r.Name, len(r.PoPs), len(r.Clients))
		}
		if r.Link.Delay != 5*time.Millisecond {
			t.Errorf("region %s: delay %s inside the region, want 5ms", r.Name, r.Link.Delay)
		}
	}
	if d := cmp.Diff([]string{"A", "B", "C"}, names); d != "" {
		t.Errorf("regions (-want +got):\n%s", d)
	}
	want := []netip.Prefix{netip.MustParsePrefix("192.0.2.53/32"), netip.MustParsePrefix("2001:db8::53/128")}
	if d := cmp.Diff(want, topo.Anycast, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Errorf("anycast (-want +got):\n%s", d)
	}
	for _, l := range topo.Links {
		if l.Delay < 20*time.Millisecond || l.Delay > 40*time.Millisecond {
			t.Errorf("link %s—%s: delay %s, want 20-40ms between regions", l.A, l.B, l.Delay)
		}
	}
	if topo.ECMP {
		t.Error("default topology has ECMP on; single best path is the default")
	}
}

// The steering topology: B's catchment holds three client networks that
// a shed B-pop loses one at a time (see steering.yaml).
func TestSteeringTopology(t *testing.T) {
	topo, err := SteeringTopology()
	if err != nil {
		t.Fatal(err)
	}
	stubs, pops := 0, 0
	for _, r := range topo.Regions {
		if r.Stub {
			stubs++
		}
		pops += len(r.PoPs)
	}
	if stubs != 2 || pops != 3 {
		t.Errorf("%d stub regions and %d PoPs, want 2 and 3", stubs, pops)
	}
	if c := newPlan("t", topo).centralPoP(); c != "B-pop" {
		t.Errorf("central PoP %s, want B-pop (the scenarios' target)", c)
	}
	example, err := os.ReadFile("../../examples/lab/steering.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(example, SteeringTopologyYAML()) {
		t.Error("examples/lab/steering.yaml differs from internal/lab/steering.yaml: copy one over the other")
	}
}

// The example users copy and the embedded default must not drift apart.
func TestExampleIsEmbeddedDefault(t *testing.T) {
	example, err := os.ReadFile("../../examples/lab/default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(example, DefaultTopologyYAML()) {
		t.Error("examples/lab/default.yaml differs from internal/lab/default.yaml: copy one over the other")
	}
}

// Each testdata/*.bad.yaml starts with "# want: TEXT" lines; every TEXT must
// appear in the error the file gives.
func TestBadTopologies(t *testing.T) {
	files, err := filepath.Glob("testdata/*.bad.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad topologies: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var wants []string
			for _, line := range strings.Split(string(data), "\n") {
				if w, ok := strings.CutPrefix(line, "# want: "); ok {
					wants = append(wants, w)
				}
			}
			if len(wants) == 0 {
				t.Fatal("no # want: line")
			}
			_, err = ParseTopology(f, data)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalidTopology) {
				t.Errorf("error %v does not wrap ErrInvalidTopology", err)
			}
			for _, w := range wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestTopologyDefaults(t *testing.T) {
	topo, err := ParseTopology("min.yaml", []byte(`
anycast: [192.0.2.53/32]
regions:
  - {name: A, asn: 65001, loopback4: 203.0.113.1, loopback6: "2001:db8:0:1::1"}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Topology{
		Anycast:   []netip.Prefix{netip.MustParsePrefix("192.0.2.53/32")},
		LinkPool4: netip.MustParsePrefix("100.64.0.0/16"),
		LinkPool6: netip.MustParsePrefix("2001:db8:ffff::/48"),
		BGP:       BGPTimers{HoldTime: 9 * time.Second, Keepalive: 3 * time.Second},
		BFD:       BFD{Interval: 100 * time.Millisecond, Multiplier: 3},
		Regions: []Region{{Name: "A", ASN: 65001,
			Loopback4: netip.MustParseAddr("203.0.113.1"), Loopback6: netip.MustParseAddr("2001:db8:0:1::1")}},
	}
	if d := cmp.Diff(want, *topo, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestLinkPoolTooSmall(t *testing.T) {
	topo, err := DefaultTopology()
	if err != nil {
		t.Fatal(err)
	}
	topo.LinkPool4 = netip.MustParsePrefix("100.64.0.0/29") // 4 links, 8 needed
	err = topo.Validate()
	if err == nil || !strings.Contains(err.Error(), "holds 4 /31 links, the topology needs 8") {
		t.Errorf("Validate = %v", err)
	}
}
