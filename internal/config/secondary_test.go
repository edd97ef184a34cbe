package config_test

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/tsig"
)

// TestSecondaryGood loads a configuration with every secondary key and
// checks the decoded values: canonical names, the default algorithm, an
// address taken as its host prefix, data_dir relative to the file.
func TestSecondaryGood(t *testing.T) {
	n, err := config.LoadNode("testdata/secondary_full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	testdata, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	type secondary struct {
		Zones       []config.Zone
		DataDir     string
		TSIGKeys    []tsig.Key
		NotifyAllow []config.NotifyAllow
		Catalog     *config.Catalog
	}
	want := secondary{
		Zones: []config.Zone{
			{Name: "example.com.", File: filepath.Join(testdata, "zones/example.com.zone")},
			{Name: "example.net.", Primaries: []config.Primary{
				{Addr: addrPort("192.0.2.10:53"), Key: "xfr-key."},
				{Addr: addrPort("[2001:db8::10]:5300")},
				{Addr: addrPort("192.0.2.12:853"), Key: "xfr-key.", TLS: &config.PrimaryTLS{
					CA: filepath.Join(testdata, "primary-ca.pem"), ServerName: "xfr.test",
					Cert: filepath.Join(testdata, "control/xfr.pem"), Key: filepath.Join(testdata, "control/xfr.key"),
				}},
			}},
			{Name: "0/25.2.0.192.in-addr.arpa.", Primaries: []config.Primary{{Addr: addrPort("192.0.2.10:53")}}},
		},
		DataDir: filepath.Join(testdata, "state"),
		TSIGKeys: []tsig.Key{
			{Name: "xfr-key.", Algorithm: "hmac-sha256", Secret: "KmSBOQmjtyYzILPFjRYDIUmaEGkpbDVAkwbzmB8pfLE="},
			{Name: "notify.key.", Algorithm: "hmac-sha512", Secret: "c2VjcmV0"},
			{Name: "old.", Algorithm: "hmac-sha1", Secret: "c2VjcmV0"},
		},
		NotifyAllow: []config.NotifyAllow{
			{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Key: "notify.key."},
			{Prefix: netip.MustParsePrefix("2001:db8::1/128")},
			{Prefix: netip.MustParsePrefix("198.51.100.7/32")},
		},
		Catalog: &config.Catalog{Zone: "catalog.invalid.", Primaries: []config.Primary{{Addr: addrPort("192.0.2.11:53"), Key: "old."}}},
	}
	got := secondary{n.Zones, n.DataDir, n.TSIGKeys, n.NotifyAllow, n.Catalog}
	if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.AddrPort{}, netip.Prefix{})); diff != "" {
		t.Errorf("secondary settings (-want +got):\n%s", diff)
	}
	if !n.Zones[1].Secondary() || n.Zones[0].Secondary() {
		t.Errorf("Secondary() = %t, %t; want false, true", n.Zones[0].Secondary(), n.Zones[1].Secondary())
	}
}

// TestSecondaryValidate checks the secondary rules on Nodes built in code.
func TestSecondaryValidate(t *testing.T) {
	key := tsig.Key{Name: "k.", Algorithm: "hmac-sha256", Secret: "c2VjcmV0"}
	prim := []config.Primary{{Addr: addrPort("192.0.2.10:53"), Key: "k."}}
	tests := []struct {
		name   string
		modify func(n *config.Node)
		want   []string
	}{
		{"valid secondary", func(n *config.Node) {
			n.DataDir = "/var/lib/anycastd"
			n.TSIGKeys = []tsig.Key{key}
			n.Zones = append(n.Zones, config.Zone{Name: "sec.example.", Primaries: prim})
			n.NotifyAllow = []config.NotifyAllow{{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Key: "k."}}
			n.Catalog = &config.Catalog{Zone: "catalog.invalid.", Primaries: prim}
		}, nil},
		{"keys without secondaries need no data_dir", func(n *config.Node) {
			n.TSIGKeys = []tsig.Key{key}
		}, nil},
		{"catalog needs data_dir and primaries", func(n *config.Node) {
			n.Catalog = &config.Catalog{Zone: "example.com."}
		}, []string{
			"data_dir: required when zones are transferred from primaries (it keeps them across restarts)",
			"catalog.zone: example.com. is also in zones; a catalog zone is not served",
			"catalog.primaries: at least one primary is required",
		}},
		{"primaries", func(n *config.Node) {
			n.DataDir = "d"
			n.Zones = append(n.Zones,
				config.Zone{Name: "both.example.", File: "f", Primaries: prim},
				config.Zone{Name: "sec.example.", Primaries: []config.Primary{{}, {Addr: addrPort("[ff02::1]:53")}, {Addr: addrPort("192.0.2.1:53"), Key: "missing."}}})
		}, []string{
			"zones[2].primaries: a zone has a file or primaries, not both",
			"zones[2].primaries[0].key: unknown key k. (not in tsig_keys)",
			"zones[3].primaries[0].addr: required",
			"zones[3].primaries[1].addr: ff02::1 is not an address a primary can have",
			"zones[3].primaries[2].key: unknown key missing. (not in tsig_keys)",
		}},
		{"keys and acl", func(n *config.Node) {
			n.TSIGKeys = []tsig.Key{key, key, {Name: "x.", Secret: "!"}}
			n.NotifyAllow = []config.NotifyAllow{{}, {Prefix: netip.MustParsePrefix("10.1.2.3/8")}}
		}, []string{
			"tsig_keys[1].name: duplicate key k. (also tsig_keys[0])",
			"tsig_keys[2].secret: not valid base64",
			"notify_allow[0].prefix: required",
			"notify_allow[1].prefix: 10.1.2.3/8 has host bits set (did you mean 10.0.0.0/8?)",
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

// TestSecondaryErrorsHideSecret makes sure a bad secret is not echoed.
func TestSecondaryErrorsHideSecret(t *testing.T) {
	data := []byte("listen: [\"127.0.0.1:53\"]\ntsig_keys: [{name: k, secret: \"TOPSECRET!!\"}]\n")
	_, err := config.ParseNode(data, "n.yaml")
	if err == nil {
		t.Fatal("no error for a secret that is not base64")
	}
	if strings.Contains(err.Error(), "TOPSECRET") {
		t.Errorf("error shows the secret: %v", err)
	}
}
