//go:build linux

package dnssec

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/api"
)

// zoneView is the DNSSEC view of one version of a transferred zone.
type zoneView struct {
	keys map[uint16]*dns.DNSKEY
	sets map[string][]dns.RR
	sigs map[string][]*dns.RRSIG
	cds  []string // "tag alg digest-type digest"
}

func viewOf(rrs []dns.RR) zoneView {
	v := zoneView{keys: map[uint16]*dns.DNSKEY{}, sets: map[string][]dns.RR{}, sigs: map[string][]*dns.RRSIG{}}
	for _, rr := range rrs {
		switch x := rr.(type) {
		case *dns.DNSKEY:
			v.keys[x.KeyTag()] = x
		case *dns.CDS:
			v.cds = append(v.cds, fmt.Sprintf("%d %d %d %s", x.KeyTag, x.Algorithm, x.DigestType, strings.ToUpper(x.Digest)))
		case *dns.RRSIG:
			k := strings.ToLower(x.Hdr.Name) + " " + dns.TypeToString[x.TypeCovered]
			v.sigs[k] = append(v.sigs[k], x)
			continue
		}
		k := strings.ToLower(rr.Header().Name) + " " + dns.TypeToString[rr.Header().Rrtype]
		v.sets[k] = append(v.sets[k], rr)
	}
	slices.Sort(v.cds)
	return v
}

// validates checks what a validating resolver needs of a version, the
// parent's DS RRset ds beside it: the DNSKEY RRset has a key of every
// algorithm of the DS RRset and is signed by a key with a DS in it, and
// every signed RRset has a valid signature of every algorithm of the
// DNSKEY RRset (RFC 4035 §2.2).
func (v zoneView) validates(ds []string) error {
	algs := map[uint8]bool{}
	for _, k := range v.keys {
		algs[k.Algorithm] = true
	}
	anchored := false
	for _, d := range ds {
		var tag, alg int
		if _, err := fmt.Sscanf(d, "%d %d", &tag, &alg); err != nil {
			return err
		}
		if !algs[uint8(alg)] {
			return fmt.Errorf("the parent's DS %s has algorithm %d, which the DNSKEY RRset lacks", d, alg)
		}
		for _, sig := range v.sigs[zoneName+" DNSKEY"] {
			if k := v.keys[sig.KeyTag]; k != nil && int(sig.KeyTag) == tag && sig.Verify(k, v.sets[zoneName+" DNSKEY"]) == nil {
				anchored = true
			}
		}
	}
	if !anchored {
		return fmt.Errorf("the DNSKEY RRset is not signed by a key with a DS in the parent's %v", ds)
	}
	for name, set := range v.sets {
		if len(v.sigs[name]) == 0 {
			continue
		}
		for alg := range algs {
			if !slices.ContainsFunc(v.sigs[name], func(sig *dns.RRSIG) bool {
				k := v.keys[sig.KeyTag]
				return sig.Algorithm == alg && k != nil && k.Algorithm == alg && sig.Verify(k, set) == nil
			}) {
				return fmt.Errorf("%s has no valid signature of algorithm %d, which the DNSKEY RRset has", name, alg)
			}
		}
	}
	return nil
}

// TestAlgorithmRollover: the real control plane runs an algorithm
// rollover (ECDSAP256SHA256 to ED25519, KSK+ZSK) started by a PUT of the
// zone's policy with the new algorithm, in accelerated time (TTLs of
// seconds), the test playing the parent (its DS RRset follows the CDS) and
// the operator (ds-seen through the API). Every version on the way is
// served by the node exactly as signed and passes ldns-verify-zone,
// kzonecheck and dnssec-verify; each version validates against the DS
// RRsets before and after it; the status names each step; at the end only
// the new algorithm's keys, signatures and DS are left.
func TestAlgorithmRollover(t *testing.T) {
	p := startPlane(t)
	ctx := t.Context()
	recs := []string{
		"@ 2 IN SOA ns1 hostmaster 1 7200 3600 1209600 2",
		"@ 2 IN NS ns1",
		"ns1 2 IN A 192.0.2.1",
		"www 2 IN A 192.0.2.10",
		"sub 2 IN NS ns.sub",
		"ns.sub 2 IN A 192.0.2.53",
	}
	if _, err := p.api.CreateZone(ctx, api.CreateZone{Name: zoneName, Records: recs}); err != nil {
		t.Fatal(err)
	}
	settings := `{"algorithm":"%s","csk":false,"dnskey_ttl":"2s","zone_max_ttl":"2s","propagation_delay":"1s","cds":true}`
	st, err := p.api.SetDNSSEC(ctx, zoneName, api.PutDNSSEC{Enabled: true, Settings: fmt.Appendf(nil, settings, "ECDSAP256SHA256")})
	if err != nil {
		t.Fatal(err)
	}
	p.verify(t, "signed with ECDSAP256SHA256", st.Serial)
	parent := viewOf(p.axfr(t, zoneName)).cds
	if len(parent) != 1 {
		t.Fatalf("CDS after enabling: %v", parent)
	}
	st, err = p.api.SetDNSSEC(ctx, zoneName, api.PutDNSSEC{Enabled: true, Settings: fmt.Appendf(nil, settings, "ED25519")})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st.Rollover, "algorithm rollover ECDSAP256SHA256 to ED25519: 1/5") {
		t.Fatalf("status after the algorithm change: %+v", st)
	}
	// A resolver may hold the parent's former DS RRset for its TTL (taken
	// as zone_max_ttl, 2s) and the propagation delay (1s) after a change.
	serial, prevDS, changed := uint32(0), parent, time.Time{}
	const dsCache = 3 * time.Second
	stages := map[string]bool{}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("the rollover has not ended in 5 minutes: %q", st.Rollover)
		}
		if st, err = p.api.DNSSEC(ctx, zoneName); err != nil {
			t.Fatal(err)
		}
		if i := strings.Index(st.Rollover, "/5 "); i > 0 {
			stages[st.Rollover[i-1:i+2]] = true
		}
		rrs := p.axfr(t, zoneName)
		v := viewOf(rrs)
		if len(v.cds) > 0 && !slices.Equal(v.cds, parent) {
			prevDS, parent, changed = parent, v.cds, time.Now()
		}
		if soa := rrs[0].(*dns.SOA); soa.Serial != serial {
			serial = soa.Serial
			p.verify(t, fmt.Sprintf("serial %d (%s)", serial, st.Rollover), serial)
		}
		dss := [][]string{parent}
		if time.Since(changed) < dsCache {
			dss = append(dss, prevDS)
		}
		for _, ds := range dss {
			if err := v.validates(ds); err != nil {
				t.Fatalf("serial %d (%s): %v", serial, st.Rollover, err)
			}
		}
		for _, k := range st.Keys {
			if strings.Contains(k.State, "waiting for its DS") && slices.ContainsFunc(parent, func(d string) bool { return strings.HasPrefix(d, fmt.Sprint(k.Tag)+" ") }) {
				if st, err = p.api.DSSeen(ctx, zoneName, k.Tag); err != nil {
					t.Fatal(err)
				}
			}
		}
		done := st.Rollover == ""
		for _, k := range v.keys {
			done = done && k.Algorithm == dns.ED25519
		}
		for _, sigs := range v.sigs {
			for _, sig := range sigs {
				done = done && sig.Algorithm == dns.ED25519
			}
		}
		if done {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	for _, want := range []string{"1/5", "2/5", "3/5", "4/5", "5/5"} {
		if !stages[want] {
			t.Errorf("the status never showed step %s (saw %v)", want, stages)
		}
	}
	if len(parent) != 1 || !strings.Contains(parent[0], " 15 2 ") {
		t.Errorf("the parent's DS after the rollover: %v", parent)
	}
}
