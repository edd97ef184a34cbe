package config

import (
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/anycastdns/anycastdns/internal/tsig"
	"go.yaml.in/yaml/v3"
)

// Node is the configuration of the "anycastd node" role: one PoP that serves
// zones authoritatively and announces the anycast prefixes while healthy.
//
// The zero Node is not valid; LoadNode and ParseNode return a Node with
// defaults applied and validated. A Node built in code can be checked with
// Validate. Compare Nodes with cmpopts.IgnoreUnexported(config.Node{}).
type Node struct {
	Identity Identity
	// Listen holds the addresses to serve DNS on, UDP and TCP on each; at
	// least one, no duplicates, no port 0.
	Listen []netip.AddrPort
	// Zones are served from their files. There may be none: zones can also
	// arrive by transfer.
	Zones   []Zone
	Limits  Limits
	Metrics Metrics
	Admin   Admin
	Log     Log
	// DrainPeriod is how long the node keeps answering after withdrawing
	// its prefixes on shutdown or drain, so that traffic moves away before
	// the sockets close (default 5s; 0 = none).
	DrainPeriod time.Duration
	// BGP is nil when the node does not announce anything.
	BGP    *BGP
	Health Health
	// DataDir keeps transferred zones across restarts; required when a
	// zone has primaries or there is a catalog. TSIGKeys, NotifyAllow and
	// Catalog configure the secondary zones (see secondary.go).
	DataDir     string
	TSIGKeys    []tsig.Key
	NotifyAllow []NotifyAllow
	Catalog     *Catalog // nil = no catalog zone
	// SecondaryTimers are floors under the SOA timers of secondary zones.
	SecondaryTimers SecondaryTimers
	// Control is the stream to the control planes (stream.go); nil = none.
	Control *ControlLink
	// Steering places the clients of steered answers (steering.go).
	Steering Steering
	// Dnstap and QueryLog copy the answered queries out (dnstap.go); nil
	// = off.
	Dnstap   *Dnstap
	QueryLog *QueryLog

	src *source // where the fields came from; nil for a Node built in code
}

// Identity is how the node names itself to clients that ask.
type Identity struct {
	Name         string // default: os.Hostname(); at most 255 bytes
	NSID         bool   // answer the EDNS NSID option (RFC 5001) with Name (default true)
	IDServer     bool   // answer CH TXT id.server. with Name (default true)
	HostnameBind bool   // answer CH TXT hostname.bind. with Name (default true)
	VersionBind  bool   // answer CH TXT version.bind. and version.server. with Version (default true)
	Version      string // default "anycastdns"; at most 255 bytes
}

// Zone is one zone served from a file, or transferred from its primaries
// (a secondary zone): exactly one of File and Primaries is set.
type Zone struct {
	Name      string // lower-case FQDN with the trailing dot; unique
	File      string // absolute, or relative to the working directory
	Primaries []Primary
}

// Limits bounds the resources the DNS server uses.
type Limits struct {
	UDPMaxSize     int           // largest EDNS UDP payload sent, 512..4096 (default 1232)
	TCPMaxConns    int           // concurrent TCP connections, > 0 (default 1024)
	TCPIdleTimeout time.Duration // close idle TCP connections after this, > 0 (default 10s)
	TCPMaxQueries  int           // queries per TCP connection; 0 = unlimited (default)
	// TCPMaxConnsPerSource bounds the TCP connections of one source
	// prefix (TCPSourceIPv4Prefix, TCPSourceIPv6Prefix bits), > 0 (default
	// 64). When a source has its share, or all TCPMaxConns are open, the
	// connection that made progress longest ago (of that source, or of
	// all) is closed to make room for the new one.
	TCPMaxConnsPerSource int
	TCPSourceIPv4Prefix  int // 1..32 (default 32)
	TCPSourceIPv6Prefix  int // 1..128 (default 64)
	// TCPBusyIdleTimeout replaces TCPIdleTimeout while more than half of
	// TCPMaxConns are open, > 0 (default 1s; never longer than
	// TCPIdleTimeout).
	TCPBusyIdleTimeout time.Duration
	UDPReaders         int // UDP reader goroutines per address; 0 = GOMAXPROCS (default)
	// RRL is response rate limiting of UDP answers; off unless RRL.Rate is
	// set (slip 2, prefixes /24 and /56, 65536 buckets by default). A
	// node on the internet should set it (RecommendedRRLRate); Advice
	// warns when a non-loopback listener has it off.
	RRL RRL
	// Source is the per-source query limit (source.go); off by default.
	Source SourceLimit
	// Cookies are DNS Cookies (RFC 7873, 9018), on by default as in BIND.
	Cookies Cookies
}

// RRL configures response rate limiting (limits.rrl). Zero prefixes and
// buckets take the limiter's defaults.
type RRL struct {
	Rate       int // answers a second per bucket, and the burst; 0 = off; at most MaxRRLRate
	Slip       int // every Slip-th answer over the rate goes out truncated, the rest are dropped; 0..MaxRRLSlip
	IPv4Prefix int // 0..32 (0: /24)
	IPv6Prefix int // 0..128 (0: /56)
	Buckets    int // table size, rounded up to a power of two; 0..MaxRRLBuckets (0: 65,536)
}

// Bounds of RRL.
const (
	MaxRRLRate    = 1 << 20
	MaxRRLSlip    = 100
	MaxRRLBuckets = 1 << 24
	// defaultRRLSlip: one answer in two over the rate is truncated, so a
	// real resolver behind a spoofed flood is still answered over TCP.
	defaultRRLSlip = 2
)

// Cookies configures DNS Cookies. Secret is 32 hex digits (SecretBytes);
// every PoP of an anycast set needs the same one. Empty = a random secret per process:
// a restart only makes clients' cookies stale (the next answer carries a
// new one, nothing is refused), but PoPs of one anycast set cannot check
// each other's, so Advice warns when the node has BGP and no secret.
type Cookies struct {
	Enabled bool
	Secret  string
}

// SecretBytes decodes Secret: 16 bytes written as 32 hex digits.
func (c Cookies) SecretBytes() ([16]byte, error) {
	var secret [16]byte
	b, err := hex.DecodeString(c.Secret)
	if err != nil {
		return secret, fmt.Errorf("not hexadecimal: %w", err)
	}
	if len(b) != len(secret) {
		return secret, fmt.Errorf("want 16 bytes (32 hex digits), got %d bytes", len(b))
	}
	copy(secret[:], b)
	return secret, nil
}

// Metrics configures the Prometheus endpoint.
type Metrics struct {
	Listen netip.AddrPort // unset = no endpoint
}

// Admin configures the local admin HTTP endpoint (status, drain). It has no
// authentication, so it only listens on loopback addresses.
type Admin struct {
	Listen netip.AddrPort // unset = no endpoint
}

// Health configures the self-check that decides whether the node announces.
type Health struct {
	Interval time.Duration // between checks, > 0 (default 500ms)
	Timeout  time.Duration // of one check, > 0 and < Interval (default 300ms)
	Rise     int           // consecutive passes to become healthy, >= 1 (default 3)
	Fall     int           // consecutive failures to become unhealthy, >= 1 (default 2)
	// QueryAddr is where the self-check sends SOA queries over UDP and
	// TCP. Default: the first listen address, with a wildcard address
	// replaced by the loopback address of its family.
	QueryAddr netip.AddrPort
	// MaintenanceFile, when set, drains the node while the file exists.
	MaintenanceFile string
}

// Defaults of the node role.
const (
	defaultVersion        = "anycastdns"
	defaultUDPMaxSize     = 1232
	defaultTCPMaxConns    = 1024
	defaultTCPIdleTimeout = 10 * time.Second
	defaultTCPPerSource   = 64
	defaultTCPSourceIPv4  = 32
	defaultTCPSourceIPv6  = 64
	defaultTCPBusyIdle    = time.Second
	defaultDrainPeriod    = 5 * time.Second
	defaultHealthInterval = 500 * time.Millisecond
	defaultHealthTimeout  = 300 * time.Millisecond
	defaultRise           = 3
	defaultFall           = 2

	minUDPSize  = 512
	maxUDPSize  = 4096
	maxTXTBytes = 255 // one TXT character-string
)

// maxFileSize bounds what LoadNode reads: a configuration is a few
// kilobytes, and a mistaken path should not read a device forever.
const maxFileSize = 4 << 20

// LoadNode reads the node configuration at path, decodes it, applies
// defaults and validates it. Problems are reported as "path:line:column:
// field: message", all of them at once; relative file names in the
// configuration are resolved against the directory of path.
func LoadNode(path string) (*Node, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("read node config: %w", err)
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("read node config: resolve directory of %s: %w", path, err)
	}
	return parseNode(data, path, dir, os.Hostname)
}

// ParseNode is LoadNode on data that was read from filename. filename names
// the document in messages and its directory resolves relative file names.
func ParseNode(data []byte, filename string) (*Node, error) {
	return parseNode(data, filename, filepath.Dir(filename), os.Hostname)
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path) //nolint:gosec // reading the file the operator names is the point
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // read-only: a close error loses nothing
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxFileSize)
	}
	return data, nil
}

func parseNode(data []byte, file, baseDir string, hostname func() (string, error)) (*Node, error) {
	d := newDecoder(file, baseDir, len(data))
	n := d.decodeNode(data, hostname)
	if n == nil || d.stopped {
		// Not a document, or one only partly decoded: checking the
		// values would report the parts that were never read.
		return nil, joinErrors(file, d.errs)
	}
	v := &validator{src: d.src}
	n.validate(v)
	if err := joinErrors(file, append(d.errs, v.errs...)); err != nil {
		return nil, err
	}
	return n, nil
}

// decodeNode decodes data and applies defaults. It returns nil if data is
// not a YAML document at all; other problems are in d.errs.
func (d *decoder) decodeNode(data []byte, hostname func() (string, error)) *Node {
	top, fe := parseDocument(data, d.src.file)
	if fe != nil {
		d.errs = append(d.errs, fe)
		return nil
	}
	n := &Node{
		Identity: Identity{
			NSID: true, IDServer: true, HostnameBind: true, VersionBind: true,
			Version: defaultVersion,
		},
		Limits: Limits{
			UDPMaxSize:           defaultUDPMaxSize,
			TCPMaxConns:          defaultTCPMaxConns,
			TCPIdleTimeout:       defaultTCPIdleTimeout,
			TCPMaxConnsPerSource: defaultTCPPerSource,
			TCPSourceIPv4Prefix:  defaultTCPSourceIPv4,
			TCPSourceIPv6Prefix:  defaultTCPSourceIPv6,
			TCPBusyIdleTimeout:   defaultTCPBusyIdle,
			RRL:                  RRL{Slip: defaultRRLSlip},
			Cookies:              Cookies{Enabled: true},
		},
		Log:         defaultLog(),
		DrainPeriod: defaultDrainPeriod,
		Health: Health{
			Interval: defaultHealthInterval,
			Timeout:  defaultHealthTimeout,
			Rise:     defaultRise,
			Fall:     defaultFall,
		},
		src: d.src,
	}
	// Problems with the document as a whole point at its start; a
	// document that is not empty moves this to its first node.
	d.src.pos[""] = position{1, 1}
	if top != nil {
		d.node(top, n)
	}

	if !d.present["identity.name"] {
		name, err := hostname()
		if err != nil {
			p := d.src.lookup("identity.name")
			d.errs = append(d.errs, &FieldError{File: d.src.file, Line: p.line, Column: p.col, Path: "identity.name",
				Msg: fmt.Sprintf("not set, and the host name is unavailable: %v", err)})
			d.src.markBad("identity.name")
		}
		n.Identity.Name = name
	}
	if !d.present["health.query_addr"] {
		n.Health.QueryAddr = defaultQueryAddr(n.Listen)
	}
	return n
}

// defaultQueryAddr is the first valid listen address; a wildcard address is
// replaced by the loopback address of its family, where the node can be
// reached.
func defaultQueryAddr(listen []netip.AddrPort) netip.AddrPort {
	for _, a := range listen {
		if !a.IsValid() {
			continue
		}
		switch {
		case a.Addr().IsUnspecified() && a.Addr().Is4():
			return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), a.Port())
		case a.Addr().IsUnspecified():
			return netip.AddrPortFrom(netip.IPv6Loopback(), a.Port())
		}
		return a
	}
	return netip.AddrPort{}
}

func (d *decoder) node(top *yaml.Node, n *Node) {
	d.mapping(top, "", append([]field{
		{"identity", func(v *yaml.Node, p string) { d.identity(v, p, &n.Identity) }},
		{"listen", func(v *yaml.Node, p string) {
			items := d.sequence(v, p)
			n.Listen = make([]netip.AddrPort, len(items))
			for i, item := range items {
				n.Listen[i], _ = parseScalar(d, item, indexPath(p, i), parseAddrPort)
			}
		}},
		{"zones", func(v *yaml.Node, p string) {
			items := d.sequence(v, p)
			n.Zones = make([]Zone, len(items))
			for i, item := range items {
				d.zone(item, indexPath(p, i), &n.Zones[i])
			}
		}},
		{"limits", func(v *yaml.Node, p string) { d.limits(v, p, &n.Limits) }},
		{"metrics", func(v *yaml.Node, p string) {
			d.mapping(v, p, []field{
				{"listen", func(v *yaml.Node, p string) { n.Metrics.Listen, _ = parseScalar(d, v, p, parseOptionalAddrPort) }},
			})
		}},
		{"admin", func(v *yaml.Node, p string) {
			d.mapping(v, p, []field{
				{"listen", func(v *yaml.Node, p string) { n.Admin.Listen, _ = parseScalar(d, v, p, parseOptionalAddrPort) }},
			})
		}},
		{"log", func(v *yaml.Node, p string) { d.log(v, p, &n.Log) }},
		{"drain_period", func(v *yaml.Node, p string) { d.duration(v, p, &n.DrainPeriod) }},
		{"bgp", func(v *yaml.Node, p string) { n.BGP = d.bgp(v, p) }},
		{"health", func(v *yaml.Node, p string) { d.health(v, p, &n.Health) }},
	}, append(append(d.secondaryFields(n), d.controlField(n),
		field{"steering", func(v *yaml.Node, p string) { d.steering(v, p, &n.Steering) }}), d.tapFields(n)...)...))
}

func (d *decoder) identity(n *yaml.Node, path string, id *Identity) {
	d.mapping(n, path, []field{
		{"name", func(n *yaml.Node, p string) { d.str(n, p, &id.Name) }},
		{"nsid", func(n *yaml.Node, p string) { d.boolean(n, p, &id.NSID) }},
		{"id_server", func(n *yaml.Node, p string) { d.boolean(n, p, &id.IDServer) }},
		{"hostname_bind", func(n *yaml.Node, p string) { d.boolean(n, p, &id.HostnameBind) }},
		{"version_bind", func(n *yaml.Node, p string) { d.boolean(n, p, &id.VersionBind) }},
		{"version", func(n *yaml.Node, p string) { d.str(n, p, &id.Version) }},
	})
}

func (d *decoder) zone(n *yaml.Node, path string, z *Zone) {
	d.mapping(n, path, []field{
		{"name", func(n *yaml.Node, p string) {
			// An empty name is left for Validate to report as missing.
			z.Name, _ = parseScalar(d, n, p, func(s string) (string, error) {
				if s == "" {
					return "", nil
				}
				return canonicalZoneName(s)
			})
		}},
		{"file", func(n *yaml.Node, p string) { d.file(n, p, &z.File) }},
		{"primaries", func(n *yaml.Node, p string) { z.Primaries = d.primaries(n, p) }},
	})
}

func (d *decoder) limits(n *yaml.Node, path string, l *Limits) {
	d.mapping(n, path, []field{
		{"udp_max_size", func(n *yaml.Node, p string) { d.intValue(n, p, &l.UDPMaxSize) }},
		{"tcp_max_conns", func(n *yaml.Node, p string) { d.intValue(n, p, &l.TCPMaxConns) }},
		{"tcp_idle_timeout", func(n *yaml.Node, p string) { d.duration(n, p, &l.TCPIdleTimeout) }},
		{"tcp_max_queries", func(n *yaml.Node, p string) { d.intValue(n, p, &l.TCPMaxQueries) }},
		{"tcp_max_conns_per_source", func(n *yaml.Node, p string) { d.intValue(n, p, &l.TCPMaxConnsPerSource) }},
		{"tcp_source_ipv4_prefix", func(n *yaml.Node, p string) { d.intValue(n, p, &l.TCPSourceIPv4Prefix) }},
		{"tcp_source_ipv6_prefix", func(n *yaml.Node, p string) { d.intValue(n, p, &l.TCPSourceIPv6Prefix) }},
		{"tcp_busy_idle_timeout", func(n *yaml.Node, p string) { d.duration(n, p, &l.TCPBusyIdleTimeout) }},
		{"udp_readers", func(n *yaml.Node, p string) { d.intValue(n, p, &l.UDPReaders) }},
		{"rrl", func(n *yaml.Node, p string) {
			r := &l.RRL
			d.mapping(n, p, []field{
				{"rate", func(n *yaml.Node, p string) { d.intValue(n, p, &r.Rate) }},
				{"slip", func(n *yaml.Node, p string) { d.intValue(n, p, &r.Slip) }},
				{"ipv4_prefix", func(n *yaml.Node, p string) { d.intValue(n, p, &r.IPv4Prefix) }},
				{"ipv6_prefix", func(n *yaml.Node, p string) { d.intValue(n, p, &r.IPv6Prefix) }},
				{"buckets", func(n *yaml.Node, p string) { d.intValue(n, p, &r.Buckets) }},
			})
		}},
		{"source", func(n *yaml.Node, p string) { d.sourceLimit(n, p, &l.Source) }},
		{"cookies", func(n *yaml.Node, p string) {
			c := &l.Cookies
			d.mapping(n, p, []field{
				{"enabled", func(n *yaml.Node, p string) { d.boolean(n, p, &c.Enabled) }},
				{"secret", func(n *yaml.Node, p string) { d.str(n, p, &c.Secret) }},
			})
		}},
	})
}

func (d *decoder) health(n *yaml.Node, path string, h *Health) {
	d.mapping(n, path, []field{
		{"interval", func(n *yaml.Node, p string) { d.duration(n, p, &h.Interval) }},
		{"timeout", func(n *yaml.Node, p string) { d.duration(n, p, &h.Timeout) }},
		{"rise", func(n *yaml.Node, p string) { d.intValue(n, p, &h.Rise) }},
		{"fall", func(n *yaml.Node, p string) { d.intValue(n, p, &h.Fall) }},
		{"query_addr", func(n *yaml.Node, p string) { h.QueryAddr, _ = parseScalar(d, n, p, parseAddrPort) }},
		{"maintenance_file", func(n *yaml.Node, p string) { d.file(n, p, &h.MaintenanceFile) }},
	})
}

// Validate reports every problem in n, joined with errors.Join; nil if there
// is none. For a Node that was loaded, each problem names the file, line and
// column; for one built in code, only the field path.
func (n *Node) Validate() error {
	v := &validator{src: n.src}
	n.validate(v)
	file := ""
	if n.src != nil {
		file = n.src.file
	}
	return joinErrors(file, v.errs)
}

func (n *Node) validate(v *validator) {
	v.identity(&n.Identity)

	if len(n.Listen) == 0 {
		v.add("listen", "at least one address is required")
	}
	// Every TCP listener of the process, to find endpoints that collide.
	tcp := map[netip.AddrPort]string{}
	for i, a := range n.Listen {
		p := indexPath("listen", i)
		switch {
		case !a.IsValid():
			v.add(p, "invalid address")
		case a.Port() == 0:
			v.add(p, "port must not be 0")
		case !v.bad(p):
			if other, dup := tcp[a]; dup {
				v.add(p, "duplicate address %s (also %s)", a, other)
			} else {
				tcp[a] = p
			}
		}
	}

	names, files := map[string]int{}, map[string]int{}
	for i, z := range n.Zones {
		p := indexPath("zones", i)
		switch c, err := canonicalZoneName(z.Name); {
		case z.Name == "":
			v.add(p+".name", "required")
		case err != nil:
			v.add(p+".name", "%v", err)
		case c != z.Name:
			v.add(p+".name", "must be in canonical form %q", c)
		case !v.bad(p + ".name"):
			if j, dup := names[z.Name]; dup {
				v.add(p+".name", "duplicate zone %s (also zones[%d])", z.Name, j)
			} else {
				names[z.Name] = i
			}
		}
		switch {
		case z.File == "" && !z.Secondary():
			v.add(p+".file", "required")
		case z.File != "" && z.Secondary():
			v.add(p+".primaries", "a zone has a file or primaries, not both")
		case z.File == "":
		case !v.bad(p + ".file"):
			f := filepath.Clean(z.File)
			if j, dup := files[f]; dup {
				v.add(p+".file", "same file as zones[%d]", j)
			} else {
				files[f] = i
			}
		}
	}

	l := &n.Limits
	if l.UDPMaxSize < minUDPSize || l.UDPMaxSize > maxUDPSize {
		v.add("limits.udp_max_size", "%s", rangeMsg(int64(l.UDPMaxSize), minUDPSize, maxUDPSize))
	}
	if l.TCPMaxConns <= 0 {
		v.add("limits.tcp_max_conns", "must be greater than 0, got %d", l.TCPMaxConns)
	}
	if l.TCPIdleTimeout <= 0 {
		v.add("limits.tcp_idle_timeout", "must be greater than 0, got %s", l.TCPIdleTimeout)
	}
	if l.TCPMaxQueries < 0 {
		v.add("limits.tcp_max_queries", "must not be negative (0 = unlimited), got %d", l.TCPMaxQueries)
	}
	if l.TCPMaxConnsPerSource <= 0 {
		v.add("limits.tcp_max_conns_per_source", "must be greater than 0, got %d", l.TCPMaxConnsPerSource)
	}
	if l.TCPSourceIPv4Prefix < 1 || l.TCPSourceIPv4Prefix > 32 {
		v.add("limits.tcp_source_ipv4_prefix", "%s", rangeMsg(int64(l.TCPSourceIPv4Prefix), 1, 32))
	}
	if l.TCPSourceIPv6Prefix < 1 || l.TCPSourceIPv6Prefix > 128 {
		v.add("limits.tcp_source_ipv6_prefix", "%s", rangeMsg(int64(l.TCPSourceIPv6Prefix), 1, 128))
	}
	if l.TCPBusyIdleTimeout <= 0 {
		v.add("limits.tcp_busy_idle_timeout", "must be greater than 0, got %s", l.TCPBusyIdleTimeout)
	}
	if l.UDPReaders < 0 {
		v.add("limits.udp_readers", "must not be negative (0 = GOMAXPROCS), got %d", l.UDPReaders)
	}
	r := l.RRL
	for _, f := range []struct {
		field   string
		v, max  int
		zeroMsg string
	}{
		{"rate", r.Rate, MaxRRLRate, " (off)"}, {"slip", r.Slip, MaxRRLSlip, ""},
		{"ipv4_prefix", r.IPv4Prefix, 32, ""}, {"ipv6_prefix", r.IPv6Prefix, 128, ""},
		{"buckets", r.Buckets, MaxRRLBuckets, " (default)"},
	} {
		if f.v < 0 || f.v > f.max {
			v.add("limits.rrl."+f.field, "must be 0%s to %d, got %d", f.zeroMsg, f.max, f.v)
		}
	}
	l.Source.validate(v)
	if l.Cookies.Secret != "" {
		if _, err := l.Cookies.SecretBytes(); err != nil {
			v.add("limits.cookies.secret", "%v", err)
		}
	}

	v.httpListen("metrics.listen", n.Metrics.Listen, tcp)
	if a := n.Admin.Listen; a.IsValid() && !a.Addr().IsLoopback() {
		v.add("admin.listen", "the admin endpoint has no authentication and must listen on a loopback address, got %s", a.Addr())
	} else {
		v.httpListen("admin.listen", a, tcp)
	}

	v.log("log", n.Log)

	if n.DrainPeriod < 0 {
		v.add("drain_period", "must not be negative, got %s", n.DrainPeriod)
	}

	if n.BGP != nil {
		v.bgp(n.BGP)
	}

	v.health(&n.Health, slices.ContainsFunc(n.Listen, netip.AddrPort.IsValid))

	v.secondary(n)
	v.control(n)
	v.steering(&n.Steering)
	v.tap(n)
}

func (v *validator) identity(id *Identity) {
	switch l := len(id.Name); {
	case l == 0:
		v.add("identity.name", "must not be empty")
	case l > maxTXTBytes:
		v.add("identity.name", "must be at most %d bytes, got %d", maxTXTBytes, l)
	}
	if l := len(id.Version); l > maxTXTBytes {
		v.add("identity.version", "must be at most %d bytes, got %d", maxTXTBytes, l)
	}
}

// httpListen checks the address of an HTTP endpoint against the TCP
// listeners before it and adds it to them. Two listeners collide on the same
// port when their addresses are equal or one is the wildcard address of the
// other's family.
func (v *validator) httpListen(path string, a netip.AddrPort, tcp map[netip.AddrPort]string) {
	if !a.IsValid() || v.bad(path) {
		return
	}
	if a.Port() == 0 {
		v.add(path, "port must not be 0")
		return
	}
	for b, other := range tcp {
		if a.Port() == b.Port() && (a.Addr() == b.Addr() ||
			(a.Addr().IsUnspecified() || b.Addr().IsUnspecified()) && a.Addr().Is4() == b.Addr().Is4()) {
			v.add(path, "%s collides with %s (%s)", a, other, b)
			return
		}
	}
	tcp[a] = path
}

func (v *validator) health(h *Health, haveListen bool) {
	if h.Interval <= 0 {
		v.add("health.interval", "must be greater than 0, got %s", h.Interval)
	}
	switch {
	case h.Timeout <= 0:
		v.add("health.timeout", "must be greater than 0, got %s", h.Timeout)
	case h.Timeout >= h.Interval && h.Interval > 0 && !v.bad("health.interval"):
		v.add("health.timeout", "must be less than health.interval (%s), got %s", h.Interval, h.Timeout)
	}
	if h.Rise < 1 {
		v.add("health.rise", "must be at least 1, got %d", h.Rise)
	}
	if h.Fall < 1 {
		v.add("health.fall", "must be at least 1, got %d", h.Fall)
	}
	switch a := h.QueryAddr; {
	case !a.IsValid():
		if haveListen {
			v.add("health.query_addr", "required")
		}
	case a.Port() == 0:
		v.add("health.query_addr", "port must not be 0")
	case a.Addr().IsUnspecified() || a.Addr().IsMulticast():
		v.add("health.query_addr", "%s is not an address the node can be queried on", a.Addr())
	}
}
