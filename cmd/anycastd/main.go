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
	"os"
	"os/signal"
	"strings"
	"syscall"

	"go.yaml.in/yaml/v3"

	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/role/node"
)

const usage = `anycastd — anycast authoritative DNS

Usage:
  anycastd node -config FILE
  anycastd node -listen ADDR:PORT -zone NAME=FILE [-listen ...] [-zone ...] [-nsid TEXT]
               [-metrics ADDR:PORT] [-log-level LEVEL]
  anycastd version

Signals: SIGHUP reloads configuration and zones (a zone that fails to load keeps
its previous version serving); SIGTERM and SIGINT shut down cleanly.
`

var version = "dev"

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "anycastd:", err)
		os.Exit(1)
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
	case "version":
		fmt.Println("anycastd", version)
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
	level := new(slog.LevelVar)
	level.Set(cfg.Log.Level)
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(stderr, opts)
	if cfg.Log.Format == config.LogJSON {
		h = slog.NewJSONHandler(stderr, opts)
	}
	logger := slog.New(h)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default:
			}
		}
	}()
	node.Version = version
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
