package anycastctl

import (
	"io"
	"time"

	"github.com/anycastdns/anycastdns/internal/admin"
	"github.com/anycastdns/anycastdns/internal/fleet/level"
)

// levelLine says which level the node announces at and why, in a few
// words: "shed-2, pinned by the operator: rack upgrade".
func levelLine(l *admin.Level) string {
	s := l.Level.String()
	switch l.Source {
	case admin.SourceOperator:
		s += ", pinned by the operator"
	case admin.SourceControl:
		s += ", from the control plane"
	case admin.SourceDefault:
		return s + " (no pin, no level from the control plane)"
	case admin.SourceHealth, admin.SourceDrain, admin.SourceShutdown:
		// The reason says it.
	default:
		s += ", from " + orDash(l.Source)
	}
	if l.Reason != "" {
		s += ": " + oneLine(l.Reason)
	}
	return s
}

// writeLevel prints the level in force and, when there are any, the
// operator's pin and the control plane's level as a table.
func writeLevel(ew *errWriter, l *admin.Level, now time.Time, indent string) {
	ew.printf("%slevel: %s\n", indent, levelLine(l))
	if l.Pin == nil && l.Control == nil {
		return
	}
	var tb table
	tb.row("SOURCE", "LEVEL", "SINCE", "VALID UNTIL", "REASON")
	if p := l.Pin; p != nil {
		tb.row("operator", p.Level.String(), when(p.Since, now), "unpinned", orDash(oneLine(p.Reason)))
	}
	if c := l.Control; c != nil {
		tb.row("control", c.Level.String(), when(c.Since, now), when(c.Until, now), orDash(oneLine(c.Reason)))
	}
	tb.writeTo(ew, indent+"  ")
}

// when is a time with how long ago, or in how long, it is.
func when(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	s := t.UTC().Format(time.RFC3339)
	if d := now.Sub(t); d >= 0 {
		return s + " (" + fmtAge(d) + " ago)"
	}
	return s + " (in " + fmtAge(now.Sub(t)*-1) + ")"
}

// WriteLevel reports a node's level (anycastctl level).
func WriteLevel(w io.Writer, st admin.Status, now time.Time) error {
	ew := &errWriter{w: w}
	if st.Level == nil {
		ew.printf("%s: no level: the node has no BGP configured\n", orDash(st.Node))
		return ew.err
	}
	ew.printf("%s: ", orDash(st.Node))
	writeLevel(ew, st.Level, now, "")
	return ew.err
}

// WritePinned reports the outcome of a pin at want.
func WritePinned(w io.Writer, st admin.Status, want level.Level, now time.Time) error {
	ew := &errWriter{w: w}
	ew.printf("%s: pinned at %s; it overrides the control plane's level until anycastctl level -unpin\n", orDash(st.Node), want)
	switch l := st.Level; {
	case l == nil:
		ew.printf("warning: the node reports no level\n")
	case l.Level != want:
		ew.printf("warning: the node announces at %s\n", levelLine(l))
	}
	if st.Level != nil {
		writeLevel(ew, st.Level, now, "")
	}
	return ew.err
}

// WriteUnpinned reports the outcome of an unpin.
func WriteUnpinned(w io.Writer, st admin.Status, now time.Time) error {
	ew := &errWriter{w: w}
	ew.printf("%s: unpinned\n", orDash(st.Node))
	switch l := st.Level; {
	case l == nil:
		ew.printf("warning: the node reports no level\n")
	case l.Pin != nil:
		ew.printf("warning: the node still reports a pin at %s\n", l.Pin.Level)
		writeLevel(ew, l, now, "")
	default:
		writeLevel(ew, l, now, "")
	}
	return ew.err
}
