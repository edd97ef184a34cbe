package sign

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/sign/signtest"
	"github.com/anycastdns/anycastdns/internal/steer"
	"github.com/anycastdns/anycastdns/internal/zone"
)

func poolRR(t testing.TB, owner string, typ uint16, p steer.Pool) zone.RR {
	t.Helper()
	rd, err := steer.Encode(typ, p)
	if err != nil {
		t.Fatal(err)
	}
	return zone.RR{Name: mustWire(t, owner), Type: steer.TypePool, TTL: p.TTL, Rdata: rd}
}

func addrs(ss ...string) []steer.Endpoint {
	var out []steer.Endpoint
	for _, s := range ss {
		e := steer.Endpoint{}
		if a, err := netip.ParseAddr(s); err == nil {
			e.Address = a
		} else {
			e.Name = s
		}
		out = append(out, e)
	}
	return out
}

// testPools are a failover pool, a weighted one, one whose first endpoint
// is a name (a CNAME answer), a pool beside static records of its type.
func testPools(t testing.TB) []zone.RR {
	return []zone.RR{
		poolRR(t, "svc.example.com.", dns.TypeA, steer.Pool{TTL: 20, Policy: []string{"up", "first-n"}, Endpoints: addrs("192.0.2.10", "192.0.2.11", "192.0.2.12")}),
		poolRR(t, "w.example.com.", dns.TypeAAAA, steer.Pool{TTL: 30, Policy: []string{"up", "weighted"}, Endpoints: addrs("2001:db8::10", "2001:db8::11")}),
		poolRR(t, "alias.example.com.", dns.TypeA, steer.Pool{TTL: 40, Policy: []string{"up", "first-n"}, Endpoints: addrs("edge.example.net.", "192.0.2.20")}),
		poolRR(t, "web.example.com.", dns.TypeA, steer.Pool{TTL: 60, Policy: []string{"up", "first-n"}, FirstN: 2, Endpoints: addrs("192.0.2.30", "192.0.2.31", "192.0.2.32")}),
	}
}

// signWithPools signs z whole with its pools' answers.
func signWithPools(t *testing.T, s *Signer, z *zone.Zone, now time.Time) *zone.Zone {
	t.Helper()
	d, a, err := s.PoolSigs(z, nil, now, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	z1, err := z.Apply(d, a)
	if err != nil {
		t.Fatal(err)
	}
	sz, err := s.Sign(z1, now)
	if err != nil {
		t.Fatal(err)
	}
	return sz
}

func TestPoolSigsVerify(t *testing.T) {
	for name, p := range policies() {
		t.Run(name, func(t *testing.T) {
			z, err := loadZone(t, "example.com.", "testdata/example.com.zone").Apply(nil, testPools(t))
			if err != nil {
				t.Fatal(err)
			}
			s := newSigner(t, p, "example.com.")
			now := time.Now()
			sz := signWithPools(t, s, z, now)
			checkSigned(t, s, sz, now)
			// 3 failover answers, 2 weighted, CNAME + address, 6 of
			// the first two of three.
			if n := signtest.VerifyPools(t, sz, now); n != 3+2+2+6 {
				t.Errorf("%d answers checked, want 13", n)
			}
			// Each pool's name has a signed RRset of its type: the
			// fallback answer, or (web) the operator's static one; all
			// three verifiers accept the zone.
			checkFallbacks(t, sz, map[string][]string{
				"svc.example.com.":   {"svc.example.com.\t20\tIN\tA\t192.0.2.10"},
				"w.example.com.":     {"w.example.com.\t30\tIN\tAAAA\t2001:db8::10", "w.example.com.\t30\tIN\tAAAA\t2001:db8::11"},
				"alias.example.com.": {"alias.example.com.\t40\tIN\tA\t192.0.2.20"},
				"web.example.com.":   {"web.example.com.\t3600\tIN\tA\t192.0.2.3"},
			}, "web.example.com.")
			signtest.Verify(t, sz)
			static, err := z.Apply(nil, []zone.RR{
				wireOf(t, "svc.example.com. 20 IN A 192.0.2.99"),
				wireOf(t, "w.example.com. 30 IN AAAA 2001:db8::99"),
				wireOf(t, "alias.example.com. 40 IN A 192.0.2.99"),
			})
			if err != nil {
				t.Fatal(err)
			}
			ssz := signWithPools(t, s, static, now)
			checkFallbacks(t, ssz, map[string][]string{
				"svc.example.com.":   {"svc.example.com.\t20\tIN\tA\t192.0.2.99"},
				"w.example.com.":     {"w.example.com.\t30\tIN\tAAAA\t2001:db8::99"},
				"alias.example.com.": {"alias.example.com.\t40\tIN\tA\t192.0.2.99"},
			}, "svc.example.com.", "w.example.com.", "alias.example.com.")
			signtest.Verify(t, ssz)
			// Nothing changes while the signatures are good.
			if d, a, err := s.PoolSigs(sz, nil, now.Add(time.Hour), 0, false); err != nil || len(d)+len(a) != 0 {
				t.Errorf("PoolSigs of a freshly signed zone: %d deleted, %d added, %v", len(d), len(a), err)
			}
		})
	}
}

// TestPoolSigsFollowChanges: an edited pool, a new one and a deleted one
// are signed again by Update with PoolSigs of the touched names, and the
// result is what signing the whole zone gives.
func TestPoolSigsFollowChanges(t *testing.T) {
	for _, nsec3 := range []bool{false, true} {
		p := DefaultPolicy()
		p.NSEC3 = nsec3
		z, err := loadZone(t, "example.com.", "testdata/example.com.zone").Apply(nil, testPools(t))
		if err != nil {
			t.Fatal(err)
		}
		s := newSigner(t, p, "example.com.")
		now := time.Now()
		sz := signWithPools(t, s, z, now)
		old := testPools(t)
		del := []zone.RR{old[0], old[1]} // svc edited, w deleted
		add := []zone.RR{
			poolRR(t, "svc.example.com.", dns.TypeA, steer.Pool{TTL: 20, Policy: []string{"up", "first-n"}, Endpoints: addrs("192.0.2.10", "192.0.2.13")}),
			poolRR(t, "new.deep.example.com.", dns.TypeA, steer.Pool{TTL: 20, Policy: []string{"weighted"}, Endpoints: addrs("192.0.2.40", "192.0.2.41")}),
		}
		soa := sz.Apex.Get(dns.TypeSOA)
		oldSOA := zone.RR{Name: sz.OriginWire(), Type: dns.TypeSOA, TTL: soa.TTL, Rdata: soa.First()}
		newSOA := oldSOA
		newSOA.Rdata = append([]byte(nil), oldSOA.Rdata...)
		newSOA.Rdata[len(newSOA.Rdata)-20]++
		del, add = append(del, oldSOA), append(add, newSOA)
		later := now.Add(time.Minute)
		pd, pa, err := s.PoolChange(sz, del, add, later)
		if err != nil {
			t.Fatal(err)
		}
		nz, _, _, err := s.Update(sz, append(del, pd...), append(add, pa...), later)
		if err != nil {
			t.Fatal(err)
		}
		checkSigned(t, s, nz, later)
		if n := signtest.VerifyPools(t, nz, later); n != 2+2+2+6 {
			t.Errorf("nsec3=%v: %d answers checked, want 12", nsec3, n)
		}
		if w := nz.Lookup(mustWire(t, "w.example.com.")); w != nil {
			t.Errorf("nsec3=%v: the deleted pool's name stays with %d RRsets", nsec3, len(w.Sets))
		}
		unsigned, err := loadZone(t, "example.com.", "testdata/example.com.zone").Apply(nil, append(testPools(t)[2:], add[:2]...))
		if err != nil {
			t.Fatal(err)
		}
		whole := signWithPools(t, s, unsigned, later)
		if d := diffModuloSigs(t, nz, whole); strings.Contains(d, "nsec") {
			t.Errorf("nsec3=%v: chain differs from whole signing:\n%s", nsec3, d)
		}
	}
}

// TestPoolSigsRefresh: the answers' signatures come due with their
// TypePoolSig RRset's, and so does NextRefresh; a new ZSK signs them all.
func TestPoolSigsRefresh(t *testing.T) {
	p := DefaultPolicy()
	z, err := loadZone(t, "example.com.", "testdata/example.com.zone").Apply(nil, testPools(t))
	if err != nil {
		t.Fatal(err)
	}
	s := newSigner(t, p, "example.com.")
	t0 := time.Now().Truncate(time.Second)
	sz := signWithPools(t, s, z, t0)
	svc := sz.Lookup(mustWire(t, "svc.example.com."))
	wrapper, _ := svc.Get(steer.TypePoolSig).SigHead()
	_, _, _, sig, _ := steer.ParsePoolSig(svc.Get(steer.TypePoolSig).First())
	if we, ae := sigTime(wrapper[8:12], t0), sigTime(sig[8:12], t0); !we.Equal(ae) {
		t.Fatalf("answer signature expires %v, its RRset's signature %v", ae, we)
	}
	due := s.NextRefresh(sz, t0)
	if d, a, err := s.PoolSigs(sz, nil, due.Add(-2*time.Hour), 0, false); err != nil || len(d)+len(a) != 0 {
		t.Fatalf("before any is due: %d deleted, %d added, %v", len(d), len(a), err)
	}
	late := t0.Add(p.SignatureValidity - p.SignatureRefresh + time.Second)
	rz, _, _, err := s.Refresh(sz, late)
	if err != nil {
		t.Fatal(err)
	}
	d, a, err := s.PoolSigs(rz, nil, late, 0, false)
	if err != nil || len(a) == 0 || len(d) != len(a) {
		t.Fatalf("all due: %d deleted, %d added, %v", len(d), len(a), err)
	}
	// Another ZSK: every answer is signed by it.
	k2, err := GenerateKey("example.com.", ZSK, p, t0)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := New(p, "example.com.", append(s.keys, k2))
	if err != nil {
		t.Fatal(err)
	}
	d, a, err = s2.PoolSigs(sz, nil, t0.Add(time.Minute), 0, false)
	if err != nil || len(a) != 2*len(d) {
		t.Fatalf("new ZSK: %d deleted, %d added, %v", len(d), len(a), err)
	}
}

func TestPoolSigsRefusesLargePools(t *testing.T) {
	var eps []string
	for i := range 9 {
		eps = append(eps, netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}).String())
	}
	z, err := loadZone(t, "example.com.", "testdata/example.com.zone").Apply(nil, []zone.RR{
		poolRR(t, "big.example.com.", dns.TypeA, steer.Pool{TTL: 20, Policy: []string{"up"}, Endpoints: addrs(eps...)}),
	})
	if err != nil {
		t.Fatal(err)
	}
	s := newSigner(t, DefaultPolicy(), "example.com.")
	_, _, err = s.PoolSigs(z, nil, time.Now(), 0, true)
	if !errors.Is(err, ErrPolicy) || !errors.Is(err, steer.ErrTooManyVariants) || !strings.Contains(err.Error(), "big.example.com.") {
		t.Fatalf("err = %v, want ErrPolicy and ErrTooManyVariants naming big.example.com.", err)
	}
}

func wireOf(t testing.TB, s string) zone.RR {
	t.Helper()
	r, err := zone.WireRR(mustRR(t, s))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// checkFallbacks checks that each name of want has an RRset of its
// pool's type that is one of want's records (the fallback answer, or
// the operator's records), marked as derived exactly when it is not the
// operator's (operators names those).
func checkFallbacks(t *testing.T, z *zone.Zone, want map[string][]string, operators ...string) {
	t.Helper()
	for owner, recs := range want {
		n := z.Lookup(mustWire(t, owner))
		if n == nil {
			t.Errorf("%s: gone", owner)
			continue
		}
		typ := steer.RdataType(n.Get(steer.TypePool).First())
		set := n.Get(typ)
		if set == nil {
			t.Errorf("%s: no %s RRset beside the pool", owner, typeName(typ))
			continue
		}
		rrs, err := set.RRs(owner)
		if err != nil {
			t.Fatal(err)
		}
		for _, rr := range rrs {
			if rr.Header().Rrtype == dns.TypeRRSIG {
				continue
			}
			if !slices.Contains(recs, rr.String()) {
				t.Errorf("%s: %s, want one of %q", owner, rr, recs)
			}
		}
		if set.SigLen() == 0 {
			t.Errorf("%s: %s RRset unsigned", owner, typeName(typ))
		}
		marked := false
		for rd := range n.Get(steer.TypePoolSig).All() {
			if mt, ok := steer.ParseFallbackMark(rd); ok && mt == typ {
				marked = true
			}
		}
		operator := slices.Contains(operators, owner)
		if marked == operator {
			t.Errorf("%s: marked as derived %v, operator's %v", owner, marked, operator)
		}
	}
}

// TestPoolFallbackFollowsChanges: a derived fallback RRset follows its
// pool's edits and goes with it; an operator who writes that type at the
// name takes it over (the derived records and the mark go), and one who
// deletes it gets the derived one back; a pool answering only CNAMEs is
// refused without a static RRset and accepted with one. The zone passes
// the three verifiers at each step.
func TestPoolFallbackFollowsChanges(t *testing.T) {
	for _, nsec3 := range []bool{false, true} {
		p := DefaultPolicy()
		p.NSEC3 = nsec3
		s := newSigner(t, p, "example.com.")
		now := time.Now()
		z, err := loadZone(t, "example.com.", "testdata/example.com.zone").Apply(nil, testPools(t)[:2])
		if err != nil {
			t.Fatal(err)
		}
		sz := signWithPools(t, s, z, now)
		step := func(what string, del, add []zone.RR, want map[string][]string, operators ...string) {
			t.Helper()
			soa := sz.Apex.Get(dns.TypeSOA)
			oldSOA := zone.RR{Name: sz.OriginWire(), Type: dns.TypeSOA, TTL: soa.TTL, Rdata: soa.First()}
			newSOA := oldSOA
			newSOA.Rdata = append([]byte(nil), oldSOA.Rdata...)
			newSOA.Rdata[len(newSOA.Rdata)-20]++
			del, add = append(del, oldSOA), append(add, newSOA)
			now = now.Add(time.Minute)
			pd, pa, err := s.PoolChange(sz, del, add, now)
			if err != nil {
				t.Fatalf("nsec3=%v %s: %v", nsec3, what, err)
			}
			if sz, _, _, err = s.Update(sz, append(del, pd...), append(add, pa...), now); err != nil {
				t.Fatalf("nsec3=%v %s: %v", nsec3, what, err)
			}
			checkFallbacks(t, sz, want, operators...)
			for _, f := range signtest.Failures(t, sz) {
				t.Errorf("nsec3=%v %s: %s", nsec3, what, f)
			}
		}
		svc := testPools(t)[0]
		svc2 := poolRR(t, "svc.example.com.", dns.TypeA, steer.Pool{TTL: 25, Policy: []string{"up", "first-n"}, FirstN: 2, Endpoints: addrs("192.0.2.13", "192.0.2.10")})
		step("edit", []zone.RR{svc}, []zone.RR{svc2}, map[string][]string{
			"svc.example.com.": {"svc.example.com.\t25\tIN\tA\t192.0.2.13", "svc.example.com.\t25\tIN\tA\t192.0.2.10"},
		})
		if got := sz.Lookup(mustWire(t, "svc.example.com.")).Get(dns.TypeA).Len(); got != 2 {
			t.Errorf("nsec3=%v: edited pool's fallback has %d records, want 2", nsec3, got)
		}
		own := wireOf(t, "svc.example.com. 25 IN A 192.0.2.99")
		step("operator writes A", nil, []zone.RR{own}, map[string][]string{
			"svc.example.com.": {"svc.example.com.\t25\tIN\tA\t192.0.2.99"},
		}, "svc.example.com.")
		step("operator deletes A", []zone.RR{own}, nil, map[string][]string{
			"svc.example.com.": {"svc.example.com.\t25\tIN\tA\t192.0.2.13", "svc.example.com.\t25\tIN\tA\t192.0.2.10"},
		})
		step("delete pool", []zone.RR{svc2}, nil, nil)
		if n := sz.Lookup(mustWire(t, "svc.example.com.")); n != nil {
			t.Errorf("nsec3=%v: the deleted pool's name stays with %d RRsets", nsec3, len(n.Sets))
		}
		names := poolRR(t, "cdn.example.com.", dns.TypeA, steer.Pool{TTL: 20, Policy: []string{"up", "first-n"}, Endpoints: addrs("a.example.net.", "b.example.net.")})
		soa := sz.Apex.Get(dns.TypeSOA)
		oldSOA := zone.RR{Name: sz.OriginWire(), Type: dns.TypeSOA, TTL: soa.TTL, Rdata: soa.First()}
		if _, _, err := s.PoolChange(sz, []zone.RR{oldSOA}, []zone.RR{names, oldSOA}, now); !errors.Is(err, ErrPolicy) || !strings.Contains(err.Error(), "cdn.example.com.") {
			t.Errorf("nsec3=%v: a CNAME-only pool without a static A: %v, want ErrPolicy naming it", nsec3, err)
		}
		step("CNAME-only pool with static A", nil, []zone.RR{names, wireOf(t, "cdn.example.com. 20 IN A 192.0.2.50")}, map[string][]string{
			"cdn.example.com.": {"cdn.example.com.\t20\tIN\tA\t192.0.2.50"},
		}, "cdn.example.com.")
	}
}
