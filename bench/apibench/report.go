package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/anycastdns/anycastdns/bench/internal/benchkit"
)

// report is what the run prints: the options and one row per case.
type report struct {
	Options *options     `json:"options"`
	Cases   []caseResult `json:"cases"`
}

// ms is a duration in milliseconds with two decimals.
func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

// printReport writes the table: changes/s and PUT latency per store and
// writer count.
func printReport(w io.Writer, rep *report) error {
	rows := [][]string{{"store", "writers", "changes", "seconds", "changes/s", "p50 ms", "p99 ms", "max ms", "serials unique"}}
	for _, c := range rep.Cases {
		rows = append(rows, []string{c.Store, strconv.Itoa(c.Writers), strconv.Itoa(c.Changes),
			fmt.Sprintf("%.1f", c.Elapsed.Seconds()), fmt.Sprintf("%.0f", c.PerSecond),
			ms(c.Latency.P50), ms(c.Latency.P99), ms(c.Latency.Max), strconv.FormatBool(c.SerialsUnique)})
	}
	var b strings.Builder
	b.WriteString("API writes: one-record PUT /v1/zones/ZONE/rrsets/NAME/A, anycastd control\n")
	b.WriteString("(sqlite: synchronous=FULL; postgres: fsync, synchronous_commit, full_page_writes on)\n")
	benchkit.WriteTable(&b, rows)
	for _, c := range rep.Cases {
		if c.Error != "" {
			fmt.Fprintf(&b, "%s, %d writers: %s\n", c.Store, c.Writers, c.Error)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
