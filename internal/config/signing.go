package config

import (
	"net/netip"
	"regexp"
	"time"

	"go.yaml.in/yaml/v3"
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
	// Policies by name. Each field left out takes the value of the
	// default policy (internal/sign's DefaultPolicy: a CSK of
	// ECDSAP256SHA256, NSEC, signatures valid 14 days refreshed 5 days
	// before they expire); "default" is that policy unless it is given
	// here. The control plane checks each policy when it starts (and on
	// reload), naming the policy and the field.
	Policies map[string]SigningPolicy
	// ParentServers lists, by parent zone (lower-case FQDN), the
	// authoritative servers of that zone. A KSK or CSK rollover of a zone
	// under it (the longest such parent) waits until every one of them
	// answers the zone's DS RRset with the new key's DS, asked every
	// minute; without an entry the operator confirms with "anycastctl
	// dnssec ds-seen".
	ParentServers map[string][]netip.AddrPort
	// PKCS11 keeps the signing keys made from then on in a PKCS#11 token
	// (an HSM; SoftHSM in the tests): each is generated inside the token,
	// sensitive and not extractable, signs there, and the database keeps
	// only a reference (token label, object id, public key), sealed with
	// key_file like the keys made without a token, which keep working.
	// nil = keys in the database.
	PKCS11 *SigningPKCS11
}

// SigningPKCS11 is the PKCS#11 token of the signing keys.
type SigningPKCS11 struct {
	// Module is the token's PKCS#11 library, e.g.
	// /usr/lib/softhsm/libsofthsm2.so.
	Module string
	// TokenLabel is the label of the token, which must be initialised.
	TokenLabel string
	// PINFile holds the user PIN on its first line, readable by the
	// owner alone.
	PINFile string
}

// SigningPolicy is a signing policy as the configuration gives it: the
// fields of internal/sign's Policy that were set (nil: the default's).
type SigningPolicy struct {
	Algorithm         string // "": the default's
	RSABits           *int
	CSK               *bool
	KSKLifetime       *time.Duration
	ZSKLifetime       *time.Duration
	SignatureValidity *time.Duration
	SignatureRefresh  *time.Duration
	SignatureJitter   *time.Duration
	InceptionOffset   *time.Duration
	NSEC3             *bool
	NSEC3Iterations   *int
	NSEC3SaltLength   *int
	NSEC3OptOut       *bool
	DNSKEYTTL         *time.Duration
	ZoneMaxTTL        *time.Duration
	PropagationDelay  *time.Duration
	CDS               *bool
}

// DefaultSigningPolicy is the name of the policy used when none is named.
const DefaultSigningPolicy = "default"

var policyName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// signingField is the control plane's "signing" section.
func (d *decoder) signingField(c *Control) field {
	return field{"signing", func(n *yaml.Node, p string) {
		d.mapping(n, p, []field{
			{"key_file", func(n *yaml.Node, p string) { d.file(n, p, &c.Signing.KeyFile) }},
			{"parent_servers", func(n *yaml.Node, p string) {
				if n = d.value(n, p); n == nil {
					return
				}
				if n.Kind != yaml.MappingNode {
					d.errorAt(n, p, "expected a mapping of parent zones to server lists, got %s", describe(n))
					return
				}
				c.Signing.ParentServers = map[string][]netip.AddrPort{}
				for i := 0; i+1 < len(n.Content); i += 2 {
					k := resolve(n.Content[i])
					kp := keyPath(p, k.Value)
					name, err := canonicalZoneName(k.Value)
					if k.Kind != yaml.ScalarNode || err != nil {
						d.errorAt(k, kp, "a parent zone name, got %s", describe(k))
						continue
					}
					items := d.sequence(n.Content[i+1], kp)
					servers := make([]netip.AddrPort, len(items))
					for j, item := range items {
						servers[j], _ = parseScalar(d, item, indexPath(kp, j), parseAddrPort)
					}
					c.Signing.ParentServers[name] = servers
				}
			}},
			{"pkcs11", func(n *yaml.Node, p string) {
				if isNull(n) {
					return
				}
				pk := &SigningPKCS11{}
				c.Signing.PKCS11 = pk
				d.mapping(n, p, []field{
					{"module", func(n *yaml.Node, p string) { d.str(n, p, &pk.Module) }},
					{"token_label", func(n *yaml.Node, p string) { d.str(n, p, &pk.TokenLabel) }},
					{"pin_file", func(n *yaml.Node, p string) { d.file(n, p, &pk.PINFile) }},
				})
			}},
			{"policies", func(n *yaml.Node, p string) {
				if n = d.value(n, p); n == nil {
					return
				}
				if n.Kind != yaml.MappingNode {
					d.errorAt(n, p, "expected a mapping of policy names to policies, got %s", describe(n))
					return
				}
				c.Signing.Policies = map[string]SigningPolicy{}
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
					var pol SigningPolicy
					d.signingPolicy(n.Content[i+1], kp, &pol)
					c.Signing.Policies[k.Value] = pol
				}
			}},
		})
	}}
}

func (d *decoder) signingPolicy(n *yaml.Node, path string, pol *SigningPolicy) {
	dur := func(dst **time.Duration) func(n *yaml.Node, p string) {
		return func(n *yaml.Node, p string) {
			var v time.Duration
			d.duration(n, p, &v)
			*dst = &v
		}
	}
	boolean := func(dst **bool) func(n *yaml.Node, p string) {
		return func(n *yaml.Node, p string) {
			var v bool
			d.boolean(n, p, &v)
			*dst = &v
		}
	}
	integer := func(dst **int) func(n *yaml.Node, p string) {
		return func(n *yaml.Node, p string) {
			var v int
			d.intValue(n, p, &v)
			*dst = &v
		}
	}
	d.mapping(n, path, []field{
		{"algorithm", func(n *yaml.Node, p string) { d.str(n, p, &pol.Algorithm) }},
		{"rsa_bits", integer(&pol.RSABits)},
		{"csk", boolean(&pol.CSK)},
		{"ksk_lifetime", dur(&pol.KSKLifetime)},
		{"zsk_lifetime", dur(&pol.ZSKLifetime)},
		{"signature_validity", dur(&pol.SignatureValidity)},
		{"signature_refresh", dur(&pol.SignatureRefresh)},
		{"signature_jitter", dur(&pol.SignatureJitter)},
		{"inception_offset", dur(&pol.InceptionOffset)},
		{"nsec3", boolean(&pol.NSEC3)},
		{"nsec3_iterations", integer(&pol.NSEC3Iterations)},
		{"nsec3_salt_length", integer(&pol.NSEC3SaltLength)},
		{"nsec3_opt_out", boolean(&pol.NSEC3OptOut)},
		{"dnskey_ttl", dur(&pol.DNSKEYTTL)},
		{"zone_max_ttl", dur(&pol.ZoneMaxTTL)},
		{"propagation_delay", dur(&pol.PropagationDelay)},
		{"cds", boolean(&pol.CDS)},
	})
}

// signing validates the signing section. The policies' values are
// checked by the control plane, which knows the signer's rules, and the
// key file when it starts.
func (v *validator) signing(s *Signing) {
	if len(s.Policies) > 0 && s.KeyFile == "" {
		v.add("signing.key_file", "required with signing.policies: it seals the signing keys")
	}
	if pk := s.PKCS11; pk != nil {
		if s.KeyFile == "" {
			v.add("signing.key_file", "required with signing.pkcs11: it seals what the database keeps of each key")
		}
		if pk.Module == "" {
			v.add("signing.pkcs11.module", "required: the token's PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so")
		}
		if pk.TokenLabel == "" {
			v.add("signing.pkcs11.token_label", "required: the label of the token that keeps the keys")
		}
		if pk.PINFile == "" {
			v.add("signing.pkcs11.pin_file", "required: the file that holds the token's user PIN")
		}
	}
}
