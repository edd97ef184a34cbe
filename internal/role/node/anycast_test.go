package node

import (
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/anycastdns/anycastdns/internal/health"
)

func TestSampler(t *testing.T) {
	all := make([]string, 5)
	for i := range all {
		all[i] = fmt.Sprintf("z%d.", i)
	}
	s := sampler(func() []string { return all }, 3)
	var got [][]string
	for range 3 {
		got = append(got, s())
	}
	want := [][]string{{"z0.", "z1.", "z2."}, {"z3.", "z4.", "z0."}, {"z1.", "z2.", "z3."}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	small := sampler(func() []string { return all[:2] }, 3)
	if d := cmp.Diff(all[:2], small()); d != "" {
		t.Errorf("fewer names than the window: %s", d)
	}
}

func TestServedOf(t *testing.T) {
	want := func() []string {
		return []string{"a.example.", "B.example", "new.example.", "old.example.", "Stale.example", "disk.example."}
	}
	loaded := func() map[string]health.ZoneState {
		return map[string]health.ZoneState{
			"a.example.":     {Serial: 1},
			"b.example.":     {Serial: 2},
			"old.example.":   {Serial: 3, Expired: true},
			"stale.example.": {Serial: 5, Expired: true},
			"disk.example.":  {Serial: 6, Expired: true, Unconfirmed: true}, // not loaded yet
			"other.example.": {Serial: 4},                                   // loaded but not wanted
		}
	}
	got := servedOf(want, loaded)()
	if w := []string{"a.example.", "B.example"}; !slices.Equal(got, w) {
		t.Errorf("servedOf = %v, want %v", got, w)
	}
	got = expiredOf(want, loaded)()
	if w := []string{"old.example.", "Stale.example"}; !slices.Equal(got, w) {
		t.Errorf("expiredOf = %v, want %v", got, w)
	}
}
