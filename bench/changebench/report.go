package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/anycastdns/anycastdns/bench/internal/benchkit"
)

type report struct {
	Options *options          `json:"options"`
	Zone    benchkit.ZoneInfo `json:"zone"`
	Servers []serverResult    `json:"servers"`
}

// targetResult is one target of issue 11 checked on one server.
type targetResult struct {
	Target string `json:"target"`
	Value  string `json:"value"`
	Pass   bool   `json:"pass"`
}

type serverResult struct {
	Server  string                `json:"server"`
	PID     int                   `json:"pid,omitempty"`
	Load    loadResult            `json:"load"`
	Changes []changeResult        `json:"changes"`
	API     benchkit.LatencyStats `json:"api_latency"`
	Answer  benchkit.LatencyStats `json:"time_to_answer"`
	// NotAnswered counts the changes not answered within the answer
	// timeout; they count as the timeout in Answer.
	NotAnswered     int    `json:"not_answered"`
	RSSAfterLoad    uint64 `json:"rss_after_load_kib"`
	RSSAfterChanges uint64 `json:"rss_after_changes_kib"`
	// HWM is the peak resident set (VmHWM) at the end.
	HWM uint64 `json:"vmhwm_kib"`
	// RSSIdle is the resident set -idle after RSSAfterChanges: the
	// memory of the server holding the zone, with nothing to do.
	RSSIdle uint64         `json:"rss_idle_kib,omitempty"`
	Targets []targetResult `json:"targets"`
	Error   string         `json:"error,omitempty"`
}

// memoryResult compares the idle memory of anycastd standalone with
// Knot's: issue 11 wants at most targetIdleFactor times.
type memoryResult struct {
	Anycastd uint64  `json:"anycastd_kib"`
	Knot     uint64  `json:"knot_kib"`
	Ratio    float64 `json:"ratio"`
	Pass     bool    `json:"pass"`
}

// memory compares the idle memory of the two servers, nil when one of
// them has no figure (failed, or -idle 0).
func (r *report) memory() *memoryResult {
	var m memoryResult
	for _, s := range r.Servers {
		if s.Error != "" {
			continue
		}
		switch s.Server {
		case "anycastd":
			m.Anycastd = s.RSSIdle
		case "knot":
			m.Knot = s.RSSIdle
		}
	}
	if m.Anycastd == 0 || m.Knot == 0 {
		return nil
	}
	m.Ratio = float64(m.Anycastd) / float64(m.Knot)
	m.Pass = m.Ratio <= targetIdleFactor
	return &m
}

// The targets of issue 11.
const (
	targetIdleFactor   = 2.0
	targetAPIMedian    = 20 * time.Millisecond
	targetAnswerMedian = 50 * time.Millisecond
	targetP99Factor    = 3.0
	targetRSSFactor    = 1.1
)

// finish computes the summaries and checks the targets. A server that
// failed, or did not get through every change, passes none.
func (r *serverResult) finish(o *options) {
	var api, answer []time.Duration
	r.NotAnswered = 0
	for _, c := range r.Changes {
		api = append(api, c.API)
		answer = append(answer, c.Answer)
		if c.NotAnswered {
			r.NotAnswered++
		}
	}
	r.API, r.Answer = benchkit.Summarise(api), benchkit.Summarise(answer)
	complete := r.Error == "" && len(r.Changes) == o.Changes
	tail := func(s benchkit.LatencyStats, what string) targetResult {
		t := targetResult{Target: what + " p99 ≤ 3× median"}
		if s.Count > 0 && s.P50 > 0 {
			f := float64(s.P99) / float64(s.P50)
			t.Value, t.Pass = fmt.Sprintf("%.2f×", f), f <= targetP99Factor
		}
		return t
	}
	r.Targets = []targetResult{
		{Target: "median API latency ≤ 20 ms", Value: durs(r.API)[0], Pass: r.API.P50 <= targetAPIMedian},
		{Target: "median time to answer ≤ 50 ms", Value: durs(r.Answer)[0], Pass: r.Answer.P50 <= targetAnswerMedian},
		tail(r.API, "API latency"),
		tail(r.Answer, "time to answer"),
		{Target: "RSS after changes ≤ 1.1× after load"},
	}
	if r.RSSAfterLoad > 0 && r.RSSAfterChanges > 0 {
		f := float64(r.RSSAfterChanges) / float64(r.RSSAfterLoad)
		r.Targets[4].Value, r.Targets[4].Pass = fmt.Sprintf("%.2f×", f), f <= targetRSSFactor
	}
	if r.NotAnswered > 0 {
		r.Targets[1].Pass, r.Targets[3].Pass = false, false
	}
	for i := range r.Targets {
		if !complete || r.Targets[i].Value == "" || r.Targets[i].Value == "-" {
			r.Targets[i].Pass = false
			r.Targets[i].Value = cmp.Or(r.Targets[i].Value, "-")
		}
	}
}

// strictErr is the error of -strict: anycastd failed or missed a target.
func (r *report) strictErr() error {
	for _, s := range r.Servers {
		if s.Server != "anycastd" {
			continue
		}
		if s.Error != "" {
			return fmt.Errorf("anycastd failed: %s", s.Error)
		}
		var missed []string
		for _, t := range s.Targets {
			if !t.Pass {
				missed = append(missed, fmt.Sprintf("%s (%s)", t.Target, t.Value))
			}
		}
		if len(missed) > 0 {
			return fmt.Errorf("anycastd missed %d of %d targets: %s", len(missed), len(s.Targets), strings.Join(missed, "; "))
		}
		return nil
	}
	return errors.New("-strict: anycastd was not measured")
}

// dur formats a duration for the tables: milliseconds below 1 s.
func dur(d time.Duration) string {
	if d >= time.Second {
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
}

// durs formats the median, p99 and max of s, or dashes without data.
func durs(s benchkit.LatencyStats) []string {
	if s.Count == 0 {
		return []string{"-", "-", "-"}
	}
	return []string{dur(s.P50), dur(s.P99), dur(s.Max)}
}

// mibOr formats KiB as MiB, or a dash for nothing measured.
func mibOr(kib uint64) string {
	if kib == 0 {
		return "-"
	}
	return mib(kib)
}

func ratio(a, b uint64) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", float64(a)/float64(b))
}

func passFail(t targetResult) string {
	if t.Pass {
		return "PASS " + t.Value
	}
	return "FAIL " + t.Value
}

func printReport(w io.Writer, r *report) error {
	b := &strings.Builder{} // written to w at the end, so one error to check
	fmt.Fprintf(b, "\nRecord changes: zone %s of %d names (%.1f MB, %d records), %d changes of one A RRset each\n\n",
		r.Zone.Origin, r.Zone.Names, float64(r.Zone.Bytes)/1e6, r.Zone.Records, r.Options.Changes)
	rows := [][]string{{"server", "load", "of which API import", "busy after", "RSS after load"}}
	for _, s := range r.Servers {
		load, imp, busy := "-", "-", "-"
		if s.Load.Total > 0 {
			load = dur(s.Load.Total)
		}
		if s.Load.Import > 0 {
			imp = dur(s.Load.Import)
		}
		if s.Load.Busy > 0 {
			busy = dur(s.Load.Busy)
		}
		rows = append(rows, []string{s.Server, load, imp, busy, mibOr(s.RSSAfterLoad)})
	}
	benchkit.WriteTable(b, rows)
	b.WriteString("\n")
	rows = [][]string{{"server", "changes", "API median", "p99", "max", "answer median", "p99", "max", "not answered",
		"RSS after changes", "/ after load", "VmHWM", "RSS idle"}}
	for _, s := range r.Servers {
		row := append([]string{s.Server, fmt.Sprint(len(s.Changes))}, durs(s.API)...)
		row = append(row, durs(s.Answer)...)
		rows = append(rows, append(row, fmt.Sprint(s.NotAnswered),
			mibOr(s.RSSAfterChanges), ratio(s.RSSAfterChanges, s.RSSAfterLoad), mibOr(s.HWM), mibOr(s.RSSIdle)))
	}
	benchkit.WriteTable(b, rows)
	if m := r.memory(); m != nil {
		verdict := "FAIL"
		if m.Pass {
			verdict = "PASS"
		}
		fmt.Fprintf(b, "\nMemory holding the zone, idle: anycastd standalone %s = %.2f× Knot's %s (issue 11: ≤ %.0f×, it holds the zone for the API and for the node): %s\n",
			mib(m.Anycastd), m.Ratio, mib(m.Knot), targetIdleFactor, verdict)
	}

	fmt.Fprintf(b, "\nTargets of issue 11 (for anycastd; Knot's for comparison):\n\n")
	head := []string{"target"}
	for _, s := range r.Servers {
		head = append(head, s.Server)
	}
	rows = [][]string{head}
	if len(r.Servers) > 0 {
		for i, t := range r.Servers[0].Targets {
			row := []string{t.Target}
			for _, s := range r.Servers {
				row = append(row, passFail(s.Targets[i]))
			}
			rows = append(rows, row)
		}
	}
	benchkit.WriteTable(b, rows)
	for _, s := range r.Servers {
		if s.Error != "" {
			fmt.Fprintf(b, "\n%s failed: %s\n", s.Server, s.Error)
		}
	}
	how := "one knotc process per command"
	if r.Options.Knotc == knotcBatch {
		how = "one knotc process reading the four commands"
	}
	fmt.Fprintf(b, "\nload = anycastd: API import until the node answers the zone's last name; Knot: knotd start until it does;\n"+
		"      busy after = until the server was idle (under 10%% of a core for two seconds), when the changes began.\n"+
		"API = anycastd: PUT of the RRset, request sent to answer read;\n"+
		"      Knot: zone-begin, zone-unset, zone-set, zone-commit, %s, wall time.\n"+
		"answer = from the same start until the first DNS answer with the new address (a UDP query every %v).\n"+
		"RSS = VmRSS of the server's process, %v after the load and after the last change was answered;\n"+
		"      idle: %v after that.\n",
		how, r.Options.Poll, r.Options.Settle, r.Options.Idle)
	_, err := io.WriteString(w, b.String())
	return err
}
