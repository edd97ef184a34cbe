package config_test

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/config"
)

func TestControlUpdate(t *testing.T) {
	c, err := config.ParseControl([]byte(`
data_dir: /tmp/x
api:
  tokens: ["0123456789abcdef"]
xfr:
  listen: ["127.0.0.1:5300"]
  tsig_keys:
    - {name: ACME, secret: "MDEyMzQ1Njc4OWFiY2RlZg=="}
  allow_transfer: [{prefix: 127.0.0.0/8}]
  update:
    from: [192.0.2.0/24, 2001:db8::1]
    policy:
      - key: acme
        zones: [Example.COM]
        match: subdomain
        name: _ACME-challenge.example.com
        types: [txt, TYPE65534]
      - {key: acme., match: wildcard, name: "*.dyn.example.com."}
      - {key: acme., match: zone}
`), "control.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &config.XfrUpdate{
		From: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::1/128")},
		Policy: []config.UpdateRule{
			{Key: "acme.", Zones: []string{"example.com."}, Match: "subdomain", Name: "_acme-challenge.example.com.", Types: []uint16{dns.TypeTXT, 65534}},
			{Key: "acme.", Match: "wildcard", Name: "*.dyn.example.com."},
			{Key: "acme.", Match: "zone"},
		},
	}
	if diff := cmp.Diff(want, c.Xfr.Update, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("xfr.update (-want +got):\n%s", diff)
	}
}
