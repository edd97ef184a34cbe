package lab

import (
	"fmt"
	"io"
	"time"
)

// The control-failover scenario (controlfail_linux.go): two replicas of
// the control plane on one PostgreSQL, a writer that sends a steady
// stream of API writes to the first and moves on to the second when the
// first fails, the first killed (SIGKILL) mid-stream.

// ControlFailoverZone is the zone the scenario writes to.
const ControlFailoverZone = "failover.example."

// The bounds the scenario checks.
const (
	// ControlFailoverMaxGap is the longest time allowed between the last
	// write acknowledged by the killed replica and the first one
	// acknowledged by the other.
	ControlFailoverMaxGap = 2 * time.Second
	// controlFailoverEvery is the writer's pace: one write every 30 ms
	// (every write a name of its own, so that each can be verified).
	controlFailoverEvery = 30 * time.Millisecond
	// controlFailoverBefore and controlFailoverAfter are how long the
	// writer writes before the kill and after it.
	controlFailoverBefore = 3 * time.Second
	controlFailoverAfter  = 3 * time.Second
	// controlFailoverWriteTimeout bounds one API call of the writer: a
	// replica that does not answer in that time is given up for the next.
	controlFailoverWriteTimeout = time.Second
	// controlFailoverConverge bounds the wait for every PoP to serve
	// every acknowledged write.
	controlFailoverConverge = 20 * time.Second
)

// ControlFailoverLine is the control-failover scenario's outcome: one
// JSON object with -json.
type ControlFailoverLine struct {
	Scenario string `json:"scenario"`
	// Writes the writer attempted, and those a replica acknowledged.
	Writes       int `json:"writes"`
	Acknowledged int `json:"acknowledged"`
	// Lost counts the acknowledged writes missing from the zone in the
	// database or on any PoP (at its unicast address) at the end.
	Lost int `json:"lost"`
	// GapMS is the time from the last write acknowledged by the killed
	// replica to the first acknowledged by the other; null when no write
	// was acknowledged on both sides of the kill.
	GapMS *float64 `json:"gap_ms"`
	// PoPsConverged: every PoP served the zone's final serial and every
	// acknowledged write within the wait.
	PoPsConverged bool `json:"pops_converged"`

	// Replicas of the control plane, and the namespaces of the one
	// killed and of the one the writer moved to.
	Replicas  int    `json:"replicas"`
	Killed    string `json:"killed"`
	Survivor  string `json:"survivor"`
	AckedBy1  int    `json:"acked_by_killed"`
	AckedBy2  int    `json:"acked_by_survivor"`
	FailedAll int    `json:"unacknowledged"`
	// CommittedUnacked counts writes that no replica acknowledged but
	// that are in the database (the killed replica committed them and
	// died before it answered).
	CommittedUnacked int `json:"committed_unacknowledged"`
	// KillToAckMS is the time from the SIGKILL to the first write
	// acknowledged by the survivor.
	KillToAckMS *float64 `json:"kill_to_ack_ms"`
	// SerialsIncreasing: the serials of the acknowledged writes, in the
	// order of the writes, each higher than the one before (no serial
	// given twice, across both replicas).
	SerialsIncreasing bool   `json:"serials_increasing"`
	FinalSerial       uint32 `json:"final_serial"`
	// MissingDB counts the acknowledged writes missing from the database,
	// MissingPoPs those missing on each PoP at the end of the wait.
	MissingDB   int            `json:"missing_db"`
	MissingPoPs map[string]int `json:"missing_pops"`
	// ConvergedMS is the time from the writer's last write to every PoP
	// serving everything; null when they did not within the wait.
	ConvergedMS *float64 `json:"converged_ms"`
	// ReplicaRejoined: the killed replica, started again, served the
	// final serial from the database.
	ReplicaRejoined bool `json:"replica_rejoined"`
}

// failures lists the bounds the outcome misses.
func (c *ControlFailoverLine) failures() []string {
	var out []string
	if c.Lost > 0 {
		out = append(out, fmt.Sprintf("%d acknowledged writes lost (database %d, PoPs %s)", c.Lost, c.MissingDB, fmtCounts(c.MissingPoPs)))
	}
	switch {
	case c.GapMS == nil:
		out = append(out, "no write acknowledged by both replicas around the kill: no failover measured")
	case *c.GapMS > float64(ControlFailoverMaxGap.Milliseconds()):
		out = append(out, fmt.Sprintf("writes resumed after %.1f ms, more than %s", *c.GapMS, ControlFailoverMaxGap))
	}
	if !c.PoPsConverged {
		out = append(out, "not every PoP served every acknowledged write and the final serial within "+controlFailoverConverge.String())
	}
	if !c.SerialsIncreasing {
		out = append(out, "the acknowledged serials did not increase write after write")
	}
	return out
}

func writeControlFailoverTable(w io.Writer, c *ControlFailoverLine) {
	printf(w, "KILLED\tSURVIVOR\tWRITES\tACKED (killed/survivor)\tLOST\tGAP ms\tKILL→ACK ms\tFINAL SERIAL\tPOPS CONVERGED\tCONVERGED ms\t\n")
	printf(w, "%s\t%s\t%d\t%d (%d/%d)\t%d\t%s\t%s\t%d\t%v\t%s\t\n", c.Killed, c.Survivor, c.Writes, c.Acknowledged, c.AckedBy1, c.AckedBy2,
		c.Lost, fmtMS(c.GapMS), fmtMS(c.KillToAckMS), c.FinalSerial, c.PoPsConverged, fmtMS(c.ConvergedMS))
}
