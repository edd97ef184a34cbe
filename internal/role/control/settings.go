package control

import (
	"net/netip"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/listen"
	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/xfrout"
)

// This file is the one place where the control plane's configuration
// becomes the settings of its components: they do not import package
// config (.golangci.yml's depguard keeps it so).

// hasXfr reports whether a configuration has a transfer server
// (xfr.listen is set).
func hasXfr(c *config.Control) bool { return len(c.Xfr.Listen) > 0 }

// xfrConfig is the transfer server's configuration: the xfr section, with
// the limits and timers at their defaults, and transfers over TLS with
// cert when xfr.tls is set (cert is then the certificate of its files).
func xfrConfig(c *config.Control, cert *listen.Certificate) xfrout.Config {
	x := c.Xfr
	cfg := xfrout.Config{Listen: append([]netip.AddrPort(nil), x.Listen...), Keys: x.TSIGKeys}
	if x.TLS != nil && cert != nil {
		cfg.TLSListen = append([]netip.AddrPort(nil), x.TLS.Listen...)
		cfg.TLS = listen.ServerTLS(cert)
	}
	for _, a := range x.AllowTransfer {
		cfg.AllowTransfer = append(cfg.AllowTransfer, xfrout.ACL{Prefix: a.Prefix, Key: a.Key, TLS: a.TLS})
	}
	for _, t := range x.Notify {
		cfg.Notify = append(cfg.Notify, xfrout.NotifyTarget{Addr: t.Addr, Key: t.Key})
	}
	if x.Catalog != nil {
		cfg.Catalog = x.Catalog.Zone
	}
	// Our nodes are who holds a stream key: their transfers carry the
	// pools, a third party's do not.
	for name := range streamKeys(c) {
		cfg.NodeKeys = append(cfg.NodeKeys, name)
	}
	return cfg
}

// xfrCertificate reads the certificate of xfr.tls; nil without it.
func xfrCertificate(c *config.Control) (*listen.Certificate, error) {
	if c.Xfr.TLS == nil {
		return nil, nil
	}
	return listen.LoadCertificate(c.Xfr.TLS.Cert, c.Xfr.TLS.Key)
}

// apiConfig is the REST API's configuration.
func apiConfig(c *config.Control) api.Config {
	return api.Config{Tokens: c.API.Tokens, MaxBody: c.API.MaxBody}
}

// storeOptions are the zone store's options.
func storeOptions(c *config.Control) ([]store.Option, error) {
	policy, err := store.ParseSerialPolicy(c.SerialPolicy)
	if err != nil {
		return nil, err
	}
	return []store.Option{store.WithJournalLimit(c.JournalLimit), store.WithDefaultPolicy(policy)}, nil
}
