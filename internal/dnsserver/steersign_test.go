package dnsserver

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/sign"
	"github.com/anycastdns/anycastdns/internal/steer"
	"github.com/anycastdns/anycastdns/internal/zone"
)

var failover3 = steer.Pool{TTL: 25, Policy: []string{"up", "first-n"}, Endpoints: []steer.Endpoint{
	{Address: netip.MustParseAddr("192.0.2.31")}, {Address: netip.MustParseAddr("192.0.2.32")}, {Address: netip.MustParseAddr("192.0.2.33")},
}}

// up8 has 8 endpoints, any of which can be down: 255 answers, the most a
// signed pool of `up` alone can have.
var up8 = func() steer.Pool {
	p := steer.Pool{TTL: 15, Policy: []string{"up"}}
	for i := range 8 {
		p.Endpoints = append(p.Endpoints, steer.Endpoint{Address: netip.AddrFrom4([4]byte{192, 0, 2, byte(40 + i)})})
	}
	return p
}()

// signedSteerZone is example.com. with pools (svc weighted with a static
// A beside it, failover, geo, cname, a weighted wildcard), signed by the
// control plane's signer with the pools' answers (policy p).
func signedSteerZone(t testing.TB, p sign.Policy) *zone.Zone {
	t.Helper()
	text := "$ORIGIN example.com.\n$TTL 3600\n" +
		"@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ IN NS ns1\nns1 IN A 192.0.2.53\n" +
		"www IN A 192.0.2.80\n" +
		"svc IN A 192.0.2.99\n" + poolRR(t, "svc", dns.TypeA, weighted7030) +
		poolRR(t, "failover", dns.TypeA, failover3) +
		poolRR(t, "geo", dns.TypeA, geoPool) +
		// A pool answering only CNAMEs needs a static A beside it in a
		// signed zone (it has no fallback answer of its type).
		"cname IN A 192.0.2.77\n" + poolRR(t, "cname", dns.TypeA, cnamePool) +
		poolRR(t, "*.wild", dns.TypeA, weighted7030) +
		poolRR(t, "many", dns.TypeA, up8)
	recs, err := zone.Parse(strings.NewReader(text), "example.com.", "steer.zone")
	if err != nil {
		t.Fatal(err)
	}
	z, err := zone.Build("example.com.", recs)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	roles := []sign.Role{sign.CSK}
	if !p.CSK {
		roles = []sign.Role{sign.KSK, sign.ZSK}
	}
	var keys []*sign.Key
	for _, r := range roles {
		k, err := sign.GenerateKey("example.com.", r, p, now)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	s, err := sign.New(p, "example.com.", keys)
	if err != nil {
		t.Fatal(err)
	}
	d, a, err := s.PoolSigs(z, nil, now, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if z, err = z.Apply(d, a); err != nil {
		t.Fatal(err)
	}
	sz, err := s.Sign(z, now)
	if err != nil {
		t.Fatal(err)
	}
	return sz
}

func signedSteerHandler(t testing.TB, p sign.Policy) (*Handler, *steer.Engine, *zone.Zone) {
	t.Helper()
	z := signedSteerZone(t, p)
	geo, err := steer.NewGeoMap(map[netip.Prefix]string{
		netip.MustParsePrefix("198.51.100.0/24"): "eu",
		netip.MustParsePrefix("203.0.113.0/24"):  "us",
	})
	if err != nil {
		t.Fatal(err)
	}
	e := steer.NewEngine()
	e.SetState(&steer.State{Geo: geo})
	h := NewHandler(Settings{MaxUDP: 1232, Steer: e}, &Stats{})
	h.SetZones(zone.NewSet(z))
	return h, e, z
}

// doQuery is a query with the DO bit and an ECS option (ecs nil: none).
func doQuery(t testing.TB, name string, qtype uint16, ecs []byte) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(1232, true)
	if ecs != nil {
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_LOCAL{Code: ednsECS, Data: ecs})
	}
	p, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// validates checks that the answer section of resp is one RRset (its
// type want, CNAME or A) with an RRSIG by each ZSK of z that verifies.
func validates(t *testing.T, z *zone.Zone, resp []byte) (addrs []string) {
	t.Helper()
	m := new(dns.Msg)
	if err := m.Unpack(resp); err != nil {
		t.Fatal(err)
	}
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
	var set []dns.RR
	var sigs []*dns.RRSIG
	for _, rr := range m.Answer {
		switch v := rr.(type) {
		case *dns.RRSIG:
			sigs = append(sigs, v)
		case *dns.A:
			set = append(set, rr)
			addrs = append(addrs, v.A.String())
		default:
			set = append(set, rr)
			addrs = append(addrs, rr.String())
		}
	}
	if len(set) == 0 || len(sigs) == 0 {
		t.Fatalf("answer without %s: %v", map[bool]string{true: "data", false: "signature"}[len(set) == 0], m)
	}
	for _, sig := range sigs {
		k := keys[sig.KeyTag]
		if k == nil {
			t.Fatalf("signed by %d, not a key of the zone", sig.KeyTag)
		}
		if err := sig.Verify(k, set); err != nil {
			t.Errorf("%s: signature by %d does not verify: %v\n%v", set[0].Header().Name, sig.KeyTag, err, m)
		}
		if !sig.ValidityPeriod(time.Now()) {
			t.Errorf("signature not valid now")
		}
	}
	return addrs
}

// TestSteeredSigned: in a zone the control plane signed, every steered
// answer a DNSSEC query gets carries the signature of that very answer
// (weighted by client, failover as endpoints go down, geo by region, a
// CNAME, a wildcard), with NSEC or NSEC3 as the policy has it; a query
// without DO gets the steered answer alone.
func TestSteeredSigned(t *testing.T) {
	nsec3 := sign.DefaultPolicy()
	nsec3.NSEC3, nsec3.CSK = true, false
	for name, p := range map[string]sign.Policy{"nsec/csk": sign.DefaultPolicy(), "nsec3/ksk+zsk": nsec3} {
		t.Run(name, func(t *testing.T) {
			h, e, z := signedSteerHandler(t, p)
			w := h.NewWorker()
			// Weighted: clients land on both endpoints, each answer signed.
			seen := map[string]bool{}
			for i := range 64 {
				ecs := ecsData(1, 24, 0, 198, 51, byte(i))
				seen[strings.Join(validates(t, z, answer(w, doQuery(t, "svc.example.com.", dns.TypeA, ecs), UDP)), ",")] = true
				seen["wild "+strings.Join(validates(t, z, answer(w, doQuery(t, "x.wild.example.com.", dns.TypeA, ecs), UDP)), ",")] = true
			}
			for _, want := range []string{"192.0.2.1", "192.0.2.2", "wild 192.0.2.1", "wild 192.0.2.2"} {
				if !seen[want] {
					t.Errorf("no client got %s: %v", want, seen)
				}
			}
			// Failover: each endpoint down in turn moves the answer on.
			for down := range 3 {
				st := &steer.State{Endpoints: map[string]steer.EndpointState{}}
				for i := range down {
					st.Endpoints[failover3.Endpoints[i].Key()] = steer.EndpointState{Down: true}
				}
				e.SetState(st)
				got := validates(t, z, answer(w, doQuery(t, "failover.example.com.", dns.TypeA, nil), UDP))
				if want := failover3.Endpoints[down].Address.String(); len(got) != 1 || got[0] != want {
					t.Errorf("%d down: %v, want %s", down, got, want)
				}
			}
			// 255 answers: two down, the six others, signed.
			st := &steer.State{Endpoints: map[string]steer.EndpointState{}}
			for _, i := range []int{2, 5} {
				st.Endpoints[up8.Endpoints[i].Key()] = steer.EndpointState{Down: true}
			}
			e.SetState(st)
			if got := validates(t, z, answer(w, doQuery(t, "many.example.com.", dns.TypeA, nil), UDP)); len(got) != 6 {
				t.Errorf("many, 2 of 8 down: %v", got)
			}
			geo, _ := steer.NewGeoMap(map[netip.Prefix]string{netip.MustParsePrefix("203.0.113.0/24"): "us"})
			e.SetState(&steer.State{Geo: geo})
			if got := validates(t, z, answer(w, doQuery(t, "geo.example.com.", dns.TypeA, ecsData(1, 24, 0, 203, 0, 113)), UDP)); len(got) != 1 || got[0] != "192.0.2.20" {
				t.Errorf("geo us: %v", got)
			}
			if got := validates(t, z, answer(w, doQuery(t, "cname.example.com.", dns.TypeA, nil), UDP)); len(got) != 1 || !strings.Contains(got[0], "CNAME\tedge.example.net.") {
				t.Errorf("cname: %v", got)
			}
			// Without DO: the steered answer, no signature.
			if _, rrs := answerRRs(t, answer(w, steerQuery(t, "failover.example.com.", dns.TypeA, nil), UDP)); len(rrs) != 1 || !strings.HasSuffix(rrs[0], "192.0.2.31") {
				t.Errorf("without DO: %v", rrs)
			}
		})
	}
}

// TestSteeredSignedNeedsSigs: a signed zone whose pools came without their
// answers' signatures (signed elsewhere) is not steered: its static
// records answer, signed.
func TestSteeredSignedNeedsSigs(t *testing.T) {
	z := signedSteerZone(t, sign.DefaultPolicy())
	var del []zone.RR
	z.Nodes(func(n *zone.Node) {
		if s := n.Get(steer.TypePoolSig); s != nil {
			for rd := range s.All() {
				del = append(del, zone.RR{Name: n.Name, Type: steer.TypePoolSig, TTL: s.TTL, Rdata: rd})
			}
			for rd := range s.Sigs() {
				del = append(del, zone.RR{Name: n.Name, Type: dns.TypeRRSIG, TTL: s.SigTTL(), Rdata: rd})
			}
		}
	})
	z, err := z.Apply(del, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := steer.NewEngine()
	h := NewHandler(Settings{MaxUDP: 1232, Steer: e}, &Stats{})
	h.SetZones(zone.NewSet(z))
	if got := validates(t, z, answer(h.NewWorker(), doQuery(t, "svc.example.com.", dns.TypeA, nil), UDP)); fmt.Sprint(got) != "[192.0.2.99]" {
		t.Errorf("svc without answer signatures: %v, want the static 192.0.2.99", got)
	}
}

// TestSteeredSignedNoAllocs: attaching the answer's signature allocates
// nothing.
func TestSteeredSignedNoAllocs(t *testing.T) {
	h, _, _ := signedSteerHandler(t, sign.DefaultPolicy())
	w := h.NewWorker()
	p := doQuery(t, "svc.example.com.", dns.TypeA, ecsData(1, 24, 0, 198, 51, 100))
	if n := testing.AllocsPerRun(200, func() { answer(w, p, UDP) }); n != 0 {
		t.Errorf("%v allocations per signed steered answer", n)
	}
}
