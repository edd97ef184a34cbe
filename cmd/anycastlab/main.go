//go:build linux

// Command anycastlab turns this Linux machine into a small internet of
// network namespaces: routers running BIRD 2, anycast PoPs and clients,
// joined by links with delay and loss.
//
//	anycastlab up [-topology FILE] [-id ID] [-speakers | -anycastd PATH [-control [-stream=false] [-monitors [-levels]]]]   build a lab and wait until it converged
//	anycastlab status [-id ID]                             namespaces, processes, BGP sessions
//	anycastlab rtt [-id ID] [-count N]                     RTT matrix from every client
//	anycastlab exec [-id ID] NODE CMD...                   run CMD in a node's namespace
//	anycastlab down [-id ID]                               remove a lab (default: every lab)
//	anycastlab topology                                    print the default topology
//	anycastlab scenario NAME [-json] [-keep] [flags]       up, run one scenario, down
//	anycastlab demo [-json] [-keep] [flags]                up, catchment, latency, drain, crash, hang, down; then a steering lab: gray-failure, overload
//
// It needs root. Labs are recorded under /run/anycastlab (-state-dir).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/anycastdns/anycastdns/internal/lab"
)

func main() {
	// A closed stdout (anycastlab demo | head) must not kill us before we
	// remove the lab: writes then fail with EPIPE, and the lab goes down.
	signal.Ignore(syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "anycastlab:", err)
		os.Exit(1)
	}
}

const usage = `usage: anycastlab up|down|status|rtt|exec|topology|scenario|demo [flags]
scenarios: catchment, latency, drain, crash, hang, dns-failure, scale-out, propagation, join, control-outage,
           gray-failure, overload, monitor-partition, all-hot (on the steering topology, with monitors and levels),
           steer-failover, steer-geo, steer-latency, steer-weighted, steer-least-load, steer-consistent
           (service endpoints steered by a pool; on the steering topology too),
           flood (on the flood topology: an attacker in A, a victim in C),
           control-failover (two control-plane replicas on PostgreSQL; the one the writer uses is killed)
           dnssec-rollover (ZSK, KSK and algorithm rollovers under a validating unbound)
run "anycastlab COMMAND -h" for a command's flags`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("anycastlab "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	stateDir := fs.String("state-dir", lab.DefaultStateDir, "directory of the labs' state")
	id := fs.String("id", "", "lab id (default: up picks one; other commands use the only lab)")
	verbose := fs.Bool("v", false, "debug logging")
	logger := func() *slog.Logger {
		level := slog.LevelInfo
		if *verbose {
			level = slog.LevelDebug
		}
		return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	}
	switch cmd {
	case "up":
		topoFile := fs.String("topology", "", "topology YAML (default: the embedded default, see anycastlab topology)")
		speakers := fs.Bool("speakers", false, "run BIRD on the PoPs in place of anycastd's BGP speaker, announcing the anycast prefixes")
		anycastd := fs.String("anycastd", "", "run this anycastd binary on every PoP (`anycastd node` with the generated configuration)")
		control := fs.Bool("control", false, "with -anycastd: also run `anycastd control` in the central region's client namespace; the PoPs follow its catalog")
		stream := fs.Bool("stream", true, "with -control: the PoPs keep a stream to the control plane (false: NOTIFY and IXFR alone)")
		monitors := fs.Bool("monitors", false, "with -control: also run one `anycastd monitor` per region with a PoP, reporting to the control plane")
		levels := fs.Bool("levels", false, "with -monitors: the control plane decides the PoPs' levels from the reports (the steering scenarios' levels)")
		timeout := fs.Duration("timeout", 60*time.Second, "how long to wait for BGP to converge")
		if err := fs.Parse(args); err != nil {
			return err
		}
		topo, err := loadTopology(*topoFile)
		if err != nil {
			return err
		}
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find own executable for the wires: %w", err)
		}
		l, err := lab.Up(ctx, topo, lab.Options{
			ID: *id, StateDir: *stateDir, WireCommand: []string{exe, "wire"}, Speakers: *speakers, Anycastd: *anycastd, Control: *control, NoStream: !*stream,
			Monitors: *monitors, Levels: levelsIf(*levels), ConvergeTimeout: *timeout, Progress: stdout, Logger: logger(),
		})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "anycastlab down -id %s removes it\n", l.ID)
		return err
	case "down":
		if err := fs.Parse(args); err != nil {
			return err
		}
		ids := []string{*id}
		if *id == "" {
			var err error
			if ids, err = lab.ListLabs(*stateDir); err != nil {
				return err
			}
		}
		var errs []error
		for _, i := range ids {
			t0 := time.Now()
			if err := lab.Teardown(*stateDir, i); err != nil {
				errs = append(errs, err)
				continue
			}
			_, _ = fmt.Fprintf(stdout, "lab %s is down (%s)\n", i, time.Since(t0).Round(time.Millisecond))
		}
		return errors.Join(errs...)
	case "status":
		if err := fs.Parse(args); err != nil {
			return err
		}
		ids := []string{*id}
		if *id == "" {
			var err error
			if ids, err = lab.ListLabs(*stateDir); err != nil {
				return err
			}
			if len(ids) == 0 {
				_, _ = fmt.Fprintln(stdout, "no lab")
			}
		}
		for _, i := range ids {
			l, err := lab.Attach(*stateDir, i, logger())
			if err != nil {
				return err
			}
			if err := l.WriteStatus(ctx, stdout); err != nil {
				return err
			}
		}
		return nil
	case "rtt":
		count := fs.Int("count", 5, "echoes per destination")
		if err := fs.Parse(args); err != nil {
			return err
		}
		l, err := attachOne(*stateDir, *id, logger())
		if err != nil {
			return err
		}
		return lab.WriteRTTMatrix(stdout, l.RTTMatrix(ctx, *count))
	case "exec":
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() < 2 {
			return errors.New("usage: anycastlab exec [-id ID] NODE CMD [ARG...]")
		}
		l, err := attachOne(*stateDir, *id, logger())
		if err != nil {
			return err
		}
		out, err := l.Exec(ctx, fs.Arg(0), fs.Args()[1:]...)
		_, _ = stdout.Write(out)
		return err
	case "topology":
		if err := fs.Parse(args); err != nil {
			return err
		}
		_, err := stdout.Write(lab.DefaultTopologyYAML())
		return err
	case "scenario", "demo":
		return runScenarios(ctx, cmd, fs, args, stateDir, id, logger, stdout, stderr)
	case "probe":
		// Steady queries from every client of a running lab, with no
		// event: how well the lab itself keeps time.
		d := fs.Duration("duration", 10*time.Second, "how long to send")
		rate := fs.Int("rate", 100, "queries per second per client")
		timeout := fs.Duration("timeout", 200*time.Millisecond, "how long an answer may take")
		ipv6 := fs.Bool("ipv6", false, "query the IPv6 anycast address")
		if err := fs.Parse(args); err != nil {
			return err
		}
		l, err := attachOne(*stateDir, *id, logger())
		if err != nil {
			return err
		}
		if err := lab.RaisePriority(); err != nil {
			_, _ = fmt.Fprintln(stderr, "anycastlab:", err)
		}
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		stats, err := l.Probe(ctx, *d, lab.ScenarioOptions{Rate: *rate, Timeout: *timeout, IPv6: *ipv6, ProbeCommand: []string{exe, "stream"}})
		if err != nil {
			return err
		}
		for _, s := range stats {
			_, _ = fmt.Fprintf(stdout, "%s %s: sent %d lost %d (late %d) rtt p50 %s p99 %s max %s pops %v stalls at %v\n",
				s.Client, s.Transport, s.Sent, s.Lost, s.Late, s.P50.Round(100*time.Microsecond), s.P99.Round(100*time.Microsecond), s.Max.Round(100*time.Microsecond), s.PoPs, s.Stalls)
		}
		return nil
	case "stream":
		// Hidden: the clients' query streams of a scenario, started by
		// the scenario in a session of its own; stops when stdin closes.
		rate := fs.Int("rate", 100, "queries per second per stream")
		timeout := fs.Duration("timeout", 200*time.Millisecond, "how long an answer may take")
		var specs specFlag
		fs.Var(&specs, "spec", "a stream as JSON: {\"client\", \"ns\", \"src\", \"dst\"} (repeatable)")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return lab.ServeStreams(ctx, specs, *rate, *timeout, os.Stdin, stdout)
	case "wire":
		// Hidden: one link's wire, started by up with the link's two TUN
		// devices as descriptors 3 and 4.
		name := fs.String("name", "", "link name")
		delay := fs.Duration("delay", 0, "one-way delay")
		loss := fs.Float64("loss", 0, "loss probability")
		seed := fs.Uint64("seed", 0, "loss generator seed")
		delayFile := fs.String("delay-file", "", "file with a new delay, read on SIGUSR1")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return lab.ServeWire(ctx, lab.WireConfig{Name: *name, Delay: *delay, Loss: *loss, Seed: *seed, DelayFile: *delayFile}, logger(), 3, 4)
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
}

// specFlag collects -spec flags.
type specFlag []lab.StreamSpec

func (f *specFlag) String() string { return fmt.Sprint(len(*f), " streams") }

func (f *specFlag) Set(v string) error {
	var sp lab.StreamSpec
	if err := json.Unmarshal([]byte(v), &sp); err != nil {
		return fmt.Errorf("stream spec %q: %w", v, err)
	}
	*f = append(*f, sp)
	return nil
}

// levelsIf returns the steering scenarios' levels when on, else nil.
func levelsIf(on bool) *lab.Levels {
	if !on {
		return nil
	}
	lv := lab.SteeringLevels
	return &lv
}

func loadTopology(path string) (*lab.Topology, error) {
	if path == "" {
		return lab.DefaultTopology()
	}
	return lab.LoadTopology(path)
}

func attachOne(stateDir, id string, logger *slog.Logger) (*lab.Lab, error) {
	if id == "" {
		ids, err := lab.ListLabs(stateDir)
		if err != nil {
			return nil, err
		}
		if len(ids) != 1 {
			return nil, fmt.Errorf("%d labs under %s (%s): choose one with -id", len(ids), stateDir, strings.Join(ids, " "))
		}
		id = ids[0]
	}
	return lab.Attach(stateDir, id, logger)
}
