package zone

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/wire"
)

// verifyZone checks every index and link of a zone against what the
// zone's nodes say: the name index's layout and contents, the canonical order,
// the NSEC and NSEC3 chains, the name server references, the delegation,
// DNAME and wildcard links (pointing to this version's nodes), empty
// non-terminals only above data, and the counts and apex fields.
func verifyZone(z *Zone) error {
	if _, err := checkNames(&z.names, hashName); err != nil {
		return fmt.Errorf("name index: %w", err)
	}
	var all []*Node
	z.names.walk(func(n *Node) { all = append(all, n) })
	sortCanonical(all)
	byName := func(a, b *Node) int { return Compare(a.Name, b.Name) }
	canon, err := checkBTree(&z.index().canon, byName, false)
	if err != nil {
		return fmt.Errorf("canonical order: %w", err)
	}
	if !slices.Equal(canon, all) {
		return fmt.Errorf("canonical order holds other nodes than the name index")
	}
	if z.Apex != z.names.get(z.origin) || z.Apex == nil {
		return fmt.Errorf("apex is not the origin's node")
	}
	records := 0
	var nsec []*Node
	var nsec3 []nsec3Entry
	for i, n := range canon {
		for j := range n.Sets {
			records += n.Sets[j].Len() + n.Sets[j].SigLen()
		}
		if n.Empty() && (i+1 == len(canon) || !wire.IsSubdomain(canon[i+1].Name, n.Name)) && n != z.Apex {
			return fmt.Errorf("%s: empty with nothing below", NameString(n.Name))
		}
		want := Node{Sets: n.Sets}
		if n != z.Apex {
			p := z.names.get(wire.Parent(n.Name))
			if p == nil {
				return fmt.Errorf("%s: no parent", NameString(n.Name))
			}
			link(&want, p)
			if want.Cut == &want {
				want.Cut = n
			}
		}
		want.Wildcard = z.names.get(append([]byte{1, '*'}, n.Name...))
		if n.Cut != want.Cut || n.DNAME != want.DNAME || n.Wildcard != want.Wildcard {
			return fmt.Errorf("%s: links %p %p %p, want %p %p %p", NameString(n.Name), n.Cut, n.DNAME, n.Wildcard, want.Cut, want.DNAME, want.Wildcard)
		}
		if n.Get(dns.TypeNSEC) != nil {
			nsec = append(nsec, n)
		}
		if n.Get(dns.TypeNSEC3) != nil {
			h, _ := nsec3Owner(n.Name)
			nsec3 = append(nsec3, nsec3Entry{hash: h, node: n})
		}
	}
	if records != z.Records {
		return fmt.Errorf("%d records, Records %d", records, z.Records)
	}
	got, err := checkBTree(&z.nsec, byName, false)
	if err != nil || !slices.Equal(got, nsec) {
		return fmt.Errorf("NSEC chain differs: %w", err)
	}
	slices.SortFunc(nsec3, func(a, b nsec3Entry) int { return bytes.Compare(a.hash, b.hash) })
	got3, err := checkBTree(&z.nsec3, func(a, b nsec3Entry) int { return bytes.Compare(a.hash, b.hash) }, false)
	if err != nil || !slices.EqualFunc(got3, nsec3, func(a, b nsec3Entry) bool { return a.node == b.node && bytes.Equal(a.hash, b.hash) }) {
		return fmt.Errorf("NSEC3 chain differs: %w", err)
	}
	want := glueIndex(z.origin, canon)
	wantRefs, _ := checkBTree(&want, compareRefs, false)
	gotRefs, err := checkBTree(&z.index().glue, compareRefs, false)
	if err != nil || !slices.EqualFunc(gotRefs, wantRefs, func(a, b nsRef) bool { return compareRefs(a, b) == 0 }) {
		return fmt.Errorf("name server references differ: %w", err)
	}
	if soa := z.Apex.Get(dns.TypeSOA); soa != nil {
		if s, neg := soaFields(soa); s != z.Serial || neg != z.NegTTL {
			return fmt.Errorf("serial %d negttl %d, SOA says %d %d", z.Serial, z.NegTTL, s, neg)
		}
	}
	signed, param := apexChain(z.Apex)
	if signed != z.Signed || (param == nil) != (z.NSEC3 == nil) {
		return fmt.Errorf("signed/NSEC3 fields do not match the apex")
	}
	return nil
}

const propSig = "8 2 300 20300101000000 20200101000000 12345 example. AAAA"

// propPool is what random zones are made of: delegations (with glue,
// without, naming each other's name servers, nested), wildcards, deep
// names that need empty non-terminals, CNAME and DNAME (with conflicts),
// NSEC and NSEC3 chains, RRSIGs (with and without their RRsets), SOA
// where it does not belong.
var propPool = []string{
	"@ NS a", "@ NS ns1.sub", "@ MX 10 a", "@ TXT apex", "@ DNSKEY 257 3 8 AwEAAQ==", "@ NSEC3PARAM 1 0 0 -",
	"@ RRSIG TXT " + propSig, "@ DNAME example.net.",
	"a A 192.0.2.1", "a A 192.0.2.2", "a AAAA 2001:db8::1", "a TXT hello", "a CNAME b",
	"a RRSIG A " + propSig, "a RRSIG TXT " + propSig, "a NSEC b.example. A RRSIG NSEC",
	"b TXT b", "b CNAME a", "b RRSIG A " + propSig, "b NSEC sub.example. TXT NSEC",
	"c.b A 192.0.2.3", "d.c.b A 192.0.2.4", "e.d.c.b TXT deep", "d.c.b NSEC a.example. A",
	"*.b TXT wild", "*.b A 192.0.2.5", "x.*.b A 192.0.2.6", "* A 192.0.2.7", "*.sub A 192.0.2.8",
	"sub NS ns1.sub", "sub NS ns2.sub", "sub NS ns.example.net.", "sub NS a", "sub DS 12345 8 2 0123456789abcdef",
	"sub DNAME example.org.",
	"ns1.sub A 192.0.2.9", "ns2.sub AAAA 2001:db8::9", "deep.ns1.sub TXT occluded", "x.sub A 192.0.2.13",
	"other NS ns1.sub", "other NS ns.other", "ns.other A 192.0.2.10", "other NS x.sub", "other NS c.b",
	"c.b NS ns.c.b", "ns.c.b A 192.0.2.11", "x.ns.c.b NS ns1.sub",
	"dn DNAME example.net.", "dn DNAME example.org.", "x.dn A 192.0.2.12", "y.x.dn NS ns1.sub",
	"soa2 SOA a h 1 2 3 4 5",
	"0p9mhaveqvm6t7vbl5lop2u3t2rp3tom NSEC3 1 0 0 - 2t7b4g4vsa5smi47k61mv5bv1a22bojr A RRSIG",
	"2t7b4g4vsa5smi47k61mv5bv1a22bojr NSEC3 1 0 0 - 0p9mhaveqvm6t7vbl5lop2u3t2rp3tom A",
	"zz NSEC3 1 0 0 - 0p9mhaveqvm6t7vbl5lop2u3t2rp3tom A",
}

// propRecord parses a pool entry with the given TTL.
func propRecord(t testing.TB, entry string, ttl uint32) dns.RR {
	owner, rest, _ := strings.Cut(entry, " ")
	rr, err := dns.NewRR(fmt.Sprintf("$ORIGIN example.\n%s %d IN %s", owner, ttl, rest))
	if err != nil {
		t.Fatalf("%s: %v", entry, err)
	}
	return rr
}

// propZone is a zone's content: which pool entries it has, with which
// TTL for each RRset, and its SOA (serial 0: none; extra: a second one).
type propZone struct {
	has    map[int]bool
	ttl    map[string]uint32 // by owner and type
	serial uint32
	extra  bool
}

func (p propZone) clone() propZone {
	c := propZone{has: map[int]bool{}, ttl: map[string]uint32{}, serial: p.serial, extra: p.extra}
	for k, v := range p.has {
		c.has[k] = v
	}
	for k, v := range p.ttl {
		c.ttl[k] = v
	}
	return c
}

func setKeyOf(rr dns.RR) string {
	h := rr.Header()
	t := h.Rrtype
	if r, ok := rr.(*dns.RRSIG); ok {
		t = r.TypeCovered // RRSIGs take the TTL of their own list; key them apart
		return strings.ToLower(h.Name) + "/RRSIG/" + dns.TypeToString[t]
	}
	return strings.ToLower(h.Name) + "/" + dns.TypeToString[t]
}

func (p propZone) records(t testing.TB) []dns.RR {
	var out []dns.RR
	if p.serial != 0 {
		out = append(out, propRecord(t, fmt.Sprintf("@ SOA a h %d 2 3 4 5", p.serial), 300))
		if p.extra {
			out = append(out, propRecord(t, fmt.Sprintf("@ SOA a h %d 2 3 4 9", p.serial), 300))
		}
	}
	for i, e := range propPool {
		if !p.has[i] {
			continue
		}
		rr := propRecord(t, e, 300)
		if ttl, ok := p.ttl[setKeyOf(rr)]; ok {
			rr.Header().Ttl = ttl
		}
		out = append(out, rr)
	}
	return out
}

// recordDiff is the RFC 1995 difference of two lists of records.
func recordDiff(t testing.TB, a, b []dns.RR) (del, add []RR) {
	key := func(rr dns.RR) string {
		k, err := RRKey(rr)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	inB := map[string]dns.RR{}
	for _, rr := range b {
		inB[key(rr)] = rr
	}
	inA := map[string]dns.RR{}
	for _, rr := range a {
		k := key(rr)
		inA[k] = rr
		if o, ok := inB[k]; !ok || o.Header().Ttl != rr.Header().Ttl {
			del = append(del, mustWire(t, rr))
		}
	}
	for _, rr := range b {
		if o, ok := inA[key(rr)]; !ok || o.Header().Ttl != rr.Header().Ttl {
			add = append(add, mustWire(t, rr))
		}
	}
	return del, add
}

func mustWire(t testing.TB, rr dns.RR) RR {
	w, err := WireRR(rr)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func buildProp(t testing.TB, rrs []dns.RR) (*Zone, error) {
	recs := make([]Record, len(rrs))
	for i, rr := range rrs {
		recs[i] = Record{RR: rr, File: "t"}
	}
	return Build("example.", recs)
}

// buildApplied builds the zone of z's records less del, plus add.
func buildApplied(t testing.TB, z *Zone, del, add []RR) *Zone {
	t.Helper()
	drop := map[string]bool{}
	for _, r := range del {
		rr, err := r.DNS()
		if err != nil {
			t.Fatal(err)
		}
		k, _ := RRKey(rr)
		drop[k] = true
	}
	cur, err := z.RRs()
	if err != nil {
		t.Fatal(err)
	}
	var recs []dns.RR
	for _, rr := range cur {
		if k, _ := RRKey(rr); !drop[k] {
			recs = append(recs, rr)
		}
	}
	for _, r := range add {
		rr, err := r.DNS()
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rr)
	}
	nz, err := buildProp(t, recs)
	if err != nil {
		t.Fatalf("z less del plus add: %v", err)
	}
	return nz
}

// errorLines splits a zone error into its problems, sorted.
func errorLines(err error) []string {
	msg := err.Error()
	if _, rest, ok := strings.Cut(msg, ErrInvalid.Error()+": "); ok {
		msg = rest
	}
	lines := strings.Split(msg, "\n")
	slices.Sort(lines)
	return lines
}

func printed(t testing.TB, z *Zone) string {
	var b bytes.Buffer
	if _, err := z.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// runApplyChain applies random changes one after another to a random valid
// zone and checks every step against Build of the same records: the same
// zone (byte for byte, same links and indexes) or the same problems. It
// also checks DiffWire both ways and that earlier versions never change.
func runApplyChain(t *testing.T, seed uint64, steps int) {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var cur propZone
	var z *Zone
	// A valid start.
	for try := 0; ; try++ {
		cur = propZone{has: map[int]bool{}, ttl: map[string]uint32{}, serial: 1}
		cur.has[0] = true // @ NS a
		for i := range propPool {
			if r.IntN(4) == 0 {
				cur.has[i] = true
			}
		}
		var err error
		if z, err = buildProp(t, cur.records(t)); err == nil {
			break
		}
		if try > 10000 {
			t.Fatal("no valid start")
		}
	}
	type kept struct {
		z    *Zone
		text string
	}
	var history []kept
	for step := range steps {
		next := cur.clone()
		next.serial = cur.serial + 1
		for range 1 + r.IntN(4) {
			i := r.IntN(len(propPool))
			next.has[i] = !next.has[i]
		}
		switch r.IntN(20) {
		case 0:
			next.serial = 0 // no SOA
		case 1:
			next.extra = true
		case 2, 3:
			// A new TTL for one RRset.
			i := r.IntN(len(propPool))
			next.ttl[setKeyOf(propRecord(t, propPool[i], 300))] = uint32(60 * (1 + r.IntN(3)))
		}
		if r.IntN(30) == 0 {
			// Everything but the apex goes.
			for i := range propPool {
				next.has[i] = false
			}
			next.has[0] = true
		}
		want, berr := buildProp(t, next.records(t))
		del, add := recordDiff(t, cur.records(t), next.records(t))
		got, aerr := z.apply(del, add, func(int) string { return "t" }, "")
		switch {
		case (berr == nil) != (aerr == nil):
			t.Fatalf("seed %d step %d: Build: %v\nApply: %v\ndel %v\nadd %v", seed, step, berr, aerr, del, add)
		case berr != nil:
			if b, a := errorLines(berr), errorLines(aerr); !slices.Equal(b, a) {
				t.Fatalf("seed %d step %d: problems differ\nBuild:\n%s\nApply:\n%s", seed, step, strings.Join(b, "\n"), strings.Join(a, "\n"))
			}
			if !errors.Is(aerr, ErrInvalid) {
				t.Fatalf("seed %d step %d: Apply's error is not ErrInvalid: %v", seed, step, aerr)
			}
			continue
		}
		// The same records as Build of the pool's entries; byte for byte
		// the zone Build makes of z's records less del and plus add, in
		// that order (the order of the records in an RRset).
		if d, a := DiffWire(want, got); len(d)+len(a) > 0 {
			t.Fatalf("seed %d step %d: Apply differs from Build: %v %v", seed, step, d, a)
		}
		want = buildApplied(t, z, del, add)
		want.Source = got.Source
		if d := zoneDiff(want, got); d != "" {
			t.Fatalf("seed %d step %d: Apply differs from Build: %s", seed, step, d)
		}
		if err := verifyZone(got); err != nil {
			t.Fatalf("seed %d step %d: %v", seed, step, err)
		}
		// DiffWire: of the versions that share nodes, and of unrelated
		// ones, the same records; applied, the same zone.
		sd, sa := DiffWire(z, got)
		fd, fa := DiffWire(z, want)
		if fmt.Sprint(sd) != fmt.Sprint(fd) || fmt.Sprint(sa) != fmt.Sprint(fa) {
			t.Fatalf("seed %d step %d: DiffWire of shared versions %v %v, of unrelated ones %v %v", seed, step, sd, sa, fd, fa)
		}
		if len(sd) != len(del) || len(sa) != len(add) {
			t.Fatalf("seed %d step %d: DiffWire found %d/%d records, the change had %d/%d", seed, step, len(sd), len(sa), len(del), len(add))
		}
		again, err := z.Apply(fd, fa)
		if err != nil {
			t.Fatalf("seed %d step %d: applying DiffWire: %v", seed, step, err)
		}
		want.Source = again.Source
		if d := zoneDiff(want, again); d != "" {
			t.Fatalf("seed %d step %d: Apply(DiffWire) differs from Build: %s", seed, step, d)
		}
		if step%7 == 0 {
			history = append(history, kept{z, printed(t, z)})
		}
		cur, z = next, got
	}
	for i, h := range history {
		if printed(t, h.z) != h.text {
			t.Fatalf("seed %d: version %d changed after later changes", seed, i)
		}
		if err := verifyZone(h.z); err != nil {
			t.Fatalf("seed %d: version %d: %v", seed, i, err)
		}
	}
}

// TestApplyMatchesBuild: Apply gives, step after step, the zone Build gives
// from the same records, or the same problems.
func TestApplyMatchesBuild(t *testing.T) {
	seeds := 40
	if testing.Short() {
		seeds = 8
	}
	for seed := range uint64(seeds) {
		runApplyChain(t, seed, 60)
	}
}

func FuzzApply(f *testing.F) {
	for _, s := range []uint64{1, 2, 3, 99} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, seed uint64) { runApplyChain(t, seed, 30) })
}
