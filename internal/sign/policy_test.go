package sign

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultPolicyValid(t *testing.T) {
	if err := DefaultPolicy().Validate(); err != nil {
		t.Fatal(err)
	}
	p := DefaultPolicy()
	if p.Algorithm != ECDSAP256SHA256 || p.NSEC3 || !p.CSK {
		t.Errorf("default policy %+v: want a CSK of ECDSAP256SHA256 with NSEC", p)
	}
}

func TestPolicyValidate(t *testing.T) {
	cases := []struct {
		name   string
		change func(p *Policy)
		want   []string // every one must appear in the error; none: valid
	}{
		{"ed25519", func(p *Policy) { p.Algorithm = ED25519 }, nil},
		{"rsa", func(p *Policy) { p.Algorithm = RSASHA256; p.RSABits = 3072 }, nil},
		{"ksk+zsk", func(p *Policy) { p.CSK = false; p.KSKLifetime = 365 * day; p.ZSKLifetime = 30 * day }, nil},
		{"nsec3 opt-out", func(p *Policy) { p.NSEC3 = true; p.NSEC3OptOut = true }, nil},
		{"nsec3 salt", func(p *Policy) { p.NSEC3 = true; p.NSEC3SaltLength = 8 }, nil},
		{"unknown algorithm", func(p *Policy) { p.Algorithm = 5 }, []string{"policy: algorithm: RSASHA1 not supported"}},
		{"rsa bits on ecdsa", func(p *Policy) { p.RSABits = 2048 }, []string{"rsa_bits: only for RSASHA256"}},
		{"rsa bits small", func(p *Policy) { p.Algorithm = RSASHA256; p.RSABits = 1024 }, []string{"rsa_bits: 1024: must be 2048 to 4096"}},
		{"no validity", func(p *Policy) { p.SignatureValidity = 0 }, []string{"signature_validity: 0s: must be positive"}},
		{"refresh too long", func(p *Policy) { p.SignatureRefresh = 14 * day }, []string{"signature_refresh: 336h0m0s plus signature_jitter"}},
		{"refresh under max ttl", func(p *Policy) { p.SignatureRefresh = 2 * time.Hour; p.ZoneMaxTTL = 3 * time.Hour },
			[]string{"signature_refresh: 2h0m0s: must be at least zone_max_ttl + propagation_delay (3h5m0s)"}},
		{"negative jitter", func(p *Policy) { p.SignatureJitter = -1 }, []string{"signature_jitter: -1ns: must not be negative"}},
		{"zsk lifetime with csk", func(p *Policy) { p.ZSKLifetime = 30 * day }, []string{"zsk_lifetime: 720h0m0s: a CSK policy has no ZSK"}},
		{"ksk lifetime short", func(p *Policy) { p.KSKLifetime = time.Hour }, []string{"ksk_lifetime: 1h0m0s: must be 0 (never rolled) or longer than a rollover"}},
		{"iterations", func(p *Policy) { p.NSEC3 = true; p.NSEC3Iterations = 10 }, []string{"nsec3_iterations: 10: must be 0 (RFC 9276"}},
		{"salt too long", func(p *Policy) { p.NSEC3 = true; p.NSEC3SaltLength = 256 }, []string{"nsec3_salt_length: 256"}},
		{"opt-out without nsec3", func(p *Policy) { p.NSEC3OptOut = true }, []string{"policy: nsec3: false, but"}},
		{"dnskey ttl", func(p *Policy) { p.DNSKEYTTL = 1500 * time.Millisecond }, []string{"dnskey_ttl: 1.5s: not a whole number of seconds"}},
		{"max ttl huge", func(p *Policy) { p.ZoneMaxTTL = 1 << 62 }, []string{"zone_max_ttl:", "more than a TTL can hold"}},
		{"several at once", func(p *Policy) { p.SignatureValidity = 0; p.DNSKEYTTL = 0 },
			[]string{"signature_validity: 0s", "dnskey_ttl: 0s"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := DefaultPolicy()
			c.change(&p)
			err := p.Validate()
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: no error, want %q", c.want)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate: %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestParseAlgorithm(t *testing.T) {
	for in, want := range map[string]Algorithm{"ecdsap256sha256": ECDSAP256SHA256, "ED25519": ED25519, "8": RSASHA256} {
		if got, err := ParseAlgorithm(in); err != nil || got != want {
			t.Errorf("ParseAlgorithm(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseAlgorithm("RSASHA1"); err == nil || !strings.Contains(err.Error(), `algorithm "RSASHA1" not supported`) {
		t.Errorf("ParseAlgorithm(RSASHA1): %v", err)
	}
}
