// Command anycastd is the anycastdns daemon. It only parses flags, builds
// the context and the logger, loads configuration and starts a role.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"go.yaml.in/yaml/v3"

	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/role/control"
	"github.com/anycastdns/anycastdns/internal/role/monitor"
	"github.com/anycastdns/anycastdns/internal/role/node"
	"github.com/anycastdns/anycastdns/internal/role/standalone"
	"github.com/anycastdns/anycastdns/internal/version"
)

const usage = `anycastd — anycast authoritative DNS

Usage:
  anycastd node -config FILE             a PoP: authoritative DNS, health checks, BGP
  anycastd node -listen ADDR:PORT -zone NAME=FILE [-listen ...] [-zone ...] [-nsid TEXT]
               [-metrics ADDR:PORT] [-log-level LEVEL]
  anycastd control -config FILE          the control plane: zone store, REST API, AXFR/IXFR, NOTIFY, catalog
  anycastd control migrate -from sqlite:PATH -to postgres:DSN
                                         copy the control plane's zone database to an empty PostgreSQL one
  anycastd monitor -config FILE          a vantage point: probes every PoP (DNS over UDP and TCP, load),
                                         serves its view at /v1/view and /metrics
  anycastd standalone [-data DIR] [-dns ADDR:PORT] [-api ADDR:PORT] [-token-file FILE] [-api-max-body SIZE]
                                         control plane + one node on loopback, seeded with example.com.
  anycastd checkconf [-role node|control|monitor] [-zones] FILE
                                         check a configuration file as the role loads it (exit 0 valid, 1 not)
  anycastd checkzone [-origin NAME] FILE...
                                         check zone files as a node loads them (exit 0 valid, 1 not)
  anycastd version

Signals: SIGHUP reloads the configuration (node: and its zones; a zone that
fails to load keeps its previous version serving; standalone: the API token
file; monitor: its PoPs and timing); a configuration that fails to load is logged with its file:line and
the running one stays. SIGTERM and SIGINT shut down cleanly.
`

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		var ee *exitError
		if !errors.As(err, &ee) { // a check command has printed its problems
			fmt.Fprintln(os.Stderr, "anycastd:", err)
		}
		os.Exit(exitCode(err))
	}
}

func run(args []string, stderr io.Writer) error {
	if len(args) == 0 {
		_, _ = fmt.Fprint(stderr, usage)
		return errors.New("missing command")
	}
	switch args[0] {
	case "node":
		return runNode(args[1:], stderr)
	case "control":
		return runControl(args[1:], stderr)
	case "monitor":
		return runMonitor(args[1:], stderr)
	case "standalone":
		return runStandalone(args[1:], stderr)
	case "checkconf":
		return runCheckconf(args[1:], os.Stdout, stderr)
	case "checkzone":
		return runCheckzone(args[1:], os.Stdout, stderr)
	case "version":
		fmt.Println("anycastd", version.Get())
		return nil
	case "-h", "-help", "--help", "help":
		_, _ = fmt.Fprint(stderr, usage)
		return nil
	}
	_, _ = fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func runNode(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var listens, zones multi
	cfgPath := fs.String("config", "", "node configuration `file` (YAML)")
	fs.Var(&listens, "listen", "DNS listen `address:port`, UDP and TCP (repeatable; IPv6 as [::1]:5353)")
	fs.Var(&zones, "zone", "zone to serve as `name=file` (repeatable)")
	nsid := fs.String("nsid", "", "node identity for NSID, id.server. and hostname.bind. (default: host name)")
	metricsAddr := fs.String("metrics", "", "Prometheus metrics `address:port` (default off)")
	logLevel := fs.String("log-level", "", "log level: debug, info, warn, error (default info)")
	fs.Usage = func() {
		_, _ = fmt.Fprint(stderr, usage, "\nFlags of node:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var cfg *config.Node
	var err error
	switch {
	case *cfgPath != "" && (len(listens) > 0 || len(zones) > 0):
		return errors.New("node: use either -config or -listen/-zone, not both")
	case *cfgPath != "":
		cfg, err = config.LoadNode(*cfgPath)
		if err != nil {
			return err
		}
	default:
		cfg, err = flagConfig(listens, zones, *metricsAddr, *nsid, *logLevel)
		if err != nil {
			return err
		}
	}
	if *cfgPath != "" && *nsid != "" {
		cfg.Identity.Name = *nsid
	}
	logger, level := config.NewLogger(cfg.Log, stderr)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	reload, stopReload := reloadSignal()
	defer stopReload()
	node.Version = version.Get().Version
	n, err := node.New(cfg, *cfgPath, logger, level)
	if err != nil {
		return err
	}
	return n.Run(ctx, reload)
}

// flagConfig builds a node configuration from the quick-start flags. It goes
// through the same YAML decoder, defaults and validation as a file.
func flagConfig(listens, zones []string, metricsAddr, nsid, level string) (*config.Node, error) {
	type zoneDoc struct {
		Name string `yaml:"name"`
		File string `yaml:"file"`
	}
	doc := map[string]any{}
	if len(listens) > 0 {
		doc["listen"] = listens
	}
	var zs []zoneDoc
	var errs []error
	for _, z := range zones {
		name, file, ok := strings.Cut(z, "=")
		if !ok || name == "" || file == "" {
			errs = append(errs, fmt.Errorf("-zone %q: want name=file", z))
			continue
		}
		zs = append(zs, zoneDoc{name, file})
	}
	if len(zs) > 0 {
		doc["zones"] = zs
	}
	if metricsAddr != "" {
		doc["metrics"] = map[string]string{"listen": metricsAddr}
	}
	if nsid != "" {
		doc["identity"] = map[string]string{"name": nsid}
	}
	if level != "" {
		doc["log"] = map[string]string{"level": level}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	data, err := yaml.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return config.ParseNode(data, "command-line")
}

func runControl(args []string, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "migrate" {
		return runControlMigrate(args[1:], os.Stdout, stderr)
	}
	return runConfigured("control", "control plane", args, stderr, config.LoadControl,
		func(cfg *config.Control) config.Log { return cfg.Log },
		func(cfg *config.Control, logger *slog.Logger, level *slog.LevelVar, reload func() (*config.Control, error)) (role, error) {
			return control.New(cfg, logger, control.WithReload(reload), control.WithLogLevel(level))
		})
}

func runMonitor(args []string, stderr io.Writer) error {
	return runConfigured("monitor", "monitor", args, stderr, config.LoadMonitor,
		func(cfg *config.Monitor) config.Log { return cfg.Log },
		func(cfg *config.Monitor, logger *slog.Logger, level *slog.LevelVar, reload func() (*config.Monitor, error)) (role, error) {
			return monitor.New(cfg, logger, monitor.WithReload(reload), monitor.WithLogLevel(level))
		})
}

// role is a running role: it serves until ctx ends, reloading on each
// value of reload.
type role interface {
	Run(ctx context.Context, reload <-chan struct{}) error
}

// runConfigured is the command line of a role configured by one file
// (-config, required, described as what): it loads the file, builds the
// role with a reload that reads the file again, and runs it until SIGTERM
// or SIGINT, reloading on SIGHUP.
func runConfigured[C any](name, what string, args []string, stderr io.Writer,
	load func(path string) (*C, error), logOf func(*C) config.Log,
	build func(cfg *C, logger *slog.Logger, level *slog.LevelVar, reload func() (*C, error)) (role, error),
) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", what+" configuration `file` (YAML)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *cfgPath == "" {
		return errors.New(name + ": -config is required")
	}
	cfg, err := load(*cfgPath)
	if err != nil {
		return err
	}
	logger, level := config.NewLogger(logOf(cfg), stderr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	reload, stopReload := reloadSignal()
	defer stopReload()
	r, err := build(cfg, logger, level, func() (*C, error) { return load(*cfgPath) })
	if err != nil {
		return err
	}
	return r.Run(ctx, reload)
}

// reloadSignal catches SIGHUP from now on, so that it no longer ends the
// process, and turns each into a value on the returned channel, which
// every role's Run takes as its reload requests. Signals that arrive while
// one reload is pending are merged into it. stop ends the catching.
func reloadSignal() (reload <-chan struct{}, stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ch := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				select {
				case ch <- struct{}{}:
				default:
				}
			case <-done:
				return
			}
		}
	}()
	return ch, func() {
		signal.Stop(hup)
		close(done)
	}
}

// envStandaloneToken names the environment variable with the standalone's
// API token: unlike -token, it is not shown to other users by ps.
const envStandaloneToken = "ANYCASTD_API_TOKEN" //nolint:gosec // the name of a variable, not a credential

// The bounds of -api-max-body: those of the control plane's api.max_body.
const (
	minAPIMaxBody = 1 << 10
	maxAPIMaxBody = 1 << 30
)

// parseSize reads a size in bytes: digits, optionally followed by KiB, MiB
// or GiB, between lo and hi.
func parseSize(s string, lo, hi int64) (int64, error) {
	digits, mult := s, int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if d, ok := strings.CutSuffix(s, u.suffix); ok {
			digits, mult = d, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q: want a number of bytes, or one with a KiB, MiB or GiB suffix", s)
	}
	if n > hi/mult || n*mult < lo {
		return 0, fmt.Errorf("%q: must be between %d and %d bytes (1KiB..1GiB)", s, lo, hi)
	}
	return n * mult, nil
}

func runStandalone(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("standalone", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "anycastdns-data", "data `directory` (zone store, transferred zones, API token)")
	dnsAddr := fs.String("dns", "127.0.0.1:5353", "DNS listen `address:port`")
	apiAddr := fs.String("api", "127.0.0.1:8080", "REST API listen `address:port`")
	xfrAddr := fs.String("xfr", "127.0.0.1:5300", "transfer server `address:port` (AXFR/IXFR to the node)")
	adminAddr := fs.String("admin", "127.0.0.1:8053", "node admin API `address:port`")
	metricsAddr := fs.String("metrics", "127.0.0.1:9153", "metrics `address:port` (empty = off)")
	token := fs.String("token", "", "API token (visible to other users in ps: prefer -token-file or $"+envStandaloneToken+")")
	tokenFile := fs.String("token-file", "", "`file` of API tokens, one per line, mode 0600, re-read on SIGHUP (default: DIR/api.token, created with a random token)")
	name := fs.String("nsid", "standalone", "node identity (NSID)")
	maxBody := fs.String("api-max-body", "", "largest API request `size` in bytes, or with a KiB, MiB or GiB suffix, 1KiB..1GiB (control's api.max_body; default 32MiB); a zone file imported in one request must fit")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	o := standalone.Options{DataDir: *data, Token: *token, TokenFile: *tokenFile, Name: *name}
	var errs []error
	if o.Token == "" {
		o.Token = os.Getenv(envStandaloneToken)
	}
	if *token != "" && *tokenFile != "" {
		errs = append(errs, errors.New("-token and -token-file: use one"))
	}
	if *maxBody != "" {
		n, err := parseSize(*maxBody, minAPIMaxBody, maxAPIMaxBody)
		if err != nil {
			errs = append(errs, fmt.Errorf("-api-max-body: %w", err))
		}
		o.APIMaxBody = n
	}
	for _, a := range []struct {
		flag string
		val  string
		dst  *netip.AddrPort
	}{{"-dns", *dnsAddr, &o.DNS}, {"-api", *apiAddr, &o.API}, {"-xfr", *xfrAddr, &o.Xfr}, {"-admin", *adminAddr, &o.Admin}, {"-metrics", *metricsAddr, &o.Metrics}} {
		if a.val == "" && a.flag == "-metrics" {
			continue
		}
		ap, err := netip.ParseAddrPort(a.val)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", a.flag, a.val, err))
		}
		*a.dst = ap
	}
	if err := o.LogLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		errs = append(errs, fmt.Errorf("-log-level: %w", err))
	}
	format := config.LogFormat(*logFormat)
	if format != config.LogText && format != config.LogJSON {
		errs = append(errs, fmt.Errorf("-log-format %q: want text or json", *logFormat))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	logger, level := config.NewLogger(config.Log{Level: o.LogLevel, Format: format}, stderr)
	if *token != "" {
		logger.Warn("standalone: -token is visible to every user of this host (ps); prefer -token-file or $" + envStandaloneToken)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	reload, stopReload := reloadSignal()
	defer stopReload()
	node.Version = version.Get().Version
	return standalone.Run(ctx, o, logger, level, reload)
}
