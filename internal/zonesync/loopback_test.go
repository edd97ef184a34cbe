package zonesync

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestLoopbackPrimary runs the Manager against a primary on a real socket on
// 127.0.0.1 with the default dialer: AXFR at start, then NOTIFY and IXFR.
func TestLoopbackPrimary(t *testing.T) {
	p := newPrimary(t, nil, makeZone(t, 1), "")
	addr := mustAddrPort(p.addr)
	m, changed := runSecondary(t, addr)
	waitSerial(t, m, changed, 1)
	p.set(makeZone(t, 2, "loop.example.com. 300 IN A 192.0.2.222"))
	notifyOK(t, m, addr)
	waitSerial(t, m, changed, 2)
	if diff := cmp.Diff(dump(t, p.current(origin)), dump(t, served(m, origin))); diff != "" {
		t.Errorf("served differs from the primary (-primary +served):\n%s", diff)
	}
	if p.ixfrs.Load() != 1 {
		t.Errorf("%d IXFRs, want 1", p.ixfrs.Load())
	}
}

func TestConfigCheck(t *testing.T) {
	good := func() Config {
		return Config{DataDir: "d", Keys: testKeys(), Zones: []Zone{{Name: origin, Primaries: []Primary{{Addr: mustAddrPort("192.0.2.1:53"), Key: testKey}}}}}
	}
	tests := []struct {
		name string
		mod  func(c *Config)
		want string
	}{
		{"valid", func(*Config) {}, ""},
		{"no data dir", func(c *Config) { c.DataDir = "" }, "data_dir: required"},
		{"bad algorithm", func(c *Config) { c.Keys[0].Algorithm = "hmac-md5" }, "unsupported algorithm"},
		{"bad secret", func(c *Config) { c.Keys[0].Secret = "%%" }, "not base64"},
		{"unknown key", func(c *Config) { c.Zones[0].Primaries[0].Key = "x." }, `unknown key "x."`},
		{"no primaries", func(c *Config) { c.Zones[0].Primaries = nil }, "at least one primary"},
		{"duplicate zone", func(c *Config) { c.Zones = append(c.Zones, c.Zones[0]) }, "duplicate zone"},
		{"catalog is a zone", func(c *Config) { c.Catalog = &Catalog{Zone: origin, Primaries: c.Zones[0].Primaries} }, "also a secondary zone"},
		{"escaped name", func(c *Config) { c.Zones[0].Name = `a\.b.example.` }, "invalid name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			tt.mod(&c)
			_, err := New(c, testLogger(t))
			switch {
			case tt.want == "" && err != nil:
				t.Fatal(err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestFileName(t *testing.T) {
	tests := map[string]string{
		"Example.COM.":               "example.com",
		".":                          "%2E",
		"0/25.2.0.192.in-addr.arpa.": "0%2F25.2.0.192.in-addr.arpa",
		"_tcp.example.":              "%5Ftcp.example",
	}
	for in, want := range tests {
		if got := fileName(in); got != want {
			t.Errorf("fileName(%q) = %q, want %q", in, got, want)
		}
	}
}
