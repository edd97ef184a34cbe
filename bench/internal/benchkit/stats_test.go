package benchkit

import (
	"slices"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 1000; i++ {
		d = append(d, time.Duration(i)*time.Microsecond)
	}
	tests := []struct {
		p    float64
		want time.Duration
	}{
		{50, 500 * time.Microsecond},
		{99, 990 * time.Microsecond},
		{99.9, 999 * time.Microsecond},
		{100, 1000 * time.Microsecond},
		{0.01, 1 * time.Microsecond},
	}
	for _, tt := range tests {
		if got := Percentile(d, tt.p); got != tt.want {
			t.Errorf("Percentile(1..1000µs, %v) = %v, want %v", tt.p, got, tt.want)
		}
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("Percentile(nil) = %v", got)
	}
}

func TestSummarise(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 1000; i++ {
		d = append(d, time.Duration(i)*time.Microsecond)
	}
	// Summarise sorts a copy.
	rev := slices.Clone(d)
	slices.Reverse(rev)
	st := Summarise(rev)
	if st.P50 != 500*time.Microsecond || st.Max != time.Millisecond || st.Count != 1000 || rev[0] != time.Millisecond {
		t.Errorf("summarise = %+v (input[0] = %v)", st, rev[0])
	}
}
