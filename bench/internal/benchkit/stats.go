package benchkit

import (
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Percentile returns the p-th percentile (0 < p <= 100) of sorted durations
// by the nearest-rank method.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(float64(len(sorted))*p/100+0.999999) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

// LatencyStats summarises latencies: percentiles by nearest rank.
type LatencyStats struct {
	Count int           `json:"count"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	P999  time.Duration `json:"p999_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Summarise returns the percentiles of lat (in any order; lat is not
// changed).
func Summarise(lat []time.Duration) LatencyStats {
	s := slices.Clone(lat)
	slices.Sort(s)
	st := LatencyStats{Count: len(s)}
	if len(s) > 0 {
		st.P50, st.P90, st.P99, st.P999 = Percentile(s, 50), Percentile(s, 90), Percentile(s, 99), Percentile(s, 99.9)
		st.Max = s[len(s)-1]
	}
	return st
}

// WriteTable writes rows with right-aligned columns two spaces apart.
func WriteTable(b *strings.Builder, rows [][]string) {
	var width []int
	for _, row := range rows {
		for i, c := range row {
			if i == len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	for _, row := range rows {
		for i, c := range row {
			b.WriteString(strings.Repeat(" ", 2+width[i]-utf8.RuneCountInString(c)))
			b.WriteString(c)
		}
		b.WriteByte('\n')
	}
}
