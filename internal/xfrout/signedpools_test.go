package xfrout

import (
	"net/netip"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/sign"
	"github.com/anycastdns/anycastdns/internal/steer"
)

// TestPoolsToEveryPeerWhenSigned: in a zone the control plane signs, the
// pool records are signed data listed in the NSEC bitmaps, so an AXFR to a
// third party carries them (and their answers' signatures), or its copy
// would not verify.
func TestPoolsToEveryPeerWhenSigned(t *testing.T) {
	z := makeZone(t, origin, 1, 3, poolRR(t, "192.0.2.1"))
	p := sign.DefaultPolicy()
	k, err := sign.GenerateKey(origin, sign.CSK, p, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s, err := sign.New(p, origin, []*sign.Key{k})
	if err != nil {
		t.Fatal(err)
	}
	d, a, err := s.PoolSigs(z, nil, time.Now(), 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if z, err = z.Apply(d, a); err != nil {
		t.Fatal(err)
	}
	if z, err = s.Sign(z, time.Now()); err != nil {
		t.Fatal(err)
	}
	src := newMemSource()
	src.set(t, z)
	cfg := aclConfig()
	cfg.NodeKeys = []string{"KEY-A"}
	cfg.AllowTransfer = append(cfg.AllowTransfer, ACL{Prefix: netip.MustParsePrefix("127.0.0.1/32")})
	cfg.MessageSize = 4096
	_, addr := startServer(t, cfg, src)
	resp, err := exchangeTCPFrom(t, netip.MustParseAddr("127.0.0.1"), addr, axfrQuery(origin), nil)
	if err != nil {
		t.Fatal(err)
	}
	rrs := resp.records()
	if got := pools(rrs); got != 1 {
		t.Errorf("unsigned AXFR of a signed zone: %d pool records, want 1", got)
	}
	sigs := 0
	for _, rr := range rrs {
		if rr.Header().Rrtype == steer.TypePoolSig {
			sigs++
		}
	}
	if sigs != 2 {
		t.Errorf("unsigned AXFR of a signed zone: %d TYPE65321 records, want 2 (the answer's signature and the fallback mark)", sigs)
	}
}
