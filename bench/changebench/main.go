// Command changebench measures what a one-record change costs on a large
// zone (issue 11): it loads a generated zone into `anycastd standalone`
// through the REST API and into Knot DNS, makes the same single-RRset
// changes on each (anycastd through the API, Knot through knotc), and
// reports per change the API latency and the time until the server answers
// the new data, and the server's memory after the load and after the
// changes, against the targets. See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
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
		fmt.Fprintf(os.Stderr, "changebench: %v\n", err)
		os.Exit(1)
	}
}

// serverNames lists the servers in the order they run.
var serverNames = []string{"anycastd", "knot"}

// Ways of driving knotc.
const (
	knotcCalls = "calls" // one knotc process per command, as typed at a shell
	knotcBatch = "batch" // one knotc process reading the commands on stdin
)

// options are the command-line flags.
type options struct {
	Names         int           `json:"names"`
	Changes       int           `json:"changes"`
	Only          []string      `json:"servers"`
	AnycastdBin   string        `json:"anycastd_bin"`
	Knotc         string        `json:"knotc"`
	Poll          time.Duration `json:"poll_interval_ns"`
	AnswerTimeout time.Duration `json:"answer_timeout_ns"`
	LoadTimeout   time.Duration `json:"load_timeout_ns"`
	Settle        time.Duration `json:"settle_ns"`
	Idle          time.Duration `json:"idle_ns"`
	WaitIdle      bool          `json:"wait_idle"`
	Timeout       time.Duration `json:"timeout_ns"`
	Strict        bool          `json:"strict"`
	JSON          bool          `json:"-"`
	OutDir        string        `json:"-"`
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("changebench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = fmt.Fprintf(stderr, "usage: go run ./bench/changebench [flags]\n\n"+
			"Loads a generated zone into anycastd standalone (REST API) and Knot, makes -changes\n"+
			"single-RRset changes on each, and reports API latency, time until the change is\n"+
			"answered, and memory, against the targets of issue 11.\n\nflags:\n")
		fs.PrintDefaults()
	}
	only := fs.String("only", strings.Join(serverNames, ","), "servers to run, comma-separated: anycastd,knot")
	fs.IntVar(&o.Names, "names", 1_000_000, "owner names in the generated zone")
	fs.IntVar(&o.Changes, "changes", 100, "single-RRset changes per server")
	fs.StringVar(&o.AnycastdBin, "anycastd-bin", "", "anycastd binary (default: go build ./cmd/anycastd into the work directory)")
	fs.StringVar(&o.Knotc, "knotc", knotcCalls, "how Knot is changed: calls (one knotc per command: zone-begin, zone-unset, zone-set, zone-commit) or batch (one knotc reading the four commands)")
	fs.DurationVar(&o.Poll, "poll", time.Millisecond, "interval of the DNS queries that wait for a change to be answered")
	fs.DurationVar(&o.AnswerTimeout, "answer-timeout", time.Minute, "how long one change may take to be answered")
	fs.DurationVar(&o.LoadTimeout, "load-timeout", 20*time.Minute, "how long a server may take to load the zone (anycastd: import through the API until the node answers)")
	fs.DurationVar(&o.Settle, "settle", 2*time.Second, "wait this long before reading memory after the load and after the changes")
	fs.BoolVar(&o.WaitIdle, "wait-idle", true, "after the load, wait until the server is idle (under 10% of a core for two seconds, at most 5 min) before -settle and the changes: the changes of a zone in service, not of one still being loaded")
	fs.DurationVar(&o.Idle, "idle", 20*time.Second, "after the changes, wait this long more and read the memory of the server holding the zone, idle (0 = not)")
	fs.DurationVar(&o.Timeout, "timeout", 90*time.Minute, "bound on the whole run")
	fs.BoolVar(&o.Strict, "strict", false, "exit with an error when anycastd misses a target (default: report only)")
	fs.BoolVar(&o.JSON, "json", false, "print the results as JSON on stdout (the tables go to stderr)")
	fs.StringVar(&o.OutDir, "out", "", "keep zone, configurations, data and logs in this directory (default: a temporary directory, removed)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var errs []error
	o.Only, errs = benchkit.PickNames("only", "server", *only, serverNames)
	if o.Names < 100 {
		errs = append(errs, fmt.Errorf("-names %d: need at least 100", o.Names))
	}
	if o.Changes < 1 || o.Changes > maxChanges {
		errs = append(errs, fmt.Errorf("-changes %d: want 1..%d", o.Changes, maxChanges))
	}
	if o.Knotc != knotcCalls && o.Knotc != knotcBatch {
		errs = append(errs, fmt.Errorf("-knotc %q: want %s or %s", o.Knotc, knotcCalls, knotcBatch))
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"-poll", o.Poll}, {"-answer-timeout", o.AnswerTimeout}, {"-load-timeout", o.LoadTimeout}, {"-timeout", o.Timeout}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s %v: must be positive", d.flag, d.v))
		}
	}
	if o.Settle < 0 {
		errs = append(errs, fmt.Errorf("-settle %v: must not be negative", o.Settle))
	}
	if o.Idle < 0 {
		errs = append(errs, fmt.Errorf("-idle %v: must not be negative", o.Idle))
	}
	return o, errors.Join(errs...)
}

func checkTools(o *options) error {
	var need []benchkit.Tool
	if slices.Contains(o.Only, "knot") {
		need = append(need, benchkit.ToolKnotd, benchkit.ToolKnotc)
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
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()

	work, cleanup, err := benchkit.WorkDir(o.OutDir, "changebench", logger)
	if err != nil {
		return err
	}
	defer cleanup()

	if slices.Contains(o.Only, "anycastd") {
		if o.AnycastdBin, err = benchkit.AnycastdBinary(ctx, o.AnycastdBin, work, logger); err != nil {
			return err
		}
	}
	logger.Info("generating zone", "names", o.Names, "dir", work)
	t0 := time.Now()
	z, err := benchkit.GenerateZone("bench.example.", o.Names, work)
	if err != nil {
		return fmt.Errorf("generate zone: %w", err)
	}
	logger.Info("zone generated", "took", time.Since(t0).Round(time.Millisecond), "records", z.Records, "bytes", z.Bytes)
	changes, err := planChanges(z.Layout, o.Changes)
	if err != nil {
		return err
	}

	b := &bench{o: o, zone: z, changes: changes, work: work, logger: logger}
	rep := &report{Options: o, Zone: z.Info()}
	for _, name := range o.Only {
		if ctx.Err() != nil {
			break
		}
		rep.Servers = append(rep.Servers, b.measure(ctx, name))
	}
	// An interrupted run (Ctrl-C, -timeout) still shows what it measured.
	tables := stdout
	if o.JSON {
		tables = stderr
	}
	if err := printReport(tables, rep); err != nil {
		return fmt.Errorf("print results: %w", err)
	}
	if o.JSON {
		if err := benchkit.WriteJSON(stdout, rep); err != nil {
			return fmt.Errorf("print results: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted: %w", err)
	}
	if o.Strict {
		return rep.strictErr()
	}
	return nil
}
