package store

import (
	"encoding/hex"
	"fmt"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/steer"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// Pools (issue #14) are records of the private-use type steer.TypePool,
// one per steered type at an owner. The store keeps them with the zone,
// so they replicate with it, and holds them to what a node can serve: each
// record a valid pool, one pool per owner and steered type. In a zone the
// store signs (issue #16), every answer a pool can give is signed with the
// change that writes the pool (sign.Signer.PoolChange), into
// steer.TypePoolSig records the store makes and nobody writes; a pool with
// more answers than can be signed (steer.MaxVariants) is refused there.
// Pools in text signed elsewhere are refused: nothing would sign their
// answers.

// poolRdata is the rdata of a TypePool record.
func poolRdata(rr dns.RR) ([]byte, error) {
	u, ok := rr.(*dns.RFC3597)
	if !ok {
		return nil, fmt.Errorf("record of type %T", rr)
	}
	rd, err := hex.DecodeString(u.Rdata)
	if err != nil {
		return nil, fmt.Errorf("rdata: %w", err)
	}
	return rd, nil
}

// checkPools checks the pool records among rrs, labelled by label(i).
func checkPools(rrs []dns.RR, label func(i int) string) error {
	type key struct {
		owner string
		t     uint16
	}
	seen := map[key]string{}
	for i, rr := range rrs {
		if rr.Header().Rrtype != steer.TypePool {
			continue
		}
		rd, err := poolRdata(rr)
		if err != nil {
			return invalidf("%s: %s pool: %v", label(i), rr.Header().Name, err)
		}
		t, _, err := steer.Decode(rd)
		if err != nil {
			return invalidf("%s: %s pool: %v", label(i), rr.Header().Name, err)
		}
		k := key{dns.CanonicalName(rr.Header().Name), t}
		if prev, dup := seen[k]; dup {
			return invalidf("%s: %s: a second pool for type %s (the first is %s)", label(i), k.owner, typeString(t), prev)
		}
		seen[k] = label(i)
	}
	return nil
}

// checkPoolRecords is checkPools over zone records, refusing pools in
// signed zone text (signed: the DNSSEC types it holds).
func checkPoolRecords(zname string, recs []zone.Record, signed string) error {
	rrs := make([]dns.RR, len(recs))
	pools := 0
	for i, r := range recs {
		rrs[i] = r.RR
		switch r.RR.Header().Rrtype {
		case steer.TypePool:
			pools++
		case steer.TypePoolSig:
			return signedf("zone %s: %s: a %s record holds the signature of a steered answer, which the control plane makes "+
				"when it signs the zone: it cannot be imported (import the zone without them)", zname, r.Pos(), typeString(steer.TypePoolSig))
		}
	}
	if pools == 0 {
		return nil
	}
	if signed != "" {
		return signedf("zone %s: %d pool records in zone text signed elsewhere (it has %s records): their steered answers would not validate; "+
			"import the zone unsigned and let the control plane sign it (anycastctl dnssec enable), or without its pools", zname, pools, signed)
	}
	return checkPools(rrs, func(i int) string { return recs[i].Pos() })
}
