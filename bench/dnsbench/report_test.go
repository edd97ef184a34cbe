package main

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/bench/internal/benchkit"
)

func TestPrintSpeedRatios(t *testing.T) {
	r := &report{
		Options: &options{Duration: 12 * time.Second, Clients: 16, Outstanding: 128, LatencyQPS: 10000, ClientCPU: 1, TCP: true},
		Zone:    zoneInfo{ZoneInfo: benchkit.ZoneInfo{Names: 100000}, Mix: map[string]int{"positive": 3, "nxdomain": 1}},
		Speed: []speedResult{
			{
				Server: "anycastd",
				Check:  checkResult{Checked: 240, Wrong: 2, Examples: []string{"nxdomain X: rcode 0, want 3"}},
				UDP: &runResult{
					Run:   figures{QPS: 90000, Busy: 0.5, PerCore: 180000, ServerOther: 0.3, Seconds: 12},
					Quiet: &figures{QPS: 100000, Busy: 0.5, PerCore: 200000, ClientBusy: 1, Seconds: 10}, QuietCount: 10,
					ClientLimited: true,
				},
				Latency: &latencyResult{Stats: benchkit.LatencyStats{P99: 300 * time.Microsecond}, QuietSeconds: 12, Seconds: 12},
				TCP:     &runResult{Run: figures{QPS: 30000, Busy: 1, PerCore: 30000, Seconds: 12}, QuietCount: 1},
			},
			{
				Server:  "nsd",
				UDP:     &runResult{Run: figures{QPS: 100000, Busy: 1, PerCore: 100000, ClientOther: 0.2, Seconds: 12}, QuietCount: 2},
				Latency: &latencyResult{Stats: benchkit.LatencyStats{P99: 100 * time.Microsecond}, QuietSeconds: 12, Seconds: 12},
				TCP:     &runResult{Run: figures{QPS: 60000, Busy: 1, PerCore: 60000, Seconds: 12}, QuietCount: 12},
			},
			{Server: "knot", Error: "knot exited before answering\nlog line"},
		},
		PairedRounds: []pairedRounds{
			{Server: "anycastd", Runs: []pairedRun{pair(1, 180, 1, 200), pair(1, 110, 1, 100)}},
			{Server: "nsd", Runs: []pairedRun{pair(1, 100, 1, 100)}},
		},
	}
	var b strings.Builder
	if err := printSpeed(&b, r); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, re := range []string{
		`anycastd/nsd\s+2\.00\s+3\.00\s+1\.00\s+0\.50`, // per core, p99, p99 beside NSD, TCP per core
		`anycastd\s+2\s+0µs / 0µs\s+0µs / 0µs\s+1\.00\s+0\.90-1\.10\s+1/2\s`,
		`nsd \(control\)\s+1\s+.*\s1\.00\s+1\.00-1\.00\s+1/1\s`,
		// The quiet seconds, not the whole run.
		`anycastd\s+238/240\s+100\.0k\s+50\.0%\s+200\.0k\s+yes \(dnsperf 100\.0%\)\s+0\s+10/12\s+30\.0%`,
		`nsd\s+0/0\s+100\.0k\s+100\.0%\s+100\.0k\s+no\s+0\s+2/12!\s+20\.0%`, // disturbed
		`knot\s+failed: knot exited before answering\s`,
		`anycastd gave 2 wrong answers of 240`,
		`Query mix \(4 queries, random letter case\): positive 75\.0%, nxdomain 25\.0%, nodata 0\.0%`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output does not match %q:\n%s", re, out)
		}
	}
}

func TestPrintMemRatios(t *testing.T) {
	r := &report{
		Options: &options{},
		Zone:    zoneInfo{ZoneInfo: benchkit.ZoneInfo{Names: 1000000, Bytes: 60e6}},
		Mem: []memResult{
			{Server: "nsd", LoadTime: 4 * time.Second, HWMSum: 800 << 10, PSSPeak: 400 << 10, Peak: 400 << 10,
				Processes: []procMem{{Command: "nsd: xfrd", HWMKiB: 10 << 10}, {Command: "nsd: main", HWMKiB: 400 << 10}}},
			{Server: "knot", LoadTime: 2 * time.Second, HWMSum: 600 << 10, PSSPeak: 590 << 10, Peak: 600 << 10},
		},
	}
	var b strings.Builder
	if err := printMem(&b, r); err != nil {
		t.Fatal(err)
	}
	if re := `knot/nsd\s+0\.50\s+1\.50\s+0\.75`; !regexp.MustCompile(re).MatchString(b.String()) {
		t.Errorf("output does not match %q:\n%s", re, b.String())
	}
}

func TestUDPPerCoreRuns(t *testing.T) {
	perCore := func(v float64) runResult { return runResult{Run: figures{PerCore: v}} }
	s := speedResult{Server: "anycastd", UDP: &runResult{Run: figures{PerCore: 100}}}
	rounds := []serverRounds{
		{Server: "nsd", UDP: []runResult{perCore(999)}},
		{Server: "anycastd", UDP: []runResult{perCore(130), perCore(120), perCore(90)}},
	}
	got := udpPerCoreRuns(s, rounds)
	if want := []float64{100, 130, 120, 90}; !slices.Equal(got, want) {
		t.Fatalf("udpPerCoreRuns = %v, want %v (the first run, then the rounds')", got, want)
	}
	if m := medianFloat(got); m != 110 {
		t.Errorf("median = %v, want 110", m)
	}
	if got := udpPerCoreRuns(speedResult{Server: "knot"}, rounds); len(got) != 0 {
		t.Errorf("no runs: %v", got)
	}
}
