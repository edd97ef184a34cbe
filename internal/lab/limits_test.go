package lab

import (
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/anycastdns/anycastdns/internal/config"
)

// TestNodeConfigLimits: every PoP runs with the recommended RRL and
// per-source limits of examples/node.yaml, cookies with one secret for
// the whole anycast set, and the lab's measuring points exempt — but
// nothing else (a source outside them is limited).
func TestNodeConfigLimits(t *testing.T) {
	p := testPlan(t, false)
	secrets := map[string]bool{}
	for _, pop := range []string{"A-pop", "B-pop", "C-pop"} {
		b, err := p.nodeConfig(pop, DefaultNodeTiming, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := config.ParseNode(b, filepath.Join(t.TempDir(), pop+".node.yaml"))
		if err != nil {
			t.Fatalf("%s: anycastd rejects the generated config: %v", pop, err)
		}
		l := cfg.Limits
		if l.RRL.Rate != config.RecommendedRRLRate || l.RRL.Slip != 2 {
			t.Errorf("%s: rrl %+v, want rate %d slip 2", pop, l.RRL, config.RecommendedRRLRate)
		}
		if l.Source.Rate != LabSourceRate || l.Source.Burst != LabSourceBurst {
			t.Errorf("%s: source limit %+v", pop, l.Source)
		}
		if !l.Cookies.Enabled || l.Cookies.Secret == "" {
			t.Errorf("%s: cookies %+v, want on with a secret", pop, l.Cookies)
		}
		secrets[l.Cookies.Secret] = true
		exempt := func(a string) bool {
			for _, pf := range l.Source.Exempt {
				if pf.Contains(netip.MustParseAddr(a)) {
					return true
				}
			}
			return false
		}
		for _, n := range p.nodes {
			if n.Role == RoleClient && (!exempt(n.Addr4.String()) || !exempt(n.Addr6.String())) {
				t.Errorf("%s: client %s not exempt", pop, n.Name)
			}
		}
		if !exempt("192.0.2.53") {
			t.Errorf("%s: the anycast address (its own health check) is not exempt", pop)
		}
		for _, a := range []string{"198.51.100.200", "2001:db8:d::1", "203.0.113.200"} {
			if exempt(a) {
				t.Errorf("%s: %s is exempt", pop, a)
			}
		}
	}
	if len(secrets) != 1 {
		t.Errorf("%d cookie secrets among the PoPs, want one for the anycast set", len(secrets))
	}
}
