package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

type zoneInfo struct {
	Origin  string         `json:"origin"`
	Names   int            `json:"names"`
	Records int            `json:"records"`
	Bytes   int64          `json:"bytes"`
	Mix     map[string]int `json:"query_mix,omitempty"`
}

type report struct {
	Options *options      `json:"options"`
	Zone    zoneInfo      `json:"zone"`
	Speed   []speedResult `json:"speed,omitempty"`
	Mem     []memResult   `json:"memory,omitempty"`
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

func printSpeed(w io.Writer, r *report) {
	o := r.Options
	edns := ""
	if o.EDNS {
		edns = " -e"
	}
	fmt.Fprintf(w, "\nSpeed: zone of %d names, %s dnsperf runs, servers pinned to CPU %d, dnsperf to CPU %d\n",
		r.Zone.Names, o.Duration, o.ServerCPU, o.ClientCPU)
	total := 0
	for _, n := range r.Zone.Mix {
		total += n
	}
	var mix []string
	for _, k := range kindNames {
		mix = append(mix, fmt.Sprintf("%s %.1f%%", k, 100*float64(r.Zone.Mix[k])/float64(max(total, 1))))
	}
	fmt.Fprintf(w, "Query mix (%d queries, random letter case): %s\n", total, strings.Join(mix, ", "))

	table := func(title, header string, row func(s speedResult) []string) {
		fmt.Fprintf(w, "\n%s\n", title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, header+"\t")
		for _, s := range r.Speed {
			if cells := row(s); cells != nil {
				fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
			}
		}
		tw.Flush()
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

	var nsd *speedResult
	for i := range r.Speed {
		if r.Speed[i].Server == "nsd" && r.Speed[i].UDP != nil {
			nsd = &r.Speed[i]
		}
	}
	if nsd != nil && len(r.Speed) > 1 {
		table("Ratios vs NSD (q/s per core: >1 = more queries per core; p99: <1 = lower latency):",
			"server\tUDP q/s per core\tp99\tTCP q/s per core",
			func(s speedResult) []string {
				if s.Server == "nsd" || s.UDP == nil {
					return nil
				}
				p99, tcp := "-", "-"
				if s.Latency != nil && nsd.Latency != nil {
					p99 = ratio(float64(s.Latency.Stats.P99), float64(nsd.Latency.Stats.P99))
				}
				if s.TCP != nil && nsd.TCP != nil {
					tcp = ratio(s.TCP.Headline().PerCore, nsd.TCP.Headline().PerCore)
				}
				return []string{s.Server + "/nsd", ratio(s.UDP.Headline().PerCore, nsd.UDP.Headline().PerCore), p99, tcp}
			})
	}
	fmt.Fprintln(w)
	for _, s := range r.Speed {
		if s.Check.Wrong > 0 {
			fmt.Fprintf(w, "%s gave %d wrong answers of %d checked, e.g.:\n  %s\n", s.Server, s.Check.Wrong, s.Check.Checked,
				strings.Join(s.Check.Examples, "\n  "))
		}
		if s.Error != "" {
			fmt.Fprintf(w, "%s failed: %s\n", s.Server, s.Error)
		}
		if s.UDP != nil {
			fmt.Fprintf(w, "%s UDP rcodes: %s\n", s.Server, formatRcodes(s.UDP.Perf.RCodes))
		}
	}
	fmt.Fprintf(w, "\nbusy = share of one core used by the server's processes while dnsperf sent; q/s per core = q/s / busy.\n"+
		"client-limited = the server's core was idle %.0f%%+ of the time, so dnsperf on its one core was the limit.\n"+
		"quiet s = seconds of the run in which other work took at most %.0f%% of each core; with %d or more, the\n"+
		"  figures (and ratios) are over those seconds only. ! = too few: whole-run figures, disturbed, repeat.\n"+
		"noise = largest share of the server's or dnsperf's core taken by other work over the whole run.\n",
		100*(1-clientLimitedBelow), 100*noisy, minQuiet)
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

func printMem(w io.Writer, r *report) {
	fmt.Fprintf(w, "\nMemory and load time: zone of %d names (%.0f MB), servers on CPU %d\n\n",
		r.Zone.Names, float64(r.Zone.Bytes)/1e6, r.Options.ServerCPU)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\tload time\tCPU\tnoise\tpeak memory\tVmHWM sum\tPSS peak\tprocesses (VmHWM)\t")
	var nsd *memResult
	for i, m := range r.Mem {
		if m.Server == "nsd" && m.Error == "" {
			nsd = &r.Mem[i]
		}
		if m.Error != "" {
			fmt.Fprintf(tw, "%s\tfailed\t\n", m.Server)
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
		fmt.Fprintf(tw, "%s\t%.2fs\t%.2fs\t%s\t%s\t%s\t%s\t%s\t\n", m.Server, m.LoadTime.Seconds(), m.LoadCPU.Seconds(), noise,
			mib(m.Peak), mib(m.HWMSum), mib(m.PSSPeak),
			strings.Join(procs, ", "))
	}
	tw.Flush()
	if nsd != nil {
		fmt.Fprintf(w, "\nRatios vs NSD (<1 = faster load, less memory):\n")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "server\tload time\tpeak memory\tVmHWM sum\t")
		for _, m := range r.Mem {
			if m.Server == "nsd" || m.Error != "" {
				continue
			}
			fmt.Fprintf(tw, "%s/nsd\t%s\t%s\t%s\t\n", m.Server,
				ratio(m.LoadTime.Seconds(), nsd.LoadTime.Seconds()),
				ratio(float64(m.Peak), float64(nsd.Peak)),
				ratio(float64(m.HWMSum), float64(nsd.HWMSum)))
		}
		tw.Flush()
	}
	for _, m := range r.Mem {
		if m.Error != "" {
			fmt.Fprintf(w, "\n%s failed: %s\n", m.Server, m.Error)
		}
	}
	fmt.Fprintf(w, "\nload time = process start to the first correct answer for a name at the end of the zone;\n"+
		"CPU = CPU time the server had used by then; noise = share of its core other work took meanwhile (! = over %.0f%%).\n",
		100*noisy)
	fmt.Fprintf(w, "peak memory = max(highest sum of PSS over the processes once loaded; largest single VmHWM).\n"+
		"VmHWM sum counts pages that forked processes share (NSD) once per process: an upper bound.\n")
}
