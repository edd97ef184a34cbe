package sign

import (
	"bytes"
	"fmt"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/zone"
)

// signs reports whether the RRset of type t at a node of kind k carries
// signatures.
func signs(k kind, t uint16) bool {
	switch k {
	case kindAuth:
		return t != dns.TypeRRSIG
	case kindDeleg:
		return t == dns.TypeDS || t == dns.TypeNSEC
	case kindNone:
		return t == dns.TypeNSEC3
	}
	return false
}

// Refresh re-signs, at now, the RRsets of a zone this signer signed whose
// signatures are due: one expires within signature_refresh of now, or they
// are not those of the keys in use at now (a key retired or activated).
// It returns the new version and the difference from z (the old
// signatures deleted, the new ones added); the SOA is not changed, so the
// caller then bumps the serial through Update, which signs the SOA anew.
//
// Signatures do not come due together: each one's expiration is drawn
// back by a share of signature_jitter fixed by its owner and type, so a
// zone signed at once is refreshed spread over the jitter, and stays
// spread. NextRefresh says when the next ones come due.
func (s *Signer) Refresh(z *zone.Zone, now time.Time) (*zone.Zone, []zone.RR, []zone.RR, error) {
	return s.RefreshWithin(z, now, 0)
}

// RefreshWithin is Refresh that also re-signs the signatures that come due
// within window of now, so that a caller refreshing a large zone writes
// them in batches (one per window) instead of one write per signature.
func (s *Signer) RefreshWithin(z *zone.Zone, now time.Time, window time.Duration) (*zone.Zone, []zone.RR, []zone.RR, error) {
	if !bytes.Equal(z.OriginWire(), s.origin) {
		return nil, nil, nil, fmt.Errorf("refresh %s: the signer is for %s", z.Origin, s.zone)
	}
	ks, err := s.keysAt(now)
	if err != nil {
		return nil, nil, nil, err
	}
	var del []zone.RR
	var jobs []job
	z.Nodes(func(n *zone.Node) {
		k := s.classify(n)
		apex := n == z.Apex
		for i := range n.Sets {
			set := &n.Sets[i]
			if !signs(k, set.Type) || s.freshUntil(set, ks, now, now.Add(max(window, 0)), apex) {
				continue
			}
			del = appendSigsOf(del, n, set.Type)
			rds := make([][]byte, 0, set.Len())
			for rd := range set.All() {
				rds = append(rds, rd)
			}
			jobs = append(jobs, job{owner: n.Name, t: set.Type, ttl: set.TTL, rds: rds, keys: keysFor(ks, set.Type, apex)})
		}
	})
	if len(jobs) == 0 {
		return z, nil, nil, nil
	}
	if err := s.signJobs(jobs, s.timing(now)); err != nil {
		return nil, nil, nil, fmt.Errorf("refresh %s: %w", s.zone, err)
	}
	var add []zone.RR
	for i := range jobs {
		for _, sig := range jobs[i].sigs {
			add = append(add, zone.RR{Name: jobs[i].owner, Type: dns.TypeRRSIG, TTL: jobs[i].ttl, Rdata: sig})
		}
	}
	nz, err := z.Apply(del, add)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("refresh %s: %w", s.zone, err)
	}
	d, a := zone.DiffWire(z, nz)
	return nz, d, a, nil
}

// NextRefresh returns when the first signature of z comes due for
// refresh (its expiration less signature_refresh), as seen from now (a
// time before now when some are due already); the zero time when z has
// no signatures.
func (s *Signer) NextRefresh(z *zone.Zone, now time.Time) time.Time {
	var first time.Time
	z.Nodes(func(n *zone.Node) {
		for i := range n.Sets {
			for rd := range n.Sets[i].Sigs() {
				if len(rd) < 18 {
					continue
				}
				if exp := sigTime(rd[8:12], now); first.IsZero() || exp.Before(first) {
					first = exp
				}
			}
		}
	})
	if first.IsZero() {
		return first
	}
	return first.Add(-s.policy.SignatureRefresh)
}
