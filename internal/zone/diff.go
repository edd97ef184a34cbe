package zone

import (
	"fmt"
	"sort"

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
// included, in the order an IXFR sequence lists them (RFC 1995 §4).
func Diff(old, new *Zone) (del, add []dns.RR, err error) {
	a, err := old.RRs()
	if err != nil {
		return nil, nil, err
	}
	b, err := new.RRs()
	if err != nil {
		return nil, nil, err
	}
	inA := make(map[string]dns.RR, len(a))
	for _, rr := range a {
		k, err := RRKey(rr)
		if err != nil {
			return nil, nil, err
		}
		inA[k] = rr
	}
	inB := make(map[string]bool, len(b))
	for _, rr := range b {
		k, err := RRKey(rr)
		if err != nil {
			return nil, nil, err
		}
		inB[k] = true
		if prev, ok := inA[k]; !ok || prev.Header().Ttl != rr.Header().Ttl {
			if ok {
				del = append(del, prev)
			}
			add = append(add, rr)
		}
	}
	for _, rr := range a {
		k, _ := RRKey(rr)
		if !inB[k] {
			del = append(del, rr)
		}
	}
	sortSOAFirst(del)
	sortSOAFirst(add)
	return del, add, nil
}

func sortSOAFirst(rrs []dns.RR) {
	sort.SliceStable(rrs, func(i, j int) bool {
		return rrs[i].Header().Rrtype == dns.TypeSOA && rrs[j].Header().Rrtype != dns.TypeSOA
	})
}

// Apply returns a new zone: z without del, with add, validated like a loaded
// zone. z is not modified; on error it stays the one to serve.
func Apply(z *Zone, del, add []dns.RR) (*Zone, error) {
	cur, err := z.RRs()
	if err != nil {
		return nil, err
	}
	drop := make(map[string]bool, len(del))
	for _, rr := range del {
		k, err := RRKey(rr)
		if err != nil {
			return nil, fmt.Errorf("apply to %s: delete %s: %w", z.Origin, rr, err)
		}
		drop[k] = true
	}
	recs := make([]Record, 0, len(cur)+len(add))
	for _, rr := range cur {
		k, _ := RRKey(rr)
		if drop[k] {
			continue
		}
		recs = append(recs, Record{RR: rr, File: "(ixfr)"})
	}
	for _, rr := range add {
		recs = append(recs, Record{RR: rr, File: "(ixfr)"})
	}
	nz, err := Build(z.Origin, recs)
	if err != nil {
		return nil, err
	}
	nz.Source = z.Source
	return nz, nil
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
