package control

import (
	"net/netip"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/listen"
	"github.com/anycastdns/anycastdns/internal/sign"
	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/update"
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
	if u := x.Update; u != nil {
		cfg.UpdateFrom = append(cfg.UpdateFrom, u.From...)
	}
	// Our nodes are who holds a stream key: their transfers carry the
	// pools, a third party's do not.
	for name := range streamKeys(c) {
		cfg.NodeKeys = append(cfg.NodeKeys, name)
	}
	return cfg
}

// updateRules are the rules of xfr.update.policy; none without it.
func updateRules(c *config.Control) []update.Rule {
	if c.Xfr.Update == nil {
		return nil
	}
	rules := make([]update.Rule, len(c.Xfr.Update.Policy))
	for i, r := range c.Xfr.Update.Policy {
		rules[i] = update.Rule{Key: r.Key, Zones: r.Zones, Match: update.Match(r.Match), Name: r.Name, Types: r.Types}
	}
	return rules
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
	// The policies were checked by New and by Reload.
	policies, _ := signingPolicies(c)
	return api.Config{Tokens: c.API.Tokens, MaxBody: c.API.MaxBody, SigningPolicies: policyLookup(policies)}
}

// storeOptions are the zone store's options, and the sealer of the
// signing keys (nil without signing.key_file), to Close after the store:
// it holds the PKCS#11 token's sessions.
func storeOptions(c *config.Control) ([]store.Option, *sign.Sealer, error) {
	policy, err := store.ParseSerialPolicy(c.SerialPolicy)
	if err != nil {
		return nil, nil, err
	}
	sealer, err := loadSealer(c.Signing)
	if err != nil {
		return nil, nil, err
	}
	opts := []store.Option{store.WithJournalLimit(c.JournalLimit), store.WithDefaultPolicy(policy)}
	if sealer != nil {
		opts = append(opts, store.WithSealer(sealer))
	}
	return opts, sealer, nil
}
