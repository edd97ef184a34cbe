package zonesync

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/tsig"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// Config configures a Manager.
type Config struct {
	// DataDir is where transferred zones are kept (in DataDir/zones);
	// required.
	DataDir string
	// Keys are the TSIG keys that primaries and NOTIFY senders use.
	Keys []tsig.Key
	// Zones are the zones transferred from their primaries.
	Zones []Zone
	// NotifyAllow lists who may send NOTIFY, beyond the addresses of each
	// zone's own primaries (which are always allowed, with the primary's
	// key when it has one).
	NotifyAllow []NotifyACL
	// Catalog, when set, provisions member zones from a catalog zone.
	Catalog *Catalog
	// Reserved names zones the node serves from files: catalog members of
	// these names are ignored.
	Reserved []string
	Timers   Timers
	// MaxTransfers bounds concurrent refreshes (SOA query and transfer);
	// 0 = 8.
	MaxTransfers int
	// MaxRecords bounds the records of one transfer; 0 = 10,000,000.
	MaxRecords int
	// Dial opens connections to primaries; nil = a net.Dialer. Tests use it
	// to connect to in-memory primaries.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Primary is a server to transfer a zone from.
type Primary struct {
	Addr netip.AddrPort
	Key  string // name of the TSIG key; "" = unsigned
	// TLS, when set, makes every exchange with the primary a TLS one
	// (XoT, RFC 9103): the SOA query and the transfers over TLS on Addr,
	// no IXFR over UDP. It says whom to trust (RootCAs, ServerName) and
	// may carry a client certificate for mutual TLS; ALPN "dot" is
	// offered whatever NextProtos says. TSIG still applies.
	TLS *tls.Config
}

// Zone is one secondary zone.
type Zone struct {
	Name      string
	Primaries []Primary // tried in order; at least one
}

// NotifyACL allows NOTIFY from addresses in Prefix, signed with Key when Key
// is set.
type NotifyACL struct {
	Prefix netip.Prefix
	Key    string
}

// Catalog is an RFC 9432 catalog zone and the primaries of it and of its
// member zones.
type Catalog struct {
	Zone      string
	Primaries []Primary
}

// Timers bounds the SOA timers of the zones and the transfers. Zero fields
// take the defaults shown.
type Timers struct {
	MinRefresh time.Duration // 30s
	MaxRefresh time.Duration // 24h
	MinRetry   time.Duration // 10s
	MaxRetry   time.Duration // 1h
	// MinExpire guards against a tiny SOA expire withdrawing every node at
	// once when the primary is briefly away; the expire is also at least
	// refresh+retry.
	MinExpire time.Duration // 1h
	MaxExpire time.Duration // 8 weeks
	// Initial is the retry interval of a zone that has no data yet (it
	// doubles on each failure up to MaxRetry).
	Initial     time.Duration // 5s
	DialTimeout time.Duration // 5s
	IdleTimeout time.Duration // 30s: the longest wait for one message
	Timeout     time.Duration // 10m: the longest SOA query plus transfer
	// Jitter is the largest fraction by which a refresh or retry
	// interval is shortened at random (0.1; negative = none), so that
	// zones transferred together (10,000 on a new node, or all of them
	// after a restart with the primary away) do not all ask again at the
	// same moment.
	Jitter float64
}

// jitter shortens d by a random fraction of at most t.Jitter.
func (t *Timers) jitter(d time.Duration) time.Duration {
	if t.Jitter <= 0 {
		return d
	}
	return d - time.Duration(rand.Float64()*t.Jitter*float64(d)) //nolint:gosec // spreading timers, not security
}

func (t *Timers) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.MinRefresh, 30*time.Second)
	def(&t.MaxRefresh, 24*time.Hour)
	def(&t.MinRetry, 10*time.Second)
	def(&t.MaxRetry, time.Hour)
	def(&t.MinExpire, time.Hour)
	def(&t.MaxExpire, 8*7*24*time.Hour)
	def(&t.Initial, 5*time.Second)
	def(&t.DialTimeout, 5*time.Second)
	def(&t.IdleTimeout, 30*time.Second)
	def(&t.Timeout, 10*time.Minute)
	switch {
	case t.Jitter == 0:
		t.Jitter = 0.1
	case t.Jitter > 0.5:
		t.Jitter = 0.5
	}
}

// soaTimers returns the refresh, retry and expire intervals of a zone with
// the given SOA, within the bounds.
func (t *Timers) soaTimers(soa *dns.SOA) (refresh, retry, expire time.Duration) {
	clamp := func(secs uint32, lo, hi time.Duration) time.Duration {
		return min(max(time.Duration(secs)*time.Second, lo), hi)
	}
	refresh = clamp(soa.Refresh, t.MinRefresh, t.MaxRefresh)
	retry = clamp(soa.Retry, t.MinRetry, t.MaxRetry)
	expire = clamp(soa.Expire, t.MinExpire, t.MaxExpire)
	expire = max(expire, refresh+retry)
	return refresh, retry, expire
}

// ErrConfig marks an invalid Config.
var ErrConfig = errors.New("invalid zonesync configuration")

// check validates c and returns the keyring it names.
func (c *Config) check() (*tsig.Keyring, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.DataDir == "" {
		bad("data_dir: required")
	}
	ring, err := tsig.New(c.Keys)
	if err != nil {
		errs = append(errs, err)
	}
	primaries := func(what string, ps []Primary) {
		if len(ps) == 0 {
			bad("%s: at least one primary is required", what)
		}
		for j, p := range ps {
			if !p.Addr.IsValid() || p.Addr.Port() == 0 {
				bad("%s[%d]: invalid address %s", what, j, p.Addr)
			}
			if p.Key != "" && !ring.Has(p.Key) {
				bad("%s[%d]: unknown key %q", what, j, p.Key)
			}
		}
	}
	seen := map[string]bool{}
	for i, z := range c.Zones {
		name := dns.CanonicalName(z.Name)
		if z.Name == "" || !validName(name) {
			bad("zones[%d]: invalid name %q", i, z.Name)
		} else if seen[name] {
			bad("zones[%d]: duplicate zone %s", i, name)
		}
		seen[name] = true
		primaries(fmt.Sprintf("zones[%d].primaries", i), z.Primaries)
	}
	if c.Catalog != nil {
		name := dns.CanonicalName(c.Catalog.Zone)
		if c.Catalog.Zone == "" || !validName(name) {
			bad("catalog.zone: invalid name %q", c.Catalog.Zone)
		} else if seen[name] {
			bad("catalog.zone: %s is also a secondary zone", name)
		}
		primaries("catalog.primaries", c.Catalog.Primaries)
	}
	for i, a := range c.NotifyAllow {
		if !a.Prefix.IsValid() {
			bad("notify_allow[%d]: invalid prefix", i)
		}
		if a.Key != "" && !ring.Has(a.Key) {
			bad("notify_allow[%d]: unknown key %q", i, a.Key)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrConfig, errors.Join(errs...))
	}
	return ring, nil
}

// validName reports whether name (canonical, fully qualified) is a plain
// domain name by zone.ValidateZoneName, the rule the API creates zones by:
// labels of letters, digits, '-', '_' and '/', no escapes, at most 255
// octets. Zone names become file names.
func validName(name string) bool { return zone.ValidateZoneName(name) == nil }
