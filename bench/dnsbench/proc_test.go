package main

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseCPULine(t *testing.T) {
	stat := []byte("cpu  10 0 10 100 0 0 0 0 0 0\n" +
		"cpu0 100 5 50 1000 7 3 2 11 0 0\n" +
		"cpu1 1 2 3 4 5 6 7 8 0 0\n" +
		"cpu10 9 9 9 9 9 9 9 9 0 0\n")
	got, err := parseCPULine(stat, 1)
	if err != nil {
		t.Fatal(err)
	}
	// busy = user+nice+system+irq; idle and iowait are not busy.
	if want := (coreTicks{Busy: 1 + 2 + 3 + 6, SoftIRQ: 7, Steal: 8}); got != want {
		t.Errorf("cpu1 = %+v, want %+v", got, want)
	}
	if got, _ := parseCPULine(stat, 0); got.Busy != 158 || got.SoftIRQ != 2 || got.Steal != 11 {
		t.Errorf("cpu0 = %+v", got)
	}
	if _, err := parseCPULine(stat, 2); err == nil {
		t.Error("cpu2 found in a stat without it")
	}
}

func TestBetween(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := cpuSample{At: t0, ServerTicks: 1000, ClientTicks: 500,
		ServerCore: coreTicks{Busy: 5000, Steal: 10}, ClientCore: coreTicks{Busy: 7000}}
	// Two seconds later: the server used 180 ticks of its core, which was
	// busy for 190 plus 4 stolen plus 6 in softirq; dnsperf used all 200
	// of its core.
	b := cpuSample{At: t0.Add(2 * time.Second), ServerTicks: 1180, ClientTicks: 700,
		ServerCore: coreTicks{Busy: 5190, SoftIRQ: 6, Steal: 14}, ClientCore: coreTicks{Busy: 7200}}
	got := between(a, b)
	want := shares{Server: 0.9, ServerOther: 0.07, ServerSoftIRQ: 0.03, Client: 1.0, ClientOther: 0, wall: 2}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(shares{}), cmp.Comparer(func(x, y float64) bool { return x-y < 1e-9 && y-x < 1e-9 })); diff != "" {
		t.Errorf("between (-want +got):\n%s", diff)
	}
	if got := between(b, b); got != (shares{}) {
		t.Errorf("between over no time = %+v", got)
	}
}
