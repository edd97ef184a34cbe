package store

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/wire"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// encodeRRs packs records one after another in uncompressed wire format.
func encodeRRs(rrs []dns.RR) ([]byte, error) {
	n := 0
	for _, rr := range rrs {
		n += dns.Len(rr) + 16
	}
	buf := make([]byte, n)
	off := 0
	for _, rr := range rrs {
		var err error
		off, err = dns.PackRR(rr, buf, off, nil, false)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", rr.Header().Name, err)
		}
	}
	return buf[:off], nil
}

// encodeWire is encodeRRs of records in the zone's wire form (class IN;
// the owner in lower case, as the zone's values give it), packed as they
// are instead of through miekg/dns values: the change log entry of a
// whole-zone signing holds every signature of the zone.
func encodeWire(rrs []zone.RR) []byte {
	n := 0
	for i := range rrs {
		n += len(rrs[i].Name) + 10 + len(rrs[i].Rdata)
	}
	buf := make([]byte, 0, n)
	for i := range rrs {
		r := &rrs[i]
		at := len(buf)
		buf = append(buf, r.Name...)
		wire.LowerName(buf[at:], r.Name)
		buf = binary.BigEndian.AppendUint16(buf, r.Type)
		buf = binary.BigEndian.AppendUint16(buf, dns.ClassINET)
		buf = binary.BigEndian.AppendUint32(buf, r.TTL)
		buf = binary.BigEndian.AppendUint16(buf, uint16(len(r.Rdata)))
		buf = append(buf, r.Rdata...)
	}
	return buf
}

// decodeRRs reverses encodeRRs.
func decodeRRs(data []byte) ([]dns.RR, error) {
	var out []dns.RR
	for off := 0; off < len(data); {
		rr, next, err := dns.UnpackRR(data, off)
		if err != nil {
			return nil, fmt.Errorf("decode record at offset %d: %w", off, err)
		}
		if next <= off {
			return nil, fmt.Errorf("decode record at offset %d: no progress", off)
		}
		out = append(out, rr)
		off = next
	}
	return out, nil
}

// wireRRs converts records to the zone's wire form; what, when not empty,
// names the list in errors ("records[2]: ...").
func wireRRs(rrs []dns.RR, what string) ([]zone.RR, error) {
	out := make([]zone.RR, len(rrs))
	for i, rr := range rrs {
		w, err := zone.WireRR(rr)
		if err != nil {
			if what != "" {
				return nil, fmt.Errorf("%s[%d]: %w", what, i, err)
			}
			return nil, err
		}
		out[i] = w
	}
	return out, nil
}

// dnsRRs converts records from the zone's wire form.
func dnsRRs(rrs []zone.RR) ([]dns.RR, error) {
	out := make([]dns.RR, len(rrs))
	for i, r := range rrs {
		rr, err := r.DNS()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", r, err)
		}
		out[i] = rr
	}
	return out, nil
}

// normalize returns copies of rrs with the owner set to the canonical name,
// class IN where it was left zero, and, except for RRSIG, every TTL the
// lowest of the set, as the zone serves them (RFC 2181 §5.2).
func normalize(owner string, rrs []dns.RR) []dns.RR {
	out := make([]dns.RR, len(rrs))
	ttl := ^uint32(0)
	for i, rr := range rrs {
		c := dns.Copy(rr)
		h := c.Header()
		h.Name = owner
		if h.Class == 0 {
			h.Class = dns.ClassINET
		}
		ttl = min(ttl, h.Ttl)
		out[i] = c
	}
	for _, rr := range out {
		if rr.Header().Rrtype != dns.TypeRRSIG {
			rr.Header().Ttl = ttl
		}
	}
	return out
}

// groupRRs splits records into RRsets by owner and type, RRSIGs into one
// set per owner.
func groupRRs(rrs []dns.RR) map[setKey][]dns.RR {
	sets := make(map[setKey][]dns.RR, len(rrs)/2+1)
	for _, rr := range rrs {
		h := rr.Header()
		k := setKey{strings.ToLower(h.Name), h.Rrtype}
		sets[k] = append(sets[k], rr)
	}
	return sets
}

// sortedKeys returns the keys of sets in a stable order, for writes whose
// order should not depend on map iteration.
func sortedKeys(sets map[setKey][]dns.RR) []setKey {
	keys := make([]setKey, 0, len(sets))
	for k := range sets {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b setKey) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return int(a.typ) - int(b.typ)
	})
	return keys
}
