package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/anycastdns/anycastdns/bench/internal/benchkit"
)

type zoneInfo struct {
	benchkit.ZoneInfo
	Mix map[string]int `json:"query_mix,omitempty"`
}

type report struct {
	Options *options      `json:"options"`
	Zone    zoneInfo      `json:"zone"`
	Speed   []speedResult `json:"speed,omitempty"`
	Mem     []memResult   `json:"memory,omitempty"`
	// Rounds are the alternating rounds (UDP and latency), by server.
	Rounds []serverRounds `json:"rounds,omitempty"`
	// PairedRounds are the side-by-side rounds with NSD, by server.
	PairedRounds []pairedRounds `json:"paired_rounds,omitempty"`
}

func kqps(v float64) string { return fmt.Sprintf("%.1fk", v/1000) }

func us(d time.Duration) string { return fmt.Sprintf("%dµs", d.Microseconds()) }

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// ratio formats a/b, or "-" when either is missing.
func ratio(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func printSpeed(w io.Writer, r *report) error {
	b := &strings.Builder{} // written to w at the end, so one error to check
	o := r.Options
	edns := ""
	if o.EDNS {
		edns = " -e"
	}
	fmt.Fprintf(b, "\nSpeed: zone of %d names, %s dnsperf runs, servers pinned to CPU %d, dnsperf to CPU %d\n",
		r.Zone.Names, o.Duration, o.ServerCPU, o.ClientCPU)
	total := 0
	for _, n := range r.Zone.Mix {
		total += n
	}
	var mix []string
	for _, k := range kindNames {
		mix = append(mix, fmt.Sprintf("%s %.1f%%", k, 100*float64(r.Zone.Mix[k])/float64(max(total, 1))))
	}
	fmt.Fprintf(b, "Query mix (%d queries, random letter case): %s\n", total, strings.Join(mix, ", "))

	table := func(title, header string, row func(s speedResult) []string) {
		fmt.Fprintf(b, "\n%s\n", title)
		rows := [][]string{strings.Split(header, "\t")}
		for _, s := range r.Speed {
			if cells := row(s); cells != nil {
				rows = append(rows, cells)
			}
		}
		benchkit.WriteTable(b, rows)
	}
	table(fmt.Sprintf("UDP, saturating (dnsperf -c %d -q %d%s):", o.Clients, o.Outstanding, edns),
		"server\tanswers ok\tq/s\tbusy\tq/s per core\tclient-limited\tlost\tquiet s\tnoise\tresponse B",
		func(s speedResult) []string {
			if s.UDP == nil {
				return []string{s.Server, "failed"}
			}
			return append([]string{s.Server, fmt.Sprintf("%d/%d", s.Check.Checked-s.Check.Wrong, s.Check.Checked)},
				append(runCells(s.UDP), fmt.Sprintf("%.0f", s.UDP.Perf.ResponseSize))...)
		})
	table(fmt.Sprintf("Latency at a fixed %d q/s (dnsperf -Q %d -v, per-answer latency):", o.LatencyQPS, o.LatencyQPS),
		"server\tq/s\tp50\tp90\tp99\tp99.9\tmax\tbusy\tlost\tquiet s\tnoise",
		func(s speedResult) []string {
			l := s.Latency
			if l == nil {
				return nil
			}
			return []string{s.Server, fmt.Sprintf("%.0f", l.Perf.QPS), us(l.Stats.P50), us(l.Stats.P90), us(l.Stats.P99),
				us(l.Stats.P999), us(l.Stats.Max), pct(l.Busy), fmt.Sprint(l.Perf.Lost),
				quietCell(l.QuietSeconds, l.Seconds), pct(l.Other)}
		})
	if o.TCP {
		table(fmt.Sprintf("TCP, saturating (dnsperf -m tcp -c %d -q %d%s):", o.Clients, o.Outstanding, edns),
			"server\tq/s\tbusy\tq/s per core\tclient-limited\tlost\tquiet s\tnoise",
			func(s speedResult) []string {
				if s.TCP == nil {
					return nil
				}
				return append([]string{s.Server}, runCells(s.TCP)...)
			})
	}

	var nsdRounds *serverRounds
	if len(r.Rounds) > 0 {
		n := o.Rounds
		rows := [][]string{strings.Split("server\trounds\tUDP q/s per core median\tmin-max\tp50 median\tp99 median\tp99 min-max\tp99.9 median\tbusy median\tlost", "\t")}
		for i, lr := range r.Rounds {
			if lr.Server == "nsd" {
				nsdRounds = &r.Rounds[i]
			}
			m := lr.medians()
			if len(lr.Runs) == 0 {
				rows = append(rows, []string{lr.Server, "0", "failed"})
				continue
			}
			lo, hi := lr.p99Range()
			pc := lr.udpPerCore()
			udpMed, udpRange := "-", "-"
			if len(pc) > 0 {
				udpMed, udpRange = kqps(medianFloat(pc)), kqps(slices.Min(pc))+"-"+kqps(slices.Max(pc))
			}
			rows = append(rows, []string{lr.Server, fmt.Sprint(len(lr.Runs)), udpMed, udpRange, us(m.P50), us(m.P99),
				us(lo) + "-" + us(hi), us(m.P999), pct(lr.busyMedian()), fmt.Sprint(lr.lost())})
		}
		fmt.Fprintf(b, "\n%d more rounds, the servers taking turns, each started afresh for a UDP run as above and a latency run at %d q/s (%s each):\n",
			n, o.LatencyQPS, o.Duration)
		benchkit.WriteTable(b, rows)
	}

	if len(r.PairedRounds) > 0 {
		fmt.Fprintf(b, "\nLatency at %d q/s beside NSD: the server and NSD running at the same time on CPU %d, a dnsperf each on CPU %d (%d rounds of %s):\n",
			o.LatencyQPS, o.ServerCPU, o.ClientCPU, o.PairedRounds, o.Duration)
		benchkit.WriteTable(b, pairedRows(r.PairedRounds))
	}

	var nsd *speedResult
	for i := range r.Speed {
		if r.Speed[i].Server == "nsd" && r.Speed[i].UDP != nil {
			nsd = &r.Speed[i]
		}
	}
	if nsd != nil && len(r.Speed) > 1 {
		table("Ratios vs NSD (q/s per core: >1 = more queries per core; p99: <1 = lower latency):",
			"server\tUDP q/s per core\tp99\tp99 beside NSD\tTCP q/s per core",
			func(s speedResult) []string {
				if s.Server == "nsd" || s.UDP == nil {
					return nil
				}
				p99, tcp := "-", "-"
				if s.Latency != nil && nsd.Latency != nil {
					p99 = ratio(float64(s.Latency.Stats.P99), float64(nsd.Latency.Stats.P99))
				}
				if nsdRounds != nil && len(nsdRounds.Runs) > 0 {
					for _, lr := range r.Rounds {
						if lr.Server == s.Server && len(lr.Runs) > 0 {
							p99 = ratio(float64(lr.medians().P99), float64(nsdRounds.medians().P99))
						}
					}
				}
				if s.TCP != nil && nsd.TCP != nil {
					tcp = ratio(s.TCP.Headline().PerCore, nsd.TCP.Headline().PerCore)
				}
				paired := "-"
				for _, pr := range r.PairedRounds {
					if pr.Server == s.Server && len(pr.Runs) > 0 {
						paired = fmt.Sprintf("%.2f", pr.MedianRatio())
					}
				}
				return []string{s.Server + "/nsd", ratio(medianFloat(udpPerCoreRuns(s, r.Rounds)), medianFloat(udpPerCoreRuns(*nsd, r.Rounds))),
					p99, paired, tcp}
			})
	}
	fmt.Fprintln(b)
	for _, s := range r.Speed {
		if s.Check.Wrong > 0 {
			fmt.Fprintf(b, "%s gave %d wrong answers of %d checked, e.g.:\n  %s\n", s.Server, s.Check.Wrong, s.Check.Checked,
				strings.Join(s.Check.Examples, "\n  "))
		}
		if s.Error != "" {
			fmt.Fprintf(b, "%s failed: %s\n", s.Server, s.Error)
		}
		if s.UDP != nil {
			fmt.Fprintf(b, "%s UDP rcodes: %s\n", s.Server, formatRcodes(s.UDP.Perf.RCodes))
		}
	}
	fmt.Fprintf(b, "\nbusy = share of one core used by the server's processes while dnsperf sent; q/s per core = q/s / busy.\n"+
		"client-limited = the server's core was idle %.0f%%+ of the time, so dnsperf on its one core was the limit.\n"+
		"quiet s = seconds of the run in which other work took at most %.0f%% of each core; with %d or more, the\n"+
		"  figures (and ratios) are over those seconds only. ! = too few: whole-run figures, disturbed, repeat.\n"+
		"noise = largest share of the server's or dnsperf's core taken by other work over the whole run.\n"+
		"UDP q/s per core ratio = of the medians over every UDP run (the first and the rounds').\n"+
		"p99 ratio = of the medians over the rounds when there are any, else of the one latency run.\n"+
		"p99 beside NSD = median over the paired rounds of (server p99 / NSD p99) in the same round; the\n"+
		"  nsd (control) row, NSD beside NSD, shows how far that ratio strays for equal servers.\n",
		100*(1-clientLimitedBelow), 100*noisy, minQuiet)
	_, err := io.WriteString(w, b.String())
	return err
}

// udpPerCoreRuns are the q/s per busy core of every UDP run of s: the first
// and those of the rounds.
func udpPerCoreRuns(s speedResult, rounds []serverRounds) []float64 {
	var out []float64
	if s.UDP != nil {
		out = append(out, s.UDP.Headline().PerCore)
	}
	for _, lr := range rounds {
		if lr.Server == s.Server {
			out = append(out, lr.udpPerCore()...)
		}
	}
	return out
}

// pairedRows is the table of the paired rounds: medians over the rounds of
// each side's figures, and of the per-round p99 ratio.
func pairedRows(prs []pairedRounds) [][]string {
	rows := [][]string{strings.Split("server\trounds\tp50 / NSD's\tp99 / NSD's\tp99 ratio median\tratio min-max\trounds p99 <= NSD's\tbusy / NSD's\tlost / NSD's", "\t")}
	for _, pr := range prs {
		label := pr.Server
		if label == "nsd" {
			label = "nsd (control)"
		}
		if len(pr.Runs) == 0 {
			rows = append(rows, []string{label, "0", "failed"})
			continue
		}
		p50, p99, n50, n99, busy, nbusy := pr.medians()
		rs := pr.ratios()
		var lost, nlost uint64
		for _, r := range pr.Runs {
			lost, nlost = lost+r.Lost, nlost+r.NSDLost
		}
		rows = append(rows, []string{label, fmt.Sprint(len(pr.Runs)), us(p50) + " / " + us(n50), us(p99) + " / " + us(n99),
			fmt.Sprintf("%.2f", pr.MedianRatio()), fmt.Sprintf("%.2f-%.2f", slices.Min(rs), slices.Max(rs)),
			fmt.Sprintf("%d/%d", pr.notWorse(), len(pr.Runs)), pct(busy) + " / " + pct(nbusy), fmt.Sprintf("%d / %d", lost, nlost)})
	}
	return rows
}

func quietCell(quiet, total int) string {
	c := fmt.Sprintf("%d/%d", quiet, total)
	if quiet < minQuiet {
		c += "!"
	}
	return c
}

func runCells(r *runResult) []string {
	h := r.Headline()
	limited := yesNo(r.ClientLimited)
	if r.ClientLimited {
		limited += fmt.Sprintf(" (dnsperf %s)", pct(h.ClientBusy))
	}
	return []string{kqps(h.QPS), pct(h.Busy), kqps(h.PerCore), limited, fmt.Sprint(r.Perf.Lost),
		quietCell(r.QuietCount, r.Run.Seconds), pct(max(r.Run.ServerOther, r.Run.ClientOther))}
}

func printMem(w io.Writer, r *report) error {
	b := &strings.Builder{} // written to w at the end, so one error to check
	fmt.Fprintf(b, "\nMemory and load time: zone of %d names (%.0f MB), servers on CPU %d\n\n",
		r.Zone.Names, float64(r.Zone.Bytes)/1e6, r.Options.ServerCPU)
	rows := [][]string{{"server", "load time", "CPU", "noise", "peak memory", "VmHWM sum", "PSS peak", "processes (VmHWM)"}}
	var nsd *memResult
	for i, m := range r.Mem {
		if m.Server == "nsd" && m.Error == "" {
			nsd = &r.Mem[i]
		}
		if m.Error != "" {
			rows = append(rows, []string{m.Server, "failed"})
			continue
		}
		var procs []string
		for _, p := range m.Processes {
			procs = append(procs, fmt.Sprintf("%s %s", p.Command, mib(p.HWMKiB)))
		}
		noise := pct(m.LoadOther)
		if m.LoadOther > noisy {
			noise += "!"
		}
		rows = append(rows, []string{m.Server, fmt.Sprintf("%.2fs", m.LoadTime.Seconds()), fmt.Sprintf("%.2fs", m.LoadCPU.Seconds()),
			noise, mib(m.Peak), mib(m.HWMSum), mib(m.PSSPeak), strings.Join(procs, ", ")})
	}
	benchkit.WriteTable(b, rows)
	if nsd != nil && len(r.Mem) > 1 {
		fmt.Fprintf(b, "\nRatios vs NSD (<1 = faster load, less memory):\n")
		rows := [][]string{{"server", "load time", "peak memory", "VmHWM sum"}}
		for _, m := range r.Mem {
			if m.Server == "nsd" || m.Error != "" {
				continue
			}
			rows = append(rows, []string{m.Server + "/nsd",
				ratio(m.LoadTime.Seconds(), nsd.LoadTime.Seconds()),
				ratio(float64(m.Peak), float64(nsd.Peak)),
				ratio(float64(m.HWMSum), float64(nsd.HWMSum))})
		}
		benchkit.WriteTable(b, rows)
	}
	for _, m := range r.Mem {
		if m.Error != "" {
			fmt.Fprintf(b, "\n%s failed: %s\n", m.Server, m.Error)
		}
	}
	fmt.Fprintf(b, "\nload time = process start to the first correct answer for a name at the end of the zone;\n"+
		"CPU = CPU time the server had used by then; noise = share of its core other work took meanwhile (! = over %.0f%%).\n",
		100*noisy)
	fmt.Fprintf(b, "peak memory = max(highest sum of PSS over the processes once loaded; largest single VmHWM).\n"+
		"VmHWM sum counts pages that forked processes share (NSD) once per process: an upper bound.\n")
	_, err := io.WriteString(w, b.String())
	return err
}
