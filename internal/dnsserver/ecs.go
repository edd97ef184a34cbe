package dnsserver

import (
	"net/netip"

	"github.com/anycastdns/anycastdns/internal/steer"
)

// ednsECS is the EDNS Client Subnet option (RFC 7871).
const ednsECS = 8

// ecsOpt is a valid ECS option of a query: FAMILY, SOURCE PREFIX-LENGTH and
// ADDRESS as sent (they are echoed as they came, RFC 7871 §7.2.1).
type ecsOpt struct {
	family uint16
	source uint8
	addr   []byte // ceil(source/8) octets, in the query's buffer
}

// parseECS reads the data of an ECS option. ok is false for the malformed
// options RFC 7871 §6 names, answered with FORMERR: a FAMILY other than
// IPv4 (1) or IPv6 (2), a SOURCE PREFIX-LENGTH longer than the family's
// addresses, an ADDRESS of more or fewer octets than the source prefix
// needs, or address bits set beyond it. A SCOPE PREFIX-LENGTH other than 0
// (which a query MUST NOT send) is ignored, as Knot does: the RFC names no
// error for it.
func parseECS(data []byte) (ecsOpt, bool) {
	if len(data) < 4 {
		return ecsOpt{}, false
	}
	o := ecsOpt{family: uint16(data[0])<<8 | uint16(data[1]), source: data[2], addr: data[4:]}
	var bits int
	switch o.family {
	case 1:
		bits = 32
	case 2:
		bits = 128
	default:
		return ecsOpt{}, false
	}
	if int(o.source) > bits || len(o.addr) != (int(o.source)+7)/8 {
		return ecsOpt{}, false
	}
	if rem := o.source % 8; rem != 0 && o.addr[len(o.addr)-1]&(0xFF>>rem) != 0 {
		return ecsOpt{}, false
	}
	return o, true
}

// len is the size of the option's data as echoed.
func (o *ecsOpt) len() int { return 4 + len(o.addr) }

// source fills in what the query says about its client.
func (r *request) source(resolver netip.Addr, src *steer.Source) {
	src.Resolver, src.HasECS = resolver, r.hasECS
	if r.hasECS {
		src.ECSFamily, src.ECSBits, src.ECSAddr = r.ecs.family, r.ecs.source, r.ecs.addr
	}
}
