package main

import (
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    procStat
		wantErr bool
	}{
		{
			name: "plain",
			in:   "1234 (nsd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0 100 1000 100",
			want: procStat{PPID: 1, Ticks: 325},
		},
		{
			name: "command with spaces and parentheses",
			in:   "77 (nsd: (x) y) R 42 77 77 0 -1 0 0 0 0 0 7 3 0 0 20 0 3 0 1 1 1",
			want: procStat{PPID: 42, Ticks: 10},
		},
		{name: "no command", in: "77 nsd R 42", wantErr: true},
		{name: "short", in: "77 (nsd) R 42 77", wantErr: true},
		{name: "bad utime", in: "1 (x) S 1 1 1 0 -1 0 0 0 0 0 u 75 0 0 20 0 1 0 100 1000 100", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseStat error = %v, wantErr %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseStat (-want +got):\n%s", diff)
			}
		})
	}
}

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

func TestParseStatusKB(t *testing.T) {
	status := []byte("Name:\tnsd\nVmPeak:\t  900 kB\nVmHWM:\t   35172 kB\nVmRSS:\t   1000 kB\n")
	for key, want := range map[string]uint64{"VmHWM": 35172, "VmRSS": 1000, "VmPeak": 900} {
		if got, ok := parseStatusKB(status, key); !ok || got != want {
			t.Errorf("%s = %d, %v; want %d", key, got, ok, want)
		}
	}
	if _, ok := parseStatusKB(status, "VmSwap"); ok {
		t.Error("VmSwap found")
	}
}

// TestProcessTree starts a shell that forks a grandchild and checks that
// the tree walk finds all three and the memory readers see them.
func TestProcessTree(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 30 & sleep 30; wait")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	var tree []int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if tree = processTree(cmd.Process.Pid); len(tree) == 3 {
			break
		}
	}
	if len(tree) != 3 || tree[0] != cmd.Process.Pid {
		t.Fatalf("processTree = %v, want the shell %d and its two children", tree, cmd.Process.Pid)
	}
	// Kill the sleeps by the PIDs found, so that nothing outlives the test.
	t.Cleanup(func() {
		for _, pid := range tree[1:] {
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Kill()
			}
		}
	})
	if slices.Contains(processTree(os.Getpid()), os.Getppid()) {
		t.Error("the tree of this process contains its parent")
	}
	m, err := readMem(os.Getpid(), true)
	if err != nil || m.HWM == 0 || m.RSS == 0 || m.HWM < m.RSS || m.PSS == 0 {
		t.Errorf("readMem(self, true) = %+v, %v", m, err)
	}
	if m, err := readMem(os.Getpid(), false); err != nil || m.HWM == 0 || m.PSS != 0 {
		t.Errorf("readMem(self, false) = %+v, %v; want no PSS", m, err)
	}
	if st, err := readStat(os.Getpid()); err != nil || st.PPID != os.Getppid() {
		t.Errorf("readStat(self) = %+v, %v; want ppid %d", st, err, os.Getppid())
	}
}
