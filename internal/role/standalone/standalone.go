// Package standalone runs the control plane and one node in one process on
// loopback: a working authoritative server with an API from one command.
//
// The node is a catalog consumer of the control plane, exactly as a PoP
// would be: zones created through the API reach it by NOTIFY and IXFR.
//
// Start-up order: the node is prepared (it reads its persisted copies of the
// zones) → control plane (store, API, transfer server) → seed the example
// zone into an empty store → node (serves, then transfers the catalog and
// its members). Shutdown: node first, then the control plane. They run as
// the parts of one lifecycle.Runner.
//
// Everything lives in the data directory, whatever the working directory:
// DATA/control (the zone database), DATA/node (the node's copies of the
// zones) and DATA/api.token. Reload (SIGHUP) re-reads the API tokens from
// the token file through the control plane's reload; the rest comes from
// the command line and changes with a restart.
package standalone

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	examplezones "github.com/anycastdns/anycastdns/examples/zones"
	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/lifecycle"
	"github.com/anycastdns/anycastdns/internal/role/control"
	"github.com/anycastdns/anycastdns/internal/role/node"
)

// Options of a standalone run.
type Options struct {
	DataDir string         // control plane and node data; relative to the working directory
	DNS     netip.AddrPort // the node's DNS listener
	API     netip.AddrPort // the control plane's REST API
	Xfr     netip.AddrPort // the control plane's transfer listener (loopback)
	Admin   netip.AddrPort // the node's admin API
	Metrics netip.AddrPort // the node's metrics (with the transfer server's); invalid = off
	// Token is an API token given on the command line or in the
	// environment; "" = the tokens of TokenFile.
	Token string
	// TokenFile holds the API tokens, one per line, re-read on reload;
	// "" = DataDir/api.token, created with a random token when missing.
	TokenFile string
	Name      string     // node identity
	LogLevel  slog.Level // of both roles
	// APIMaxBody is the largest API request body in bytes, the control
	// plane's api.max_body (1 KiB..1 GiB); 0 = its default, 32 MiB. A
	// zone file imported in one request must fit.
	APIMaxBody int64
}

// configName names the generated configurations in messages: they are
// built in memory, not read from a file.
const (
	controlConfigName = "standalone control configuration"
	nodeConfigName    = "standalone node configuration"
)

// Run starts both roles and serves until ctx is done. Each value received
// on reload reloads the control plane's configuration (the API tokens).
func Run(ctx context.Context, o Options, logger *slog.Logger, level *slog.LevelVar, reload <-chan struct{}) error {
	r, ready, err := prepare(o, logger, level, reload)
	if err != nil {
		return err
	}
	return r.Run(ctx, ready)
}

// prepare builds the configurations and the parts of a run, and what to
// do once they are all ready.
func prepare(o Options, logger *slog.Logger, level *slog.LevelVar, reload <-chan struct{}) (*lifecycle.Runner, func(), error) {
	dir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return nil, nil, fmt.Errorf("standalone: data directory: %w", err)
	}
	o.DataDir = dir
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("standalone: %w", err)
	}
	tokens, err := apiTokens(&o)
	if err != nil {
		return nil, nil, err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, nil, err
	}
	key := base64.StdEncoding.EncodeToString(secret)
	maxBody := ""
	if o.APIMaxBody != 0 {
		maxBody = fmt.Sprintf("\n  max_body: %d", o.APIMaxBody)
	}
	ctlYAML := fmt.Sprintf(`data_dir: %q
api:
  listen: %q
  %s%s
xfr:
  listen: [%q]
  tsig_keys: [{name: standalone-xfr., algorithm: hmac-sha256, secret: %q}]
  allow_transfer: [{prefix: 127.0.0.0/8, key: standalone-xfr.}]
  notify: [{addr: %q, key: standalone-xfr.}]
  catalog: {zone: catalog.invalid.}
log: {level: %s}
`, filepath.Join(o.DataDir, "control"), o.API.String(), tokens, maxBody, o.Xfr.String(), key, o.DNS.String(), levelName(o.LogLevel))
	loadControl := func() (*config.Control, error) { return config.ParseControl([]byte(ctlYAML), controlConfigName) }
	ccfg, err := loadControl()
	if err != nil {
		return nil, nil, fmt.Errorf("standalone: %w", err)
	}
	metrics := ""
	if o.Metrics.IsValid() {
		metrics = fmt.Sprintf("metrics: {listen: %q}\n", o.Metrics.String())
	}
	nodeYAML := fmt.Sprintf(`identity: {name: %q}
listen: [%q]
data_dir: %q
tsig_keys: [{name: standalone-xfr., algorithm: hmac-sha256, secret: %q}]
catalog:
  zone: catalog.invalid.
  primaries: [{addr: %q, key: standalone-xfr.}]
admin: {listen: %q}
log: {level: %s}
%s`, o.Name, o.DNS.String(), filepath.Join(o.DataDir, "node"), key, o.Xfr.String(), o.Admin.String(), levelName(o.LogLevel), metrics)
	ncfg, err := config.ParseNode([]byte(nodeYAML), nodeConfigName)
	if err != nil {
		return nil, nil, fmt.Errorf("standalone: %w", err)
	}

	ctl, err := control.New(ccfg, logger, control.WithReload(loadControl))
	if err != nil {
		return nil, nil, err
	}
	n, err := node.New(ncfg, "", logger, level)
	if err != nil {
		return nil, nil, err
	}
	r := parts(ctl, n, reload, logger)
	tokenFrom := "token_file=" + o.TokenFile
	if o.TokenFile == "" {
		tokenFrom = "token=given"
	}
	return r, func() {
		logger.Info("standalone: API ready", "api", "http://"+o.API.String(), "dns", o.DNS.String(), "data_dir", o.DataDir, "tokens", tokenFrom)
	}, nil
}

// parts are the standalone's tasks — the control plane, the seeding of the
// example zone, the node, the memory trimmer (trim.go) — and their stop
// order.
func parts(ctl *control.Control, n *node.Node, reload <-chan struct{}, log *slog.Logger) *lifecycle.Runner {
	r := lifecycle.New(nil)
	r.Add("control", lifecycle.WithReady(func(ctx context.Context) error { return ctl.Run(ctx, reload) }, ctl.Ready()))
	seeded := make(chan struct{})
	r.Add("seed", lifecycle.WithReady(func(ctx context.Context) error {
		if err := seed(ctx, ctl); err != nil {
			return err
		}
		// The node serves the transfer server's metrics, which exists
		// once the control plane is ready.
		if err := n.Register(ctl.XfrCollectors()...); err != nil {
			return err
		}
		close(seeded)
		<-ctx.Done()
		return nil
	}, seeded))
	r.Add("node", lifecycle.WithReady(func(ctx context.Context) error { return n.Run(ctx, nil) }, n.Ready()))
	r.Add("trim", lifecycle.Func(func(ctx context.Context) error { return trimMemory(ctx, trimEvery, log) }))
	r.StopOrder(lifecycle.Stop("trim"), lifecycle.Stop("node"), lifecycle.Stop("seed"), lifecycle.Stop("control"))
	return r
}

func levelName(l slog.Level) string { return strings.ToLower(l.String()) }

// seed imports the example zone into an empty store.
func seed(ctx context.Context, ctl *control.Control) error {
	s := ctl.Store()
	zones, err := s.ListZones(ctx)
	if err != nil {
		return err
	}
	if len(zones) > 0 {
		return nil
	}
	if _, err := s.ImportZone(ctx, "example.com.", strings.NewReader(examplezones.ExampleCom)); err != nil {
		return fmt.Errorf("standalone: example zone: %w", err)
	}
	return nil
}

// TokenPath is the default token file of a data directory.
func TokenPath(dataDir string) string { return filepath.Join(dataDir, "api.token") }

// apiTokens returns the api.tokens or api.token_file line of the control
// plane's configuration: the token given, or the token file, creating the
// default one with a random token when it is missing or empty. It sets
// o.TokenFile to the file used ("" for a given token).
func apiTokens(o *Options) (string, error) {
	if o.Token != "" {
		o.TokenFile = ""
		return fmt.Sprintf("tokens: [%q]", o.Token), nil
	}
	if o.TokenFile != "" {
		p, err := filepath.Abs(o.TokenFile)
		if err != nil {
			return "", fmt.Errorf("standalone: token file: %w", err)
		}
		o.TokenFile = p
		return fmt.Sprintf("token_file: %q", p), nil
	}
	o.TokenFile = TokenPath(o.DataDir)
	b, err := os.ReadFile(o.TokenFile)
	switch {
	case err == nil && strings.TrimSpace(string(b)) != "":
	case err == nil || errors.Is(err, fs.ErrNotExist):
		if err := createTokenFile(o.TokenFile); err != nil {
			return "", err
		}
	default:
		return "", fmt.Errorf("standalone: token: %w", err)
	}
	return fmt.Sprintf("token_file: %q", o.TokenFile), nil
}

// createTokenFile writes a new random token to path, mode 0600 whatever
// the umask, replacing an empty file atomically.
func createTokenFile(path string) error {
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return err
	}
	t := base64.RawURLEncoding.EncodeToString(raw)
	f, err := os.CreateTemp(filepath.Dir(path), ".api.token.*") // mode 0600
	if err != nil {
		return fmt.Errorf("standalone: token: %w", err)
	}
	_, err = f.WriteString(t + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("standalone: token: %w", err)
	}
	return nil
}
