package config_test

import (
	"errors"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/tsig"
)

// errLine is the shape of every reported problem: file, line (and column,
// except for YAML syntax errors, whose parser reports only the line), then
// the message.
var errLine = regexp.MustCompile(`^testdata/[a-z0-9_]+\.bad\.yaml:[0-9]+(:[0-9]+)?: \S`)

// fieldLine is the shape of a problem with a field: file:line:column: path:
// message; a key that is data (a prefix, a country code) is quoted.
var fieldLine = regexp.MustCompile(`^testdata/[a-z0-9_]+\.bad\.yaml:[0-9]+:[0-9]+: [a-z_]+([a-z0-9_.\[\]-]|"[^"]*")*: \S`)

// TestBad loads every testdata/*.bad.yaml and compares the error with the
// paired .bad.err file; a .bad.err left behind by a removed or renamed
// .bad.yaml fails it.
func TestBad(t *testing.T) {
	badFiles(t, "testdata", "LoadNode", config.LoadNode, func(t *testing.T, name, line string) {
		if !errLine.MatchString(line) {
			t.Errorf("line does not name file:line: %q", line)
		}
		if !strings.Contains(line, "invalid YAML:") && !fieldLine.MatchString(line) &&
			name != "not_mapping" && name != "multi_doc" {
			t.Errorf("line does not name file:line:column and a field path: %q", line)
		}
	})
}

func ptr[T any](v T) *T { return &v }

func addrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
func addr(s string) netip.Addr         { return netip.MustParseAddr(s) }

// TestGood loads every testdata/*.good.yaml (and the example) and compares
// the result with the expected Node.
func TestGood(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	testdata, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	examples, err := filepath.Abs("../../examples")
	if err != nil {
		t.Fatal(err)
	}
	defaultIdentity := config.Identity{Name: host, NSID: true, IDServer: true, HostnameBind: true, VersionBind: true, Version: "anycastdns"}
	defaultLimits := config.Limits{UDPMaxSize: 1232, TCPMaxConns: 1024, TCPIdleTimeout: 10 * time.Second, RRL: config.RRL{Slip: 2},
		TCPMaxConnsPerSource: 64, TCPSourceIPv4Prefix: 32, TCPSourceIPv6Prefix: 64, TCPBusyIdleTimeout: time.Second,
		Cookies: config.Cookies{Enabled: true}}
	defaultLog := config.Log{Level: slog.LevelInfo, Format: config.LogText}

	tests := map[string]*config.Node{
		"testdata/minimal.good.yaml": {
			Identity:    defaultIdentity,
			Listen:      []netip.AddrPort{addrPort("192.0.2.53:53")},
			Limits:      defaultLimits,
			Log:         defaultLog,
			DrainPeriod: 5 * time.Second,
			Health: config.Health{
				Interval: 500 * time.Millisecond, Timeout: 300 * time.Millisecond, Rise: 3, Fall: 2,
				QueryAddr: addrPort("192.0.2.53:53"),
			},
		},
		"testdata/dnstap.good.yaml": {
			Identity:    defaultIdentity,
			Listen:      []netip.AddrPort{addrPort("192.0.2.53:53")},
			Limits:      defaultLimits,
			Log:         defaultLog,
			DrainPeriod: 5 * time.Second,
			Health: config.Health{
				Interval: 500 * time.Millisecond, Timeout: 300 * time.Millisecond, Rise: 3, Fall: 2,
				QueryAddr: addrPort("192.0.2.53:53"),
			},
			Dnstap:   &config.Dnstap{TCP: addrPort("[::1]:6000"), Sample: 1, Queue: 4096},
			QueryLog: &config.QueryLog{File: filepath.Join(testdata, "logs/queries.jsonl"), Sample: 1, Queue: 4096, MaxSize: 100 << 20},
		},
		"testdata/bgp_levels.good.yaml": {
			Identity:    defaultIdentity,
			Listen:      []netip.AddrPort{addrPort("192.0.2.53:53")},
			Limits:      defaultLimits,
			Log:         defaultLog,
			DrainPeriod: 5 * time.Second,
			BGP: &config.BGP{
				ASN: 64512, RouterID: addr("192.0.2.1"),
				Peers: []config.Peer{{
					Address: addr("100.64.0.1"), ASN: 64500, HoldTime: 9 * time.Second, Keepalive: 3 * time.Second,
					BFD: config.BFD{Interval: 300 * time.Millisecond, Multiplier: 3},
				}},
				Announce: []config.Announcement{{Prefix: netip.MustParsePrefix("192.0.2.53/32"), Prepend: 1}},
				Levels: [3]config.LevelAttributes{
					{Prepend: 1, Communities: []config.Community{{ASN: 64512, Value: 901}}},
					{Prepend: 2, MED: ptr(uint32(50))},
					{Prepend: 3},
				},
			},
			Health: config.Health{
				Interval: 500 * time.Millisecond, Timeout: 300 * time.Millisecond, Rise: 3, Fall: 2,
				QueryAddr: addrPort("192.0.2.53:53"),
			},
		},
		"testdata/wildcard.good.yaml": {
			Identity: config.Identity{Name: host, NSID: false, IDServer: true, HostnameBind: true, VersionBind: false, Version: "1.10"},
			Listen:   []netip.AddrPort{addrPort("0.0.0.0:53"), addrPort("[::]:53")},
			Zones: []config.Zone{
				{Name: "example.net.", File: filepath.Join(testdata, "../zones/example.net.zone")},
				{Name: ".", File: "/var/lib/anycastd/root.zone"},
				{Name: "0/25.2.0.192.in-addr.arpa.", File: filepath.Join(testdata, "rev.zone")},
			},
			Limits:      defaultLimits,
			Log:         config.Log{Level: slog.LevelDebug, Format: config.LogJSON},
			DrainPeriod: 0,
			Health: config.Health{
				Interval: 500 * time.Millisecond, Timeout: 300 * time.Millisecond, Rise: 3, Fall: 2,
				QueryAddr:       addrPort("127.0.0.1:53"),
				MaintenanceFile: filepath.Join(testdata, "drain"),
			},
		},
		// An iBGP peer: no default prepends on the shed levels.
		"testdata/full.good.yaml": {
			Identity: config.Identity{Name: "pop-b.example", NSID: true, IDServer: false, HostnameBind: true, VersionBind: true, Version: "anycastdns 1.0"},
			Listen:   []netip.AddrPort{addrPort("192.0.2.53:53"), addrPort("[2001:db8::53]:53"), addrPort("127.0.0.1:5353")},
			Zones: []config.Zone{
				{Name: "example.com.", File: filepath.Join(testdata, "zones/example.com.zone")},
				{Name: "example.org.", File: "/srv/zones/example.org.zone"},
			},
			Limits: config.Limits{UDPMaxSize: 4096, TCPMaxConns: 100, TCPIdleTimeout: 2500 * time.Millisecond, TCPMaxQueries: 50, UDPReaders: 4,
				RRL:                  config.RRL{Rate: 20, Slip: 3, IPv4Prefix: 22, IPv6Prefix: 48, Buckets: 1024},
				Cookies:              config.Cookies{Enabled: true, Secret: "e5e973e5a6b2a43f48e7dc849e37bfcf"},
				TCPMaxConnsPerSource: 64, TCPSourceIPv4Prefix: 32, TCPSourceIPv6Prefix: 64, TCPBusyIdleTimeout: time.Second},
			Metrics:     config.Metrics{Listen: addrPort("[::1]:9153")},
			Admin:       config.Admin{Listen: addrPort("127.0.0.1:8053")},
			Log:         config.Log{Level: slog.LevelWarn, Format: config.LogText},
			DrainPeriod: time.Minute,
			BGP: &config.BGP{
				ASN: 4200000000, RouterID: addr("192.0.2.1"), ListenPort: 1179,
				Peers: []config.Peer{
					{
						Address: addr("100.64.0.1"), ASN: 64500, LocalAddress: addr("100.64.0.2"), Passive: true,
						HoldTime: 30 * time.Second, Keepalive: 10 * time.Second, Password: "s3cret", Multihop: 2,
						BFD: config.BFD{Enabled: true, Interval: 50 * time.Millisecond, Multiplier: 5},
					},
					{
						Address: addr("2001:db8::1"), ASN: 4200000000, HoldTime: 10 * time.Second, Keepalive: 3 * time.Second,
						BFD: config.BFD{Interval: 300 * time.Millisecond, Multiplier: 3},
					},
				},
				Announce: []config.Announcement{
					{
						Prefix: netip.MustParsePrefix("192.0.2.53/32"), NextHop: addr("100.64.0.2"),
						Communities:      []config.Community{{ASN: 64512, Value: 100}, {}, {ASN: 65535, Value: 65281}},
						LargeCommunities: []config.LargeCommunity{{ASN: 4200000000, Data1: 1, Data2: 2}},
						MED:              ptr(uint32(4294967295)), Prepend: 10,
					},
					{Prefix: netip.MustParsePrefix("2001:db8::/48")},
				},
			},
			Health: config.Health{
				Interval: time.Second, Timeout: 999 * time.Millisecond, Rise: 1, Fall: 5,
				QueryAddr: addrPort("[2001:db8::53]:53"), MaintenanceFile: "/run/anycastd/drain",
			},
		},
		"testdata/limits_tcp.good.yaml": {
			Identity: defaultIdentity,
			Listen:   []netip.AddrPort{addrPort("192.0.2.53:53")},
			Limits: func() config.Limits {
				l := defaultLimits
				l.TCPMaxConns, l.TCPIdleTimeout = 2048, 20*time.Second
				l.TCPMaxConnsPerSource, l.TCPSourceIPv4Prefix, l.TCPSourceIPv6Prefix = 16, 24, 56
				l.TCPBusyIdleTimeout = 250 * time.Millisecond
				return l
			}(),
			Log:         defaultLog,
			DrainPeriod: 5 * time.Second,
			Health: config.Health{
				Interval: 500 * time.Millisecond, Timeout: 300 * time.Millisecond, Rise: 3, Fall: 2,
				QueryAddr: addrPort("192.0.2.53:53"),
			},
		},
		"../../examples/node.yaml": {
			Identity: config.Identity{Name: "pop-a", NSID: true, IDServer: true, HostnameBind: true, VersionBind: true, Version: "anycastdns"},
			Listen:   []netip.AddrPort{addrPort("127.0.0.1:5353"), addrPort("[::1]:5353")},
			Zones: []config.Zone{
				{Name: "example.com.", File: filepath.Join(examples, "zones/example.com.zone")},
				{Name: "example.net.", Primaries: []config.Primary{{Addr: addrPort("192.0.2.10:53"), Key: "xfr-key."},
					{Addr: addrPort("192.0.2.11:853"), Key: "xfr-key.", TLS: &config.PrimaryTLS{ServerName: "ns1.example.net"}}}},
			},
			DataDir:     "/var/lib/anycastd",
			TSIGKeys:    []tsig.Key{{Name: "xfr-key.", Algorithm: "hmac-sha256", Secret: "KmSBOQmjtyYzILPFjRYDIUmaEGkpbDVAkwbzmB8pfLE="}},
			NotifyAllow: []config.NotifyAllow{{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Key: "xfr-key."}},
			Catalog:     &config.Catalog{Zone: "catalog.invalid.", Primaries: []config.Primary{{Addr: addrPort("192.0.2.10:53"), Key: "xfr-key."}}},
			Control: &config.ControlLink{Servers: []string{"https://control.example.net:8054"}, Key: "xfr-key.", PoP: "ams",
				CAFile: "/etc/anycastd/control-ca.pem"},
			SecondaryTimers: config.SecondaryTimers{
				MinRefresh: 30 * time.Second, MinRetry: 10 * time.Second, MinExpire: time.Hour},
			Limits: config.Limits{UDPMaxSize: 1232, TCPMaxConns: 1024, TCPIdleTimeout: 10 * time.Second,
				RRL:                  config.RRL{Rate: 20, Slip: 2, IPv4Prefix: 24, IPv6Prefix: 56, Buckets: 65536},
				TCPMaxConnsPerSource: 64, TCPSourceIPv4Prefix: 32, TCPSourceIPv6Prefix: 64, TCPBusyIdleTimeout: time.Second,
				Source: config.SourceLimit{Rate: 1000, Burst: 2000, IPv4Prefix: 24, IPv6Prefix: 56, Buckets: 65536,
					Exempt: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}},
				Cookies: config.Cookies{Enabled: true}},
			Metrics: config.Metrics{Listen: addrPort("127.0.0.1:9153")},
			Admin:   config.Admin{Listen: addrPort("127.0.0.1:8053")},
			Log:     defaultLog, DrainPeriod: 5 * time.Second,
			BGP: &config.BGP{
				ASN: 64512, RouterID: addr("192.0.2.1"),
				Peers: []config.Peer{{
					Address: addr("100.64.0.1"), ASN: 64500, LocalAddress: addr("100.64.0.2"),
					HoldTime: 9 * time.Second, Keepalive: 3 * time.Second,
					BFD: config.BFD{Enabled: true, Interval: 100 * time.Millisecond, Multiplier: 3},
				}},
				Announce: []config.Announcement{{
					Prefix:           netip.MustParsePrefix("192.0.2.53/32"),
					Communities:      []config.Community{{ASN: 64512, Value: 100}},
					LargeCommunities: []config.LargeCommunity{{ASN: 64512, Data1: 1, Data2: 2}},
					MED:              ptr(uint32(0)),
				}},
				Levels: [3]config.LevelAttributes{
					{Prepend: 1, Communities: []config.Community{{ASN: 64512, Value: 901}}, LargeCommunities: []config.LargeCommunity{{ASN: 64512, Data1: 9, Data2: 1}}, MED: ptr(uint32(100))},
					{Prepend: 2, Communities: []config.Community{{ASN: 64512, Value: 902}}, LargeCommunities: []config.LargeCommunity{{ASN: 64512, Data1: 9, Data2: 2}}, MED: ptr(uint32(200))},
					{Prepend: 3, Communities: []config.Community{{ASN: 64512, Value: 903}}, LargeCommunities: []config.LargeCommunity{{ASN: 64512, Data1: 9, Data2: 3}}, MED: ptr(uint32(300))},
				},
			},
			Health: config.Health{
				Interval: 500 * time.Millisecond, Timeout: 300 * time.Millisecond, Rise: 3, Fall: 2,
				QueryAddr: addrPort("127.0.0.1:5353"), MaintenanceFile: "/run/anycastd/drain",
			},
			Steering: config.Steering{
				Regions: map[netip.Prefix]string{
					netip.MustParsePrefix("198.51.100.0/24"): "eu", netip.MustParsePrefix("2001:db8:ab::/48"): "ap"},
				GeoDatabase: filepath.Join(examples, "GeoLite2-Country.mmdb"),
				Countries:   map[string]string{"DE": "eu", "FR": "eu", "US": "us"},
				Continents:  map[string]string{"EU": "eu", "NA": "us", "AS": "ap"},
			},
			Dnstap:   &config.Dnstap{Socket: "/run/anycastd/dnstap.sock", Sample: 100, Queue: 4096},
			QueryLog: &config.QueryLog{File: "/var/log/anycastd/queries.jsonl", Sample: 1000, Queue: 4096, MaxSize: 100 << 20},
		},
	}

	files, err := filepath.Glob("testdata/*.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range append(files, "../../examples/node.yaml") {
		if _, ok := tests[f]; !ok {
			t.Errorf("%s has no expected Node in TestGood", f)
		}
	}
	for file, want := range tests {
		t.Run(filepath.Base(file), func(t *testing.T) {
			got, err := config.LoadNode(file)
			if err != nil {
				t.Fatalf("LoadNode: %v", err)
			}
			if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(config.Node{}), cmpopts.EquateComparable(netip.Addr{}, netip.AddrPort{}, netip.Prefix{})); diff != "" {
				t.Errorf("LoadNode(%s) (-want +got):\n%s", file, diff)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate on the loaded Node: %v", err)
			}
		})
	}
}

// TestParseNodeMatchesLoadNode checks that ParseNode, given the same bytes
// and name, is LoadNode without the file system, and that relative paths
// then stay relative to the name's directory.
func TestParseNodeMatchesLoadNode(t *testing.T) {
	data := []byte("listen: [\"127.0.0.1:53\"]\nzones: [{name: a., file: z/a.zone}]\nlimits: {udp_max_size: 1}\n")
	_, err := config.ParseNode(data, "conf/node.yaml")
	want := "conf/node.yaml:3:24: limits.udp_max_size: must be between 512 and 4096, got 1"
	if err == nil || err.Error() != want {
		t.Errorf("ParseNode error = %v, want %s", err, want)
	}
	n, err := config.ParseNode(data[:len(data)-len("limits: {udp_max_size: 1}\n")], "conf/node.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := n.Zones[0].File, filepath.Join("conf", "z", "a.zone"); got != want {
		t.Errorf("zone file = %q, want %q", got, want)
	}
}

func TestLoadNodeReadErrors(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, 4<<20+1), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		is         error
	}{
		{"missing", filepath.Join(dir, "missing.yaml"), fs.ErrNotExist},
		{"directory", dir, nil},
		{"too large", big, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.LoadNode(tt.path)
			if err == nil {
				t.Fatal("LoadNode succeeded")
			}
			if errors.Is(err, config.ErrInvalid) {
				t.Errorf("a read failure matches ErrInvalid: %v", err)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			if !strings.HasPrefix(err.Error(), "read node config: ") {
				t.Errorf("error %q does not say what was being done", err)
			}
		})
	}
}

// validNode is a complete, valid Node built in code.
func validNode() *config.Node {
	return &config.Node{
		Identity: config.Identity{Name: "pop-a", NSID: true, Version: "anycastdns"},
		Listen:   []netip.AddrPort{addrPort("192.0.2.53:53"), addrPort("[2001:db8::53]:53")},
		Zones:    []config.Zone{{Name: "example.com.", File: "example.com.zone"}, {Name: "example.net.", File: "example.net.zone"}},
		Limits: config.Limits{UDPMaxSize: 1232, TCPMaxConns: 10, TCPIdleTimeout: time.Second,
			TCPMaxConnsPerSource: 4, TCPSourceIPv4Prefix: 32, TCPSourceIPv6Prefix: 64, TCPBusyIdleTimeout: time.Second},
		Metrics: config.Metrics{Listen: addrPort("127.0.0.1:9153")},
		Admin:   config.Admin{Listen: addrPort("127.0.0.1:8053")},
		Log:     config.Log{Format: config.LogJSON},
		BGP: &config.BGP{
			ASN: 64512, RouterID: addr("192.0.2.1"),
			Peers: []config.Peer{
				{Address: addr("100.64.0.1"), ASN: 64500, HoldTime: 9 * time.Second, Keepalive: 3 * time.Second},
				{Address: addr("2001:db8::1"), ASN: 64500, HoldTime: 3 * time.Second, Keepalive: 3 * time.Second,
					BFD: config.BFD{Enabled: true, Interval: 10 * time.Millisecond, Multiplier: 1}},
			},
			Announce: []config.Announcement{
				{Prefix: netip.MustParsePrefix("192.0.2.53/32"), Communities: []config.Community{{ASN: 1, Value: 2}}},
				{Prefix: netip.MustParsePrefix("2001:db8::53/128"), NextHop: addr("2001:db8::2"), Prepend: 10},
			},
		},
		Health: config.Health{Interval: time.Second, Timeout: 500 * time.Millisecond, Rise: 1, Fall: 1, QueryAddr: addrPort("192.0.2.53:53")},
	}
}

// TestValidate checks Validate on Nodes built in code: the messages carry
// the field path and no position.
func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(n *config.Node)
		want   []string
	}{
		{"valid", func(*config.Node) {}, nil},
		{"no bgp", func(n *config.Node) { n.BGP = nil }, nil},
		{"no listen", func(n *config.Node) { n.Listen = nil; n.Health.QueryAddr = netip.AddrPort{} }, []string{
			"listen: at least one address is required",
		}},
		{"listen", func(n *config.Node) {
			n.Listen = []netip.AddrPort{{}, addrPort("192.0.2.1:0"), addrPort("192.0.2.1:53"), addrPort("192.0.2.1:53")}
		}, []string{
			"listen[0]: invalid address",
			"listen[1]: port must not be 0",
			"listen[3]: duplicate address 192.0.2.1:53 (also listen[2])",
		}},
		{"query addr required", func(n *config.Node) { n.Health.QueryAddr = netip.AddrPort{} }, []string{
			"health.query_addr: required",
		}},
		{"zones", func(n *config.Node) {
			n.Zones = []config.Zone{{}, {Name: "Example.com", File: "a"}, {Name: "example.com.", File: "a"}, {Name: "example.com.", File: "./a"}, {Name: "bad name.", File: "b"}}
		}, []string{
			"zones[0].name: required",
			"zones[0].file: required",
			`zones[1].name: must be in canonical form "example.com."`,
			"zones[2].file: same file as zones[1]",
			"zones[3].name: duplicate zone example.com. (also zones[2])",
			"zones[3].file: same file as zones[1]",
			`zones[4].name: zone name "bad name." contains ' ' (allowed: letters, digits, '-', '_', '/')`,
		}},
		{"limits", func(n *config.Node) {
			n.Limits = config.Limits{UDPMaxSize: 4097, TCPMaxQueries: -1, UDPReaders: -2}
		}, []string{
			"limits.udp_max_size: must be between 512 and 4096, got 4097",
			"limits.tcp_max_conns: must be greater than 0, got 0",
			"limits.tcp_idle_timeout: must be greater than 0, got 0s",
			"limits.tcp_max_queries: must not be negative (0 = unlimited), got -1",
			"limits.tcp_max_conns_per_source: must be greater than 0, got 0",
			"limits.tcp_source_ipv4_prefix: must be between 1 and 32, got 0",
			"limits.tcp_source_ipv6_prefix: must be between 1 and 128, got 0",
			"limits.tcp_busy_idle_timeout: must be greater than 0, got 0s",
			"limits.udp_readers: must not be negative (0 = GOMAXPROCS), got -2",
		}},
		{"identity and log", func(n *config.Node) {
			n.Identity = config.Identity{Version: strings.Repeat("v", 256)}
			n.Log.Format = "yaml"
			n.DrainPeriod = -time.Second
		}, []string{
			"identity.name: must not be empty",
			"identity.version: must be at most 255 bytes, got 256",
			`log.format: invalid format "yaml" (want text or json)`,
			"drain_period: must not be negative, got -1s",
		}},
		{"http endpoints", func(n *config.Node) {
			n.Listen = append(n.Listen, addrPort("0.0.0.0:9000"))
			n.Metrics.Listen = addrPort("127.0.0.1:9000")
			n.Admin.Listen = addrPort("[::1]:0")
		}, []string{
			"metrics.listen: 127.0.0.1:9000 collides with listen[2] (0.0.0.0:9000)",
			"admin.listen: port must not be 0",
		}},
		{"admin on a public address", func(n *config.Node) { n.Admin.Listen = addrPort("[2001:db8::53]:8053") }, []string{
			"admin.listen: the admin endpoint has no authentication and must listen on a loopback address, got 2001:db8::53",
		}},
		{"health", func(n *config.Node) {
			n.Health = config.Health{Interval: time.Second, Timeout: time.Second, QueryAddr: addrPort("[::]:53")}
		}, []string{
			"health.timeout: must be less than health.interval (1s), got 1s",
			"health.rise: must be at least 1, got 0",
			"health.fall: must be at least 1, got 0",
			"health.query_addr: :: is not an address the node can be queried on",
		}},
		{"bgp", func(n *config.Node) {
			n.BGP.ASN = 0
			n.BGP.RouterID = addr("::1")
			n.BGP.Peers = nil
			n.BGP.Announce = nil
		}, []string{
			"bgp.asn: required",
			"bgp.router_id: must be an IPv4 address, got ::1",
			"bgp.peers: at least one peer is required",
			"bgp.announce: at least one prefix is required",
		}},
		{"bgp peers", func(n *config.Node) {
			n.BGP.Peers = []config.Peer{
				{HoldTime: 2 * time.Second, Keepalive: 3 * time.Second},
				{Address: addr("100.64.0.1"), ASN: 23456, HoldTime: 9500 * time.Millisecond, Keepalive: 1500 * time.Millisecond,
					LocalAddress: addr("2001:db8::1"), Password: strings.Repeat("p", 81)},
				{Address: addr("100.64.0.1"), ASN: 64512, Multihop: 1, HoldTime: 9 * time.Second,
					BFD: config.BFD{Enabled: true, Interval: 9 * time.Millisecond}},
			}
		}, []string{
			"bgp.peers[0].address: required",
			"bgp.peers[0].asn: required",
			"bgp.peers[0].hold_time: must be between 3s and 18h12m15s, got 2s",
			"bgp.peers[0].keepalive: must not exceed hold_time (2s), got 3s",
			"bgp.peers[1].asn: AS 23456 (AS_TRANS) is reserved",
			"bgp.peers[1].local_address: 2001:db8::1 is not in the address family of peer 100.64.0.1",
			"bgp.peers[1].hold_time: must be whole seconds, got 9.5s",
			"bgp.peers[1].keepalive: must be whole seconds, got 1.5s",
			"bgp.peers[1].password: TCP MD5 keys are at most 80 bytes, got 81",
			"bgp.peers[2].address: duplicate peer 100.64.0.1 (also bgp.peers[1])",
			"bgp.peers[2].keepalive: must be greater than 0, got 0s",
			"bgp.peers[2].multihop: applies only to eBGP; this peer's asn is the local asn",
			"bgp.peers[2].bfd.interval: must be between 10ms and 1h11m34.967295s, got 9ms",
			"bgp.peers[2].bfd.multiplier: must be at least 1, got 0",
		}},
		{"bgp announce", func(n *config.Node) {
			n.BGP.Announce = []config.Announcement{
				{},
				{Prefix: netip.MustParsePrefix("192.0.2.1/24"), NextHop: addr("2001:db8::1")},
				{Prefix: netip.MustParsePrefix("192.0.2.0/24"), NextHop: addr("0.0.0.0"), Prepend: 11,
					Communities:      []config.Community{{ASN: 1, Value: 1}, {ASN: 1, Value: 1}},
					LargeCommunities: []config.LargeCommunity{{ASN: 1}, {ASN: 1}}},
				{Prefix: netip.MustParsePrefix("192.0.2.0/24")},
			}
		}, []string{
			"bgp.announce[0].prefix: required",
			"bgp.announce[1].prefix: 192.0.2.1/24 has host bits set (did you mean 192.0.2.0/24?)",
			"bgp.announce[1].next_hop: 2001:db8::1 is not in the address family of prefix 192.0.2.1/24",
			"bgp.announce[2].next_hop: 0.0.0.0 is not a unicast address (leave empty for self)",
			"bgp.announce[2].communities[1]: duplicate community 1:1 (also communities[0])",
			"bgp.announce[2].large_communities[1]: duplicate large community 1:0:0 (also large_communities[0])",
			"bgp.announce[2].prepend: must be between 0 and 10, got 11",
			"bgp.announce[3].prefix: duplicate prefix 192.0.2.0/24 (also bgp.announce[2])",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := validNode()
			tt.modify(n)
			if diff := cmp.Diff(tt.want, problems(t, n.Validate())); diff != "" {
				t.Errorf("Validate() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestValidateLoadedNamesPosition checks that Validate on a loaded Node that
// was changed afterwards still points into the file.
func TestValidateLoadedNamesPosition(t *testing.T) {
	n, err := config.LoadNode("testdata/full.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n.Limits.TCPIdleTimeout = 0
	n.BGP.Peers[1].Keepalive = time.Hour
	n.Health.Rise = 0
	want := "testdata/full.good.yaml:17:21: limits.tcp_idle_timeout: must be greater than 0, got 0s\n" +
		"testdata/full.good.yaml:50:7: bgp.peers[1].keepalive: must not exceed hold_time (10s), got 1h0m0s\n" +
		"testdata/full.good.yaml:64:9: health.rise: must be at least 1, got 0"
	if err := n.Validate(); err == nil || err.Error() != want {
		t.Errorf("Validate() =\n%v\nwant\n%s", err, want)
	}
}

func TestErrorLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString("listen:\n")
	for range 60 {
		b.WriteString("  - x\n")
	}
	_, err := config.ParseNode([]byte(b.String()), "n.yaml")
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 51 || lines[50] != "n.yaml: 10 more problems not shown" {
		t.Errorf("got %d lines ending %q, want 50 problems and a count of 10 more", len(lines), lines[len(lines)-1])
	}
}

func TestParseCommunity(t *testing.T) {
	tests := []struct {
		in      string
		want    config.Community
		wantErr bool
	}{
		{"64512:100", config.Community{ASN: 64512, Value: 100}, false},
		{"0:0", config.Community{}, false},
		{"65535:65535", config.Community{ASN: 65535, Value: 65535}, false},
		{"65536:1", config.Community{}, true},
		{"1:65536", config.Community{}, true},
		{"1", config.Community{}, true},
		{"1:2:3", config.Community{}, true},
		{"-1:2", config.Community{}, true},
		{"+1:2", config.Community{}, true},
		{"a:b", config.Community{}, true},
		{":", config.Community{}, true},
		{"", config.Community{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := config.ParseCommunity(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseCommunity(%q) = %v, %v; want %v, error %t", tt.in, got, err, tt.want, tt.wantErr)
			}
			if err == nil && got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

func TestParseLargeCommunity(t *testing.T) {
	tests := []struct {
		in      string
		want    config.LargeCommunity
		wantErr bool
	}{
		{"64512:1:2", config.LargeCommunity{ASN: 64512, Data1: 1, Data2: 2}, false},
		{"4294967295:4294967295:4294967295", config.LargeCommunity{ASN: 4294967295, Data1: 4294967295, Data2: 4294967295}, false},
		{"4294967296:1:2", config.LargeCommunity{}, true},
		{"1:2", config.LargeCommunity{}, true},
		{"1:2:3:4", config.LargeCommunity{}, true},
		{"1::2", config.LargeCommunity{}, true},
		{"", config.LargeCommunity{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := config.ParseLargeCommunity(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ParseLargeCommunity(%q) = %v, %v; want %v, error %t", tt.in, got, err, tt.want, tt.wantErr)
			}
			if err == nil && got.String() != tt.in {
				t.Errorf("String() = %q, want %q", got.String(), tt.in)
			}
		})
	}
}

func TestFieldErrorFormat(t *testing.T) {
	tests := []struct {
		e    config.FieldError
		want string
	}{
		{config.FieldError{File: "n.yaml", Line: 3, Column: 5, Path: "a.b", Msg: "bad"}, "n.yaml:3:5: a.b: bad"},
		{config.FieldError{File: "n.yaml", Line: 3, Msg: "bad"}, "n.yaml:3: bad"},
		{config.FieldError{File: "n.yaml", Msg: "bad"}, "n.yaml: bad"},
		{config.FieldError{Line: 3, Column: 5, Path: "a", Msg: "bad"}, "3:5: a: bad"},
		{config.FieldError{Path: "a", Msg: "bad"}, "a: bad"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.e.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCookieSecretBytes(t *testing.T) {
	const good = "e5e973e5a6b2a43f48e7dc849e37bfcf"
	b, err := config.Cookies{Secret: good}.SecretBytes()
	if err != nil || b[0] != 0xe5 || b[15] != 0xcf {
		t.Errorf("SecretBytes(%s) = %x, %v", good, b, err)
	}
	for _, s := range []string{"", "e5e9", "zz" + good[2:], good + "00"} {
		if _, err := (config.Cookies{Secret: s}).SecretBytes(); err == nil {
			t.Errorf("SecretBytes(%q) accepted", s)
		}
	}
}
