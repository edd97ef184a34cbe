package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anycastdns/anycastdns/bench/internal/benchkit"
)

// bench runs the measurements of one invocation.
type bench struct {
	o      *options
	zd     *zoneData
	work   string
	logger *slog.Logger
}

// clientLimitedBelow: when the server's share of its core plus softirq and
// what others took of that core stays under this, the core sat idle for the
// rest of a saturating run, so dnsperf was the limit. (A server starved by
// other processes is not idle: that run is disturbed, see noisy.)
const clientLimitedBelow = 0.9

// figures are the results of a saturating run over some window.
type figures struct {
	QPS float64 `json:"qps"`
	// Busy is the share of its core the server's processes used
	// (utime+stime of all their threads over wall time), 1.0 = the core.
	Busy float64 `json:"server_busy"`
	// PerCore is queries/s per busy core: QPS / Busy.
	PerCore    float64 `json:"qps_per_busy_core"`
	ClientBusy float64 `json:"client_busy"`
	// ServerOther and ClientOther are what else ran on the server's and
	// on dnsperf's core: other processes, interrupts, hypervisor steal.
	ServerOther float64 `json:"server_core_other"`
	ClientOther float64 `json:"client_core_other"`
	// ServerSoftIRQ is softirq time on the server's core, mostly the
	// kernel delivering its answers over loopback (not in Busy).
	ServerSoftIRQ float64 `json:"server_core_softirq"`
	Seconds       int     `json:"seconds"`
}

// runResult is one saturating dnsperf run against one server.
type runResult struct {
	Perf perfResult `json:"dnsperf"`
	// Run covers the whole sending window.
	Run figures `json:"whole_run"`
	// Quiet covers only the seconds in which other work took at most
	// 5% of either core, when there were at least minQuiet of them. On a
	// shared machine it is the figure to compare.
	Quiet *figures `json:"quiet_seconds,omitempty"`
	// QuietCount is the number of quiet seconds, even when too few.
	QuietCount int `json:"quiet_seconds_count"`
	// ClientLimited: the server's core was idle more than 10% of the time.
	ClientLimited bool `json:"client_limited"`
}

// Headline returns the quiet seconds when there are enough of them, else
// the whole run.
func (r *runResult) Headline() figures {
	if r.Quiet != nil {
		return *r.Quiet
	}
	return r.Run
}

// Disturbed says there were too few quiet seconds to leave the noise out.
func (r *runResult) Disturbed() bool { return r.Quiet == nil }

type latencyResult struct {
	Perf perfResult `json:"dnsperf"`
	// Stats is over the quiet seconds when there are at least minQuiet of
	// them, else over the whole run (All).
	Stats        benchkit.LatencyStats `json:"latency"`
	All          benchkit.LatencyStats `json:"latency_whole_run"`
	QuietSeconds int                   `json:"quiet_seconds"`
	Seconds      int                   `json:"seconds"`
	Busy         float64               `json:"server_busy"`
	// Other is the larger share of the server's or the client's core
	// used by anything else during the run.
	Other float64 `json:"other_load"`
}

// minQuiet is the least number of quiet seconds whose figures replace
// those of the whole run.
const minQuiet = 3

type speedResult struct {
	Server  string         `json:"server"`
	Check   checkResult    `json:"answer_check"`
	UDP     *runResult     `json:"udp,omitempty"`
	Latency *latencyResult `json:"latency,omitempty"`
	TCP     *runResult     `json:"tcp,omitempty"`
	Error   string         `json:"error,omitempty"`
}

// startReady starts server name on a fresh port and waits for its SOA.
func (b *bench) startReady(ctx context.Context, name string) (*benchkit.Server, error) {
	return b.startReadyIn(ctx, name, name)
}

// startReadyIn is startReady with the server's files in work/dirName, so
// that two instances of one server can run at once.
func (b *bench) startReadyIn(ctx context.Context, name, dirName string) (*benchkit.Server, error) {
	dir := filepath.Join(b.work, dirName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("server directory: %w", err)
	}
	addr, err := benchkit.FreePort(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		return nil, err
	}
	l, err := prepareServer(name, dir, b.o.AnycastdBin, addr, b.zd)
	if err != nil {
		return nil, err
	}
	b.logger.Info("starting", "server", name, "addr", addr, "cpu", b.o.ServerCPU, "cmd", strings.Join(l.Argv, " "))
	s, err := benchkit.Start(l, b.o.ServerCPU, b.o.Nice, dir, addr)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, b.o.ReadyWait)
	defer cancel()
	at, err := benchkit.WaitAnswer(rctx, s, b.zd.Origin, benchkit.TypeSOA, benchkit.SOAReady)
	if err != nil {
		b.stop(s)
		return nil, err
	}
	b.logger.Info("ready", "server", name, "pid", s.PID(), "after", at.Sub(s.Started).Round(time.Millisecond))
	return s, nil
}

func (b *bench) stop(s *benchkit.Server) {
	if err := s.Stop(10 * time.Second); err != nil {
		b.logger.Warn("stop", "server", s.Name, "err", err)
	}
}

func (b *bench) speed(ctx context.Context, name string) (res speedResult) {
	res.Server = name
	fail := func(err error) speedResult {
		res.Error = err.Error()
		b.logger.Error("server failed", "server", name, "err", err)
		return res
	}
	s, err := b.startReady(ctx, name)
	if err != nil {
		return fail(err)
	}
	defer b.stop(s)

	if res.Check, err = checkServer(s.Addr, b.zd); err != nil {
		return fail(err)
	}
	if res.Check.Wrong > 0 {
		b.logger.Warn("wrong answers", "server", name, "wrong", res.Check.Wrong, "checked", res.Check.Checked,
			"examples", strings.Join(res.Check.Examples, "; "))
	} else {
		b.logger.Info("answers checked", "server", name, "correct", res.Check.Checked)
	}

	base := b.baseConfig(s)
	udp, err := b.saturate(ctx, s, "udp", base)
	if err != nil {
		return fail(err)
	}
	res.UDP = &udp

	lat, err := b.latency(ctx, s, latencyConfig(base, b.o.LatencyQPS))
	if err != nil {
		return fail(err)
	}
	res.Latency = &lat

	if b.o.TCP {
		tc := base
		tc.TCP = true
		tcp, err := b.saturate(ctx, s, "tcp", tc)
		if err != nil {
			return fail(err)
		}
		res.TCP = &tcp
	}
	if s.Exited() {
		return fail(fmt.Errorf("%s exited during the run: %w\n%s", name, s.ExitErr(), s.LogTail()))
	}
	return res
}

// second is one of dnsperf's one-second statistics intervals with the
// CPU shares measured over it.
type second struct {
	QPS    float64
	Shares shares
}

func (s second) quiet() bool { return s.Shares.ServerOther <= noisy && s.Shares.ClientOther <= noisy }

// measure runs dnsperf and samples the CPU time of the server and of
// dnsperf over the sending window: from dnsperf's "Sending queries" to its
// last one-second statistics line, which leaves out dnsperf reading the
// query file and waiting for stragglers at the end, and over each second.
// It logs a line of progress every second.
func (b *bench) measure(ctx context.Context, s *benchkit.Server, label string, cfg perfConfig) (perfResult, shares, []second, error) {
	sm := &sampler{server: s.Tree(), serverCPU: b.o.ServerCPU, clientCPU: b.o.ClientCPU}
	var first, last cpuSample
	var secs []second
	ev := perfEvents{
		Start: func() { first = sm.sample(); last = first },
		Interval: func(qps float64) {
			now := sm.sample()
			sec := second{QPS: qps, Shares: between(last, now)}
			last = now
			secs = append(secs, sec)
			b.logger.Info(label, "server", s.Name, "t", fmt.Sprintf("%ds/%v", len(secs), cfg.Duration),
				"qps", int(qps), "server_busy", pct(sec.Shares.Server), "client_busy", pct(sec.Shares.Client),
				"other_on_server_core", pct(sec.Shares.ServerOther), "other_on_client_core", pct(sec.Shares.ClientOther),
				"softirq_server_core", pct(sec.Shares.ServerSoftIRQ))
		},
	}
	b.logger.Info(label+" start", "server", s.Name, "args", strings.Join(cfg.args(), " "))
	perf, err := runPerf(ctx, cfg, func(pid int) { sm.client = pid }, ev)
	if err != nil {
		return perf, shares{}, nil, err
	}
	if first.At.IsZero() || len(secs) == 0 {
		return perf, shares{}, nil, fmt.Errorf("%s: dnsperf printed no statistics while sending", label)
	}
	sh := between(first, last)
	quiet := 0
	for _, sec := range secs {
		if sec.quiet() {
			quiet++
		}
	}
	if quiet < len(secs) {
		b.logger.Warn("other load on the benchmark's cores", "server", s.Name, "run", label,
			"quiet_seconds", fmt.Sprintf("%d/%d", quiet, len(secs)),
			"other_on_server_core", pct(sh.ServerOther), "other_on_client_core", pct(sh.ClientOther))
	}
	return perf, sh, secs, nil
}

// noisy is the share of a core used by others above which a second of a
// run is left out of the quiet figures.
const noisy = 0.05

func (b *bench) saturate(ctx context.Context, s *benchkit.Server, label string, cfg perfConfig) (runResult, error) {
	perf, sh, secs, err := b.measure(ctx, s, label, cfg)
	if err != nil {
		return runResult{}, err
	}
	r := runFigures(perf, sh, secs)
	h := r.Headline()
	b.logger.Info(label+" done", "server", s.Name, "qps", int(h.QPS), "server_busy", pct(h.Busy),
		"qps_per_busy_core", int(h.PerCore), "client_busy", pct(h.ClientBusy), "quiet_seconds", r.QuietCount,
		"lost", perf.Lost, "rcodes", formatRcodes(perf.RCodes))
	return r, nil
}

// runFigures computes the figures of a saturating run over the whole
// window (sh) and over its quiet seconds.
func runFigures(perf perfResult, sh shares, secs []second) runResult {
	r := runResult{Perf: perf, Run: figures{QPS: perf.QPS, Busy: sh.Server, ClientBusy: sh.Client,
		ServerOther: sh.ServerOther, ClientOther: sh.ClientOther, ServerSoftIRQ: sh.ServerSoftIRQ, Seconds: len(secs)}}
	var q figures
	for _, sec := range secs {
		if sec.quiet() {
			q.Seconds++
			q.QPS += sec.QPS
			q.Busy += sec.Shares.Server
			q.ClientBusy += sec.Shares.Client
			q.ServerOther += sec.Shares.ServerOther
			q.ClientOther += sec.Shares.ClientOther
			q.ServerSoftIRQ += sec.Shares.ServerSoftIRQ
		}
	}
	r.QuietCount = q.Seconds
	if q.Seconds >= minQuiet {
		n := float64(q.Seconds)
		q.QPS, q.Busy, q.ClientBusy = q.QPS/n, q.Busy/n, q.ClientBusy/n
		q.ServerOther, q.ClientOther, q.ServerSoftIRQ = q.ServerOther/n, q.ClientOther/n, q.ServerSoftIRQ/n
		r.Quiet = &q
	}
	for _, f := range []*figures{&r.Run, r.Quiet} {
		if f != nil && f.Busy > 0 {
			f.PerCore = f.QPS / f.Busy
		}
	}
	h := r.Headline()
	r.ClientLimited = h.Busy+h.ServerOther+h.ServerSoftIRQ < clientLimitedBelow
	return r
}

func (b *bench) latency(ctx context.Context, s *benchkit.Server, cfg perfConfig) (latencyResult, error) {
	perf, sh, secs, err := b.measure(ctx, s, "latency", cfg)
	if err != nil {
		return latencyResult{}, err
	}
	r := latencyFigures(perf, sh, secs)
	b.logger.Info("latency done", "server", s.Name, "qps", int(perf.QPS), "p50", r.Stats.P50, "p99", r.Stats.P99,
		"p99.9", r.Stats.P999, "quiet_seconds", r.QuietSeconds, "server_busy", pct(sh.Server), "lost", perf.Lost)
	return r, nil
}

// latencyFigures summarises the latencies of the whole run and of its
// quiet seconds (each answer belongs to the second whose statistics line
// followed it).
func latencyFigures(perf perfResult, sh shares, secs []second) latencyResult {
	r := latencyResult{Perf: perf, All: benchkit.Summarise(perf.Latencies), Busy: sh.Server,
		Other: max(sh.ServerOther, sh.ClientOther), Seconds: len(secs)}
	r.Stats = r.All
	var quiet []time.Duration
	for i, sec := range secs {
		if !sec.quiet() || i >= len(perf.IntervalMarks) {
			continue
		}
		from := 0
		if i > 0 {
			from = perf.IntervalMarks[i-1]
		}
		quiet = append(quiet, perf.Latencies[from:perf.IntervalMarks[i]]...)
		r.QuietSeconds++
	}
	if r.QuietSeconds >= minQuiet {
		r.Stats = benchkit.Summarise(quiet)
	}
	return r
}

// procMem is the memory of one process of a server.
type procMem struct {
	PID     int    `json:"pid"`
	Command string `json:"command"`
	HWMKiB  uint64 `json:"vmhwm_kib"`
}

type memResult struct {
	Server string `json:"server"`
	// LoadTime is from just before the process was started to the first
	// correct answer for a name at the end of the zone.
	LoadTime time.Duration `json:"load_time_ns"`
	// HWMSum sums the peak RSS (VmHWM) of every process of the server.
	// Pages shared between forked processes count once per process, so
	// for NSD it is an upper bound.
	HWMSum uint64 `json:"vmhwm_sum_kib"`
	// PSSPeak is the highest sum over the processes of their proportional
	// set size, sampled every 20 ms from the first correct answer to the end
	// of the settle time: shared pages are divided among the processes
	// sharing them. Before that only VmHWM is read (see readMem); a single
	// process's peak while loading is in its VmHWM.
	PSSPeak uint64 `json:"pss_peak_kib"`
	// LoadCPU is the CPU time the server's processes had used when the
	// first correct answer came (processes that exited before are missed).
	LoadCPU time.Duration `json:"load_cpu_ns"`
	// LoadOther is the share of the server's core other work took while it
	// loaded: noise.
	LoadOther float64 `json:"load_other"`
	// Peak is the figure to compare: the larger of PSSPeak and the VmHWM
	// of the largest process. For a single process it is its VmHWM.
	Peak      uint64    `json:"peak_kib"`
	Processes []procMem `json:"processes"`
	Error     string    `json:"error,omitempty"`
}

func (b *bench) memory(ctx context.Context, name string) (res memResult) {
	res.Server = name
	fail := func(err error) memResult {
		res.Error = err.Error()
		b.logger.Error("server failed", "server", name, "err", err)
		return res
	}
	dir := filepath.Join(b.work, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(fmt.Errorf("server directory: %w", err))
	}
	addr, err := benchkit.FreePort(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		return fail(err)
	}
	l, err := prepareServer(name, dir, b.o.AnycastdBin, addr, b.zd)
	if err != nil {
		return fail(err)
	}
	b.logger.Info("starting", "server", name, "addr", addr, "cpu", b.o.ServerCPU, "cmd", strings.Join(l.Argv, " "))
	sm := &sampler{serverCPU: b.o.ServerCPU, clientCPU: b.o.ClientCPU}
	before := sm.sample()
	s, err := benchkit.Start(l, b.o.ServerCPU, b.o.Nice, dir, addr)
	if err != nil {
		return fail(err)
	}
	defer b.stop(s)

	var mu sync.Mutex
	hwm := map[int]uint64{}
	cmdline := map[int]string{}
	var pssPeak uint64
	var loaded atomic.Bool // PSS is read only once the zone is loaded, see readMem
	sample := func() {
		var pss uint64
		for _, pid := range s.Tree() {
			m, err := benchkit.ReadMem(pid, loaded.Load())
			if err != nil {
				continue
			}
			pss += m.PSS
			mu.Lock()
			if m.HWM > hwm[pid] {
				hwm[pid] = m.HWM
			}
			// Read every time: the first sample can catch taskset
			// before it execs the server, and NSD renames its forks.
			if c := procCommand(pid); c != "?" {
				cmdline[pid] = c
			}
			mu.Unlock()
		}
		mu.Lock()
		pssPeak = max(pssPeak, pss)
		mu.Unlock()
	}
	sctx, stopSampling := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		lastLog := time.Now()
		for {
			sample()
			if time.Since(lastLog) >= time.Second {
				lastLog = time.Now()
				mu.Lock()
				var sum uint64
				for _, v := range hwm {
					sum += v
				}
				mu.Unlock()
				b.logger.Info("loading", "server", name, "elapsed", time.Since(s.Started).Round(time.Second),
					"vmhwm_sum", mib(sum), "processes", len(hwm))
			}
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	rctx, cancel := context.WithTimeout(ctx, b.o.ReadyWait)
	at, err := benchkit.WaitAnswer(rctx, s, b.zd.Probe.Name, b.zd.Probe.Type, func(m *benchkit.Message) bool { return checkAnswer(b.zd.Probe, m) == nil })
	cancel()
	if err != nil {
		stopSampling()
		wg.Wait()
		return fail(err)
	}
	loaded.Store(true)
	res.LoadTime = at.Sub(s.Started)
	sm.server = s.Tree()
	during := between(before, sm.sample()) // the server's ticks were 0 before it started
	res.LoadCPU = time.Duration(during.Server * during.wall * float64(time.Second))
	res.LoadOther = during.ServerOther
	b.logger.Info("first correct answer", "server", name, "load_time", res.LoadTime.Round(time.Millisecond),
		"cpu", res.LoadCPU.Round(time.Millisecond), "other_on_server_core", pct(res.LoadOther))
	select {
	case <-time.After(b.o.Settle):
	case <-ctx.Done():
	}
	stopSampling()
	wg.Wait()
	sample()
	if s.Exited() {
		return fail(fmt.Errorf("%s exited: %w\n%s", name, s.ExitErr(), s.LogTail()))
	}
	pids := make([]int, 0, len(hwm))
	for pid := range hwm {
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	for _, pid := range pids {
		res.HWMSum += hwm[pid]
		res.Processes = append(res.Processes, procMem{PID: pid, Command: cmdline[pid], HWMKiB: hwm[pid]})
	}
	res.PSSPeak = pssPeak
	res.Peak = pssPeak
	for _, p := range res.Processes {
		res.Peak = max(res.Peak, p.HWMKiB)
	}
	b.logger.Info("memory", "server", name, "peak", mib(res.Peak), "vmhwm_sum", mib(res.HWMSum), "pss_peak", mib(res.PSSPeak), "processes", len(pids))
	return res
}

// procCommand returns the process name (NSD names its processes
// "nsd: main", "nsd: xfrd", "nsd: server 1").
func procCommand(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || len(b) == 0 {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

func pct(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) }

func mib(kib uint64) string { return fmt.Sprintf("%.1fMiB", float64(kib)/1024) }

func formatRcodes(m map[string]uint64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, ",")
}

// serverRounds are one server's runs in the alternating rounds: per round
// a saturating UDP run and a latency run.
type serverRounds struct {
	Server string          `json:"server"`
	Runs   []latencyResult `json:"runs"`
	UDP    []runResult     `json:"udp_runs"`
	Errors []string        `json:"errors,omitempty"`
}

func medianOf(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// medians are the medians over the runs of each figure.
func (lr serverRounds) medians() benchkit.LatencyStats {
	var p50, p90, p99, p999, mx []time.Duration
	for _, r := range lr.Runs {
		p50, p90, p99 = append(p50, r.Stats.P50), append(p90, r.Stats.P90), append(p99, r.Stats.P99)
		p999, mx = append(p999, r.Stats.P999), append(mx, r.Stats.Max)
	}
	return benchkit.LatencyStats{P50: medianOf(p50), P90: medianOf(p90), P99: medianOf(p99), P999: medianOf(p999), Max: medianOf(mx)}
}

func (lr serverRounds) p99Range() (lo, hi time.Duration) {
	for i, r := range lr.Runs {
		if i == 0 || r.Stats.P99 < lo {
			lo = r.Stats.P99
		}
		hi = max(hi, r.Stats.P99)
	}
	return lo, hi
}

// udpPerCore are the q/s per busy core of the rounds' UDP runs.
func (lr serverRounds) udpPerCore() []float64 {
	var out []float64
	for _, r := range lr.UDP {
		out = append(out, r.Headline().PerCore)
	}
	return out
}

func (lr serverRounds) busyMedian() float64 {
	var b []float64
	for _, r := range lr.Runs {
		b = append(b, r.Busy)
	}
	return medianFloat(b)
}

func (lr serverRounds) lost() uint64 {
	var n uint64
	for _, r := range lr.Runs {
		n += r.Perf.Lost
	}
	return n
}

// serverRounds runs o.Rounds rounds: in each, every server in turn
// (anycastd, nsd, knot, anycastd, ...) is started afresh for a saturating
// UDP run and a latency run, so that a slow stretch of the machine falls on
// every server alike; the tables compare medians.
func (b *bench) rounds(ctx context.Context) []serverRounds {
	out := make([]serverRounds, len(b.o.Only))
	for i, name := range b.o.Only {
		out[i].Server = name
	}
	for round := range b.o.Rounds {
		for i, name := range b.o.Only {
			if ctx.Err() != nil {
				return out
			}
			time.Sleep(time.Second)
			b.logger.Info("round", "round", round+1, "of", b.o.Rounds, "server", name)
			udp, lat, err := b.roundOnce(ctx, name)
			if err != nil {
				out[i].Errors = append(out[i].Errors, err.Error())
				b.logger.Error("round failed", "server", name, "err", err)
				continue
			}
			out[i].UDP = append(out[i].UDP, udp)
			out[i].Runs = append(out[i].Runs, lat)
		}
	}
	return out
}

// roundOnce starts name afresh for one saturating UDP run and one latency
// run.
func (b *bench) roundOnce(ctx context.Context, name string) (runResult, latencyResult, error) {
	s, err := b.startReady(ctx, name)
	if err != nil {
		return runResult{}, latencyResult{}, err
	}
	defer b.stop(s)
	base := b.baseConfig(s)
	udp, err := b.saturate(ctx, s, "udp", base)
	if err != nil {
		return runResult{}, latencyResult{}, err
	}
	lat, err := b.latency(ctx, s, latencyConfig(base, b.o.LatencyQPS))
	return udp, lat, err
}

// baseConfig is the dnsperf configuration every run against s starts from.
func (b *bench) baseConfig(s *benchkit.Server) perfConfig {
	return perfConfig{
		Addr: s.Addr, QueryFile: b.zd.QueryPath, Duration: b.o.Duration,
		Clients: b.o.Clients, Outstanding: b.o.Outstanding, EDNS: b.o.EDNS,
		Timeout: 2 * time.Second, CPU: b.o.ClientCPU, Nice: b.o.Nice,
	}
}

// latencyConfig turns base into the latency run: a fixed rate, every
// answer's latency, few clients.
func latencyConfig(base perfConfig, qps int) perfConfig {
	base.MaxQPS, base.Verbose, base.Clients, base.Outstanding = qps, true, 4, 100
	return base
}
