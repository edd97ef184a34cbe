package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/anycastdns/anycastdns/bench/internal/benchkit"
)

// perfConfig is one dnsperf run.
type perfConfig struct {
	Addr        netip.AddrPort
	QueryFile   string
	Duration    time.Duration
	Clients     int  // -c: sockets (UDP) or connections (TCP)
	Outstanding int  // -q: queries in flight
	MaxQPS      int  // -Q: 0 for as fast as possible
	TCP         bool // -m tcp
	EDNS        bool // -e
	Verbose     bool // -v: one line per answer, with its latency
	Timeout     time.Duration
	CPU         int // taskset -c
	Nice        int // nice -n, when not 0
}

// args returns dnsperf's arguments, program name first.
func (c perfConfig) args() []string {
	a := []string{"dnsperf",
		"-s", c.Addr.Addr().String(), "-p", strconv.Itoa(int(c.Addr.Port())),
		"-d", c.QueryFile,
		"-l", strconv.FormatFloat(c.Duration.Seconds(), 'f', -1, 64),
		"-c", strconv.Itoa(c.Clients), "-q", strconv.Itoa(c.Outstanding),
		"-t", strconv.FormatFloat(c.Timeout.Seconds(), 'f', -1, 64),
		"-T", "1", "-S", "1"}
	if c.MaxQPS > 0 {
		a = append(a, "-Q", strconv.Itoa(c.MaxQPS))
	}
	if c.TCP {
		a = append(a, "-m", "tcp")
	}
	if c.EDNS {
		a = append(a, "-e")
	}
	if c.Verbose {
		a = append(a, "-v")
	}
	return a
}

// perfResult is what dnsperf reported.
type perfResult struct {
	Sent         uint64            `json:"sent"`
	Completed    uint64            `json:"completed"`
	Lost         uint64            `json:"lost"`
	RCodes       map[string]uint64 `json:"rcodes"`
	RequestSize  float64           `json:"request_bytes"`
	ResponseSize float64           `json:"response_bytes"`
	RunTime      float64           `json:"run_time_s"`
	QPS          float64           `json:"qps"`
	AvgLatency   float64           `json:"avg_latency_s"`
	MinLatency   float64           `json:"min_latency_s"`
	MaxLatency   float64           `json:"max_latency_s"`
	StdDev       float64           `json:"latency_stddev_s"`
	// Latencies holds one entry per answer in verbose mode.
	Latencies []time.Duration `json:"-"`
	// IntervalMarks holds len(Latencies) at each one-second statistics
	// line, so that latencies can be attributed to their second.
	IntervalMarks []int  `json:"-"`
	Timeouts      uint64 `json:"-"`
}

// perfEvents receives dnsperf's progress as it runs.
type perfEvents struct {
	Start    func()            // it began sending
	Interval func(qps float64) // -S 1 statistics line
	End      func()            // the time limit was reached
}

// perfParser reads dnsperf's standard output line by line.
type perfParser struct {
	res perfResult
	ev  perfEvents
}

func (p *perfParser) line(l string) error {
	switch {
	case strings.HasPrefix(l, "> "):
		// Verbose: "> NOERROR name type 0.000123", or "> T name type" for
		// a query that timed out.
		f := strings.Fields(l)
		if len(f) >= 2 && f[1] == "T" {
			p.res.Timeouts++
			return nil
		}
		if len(f) != 5 {
			return nil
		}
		sec, err := strconv.ParseFloat(f[4], 64)
		if err != nil {
			return fmt.Errorf("verbose latency %q: %w", l, err)
		}
		// dnsperf prints whole microseconds.
		p.res.Latencies = append(p.res.Latencies, time.Duration(math.Round(sec*1e6))*time.Microsecond)
		return nil
	case strings.HasPrefix(l, "[Status] Sending queries"):
		if p.ev.Start != nil {
			p.ev.Start()
		}
		return nil
	case strings.HasPrefix(l, "[Status] Testing complete"):
		if p.ev.End != nil {
			p.ev.End()
		}
		return nil
	}
	k, v, ok := strings.Cut(strings.TrimSpace(l), ":")
	if !ok {
		return nil
	}
	v = strings.TrimSpace(v)
	first := func() string { f := strings.Fields(v); return append(f, "")[0] }
	var err error
	switch k {
	case "Queries sent":
		p.res.Sent, err = strconv.ParseUint(first(), 10, 64)
	case "Queries completed":
		p.res.Completed, err = strconv.ParseUint(first(), 10, 64)
	case "Queries lost":
		p.res.Lost, err = strconv.ParseUint(first(), 10, 64)
	case "Run time (s)":
		p.res.RunTime, err = strconv.ParseFloat(first(), 64)
	case "Queries per second":
		p.res.QPS, err = strconv.ParseFloat(first(), 64)
	case "Latency StdDev (s)":
		p.res.StdDev, err = strconv.ParseFloat(first(), 64)
	case "Average Latency (s)":
		// "0.000412 (min 0.000015, max 0.004492)"
		_, err = fmt.Sscanf(v, "%g (min %g, max %g)", &p.res.AvgLatency, &p.res.MinLatency, &p.res.MaxLatency)
	case "Average packet size":
		// "request 32, response 63"
		_, err = fmt.Sscanf(v, "request %g, response %g", &p.res.RequestSize, &p.res.ResponseSize)
	case "Response codes":
		// "NOERROR 185512 (50.00%), NXDOMAIN 185512 (50.00%)"
		p.res.RCodes = map[string]uint64{}
		for part := range strings.SplitSeq(v, ",") {
			f := strings.Fields(part)
			if len(f) < 2 {
				continue
			}
			n, perr := strconv.ParseUint(f[1], 10, 64)
			if perr != nil {
				return fmt.Errorf("response codes %q: %w", v, perr)
			}
			p.res.RCodes[f[0]] = n
		}
	default:
		// "1795735085.746377: 122858.381480" from -S 1
		if _, ferr := strconv.ParseFloat(k, 64); ferr == nil && strings.Contains(k, ".") {
			qps, perr := strconv.ParseFloat(v, 64)
			if perr != nil {
				return fmt.Errorf("dnsperf interval %q: %w", l, perr)
			}
			p.res.IntervalMarks = append(p.res.IntervalMarks, len(p.res.Latencies))
			if p.ev.Interval != nil {
				p.ev.Interval(qps)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("dnsperf %q: %w", l, err)
	}
	return nil
}

func parsePerf(r io.Reader, ev perfEvents) (perfResult, error) {
	p := &perfParser{ev: ev}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if err := p.line(sc.Text()); err != nil {
			return p.res, err
		}
	}
	if err := sc.Err(); err != nil {
		return p.res, fmt.Errorf("read dnsperf output: %w", err)
	}
	if p.res.Sent == 0 {
		return p.res, fmt.Errorf("dnsperf printed no statistics")
	}
	return p.res, nil
}

// runPerf runs dnsperf pinned to cfg.CPU and parses its report; started,
// when set, gets dnsperf's PID before its output is read.
func runPerf(ctx context.Context, cfg perfConfig, started func(pid int), ev perfEvents) (perfResult, error) {
	prog, args := benchkit.Pinned(cfg.CPU, cfg.Nice, cfg.args())
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setsid: cfg.Nice != 0}
	stderr := &tailBuffer{max: 4096}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return perfResult{}, fmt.Errorf("dnsperf pipe: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return perfResult{}, fmt.Errorf("start dnsperf: %w", err)
	}
	if err := benchkit.SetAutogroupNice(cmd.Process.Pid, cfg.Nice); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return perfResult{}, fmt.Errorf("dnsperf: %w", err)
	}
	if started != nil {
		started(cmd.Process.Pid)
	}
	res, perr := parsePerf(out, ev)
	if perr != nil {
		_, _ = io.Copy(io.Discard, out)
	}
	if werr := cmd.Wait(); werr != nil {
		return res, fmt.Errorf("%s: %w: %s", strings.Join(cfg.args(), " "), werr, strings.TrimSpace(stderr.String()))
	}
	return res, perr
}

// tailBuffer keeps the last max bytes written to it: dnsperf writes a line
// to standard error for every query that times out.
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }
