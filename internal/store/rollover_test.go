package store_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/sign"
	"github.com/anycastdns/anycastdns/internal/sign/signtest"
	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/testkit"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// version is a zone version with the time it was written.
type version struct {
	at time.Time
	z  *zone.Zone
}

// dsSet is the parent's DS RRset from a time on.
type dsSet struct {
	at  time.Time
	set []string // "tag alg digest-type digest"
}

// live returns the items whose time is after from, and the last one at or
// before it: what a cache may hold at now when from is now less the
// longest TTL and the propagation delay.
func live[T any](items []T, at func(T) time.Time, from time.Time) []T {
	var out []T
	for i, it := range items {
		if at(it).After(from) || i == len(items)-1 || at(items[i+1]).After(from) {
			out = append(out, it)
		}
	}
	return out
}

type parsed struct {
	keys map[uint16]*dns.DNSKEY
	sets map[string][]dns.RR
	sigs map[string][]*dns.RRSIG
	cds  []string
}

func parse(t *testing.T, z *zone.Zone) parsed {
	t.Helper()
	all, err := z.RRs()
	if err != nil {
		t.Fatal(err)
	}
	p := parsed{keys: map[uint16]*dns.DNSKEY{}, sets: map[string][]dns.RR{}, sigs: map[string][]*dns.RRSIG{}}
	for _, rr := range all {
		switch v := rr.(type) {
		case *dns.DNSKEY:
			p.keys[v.KeyTag()] = v
		case *dns.CDS:
			p.cds = append(p.cds, fmt.Sprintf("%d %d %d %s", v.KeyTag, v.Algorithm, v.DigestType, strings.ToUpper(v.Digest)))
		case *dns.RRSIG:
			k := strings.ToLower(v.Hdr.Name) + " " + dns.TypeToString[v.TypeCovered]
			p.sigs[k] = append(p.sigs[k], v)
			continue
		}
		k := strings.ToLower(rr.Header().Name) + " " + dns.TypeToString[rr.Header().Rrtype]
		p.sets[k] = append(p.sets[k], rr)
	}
	slices.Sort(p.cds)
	return p
}

// signedBy reports whether one of sigs verifies over set with a key of keys
// (and, when ds is not nil, a key whose DS is in ds).
func signedBy(sigs []*dns.RRSIG, set []dns.RR, keys map[uint16]*dns.DNSKEY, ds []string, now time.Time, checkTime bool) bool {
	for _, sig := range sigs {
		k := keys[sig.KeyTag]
		if k == nil || sig.Verify(k, set) != nil || (checkTime && !sig.ValidityPeriod(now)) {
			continue
		}
		if ds != nil {
			d := k.ToDS(dns.SHA256)
			if d == nil || !slices.Contains(ds, fmt.Sprintf("%d %d %d %s", d.KeyTag, d.Algorithm, d.DigestType, strings.ToUpper(d.Digest))) {
				continue
			}
		}
		return true
	}
	return false
}

// TestRollovers steps a settable clock through whole ZSK (pre-publish) and
// KSK or CSK (double-DS, CDS) rollovers, with a parent that takes its DS
// RRset from the zone's CDS and the operator's ds-seen once it has; at
// every step the zone validates as a resolver may see it: every RRset of
// the current version is signed by a key of every DNSKEY RRset a cache may
// hold (the versions of the last propagation_delay + largest TTL), every
// cached RRset by a key of the current DNSKEY RRset, and every such DNSKEY
// RRset by a key whose DS is in every DS RRset a cache may hold;
// ldns-verify-zone, given the parent's DS as trust anchor, agrees after
// every write.
func TestRollovers(t *testing.T) {
	ldns := testkit.RequireTool(t, "ldns-verify-zone", "ldnsutils")
	base := sign.DefaultPolicy()
	base.DNSKEYTTL, base.ZoneMaxTTL, base.PropagationDelay = time.Hour, time.Hour, 5*time.Minute
	base.SignatureValidity, base.SignatureRefresh, base.SignatureJitter = 4*24*time.Hour, 26*time.Hour, time.Hour
	base.CDS = true
	kz := base
	kz.CSK, kz.KSKLifetime, kz.ZSKLifetime = false, 3*24*time.Hour, 2*24*time.Hour
	csk := base
	csk.KSKLifetime = 2 * 24 * time.Hour
	csk.NSEC3 = true
	for name, p := range map[string]sign.Policy{"ksk+zsk": kz, "csk/nsec3": csk} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			c := &clock{t: time.Now().UTC().Truncate(time.Second)}
			sl, _ := sealer(t)
			s, _ := newStore(t, store.WithSealer(sl), store.WithClock(c.now))
			if _, err := s.CreateZone(ctx, "example.com.", signedBase(t), ""); err != nil {
				t.Fatal(err)
			}
			st, err := s.EnableSigning(ctx, "example.com.", "roll", p)
			if err != nil {
				t.Fatal(err)
			}
			start := c.now()
			z, _ := s.Zone(ctx, "example.com.")
			versions := []version{{start, z}}
			parent := []dsSet{{start, parse(t, z).cds}}
			if len(parent[0].set) != 1 {
				t.Fatalf("CDS at the start: %v (status %+v)", parent[0].set, st)
			}
			window := p.PropagationDelay + max(p.DNSKEYTTL, p.ZoneMaxTTL) - time.Second
			tags := map[uint16]bool{}
			kskRolls, zskRolls := 0, 0
			for c.now().Before(start.Add(8 * 24 * time.Hour)) {
				next, err := s.MaintainSigning(ctx)
				if err != nil {
					t.Fatal(err)
				}
				now := c.now()
				z, _ := s.Zone(ctx, "example.com.")
				cur := parse(t, z)
				// The parent follows the CDS; the operator confirms.
				if last := parent[len(parent)-1].set; !slices.Equal(last, cur.cds) && len(cur.cds) > 0 {
					parent = append(parent, dsSet{now, cur.cds})
					status, err := s.Signing(ctx, "example.com.")
					if err != nil {
						t.Fatal(err)
					}
					for _, k := range status.Keys {
						if strings.Contains(k.State, "waiting for its DS") {
							if _, err := s.DSSeen(ctx, "example.com.", k.Tag); err != nil {
								t.Fatal(err)
							}
							kskRolls++
						}
					}
					if n2, err := s.MaintainSigning(ctx); err != nil {
						t.Fatal(err)
					} else if n2.Before(next) {
						next = n2
					}
				}
				if z.Serial != versions[len(versions)-1].z.Serial {
					versions = append(versions, version{now, z})
					checkLDNS(t, ldns, z, parent[len(parent)-1].set, now)
				}
				for tag, k := range cur.keys {
					if !tags[tag] {
						tags[tag] = true
						if k.Flags&1 == 0 && len(tags) > 2 {
							zskRolls++
						}
					}
				}
				from := now.Add(-window)
				cached := live(versions, func(v version) time.Time { return v.at }, from)
				dss := live(parent, func(d dsSet) time.Time { return d.at }, from)
				for _, y := range cached {
					old := parse(t, y.z)
					for k, set := range cur.sets {
						if len(cur.sigs[k]) == 0 {
							continue // unsigned (glue, delegation NS)
						}
						if !signedBy(cur.sigs[k], set, old.keys, nil, now, true) {
							t.Fatalf("at %v: %s of version %d has no valid signature by a key of cached DNSKEY RRset of version %d", now, k, z.Serial, y.z.Serial)
						}
					}
					for k, set := range old.sets {
						if len(old.sigs[k]) == 0 {
							continue
						}
						if !signedBy(old.sigs[k], set, cur.keys, nil, now, false) {
							t.Fatalf("at %v: cached %s of version %d has no signature by a key of the current DNSKEY RRset (version %d)", now, k, y.z.Serial, z.Serial)
						}
					}
					for _, d := range dss {
						if !signedBy(old.sigs["example.com. DNSKEY"], old.sets["example.com. DNSKEY"], old.keys, d.set, now, false) {
							t.Fatalf("at %v: DNSKEY RRset of version %d not signed by a key with a DS in the parent's set of %v: %v", now, y.z.Serial, d.at, d.set)
						}
					}
				}
				if !next.After(now) || next.Sub(now) > time.Hour {
					next = now.Add(time.Hour)
				}
				c.set(next)
			}
			wantK := 2
			if p.CSK {
				wantK = 3
			}
			if kskRolls < wantK-1 {
				t.Errorf("%d KSK/CSK rollovers in 8 days", kskRolls)
			}
			if !p.CSK && zskRolls < 3 {
				t.Errorf("%d ZSK rollovers in 8 days", zskRolls)
			}
			if len(versions) < 10 {
				t.Errorf("%d versions", len(versions))
			}
			t.Logf("%s: %d versions, %d KSK/CSK and %d ZSK rollovers, %d keys in all, DS sets %d", name, len(versions), kskRolls, zskRolls, len(tags), len(parent))
		})
	}
}

// checkLDNS runs ldns-verify-zone at now with the parent's DS as trust
// anchor.
func checkLDNS(t *testing.T, ldns string, z *zone.Zone, ds []string, now time.Time) {
	t.Helper()
	dir := t.TempDir()
	zf := filepath.Join(dir, "zone")
	if err := os.WriteFile(zf, []byte(text(t, z)), 0o644); err != nil {
		t.Fatal(err)
	}
	var anchors strings.Builder
	for _, d := range ds {
		anchors.WriteString("example.com. 3600 IN DS " + d + "\n")
	}
	af := filepath.Join(dir, "ds")
	if err := os.WriteFile(af, []byte(anchors.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(t.Context(), ldns, "-V", "1", "-t", now.UTC().Format("20060102150405"), "-k", af, zf).CombinedOutput()
	if err != nil {
		t.Fatalf("at %v: ldns-verify-zone (DS %v): %v\n%s\n%s", now, ds, err, out, text(t, z))
	}
}

// algSigned checks, for a validating resolver that holds the RRsets of
// version x and the DNSKEY RRset of version y (both may be cached at once),
// that every signed RRset of x has a valid signature of every algorithm of
// y's DNSKEY RRset by a key of it (RFC 4035 §2.2, RFC 6840 §5.11).
func algSigned(x, y parsed) error {
	algs := map[uint8]bool{}
	for _, k := range y.keys {
		algs[k.Algorithm] = true
	}
	for k, set := range x.sets {
		if len(x.sigs[k]) == 0 {
			continue // unsigned (glue, delegation NS)
		}
		for alg := range algs {
			ok := false
			for _, sig := range x.sigs[k] {
				if key := y.keys[sig.KeyTag]; sig.Algorithm == alg && key != nil && key.Algorithm == alg && sig.Verify(key, set) == nil {
					ok = true
					break
				}
			}
			if !ok {
				return fmt.Errorf("%s has no valid signature of algorithm %d, which the DNSKEY RRset has", k, alg)
			}
		}
	}
	return nil
}

// dsAlgs checks that a DNSKEY RRset has a key of every algorithm of a DS
// RRset ("tag alg digest-type digest").
func dsAlgs(y parsed, ds []string) error {
	for _, d := range ds {
		var tag, alg int
		if _, err := fmt.Sscanf(d, "%d %d", &tag, &alg); err != nil {
			return err
		}
		found := false
		for _, k := range y.keys {
			found = found || int(k.Algorithm) == alg
		}
		if !found {
			return fmt.Errorf("the DS RRset %v has algorithm %d, which the DNSKEY RRset lacks", ds, alg)
		}
	}
	return nil
}

// TestAlgorithmRollover changes the algorithm of a signed zone's policy
// (ECDSAP256SHA256 to ED25519 with a CSK and NSEC; RSASHA256 to
// ECDSAP256SHA256 with a KSK and a ZSK and NSEC3) and steps a settable
// clock, close to the real time so that dnssec-verify (which has no time
// option) checks the signatures too, through the algorithm rollover the
// maintenance runs, the parent taking its DS RRset from the zone's CDS
// and the operator confirming it with ds-seen. Every new version passes
// ldns-verify-zone (at the clock's time, the parent's DS as trust
// anchor), kzonecheck -d on and dnssec-verify; at every step, for every
// pair of versions and DS RRsets a cache may hold together, each RRset is
// signed by every algorithm of the DNSKEY RRset, the DNSKEY RRset has a
// key of every algorithm of the DS RRset and is signed by a key whose DS
// the parent has. The status names the five steps in turn, and the
// rollover ends with only the new algorithm's keys and DS.
func TestAlgorithmRollover(t *testing.T) {
	ldns := testkit.RequireTool(t, "ldns-verify-zone", "ldnsutils")
	base := sign.DefaultPolicy()
	base.DNSKEYTTL, base.ZoneMaxTTL, base.PropagationDelay = time.Hour, time.Hour, 5*time.Minute
	base.SignatureValidity, base.SignatureRefresh, base.SignatureJitter = 4*24*time.Hour, 26*time.Hour, time.Hour
	// The clock runs ahead of the real time by up to a few hours: the
	// signatures' inception is put far enough back for dnssec-verify.
	base.InceptionOffset = 12 * time.Hour
	base.CDS = true
	ecCSK := base
	edCSK := base
	edCSK.Algorithm = sign.ED25519
	rsaSplit := base
	rsaSplit.Algorithm, rsaSplit.CSK, rsaSplit.NSEC3 = sign.RSASHA256, false, true
	ecSplit := rsaSplit
	ecSplit.Algorithm = sign.ECDSAP256SHA256
	for _, c := range []struct {
		name     string
		from, to sign.Policy
	}{
		{"csk ECDSAP256SHA256 to ED25519", ecCSK, edCSK},
		{"ksk+zsk/nsec3 RSASHA256 to ECDSAP256SHA256", rsaSplit, ecSplit},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := t.Context()
			clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
			sl, _ := sealer(t)
			s, _ := newStore(t, store.WithSealer(sl), store.WithClock(clk.now))
			if _, err := s.CreateZone(ctx, "example.com.", signedBase(t), ""); err != nil {
				t.Fatal(err)
			}
			if _, err := s.EnableSigning(ctx, "example.com.", "from", c.from); err != nil {
				t.Fatal(err)
			}
			z, _ := s.Zone(ctx, "example.com.")
			start := clk.now()
			versions := []version{{start, z}}
			parent := []dsSet{{start, parse(t, z).cds}}
			clk.set(start.Add(10 * time.Minute))
			st, err := s.EnableSigning(ctx, "example.com.", "to", c.to)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(st.Rollover, "1/5") {
				t.Fatalf("status after the algorithm change: %q", st.Rollover)
			}
			window := c.to.PropagationDelay + max(c.to.DNSKEYTTL, c.to.ZoneMaxTTL) - time.Second
			stages := map[string]bool{}
			checked := 0
			for c2 := 0; ; c2++ {
				if c2 > 500 {
					t.Fatalf("the rollover has not ended after 500 steps: %q", st.Rollover)
				}
				next, err := s.MaintainSigning(ctx)
				if err != nil {
					t.Fatal(err)
				}
				now := clk.now()
				z, _ := s.Zone(ctx, "example.com.")
				cur := parse(t, z)
				if last := parent[len(parent)-1].set; !slices.Equal(last, cur.cds) && len(cur.cds) > 0 {
					parent = append(parent, dsSet{now, cur.cds})
				}
				if st, err = s.Signing(ctx, "example.com."); err != nil {
					t.Fatal(err)
				}
				if i := strings.Index(st.Rollover, "/5 "); i > 0 {
					stages[st.Rollover[i-1:i+2]] = true
				}
				for _, k := range st.Keys {
					if strings.Contains(k.State, "waiting for its DS") && slices.ContainsFunc(parent[len(parent)-1].set, func(d string) bool { return strings.HasPrefix(d, fmt.Sprint(k.Tag)+" ") }) {
						if st, err = s.DSSeen(ctx, "example.com.", k.Tag); err != nil {
							t.Fatal(err)
						}
						if n2, err := s.MaintainSigning(ctx); err != nil {
							t.Fatal(err)
						} else if n2.Before(next) {
							next = n2
						}
						z, _ = s.Zone(ctx, "example.com.")
						cur = parse(t, z)
					}
				}
				if z.Serial != versions[len(versions)-1].z.Serial {
					versions = append(versions, version{now, z})
					checkLDNS(t, ldns, z, parent[len(parent)-1].set, now)
					if fs := signtest.Failures(t, z); len(fs) > 0 {
						t.Fatalf("at %v (%s): %v", now, st.Rollover, fs)
					}
					checked++
				}
				from := now.Add(-window)
				cached := live(versions, func(v version) time.Time { return v.at }, from)
				dss := live(parent, func(d dsSet) time.Time { return d.at }, from)
				for _, y := range cached {
					py := parse(t, y.z)
					for _, x := range cached {
						if err := algSigned(parse(t, x.z), py); err != nil {
							t.Fatalf("at %v (%s): RRsets of version %d, DNSKEY RRset of version %d: %v", now, st.Rollover, x.z.Serial, y.z.Serial, err)
						}
					}
					for _, d := range dss {
						if err := dsAlgs(py, d.set); err != nil {
							t.Fatalf("at %v (%s): DNSKEY RRset of version %d: %v", now, st.Rollover, y.z.Serial, err)
						}
						if !signedBy(py.sigs["example.com. DNSKEY"], py.sets["example.com. DNSKEY"], py.keys, d.set, now, false) {
							t.Fatalf("at %v (%s): DNSKEY RRset of version %d not signed by a key with a DS in the parent's set of %v: %v", now, st.Rollover, y.z.Serial, d.at, d.set)
						}
					}
				}
				done := true
				for _, k := range cur.keys {
					done = done && k.Algorithm == uint8(c.to.Algorithm)
				}
				for _, sigs := range cur.sigs {
					for _, sig := range sigs {
						done = done && sig.Algorithm == uint8(c.to.Algorithm)
					}
				}
				if done && st.Rollover == "" {
					break
				}
				if !next.After(now) || next.Sub(now) > 20*time.Minute {
					next = now.Add(20 * time.Minute)
				}
				clk.set(next)
			}
			for _, want := range []string{"1/5", "2/5", "3/5", "4/5", "5/5"} {
				if !stages[want] {
					t.Errorf("the status never showed step %s of the rollover (saw %v)", want, stages)
				}
			}
			last := parent[len(parent)-1].set
			if len(last) != 1 || !strings.Contains(last[0], fmt.Sprintf(" %d 2 ", c.to.Algorithm)) {
				t.Errorf("the parent's DS after the rollover: %v", last)
			}
			t.Logf("%s: %d versions checked by the three verifiers over %v, DS sets %d", c.name, checked, clk.now().Sub(start), len(parent))
		})
	}
}
