package config_test

import (
	"strings"
	"testing"

	"github.com/anycastdns/anycastdns/internal/config"
)

const bgpSection = `bgp:
  asn: 64512
  router_id: 192.0.2.1
  peers: [{address: 100.64.0.1, asn: 64500}]
  announce: [{prefix: 192.0.2.53/32}]
`

func TestNodeAdvice(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want []string // substrings, one advice each, in order
	}{
		{"public without rrl", "identity: {name: a}\nlisten: [\"192.0.2.53:53\", \"127.0.0.1:53\"]\n",
			[]string{"n.yaml:2:10: limits.rrl.rate: response rate limiting is off while DNS listens on 192.0.2.53:53, not loopback"}},
		{"wildcard without rrl", "identity: {name: a}\nlisten: [\"[::]:53\"]\nlimits: {udp_max_size: 1232}\n",
			[]string{"n.yaml:2:10: limits.rrl.rate: response rate limiting is off while DNS listens on [::]:53"}},
		{"rrl set to 0", "identity: {name: a}\nlisten: [\"192.0.2.53:53\"]\nlimits:\n  rrl: {rate: 0}\n",
			[]string{"n.yaml:4:15: limits.rrl.rate: response rate limiting is off"}},
		{"loopback only", "identity: {name: a}\nlisten: [\"127.0.0.1:5353\", \"[::1]:5353\"]\n", nil},
		{"public with rrl", "identity: {name: a}\nlisten: [\"192.0.2.53:53\"]\nlimits: {rrl: {rate: 20}}\n", nil},
		{"anycast without a cookie secret", "identity: {name: a}\nlisten: [\"127.0.0.1:53\"]\n" + bgpSection,
			[]string{"n.yaml:4:3: limits.cookies.secret: no secret: this PoP makes up a random one"}},
		{"anycast with a cookie secret", "identity: {name: a}\nlisten: [\"127.0.0.1:53\"]\n" + bgpSection +
			"limits: {cookies: {secret: e5e973e5a6b2a43f48e7dc849e37bfcf}}\n", nil},
		{"anycast without cookies", "identity: {name: a}\nlisten: [\"127.0.0.1:53\"]\n" + bgpSection +
			"limits: {cookies: {enabled: false}}\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := config.ParseNode([]byte(tt.doc), "n.yaml")
			if err != nil {
				t.Fatal(err)
			}
			got := n.Advice()
			if len(got) != len(tt.want) {
				t.Fatalf("Advice = %v, want %d", got, len(tt.want))
			}
			for i, a := range got {
				if !strings.Contains(a.String(), tt.want[i]) {
					t.Errorf("advice %d = %q, want it to contain %q", i, a, tt.want[i])
				}
			}
		})
	}
}

// TestCookiesOnByDefault: a configuration that does not mention cookies
// gets them, with a random secret.
func TestCookiesOnByDefault(t *testing.T) {
	n, err := config.ParseNode([]byte("identity: {name: a}\nlisten: [\"127.0.0.1:53\"]\n"), "n.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !n.Limits.Cookies.Enabled || n.Limits.Cookies.Secret != "" {
		t.Errorf("Cookies = %+v, want enabled without a secret", n.Limits.Cookies)
	}
	n, err = config.ParseNode([]byte("identity: {name: a}\nlisten: [\"127.0.0.1:53\"]\nlimits: {cookies: {enabled: false}}\n"), "n.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if n.Limits.Cookies.Enabled {
		t.Error("cookies.enabled: false left them on")
	}
}
