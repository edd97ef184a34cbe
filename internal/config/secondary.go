package config

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/anycastdns/anycastdns/internal/tsig"
)

// Primary is a server a secondary zone is transferred from.
type Primary struct {
	Addr netip.AddrPort // IP:port
	Key  string         // name of a tsig_keys entry (canonical); "" = unsigned
	// TLS, when set, transfers over TLS (XoT, RFC 9103): Addr is then the
	// primary's TLS port (853 by convention).
	TLS *PrimaryTLS
}

// PrimaryTLS is how a secondary talks TLS to a primary.
type PrimaryTLS struct {
	// CA is a PEM bundle of the authorities that sign the primary's
	// certificate (default: the system's roots).
	CA string
	// ServerName is the name the primary's certificate must carry
	// (default: the address of the primary, which its certificate must
	// then list).
	ServerName string
	// Cert and Key are a PEM client certificate and its key, for a
	// primary that wants mutual TLS; both or neither.
	Cert, Key string
}

// NotifyAllow lets NOTIFY from addresses in Prefix trigger a refresh,
// signed with Key when it is set. A zone's own primaries are always allowed.
type NotifyAllow struct {
	Prefix netip.Prefix
	Key    string // canonical; "" = no TSIG required
}

// Catalog is an RFC 9432 catalog zone: its member zones are served as
// secondaries of the catalog's primaries.
type Catalog struct {
	Zone      string // canonical
	Primaries []Primary
}

// SecondaryTimers bound the SOA timers of secondary zones from below: a
// zone's refresh, retry and expire are at least these (its expire also at
// least refresh + retry). Zero takes the default shown; a set value is at
// least 1s.
type SecondaryTimers struct {
	MinRefresh time.Duration // 30s
	MinRetry   time.Duration // 10s
	// MinExpire keeps a tiny SOA expire from expiring a zone (SERVFAIL)
	// when its primaries are briefly away.
	MinExpire time.Duration // 1h
}

// Secondary reports whether the zone is transferred from primaries rather
// than read from a file.
func (z Zone) Secondary() bool { return len(z.Primaries) > 0 }

// secondaryFields are the top-level keys of the secondary configuration.
func (d *decoder) secondaryFields(n *Node) []field {
	return []field{
		{"data_dir", func(v *yaml.Node, p string) { d.file(v, p, &n.DataDir) }},
		{"tsig_keys", func(v *yaml.Node, p string) {
			items := d.sequence(v, p)
			n.TSIGKeys = make([]tsig.Key, len(items))
			for i, item := range items {
				d.tsigKey(item, indexPath(p, i), &n.TSIGKeys[i])
			}
		}},
		{"notify_allow", func(v *yaml.Node, p string) {
			items := d.sequence(v, p)
			n.NotifyAllow = make([]NotifyAllow, len(items))
			for i, item := range items {
				a := &n.NotifyAllow[i]
				d.mapping(item, indexPath(p, i), []field{
					{"prefix", func(v *yaml.Node, p string) { a.Prefix, _ = parseScalar(d, v, p, parsePrefixOrAddr) }},
					{"key", func(v *yaml.Node, p string) { a.Key, _ = parseScalar(d, v, p, parseKeyRef) }},
				})
			}
		}},
		{"secondary_timers", func(v *yaml.Node, p string) {
			t := &n.SecondaryTimers
			d.mapping(v, p, []field{
				{"min_refresh", func(v *yaml.Node, p string) { d.duration(v, p, &t.MinRefresh) }},
				{"min_retry", func(v *yaml.Node, p string) { d.duration(v, p, &t.MinRetry) }},
				{"min_expire", func(v *yaml.Node, p string) { d.duration(v, p, &t.MinExpire) }},
			})
		}},
		{"catalog", func(v *yaml.Node, p string) {
			if isNull(v) {
				return
			}
			c := &Catalog{}
			n.Catalog = c
			d.mapping(v, p, []field{
				{"zone", func(v *yaml.Node, p string) { c.Zone, _ = parseScalar(d, v, p, parseOptionalZoneName) }},
				{"primaries", func(v *yaml.Node, p string) { c.Primaries = d.primaries(v, p) }},
			})
		}},
	}
}

// tsigKey decodes a key of tsig_keys: name (canonical), algorithm (one
// of tsig.Algorithms, tsig.DefaultAlgorithm when left out) and secret.
func (d *decoder) tsigKey(n *yaml.Node, path string, k *tsig.Key) {
	k.Algorithm = tsig.DefaultAlgorithm
	d.mapping(n, path, []field{
		{"name", func(v *yaml.Node, p string) { k.Name, _ = parseScalar(d, v, p, parseOptionalZoneName) }},
		{"algorithm", func(v *yaml.Node, p string) { k.Algorithm, _ = parseScalar(d, v, p, tsig.ParseAlgorithm) }},
		// The secret is never repeated in messages.
		{"secret", func(v *yaml.Node, p string) { d.str(v, p, &k.Secret) }},
	})
}

func (d *decoder) primaries(n *yaml.Node, path string) []Primary {
	items := d.sequence(n, path)
	out := make([]Primary, len(items))
	for i, item := range items {
		pr := &out[i]
		d.mapping(item, indexPath(path, i), []field{
			{"addr", func(v *yaml.Node, p string) { pr.Addr, _ = parseScalar(d, v, p, parseAddrPort) }},
			{"key", func(v *yaml.Node, p string) { pr.Key, _ = parseScalar(d, v, p, parseKeyRef) }},
			{"tls", func(v *yaml.Node, p string) {
				if isNull(v) {
					return
				}
				t := &PrimaryTLS{}
				pr.TLS = t
				d.mapping(v, p, []field{
					{"ca", func(v *yaml.Node, p string) { d.file(v, p, &t.CA) }},
					{"server_name", func(v *yaml.Node, p string) { d.str(v, p, &t.ServerName) }},
					{"cert", func(v *yaml.Node, p string) { d.file(v, p, &t.Cert) }},
					{"key", func(v *yaml.Node, p string) { d.file(v, p, &t.Key) }},
				})
			}},
		})
	}
	return out
}

// parseOptionalZoneName is canonicalZoneName where "" is left for Validate
// to report as missing.
func parseOptionalZoneName(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	return canonicalZoneName(s)
}

// parseKeyRef canonicalizes the name of a key; "" means none.
func parseKeyRef(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	c, err := canonicalZoneName(s)
	if err != nil {
		return "", fmt.Errorf("invalid key name: %w", err)
	}
	return c, nil
}

// parsePrefixOrAddr takes a prefix, or a single address as its host prefix.
func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		if a, err := netip.ParseAddr(s); err == nil {
			return netip.PrefixFrom(a, a.BitLen()), nil
		}
	}
	return parsePrefix(s)
}

// secondary checks the secondary configuration: keys, primaries, the
// NOTIFY ACL and the catalog. The zones' file-or-primaries rule is checked
// with the zones.
func (v *validator) secondary(n *Node) {
	keys := map[string]int{}
	for i, k := range n.TSIGKeys {
		p := indexPath("tsig_keys", i)
		switch {
		case k.Name == "":
			v.add(p+".name", "required")
		case !v.bad(p + ".name"):
			if j, dup := keys[k.Name]; dup {
				v.add(p+".name", "duplicate key %s (also tsig_keys[%d])", k.Name, j)
			} else {
				keys[k.Name] = i
			}
		}
		if k.Secret == "" {
			v.add(p+".secret", "required")
		} else if _, err := tsig.DecodeSecret(k.Secret); err != nil {
			v.add(p+".secret", "not valid base64")
		}
	}
	keyRef := func(path, key string) {
		if key == "" || v.bad(path) {
			return
		}
		if _, ok := keys[key]; !ok {
			v.add(path, "unknown key %s (not in tsig_keys)", key)
		}
	}
	primaries := func(path string, ps []Primary) {
		if len(ps) == 0 {
			v.add(path, "at least one primary is required")
		}
		seen := map[netip.AddrPort]int{}
		for i, pr := range ps {
			p := indexPath(path, i)
			switch {
			case !pr.Addr.IsValid():
				v.add(p+".addr", "required")
			case pr.Addr.Port() == 0:
				v.add(p+".addr", "port must not be 0")
			case pr.Addr.Addr().IsUnspecified() || pr.Addr.Addr().IsMulticast():
				v.add(p+".addr", "%s is not an address a primary can have", pr.Addr.Addr())
			default:
				if j, dup := seen[pr.Addr]; dup {
					v.add(p+".addr", "duplicate primary %s (also %s)", pr.Addr, indexPath(path, j))
				}
				seen[pr.Addr] = i
			}
			keyRef(p+".key", pr.Key)
			if pr.TLS != nil {
				v.primaryTLS(p+".tls", pr.TLS)
			}
		}
	}

	secondaries := n.Catalog != nil
	names := map[string]bool{}
	for i, z := range n.Zones {
		names[z.Name] = true
		if z.Secondary() {
			secondaries = true
			primaries(indexPath("zones", i)+".primaries", z.Primaries)
		}
	}
	if secondaries && n.DataDir == "" {
		v.add("data_dir", "required when zones are transferred from primaries (it keeps them across restarts)")
	}
	for i, a := range n.NotifyAllow {
		p := indexPath("notify_allow", i)
		switch {
		case !a.Prefix.IsValid():
			v.add(p+".prefix", "required")
		case a.Prefix != a.Prefix.Masked():
			v.add(p+".prefix", "%s has host bits set (did you mean %s?)", a.Prefix, a.Prefix.Masked())
		}
		keyRef(p+".key", a.Key)
	}
	for _, t := range []struct {
		path string
		d    time.Duration
	}{
		{"secondary_timers.min_refresh", n.SecondaryTimers.MinRefresh},
		{"secondary_timers.min_retry", n.SecondaryTimers.MinRetry},
		{"secondary_timers.min_expire", n.SecondaryTimers.MinExpire},
	} {
		if t.d != 0 && t.d < time.Second {
			v.add(t.path, "must be at least 1s (or absent for the default), got %s", t.d)
		}
	}
	if c := n.Catalog; c != nil {
		switch {
		case c.Zone == "":
			v.add("catalog.zone", "required")
		case names[c.Zone]:
			v.add("catalog.zone", "%s is also in zones; a catalog zone is not served", c.Zone)
		}
		primaries("catalog.primaries", c.Primaries)
	}
}
