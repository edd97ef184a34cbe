// Package anycastctl is the logic of the operator CLI: it renders a node's
// admin status for people and asks DNS servers which PoP answers (NSID).
// cmd/anycastctl parses the flags and calls it.
package anycastctl

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/anycastdns/anycastdns/internal/admin"
	"github.com/anycastdns/anycastdns/internal/fleet/level"
)

// WriteStatus prints st as a report: the node's state, its health checks
// with each one's last result, its PoP level and where it comes from, the
// BGP sessions, the announced prefixes and the zones. now is the time the ages of check results are counted from.
func WriteStatus(w io.Writer, st admin.Status, now time.Time) error {
	ew := &errWriter{w: w}
	var tb table
	tb.row("node", orDash(st.Node))
	tb.row("version", orDash(st.Version))
	tb.row("uptime", fmtUptime(st.Uptime))
	tb.row("state", state(st))
	tb.writeTo(ew, "")

	health := "healthy"
	if !st.Healthy {
		health = "UNHEALTHY"
	}
	ew.printf("\nhealth: %s\n", health)
	if len(st.Checks) == 0 {
		ew.printf("  no checks\n")
	} else {
		var tb table
		tb.row("CHECK", "RESULT", "LAST RUN", "LATENCY", "ERROR")
		for _, c := range st.Checks {
			result, last, latency := "ok", "never", "-"
			if !c.OK {
				result = "FAIL"
			}
			if !c.Last.IsZero() {
				age := now.Sub(c.Last)
				when := fmtAge(age) + " ago"
				if age < 0 {
					when = "in " + fmtAge(-age) + ": clocks differ"
				}
				last = fmt.Sprintf("%s (%s)", c.Last.UTC().Format(time.RFC3339), when)
				latency = fmtRTT(c.Latency)
			} else {
				result = "-"
			}
			tb.row(c.Name, result, last, latency, oneLine(c.Error))
		}
		tb.writeTo(ew, "  ")
	}

	if st.Level != nil {
		ew.printf("\n")
		writeLevel(ew, st.Level, now, "")
	}

	ew.printf("\nbgp sessions: %d\n", len(st.Sessions))
	if len(st.Sessions) > 0 {
		var tb table
		tb.row("PEER", "ASN", "STATE", "UPTIME", "BFD")
		for _, s := range st.Sessions {
			uptime := "-"
			if s.Uptime > 0 {
				uptime = fmtUptime(s.Uptime)
			}
			tb.row(s.Peer.String(), strconv.FormatUint(uint64(s.ASN), 10), s.State, uptime, orDash(s.BFD))
		}
		tb.writeTo(ew, "  ")
	}

	ew.printf("\nannounced prefixes: %d\n", len(st.Announced))
	for _, p := range st.Announced {
		ew.printf("  %s\n", p)
	}

	expired := 0
	for _, z := range st.Zones {
		if z.Expired {
			expired++
		}
	}
	if expired > 0 {
		ew.printf("\nzones: %d, %d EXPIRED (answered SERVFAIL until a primary confirms them)\n", len(st.Zones), expired)
	} else {
		ew.printf("\nzones: %d\n", len(st.Zones))
	}
	if len(st.Zones) > 0 {
		var tb table
		head := []string{"ZONE", "SERIAL", "RECORDS", "SOURCE"}
		if expired > 0 {
			head = append(head, "STATE")
		}
		tb.row(head...)
		for _, z := range st.Zones {
			row := []string{z.Name, strconv.FormatUint(uint64(z.Serial), 10), strconv.Itoa(z.Records), orDash(z.Source)}
			switch {
			case z.Expired:
				row = append(row, "EXPIRED")
			case expired > 0:
				row = append(row, "ok")
			}
			tb.row(row...)
		}
		tb.writeTo(ew, "  ")
	}
	return ew.err
}

// state sums up whether the node serves and announces, and why not.
func state(st admin.Status) string {
	var parts []string
	if st.Ready {
		parts = append(parts, "ready")
	} else {
		parts = append(parts, "NOT READY")
	}
	if st.Healthy {
		parts = append(parts, "healthy")
	} else {
		parts = append(parts, "UNHEALTHY")
	}
	if st.Drained {
		parts = append(parts, "DRAINED by the operator")
	}
	if l := st.Level; l != nil && l.Level != level.Normal && (l.Source == admin.SourceOperator || l.Source == admin.SourceControl) {
		who := "pinned by the operator"
		if l.Source == admin.SourceControl {
			who = "from the control plane"
		}
		parts = append(parts, fmt.Sprintf("level %s %s", l.Level, who))
	}
	if n := len(st.Announced); n > 0 {
		parts = append(parts, "announcing "+plural(n, "prefix", "prefixes"))
	} else {
		parts = append(parts, "announcing nothing")
	}
	return strings.Join(parts, ", ")
}

// WriteDrained reports the outcome of a drain.
func WriteDrained(w io.Writer, st admin.Status) error {
	ew := &errWriter{w: w}
	ew.printf("%s: drained; it keeps answering queries on every address\n", orDash(st.Node))
	if n := len(st.Announced); n > 0 {
		ew.printf("warning: still announcing %s: %s\n", plural(n, "prefix", "prefixes"), prefixes(st))
	} else {
		ew.printf("routes withdrawn; run anycastctl undrain to announce again\n")
	}
	return ew.err
}

// WriteUndrained reports the outcome of an undrain.
func WriteUndrained(w io.Writer, st admin.Status) error {
	ew := &errWriter{w: w}
	ew.printf("%s: undrained\n", orDash(st.Node))
	switch {
	case st.Drained:
		ew.printf("warning: the node still reports itself drained\n")
	case len(st.Announced) > 0:
		ew.printf("announcing %s\n", prefixes(st))
	case !st.Healthy:
		var failing []string
		for _, c := range st.Checks {
			if !c.OK {
				failing = append(failing, c.Name)
			}
		}
		msg := "not announcing until healthy"
		if len(failing) > 0 {
			msg += "; failing: " + strings.Join(failing, ", ")
		}
		ew.printf("%s\n", msg)
	default:
		ew.printf("announcing nothing yet (anycastctl status shows the sessions)\n")
	}
	return ew.err
}

func prefixes(st admin.Status) string {
	s := make([]string, len(st.Announced))
	for i, p := range st.Announced {
		s[i] = p.String()
	}
	return strings.Join(s, " ")
}

// fmtUptime is a duration in days, hours, minutes and seconds.
func fmtUptime(d time.Duration) string {
	d = d.Round(time.Second)
	if d < 24*time.Hour {
		return d.String()
	}
	days := d / (24 * time.Hour)
	return strconv.FormatInt(int64(days), 10) + "d" + (d - days*24*time.Hour).String()
}

// fmtAge is how long ago something happened, as precise as is useful.
func fmtAge(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return fmtUptime(d)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// table aligns columns two spaces apart, without trailing blanks.
type table struct{ rows [][]string }

func (t *table) row(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) writeTo(ew *errWriter, indent string) {
	var widths []int
	for _, r := range t.rows {
		for i, c := range r {
			if i == len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range t.rows {
		var b strings.Builder
		b.WriteString(indent)
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+2))
			}
		}
		ew.printf("%s\n", strings.TrimRight(b.String(), " "))
	}
}
