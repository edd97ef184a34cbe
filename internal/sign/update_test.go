package sign

import (
	"encoding/binary"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/zone"
)

// changer makes random valid-looking changes to a zone: names with
// addresses and text appear and go (deep ones make empty non-terminals,
// wildcards among them), delegations with glue and DS appear and go.
type changer struct {
	t   testing.TB
	rnd *rand.Rand
}

var labels = []string{"a", "b", "c", "www", "*", "x", "deep", "mail", "zz", "k0", "k1"}

func (c *changer) name() string {
	n := 1 + c.rnd.IntN(3)
	s := ""
	for i := range n {
		l := labels[c.rnd.IntN(len(labels))]
		if l == "*" && i != 0 {
			l = "w"
		}
		s += l + "."
	}
	return s + "example.com."
}

func (c *changer) rr(s string) zone.RR {
	r, err := zone.WireRR(mustRR(c.t, s))
	if err != nil {
		c.t.Fatal(err)
	}
	return r
}

// change returns a random change of z (unsigned view): SOA serial + 1 and
// one to three edits.
func (c *changer) change(z *zone.Zone) (del, add []zone.RR) {
	soa := z.Apex.Get(dns.TypeSOA)
	old := zone.RR{Name: z.OriginWire(), Type: dns.TypeSOA, TTL: soa.TTL, Rdata: soa.First()}
	nw := old
	nw.Rdata = slices.Clone(old.Rdata)
	binary.BigEndian.PutUint32(nw.Rdata[len(nw.Rdata)-20:], z.Serial+1)
	del, add = []zone.RR{old}, []zone.RR{nw}
	for range 1 + c.rnd.IntN(3) {
		switch op := c.rnd.IntN(10); {
		case op < 4: // a new address or text
			name := c.name()
			if c.rnd.IntN(2) == 0 {
				add = append(add, c.rr(fmt.Sprintf("%s 300 IN A 192.0.2.%d", name, c.rnd.IntN(250))))
			} else {
				add = append(add, c.rr(fmt.Sprintf("%s 300 IN TXT \"t%d\"", name, c.rnd.IntN(1000))))
			}
		case op < 7: // delete a random record of a name that has data
			var cands []zone.RR
			z.Nodes(func(n *zone.Node) {
				if n == z.Apex || (n.Cut != nil && n.Cut != n) || zone.NameString(n.Name) == "ns1.example.com." {
					return
				}
				for i := range n.Sets {
					set := &n.Sets[i]
					switch set.Type {
					case dns.TypeA, dns.TypeTXT, dns.TypeAAAA:
						for rd := range set.All() {
							cands = append(cands, zone.RR{Name: n.Name, Type: set.Type, TTL: set.TTL, Rdata: rd})
						}
					}
				}
			})
			if len(cands) > 0 {
				r := cands[c.rnd.IntN(len(cands))]
				if !slices.ContainsFunc(del, func(x zone.RR) bool { return x.Key() == r.Key() }) {
					del = append(del, r)
				}
			}
		case op < 9: // a delegation, secure or not, with glue below it
			name := c.name()
			if name[0] == '*' {
				name = "s" + name[1:]
			}
			add = append(add, c.rr(fmt.Sprintf("%s 300 IN NS ns.%s", name, name)),
				c.rr(fmt.Sprintf("ns.%s 300 IN A 192.0.2.%d", name, c.rnd.IntN(250))))
			if c.rnd.IntN(2) == 0 {
				add = append(add, c.rr(fmt.Sprintf("%s 300 IN DS %d 13 2 %064x", name, c.rnd.IntN(65536), c.rnd.Uint64())))
			}
		default: // a delegation goes: its NS and DS
			var cuts []*zone.Node
			z.Nodes(func(n *zone.Node) {
				if n.Cut == n {
					cuts = append(cuts, n)
				}
			})
			if len(cuts) > 0 {
				n := cuts[c.rnd.IntN(len(cuts))]
				for _, t := range []uint16{dns.TypeNS, dns.TypeDS} {
					if set := n.Get(t); set != nil {
						for rd := range set.All() {
							del = append(del, zone.RR{Name: n.Name, Type: t, TTL: set.TTL, Rdata: rd})
						}
					}
				}
			}
		}
	}
	return del, add
}

// TestUpdateMatchesFullSigning applies random changes to signed zones
// incrementally and checks each version against a full signing of the same
// records, and the verifiers every 25 changes and after the last one.
func TestUpdateMatchesFullSigning(t *testing.T) {
	const changes = 100
	for name, p := range map[string]Policy{
		"nsec":          DefaultPolicy(),
		"nsec3":         func() Policy { p := DefaultPolicy(); p.NSEC3 = true; return p }(),
		"nsec3-opt-out": func() Policy { p := DefaultPolicy(); p.NSEC3, p.NSEC3OptOut, p.CSK = true, true, false; return p }(),
		"nsec3-salt":    func() Policy { p := DefaultPolicy(); p.NSEC3, p.NSEC3SaltLength, p.CDS = true, 4, true; return p }(),
	} {
		t.Run(name, func(t *testing.T) {
			seed := uint64(len(name))
			c := &changer{t: t, rnd: rand.New(rand.NewPCG(seed, 16))}
			unsigned := loadZone(t, "example.com.", "testdata/example.com.zone")
			s := newSigner(t, p, "example.com.")
			now := time.Now()
			sz, err := s.Sign(unsigned, now)
			if err != nil {
				t.Fatal(err)
			}
			applied := 0
			for i := 0; applied < changes; i++ {
				if i > 5*changes {
					t.Fatalf("only %d of %d random changes were valid", applied, changes)
				}
				now = now.Add(time.Second)
				del, add := c.change(unsigned)
				nu, uerr := unsigned.Apply(del, add)
				nz, d, a, err := s.Update(sz, del, add, now)
				if (uerr == nil) != (err == nil) {
					t.Fatalf("change %d: unsigned Apply: %v; signed Update: %v", i, uerr, err)
				}
				if err != nil {
					continue
				}
				applied++
				// The difference returned is the one between the versions.
				if check, err := sz.Apply(d, a); err != nil {
					t.Fatalf("change %d: the difference does not apply: %v", i, err)
				} else if dd, aa := zone.DiffWire(check, nz); len(dd)+len(aa) > 0 {
					t.Fatalf("change %d: the difference does not make the new version: %v %v", i, dd, aa)
				}
				full, err := s.Sign(nz, now)
				if err != nil {
					t.Fatal(err)
				}
				if diff := diffModuloSigs(t, nz, full); diff != "" {
					t.Fatalf("change %d (del %v add %v): incremental differs from full signing:\n%s", i, del, add, diff)
				}
				stripped, err := s.Sign(nu, now)
				if err != nil {
					t.Fatal(err)
				}
				if p.NSEC3SaltLength == 0 {
					if diff := diffModuloSigs(t, stripped, full); diff != "" {
						t.Fatalf("change %d: the unsigned records differ:\n%s", i, diff)
					}
				}
				unsigned, sz = nu, nz
				if applied%25 == 0 {
					checkSigned(t, s, sz, now)
					verifyExternal(t, sz)
				}
			}
			t.Logf("%d names after %d changes", sz.Len(), changes)
		})
	}
}

// TestUpdateTouchesOnlyWhatChanged checks the difference of one new name:
// its records and signatures, the SOA's, the chain records around it,
// nothing else.
func TestUpdateTouchesOnlyWhatChanged(t *testing.T) {
	for _, nsec3 := range []bool{false, true} {
		p := DefaultPolicy()
		p.NSEC3 = nsec3
		s := newSigner(t, p, "example.com.")
		now := time.Now()
		sz, err := s.Sign(loadZone(t, "example.com.", "testdata/example.com.zone"), now)
		if err != nil {
			t.Fatal(err)
		}
		c := &changer{t: t}
		soa := sz.Apex.Get(dns.TypeSOA)
		old := zone.RR{Name: sz.OriginWire(), Type: dns.TypeSOA, TTL: soa.TTL, Rdata: soa.First()}
		nw := old
		nw.Rdata = slices.Clone(old.Rdata)
		binary.BigEndian.PutUint32(nw.Rdata[len(nw.Rdata)-20:], sz.Serial+1)
		nz, del, add, err := s.Update(sz, []zone.RR{old}, []zone.RR{nw, c.rr("n.example.com. 300 IN A 192.0.2.50")}, now.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		count := func(rrs []zone.RR) map[string]int {
			m := map[string]int{}
			for _, r := range rrs {
				k := dns.TypeToString[r.Type]
				if r.Type == dns.TypeRRSIG {
					k += "/" + dns.TypeToString[zone.RRSIGCovered(r.Rdata)]
				}
				m[k]++
			}
			return m
		}
		chain := "NSEC"
		if nsec3 {
			chain = "NSEC3"
		}
		// Deleted: the old SOA and its signature, the chain record before
		// the new name's and its signature.
		wantDel := map[string]int{"SOA": 1, "RRSIG/SOA": 1, chain: 1, "RRSIG/" + chain: 1}
		// Added: those again, the new name's A, its chain record, both
		// signed.
		wantAdd := map[string]int{"SOA": 1, "RRSIG/SOA": 1, "A": 1, "RRSIG/A": 1, chain: 2, "RRSIG/" + chain: 2}
		if got := count(del); !maps.Equal(got, wantDel) {
			t.Errorf("nsec3=%v: deleted %v, want %v", nsec3, got, wantDel)
		}
		if got := count(add); !maps.Equal(got, wantAdd) {
			t.Errorf("nsec3=%v: added %v, want %v", nsec3, got, wantAdd)
		}
		checkSigned(t, s, nz, now.Add(time.Second))
	}
}

// TestUpdateNegativeTTL: a new SOA MINIMUM changes every chain record's
// TTL, as a full signing makes it.
func TestUpdateNegativeTTL(t *testing.T) {
	s := newSigner(t, DefaultPolicy(), "example.com.")
	now := time.Now()
	sz, err := s.Sign(loadZone(t, "example.com.", "testdata/example.com.zone"), now)
	if err != nil {
		t.Fatal(err)
	}
	soa := sz.Apex.Get(dns.TypeSOA)
	old := zone.RR{Name: sz.OriginWire(), Type: dns.TypeSOA, TTL: soa.TTL, Rdata: soa.First()}
	nw := old
	nw.Rdata = slices.Clone(old.Rdata)
	binary.BigEndian.PutUint32(nw.Rdata[len(nw.Rdata)-20:], sz.Serial+1)
	binary.BigEndian.PutUint32(nw.Rdata[len(nw.Rdata)-4:], 60)
	nz, _, _, err := s.Update(sz, []zone.RR{old}, []zone.RR{nw}, now)
	if err != nil {
		t.Fatal(err)
	}
	nz.Nodes(func(n *zone.Node) {
		if set := n.Get(dns.TypeNSEC); set != nil && set.TTL != 60 {
			t.Errorf("%s NSEC TTL %d, want 60", zone.NameString(n.Name), set.TTL)
		}
	})
	checkSigned(t, s, nz, now)
}
