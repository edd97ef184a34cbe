// Package sign is the DNSSEC signer of the control plane: policies
// (modelled on Knot's KASP and BIND's dnssec-policy), keys and their
// encrypted store, full signing of a zone, incremental signing of a
// change and the refresh of signatures before they expire.
//
// It works on the record model of internal/zone: it signs a *zone.Zone
// and returns a new version, and it turns a change (the del/add lists
// zone.Apply takes) into the difference that keeps the zone signed. Like
// zone, it does no I/O (the file key store aside) and no logging.
package sign

import (
	"errors"
	"fmt"
	"time"

	"github.com/miekg/dns"
)

// Algorithm is a DNSSEC algorithm number (RFC 8624).
type Algorithm uint8

// The algorithms the signer supports.
const (
	RSASHA256       Algorithm = Algorithm(dns.RSASHA256)       // 8
	ECDSAP256SHA256 Algorithm = Algorithm(dns.ECDSAP256SHA256) // 13
	ED25519         Algorithm = Algorithm(dns.ED25519)         // 15
)

// String returns the algorithm's mnemonic.
func (a Algorithm) String() string {
	if s, ok := dns.AlgorithmToString[uint8(a)]; ok {
		return s
	}
	return fmt.Sprintf("ALG%d", uint8(a))
}

// ParseAlgorithm reads an algorithm mnemonic (ECDSAP256SHA256, ED25519,
// RSASHA256, any case) or number.
func ParseAlgorithm(s string) (Algorithm, error) {
	for _, a := range []Algorithm{ECDSAP256SHA256, ED25519, RSASHA256} {
		if equalFold(s, a.String()) || s == fmt.Sprint(uint8(a)) {
			return a, nil
		}
	}
	return 0, fmt.Errorf("algorithm %q not supported (ECDSAP256SHA256, ED25519 or RSASHA256)", s)
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		x, y := a[i], b[i]
		if 'a' <= x && x <= 'z' {
			x -= 'a' - 'A'
		}
		if 'a' <= y && y <= 'z' {
			y -= 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Policy says how a zone is signed and its keys rolled. The zero value is
// not valid: start from DefaultPolicy. Field names in errors are the
// snake_case names of the configuration and the API.
type Policy struct {
	// Algorithm of every key (algorithm rollover changes the policy).
	Algorithm Algorithm `json:"algorithm"`
	// RSABits is the modulus size of RSASHA256 keys, 2048 to 4096 (0 is
	// 2048); it must be 0 for the other algorithms.
	RSABits int `json:"rsa_bits,omitempty"`
	// CSK: one combined key signs everything; else a KSK signs the DNSKEY
	// RRset and a ZSK the rest.
	CSK bool `json:"csk"`
	// KSKLifetime is how long a KSK (or the CSK) is used before it is
	// rolled; ZSKLifetime the same for ZSKs. 0: never rolled.
	KSKLifetime time.Duration `json:"ksk_lifetime"`
	ZSKLifetime time.Duration `json:"zsk_lifetime"`
	// SignatureValidity is how long a new signature is valid, from its
	// inception; SignatureRefresh how long before its expiration a
	// signature is made again; SignatureJitter how much of the validity is
	// randomly taken off each signature so that they do not all expire,
	// and get refreshed, together; InceptionOffset how far in the past a
	// signature's inception is put, for validators with slow clocks.
	SignatureValidity time.Duration `json:"signature_validity"`
	SignatureRefresh  time.Duration `json:"signature_refresh"`
	SignatureJitter   time.Duration `json:"signature_jitter"`
	InceptionOffset   time.Duration `json:"inception_offset"`
	// NSEC3 selects NSEC3 (RFC 5155) instead of NSEC. RFC 9276: 0
	// additional iterations (the only value accepted) and no salt.
	NSEC3           bool `json:"nsec3"`
	NSEC3Iterations int  `json:"nsec3_iterations"`
	NSEC3SaltLength int  `json:"nsec3_salt_length"`
	NSEC3OptOut     bool `json:"nsec3_opt_out"`
	// DNSKEYTTL is the TTL of the DNSKEY, CDS and CDNSKEY RRsets.
	DNSKEYTTL time.Duration `json:"dnskey_ttl"`
	// ZoneMaxTTL is the largest TTL the zone may have: rollovers wait for
	// it, and signing refuses a zone with a larger one.
	ZoneMaxTTL time.Duration `json:"zone_max_ttl"`
	// PropagationDelay is how long a change takes to reach every PoP.
	PropagationDelay time.Duration `json:"propagation_delay"`
	// CDS publishes CDS and CDNSKEY records (RFC 7344, RFC 8078) for the
	// KSKs (or CSK) in use, for the parent to pick up.
	CDS bool `json:"cds"`
}

const day = 24 * time.Hour

// DefaultPolicy is the default policy: a CSK of ECDSAP256SHA256 never
// rolled (as Knot's and BIND's defaults), signatures valid 14 days and
// refreshed 5 days before they expire, NSEC.
func DefaultPolicy() Policy {
	return Policy{
		Algorithm:         ECDSAP256SHA256,
		CSK:               true,
		SignatureValidity: 14 * day,
		SignatureRefresh:  5 * day,
		SignatureJitter:   12 * time.Hour,
		InceptionOffset:   time.Hour,
		DNSKEYTTL:         time.Hour,
		ZoneMaxTTL:        day,
		PropagationDelay:  5 * time.Minute,
	}
}

// Validate reports every problem of the policy, each naming its field.
func (p Policy) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("policy: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	switch p.Algorithm {
	case ECDSAP256SHA256, ED25519:
		if p.RSABits != 0 {
			bad("rsa_bits", "only for RSASHA256, not %s", p.Algorithm)
		}
	case RSASHA256:
		if p.RSABits != 0 && (p.RSABits < 2048 || p.RSABits > 4096) {
			bad("rsa_bits", "%d: must be 2048 to 4096", p.RSABits)
		}
	default:
		bad("algorithm", "%s not supported (ECDSAP256SHA256, ED25519 or RSASHA256)", p.Algorithm)
	}
	positive := func(field string, d time.Duration) bool {
		if d <= 0 {
			bad(field, "%v: must be positive", d)
			return false
		}
		return true
	}
	nonNegative := func(field string, d time.Duration) bool {
		if d < 0 {
			bad(field, "%v: must not be negative", d)
			return false
		}
		return true
	}
	okTTL := positive("dnskey_ttl", p.DNSKEYTTL)
	okMax := positive("zone_max_ttl", p.ZoneMaxTTL)
	okProp := nonNegative("propagation_delay", p.PropagationDelay)
	okTTL = ttlRange("dnskey_ttl", p.DNSKEYTTL, bad) && okTTL
	okMax = ttlRange("zone_max_ttl", p.ZoneMaxTTL, bad) && okMax
	okVal := positive("signature_validity", p.SignatureValidity)
	okRef := positive("signature_refresh", p.SignatureRefresh)
	okJit := nonNegative("signature_jitter", p.SignatureJitter)
	nonNegative("inception_offset", p.InceptionOffset)
	if okVal && p.SignatureValidity > 68*365*day {
		bad("signature_validity", "%v: longer than RRSIG serial arithmetic allows (68 years)", p.SignatureValidity)
	}
	if okVal && okRef && okJit && p.SignatureRefresh+p.SignatureJitter >= p.SignatureValidity {
		bad("signature_refresh", "%v plus signature_jitter %v must be shorter than signature_validity %v, or new signatures would be due for refresh at once",
			p.SignatureRefresh, p.SignatureJitter, p.SignatureValidity)
	}
	if okRef && okMax && okProp && p.SignatureRefresh < p.ZoneMaxTTL+p.PropagationDelay {
		bad("signature_refresh", "%v: must be at least zone_max_ttl + propagation_delay (%v): a refreshed signature must reach every PoP and replace cached ones before the old one expires",
			p.SignatureRefresh, p.ZoneMaxTTL+p.PropagationDelay)
	}
	if okTTL && okProp && okMax {
		// A rollover takes the new DNSKEY's propagation and the old
		// RRsets' expiry from caches; a key must live longer than that.
		roll := p.PropagationDelay + max(p.DNSKEYTTL, p.ZoneMaxTTL)
		if nonNegative("ksk_lifetime", p.KSKLifetime) && p.KSKLifetime != 0 && p.KSKLifetime <= roll {
			bad("ksk_lifetime", "%v: must be 0 (never rolled) or longer than a rollover, propagation_delay + max(dnskey_ttl, zone_max_ttl) = %v", p.KSKLifetime, roll)
		}
		if nonNegative("zsk_lifetime", p.ZSKLifetime) && p.ZSKLifetime != 0 && p.ZSKLifetime <= roll {
			bad("zsk_lifetime", "%v: must be 0 (never rolled) or longer than a rollover, propagation_delay + max(dnskey_ttl, zone_max_ttl) = %v", p.ZSKLifetime, roll)
		}
	}
	if p.CSK && p.ZSKLifetime != 0 {
		bad("zsk_lifetime", "%v: a CSK policy has no ZSK (its key rolls by ksk_lifetime)", p.ZSKLifetime)
	}
	if !p.NSEC3 {
		if p.NSEC3Iterations != 0 || p.NSEC3SaltLength != 0 || p.NSEC3OptOut {
			bad("nsec3", "false, but nsec3_iterations, nsec3_salt_length or nsec3_opt_out is set")
		}
	}
	if p.NSEC3Iterations != 0 {
		bad("nsec3_iterations", "%d: must be 0 (RFC 9276 §3.1: additional iterations cost validators and protect nothing)", p.NSEC3Iterations)
	}
	if p.NSEC3SaltLength < 0 || p.NSEC3SaltLength > 255 {
		bad("nsec3_salt_length", "%d: must be 0 to 255 (0 recommended, RFC 9276 §3.1)", p.NSEC3SaltLength)
	}
	return errors.Join(errs...)
}

// ttlRange checks that a TTL fits the 31 bits RFC 2181 §8 allows.
func ttlRange(field string, d time.Duration, bad func(field, format string, args ...any)) bool {
	if d > (1<<31-1)*time.Second {
		bad(field, "%v: more than a TTL can hold (2^31-1 seconds)", d)
		return false
	}
	if d%time.Second != 0 {
		bad(field, "%v: not a whole number of seconds", d)
		return false
	}
	return true
}

// rsaBits is the modulus size of new RSA keys.
func (p Policy) rsaBits() int {
	if p.RSABits == 0 {
		return 2048
	}
	return p.RSABits
}
