package main

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

func TestPrepareAnycastd(t *testing.T) {
	zd := &zoneData{Origin: "bench.example.", ZonePath: "/tmp/x/bench.example.zone"}
	l := prepareAnycastd("/bin/anycastd", netip.MustParseAddrPort("127.0.0.1:5300"), zd)
	want := "/bin/anycastd node -listen 127.0.0.1:5300 -zone bench.example.=/tmp/x/bench.example.zone -nsid bench-anycastd -log-level warn"
	if got := strings.Join(l.Argv, " "); got != want {
		t.Errorf("argv = %q, want %q", got, want)
	}
	if !slices.Contains(l.Env, "GOMAXPROCS=1") {
		t.Errorf("env %v lacks GOMAXPROCS=1", l.Env)
	}
	l = prepareAnycastd("/bin/anycastd", netip.MustParseAddrPort("[::1]:5300"), zd)
	if !slices.Contains(l.Argv, "[::1]:5300") {
		t.Errorf("IPv6 listen address not bracketed: %v", l.Argv)
	}
}

func TestPinned(t *testing.T) {
	prog, args := pinned(0, 0, []string{"nsd", "-d"})
	if got := prog + " " + strings.Join(args, " "); got != "taskset -c 0 nsd -d" {
		t.Errorf("pinned(0, 0) = %q", got)
	}
	prog, args = pinned(1, -10, []string{"dnsperf"})
	if got := prog + " " + strings.Join(args, " "); got != "nice -n -10 taskset -c 1 dnsperf" {
		t.Errorf("pinned(1, -10) = %q", got)
	}
}

// TestAutogroupNice starts a process in a session of its own at niceness
// -5 the way -nice does and reads the niceness back.
func TestAutogroupNice(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/kernel/sched_autogroup_enabled")
	if err != nil || strings.TrimSpace(string(b)) != "1" {
		t.Skip("scheduler autogroups are off")
	}
	if os.Geteuid() != 0 {
		t.Skip("lowering niceness needs root")
	}
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	if err := setAutogroupNice(cmd.Process.Pid, -5); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "autogroup"))
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(got)), "nice -5") {
		t.Errorf("autogroup = %q, %v; want nice -5", got, err)
	}
	mine, _ := os.ReadFile("/proc/self/autogroup")
	if strings.TrimSpace(string(mine)) == strings.TrimSpace(string(got)) {
		t.Errorf("the test's own autogroup %q was changed", mine)
	}
}

func TestNSDConfig(t *testing.T) {
	dir := t.TempDir()
	zd := &zoneData{Origin: "bench.example.", ZonePath: filepath.Join(dir, "bench.example.zone")}
	conf := nsdConf(dir, netip.MustParseAddrPort("127.0.0.1:5300"), zd)
	for _, want := range []string{"server-count: 1", "rrl-ratelimit: 0", "ip-address: 127.0.0.1", "port: 5300",
		`database: ""`, `username: ""`, `chroot: ""`, `name: "bench.example."`} {
		if !strings.Contains(conf, want) {
			t.Errorf("nsd.conf lacks %q:\n%s", want, conf)
		}
	}
	testkit.RequireTool(t, "nsd-checkconf", "nsd")
	path := filepath.Join(dir, "nsd.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("nsd-checkconf", path).CombinedOutput(); err != nil {
		t.Errorf("nsd-checkconf: %v\n%s", err, out)
	}
}

func TestKnotConfig(t *testing.T) {
	dir := t.TempDir()
	zd := &zoneData{Origin: "bench.example.", ZonePath: filepath.Join(dir, "bench.example.zone")}
	conf := knotConf(dir, netip.MustParseAddrPort("127.0.0.1:5300"), zd)
	for _, want := range []string{"udp-workers: 1", "tcp-workers: 1", "background-workers: 1", "listen: 127.0.0.1@5300"} {
		if !strings.Contains(conf, want) {
			t.Errorf("knot.conf lacks %q:\n%s", want, conf)
		}
	}
	testkit.RequireTool(t, "knotc", "knot")
	path := filepath.Join(dir, "knot.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("knotc", "-c", path, "conf-check").CombinedOutput(); err != nil {
		t.Errorf("knotc conf-check: %v\n%s", err, out)
	}
}

// TestServers runs NSD and Knot on a small generated zone the way the
// benchmark does: start pinned, wait for the SOA, check the sample answers,
// a short dnsperf run, memory reading, and a stop that leaves no process.
func TestServers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NSD and Knot")
	}
	if runtime.NumCPU() < 2 {
		t.Skip("needs two CPUs")
	}
	testkit.RequireTool(t, "taskset", "util-linux")
	testkit.RequireTool(t, "dnsperf", "dnsperf")
	if err := becomeSubreaper(); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	zd, err := generate(genConfig{Origin: "bench.example.", Names: 5000, Queries: 5000, Seed: 3}, work)
	if err != nil {
		t.Fatal(err)
	}
	for name, bin := range map[string]string{"nsd": "nsd", "knot": "knotd"} {
		t.Run(name, func(t *testing.T) {
			testkit.RequireTool(t, bin, name)
			dir := filepath.Join(work, name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			addr, err := freePort(netip.MustParseAddr("127.0.0.1"))
			if err != nil {
				t.Fatal(err)
			}
			l, err := prepareServer(name, dir, "", addr, zd)
			if err != nil {
				t.Fatal(err)
			}
			s, err := startServer(l, 0, 0, dir, addr)
			if err != nil {
				t.Fatal(err)
			}
			var tree []int
			t.Cleanup(func() {
				if err := s.Stop(10 * time.Second); err != nil {
					t.Errorf("stop: %v", err)
				}
				for _, pid := range tree {
					if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err == nil {
						t.Errorf("process %d of %s still exists after Stop", pid, name)
					}
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := waitAnswer(ctx, s, query{Name: zd.Origin, Type: typeSOA}, soaReady); err != nil {
				t.Fatal(err)
			}
			tree = s.Tree()
			for _, pid := range tree {
				out, err := exec.Command("taskset", "-p", strconv.Itoa(pid)).Output()
				if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), ": 1") {
					t.Errorf("process %d affinity %q (%v), want CPU 0 only (mask 1)", pid, out, err)
				}
			}
			if _, err := waitAnswer(ctx, s, zd.Probe, func(m *message) bool { return checkAnswer(zd.Probe, m) == nil }); err != nil {
				t.Errorf("probe: %v", err)
			}
			res, err := checkServer(s.Addr, zd)
			if err != nil {
				t.Fatal(err)
			}
			if res.Wrong != 0 || res.Checked != 2*int(numKinds)*samplesPerKind {
				t.Errorf("answers: %d wrong of %d: %v", res.Wrong, res.Checked, res.Examples)
			}

			sm := &sampler{server: tree, serverCPU: 0, clientCPU: 1}
			var first, last cpuSample
			perf, err := runPerf(ctx, perfConfig{
				Addr: s.Addr, QueryFile: zd.QueryPath, Duration: 3 * time.Second,
				Clients: 2, Outstanding: 20, Verbose: true, Timeout: time.Second, CPU: 1,
			}, func(pid int) { sm.client = pid }, perfEvents{
				Start:    func() { first = sm.sample() },
				Interval: func(float64) { last = sm.sample() },
			})
			if err != nil {
				t.Fatal(err)
			}
			// Other work on the machine slows this down but cannot stop it.
			if perf.Completed < 1000 || perf.Lost != 0 || len(perf.Latencies) != int(perf.Completed) {
				t.Errorf("dnsperf: %d completed, %d lost, %d latencies; want thousands, 0, one per answer",
					perf.Completed, perf.Lost, len(perf.Latencies))
			}
			if nx := perf.RCodes["NXDOMAIN"]; nx < perf.Completed/10 || nx > perf.Completed/5 {
				t.Errorf("NXDOMAIN %d of %d, want about 15%%", nx, perf.Completed)
			}
			sh := between(first, last)
			if sh.Server <= 0 || sh.Server > 1.05 || sh.Client <= 0 {
				t.Errorf("CPU shares %+v: want the server and dnsperf busy, the server within one core", sh)
			}
			var hwm uint64
			for _, pid := range tree {
				if m, err := readMem(pid, false); err == nil {
					hwm += m.HWM
				}
			}
			if hwm < 1024 {
				t.Errorf("VmHWM sum %d KiB", hwm)
			}
		})
	}
}
