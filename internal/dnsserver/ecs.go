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

// source returns who a query is for: the ECS subnet when the option has a
// source prefix, else the resolver's address (a source prefix of 0 asks
// that the client's address not be used, RFC 7871 §7.1.2).
func (o *ecsOpt) client(resolver netip.Addr, present bool) steer.Client {
	if !present || o.source == 0 {
		return steer.NewClient(resolver, 128, false)
	}
	var a [16]byte
	copy(a[:], o.addr)
	addr := netip.AddrFrom16(a)
	if o.family == 1 {
		addr = netip.AddrFrom4([4]byte(a[:4]))
	}
	return steer.NewClient(addr, int(o.source), true)
}
