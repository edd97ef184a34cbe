// Command dnsbench compares anycastd with NSD and Knot DNS on one machine:
// throughput per busy core, latency at a fixed rate and TCP throughput on a
// generated zone (default), or load time and peak memory on a large zone
// (-mem). See bench/README.md for the method and how to read the figures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/anycastdns/anycastdns/bench/internal/benchkit"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "dnsbench: %v\n", err)
		os.Exit(1)
	}
}

// options are the command-line flags.
type options struct {
	Duration    time.Duration `json:"duration_ns"`
	Names       int           `json:"names"`
	Queries     int           `json:"queries"`
	Only        []string      `json:"servers"`
	onlySet     bool
	AnycastdBin string `json:"anycastd_bin"`
	JSON        bool   `json:"-"`
	Mem         bool   `json:"mem"`
	LatencyQPS  int    `json:"latency_qps"`
	// Rounds repeats the UDP and latency runs this many more times, the
	// servers taking turns, after the first runs: one run's p99 on a
	// shared VM swings by several times between runs, its q/s per core
	// by ±5-10%.
	Rounds int `json:"rounds"`
	// PairedRounds runs each server at the same time as NSD this many
	// times (paired.go).
	PairedRounds int           `json:"paired_rounds"`
	ServerCPU    int           `json:"server_cpu"`
	ClientCPU    int           `json:"client_cpu"`
	Clients      int           `json:"clients"`
	Outstanding  int           `json:"outstanding"`
	OutDir       string        `json:"-"`
	Seed         uint64        `json:"seed"`
	EDNS         bool          `json:"edns"`
	TCP          bool          `json:"tcp"`
	Nice         int           `json:"nice"`
	Settle       time.Duration `json:"settle_ns"`
	ReadyWait    time.Duration `json:"ready_timeout_ns"`
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("dnsbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = fmt.Fprintf(stderr, "usage: go run ./bench/dnsbench [flags]\n\n"+
			"Speed (default): UDP queries/s per busy core, latency at -latency-qps, TCP queries/s.\n"+
			"Memory (-mem): load time and peak memory on a large zone.\n\nflags:\n")
		fs.PrintDefaults()
	}
	only := fs.String("only", strings.Join(serverNames, ","), "servers to run, comma-separated: anycastd,nsd,knot")
	fs.DurationVar(&o.Duration, "duration", 12*time.Second, "length of each dnsperf run")
	fs.IntVar(&o.Names, "names", 0, "owner names in the generated zone (default 100000, or 1000000 with -mem)")
	fs.IntVar(&o.Queries, "queries", 500000, "lines in the dnsperf query file (dnsperf loops over it)")
	fs.StringVar(&o.AnycastdBin, "anycastd-bin", "", "anycastd binary (default: go build ./cmd/anycastd into the work directory)")
	fs.BoolVar(&o.JSON, "json", false, "print the results as JSON on stdout (progress stays on stderr)")
	fs.BoolVar(&o.Mem, "mem", false, "measure load time and peak memory instead of speed")
	fs.IntVar(&o.LatencyQPS, "latency-qps", 10000, "fixed query rate of the latency run")
	fs.IntVar(&o.Rounds, "rounds", 3, "alternating rounds after the first runs, each server started afresh for a saturating UDP run and a latency run; the ratios compare medians (0 = none)")
	fs.IntVar(&o.PairedRounds, "paired-rounds", 6, "latency rounds with each server and NSD running at the same time on the server CPU, compared round by round; NSD beside NSD is the control (0 = none)")
	fs.IntVar(&o.ServerCPU, "server-cpu", 0, "CPU the servers are pinned to")
	fs.IntVar(&o.ClientCPU, "client-cpu", 1, "CPU dnsperf is pinned to")
	fs.IntVar(&o.Clients, "clients", 16, "dnsperf -c: client sockets (UDP) or connections (TCP)")
	fs.IntVar(&o.Outstanding, "outstanding", 128, "dnsperf -q: queries in flight in the throughput runs")
	fs.StringVar(&o.OutDir, "out", "", "keep zone, configs and logs in this directory (default: a temporary directory, removed)")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the query generator")
	fs.BoolVar(&o.EDNS, "edns", false, "send EDNS0 (dnsperf -e) in the speed runs")
	fs.BoolVar(&o.TCP, "tcp", true, "include the TCP throughput run")
	fs.IntVar(&o.Nice, "nice", 0, "run the servers and dnsperf at this niceness (e.g. -10 on a shared machine; needs root; slows everything else down)")
	fs.DurationVar(&o.Settle, "settle", 2*time.Second, "with -mem: how long to keep sampling memory after the first answer")
	fs.DurationVar(&o.ReadyWait, "ready-timeout", 10*time.Minute, "how long a server may take to answer its first query")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "only" {
			o.onlySet = true
		}
	})
	// Known order, so that runs are comparable.
	var errs []error
	o.Only, errs = benchkit.PickNames("only", "server", *only, serverNames)
	if o.Names == 0 {
		o.Names = 100_000
		if o.Mem {
			o.Names = 1_000_000
		}
	}
	if o.Duration < 3*time.Second {
		errs = append(errs, fmt.Errorf("-duration %v: need at least 3s", o.Duration))
	}
	if o.ServerCPU == o.ClientCPU {
		errs = append(errs, errors.New("-server-cpu and -client-cpu must differ"))
	}
	if n := runtime.NumCPU(); o.ServerCPU < 0 || o.ClientCPU < 0 || o.ServerCPU >= n || o.ClientCPU >= n {
		errs = append(errs, fmt.Errorf("need CPUs %d and %d; this machine has %d", o.ServerCPU, o.ClientCPU, n))
	}
	if o.Nice < -20 || o.Nice > 19 {
		errs = append(errs, fmt.Errorf("-nice %d: want -20..19", o.Nice))
	}
	if o.Clients < 1 || o.Outstanding < 1 || o.LatencyQPS < 1 || o.Queries < 1000 || o.Rounds < 0 || o.PairedRounds < 0 {
		errs = append(errs, errors.New("-clients, -outstanding, -latency-qps must be positive and -queries at least 1000"))
	}
	return o, errors.Join(errs...)
}

func checkTools(o *options) error {
	need := []benchkit.Tool{{Bin: "taskset", Hint: "apt-get install util-linux"}}
	if !o.Mem {
		need = append(need, benchkit.Tool{Bin: "dnsperf", Hint: "apt-get install dnsperf"})
	}
	if slices.Contains(o.Only, "nsd") {
		need = append(need, benchkit.Tool{Bin: "nsd", Hint: "apt-get install nsd"})
	}
	if slices.Contains(o.Only, "knot") {
		need = append(need, benchkit.ToolKnotd)
	}
	if slices.Contains(o.Only, "anycastd") && o.AnycastdBin == "" {
		need = append(need, benchkit.ToolGo)
	}
	return benchkit.CheckTools(need...)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	logger := benchkit.NewLogger(stderr)
	if err := checkTools(o); err != nil {
		return err
	}
	if err := benchkit.BecomeSubreaper(); err != nil {
		return err
	}
	// The benchmark's own work (zone generation, memory sampling, polling,
	// parsing dnsperf's output) stays off the server's core.
	if out, err := exec.Command("taskset", "-a", "-p", "-c", strconv.Itoa(o.ClientCPU), strconv.Itoa(os.Getpid())).CombinedOutput(); err != nil {
		return fmt.Errorf("pin dnsbench to cpu %d: %w: %s", o.ClientCPU, err, strings.TrimSpace(string(out)))
	}

	work, cleanup, err := benchkit.WorkDir(o.OutDir, "dnsbench", logger)
	if err != nil {
		return err
	}
	defer cleanup()

	if slices.Contains(o.Only, "anycastd") {
		bin, err := benchkit.AnycastdBinary(ctx, o.AnycastdBin, work, logger)
		switch {
		case err == nil:
			o.AnycastdBin = bin
		case o.onlySet:
			return err
		default:
			logger.Warn("anycastd skipped: no binary", "err", err)
			o.Only = slices.DeleteFunc(o.Only, func(s string) bool { return s == "anycastd" })
			if len(o.Only) == 0 {
				return errors.New("no server left to run")
			}
		}
	}

	genCfg := genConfig{Origin: "bench.example.", Names: o.Names, Seed: o.Seed}
	if !o.Mem {
		genCfg.Queries = o.Queries
	}
	logger.Info("generating zone", "names", o.Names, "dir", work)
	t0 := time.Now()
	zd, err := generate(genCfg, work)
	if err != nil {
		return fmt.Errorf("generate zone: %w", err)
	}
	logger.Info("zone generated", "took", time.Since(t0).Round(time.Millisecond), "bytes", zd.Bytes)
	if !o.Mem {
		logMix(logger, zd)
	}

	b := &bench{o: o, zd: zd, work: work, logger: logger}
	report := &report{Options: o, Zone: zoneInfo{ZoneInfo: zd.Info()}}
	if !o.Mem {
		report.Zone.Mix = map[string]int{}
		for k := range numKinds {
			report.Zone.Mix[k.String()] = zd.Mix[k]
		}
	}
	for i, name := range o.Only {
		if ctx.Err() != nil {
			break
		}
		if i > 0 {
			time.Sleep(time.Second) // let the previous server's sockets and memory go
		}
		if o.Mem {
			report.Mem = append(report.Mem, b.memory(ctx, name))
		} else {
			report.Speed = append(report.Speed, b.speed(ctx, name))
		}
	}
	if !o.Mem && o.Rounds > 0 && ctx.Err() == nil {
		report.Rounds = b.rounds(ctx)
	}
	if !o.Mem && o.PairedRounds > 0 && ctx.Err() == nil {
		report.PairedRounds = b.pairedRounds(ctx)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted: %w", err)
	}
	// With -json the tables still go to the person watching, on stderr.
	tables := stdout
	if o.JSON {
		tables = stderr
	}
	render := printSpeed
	if o.Mem {
		render = printMem
	}
	if err := render(tables, report); err != nil {
		return fmt.Errorf("print results: %w", err)
	}
	if o.JSON {
		return benchkit.WriteJSON(stdout, report)
	}
	return nil
}
