package main

import (
	"bufio"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

func TestLayoutAddsUp(t *testing.T) {
	for _, n := range []int{100, 1000, 100_000, 1_000_000} {
		l, err := layout(n)
		if err != nil {
			t.Fatal(err)
		}
		got := fixedNames + l.hosts + l.cnames + 3*l.delegs + l.wildExplicit
		if got != n || l.hosts <= 0 || l.delegs <= 0 || l.cnames <= 0 || l.groups <= 0 {
			t.Errorf("layout(%d) = %+v, adds up to %d", n, l, got)
		}
	}
	if _, err := layout(99); err == nil {
		t.Error("layout(99) succeeded")
	}
}

func TestRandomCase(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	in := "h12345.g7.bench.example."
	upper, lower := 0, 0
	for range 200 {
		out := randomCase(r, in)
		if strings.ToLower(out) != in {
			t.Fatalf("randomCase(%q) = %q: not the same name", in, out)
		}
		for _, c := range out {
			switch {
			case c >= 'A' && c <= 'Z':
				upper++
			case c >= 'a' && c <= 'z':
				lower++
			}
		}
	}
	if share := float64(upper) / float64(upper+lower); share < 0.4 || share > 0.6 {
		t.Errorf("upper-case share %.2f, want about one half", share)
	}
}

// zoneOwners reads the owner names of a generated zone file.
func zoneOwners(t *testing.T, path, origin string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	owners := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "$") {
			continue
		}
		owner := strings.Fields(line)[0]
		if owner == "@" {
			owner = origin
		} else {
			owner += "." + origin
		}
		owners[owner]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return owners
}

func TestGenerate(t *testing.T) {
	dir := t.TempDir()
	cfg := genConfig{Origin: "bench.example.", Names: 10_000, Queries: 20_000, Seed: 7}
	zd, err := generate(cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	owners := zoneOwners(t, zd.ZonePath, cfg.Origin)
	if len(owners) != cfg.Names || zd.Names != cfg.Names {
		t.Errorf("zone has %d owner names, reported %d, want %d", len(owners), zd.Names, cfg.Names)
	}
	records := 0
	for _, n := range owners {
		records += n
	}
	if records != zd.Records {
		t.Errorf("zone has %d records, reported %d", records, zd.Records)
	}
	if fi, err := os.Stat(zd.ZonePath); err != nil || fi.Size() != zd.Bytes {
		t.Errorf("zone file size %v (%v), reported %d", fi.Size(), err, zd.Bytes)
	}
	if owners[strings.ToLower(zd.Probe.Name)] == 0 {
		t.Errorf("probe %s is not in the zone", zd.Probe.Name)
	}

	b, err := os.ReadFile(zd.QueryPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != cfg.Queries {
		t.Errorf("query file has %d lines, want %d", len(lines), cfg.Queries)
	}
	mixed := 0
	for _, l := range lines {
		name, typ, ok := strings.Cut(l, " ")
		if !ok || typ == "" || !strings.HasSuffix(strings.ToLower(name), "."+cfg.Origin) && strings.ToLower(name) != cfg.Origin {
			t.Fatalf("bad query line %q", l)
		}
		if name != strings.ToLower(name) {
			mixed++
		}
	}
	if mixed < len(lines)*9/10 {
		t.Errorf("%d of %d query names have upper-case letters; want nearly all", mixed, len(lines))
	}
	total := 0
	for k := range numKinds {
		total += zd.Mix[k]
		share := 100 * float64(zd.Mix[k]) / float64(cfg.Queries)
		if math.Abs(share-float64(kindShare[k])) > 1.5 {
			t.Errorf("%s: %.1f%% of queries, want about %d%%", k, share, kindShare[k])
		}
		if len(zd.Samples[k]) != samplesPerKind {
			t.Errorf("%s: %d samples, want %d", k, len(zd.Samples[k]), samplesPerKind)
		}
	}
	if total != cfg.Queries {
		t.Errorf("mix adds up to %d, want %d", total, cfg.Queries)
	}

	// Each sample is the kind it claims to be, judged from the zone file.
	isENT := func(n string) bool {
		for o := range owners {
			if strings.HasSuffix(o, "."+n) {
				return true
			}
		}
		return false
	}
	delegated := regexp.MustCompile(`(^|\.)d[0-9]+\.bench\.example\.$`)
	underCut := func(n string) bool {
		for ; n != cfg.Origin; _, n, _ = strings.Cut(n, ".") {
			if delegated.MatchString(n) && owners[n] > 0 {
				return true
			}
		}
		return false
	}
	for k, samples := range zd.Samples {
		for _, q := range samples {
			n := strings.ToLower(q.Name)
			var ok bool
			switch kind(k) {
			case kindPositive, kindCNAME:
				ok = owners[n] > 0 && !underCut(n)
			case kindNXDomain:
				ok = owners[n] == 0 && !isENT(n) && !underCut(n) && !strings.Contains(n, ".wild.")
			case kindNoData:
				ok = (owners[n] > 0 || isENT(n)) && !underCut(n)
			case kindReferral:
				ok = underCut(n)
			case kindWildcard:
				ok = owners[n] == 0 && strings.HasSuffix(n, ".wild."+cfg.Origin)
			}
			if !ok {
				t.Errorf("%s sample %s %s is not of its kind in the zone", kind(k), q.Name, typeString(q.Type))
			}
		}
	}

	// The same seed gives the same files.
	dir2 := t.TempDir()
	zd2, err := generate(cfg, dir2)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := os.ReadFile(zd2.QueryPath)
	if string(b) != string(b2) {
		t.Error("same seed, different query files")
	}
	if diff := cmp.Diff(zd.Mix, zd2.Mix); diff != "" {
		t.Errorf("same seed, different mix:\n%s", diff)
	}
}

// TestZoneIsValid has NSD's zone checker read the generated zone (Knot
// loads it in TestServers).
func TestZoneIsValid(t *testing.T) {
	testkit.RequireTool(t, "nsd-checkzone", "nsd")
	zd, err := generate(genConfig{Origin: "bench.example.", Names: 2000, Seed: 1}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("nsd-checkzone", zd.Origin, zd.ZonePath).CombinedOutput()
	if err != nil {
		t.Fatalf("nsd-checkzone: %v\n%s", err, out)
	}
}
