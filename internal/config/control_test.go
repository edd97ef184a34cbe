package config_test

import (
	"errors"
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

// controlFieldLine is the shape of a problem in a control document:
// file:line:column: path: message, or file:line: for YAML syntax errors.
var controlFieldLine = regexp.MustCompile(`^testdata/control/[a-z0-9_]+\.bad\.yaml:[0-9]+(:[0-9]+: [a-z_]+[a-z0-9_.\[\]"]*)?: \S`)

// TestControlBad loads every testdata/control/*.bad.yaml and compares the
// error with the paired .bad.err file (rewritten with -update).
func TestControlBad(t *testing.T) {
	badFiles(t, "testdata/control", "LoadControl", config.LoadControl, func(t *testing.T, _, line string) {
		if !controlFieldLine.MatchString(line) {
			t.Errorf("line does not name file:line:column and a field path: %q", line)
		}
	})
}

func TestControlGood(t *testing.T) {
	testdata, err := filepath.Abs("testdata/control")
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]*config.Control{
		"testdata/control/minimal.good.yaml": {
			DataDir:      filepath.Join(testdata, "data"),
			API:          config.ControlAPI{Listen: addrPort("127.0.0.1:8080"), Tokens: []string{"0123456789abcdef"}, MaxBody: 32 << 20},
			SerialPolicy: "increment",
			JournalLimit: 1000,
			Log:          config.Log{Level: slog.LevelInfo, Format: config.LogText},
			Stream:       config.Stream{Heartbeat: time.Second},
		},
		"testdata/control/full.good.yaml": {
			DataDir: "/var/lib/anycastd",
			API: config.ControlAPI{
				Listen:  addrPort("[::1]:8054"),
				Tokens:  []string{"0123456789abcdef-operator", "fedcba9876543210+ci/bot=="},
				MaxBody: 1 << 20,
			},
			Xfr: config.Xfr{
				Listen: []netip.AddrPort{addrPort("192.0.2.1:53"), addrPort("[2001:db8::1]:53")},
				TSIGKeys: []tsig.Key{
					{Name: "xfr-key.", Algorithm: "hmac-sha512", Secret: "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ=="},
					{Name: "notify.key.", Algorithm: "hmac-sha256", Secret: "MDEyMzQ1Njc4OWFiY2RlZg=="},
				},
				AllowTransfer: []config.XfrACL{
					{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Key: "xfr-key."},
					{Prefix: netip.MustParsePrefix("2001:db8::/32"), TLS: true},
				},
				Notify: []config.XfrNotify{
					{Addr: addrPort("192.0.2.10:53"), Key: "notify.key."},
					{Addr: addrPort("[2001:db8::10]:5353")},
				},
				Catalog: &config.XfrCatalog{Zone: "catalog.invalid."},
				Update: &config.XfrUpdate{From: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, Policy: []config.UpdateRule{
					{Key: "xfr-key.", Zones: []string{"example.com."}, Match: "subdomain", Name: "_acme-challenge.example.com.", Types: []uint16{16}},
				}},
				TLS: &config.XfrTLS{Listen: []netip.AddrPort{addrPort("192.0.2.1:853")},
					Cert: filepath.Join(testdata, "xfr.pem"), Key: filepath.Join(testdata, "xfr.key")},
			},
			SerialPolicy: "date",
			JournalLimit: 50,
			Log:          config.Log{Level: slog.LevelDebug, Format: config.LogJSON},
			Metrics:      config.Metrics{Listen: addrPort("127.0.0.1:9154")},
			Stream: config.Stream{Listen: []netip.AddrPort{addrPort("192.0.2.1:8055")}, TLSCert: "/etc/anycastd/stream.crt",
				TLSKey: "/etc/anycastd/stream.key", Keys: []string{"xfr-key."}, Heartbeat: 500 * time.Millisecond},
			Levels: &config.Levels{Interval: 100 * time.Millisecond, Quorum: 3, Stale: 1500 * time.Millisecond,
				Validity: 5 * time.Second, Hold: 20 * time.Second, HighQPS: 5000, LowQPS: 2500.5,
				HighRTT: 50 * time.Millisecond, LowRTT: 20 * time.Millisecond, MaxShed: 2, MinNormal: 2, ShedUnderAttack: true},
			Store: config.Store{Postgres: &config.StorePostgres{DSN: "postgres://anycast@db.example:5432/zones"}},
			Signing: config.Signing{KeyFile: "/etc/anycastd/signing.key",
				PKCS11:        &config.SigningPKCS11{Module: "/usr/lib/softhsm/libsofthsm2.so", TokenLabel: "anycastdns", PINFile: "/etc/anycastd/token.pin"},
				ParentServers: map[string][]netip.AddrPort{"com.": {addrPort("192.0.2.30:53"), addrPort("[2001:db8::30]:53")}},
				Policies: map[string]config.SigningPolicy{"nsec3-ksk": {
					Algorithm: "ED25519", RSABits: ptr(0), CSK: ptr(false), KSKLifetime: ptr(8760 * time.Hour), ZSKLifetime: ptr(720 * time.Hour),
					SignatureValidity: ptr(336 * time.Hour), SignatureRefresh: ptr(120 * time.Hour), SignatureJitter: ptr(12 * time.Hour),
					InceptionOffset: ptr(time.Hour), NSEC3: ptr(true), NSEC3Iterations: ptr(0), NSEC3SaltLength: ptr(0), NSEC3OptOut: ptr(true),
					DNSKEYTTL: ptr(time.Hour), ZoneMaxTTL: ptr(24 * time.Hour), PropagationDelay: ptr(5 * time.Minute), CDS: ptr(true)}}},
		},
	}
	files, err := filepath.Glob("testdata/control/*.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, ok := tests[f]; !ok {
			t.Errorf("%s has no expected Control in TestControlGood", f)
		}
	}
	for file, want := range tests {
		t.Run(filepath.Base(file), func(t *testing.T) {
			got, err := config.LoadControl(file)
			if err != nil {
				t.Fatalf("LoadControl: %v", err)
			}
			if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(config.Control{}), cmpopts.EquateComparable(netip.AddrPort{}, netip.Prefix{})); diff != "" {
				t.Errorf("LoadControl(%s) (-want +got):\n%s", file, diff)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate on the loaded Control: %v", err)
			}
		})
	}
}

func TestControlTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("good", "# operators\n0123456789abcdef\n\n  fedcba9876543210  \n", 0o600)
	write("open", "0123456789abcdef\n", 0o644)
	write("empty", "# nobody\n\n", 0o600)
	write("bad", "0123456789abcdef\nshort\n0123456789abcdef\n", 0o640)
	tests := []struct {
		file    string
		want    []string
		wantErr string
	}{
		{"good", []string{"0123456789abcdef", "fedcba9876543210"}, ""},
		{"open", nil, "c.yaml:3:15: api.token_file: the token file is accessible to other users (mode 0644); chmod o-rwx it"},
		{"empty", nil, "c.yaml:3:15: api.token_file: the token file holds no token"},
		{"missing", nil, "c.yaml:3:15: api.token_file: cannot read the token file: no such file or directory"},
		{"bad", nil, "c.yaml:3:15: api.token_file: token 2 (bad:2) must be 16 to 512 characters long, got 5\n" +
			"c.yaml:3:15: api.token_file: token 3 (bad:3) is the same as token 1"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			doc := "data_dir: d\napi:\n  token_file: " + tt.file + "\n"
			c, err := config.ParseControl([]byte(doc), filepath.Join(dir, "c.yaml"))
			if tt.wantErr != "" {
				if err == nil || strings.ReplaceAll(err.Error(), dir+"/", "") != tt.wantErr {
					t.Errorf("error\n%v\nwant\n%s", err, tt.wantErr)
				}
				if err != nil && strings.Contains(err.Error(), "0123456789abcdef") {
					t.Errorf("the error shows a token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, c.API.Tokens); diff != "" {
				t.Errorf("tokens (-want +got):\n%s", diff)
			}
			if c.API.TokenFile != filepath.Join(dir, tt.file) {
				t.Errorf("TokenFile = %q", c.API.TokenFile)
			}
		})
	}
}

func validControl() *config.Control {
	return &config.Control{
		DataDir: "/var/lib/anycastd",
		API:     config.ControlAPI{Listen: addrPort("127.0.0.1:8054"), Tokens: []string{"0123456789abcdef"}, MaxBody: 1 << 20},
		Xfr: config.Xfr{
			Listen:        []netip.AddrPort{addrPort("192.0.2.1:53")},
			TSIGKeys:      []tsig.Key{{Name: "k.", Algorithm: "hmac-sha256", Secret: "MDEyMzQ1Njc4OWFiY2RlZg=="}},
			AllowTransfer: []config.XfrACL{{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Key: "k."}},
			Notify:        []config.XfrNotify{{Addr: addrPort("192.0.2.2:53"), Key: "k."}},
			Catalog:       &config.XfrCatalog{Zone: "catalog.invalid."},
		},
		SerialPolicy: "increment",
		JournalLimit: 10,
		Log:          config.Log{Format: config.LogText},
	}
}

// TestControlValidate checks Validate on Controls built in code.
func TestControlValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(c *config.Control)
		want   []string
	}{
		{"valid", func(*config.Control) {}, nil},
		{"no xfr", func(c *config.Control) { c.Xfr = config.Xfr{} }, nil},
		{"empty", func(c *config.Control) { *c = config.Control{} }, []string{
			"data_dir: required",
			"api.listen: required",
			"api.tokens: at least one token is required (api.tokens or api.token_file)",
			"api.max_body: must be between 1024 and 1073741824, got 0",
			`serial_policy: invalid serial policy "" (want increment or date)`,
			"journal_limit: must be between 1 and 1000000, got 0",
			`log.format: invalid format "" (want text or json)`,
		}},
		{"tokens", func(c *config.Control) {
			c.API.Tokens = []string{"0123456789abcdef", "0123456789abcdef", "0123456789abcde\n", strings.Repeat("x", 513)}
		}, []string{
			"api.tokens[1]: duplicate of api.tokens[0]",
			"api.tokens[2]: a token may contain only A-Z a-z 0-9 - . _ ~ + / =",
			"api.tokens[3]: a token must be 16 to 512 characters long, got 513",
		}},
		{"listeners collide", func(c *config.Control) {
			c.API.Listen = addrPort("0.0.0.0:53")
			c.Xfr.Listen = append(c.Xfr.Listen, addrPort("192.0.2.1:53"))
		}, []string{
			"xfr.listen[0]: 192.0.2.1:53 collides with api.listen (0.0.0.0:53)",
			"xfr.listen[1]: 192.0.2.1:53 collides with api.listen (0.0.0.0:53)",
		}},
		{"keys", func(c *config.Control) {
			c.Xfr.TSIGKeys = append(c.Xfr.TSIGKeys,
				tsig.Key{Name: "k.", Algorithm: "hmac-sha256", Secret: "MDEyMzQ1Njc4OWFiY2RlZg=="},
				tsig.Key{Algorithm: "hmac-md5", Secret: "c2hvcnQ="})
			c.Xfr.AllowTransfer[0].Key = "other."
			c.Xfr.Notify[0].Key = "other."
		}, []string{
			"xfr.tsig_keys[1].name: duplicate key k. (also xfr.tsig_keys[0])",
			"xfr.tsig_keys[2].name: required",
			`xfr.tsig_keys[2].algorithm: unsupported algorithm "hmac-md5" (want one of hmac-sha256, hmac-sha384, hmac-sha512, hmac-sha224, hmac-sha1)`,
			"xfr.tsig_keys[2].secret: must be at least 16 bytes once decoded, got 5",
			"xfr.allow_transfer[0].key: no key other. in xfr.tsig_keys",
			"xfr.notify[0].key: no key other. in xfr.tsig_keys",
		}},
		{"xfr without listen", func(c *config.Control) { c.Xfr.Listen = nil }, []string{
			"xfr.listen: required when xfr.allow_transfer is set",
		}},
		{"listen without acl", func(c *config.Control) { c.Xfr.AllowTransfer = nil }, []string{
			"xfr.allow_transfer: at least one entry is required when xfr.listen is set, or nobody can transfer",
		}},
		{"catalog without zone", func(c *config.Control) { c.Xfr.Catalog.Zone = "" }, []string{
			"xfr.catalog.zone: required (for example catalog.invalid.)",
		}},
		{"metrics", func(c *config.Control) { c.Metrics.Listen = addrPort("127.0.0.1:9154") }, nil},
		{"metrics collides", func(c *config.Control) { c.Metrics.Listen = addrPort("127.0.0.1:8054") }, []string{
			"metrics.listen: 127.0.0.1:8054 collides with api.listen (127.0.0.1:8054)",
		}},
		{"metrics port 0", func(c *config.Control) { c.Metrics.Listen = addrPort("127.0.0.1:0") }, []string{
			"metrics.listen: port must not be 0",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validControl()
			tt.modify(c)
			if diff := cmp.Diff(tt.want, problems(t, c.Validate())); diff != "" {
				t.Errorf("Validate() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadControlReadErrors(t *testing.T) {
	_, err := config.LoadControl(filepath.Join(t.TempDir(), "missing.yaml"))
	if err == nil || errors.Is(err, config.ErrInvalid) || !strings.HasPrefix(err.Error(), "read control config: ") {
		t.Errorf("LoadControl of a missing file: %v", err)
	}
}
