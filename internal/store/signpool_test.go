package store_test

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/sign"
	"github.com/anycastdns/anycastdns/internal/sign/signtest"
	"github.com/anycastdns/anycastdns/internal/steer"
	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/zone"
)

func pool(t testing.TB, owner string, typ uint16, policy []string, addrs ...string) dns.RR {
	t.Helper()
	p := steer.Pool{TTL: 30, Policy: policy}
	for _, a := range addrs {
		p.Endpoints = append(p.Endpoints, steer.Endpoint{Address: netip.MustParseAddr(a)})
	}
	rd, err := steer.Encode(typ, p)
	if err != nil {
		t.Fatal(err)
	}
	return &dns.RFC3597{Hdr: dns.RR_Header{Name: owner, Rrtype: steer.TypePool, Class: dns.ClassINET, Ttl: 30}, Rdata: hex.EncodeToString(rd)}
}

// poolSigCount is the number of TypePoolSig records of z.
func poolSigCount(z *zone.Zone) int {
	n := 0
	z.Nodes(func(nd *zone.Node) {
		if s := nd.Get(steer.TypePoolSig); s != nil {
			n += s.Len()
		}
	})
	return n
}

// TestSigningPools: pools in a zone the store signs have every answer
// signed — when signing is enabled on a zone with pools, when a pool is
// added, edited or deleted, imported, when the signatures are refreshed
// and after a ZSK rollover — and the change log carries it all; a pool
// with too many answers is refused naming it; unsigning takes the
// signatures away and keeps the pools.
func TestSigningPools(t *testing.T) {
	nsec3 := sign.DefaultPolicy()
	nsec3.NSEC3, nsec3.CSK = true, false
	for name, p := range map[string]sign.Policy{"nsec/csk": sign.DefaultPolicy(), "nsec3/ksk+zsk": nsec3} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			c := &clock{t: time.Now()}
			sl, _ := sealer(t)
			s, _ := newStore(t, store.WithSealer(sl), store.WithClock(c.now))
			if _, err := s.CreateZone(ctx, "example.com.", signedBase(t), ""); err != nil {
				t.Fatal(err)
			}
			failover := pool(t, "svc.example.com.", dns.TypeA, []string{"up", "first-n"}, "192.0.2.10", "192.0.2.11", "192.0.2.12")
			if _, err := s.SetRRset(ctx, "example.com.", "svc.example.com.", steer.TypePool, []dns.RR{failover}); err != nil {
				t.Fatal(err)
			}
			before, _ := s.Zone(ctx, "example.com.")
			if _, err := s.EnableSigning(ctx, "example.com.", "default", p); err != nil {
				t.Fatalf("enable signing of a zone with a pool: %v", err)
			}
			check := func(step string, answers int) {
				t.Helper()
				z, err := s.Zone(ctx, "example.com.")
				if err != nil {
					t.Fatal(err)
				}
				checkSigsAt(t, z, c.now())
				if n := signtest.VerifyPools(t, z, c.now()); n != answers {
					t.Errorf("%s: %d answers signed, want %d", step, n, answers)
				}
				// Each pool's name has its signed RRset of the steered
				// type, and the zone passes the three verifiers.
				for _, f := range signtest.FailuresAt(t, z, c.now()) {
					t.Errorf("%s: %s", step, f)
				}
				replay(t, s, before)
			}
			check("enabled", 3)

			weighted := pool(t, "w.example.com.", dns.TypeAAAA, []string{"up", "weighted"}, "2001:db8::1", "2001:db8::2")
			if _, err := s.SetRRset(ctx, "example.com.", "w.example.com.", steer.TypePool, []dns.RR{weighted}); err != nil {
				t.Fatalf("add a pool: %v", err)
			}
			check("pool added", 3+2)

			failover2 := pool(t, "svc.example.com.", dns.TypeA, []string{"up", "first-n"}, "192.0.2.10", "192.0.2.13")
			if _, err := s.SetRRset(ctx, "example.com.", "svc.example.com.", steer.TypePool, []dns.RR{failover2}); err != nil {
				t.Fatalf("edit a pool: %v", err)
			}
			check("pool edited", 2+2)
			wantA := func(step, owner string, want ...string) {
				t.Helper()
				z, _ := s.Zone(ctx, "example.com.")
				var got []string
				if n := z.Lookup(mustName(t, owner)); n != nil && n.Get(dns.TypeA) != nil {
					for rd := range n.Get(dns.TypeA).All() {
						got = append(got, netip.AddrFrom4([4]byte(rd)).String())
					}
				}
				if !slices.Equal(got, want) {
					t.Errorf("%s: A at %s %v, want %v", step, owner, got, want)
				}
			}
			wantA("pool edited", "svc.example.com.", "192.0.2.10")

			// The operator's own A beside the pool stands; deleted, the
			// pool's fallback answer is back.
			if _, err := s.SetRRset(ctx, "example.com.", "svc.example.com.", dns.TypeA, rrs(t, "svc.example.com. 300 IN A 192.0.2.99")); err != nil {
				t.Fatal(err)
			}
			check("operator's A", 2+2)
			wantA("operator's A", "svc.example.com.", "192.0.2.99")
			if _, err := s.DeleteRRset(ctx, "example.com.", "svc.example.com.", dns.TypeA); err != nil {
				t.Fatal(err)
			}
			check("operator's A deleted", 2+2)
			wantA("operator's A deleted", "svc.example.com.", "192.0.2.10")

			// Another write at the pool's name keeps its signatures.
			z0, _ := s.Zone(ctx, "example.com.")
			if _, err := s.SetRRset(ctx, "example.com.", "svc.example.com.", dns.TypeTXT, rrs(t, "svc.example.com. 300 IN TXT \"x\"")); err != nil {
				t.Fatal(err)
			}
			z1, _ := s.Zone(ctx, "example.com.")
			if a, b := z0.Lookup(mustName(t, "svc.example.com.")).Get(steer.TypePoolSig), z1.Lookup(mustName(t, "svc.example.com.")).Get(steer.TypePoolSig); a.First() == nil || string(a.First()) != string(b.First()) {
				t.Errorf("a TXT write at the pool's name signed its answers again")
			}
			check("TXT beside", 4)

			// Too many answers: refused, naming the pool, nothing written.
			var many []string
			for i := range 9 {
				many = append(many, netip.AddrFrom4([4]byte{192, 0, 2, byte(100 + i)}).String())
			}
			_, err := s.SetRRset(ctx, "example.com.", "big.example.com.", steer.TypePool, []dns.RR{pool(t, "big.example.com.", dns.TypeA, []string{"up"}, many...)})
			if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "big.example.com.") || !strings.Contains(err.Error(), "too many possible answers") {
				t.Errorf("a pool of 511 answers: %v, want ErrInvalid naming big.example.com.", err)
			}
			if z, _ := s.Zone(ctx, "example.com."); z.Serial != z1.Serial {
				t.Errorf("the refused pool changed the serial")
			}

			// Refresh: past the refresh time every answer is signed
			// again (and stays valid), over the maintenance writes.
			c.set(c.now().Add(p.SignatureValidity - p.SignatureRefresh + time.Hour))
			for range 30 {
				next, err := s.MaintainSigning(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if next.After(c.now()) {
					break
				}
			}
			check("refreshed", 4)
			c.set(c.now().Add(p.SignatureRefresh))
			check("refreshed, later", 4)

			// Import: a pool in the text is signed, the one gone loses
			// its signatures.
			zt, _ := s.Zone(ctx, "example.com.")
			var b strings.Builder
			rrsAll, _ := zt.RRs()
			for _, rr := range rrsAll {
				h := rr.Header()
				if h.Rrtype == steer.TypePool && h.Name == "w.example.com." {
					continue
				}
				b.WriteString(rr.String() + "\n")
			}
			b.WriteString(pool(t, "new.example.com.", dns.TypeA, []string{"weighted"}, "192.0.2.20", "192.0.2.21").String() + "\n")
			if _, err := s.ImportZone(ctx, "example.com.", strings.NewReader(b.String())); err != nil {
				t.Fatalf("import of the signed zone with a new pool: %v", err)
			}
			check("imported", 2+2)
			if z, _ := s.Zone(ctx, "example.com."); z.Lookup(mustName(t, "w.example.com.")) != nil {
				t.Errorf("the pool left out of the import stays")
			}

			// Unsigned: no signature of any answer, the pools stay.
			if _, err := s.DisableSigning(ctx, "example.com."); err != nil {
				t.Fatal(err)
			}
			z, _ := s.Zone(ctx, "example.com.")
			if n := poolSigCount(z); n != 0 || z.Lookup(mustName(t, "svc.example.com.")).Get(steer.TypePool) == nil {
				t.Errorf("after disable: %d answer signatures, pool %v", n, z.Lookup(mustName(t, "svc.example.com.")).Get(steer.TypePool))
			}
			wantA("unsigned", "svc.example.com.")
			replay(t, s, before)

			// A pool that answers only CNAMEs has no fallback: refused
			// in a signed zone without a static A beside it.
			if _, err := s.EnableSigning(ctx, "example.com.", "default", p); err != nil {
				t.Fatal(err)
			}
			names := steer.Pool{TTL: 30, Policy: []string{"up", "first-n"}, Endpoints: []steer.Endpoint{{Name: "a.example.net."}, {Name: "b.example.net."}}}
			rd, err := steer.Encode(dns.TypeA, names)
			if err != nil {
				t.Fatal(err)
			}
			cdn := &dns.RFC3597{Hdr: dns.RR_Header{Name: "cdn.example.com.", Rrtype: steer.TypePool, Class: dns.ClassINET, Ttl: 30}, Rdata: hex.EncodeToString(rd)}
			if _, err := s.SetRRset(ctx, "example.com.", "cdn.example.com.", steer.TypePool, []dns.RR{cdn}); !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "cdn.example.com.") || !strings.Contains(err.Error(), "only CNAMEs") {
				t.Errorf("a CNAME-only pool: %v, want ErrInvalid naming cdn.example.com.", err)
			}
		})
	}
}

func mustName(t testing.TB, s string) []byte {
	t.Helper()
	w, err := zone.NameWire(s)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestSigningPoolsRollover: through ZSK and KSK rollovers and signature
// refreshes in accelerated time, every version of the zone has every
// answer of its pools signed by exactly the keys that sign the rest (the
// SOA's signers), valid at that time.
func TestSigningPoolsRollover(t *testing.T) {
	p := sign.DefaultPolicy()
	p.DNSKEYTTL, p.ZoneMaxTTL, p.PropagationDelay = time.Hour, time.Hour, 5*time.Minute
	p.SignatureValidity, p.SignatureRefresh, p.SignatureJitter = 4*24*time.Hour, 26*time.Hour, time.Hour
	p.CSK, p.KSKLifetime, p.ZSKLifetime = false, 3*24*time.Hour, 2*24*time.Hour
	ctx := t.Context()
	c := &clock{t: time.Now().UTC().Truncate(time.Second)}
	sl, _ := sealer(t)
	s, _ := newStore(t, store.WithSealer(sl), store.WithClock(c.now))
	if _, err := s.CreateZone(ctx, "example.com.", signedBase(t), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetRRset(ctx, "example.com.", "svc.example.com.", steer.TypePool,
		[]dns.RR{pool(t, "svc.example.com.", dns.TypeA, []string{"up", "first-n"}, "192.0.2.10", "192.0.2.11")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.EnableSigning(ctx, "example.com.", "roll", p); err != nil {
		t.Fatal(err)
	}
	start := c.now()
	zsks := map[uint16]bool{}
	versions := 0
	last := uint32(0)
	lastStage := ""
	for c.now().Before(start.Add(7 * 24 * time.Hour)) {
		next, err := s.MaintainSigning(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st, err := s.Signing(ctx, "example.com.")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range st.Keys {
			if strings.Contains(k.State, "waiting for its DS") {
				if _, err := s.DSSeen(ctx, "example.com.", k.Tag); err != nil {
					t.Fatal(err)
				}
			}
		}
		z, _ := s.Zone(ctx, "example.com.")
		if z.Serial != last {
			last = z.Serial
			versions++
			if n := signtest.VerifyPools(t, z, c.now()); n != 2 {
				t.Fatalf("at %v: %d answers signed, want 2", c.now(), n)
			}
			stage := ""
			for rd := range z.Apex.Get(dns.TypeSOA).Sigs() {
				tag := uint16(rd[16])<<8 | uint16(rd[17])
				zsks[tag] = true
				stage += fmt.Sprint(" sig ", tag)
			}
			for rd := range z.Apex.Get(dns.TypeDNSKEY).All() {
				stage += fmt.Sprintf(" key %x", rd)
			}
			if stage != lastStage {
				// Each stage of the rollovers passes the verifiers.
				lastStage = stage
				for _, f := range signtest.FailuresAt(t, z, c.now()) {
					t.Errorf("at %v: %s", c.now(), f)
				}
			}
		}
		if !next.After(c.now()) || next.Sub(c.now()) > time.Hour {
			next = c.now().Add(time.Hour)
		}
		c.set(next)
	}
	if len(zsks) < 3 {
		t.Errorf("%d signing ZSKs over 7 days, want the rollovers of at least 3", len(zsks))
	}
	t.Logf("%d versions, %d signing ZSKs", versions, len(zsks))
}
