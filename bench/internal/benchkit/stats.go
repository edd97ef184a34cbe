package benchkit

import (
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
