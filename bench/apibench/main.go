// Command apibench measures the throughput of API writes on the control
// plane's two stores (issue 17): it starts the real `anycastd control` once
// on SQLite and once on a real PostgreSQL (started with fsync on, like
// SQLite's synchronous=FULL), creates one zone through the REST API, and
// has 1 and then 8 writers each replace one-record RRsets (PUT
// /v1/zones/ZONE/rrsets/NAME/A) for a bounded time or count. It reports
// changes per second and the latency of the PUTs per store and writer
// count. Loopback and a Unix socket only. See bench/README.md.
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
		fmt.Fprintf(os.Stderr, "apibench: %v\n", err)
		os.Exit(1)
	}
}

// The stores, in the order they run.
const (
	storeSQLite   = "sqlite"
	storePostgres = "postgres"
)

var storeNames = []string{storeSQLite, storePostgres}

// maxWriters bounds -writers.
const maxWriters = 256

// options are the command-line flags.
type options struct {
	Stores      []string      `json:"stores"`
	Writers     []int         `json:"writers"`
	Duration    time.Duration `json:"duration_ns"`
	Changes     int           `json:"changes_per_writer"`
	AnycastdBin string        `json:"anycastd_bin"`
	Timeout     time.Duration `json:"timeout_ns"`
	JSON        bool          `json:"-"`
	OutDir      string        `json:"-"`
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("apibench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = fmt.Fprintf(stderr, "usage: go run ./bench/apibench [flags]\n\n"+
			"Starts anycastd control on SQLite and on PostgreSQL (fsync on), creates one zone,\n"+
			"and has 1, then 8 writers replace one-record RRsets through the REST API; reports\n"+
			"changes/s and PUT latency per store and writer count (issue 17).\n\nflags:\n")
		fs.PrintDefaults()
	}
	stores := fs.String("stores", strings.Join(storeNames, ","), "stores to run, comma-separated: sqlite,postgres")
	writers := fs.String("writers", "1,8", "writer counts to run, comma-separated")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "how long each case writes (0 = until -changes)")
	fs.IntVar(&o.Changes, "changes", 0, "stop a writer after this many changes (0 = until -duration)")
	fs.StringVar(&o.AnycastdBin, "anycastd-bin", "", "anycastd binary (default: go build ./cmd/anycastd into the work directory)")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Minute, "bound on the whole run")
	fs.BoolVar(&o.JSON, "json", false, "print the results as JSON on stdout (the table goes to stderr)")
	fs.StringVar(&o.OutDir, "out", "", "keep configurations, data and logs in this directory (default: a temporary directory, removed)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var errs []error
	o.Stores, errs = benchkit.PickNames("stores", "store", *stores, storeNames)
	for s := range strings.SplitSeq(*writers, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxWriters {
			errs = append(errs, fmt.Errorf("-writers: %q is not a writer count 1..%d", s, maxWriters))
			continue
		}
		if !slices.Contains(o.Writers, n) {
			o.Writers = append(o.Writers, n)
		}
	}
	if len(o.Writers) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("-writers: no writer count"))
	}
	if o.Duration < 0 {
		errs = append(errs, fmt.Errorf("-duration %v: must not be negative", o.Duration))
	}
	if o.Changes < 0 || o.Changes > maxChanges {
		errs = append(errs, fmt.Errorf("-changes %d: want 0..%d", o.Changes, maxChanges))
	}
	if o.Duration == 0 && o.Changes == 0 {
		errs = append(errs, errors.New("-duration 0 and -changes 0: a case would never end; give one of them"))
	}
	if o.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("-timeout %v: must be positive", o.Timeout))
	}
	return o, errors.Join(errs...)
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
	if o.AnycastdBin == "" {
		if err := benchkit.CheckTools(benchkit.ToolGo); err != nil {
			return err
		}
	}
	if err := benchkit.BecomeSubreaper(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	work, cleanup, err := benchkit.WorkDir(o.OutDir, "apibench", logger)
	if err != nil {
		return err
	}
	defer cleanup()
	if o.AnycastdBin, err = benchkit.AnycastdBinary(ctx, o.AnycastdBin, work, logger); err != nil {
		return err
	}

	rep := &report{Options: o}
	var errs []error
	for _, store := range o.Stores {
		if ctx.Err() != nil {
			break
		}
		res, err := measureStore(ctx, o, store, work, logger)
		rep.Cases = append(rep.Cases, res...)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", store, err))
		}
	}
	// An interrupted or failed run still shows what it measured.
	table := stdout
	if o.JSON {
		table = stderr
	}
	if err := printReport(table, rep); err != nil {
		return fmt.Errorf("print results: %w", err)
	}
	if o.JSON {
		if err := benchkit.WriteJSON(stdout, rep); err != nil {
			return fmt.Errorf("print results: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		errs = append(errs, fmt.Errorf("interrupted: %w", err))
	}
	return errors.Join(errs...)
}
