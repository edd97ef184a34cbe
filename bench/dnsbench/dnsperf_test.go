package main

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Output of dnsperf 2.10.0 (-S 1 -v), shortened.
const perfOutput = `DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.1 -p 25353 -d q.txt -l 3 -S 1 -c 4 -q 100 -v
[Status] Sending queries (to 127.0.0.1:25353)
[Status] Started at: Thu Nov 26 23:18:03 2026
[Status] Stopping after 3.000000 seconds
> NOERROR www.example.com A 0.000364
> NXDOMAIN nx.example.com A 0.000211
> T lost.example.com A
1795735085.749265: 123575.924544
> NOERROR www.example.com A 0.001000
1795735086.746377: 122858.381480
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         371024
  Queries completed:    371023 (100.00%)
  Queries lost:         1 (0.00%)

  Response codes:       NOERROR 185512 (50.00%), NXDOMAIN 185511 (50.00%)
  Average packet size:  request 32, response 63
  Run time (s):         3.000602
  Queries per second:   123649.854263

  Average Latency (s):  0.000412 (min 0.000015, max 0.004492)
  Latency StdDev (s):   0.000356

`

func TestParsePerf(t *testing.T) {
	var events []string
	res, err := parsePerf(strings.NewReader(perfOutput), perfEvents{
		Start:    func() { events = append(events, "start") },
		Interval: func(qps float64) { events = append(events, fmt.Sprintf("interval %.0f", qps)) },
		End:      func() { events = append(events, "end") },
	})
	if err != nil {
		t.Fatal(err)
	}
	want := perfResult{
		Sent: 371024, Completed: 371023, Lost: 1,
		RCodes:      map[string]uint64{"NOERROR": 185512, "NXDOMAIN": 185511},
		RequestSize: 32, ResponseSize: 63,
		RunTime: 3.000602, QPS: 123649.854263,
		AvgLatency: 0.000412, MinLatency: 0.000015, MaxLatency: 0.004492, StdDev: 0.000356,
		Latencies:     []time.Duration{364 * time.Microsecond, 211 * time.Microsecond, time.Millisecond},
		IntervalMarks: []int{2, 3}, // two answers in the first second, one in the second
		Timeouts:      1,
	}
	if diff := cmp.Diff(want, res, cmpopts.EquateApprox(0, 1e-9),
		cmp.Comparer(func(a, b time.Duration) bool { return (a - b).Abs() < time.Microsecond })); diff != "" {
		t.Errorf("parsePerf (-want +got):\n%s", diff)
	}
	wantEvents := []string{"start", "interval 123576", "interval 122858", "end"}
	if diff := cmp.Diff(wantEvents, events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

func TestParsePerfErrors(t *testing.T) {
	tests := map[string]string{
		"no statistics": "DNS Performance Testing Tool\n[Status] Sending queries (to 127.0.0.1:53)\n",
		"bad count":     "  Queries sent:         many\n",
		"bad latency":   "> NOERROR www.example.com A soon\n  Queries sent: 1\n",
		"bad rcodes":    "  Queries sent: 1\n  Response codes:       NOERROR x (50.00%)\n",
	}
	for name, out := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := parsePerf(strings.NewReader(out), perfEvents{}); err == nil {
				t.Error("parsePerf succeeded")
			}
		})
	}
}

func TestPerfArgs(t *testing.T) {
	cfg := perfConfig{
		Addr: netip.MustParseAddrPort("127.0.0.1:5300"), QueryFile: "q.txt", Duration: 12 * time.Second,
		Clients: 16, Outstanding: 128, Timeout: 2 * time.Second, CPU: 1,
	}
	base := []string{"dnsperf", "-s", "127.0.0.1", "-p", "5300", "-d", "q.txt", "-l", "12",
		"-c", "16", "-q", "128", "-t", "2", "-T", "1", "-S", "1"}
	if diff := cmp.Diff(base, cfg.args()); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	cfg.MaxQPS, cfg.TCP, cfg.EDNS, cfg.Verbose = 10000, true, true, true
	if diff := cmp.Diff(append(slices.Clone(base), "-Q", "10000", "-m", "tcp", "-e", "-v"), cfg.args()); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
}

func TestTailBuffer(t *testing.T) {
	tb := &tailBuffer{max: 8}
	for _, s := range []string{"hello ", "wide ", "world"} {
		if n, err := tb.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if got := tb.String(); got != "de world" {
		t.Errorf("tail = %q, want the last 8 bytes", got)
	}
}
