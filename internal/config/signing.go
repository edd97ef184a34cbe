package config

import (
	"maps"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/anycastdns/anycastdns/internal/sign"
)

// Signing configures DNSSEC signing on the control plane (issue #16): the
// key file that seals the signing keys in the zone database, and the named
// policies that zones are signed with ("anycastctl dnssec enable ZONE
// -policy NAME", PUT /v1/zones/{zone}/dnssec).
type Signing struct {
	// KeyFile holds 32 random bytes (base64 or hex, one line; make one
	// with "anycastctl dnssec keyfile"), readable by the owner alone. It
	// seals every signing key (AES-256-GCM): without it the keys in the
	// database are useless, so back it up apart from the database. ""
	// = no signing (then a database with signed zones does not open).
	KeyFile string
	// Policies by name, each starting from sign.DefaultPolicy (a CSK of
	// ECDSAP256SHA256, NSEC, signatures valid 14 days refreshed 5 days
	// before they expire). "default" is that policy unless it is given
	// here.
	Policies map[string]sign.Policy
}

// DefaultSigningPolicy is the name of the policy used when none is named.
const DefaultSigningPolicy = "default"

// Policy returns the policy of that name ("" = default).
func (s Signing) Policy(name string) (sign.Policy, bool) {
	if name == "" {
		name = DefaultSigningPolicy
	}
	if p, ok := s.Policies[name]; ok {
		return p, true
	}
	if name == DefaultSigningPolicy {
		return sign.DefaultPolicy(), true
	}
	return sign.Policy{}, false
}

var policyName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// signingField is the control plane's "signing" section.
func (d *decoder) signingField(c *Control) field {
	return field{"signing", func(n *yaml.Node, p string) {
		d.mapping(n, p, []field{
			{"key_file", func(n *yaml.Node, p string) { d.file(n, p, &c.Signing.KeyFile) }},
			{"policies", func(n *yaml.Node, p string) {
				if n = d.value(n, p); n == nil {
					return
				}
				if n.Kind != yaml.MappingNode {
					d.errorAt(n, p, "expected a mapping of policy names to policies, got %s", describe(n))
					return
				}
				c.Signing.Policies = map[string]sign.Policy{}
				for i := 0; i+1 < len(n.Content); i += 2 {
					k := resolve(n.Content[i])
					kp := keyPath(p, k.Value)
					if k.Kind != yaml.ScalarNode || !policyName.MatchString(k.Value) {
						d.errorAt(k, kp, "a policy name is 1 to 63 of a-z 0-9 _ - starting with a letter or digit, got %s", describe(k))
						continue
					}
					if _, dup := c.Signing.Policies[k.Value]; dup {
						d.errorAt(k, kp, "duplicate policy")
						continue
					}
					pol := sign.DefaultPolicy()
					d.signingPolicy(n.Content[i+1], kp, &pol)
					c.Signing.Policies[k.Value] = pol
				}
			}},
		})
	}}
}

func (d *decoder) signingPolicy(n *yaml.Node, path string, pol *sign.Policy) {
	d.mapping(n, path, []field{
		{"algorithm", func(n *yaml.Node, p string) {
			if v, ok := parseScalar(d, n, p, sign.ParseAlgorithm); ok {
				pol.Algorithm = v
			}
		}},
		{"rsa_bits", func(n *yaml.Node, p string) { d.intValue(n, p, &pol.RSABits) }},
		{"csk", func(n *yaml.Node, p string) { d.boolean(n, p, &pol.CSK) }},
		{"ksk_lifetime", func(n *yaml.Node, p string) { d.duration(n, p, &pol.KSKLifetime) }},
		{"zsk_lifetime", func(n *yaml.Node, p string) { d.duration(n, p, &pol.ZSKLifetime) }},
		{"signature_validity", func(n *yaml.Node, p string) { d.duration(n, p, &pol.SignatureValidity) }},
		{"signature_refresh", func(n *yaml.Node, p string) { d.duration(n, p, &pol.SignatureRefresh) }},
		{"signature_jitter", func(n *yaml.Node, p string) { d.duration(n, p, &pol.SignatureJitter) }},
		{"inception_offset", func(n *yaml.Node, p string) { d.duration(n, p, &pol.InceptionOffset) }},
		{"nsec3", func(n *yaml.Node, p string) { d.boolean(n, p, &pol.NSEC3) }},
		{"nsec3_iterations", func(n *yaml.Node, p string) { d.intValue(n, p, &pol.NSEC3Iterations) }},
		{"nsec3_salt_length", func(n *yaml.Node, p string) { d.intValue(n, p, &pol.NSEC3SaltLength) }},
		{"nsec3_opt_out", func(n *yaml.Node, p string) { d.boolean(n, p, &pol.NSEC3OptOut) }},
		{"dnskey_ttl", func(n *yaml.Node, p string) { d.duration(n, p, &pol.DNSKEYTTL) }},
		{"zone_max_ttl", func(n *yaml.Node, p string) { d.duration(n, p, &pol.ZoneMaxTTL) }},
		{"propagation_delay", func(n *yaml.Node, p string) { d.duration(n, p, &pol.PropagationDelay) }},
		{"cds", func(n *yaml.Node, p string) { d.boolean(n, p, &pol.CDS) }},
	})
}

// signing validates the signing section: every policy is valid (each
// problem at the policy's path, naming its field). The key file is read
// when the control plane starts, which reports its problems.
func (v *validator) signing(s *Signing) {
	for _, name := range slices.Sorted(maps.Keys(s.Policies)) {
		p := s.Policies[name]
		if err := p.Validate(); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				v.add(keyPath("signing.policies", name), "%s", strings.TrimPrefix(line, "policy: "))
			}
		}
	}
	if len(s.Policies) > 0 && s.KeyFile == "" {
		v.add("signing.key_file", "required with signing.policies: it seals the signing keys")
	}
}
