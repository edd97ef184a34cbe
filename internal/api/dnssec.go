package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/anycastdns/anycastdns/internal/sign"
)

// DNSSEC signing on the control plane (issue #16):
//
//	GET /v1/zones/{zone}/dnssec   the zone's signing: policy, keys and their states, next event
//	PUT /v1/zones/{zone}/dnssec   {"enabled":true,"policy":"NAME"} or {"enabled":true,"settings":{...}}; {"enabled":false}
//	POST /v1/zones/{zone}/dnssec/ds-seen  {"tag":N}: the parent publishes the DS of the new key of a rollover

// SigningBackend is the part of a Backend that signs zones. A Backend
// without it answers the dnssec endpoints with 404.
type SigningBackend interface {
	// Signing returns the signing of a zone.
	Signing(ctx context.Context, zone string) (DNSSECStatus, error)
	// EnableSigning signs a zone with a policy (named name) and keeps it
	// signed.
	EnableSigning(ctx context.Context, zone, name string, p sign.Policy) (DNSSECStatus, error)
	// DisableSigning takes the zone's DNSSEC records, policy and keys away.
	DisableSigning(ctx context.Context, zone string) (DNSSECStatus, error)
	// DSSeen records that the parent publishes the DS of the key with tag
	// (a KSK or CSK rollover waits for it).
	DSSeen(ctx context.Context, zone string, tag uint16) (DNSSECStatus, error)
}

// DSSeenRequest is the body of POST /v1/zones/{zone}/dnssec/ds-seen.
type DSSeenRequest struct {
	Tag uint16 `json:"tag"`
}

// DNSSECPath is the path of a zone's signing.
func DNSSECPath(zone string) string { return ZonePath(zone) + "/dnssec" }

// DSSeenPath is the path that confirms a DS at the parent.
func DSSeenPath(zone string) string { return DNSSECPath(zone) + "/ds-seen" }

// DNSSECPolicy is a signing policy (sign.Policy) as the API and the
// configuration write it: durations as Go durations ("336h", "5m").
type DNSSECPolicy struct {
	Algorithm         string `json:"algorithm"`
	RSABits           int    `json:"rsa_bits,omitempty"`
	CSK               bool   `json:"csk"`
	KSKLifetime       string `json:"ksk_lifetime"`
	ZSKLifetime       string `json:"zsk_lifetime"`
	SignatureValidity string `json:"signature_validity"`
	SignatureRefresh  string `json:"signature_refresh"`
	SignatureJitter   string `json:"signature_jitter"`
	InceptionOffset   string `json:"inception_offset"`
	NSEC3             bool   `json:"nsec3"`
	NSEC3Iterations   int    `json:"nsec3_iterations"`
	NSEC3SaltLength   int    `json:"nsec3_salt_length"`
	NSEC3OptOut       bool   `json:"nsec3_opt_out"`
	DNSKEYTTL         string `json:"dnskey_ttl"`
	ZoneMaxTTL        string `json:"zone_max_ttl"`
	PropagationDelay  string `json:"propagation_delay"`
	CDS               bool   `json:"cds"`
}

// PolicyOf is the API form of a policy.
func PolicyOf(p sign.Policy) DNSSECPolicy {
	return DNSSECPolicy{
		Algorithm: p.Algorithm.String(), RSABits: p.RSABits, CSK: p.CSK,
		KSKLifetime: p.KSKLifetime.String(), ZSKLifetime: p.ZSKLifetime.String(),
		SignatureValidity: p.SignatureValidity.String(), SignatureRefresh: p.SignatureRefresh.String(),
		SignatureJitter: p.SignatureJitter.String(), InceptionOffset: p.InceptionOffset.String(),
		NSEC3: p.NSEC3, NSEC3Iterations: p.NSEC3Iterations, NSEC3SaltLength: p.NSEC3SaltLength, NSEC3OptOut: p.NSEC3OptOut,
		DNSKEYTTL: p.DNSKEYTTL.String(), ZoneMaxTTL: p.ZoneMaxTTL.String(), PropagationDelay: p.PropagationDelay.String(),
		CDS: p.CDS,
	}
}

// Policy converts the API form to a policy, each bad field named; the
// policy is then validated.
func (d DNSSECPolicy) Policy() (sign.Policy, error) {
	var p sign.Policy
	alg, err := sign.ParseAlgorithm(d.Algorithm)
	if err != nil {
		return p, fmt.Errorf("settings.algorithm: %w", err)
	}
	p.Algorithm, p.RSABits, p.CSK = alg, d.RSABits, d.CSK
	p.NSEC3, p.NSEC3Iterations, p.NSEC3SaltLength, p.NSEC3OptOut, p.CDS = d.NSEC3, d.NSEC3Iterations, d.NSEC3SaltLength, d.NSEC3OptOut, d.CDS
	for _, f := range []struct {
		name string
		s    string
		dst  *time.Duration
	}{
		{"ksk_lifetime", d.KSKLifetime, &p.KSKLifetime}, {"zsk_lifetime", d.ZSKLifetime, &p.ZSKLifetime},
		{"signature_validity", d.SignatureValidity, &p.SignatureValidity}, {"signature_refresh", d.SignatureRefresh, &p.SignatureRefresh},
		{"signature_jitter", d.SignatureJitter, &p.SignatureJitter}, {"inception_offset", d.InceptionOffset, &p.InceptionOffset},
		{"dnskey_ttl", d.DNSKEYTTL, &p.DNSKEYTTL}, {"zone_max_ttl", d.ZoneMaxTTL, &p.ZoneMaxTTL},
		{"propagation_delay", d.PropagationDelay, &p.PropagationDelay},
	} {
		v, err := time.ParseDuration(f.s)
		if err != nil {
			return p, fmt.Errorf("settings.%s: %q is not a duration (\"336h\", \"5m\")", f.name, f.s)
		}
		*f.dst = v
	}
	if err := p.Validate(); err != nil {
		return p, err
	}
	return p, nil
}

// PutDNSSEC is the body of PUT /v1/zones/{zone}/dnssec: enabled with a
// policy of the configuration by name (none: "default"), or with settings
// of its own (fields left out take the default policy's values); or
// disabled.
type PutDNSSEC struct {
	Enabled  bool            `json:"enabled"`
	Policy   string          `json:"policy,omitempty"`
	Settings json.RawMessage `json:"settings,omitempty"`
}

// DNSSECStatus is a zone's signing: GET /v1/zones/{zone}/dnssec and the
// answer to PUT.
type DNSSECStatus struct {
	Zone    string `json:"zone"`
	Enabled bool   `json:"enabled"`
	Serial  uint32 `json:"serial"`
	// Policy names the policy ("custom" for settings given in the PUT).
	Policy   string        `json:"policy,omitempty"`
	Settings *DNSSECPolicy `json:"settings,omitempty"`
	Keys     []DNSSECKey   `json:"keys"`
	// NextEvent is when the signer next acts by itself, NextEventKind
	// what it does then ("signature refresh", "key event").
	NextEvent     *time.Time `json:"next_event,omitempty"`
	NextEventKind string     `json:"next_event_kind,omitempty"`
	// Rollover is the step of an algorithm rollover under way (started by
	// a PUT whose policy has another algorithm), "" when none.
	Rollover string `json:"rollover,omitempty"`
}

// DNSSECKey is one key of a signed zone: its state (created, published,
// active, retired, removed) and timing, and for a KSK or CSK the DS
// record to give the parent.
type DNSSECKey struct {
	ID        string     `json:"id"`
	Tag       uint16     `json:"tag"`
	Role      string     `json:"role"`
	Algorithm string     `json:"algorithm"`
	State     string     `json:"state"`
	Created   time.Time  `json:"created"`
	Publish   *time.Time `json:"publish,omitempty"`
	Activate  *time.Time `json:"activate,omitempty"`
	Retire    *time.Time `json:"retire,omitempty"`
	Remove    *time.Time `json:"remove,omitempty"`
	DS        string     `json:"ds,omitempty"`
}

// CustomPolicy is the name of a policy given as settings.
const CustomPolicy = "custom"

func (h *handler) signing() (SigningBackend, error) {
	sb, ok := h.b.(SigningBackend)
	if !ok {
		return nil, Mark(fmt.Errorf("this control plane does not sign zones"), ErrNotFound)
	}
	return sb, nil
}

func (h *handler) getDNSSEC(w http.ResponseWriter, r *http.Request) error {
	zname, err := zoneParam(r)
	if err != nil {
		return err
	}
	sb, err := h.signing()
	if err != nil {
		return err
	}
	st, err := sb.Signing(r.Context(), zname)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (h *handler) putDNSSEC(w http.ResponseWriter, r *http.Request) error {
	zname, err := zoneParam(r)
	if err != nil {
		return err
	}
	sb, err := h.signing()
	if err != nil {
		return err
	}
	var req PutDNSSEC
	if err := readJSON(r, &req); err != nil {
		return err
	}
	var st DNSSECStatus
	switch {
	case !req.Enabled:
		if req.Policy != "" || len(req.Settings) > 0 {
			return badRequest("enabled is false: policy and settings are for enabling")
		}
		st, err = sb.DisableSigning(r.Context(), zname)
	default:
		name, p, perr := h.policyOf(req)
		if perr != nil {
			return perr
		}
		st, err = sb.EnableSigning(r.Context(), zname, name, p)
	}
	if err != nil {
		return err
	}
	if req, ok := r.Context().Value(ctxKey{}).(*request); ok {
		req.serial = st.Serial
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// policyOf is the policy a PUT asks for.
func (h *handler) policyOf(req PutDNSSEC) (string, sign.Policy, error) {
	if len(req.Settings) > 0 {
		if req.Policy != "" && req.Policy != CustomPolicy {
			return "", sign.Policy{}, badRequest("give a policy name or settings, not both")
		}
		d := PolicyOf(sign.DefaultPolicy())
		if err := decodeJSON(req.Settings, &d); err != nil {
			return "", sign.Policy{}, badRequest("settings: %v", err)
		}
		p, err := d.Policy()
		if err != nil {
			return "", sign.Policy{}, Mark(err, ErrInvalid)
		}
		return CustomPolicy, p, nil
	}
	name := req.Policy
	if name == "" {
		name = "default"
	}
	if h.policies != nil {
		if p, ok := h.policies(name); ok {
			return name, p, nil
		}
	} else if name == "default" {
		return name, sign.DefaultPolicy(), nil
	}
	return "", sign.Policy{}, Mark(fmt.Errorf("policy %q: no such policy in the control plane's configuration (signing.policies)", name), ErrInvalid)
}

func (h *handler) dsSeen(w http.ResponseWriter, r *http.Request) error {
	zname, err := zoneParam(r)
	if err != nil {
		return err
	}
	sb, err := h.signing()
	if err != nil {
		return err
	}
	var req DSSeenRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if req.Tag == 0 {
		return badRequest("tag: the key tag of the key whose DS the parent publishes is required")
	}
	st, err := sb.DSSeen(r.Context(), zname, req.Tag)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}
