package zone

import (
	"encoding/binary"
	"fmt"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/wire"
)

// RR is a resource record of class IN in wire form: the record model of
// differences and changes (DiffWire, Zone.Apply), in the form the zone
// keeps and serves, so that a change is never unpacked into dns.RR values
// on its way.
type RR struct {
	Name  []byte // owner, uncompressed wire form (Apply takes any letter case)
	Type  uint16
	TTL   uint32
	Rdata []byte // uncompressed
}

// WireRR converts a miekg/dns record to wire form. Only class IN is
// accepted.
func WireRR(rr dns.RR) (RR, error) {
	if rr == nil {
		return RR{}, fmt.Errorf("no record")
	}
	h := rr.Header()
	if h.Class != dns.ClassINET {
		return RR{}, fmt.Errorf("%s %s: class %s not supported (only IN)", h.Name, dns.TypeToString[h.Rrtype], dns.ClassToString[h.Class])
	}
	buf := make([]byte, dns.Len(rr)+wire.MaxName+16)
	off, err := dns.PackRR(rr, buf, 0, nil, false)
	if err != nil {
		return RR{}, fmt.Errorf("%s %s: cannot encode record: %w", h.Name, dns.TypeToString[h.Rrtype], err)
	}
	buf = buf[:off]
	n := nameLen(buf)
	if n < 0 || n+10 > len(buf) {
		return RR{}, fmt.Errorf("%s %s: cannot encode record", h.Name, dns.TypeToString[h.Rrtype])
	}
	return RR{
		Name:  buf[:n:n],
		Type:  binary.BigEndian.Uint16(buf[n:]),
		TTL:   binary.BigEndian.Uint32(buf[n+4:]),
		Rdata: buf[n+10:],
	}, nil
}

// DNS converts the record to a miekg/dns value.
func (r RR) DNS() (dns.RR, error) {
	return unpackRdata(NameString(r.Name), r.Type, r.TTL, r.Rdata)
}

// String returns the record in presentation form.
func (r RR) String() string {
	rr, err := r.DNS()
	if err != nil {
		return fmt.Sprintf("%s %d IN %s \\# %d %x", NameString(r.Name), r.TTL, dns.TypeToString[r.Type], len(r.Rdata), r.Rdata)
	}
	return rr.String()
}

// wireRRs converts records to wire form; what names the list in errors.
func wireRRs(what string, rrs []dns.RR) ([]RR, error) {
	out := make([]RR, len(rrs))
	for i, rr := range rrs {
		w, err := WireRR(rr)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", what, i, err)
		}
		out[i] = w
	}
	return out, nil
}

// dnsRRs converts records from wire form.
func dnsRRs(rrs []RR) ([]dns.RR, error) {
	out := make([]dns.RR, len(rrs))
	for i, r := range rrs {
		rr, err := r.DNS()
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", NameString(r.Name), dns.TypeToString[r.Type], err)
		}
		out[i] = rr
	}
	return out, nil
}

// nameLen returns the length of the uncompressed wire name at the start of
// b, or -1 when there is none (a compression pointer, a label running out
// of b, a name over 255 bytes).
func nameLen(b []byte) int {
	for i := 0; i < len(b) && i <= wire.MaxName; {
		l := int(b[i])
		switch {
		case l == 0:
			if i+1 > wire.MaxName {
				return -1
			}
			return i + 1
		case l&0xC0 != 0:
			return -1
		}
		i += 1 + l
	}
	return -1
}

// Key identifies the record as Apply and DiffWire compare records (and
// RRKey dns.RR values): owner without case, type, and rdata with the
// names RFC 4034 §6.2 lists without case; the TTL aside.
func (r RR) Key() string {
	b := make([]byte, 0, len(r.Name)+2+len(r.Rdata))
	b = append(b, r.Name...)
	wire.LowerName(b, b)
	b = binary.BigEndian.AppendUint16(b, r.Type)
	return string(append(b, canonicalRdata(r.Type, r.Rdata)...))
}

// Has reports whether the version holds the record, compared as Key
// compares.
func (z *Zone) Has(r RR) bool {
	if nameLen(r.Name) != len(r.Name) {
		return false
	}
	n := z.Lookup(wire.LowerName(make([]byte, len(r.Name)), r.Name))
	if n == nil {
		return false
	}
	covered := r.Type
	if r.Type == dns.TypeRRSIG {
		covered = RRSIGCovered(r.Rdata)
	}
	s := n.Get(covered)
	if s == nil {
		return false
	}
	data := s.data
	if r.Type == dns.TypeRRSIG {
		if s.sigs == nil {
			return false
		}
		data = s.sigs.data
	}
	for rd := range records(data) {
		if rdataEqual(r.Type, rd, r.Rdata) {
			return true
		}
	}
	return false
}
