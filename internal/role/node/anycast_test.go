package node

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
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
