package zone

import "bytes"

// What a DNSSEC signer (internal/sign) needs from a version beyond the
// query path's lookups: the canonical order from a name on, the NSEC3
// hashes in order, the canonical form of rdata, and a builder that takes
// records in wire form.

// Ascend calls fn for the nodes from the first one not before name (a
// lower-cased wire name) on, in canonical order, until fn returns false.
func (z *Zone) Ascend(name []byte, fn func(*Node) bool) {
	z.index().canon.ascend(nodeProbe(name), fn)
}

// Before returns the last node strictly before name in canonical order,
// or nil when name sorts before every node (the apex is the first).
func (z *Zone) Before(name []byte) *Node {
	n, ok := z.index().canon.lastBefore(nodeProbe(name))
	if !ok {
		return nil
	}
	return n
}

// NSEC3After returns the node owning the first NSEC3 record whose hash
// sorts after h, wrapping around to the first one; nil without NSEC3
// records.
func (z *Zone) NSEC3After(h []byte) *Node {
	var out *Node
	z.nsec3.ascend(func(e nsec3Entry) int {
		if bytes.Compare(e.hash, h) <= 0 {
			return -1
		}
		return 1
	}, func(e nsec3Entry) bool { out = e.node; return false })
	if out == nil {
		z.nsec3.ascend(nil, func(e nsec3Entry) bool { out = e.node; return false })
	}
	return out
}

// CanonicalRdata returns rdata of type t in the canonical form of RFC 4034
// §6.2 (the names of the types listed there in lower case), a copy when
// it differs, else rd itself.
func CanonicalRdata(t uint16, rd []byte) []byte { return canonicalRdata(t, rd) }

// Builder builds a zone from records in wire form, validating as Build
// does; records of one owner are best added together.
type Builder struct {
	b      *builder
	source string
}

// NewBuilder starts a zone for origin; sizeHint is the expected number of
// names (0 if unknown), source names the records in errors.
func NewBuilder(origin string, sizeHint int, source string) (*Builder, error) {
	b, err := newBuilder(origin, sizeHint)
	if err != nil {
		return nil, err
	}
	b.noLines = true
	return &Builder{b: b, source: source}, nil
}

// Add adds one record; its owner may be in any letter case. Problems are
// reported by Zone.
func (b *Builder) Add(r RR) {
	if nameLen(r.Name) != len(r.Name) {
		b.b.errorf(Record{File: b.source}, "%x: bad owner name", r.Name)
		return
	}
	b.b.addWire(r.Name, r.Type, r.TTL, r.Rdata, b.source, 0)
}

// Zone finishes the zone; the Builder must not be used afterwards.
func (b *Builder) Zone() (*Zone, error) {
	z, err := b.b.build()
	if err != nil {
		return nil, err
	}
	z.Source = b.source
	return z, nil
}

// Last returns the last node in canonical order.
func (z *Zone) Last() *Node {
	n, _ := z.index().canon.last()
	return n
}
