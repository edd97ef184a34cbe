package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/anycastdns/anycastdns/bench/internal/benchkit"
)

func TestPairedNames(t *testing.T) {
	for _, tc := range []struct {
		only []string
		want []string
	}{
		{[]string{"anycastd", "nsd", "knot"}, []string{"anycastd", "knot", "nsd"}},
		{[]string{"nsd"}, []string{"nsd"}},
		{[]string{"anycastd", "knot"}, nil},
	} {
		if got := pairedNames(tc.only); !cmp.Equal(got, tc.want) {
			t.Errorf("pairedNames(%v) = %v, want %v", tc.only, got, tc.want)
		}
	}
}

func pair(p50, p99, nsdP50, nsdP99 time.Duration) pairedRun {
	return pairedRun{Server: benchkit.LatencyStats{P50: p50, P99: p99}, NSD: benchkit.LatencyStats{P50: nsdP50, P99: nsdP99}}
}

func TestPairedRoundsFigures(t *testing.T) {
	us := time.Microsecond
	pr := pairedRounds{Server: "anycastd", Runs: []pairedRun{
		pair(60*us, 200*us, 70*us, 250*us),  // 0.8
		pair(70*us, 330*us, 70*us, 300*us),  // 1.1
		pair(65*us, 210*us, 60*us, 210*us),  // 1.0
		pair(50*us, 900*us, 80*us, 1000*us), // 0.9
	}}
	if got, want := pr.MedianRatio(), 0.95; got < want-1e-9 || got > want+1e-9 {
		t.Errorf("MedianRatio = %v, want %v (mean of the middle two of an even count)", got, want)
	}
	if got := pr.notWorse(); got != 3 {
		t.Errorf("notWorse = %d, want 3", got)
	}
	p50, p99, n50, n99, _, _ := pr.medians()
	// medianOf takes the upper middle of an even count.
	if p50 != 65*us || p99 != 330*us || n50 != 70*us || n99 != 300*us {
		t.Errorf("medians = %v %v %v %v", p50, p99, n50, n99)
	}
	if r := (pairedRun{}).P99Ratio(); r != 0 {
		t.Errorf("ratio without NSD figures = %v, want 0", r)
	}

	rows := pairedRows([]pairedRounds{pr, {Server: "nsd"}})
	if len(rows) != 3 {
		t.Fatalf("rows = %d, want header + 2", len(rows))
	}
	got := strings.Join(rows[1], "|")
	for _, want := range []string{"anycastd|4|", "0.95", "0.80-1.10", "3/4"} {
		if !strings.Contains(got, want) {
			t.Errorf("row %q lacks %q", got, want)
		}
	}
	if rows[2][0] != "nsd (control)" || rows[2][2] != "failed" {
		t.Errorf("control row without runs = %v", rows[2])
	}
}
