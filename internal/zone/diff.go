package zone

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/miekg/dns"
)

// RRs returns every record of the zone in canonical order with the SOA
// first, as an AXFR sends them (without the closing SOA).
func (z *Zone) RRs() ([]dns.RR, error) {
	out := make([]dns.RR, 0, z.Records)
	var soa []dns.RR
	var err error
	z.Nodes(func(n *Node) {
		if err != nil {
			return
		}
		owner := NameString(n.Name)
		for i := range n.Sets {
			rrs, e := n.Sets[i].RRs(owner)
			if e != nil {
				err = fmt.Errorf("%s %s: %w", owner, dns.TypeToString[n.Sets[i].Type], e)
				return
			}
			if n.Sets[i].Type == dns.TypeSOA && n == z.Apex {
				soa = append(soa, rrs...)
				continue
			}
			out = append(out, rrs...)
		}
	})
	if err != nil {
		return nil, err
	}
	return append(soa, out...), nil
}

// SOA returns the zone's SOA record.
func (z *Zone) SOA() *dns.SOA {
	s := z.Apex.Get(dns.TypeSOA)
	rrs, err := s.RRs(z.Origin)
	if err != nil || len(rrs) == 0 {
		return nil
	}
	soa, _ := rrs[0].(*dns.SOA)
	return soa
}

// RRKey identifies a record as RFC 1995 compares them: owner, type, class
// and rdata in canonical form (RFC 4034 §6.2: the owner and the names in the
// rdata of the types listed there in lower case), TTL excluded. The zone
// builder's duplicate check (rdataEqual) uses the same rules.
func RRKey(rr dns.RR) (string, error) {
	c := dns.Copy(rr)
	c.Header().Ttl = 0
	buf := make([]byte, dns.Len(c)+32)
	n, err := dns.PackRR(c, buf, 0, nil, false)
	if err != nil {
		return "", err
	}
	buf = buf[:n]
	// Owner, then type, class, TTL and rdata length: 10 bytes.
	if rdata := lowerNameAt(buf, 0) + 10; rdata >= 10 && rdata <= n {
		lowerRdata(c.Header().Rrtype, buf[rdata:])
	}
	return string(buf), nil
}

// Diff returns the records to delete from old and to add to reach new, SOA
// included, in the order an IXFR sequence lists them (RFC 1995 §4): it is
// DiffWire with the records as miekg/dns values.
func Diff(old, new *Zone) (del, add []dns.RR, err error) {
	d, a := DiffWire(old, new)
	if del, err = dnsRRs(d); err != nil {
		return nil, nil, err
	}
	if add, err = dnsRRs(a); err != nil {
		return nil, nil, err
	}
	return del, add, nil
}

// DiffWire returns the records to delete from old and to add to reach new,
// each list with the SOA first and the rest in canonical order (RFC 1995
// §4). Records compare as RRKey compares them; a record whose TTL changes
// is deleted and added. The records alias the zones' memory and must not
// be modified.
//
// Versions that share nodes (one made from the other by Apply) are
// compared where they differ only: the cost is that of the difference.
// Unrelated versions (two Builds) are compared name by name.
func DiffWire(old, new *Zone) (del, add []RR) {
	type pair struct{ a, b *Node }
	var pairs []pair
	diffIndex(&old.names, &new.names, func(a, b *Node) { pairs = append(pairs, pair{a, b}) })
	keyed := make([]*Node, len(pairs))
	at := make(map[*Node]int, len(pairs))
	for i, p := range pairs {
		n := p.a
		if n == nil {
			n = p.b
		}
		keyed[i] = n
		at[n] = i
	}
	sortCanonical(keyed)
	var soaDel, soaAdd []RR
	for _, n := range keyed {
		p := pairs[at[n]]
		var a, b []RRset
		var name []byte
		if p.a != nil {
			a, name = p.a.Sets, p.a.Name
		}
		if p.b != nil {
			b, name = p.b.Sets, p.b.Name
		}
		apex := len(name) == len(new.origin)
		for _, t := range setTypes(a, b) {
			sa, sb := findSet(a, t), findSet(b, t)
			if apex && t == dns.TypeSOA {
				soaDel, soaAdd = diffSet(name, sa, sb, soaDel, soaAdd)
				continue
			}
			del, add = diffSet(name, sa, sb, del, add)
		}
	}
	return append(soaDel, del...), append(soaAdd, add...)
}

// setTypes returns the types of the RRsets of a and b, in order.
func setTypes(a, b []RRset) []uint16 {
	ts := make([]uint16, 0, len(a)+len(b))
	for i := range a {
		ts = append(ts, a[i].Type)
	}
	for i := range b {
		ts = append(ts, b[i].Type)
	}
	slices.Sort(ts)
	return slices.Compact(ts)
}

func findSet(sets []RRset, t uint16) *RRset {
	for i := range sets {
		if sets[i].Type == t {
			return &sets[i]
		}
	}
	return nil
}

// diffSet appends the records of one RRset (and its RRSIGs) that differ
// between a and b (either may be nil).
func diffSet(name []byte, a, b *RRset, del, add []RR) ([]RR, []RR) {
	var ad, bd, as, bs []byte
	var at, bt, ast, bst uint32
	var t uint16
	if a != nil {
		t, ad, at, ast = a.Type, a.data, a.TTL, a.SigTTL()
		if a.sigs != nil {
			as = a.sigs.data
		}
	}
	if b != nil {
		t, bd, bt, bst = b.Type, b.data, b.TTL, b.SigTTL()
		if b.sigs != nil {
			bs = b.sigs.data
		}
	}
	del, add = diffRecords(name, t, ad, bd, at, bt, del, add)
	return diffRecords(name, dns.TypeRRSIG, as, bs, ast, bst, del, add)
}

// diffRecords appends the records of a not in b to del and those of b not
// in a to add; with different TTLs, all of them.
func diffRecords(name []byte, t uint16, a, b []byte, attl, bttl uint32, del, add []RR) ([]RR, []RR) {
	if bytes.Equal(a, b) && attl == bttl {
		return del, add
	}
	if attl != bttl {
		for rd := range records(a) {
			del = append(del, RR{Name: name, Type: t, TTL: attl, Rdata: rd})
		}
		for rd := range records(b) {
			add = append(add, RR{Name: name, Type: t, TTL: bttl, Rdata: rd})
		}
		return del, add
	}
	in := recordSet(t, b)
	for rd := range records(a) {
		if !in(rd) {
			del = append(del, RR{Name: name, Type: t, TTL: attl, Rdata: rd})
		}
	}
	in = recordSet(t, a)
	for rd := range records(b) {
		if !in(rd) {
			add = append(add, RR{Name: name, Type: t, TTL: bttl, Rdata: rd})
		}
	}
	return del, add
}

// recordSet returns a membership test for the records of data, comparing
// as rdataEqual does.
func recordSet(t uint16, data []byte) func([]byte) bool {
	n := 0
	for range records(data) {
		n++
	}
	if n <= 16 {
		return func(rd []byte) bool {
			for x := range records(data) {
				if rdataEqual(t, x, rd) {
					return true
				}
			}
			return false
		}
	}
	m := make(map[string]bool, n)
	for x := range records(data) {
		m[string(canonicalRdata(t, x))] = true
	}
	return func(rd []byte) bool { return m[string(canonicalRdata(t, rd))] }
}

// Apply returns a new version of z without the records of del and with
// those of add: Zone.Apply with the records as miekg/dns values. Records
// it adds are named "(ixfr)" in errors.
func Apply(z *Zone, del, add []dns.RR) (*Zone, error) {
	d, err := wireRRs("delete", del)
	if err != nil {
		return nil, fmt.Errorf("apply to %s: %w", z.Origin, err)
	}
	a, err := wireRRs("add", add)
	if err != nil {
		return nil, fmt.Errorf("apply to %s: %w", z.Origin, err)
	}
	return z.apply(d, a, func(int) string { return "(ixfr)" }, "")
}

// FromRecords builds a zone from plain records (an AXFR, the store), with
// source naming where they came from in error messages.
func FromRecords(origin string, rrs []dns.RR, source string) (*Zone, error) {
	recs := make([]Record, len(rrs))
	for i, rr := range rrs {
		recs[i] = Record{RR: rr, File: source}
	}
	z, err := Build(origin, recs)
	if err != nil {
		return nil, err
	}
	z.Source = source
	return z, nil
}
