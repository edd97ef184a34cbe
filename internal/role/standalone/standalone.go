// Package standalone runs the control plane and one node in one process on
// loopback: a working authoritative server with an API from one command.
//
// The node is a catalog consumer of the control plane, exactly as a PoP
// would be: zones created through the API reach it by NOTIFY and IXFR.
//
// Start-up order: control plane (store, API, transfer server) → seed the
// example zone into an empty store → node (loads persisted copies, then
// transfers the catalog and its members). Shutdown: node first, then the
// control plane.
package standalone

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	examplezones "github.com/anycastdns/anycastdns/examples/zones"
	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/role/control"
	"github.com/anycastdns/anycastdns/internal/role/node"
)

// Options of a standalone run.
type Options struct {
	DataDir string         // control plane and node data
	DNS     netip.AddrPort // the node's DNS listener
	API     netip.AddrPort // the control plane's REST API
	Xfr     netip.AddrPort // the control plane's transfer listener (loopback)
	Admin   netip.AddrPort // the node's admin API
	Metrics netip.AddrPort // the node's metrics; invalid = off
	Token   string         // API token; "" = read or create DataDir/api.token
	Name    string         // node identity
}

// Run starts both roles and serves until ctx is done.
func Run(ctx context.Context, o Options, logger *slog.Logger, level *slog.LevelVar) error {
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return fmt.Errorf("standalone: %w", err)
	}
	token, err := apiToken(o)
	if err != nil {
		return err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	key := base64.StdEncoding.EncodeToString(secret)
	ctlYAML := fmt.Sprintf(`data_dir: %q
api:
  listen: %q
  tokens: [%q]
xfr:
  listen: [%q]
  tsig_keys: [{name: standalone-xfr., algorithm: hmac-sha256, secret: %q}]
  allow_transfer: [{prefix: 127.0.0.0/8, key: standalone-xfr.}]
  notify: [{addr: %q, key: standalone-xfr.}]
  catalog: {zone: catalog.invalid.}
`, filepath.Join(o.DataDir, "control"), o.API.String(), token, o.Xfr.String(), key, o.DNS.String())
	ccfg, err := config.ParseControl([]byte(ctlYAML), filepath.Join(o.DataDir, "standalone-control.yaml"))
	if err != nil {
		return fmt.Errorf("standalone: control configuration: %w", err)
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
%s`, o.Name, o.DNS.String(), filepath.Join(o.DataDir, "node"), key, o.Xfr.String(), o.Admin.String(), metrics)
	ncfg, err := config.ParseNode([]byte(nodeYAML), filepath.Join(o.DataDir, "standalone-node.yaml"))
	if err != nil {
		return fmt.Errorf("standalone: node configuration: %w", err)
	}

	ctl, err := control.New(ccfg, logger)
	if err != nil {
		return err
	}
	ctlCtx, stopCtl := context.WithCancel(context.Background())
	defer stopCtl()
	ctlDone := make(chan error, 1)
	go func() { ctlDone <- ctl.Run(ctlCtx) }()
	select {
	case <-ctl.Ready():
	case err := <-ctlDone:
		return err
	case <-ctx.Done():
		stopCtl()
		return <-ctlDone
	}
	if err := seed(ctx, ctl); err != nil {
		stopCtl()
		return errors.Join(err, <-ctlDone)
	}
	n, err := node.New(ncfg, "", logger, level)
	if err != nil {
		stopCtl()
		return errors.Join(err, <-ctlDone)
	}
	logger.Info("standalone: API ready", "api", "http://"+o.API.String(), "token_file", tokenPath(o), "dns", o.DNS.String())
	nodeErr := n.Run(ctx, nil)
	stopCtl()
	return errors.Join(nodeErr, <-ctlDone)
}

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

func tokenPath(o Options) string { return filepath.Join(o.DataDir, "api.token") }

// apiToken returns the configured token or the one kept in the data
// directory, creating it on first start.
func apiToken(o Options) (string, error) {
	if o.Token != "" {
		return o.Token, nil
	}
	p := tokenPath(o)
	if b, err := os.ReadFile(p); err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	t := base64.RawURLEncoding.EncodeToString(raw)
	if err := os.WriteFile(p, []byte(t+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("standalone: token: %w", err)
	}
	return t, nil
}
