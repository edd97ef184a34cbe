package lab

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/fleet/level"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

// nftChecks has nft check a ruleset (nft -c) in a network namespace of its
// own, when root; otherwise only the golden file speaks.
func nftChecks(t *testing.T, rules string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	nft := testkit.RequireTool(t, "nft", "nftables")
	unshare := testkit.RequireTool(t, "unshare", "util-linux")
	path := filepath.Join(t.TempDir(), "rules.nft")
	if err := os.WriteFile(path, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(unshare, "--net", nft, "-c", "-f", path).CombinedOutput(); err != nil {
		t.Errorf("nft -c rejects the rules: %v: %s\n%s", err, out, rules)
	}
}

// TestBlackholeRules: the blackhole drops DNS forwarded out of the router's
// interface to the PoP, to the anycast and the PoP's own addresses, and
// nothing else.
func TestBlackholeRules(t *testing.T) {
	p := steeringPlan(t)
	rules, err := p.blackholeRules("B-pop")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "B-pop.blackhole.nft", []byte(rules))
	for _, want := range []string{`oifname "B-pop" ip daddr { 192.0.2.53, 203.0.113.102 }`, `oifname "B-pop" ip6 daddr { 2001:db8::53, 2001:db8:0:102::1 }`, "th dport 53", "hook forward"} {
		if !strings.Contains(rules, want) {
			t.Errorf("rules lack %q:\n%s", want, rules)
		}
	}
	nftChecks(t, rules)
	if _, err := p.blackholeRules("B-router"); err == nil {
		t.Error("a blackhole of a router was accepted")
	}
}

func TestPartitionRules(t *testing.T) {
	rules := steeringPlan(t).partitionRules("B")
	golden(t, "B.partition.nft", []byte(rules))
	nftChecks(t, rules)
}

// TestCalibrateQuota: the quota is the idle CPU plus what the wanted
// capacity costs at the measured cost per query, never below the floor;
// a load that added too little to measure is an error.
func TestCalibrateQuota(t *testing.T) {
	for _, tc := range []struct {
		name         string
		idle, loaded nodeLoad
		capacity     float64
		want         float64
		err          bool
	}{
		{"measured", nodeLoad{30, 0.02}, nodeLoad{4530, 0.11}, 1800, 0.02 - 0.09/4500*30 + 0.09/4500*1800, false},
		// Queries in the idle reading do not count twice.
		{"busy idle", nodeLoad{530, 0.03}, nodeLoad{4530, 0.11}, 1800, 0.03 - 0.08/4000*530 + 0.08/4000*1800, false},
		{"floor", nodeLoad{0, 0}, nodeLoad{10000, 0.01}, 100, minQuota, false},
		{"cpu fell", nodeLoad{30, 0.05}, nodeLoad{4530, 0.04}, 1800, 0.05, false},
		{"no load", nodeLoad{30, 0.02}, nodeLoad{90, 0.03}, 1800, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := calibrateQuota(tc.idle, tc.loaded, tc.capacity)
			if (err != nil) != tc.err {
				t.Fatalf("err %v, want error %v", err, tc.err)
			}
			if !tc.err && (got < tc.want-1e-9 || got > tc.want+1e-9) {
				t.Errorf("quota %g, want %g", got, tc.want)
			}
		})
	}
}

func TestLevelChanges(t *testing.T) {
	t0 := time.Now()
	cs := []levelChange{
		{at: t0, pop: "B-pop", from: level.Normal, to: level.Shed1},
		{at: t0.Add(8 * time.Second), pop: "B-pop", from: level.Shed1, to: level.Shed2},
		{at: t0.Add(9 * time.Second), pop: "A-pop", from: level.Normal, to: level.Withdrawn},
		{at: t0.Add(17 * time.Second), pop: "B-pop", from: level.Shed2, to: level.Shed1},
	}
	b := changesOf(cs, "B-pop")
	if got := levelPath(b); got != "normal→shed-1→shed-2→shed-1" {
		t.Errorf("path %q", got)
	}
	if g := minGap(b); g == nil || *g != 8000 {
		t.Errorf("min gap %v, want 8000 ms", g)
	}
	// Gaps are per PoP: A's change a second after B's is no flap.
	if g := minGap(cs); g == nil || *g != 8000 {
		t.Errorf("min gap over every PoP %v, want 8000 ms", g)
	}
	if minGap(cs[:1]) != nil || levelPath(nil) != "" {
		t.Error("one change has no gap; none has no path")
	}
	if got := levelPaths(cs); got != "B-pop: normal→shed-1→shed-2→shed-1; A-pop: normal→withdrawn" {
		t.Errorf("paths %q", got)
	}
	if withdrawnIn(b) || !withdrawnIn(cs) {
		t.Error("withdrawn: want only A-pop's")
	}
}

// TestCgroupLayout: v1's cpu controller first, then v2 with cpu enabled,
// else ErrNoCPUController.
func TestCgroupLayout(t *testing.T) {
	v1 := t.TempDir()
	if err := os.MkdirAll(filepath.Join(v1, "cpu"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v1, "cpu", "cpu.cfs_quota_us"), []byte("-1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if base, v2, err := cgroupLayout(v1); err != nil || v2 || base != filepath.Join(v1, "cpu") {
		t.Errorf("v1: %s %v %v", base, v2, err)
	}
	v2dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(v2dir, "cgroup.controllers"), []byte("cpuset cpu io memory pids\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if base, v2, err := cgroupLayout(v2dir); err != nil || !v2 || base != v2dir {
		t.Errorf("v2: %s %v %v", base, v2, err)
	}
	none := t.TempDir()
	if err := os.WriteFile(filepath.Join(none, "cgroup.controllers"), []byte("memory pids\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cgroupLayout(none); !errors.Is(err, ErrNoCPUController) {
		t.Errorf("no cpu controller: %v", err)
	}
}

// TestSteeringOutput: each steering line carries the keys the issue names,
// and the overload's extras when set.
func TestSteeringOutput(t *testing.T) {
	on, n, share := true, 2, 0.33
	r := &Result{Scenario: "overload", Lines: []Line{{Scenario: "overload", Client: "D-client", PoPBefore: "B-pop", PoPAfter: "A-pop", PoP: "B-pop",
		Sent: 4000, SwitchMS: ms(1500 * time.Millisecond), Monitor: &on, LevelChanges: &n, Levels: "normal→shed-1→normal", ShedShare: &share,
		P95MSBefore: ms(95 * time.Millisecond), P95MSAfter: ms(12 * time.Millisecond)}}}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(js.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"scenario", "client", "pop_before", "pop_after", "sent", "lost", "switch_ms", "level_changes", "shed_share", "p95_ms_before", "p95_ms_after", "monitor"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in %s", k, js.String())
		}
	}
	var tb bytes.Buffer
	if err := r.WriteTable(&tb); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"D-client", "A-pop", "normal→shed-1→normal", "0.33", "95.0 / 12.0"} {
		if !strings.Contains(tb.String(), want) {
			t.Errorf("table has no %q:\n%s", want, tb.String())
		}
	}
}
