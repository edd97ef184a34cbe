package xfrout

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/tsig"
)

// Config configures a Server. Zero limits and timers take the defaults
// shown.
type Config struct {
	// Listen holds the addresses of the transfer server, UDP and TCP on
	// each; at least one. Port 0 picks a free port (see Server.Addrs).
	Listen []netip.AddrPort
	// TLSListen holds the addresses of the transfer server over TLS
	// (RFC 9103, XoT), TCP alone, with the TLS configuration TLS (a
	// certificate, ALPN "dot": listen.ServerTLS); empty = none. The same
	// ACL and TSIG apply as without TLS.
	TLSListen []netip.AddrPort
	TLS       *tls.Config
	// Keys are the TSIG keys of the ACL and of the NOTIFY targets.
	Keys []tsig.Key
	// AllowTransfer is who may query SOA and transfer (AXFR, IXFR) every
	// zone: a request is allowed when its source is in the Prefix of an
	// entry whose Key is empty or is the key the request was signed with.
	AllowTransfer []ACL
	// NodeKeys name the keys of our own nodes (the control plane's stream
	// keys): an AXFR or IXFR signed with one of them carries the pools
	// (records of type steer.TypePool); any other transfer — unsigned, or
	// signed with another key, as a third-party secondary's — gets the
	// zone without them (issue #14). The change stream always carries them.
	NodeKeys []string
	// Notify are the secondaries sent NOTIFY when a zone changes.
	Notify []NotifyTarget
	// Catalog is the name of the catalog zone (RFC 9432) listing every
	// zone of the source; "" = no catalog.
	Catalog string
	// Update applies a DNS UPDATE (RFC 2136) whose TSIG verified (key is
	// its canonical name, "" when unsigned) and returns the rcode of the
	// answer, which the server signs; nil: UPDATE is answered NOTIMP.
	// It must be safe for concurrent use.
	Update UpdateFunc
	// UpdateFrom are the sources that may send UPDATE (others get
	// REFUSED, and their TCP connections are accepted only if
	// AllowTransfer lets them in); empty: any source, every UPDATE still
	// needing a key Update accepts.
	UpdateFrom []netip.Prefix

	// MaxConns bounds open TCP connections (128); more are closed at once.
	MaxConns int
	// MaxTransfers bounds AXFR/IXFR streams being written at once (16);
	// more wait their turn.
	MaxTransfers int
	// MessageSize bounds each message of a transfer, TSIG included, in
	// bytes (16384, at most 65535).
	MessageSize int
	// IdleTimeout is how long a TCP connection may wait for a query, and
	// the longest time writing one message may take (30s).
	IdleTimeout time.Duration

	// NotifyTries is how many NOTIFYs are sent for one serial before
	// giving up (5); NotifyTimeout how long each waits for an answer (2s);
	// NotifyBackoff the pause after the first unanswered one, doubling
	// after each (1s).
	NotifyTries   int
	NotifyTimeout time.Duration
	NotifyBackoff time.Duration
	// NotifyConcurrency bounds the NOTIFYs in flight to one target (8).
	NotifyConcurrency int

	// CatalogDelay is the shortest time between two catalog versions (1s):
	// a creation or deletion updates the catalog at once unless the last
	// version is younger than this; then the changes of that time are
	// batched into one version when it has passed.
	CatalogDelay time.Duration
	// CatalogJournal is how many catalog changes are kept for IXFR (100).
	CatalogJournal int

	// Now is the clock of the catalog serial; nil = time.Now.
	Now func() time.Time
}

// UpdateFunc applies one UPDATE message (see Config.Update).
type UpdateFunc func(ctx context.Context, m *dns.Msg, key string, src netip.AddrPort) int

// ACL allows transfers from Prefix, signed with Key unless Key is "",
// and only over TLS (XoT, RFC 9103) when TLS is set.
type ACL struct {
	Prefix netip.Prefix
	Key    string
	TLS    bool
}

// NotifyTarget is a secondary sent NOTIFY, signed with Key unless Key is "".
type NotifyTarget struct {
	Addr netip.AddrPort
	Key  string
}

// ErrConfig marks an invalid Config.
var ErrConfig = errors.New("invalid xfrout configuration")

// Bounds of the limits.
const (
	minMessageSize = 512
	maxMessageSize = 65535
)

func (c *Config) defaults() {
	c.MaxConns = cmp.Or(c.MaxConns, 128)
	c.MaxTransfers = cmp.Or(c.MaxTransfers, 16)
	c.MessageSize = cmp.Or(c.MessageSize, 16384)
	c.IdleTimeout = cmp.Or(c.IdleTimeout, 30*time.Second)
	c.NotifyTries = cmp.Or(c.NotifyTries, 5)
	c.NotifyTimeout = cmp.Or(c.NotifyTimeout, 2*time.Second)
	c.NotifyBackoff = cmp.Or(c.NotifyBackoff, time.Second)
	c.NotifyConcurrency = cmp.Or(c.NotifyConcurrency, 8)
	c.CatalogDelay = cmp.Or(c.CatalogDelay, time.Second)
	c.CatalogJournal = cmp.Or(c.CatalogJournal, 100)
	if c.Now == nil {
		c.Now = time.Now
	}
}

// check validates c (with defaults applied) and returns its keyring.
func (c *Config) check() (*tsig.Keyring, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(c.Listen) == 0 {
		bad("listen: at least one address is required")
	}
	for i, a := range c.Listen {
		if !a.IsValid() {
			bad("listen[%d]: invalid address", i)
		}
	}
	for i, a := range c.TLSListen {
		if !a.IsValid() {
			bad("tls.listen[%d]: invalid address", i)
		}
	}
	if len(c.TLSListen) > 0 && c.TLS == nil {
		bad("tls.listen: no TLS configuration (certificate)")
	}
	ring, err := tsig.New(c.Keys)
	if err != nil {
		errs = append(errs, err)
	}
	known := func(what, key string) {
		if key != "" && !ring.Has(key) {
			bad("%s: unknown key %q", what, key)
		}
	}
	for i, a := range c.AllowTransfer {
		if !a.Prefix.IsValid() {
			bad("allow_transfer[%d]: invalid prefix", i)
		}
		known(fmt.Sprintf("allow_transfer[%d]", i), a.Key)
	}
	for i, t := range c.Notify {
		if !t.Addr.IsValid() || t.Addr.Port() == 0 {
			bad("notify[%d]: invalid address %s", i, t.Addr)
		}
		known(fmt.Sprintf("notify[%d]", i), t.Key)
	}
	for i, p := range c.UpdateFrom {
		if !p.IsValid() {
			bad("update_from[%d]: invalid prefix", i)
		}
	}
	if c.Catalog != "" {
		if _, err := dns.PackDomainName(dns.CanonicalName(c.Catalog), make([]byte, 256), 0, nil, false); err != nil {
			bad("catalog: invalid zone name %q", c.Catalog)
		}
	}
	if c.MessageSize < minMessageSize || c.MessageSize > maxMessageSize {
		bad("message_size: %d is not in %d..%d", c.MessageSize, minMessageSize, maxMessageSize)
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"max_conns", c.MaxConns}, {"max_transfers", c.MaxTransfers}, {"notify_tries", c.NotifyTries},
		{"notify_concurrency", c.NotifyConcurrency}, {"catalog_journal", c.CatalogJournal}} {
		if v.n < 0 {
			bad("%s: must not be negative", v.name)
		}
	}
	for _, v := range []struct {
		name string
		d    time.Duration
	}{{"idle_timeout", c.IdleTimeout}, {"notify_timeout", c.NotifyTimeout}, {"notify_backoff", c.NotifyBackoff},
		{"catalog_delay", c.CatalogDelay}} {
		if v.d < 0 {
			bad("%s: must not be negative", v.name)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
	}
	return ring, nil
}
