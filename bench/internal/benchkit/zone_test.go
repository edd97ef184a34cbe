package benchkit

import (
	"os"
	"os/exec"
	"testing"
)

func TestLayoutAddsUp(t *testing.T) {
	for _, n := range []int{100, 1000, 100_000, 1_000_000} {
		l, err := NewLayout(n)
		if err != nil {
			t.Fatal(err)
		}
		got := FixedNames + l.Hosts + l.CNAMEs + 3*l.Delegs + l.WildExplicit
		if got != n || l.Hosts <= 0 || l.Delegs <= 0 || l.CNAMEs <= 0 || l.Groups <= 0 {
			t.Errorf("NewLayout(%d) = %+v, adds up to %d", n, l, got)
		}
	}
	if _, err := NewLayout(99); err == nil {
		t.Error("NewLayout(99) succeeded")
	}
}

func TestGenerateZone(t *testing.T) {
	z, err := GenerateZone("bench.example.", 10_000, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	owners, err := ZoneOwners(z.ZonePath, z.Origin)
	if err != nil {
		t.Fatal(err)
	}
	if len(owners) != 10_000 || z.Names != 10_000 {
		t.Errorf("zone has %d owner names, reported %d, want 10000", len(owners), z.Names)
	}
	records := 0
	for _, n := range owners {
		records += n
	}
	if records != z.Records {
		t.Errorf("zone has %d records, reported %d", records, z.Records)
	}
	if fi, err := os.Stat(z.ZonePath); err != nil || fi.Size() != z.Bytes {
		t.Errorf("zone file size %v (%v), reported %d", fi.Size(), err, z.Bytes)
	}
	for _, i := range []int{0, 1, z.Layout.Hosts - 1} {
		if n := owners[z.Layout.HostName(i)+"."+z.Origin]; n != HostACount(i)+btoi(HostHasAAAA(i))+btoi(HostHasTXT(i))+btoi(HostHasMX(i)) {
			t.Errorf("host %d (%s) has %d records", i, z.Layout.HostName(i), n)
		}
	}
	if _, err := GenerateZone("bench.example.", 99, t.TempDir()); err == nil {
		t.Error("a zone of 99 names was generated")
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestZoneIsValid has NSD's zone checker read the generated zone (Knot
// loads it in the benchmarks' server tests).
func TestZoneIsValid(t *testing.T) {
	NeedTool(t, "nsd-checkzone")
	z, err := GenerateZone("bench.example.", 2000, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("nsd-checkzone", z.Origin, z.ZonePath).CombinedOutput()
	if err != nil {
		t.Fatalf("nsd-checkzone: %v\n%s", err, out)
	}
}
