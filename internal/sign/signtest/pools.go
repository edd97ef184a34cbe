package signtest

import (
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/steer"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// VerifyPools verifies, for every pool of z, that each answer it can
// give has a signature by each ZSK that verifies against the zone's
// DNSKEY RRset, and that the owner's NSEC or NSEC3 bitmap lists the
// steered type. It returns how many answers it checked.
func VerifyPools(t *testing.T, z *zone.Zone, now time.Time) int {
	t.Helper()
	keys := map[uint16]*dns.DNSKEY{}
	ks, err := z.Apex.Get(dns.TypeDNSKEY).RRs(z.Origin)
	if err != nil {
		t.Fatal(err)
	}
	for _, rr := range ks {
		if k, ok := rr.(*dns.DNSKEY); ok {
			keys[k.KeyTag()] = k
		}
	}
	// The keys that sign now are those that sign the SOA: each answer
	// must be signed by each of them, by no other.
	signing := map[uint16]bool{}
	for rd := range z.Apex.Get(dns.TypeSOA).Sigs() {
		signing[uint16(rd[16])<<8|uint16(rd[17])] = true
	}
	checked := 0
	z.Nodes(func(n *zone.Node) {
		pools := n.Get(steer.TypePool)
		if pools == nil {
			if n.Get(steer.TypePoolSig) != nil {
				t.Errorf("%s: pool signatures without a pool", zone.NameString(n.Name))
			}
			return
		}
		owner := zone.NameString(n.Name)
		sigs := n.Get(steer.TypePoolSig)
		if sigs == nil {
			t.Errorf("%s: pool without signatures", owner)
			return
		}
		for rd := range pools.All() {
			typ, p, err := steer.Decode(rd)
			if err != nil {
				t.Fatal(err)
			}
			masks, err := steer.Variants(typ, &p)
			if err != nil {
				t.Fatal(err)
			}
			h := steer.RecordHash(rd)
			for _, m := range masks {
				rt, rds, err := steer.VariantRRset(typ, &p, m)
				if err != nil {
					t.Fatal(err)
				}
				set := zone.NewRRset(rt, p.TTL, rds...)
				rrs, err := set.RRs(owner)
				if err != nil {
					t.Fatal(err)
				}
				found := 0
				for srd := range sigs.All() {
					sig := steer.MatchPoolSig(srd, typ, h, m)
					if sig == nil {
						continue
					}
					rs, err := unpackSig(owner, p.TTL, sig)
					if err != nil {
						t.Fatal(err)
					}
					if err := rs.Verify(keys[rs.KeyTag], rrs); err != nil {
						t.Errorf("%s %s answer %b: signature by %d: %v", owner, dns.TypeToString[typ], m, rs.KeyTag, err)
					}
					if !signing[rs.KeyTag] {
						t.Errorf("%s answer %b: signed by %d, which does not sign the SOA", owner, m, rs.KeyTag)
					}
					if !rs.ValidityPeriod(now) {
						t.Errorf("%s answer %b: signature not valid now", owner, m)
					}
					found++
				}
				if found != len(signing) {
					t.Errorf("%s %s answer %b: %d signatures, want %d", owner, dns.TypeToString[typ], m, found, len(signing))
				}
				checked++
			}
			var bm []uint16
			if z.NSEC3 == nil {
				nsec, err := n.Get(dns.TypeNSEC).RRs(owner)
				if err != nil {
					t.Fatal(err)
				}
				bm = nsec[0].(*dns.NSEC).TypeBitMap
			} else {
				match, _ := z.NSEC3Lookup(n.Name)
				nsec3, err := match.Get(dns.TypeNSEC3).RRs(zone.NameString(match.Name))
				if err != nil {
					t.Fatal(err)
				}
				bm = nsec3[0].(*dns.NSEC3).TypeBitMap
			}
			if !containsType(bm, typ) {
				t.Errorf("%s: bitmap %v without the steered %s", owner, bm, dns.TypeToString[typ])
			}
		}
	})
	return checked
}

func containsType(ts []uint16, t uint16) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

func unpackSig(owner string, ttl uint32, rd []byte) (*dns.RRSIG, error) {
	set := zone.NewRRset(dns.TypeRRSIG, ttl, rd)
	rrs, err := set.RRs(owner)
	if err != nil {
		return nil, err
	}
	return rrs[0].(*dns.RRSIG), nil
}
