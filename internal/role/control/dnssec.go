package control

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/config"
	"github.com/anycastdns/anycastdns/internal/sign"
	"github.com/anycastdns/anycastdns/internal/store"
)

// Signing on the control plane (issue #16): the store signs the zones whose
// signing is enabled (through the API) with keys sealed by the key file of
// signing.key_file; the "signing" task of the lifecycle runner refreshes
// their signatures before they expire and follows the keys' timing.

// signingCheck bounds the wait of the signing task between two looks at
// what is due, so that a zone signed meanwhile, or a clock that jumped, is
// seen within it.
const signingCheck = time.Minute

// signingWake wakes the signing task when the API changed a zone's
// signing (a policy, a DS seen), so that what that makes due (a rollover
// of a shorter lifetime, the new key's activation) happens at its time and
// not at the task's next look, up to signingCheck later. Buffered (1).
type signingWake chan struct{}

// kick wakes the task, or leaves a wake-up for it if it is busy.
func (w signingWake) kick() {
	select {
	case w <- struct{}{}:
	default: // a wake-up is pending already (or w is nil: no task)
	}
}

// runSigning is the signing task: it asks the parents' servers for the DS
// of the keys that wait for it (checkParents), does what is due in every
// signed zone (store.MaintainSigning), then waits until the next thing comes due, at
// most signingCheck, or until wake, until ctx ends.
func runSigning(ctx context.Context, s *store.Store, parents map[string][]netip.AddrPort, wake <-chan struct{}, log *slog.Logger) error {
	log = log.With("component", "signing")
	for {
		checkParents(ctx, s, parents, log)
		next, err := s.MaintainSigning(ctx)
		if err != nil && ctx.Err() == nil {
			log.Error("signature maintenance failed; retrying", "err", err)
		}
		wait := signingCheck
		if !next.IsZero() {
			wait = min(max(time.Until(next), time.Second), signingCheck)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// signingStatus is the API's form of a zone's signing.
func signingStatus(st store.SigningStatus, serial uint32) api.DNSSECStatus {
	out := api.DNSSECStatus{Zone: st.Zone, Enabled: st.Enabled, Serial: serial, Keys: []api.DNSSECKey{}}
	if !st.Enabled {
		return out
	}
	pol := api.PolicyOf(st.Policy)
	out.Policy, out.Settings = st.PolicyName, &pol
	opt := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		u := t.UTC()
		return &u
	}
	for _, k := range st.Keys {
		out.Keys = append(out.Keys, api.DNSSECKey{ID: k.ID, Tag: k.Tag, Role: string(k.Role), Algorithm: k.Algorithm.String(),
			State: k.State, Created: k.Created.UTC(), Publish: opt(k.Publish), Activate: opt(k.Activate), Retire: opt(k.Retire),
			Remove: opt(k.Remove), DS: k.DS})
	}
	out.NextEvent, out.NextEventKind = opt(st.NextEvent), st.NextEventWhat
	out.Rollover = st.Rollover
	return out
}

// withSerial adds the zone's serial to a status.
func (b backend) withSerial(ctx context.Context, st store.SigningStatus, err error) (api.DNSSECStatus, error) {
	if err != nil {
		return api.DNSSECStatus{}, classifySigning(err)
	}
	info, _, err := b.s.Get(ctx, st.Zone)
	if err != nil {
		return api.DNSSECStatus{}, classify(err)
	}
	return signingStatus(st, info.Serial), nil
}

// classifySigning is classify, with signing not configured a conflict.
func classifySigning(err error) error {
	if errors.Is(err, store.ErrNoKeyFile) {
		return api.Mark(err, api.ErrConflict)
	}
	return classify(err)
}

func (b backend) Signing(ctx context.Context, zone string) (api.DNSSECStatus, error) {
	st, err := b.s.Signing(ctx, zone)
	return b.withSerial(ctx, st, err)
}

func (b backend) EnableSigning(ctx context.Context, zone, name string, p sign.Policy) (api.DNSSECStatus, error) {
	st, err := b.s.EnableSigning(ctx, zone, name, p)
	if err == nil {
		b.wake.kick()
	}
	return b.withSerial(ctx, st, err)
}

func (b backend) DisableSigning(ctx context.Context, zone string) (api.DNSSECStatus, error) {
	st, err := b.s.DisableSigning(ctx, zone)
	if err == nil {
		b.wake.kick()
	}
	return b.withSerial(ctx, st, err)
}

func (b backend) DSSeen(ctx context.Context, zone string, tag uint16) (api.DNSSECStatus, error) {
	st, err := b.s.DSSeen(ctx, zone, tag)
	if err == nil {
		b.wake.kick()
	}
	return b.withSerial(ctx, st, err)
}

// loadSealer reads the key file of the signing section and opens its
// PKCS#11 token, if it has one; nil without a key file.
func loadSealer(c config.Signing) (*sign.Sealer, error) {
	if c.KeyFile == "" {
		return nil, nil
	}
	s, err := sign.LoadSealer(c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("signing.key_file: %w", err)
	}
	if c.PKCS11 == nil {
		return s, nil
	}
	pin, err := sign.ReadPIN(c.PKCS11.PINFile)
	if err != nil {
		return nil, fmt.Errorf("signing.pkcs11.pin_file: %w", err)
	}
	tok, err := sign.OpenToken(sign.TokenConfig{Module: c.PKCS11.Module, Label: c.PKCS11.TokenLabel, PIN: pin})
	if err != nil {
		return nil, fmt.Errorf("signing.pkcs11: %w", err)
	}
	return s.WithToken(tok), nil
}

// signingPolicies turns the configuration's policies into the signer's,
// each field left out the default policy's, and checks them; errors name
// the policy and the field. "default" is sign.DefaultPolicy unless
// configured.
func signingPolicies(c *config.Control) (map[string]sign.Policy, error) {
	out := map[string]sign.Policy{config.DefaultSigningPolicy: sign.DefaultPolicy()}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(c.Signing.Policies)) {
		cp := c.Signing.Policies[name]
		p := sign.DefaultPolicy()
		if cp.Algorithm != "" {
			alg, err := sign.ParseAlgorithm(cp.Algorithm)
			if err != nil {
				errs = append(errs, fmt.Errorf("signing.policies.%s: algorithm: %w", name, err))
				continue
			}
			p.Algorithm = alg
		}
		set(&p.RSABits, cp.RSABits)
		set(&p.CSK, cp.CSK)
		set(&p.KSKLifetime, cp.KSKLifetime)
		set(&p.ZSKLifetime, cp.ZSKLifetime)
		set(&p.SignatureValidity, cp.SignatureValidity)
		set(&p.SignatureRefresh, cp.SignatureRefresh)
		set(&p.SignatureJitter, cp.SignatureJitter)
		set(&p.InceptionOffset, cp.InceptionOffset)
		set(&p.NSEC3, cp.NSEC3)
		set(&p.NSEC3Iterations, cp.NSEC3Iterations)
		set(&p.NSEC3SaltLength, cp.NSEC3SaltLength)
		set(&p.NSEC3OptOut, cp.NSEC3OptOut)
		set(&p.DNSKEYTTL, cp.DNSKEYTTL)
		set(&p.ZoneMaxTTL, cp.ZoneMaxTTL)
		set(&p.PropagationDelay, cp.PropagationDelay)
		set(&p.CDS, cp.CDS)
		if err := p.Validate(); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				errs = append(errs, fmt.Errorf("signing.policies.%s: %s", name, strings.TrimPrefix(line, "policy: ")))
			}
			continue
		}
		out[name] = p
	}
	return out, errors.Join(errs...)
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// policyLookup is the API's lookup of the policies.
func policyLookup(m map[string]sign.Policy) func(string) (sign.Policy, bool) {
	return func(name string) (sign.Policy, bool) {
		p, ok := m[name]
		return p, ok
	}
}

// parentOf returns the servers of the longest parent zone of parents that
// zone is under, nil when there is none.
func parentOf(parents map[string][]netip.AddrPort, zone string) (string, []netip.AddrPort) {
	best := ""
	for p := range parents {
		if p == zone || !dns.IsSubDomain(p, zone) {
			continue
		}
		if best == "" || dns.CountLabel(p) > dns.CountLabel(best) {
			best = p
		}
	}
	if best == "" {
		return "", nil
	}
	return best, parents[best]
}

// checkParents marks the DS of a waiting key seen (store.DSSeen) once every
// server of the zone's parent answers the zone's DS RRset with it.
func checkParents(ctx context.Context, s *store.Store, parents map[string][]netip.AddrPort, log *slog.Logger) {
	if len(parents) == 0 {
		return
	}
	waiting, err := s.WaitingForDS(ctx)
	if err != nil {
		return
	}
	for _, w := range waiting {
		parent, servers := parentOf(parents, w.Zone)
		if len(servers) == 0 {
			continue
		}
		seen := true
		for _, srv := range servers {
			ok, err := hasDS(ctx, srv, w.Zone, w.DS)
			if err != nil {
				log.Warn("cannot ask a parent server for a DS", "zone", w.Zone, "parent", parent, "server", srv.String(), "err", err)
			}
			if !ok {
				seen = false
				break
			}
		}
		if !seen {
			continue
		}
		if _, err := s.DSSeen(ctx, w.Zone, w.Tag); err != nil {
			log.Error("DS seen at every parent server, but recording it failed", "zone", w.Zone, "tag", w.Tag, "err", err)
			continue
		}
		log.Info("DS seen at every server of the parent", "zone", w.Zone, "tag", w.Tag, "parent", parent, "servers", len(servers))
	}
}

// hasDS asks one server (no recursion, TCP after a truncated answer) for
// the DS RRset of zone and reports whether it holds the DS rdata ds.
func hasDS(ctx context.Context, server netip.AddrPort, zone string, ds []byte) (bool, error) {
	if len(ds) < 5 {
		return false, errors.New("short DS")
	}
	m := new(dns.Msg)
	m.SetQuestion(zone, dns.TypeDS)
	m.RecursionDesired = false
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c := &dns.Client{Timeout: 5 * time.Second}
	r, _, err := c.ExchangeContext(ctx, m, server.String())
	if err == nil && r.Truncated {
		c.Net = "tcp"
		r, _, err = c.ExchangeContext(ctx, m, server.String())
	}
	if err != nil {
		return false, err
	}
	want := strings.ToUpper(hex.EncodeToString(ds[4:]))
	tag := uint16(ds[0])<<8 | uint16(ds[1])
	for _, rr := range r.Answer {
		d, ok := rr.(*dns.DS)
		if ok && strings.EqualFold(d.Hdr.Name, zone) && d.KeyTag == tag && d.Algorithm == ds[2] && d.DigestType == ds[3] && strings.ToUpper(d.Digest) == want {
			return true, nil
		}
	}
	return false, nil
}
