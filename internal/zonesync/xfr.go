package zonesync

import (
	"errors"
	"fmt"
	"strings"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/zone"
)

// Sentinel errors of transfers, checked with errors.Is.
var (
	// ErrStream: the records of a transfer response do not form a valid
	// AXFR or IXFR sequence.
	ErrStream = errors.New("malformed transfer")
	// ErrDiverged: an IXFR does not apply to the version we hold (it
	// starts at another serial or deletes records we do not have).
	ErrDiverged = errors.New("ixfr does not apply to our version")
)

// xfrKind says what a transfer response turned out to be.
type xfrKind int

const (
	kindNone     xfrKind = iota
	kindUpToDate         // IXFR answered with the single SOA: nothing newer
	kindFull             // AXFR, or AXFR-style reply to an IXFR
	kindDelta            // incremental reply
)

func (k xfrKind) String() string {
	switch k {
	case kindUpToDate:
		return "up-to-date"
	case kindFull:
		return "axfr"
	case kindDelta:
		return "ixfr"
	}
	return "none"
}

// delta is one step of an IXFR: the SOA it starts from and the records it
// deletes, then the SOA it ends at and the records it adds (RFC 1995 §4).
type delta struct {
	from, to *dns.SOA
	del, add []dns.RR
}

// xfrParser reads the answer records of an AXFR or IXFR response in order
// and tells when the sequence is complete. It does no I/O.
//
// A response to an IXFR for serial have is one of: a single SOA whose serial
// is not newer than have (up to date); SOA(new), SOA(have), deletions,
// SOA(v1), additions, [SOA(v1), deletions, SOA(v2), additions]..., SOA(new)
// (incremental); or SOA(new), the zone's records, SOA(new) (AXFR-style).
type xfrParser struct {
	origin     string // canonical name of the zone
	ixfr       bool   // the request was IXFR
	have       uint32 // the serial the IXFR asked from
	maxRecords int

	first  *dns.SOA
	kind   xfrKind
	full   []dns.RR // kindFull: every record, SOA first, without the closing SOA
	deltas []delta  // kindDelta
	inAdd  bool     // kindDelta: reading additions of the last delta
	n      int
	done   bool
}

func newParser(origin string, have *dns.SOA, maxRecords int) *xfrParser {
	p := &xfrParser{origin: dns.CanonicalName(origin), maxRecords: maxRecords}
	if have != nil {
		p.ixfr, p.have = true, have.Serial
	}
	return p
}

func (p *xfrParser) streamErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrStream, fmt.Sprintf(format, args...))
}

// feed consumes the next records of the response.
func (p *xfrParser) feed(rrs []dns.RR) error {
	for _, rr := range rrs {
		if err := p.next(rr); err != nil {
			return err
		}
	}
	return nil
}

func (p *xfrParser) next(rr dns.RR) error {
	if p.done {
		return p.streamErr("record after the end of the transfer: %s", rr.Header())
	}
	p.n++
	if p.maxRecords > 0 && p.n > p.maxRecords {
		return p.streamErr("more than %d records", p.maxRecords)
	}
	soa, isSOA := rr.(*dns.SOA)
	if isSOA && !strings.EqualFold(dns.Fqdn(soa.Hdr.Name), p.origin) {
		return p.streamErr("SOA of %s inside the transfer of %s", soa.Hdr.Name, p.origin)
	}
	switch {
	case p.first == nil:
		if !isSOA {
			return p.streamErr("first record is %s, not the SOA", dns.TypeToString[rr.Header().Rrtype])
		}
		p.first = soa
		if p.ixfr && !zone.SerialLess(p.have, soa.Serial) {
			p.kind, p.done = kindUpToDate, true
		}
		return nil
	case p.kind == kindNone:
		// The second record tells an incremental reply from a full one.
		if isSOA && p.ixfr && soa.Serial != p.first.Serial {
			if soa.Serial != p.have {
				return fmt.Errorf("%w: it starts at serial %d, we have %d", ErrDiverged, soa.Serial, p.have)
			}
			p.kind = kindDelta
			p.deltas = append(p.deltas, delta{from: soa})
			return nil
		}
		p.kind = kindFull
		p.full = append(p.full, p.first)
	}
	if p.kind == kindFull {
		if isSOA {
			if soa.Serial != p.first.Serial {
				return p.streamErr("closing SOA has serial %d, the first %d", soa.Serial, p.first.Serial)
			}
			p.done = true
			return nil
		}
		p.full = append(p.full, rr)
		return nil
	}
	d := &p.deltas[len(p.deltas)-1]
	switch {
	case !isSOA && !p.inAdd:
		d.del = append(d.del, rr)
	case !isSOA:
		d.add = append(d.add, rr)
	case !p.inAdd:
		if !zone.SerialLess(d.from.Serial, soa.Serial) {
			return p.streamErr("step from serial %d to %d goes backwards", d.from.Serial, soa.Serial)
		}
		d.to, p.inAdd = soa, true
	case soa.Serial == p.first.Serial && d.to.Serial == p.first.Serial:
		p.done = true
	case soa.Serial != d.to.Serial:
		return p.streamErr("step starts at serial %d after a step that ended at %d", soa.Serial, d.to.Serial)
	default:
		p.deltas = append(p.deltas, delta{from: soa})
		p.inAdd = false
	}
	return nil
}

// applySteps applies the steps of an IXFR to the version we hold, each
// with zone.Apply in wire form: our SOA and the step's deletions out, the
// step's SOA and additions in. A step that does not start at our serial,
// or deletes a record we do not have, is ErrDiverged: the caller falls
// back to AXFR. Adding a record we have, which the step does not delete,
// replaces it (a TTL change). Each version shares what the step does not
// change with the one before.
func applySteps(cur *zone.Zone, deltas []delta) (*zone.Zone, error) {
	if cur == nil {
		return nil, fmt.Errorf("%w: no current version", ErrDiverged)
	}
	if len(deltas) == 0 {
		return nil, fmt.Errorf("%w: an incremental transfer without steps", ErrStream)
	}
	for _, d := range deltas {
		if d.from.Serial != cur.Serial {
			return nil, fmt.Errorf("%w: step from serial %d, we are at %d", ErrDiverged, d.from.Serial, cur.Serial)
		}
		soa := cur.Apex.Get(dns.TypeSOA)
		del := []zone.RR{{Name: cur.OriginWire(), Type: dns.TypeSOA, TTL: soa.TTL, Rdata: soa.First()}}
		add := make([]zone.RR, 0, len(d.add)+1)
		for _, rrs := range [][]dns.RR{{d.to}, d.add} {
			for _, rr := range rrs {
				w, err := zone.WireRR(rr)
				if err != nil {
					return nil, fmt.Errorf("%w: %w", ErrStream, err)
				}
				add = append(add, w)
			}
		}
		deleted := make(map[string]bool, len(d.del))
		for _, rr := range d.del {
			w, err := zone.WireRR(rr)
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrStream, err)
			}
			if k := w.Key(); !deleted[k] {
				deleted[k] = true
				del = append(del, w)
			}
		}
		for _, w := range add[1:] {
			if k := w.Key(); !deleted[k] && cur.Has(w) {
				deleted[k] = true
				del = append(del, w)
			}
		}
		nz, err := cur.Apply(del, add)
		if errors.Is(err, zone.ErrNoRecord) {
			return nil, fmt.Errorf("%w: serial %d→%d: %w", ErrDiverged, d.from.Serial, d.to.Serial, err)
		}
		if err != nil {
			return nil, fmt.Errorf("serial %d→%d: %w", d.from.Serial, d.to.Serial, err)
		}
		cur = nz
	}
	return cur, nil
}
