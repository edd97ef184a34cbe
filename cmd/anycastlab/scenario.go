//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/anycastdns/anycastdns/internal/lab"
)

// demoScenarios is the demo's story, between up and down: on the default
// topology, then the steering scenarios on the steering topology.
var (
	demoScenarios         = []string{"catchment", "latency", "drain", "crash", "hang"}
	demoSteeringScenarios = []string{"gray-failure", "overload"}
)

// runScenarios is "anycastlab scenario NAME" and "anycastlab demo": bring a
// lab up with anycastd on every PoP, run the scenarios, print their tables
// (or JSON lines), bring the lab down (unless -keep).
// stateDir and id are flags of fs, read once it is parsed.
func runScenarios(ctx context.Context, cmd string, fs *flag.FlagSet, args []string, stateDir, id *string, logger func() *slog.Logger, stdout, stderr io.Writer) error {
	topoFile := fs.String("topology", "", "topology YAML (default: the embedded default)")
	anycastd := fs.String("anycastd", "", "anycastd binary (default: next to anycastlab, else built from the module in the working directory, else $PATH)")
	asJSON := fs.Bool("json", false, "print one JSON object per client and transport on stdout (tables go to stderr)")
	keep := fs.Bool("keep", false, "leave the lab running afterwards (anycastlab down removes it)")
	pop := fs.String("pop", "", "PoP the failover scenarios hit (default: the central PoP, B-pop in the default topology)")
	rate := fs.Int("rate", 100, "queries per second per client in the failover scenarios")
	timeout := fs.Duration("timeout", 200*time.Millisecond, "how long an answer may take before the query counts as lost")
	ipv6 := fs.Bool("ipv6", false, "steady queries to the IPv6 anycast address")
	changes := fs.Int("changes", 100, "record changes the propagation scenario makes through the control plane's API")
	control := fs.Bool("control", false, "also run a control plane that the PoPs follow (always on for propagation, join, control-outage, dnssec-rollover and control-failover, which runs two replicas on PostgreSQL)")
	stream := fs.Bool("stream", true, "with a control plane: the PoPs keep a stream to it (false: NOTIFY and IXFR alone)")
	floodFor := fs.Duration("flood-duration", 20*time.Second, "flood: how long each attack lasts")
	floodRate := fs.Int("flood-rate", 10000, "flood: packets a second of each UDP attack")
	floodTCPRate := fs.Int("flood-tcp-rate", 500, "flood: connections a second of the tcp-conn attack")
	floodTCPOpen := fs.Int("flood-tcp-open", 2000, "flood: most TCP connections the tcp-conn attack holds open")
	floodAttacks := fs.String("flood-attacks", "all", "flood: comma-separated attacks to run (random-subdomain, reflection, tcp-conn, garbage)")
	floodSweep := fs.String("flood-sweep", "", "flood: also sweep random-subdomain over these comma-separated rates (\"2000,5000,10000\"), stopping where A's clients drop below 99 %")
	floodStep := fs.Duration("flood-sweep-step", 5*time.Second, "flood: how long each rate of the sweep lasts")
	floodServer := fs.String("flood-server", "anycastd", "flood: the DNS server on every PoP: anycastd, or nsd or knot with their RRL (BIRD then announces for the PoPs)")
	// "scenario NAME [flags]" as well as "scenario [flags] NAME".
	var positional []string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		positional, args = args[:1], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	positional = append(positional, fs.Args()...)
	var names []string
	switch cmd {
	case "demo":
		if len(positional) != 0 {
			return errors.New("usage: anycastlab demo [flags]")
		}
		names = demoScenarios
	default:
		if len(positional) != 1 || !slices.Contains(lab.Scenarios, positional[0]) {
			return fmt.Errorf("usage: anycastlab scenario NAME [flags]; NAME is one of %s", strings.Join(lab.Scenarios, ", "))
		}
		names = positional
	}
	steering := slices.Contains(lab.SteeringScenarios, names[0])
	topo, err := loadTopology(*topoFile)
	if *topoFile == "" && steering {
		topo, err = lab.SteeringTopology()
	}
	if *topoFile == "" && names[0] == "flood" {
		topo, err = lab.FloodTopology()
	}
	if err != nil {
		return err
	}
	bin, cleanup, err := findAnycastd(ctx, *anycastd, stderr)
	if err != nil {
		return err
	}
	defer cleanup()
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable for the wires: %w", err)
	}
	// The clients' query loops run in this process: keep them on time
	// like the daemons.
	if err := lab.RaisePriority(); err != nil {
		_, _ = fmt.Fprintf(stderr, "anycastlab: %v (timings may suffer under load)\n", err)
	}
	tables, lines := stdout, io.Discard
	if *asJSON {
		tables, lines = stderr, stdout
	}
	if *changes < 1 {
		return errors.New("-changes: want at least 1")
	}
	attacks, err := lab.ParseAttacks(*floodAttacks)
	if err != nil {
		return fmt.Errorf("-flood-attacks: %w", err)
	}
	sweep, err := lab.ParseRates(*floodSweep)
	if err != nil {
		return fmt.Errorf("-flood-sweep: %w", err)
	}
	fo := lab.FloodOptions{Duration: *floodFor, Rate: *floodRate, TCPRate: *floodTCPRate, TCPOpen: *floodTCPOpen, Attacks: attacks, Sweep: sweep, SweepStep: *floodStep, Server: *floodServer}
	if err := fo.Validate(); err != nil {
		return err
	}
	opts := lab.ScenarioOptions{Target: *pop, Rate: *rate, Timeout: *timeout, IPv6: *ipv6, Changes: *changes, Progress: stderr,
		ProbeCommand: []string{exe, "stream"}, Flood: fo}
	t0 := time.Now()
	// scale-out compares the routers without and with ECMP: one lab each.
	variants := []*lab.Topology{topo}
	if names[0] == "scale-out" {
		on := *topo
		on.ECMP = !topo.ECMP
		variants = []*lab.Topology{topo, &on}
		if topo.ECMP {
			variants = []*lab.Topology{&on, topo}
		}
	}
	type labRun struct {
		topo     *lab.Topology
		names    []string
		steering bool
	}
	runs := make([]labRun, 0, len(variants)+1)
	for _, t := range variants {
		runs = append(runs, labRun{t, names, steering})
	}
	if cmd == "demo" {
		st, err := lab.SteeringTopology()
		if *topoFile != "" {
			st = topo
		}
		if err != nil {
			return err
		}
		runs = append(runs, labRun{st, demoSteeringScenarios, true})
	}
	var steps []string
	for i, lr := range runs {
		labID := *id
		if labID != "" && len(runs) > 1 {
			labID = fmt.Sprintf("%s%d", *id, i)
		}
		lopts := lab.Options{
			ID: labID, StateDir: *stateDir, WireCommand: []string{exe, "wire"}, Anycastd: bin,
			Control: *control || lr.steering || slices.Contains(lr.names, "propagation") || slices.Contains(lr.names, "join") || slices.Contains(lr.names, "control-outage") ||
				slices.Contains(lr.names, "control-failover") || slices.Contains(lr.names, "dnssec-rollover"),
			NoStream: !*stream,
			Progress: stderr, Logger: logger(),
		}
		if slices.Contains(lr.names, "control-failover") {
			// Two replicas on a PostgreSQL the lab starts.
			lopts.ControlReplicas = 2
		}
		if names[0] == "flood" && fo.Server != "anycastd" {
			lopts.Speakers, lopts.Anycastd = true, ""
		}
		if lr.steering {
			// The monitors report to the control plane, which decides
			// the PoPs' levels and sends them down the PoPs' streams.
			lv := lab.SteeringLevels
			lopts.Monitors, lopts.Levels, lopts.NoStream = true, &lv, false
			lopts.Timing = lab.SteeringNodeTiming
		}
		s, err := runOnLab(ctx, lr.topo, lr.names, lopts, opts, *keep, tables, lines)
		steps = append(steps, s...)
		if err != nil {
			return err
		}
	}
	_, _ = fmt.Fprintf(tables, "\n%s: %s; total %.1fs\n", cmd, strings.Join(steps, ", "), time.Since(t0).Seconds())
	return nil
}

// runOnLab brings one lab up, runs the scenarios on it and brings it down
// (also on failure and Ctrl-C). It returns the time of each step.
func runOnLab(ctx context.Context, topo *lab.Topology, names []string, lopts lab.Options, sopts lab.ScenarioOptions, keep bool, tables, lines io.Writer) (steps []string, err error) {
	t := time.Now()
	l, err := lab.Up(ctx, topo, lopts)
	if err != nil {
		return nil, err
	}
	steps = append(steps, fmt.Sprintf("up %.1fs", time.Since(t).Seconds()))
	defer func() {
		if err != nil {
			// What the daemons said is the first thing to read.
			dir := filepath.Join(os.TempDir(), "anycastlab-"+l.ID)
			if serr := l.SaveLogs(dir); serr == nil {
				_, _ = fmt.Fprintf(tables, "logs of lab %s saved in %s\n", l.ID, dir)
			}
		}
		if keep && err == nil {
			_, _ = fmt.Fprintf(tables, "lab %s kept: anycastlab down -id %s removes it\n", l.ID, l.ID)
			return
		}
		t := time.Now()
		if derr := l.Down(); derr != nil {
			err = errors.Join(err, derr)
			return
		}
		steps = append(steps, fmt.Sprintf("down %.1fs", time.Since(t).Seconds()))
	}()
	for _, name := range names {
		r, err := l.RunScenario(ctx, name, sopts)
		if err != nil {
			return steps, fmt.Errorf("scenario %s: %w", name, err)
		}
		steps = append(steps, fmt.Sprintf("%s %.1fs", name, r.Duration.Seconds()))
		if err := r.WriteTable(tables); err != nil {
			return steps, err
		}
		if err := r.WriteJSON(lines); err != nil {
			return steps, err
		}
		if len(r.Failures) > 0 {
			return steps, fmt.Errorf("scenario %s: %s", name, strings.Join(r.Failures, "; "))
		}
	}
	return steps, nil
}

// findAnycastd returns the anycastd binary to run on the PoPs: the flag,
// else anycastd beside this executable, else one built from the module in
// the working directory (removed by cleanup), else anycastd on $PATH.
func findAnycastd(ctx context.Context, flagged string, stderr io.Writer) (bin string, cleanup func(), err error) {
	cleanup = func() {}
	if flagged != "" {
		p, err := filepath.Abs(flagged)
		if err != nil {
			return "", cleanup, err
		}
		if _, err := os.Stat(p); err != nil { //nolint:gosec // the operator names the binary to run
			return "", cleanup, fmt.Errorf("-anycastd: %w", err)
		}
		return p, cleanup, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "anycastd")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			_, _ = fmt.Fprintf(stderr, "anycastlab: using %s\n", p)
			return p, cleanup, nil
		}
	}
	if out, err := exec.CommandContext(ctx, "go", "list", "-m").Output(); err == nil && strings.TrimSpace(string(out)) == "github.com/anycastdns/anycastdns" {
		dir, err := os.MkdirTemp("", "anycastlab-bin-")
		if err != nil {
			return "", cleanup, err
		}
		cleanup = func() { _ = os.RemoveAll(dir) }
		p := filepath.Join(dir, "anycastd")
		_, _ = fmt.Fprintf(stderr, "anycastlab: building %s\n", p)
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", p, "./cmd/anycastd").CombinedOutput(); err != nil {
			cleanup()
			return "", func() {}, fmt.Errorf("go build ./cmd/anycastd: %w: %s", err, out)
		}
		return p, cleanup, nil
	}
	p, err := exec.LookPath("anycastd")
	if err != nil {
		return "", cleanup, errors.New("no anycastd: give -anycastd PATH, put it beside anycastlab, or run from the source tree")
	}
	_, _ = fmt.Fprintf(stderr, "anycastlab: using %s\n", p)
	return p, cleanup, nil
}
