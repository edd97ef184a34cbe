package benchkit

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
		want    ProcStat
		wantErr bool
	}{
		{
			name: "plain",
			in:   "1234 (nsd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 1 0 100 1000 100",
			want: ProcStat{PPID: 1, Ticks: 325},
		},
		{
			name: "command with spaces and parentheses",
			in:   "77 (nsd: (x) y) R 42 77 77 0 -1 0 0 0 0 0 7 3 0 0 20 0 3 0 1 1 1",
			want: ProcStat{PPID: 42, Ticks: 10},
		},
		{name: "no command", in: "77 nsd R 42", wantErr: true},
		{name: "short", in: "77 (nsd) R 42 77", wantErr: true},
		{name: "bad utime", in: "1 (x) S 1 1 1 0 -1 0 0 0 0 0 u 75 0 0 20 0 1 0 100 1000 100", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStat([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseStat error = %v, wantErr %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseStat (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseStatusKB(t *testing.T) {
	status := []byte("Name:\tnsd\nVmPeak:\t  900 kB\nVmHWM:\t   35172 kB\nVmRSS:\t   1000 kB\n")
	for key, want := range map[string]uint64{"VmHWM": 35172, "VmRSS": 1000, "VmPeak": 900} {
		if got, ok := ParseStatusKB(status, key); !ok || got != want {
			t.Errorf("%s = %d, %v; want %d", key, got, ok, want)
		}
	}
	if _, ok := ParseStatusKB(status, "VmSwap"); ok {
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
		if tree = ProcessTree(cmd.Process.Pid); len(tree) == 3 {
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
	if slices.Contains(ProcessTree(os.Getpid()), os.Getppid()) {
		t.Error("the tree of this process contains its parent")
	}
	m, err := ReadMem(os.Getpid(), true)
	if err != nil || m.HWM == 0 || m.RSS == 0 || m.HWM < m.RSS || m.PSS == 0 {
		t.Errorf("readMem(self, true) = %+v, %v", m, err)
	}
	if m, err := ReadMem(os.Getpid(), false); err != nil || m.HWM == 0 || m.PSS != 0 {
		t.Errorf("readMem(self, false) = %+v, %v; want no PSS", m, err)
	}
	if st, err := ReadStat(os.Getpid()); err != nil || st.PPID != os.Getppid() {
		t.Errorf("readStat(self) = %+v, %v; want ppid %d", st, err, os.Getppid())
	}
}
