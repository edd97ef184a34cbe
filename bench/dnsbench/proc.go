package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/anycastdns/anycastdns/bench/internal/benchkit"
)

// Reading the kernel's accounting of the servers under test from /proc.

// treeTicks sums the CPU ticks of the given processes; processes that are
// gone are skipped.
func treeTicks(pids []int) uint64 {
	var sum uint64
	for _, pid := range pids {
		if st, err := benchkit.ReadStat(pid); err == nil {
			sum += st.Ticks
		}
	}
	return sum
}

// userHZ is the unit of the tick counts in /proc: USER_HZ, part of the
// kernel's ABI and 100 on every architecture this runs on.
const userHZ = 100

// coreTicks is the accounting of one CPU core from /proc/stat.
type coreTicks struct {
	Busy    uint64 // user, nice, system, irq
	SoftIRQ uint64 // softirq: on loopback mostly the benchmark's own packets
	Steal   uint64 // time the hypervisor gave to someone else
}

// cpuSample is a point-in-time reading of the two cores of a run and of
// the processes pinned to them.
type cpuSample struct {
	At          time.Time
	ServerTicks uint64 // the server's processes
	ClientTicks uint64 // dnsperf
	ServerCore  coreTicks
	ClientCore  coreTicks
}

// parseCPULine reads the ticks of "cpuN" from /proc/stat content.
func parseCPULine(b []byte, cpu int) (coreTicks, error) {
	prefix := fmt.Sprintf("cpu%d ", cpu)
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		f := strings.Fields(line)[1:]
		if len(f) < 8 {
			return coreTicks{}, fmt.Errorf("/proc/stat %s: %d fields", prefix, len(f))
		}
		var v [8]uint64
		for i := range v {
			var err error
			if v[i], err = strconv.ParseUint(f[i], 10, 64); err != nil {
				return coreTicks{}, fmt.Errorf("/proc/stat %s: %w", prefix, err)
			}
		}
		// user nice system idle iowait irq softirq steal
		return coreTicks{Busy: v[0] + v[1] + v[2] + v[5], SoftIRQ: v[6], Steal: v[7]}, nil
	}
	return coreTicks{}, fmt.Errorf("/proc/stat: no line for cpu%d", cpu)
}

// sampler reads the CPU time of a server and of its client.
type sampler struct {
	server               []int // the server's process tree
	client               int   // dnsperf's PID, 0 before it started
	serverCPU, clientCPU int
}

func (s *sampler) sample() cpuSample {
	c := cpuSample{At: time.Now(), ServerTicks: treeTicks(s.server)}
	if s.client > 0 {
		c.ClientTicks = treeTicks([]int{s.client})
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		c.ServerCore, _ = parseCPULine(b, s.serverCPU)
		c.ClientCore, _ = parseCPULine(b, s.clientCPU)
	}
	return c
}

// shares is how the two cores were used between two samples, each as a
// share of one core (1.0 = all of it).
type shares struct {
	Server float64 // the server's processes
	// ServerOther is anything else on the server's core, plus steal: noise.
	ServerOther float64
	// ServerSoftIRQ is softirq time on the server's core. With tick-based
	// accounting a tick that lands while the kernel delivers the server's
	// answers over loopback counts as softirq, not as the server's, so it
	// is the benchmark's own traffic rather than noise.
	ServerSoftIRQ float64
	Client        float64 // dnsperf
	ClientOther   float64 // anything else on the client's core, plus steal
	ClientSoftIRQ float64
	wall          float64 // seconds between the samples
}

func between(a, b cpuSample) shares {
	wall := b.At.Sub(a.At).Seconds()
	if wall <= 0 {
		return shares{}
	}
	share := func(t uint64) float64 { return float64(t) / userHZ / wall }
	core := func(x, y coreTicks) float64 { return share((y.Busy - x.Busy) + (y.Steal - x.Steal)) }
	sh := shares{wall: wall}
	sh.Server = share(b.ServerTicks - a.ServerTicks)
	sh.Client = share(b.ClientTicks - a.ClientTicks)
	sh.ServerOther = max(0, core(a.ServerCore, b.ServerCore)-sh.Server)
	sh.ClientOther = max(0, core(a.ClientCore, b.ClientCore)-sh.Client)
	sh.ServerSoftIRQ = share(b.ServerCore.SoftIRQ - a.ServerCore.SoftIRQ)
	sh.ClientSoftIRQ = share(b.ClientCore.SoftIRQ - a.ClientCore.SoftIRQ)
	return sh
}
