package knotdiff

import (
	"encoding/binary"
	"strings"

	"github.com/miekg/dns"
)

// Query types without a constant in miekg/dns.
const (
	typeUnknown65400 = 65400 // present in types.example. in RFC 3597 form
	typeUnknown65401 = 65401 // present nowhere
)

// ecs is an EDNS(0) query with one ECS option of the given fields, raw so
// that malformed ones can be sent.
func ecs(family uint16, source, scope uint8, addr ...byte) *ednsQuery {
	data := append(binary.BigEndian.AppendUint16(nil, family), source, scope)
	return &ednsQuery{size: 1232, options: []dns.EDNS0{&dns.EDNS0_LOCAL{Code: dns.EDNS0SUBNET, Data: append(data, addr...)}}}
}

// queries is the list sent to both servers. Each group says which part of
// the checklist it covers; want is what Knot answers (see expect).
func queries() []query {
	var qs []query
	add := func(group string, list ...query) {
		for _, q := range list {
			if q.note == "" {
				q.note = group
			} else {
				q.note = group + ": " + q.note
			}
			qs = append(qs, q)
		}
	}

	// Authoritative answers with AA, from the apex and below it, with
	// additional-section processing for NS, MX and SRV.
	add("authoritative",
		query{qname: "example.com.", qtype: dns.TypeSOA, want: ok(1)},
		query{qname: "example.com.", qtype: dns.TypeSOA, edns: e0(), want: ok(1)},
		query{qname: "example.com.", qtype: dns.TypeNS, edns: e0(), want: ok(2), note: "glue for in-zone servers"},
		query{qname: "example.com.", qtype: dns.TypeA, want: ok(1)},
		query{qname: "example.com.", qtype: dns.TypeAAAA, edns: e0(), want: ok(1)},
		query{qname: "example.com.", qtype: dns.TypeMX, edns: e0(), want: ok(2), note: "A of the in-zone exchange only"},
		query{qname: "example.com.", qtype: dns.TypeTXT, want: ok(1)},
		query{qname: "www.example.com.", qtype: dns.TypeA, want: ok(1)},
		query{qname: "www.example.com.", qtype: dns.TypeA, rd: true, want: ok(1), note: "RD echoed, RA clear"},
		query{qname: "www.example.com.", qtype: dns.TypeA, tcp: true, want: ok(1)},
		query{qname: "www.example.com.", qtype: dns.TypeAAAA, edns: e0(), want: ok(1)},
		query{qname: "www.example.com.", qtype: dns.TypeTXT, edns: e0(), want: ok(1)},
		query{qname: "www.example.com.", qtype: dns.TypeA, cd: true, edns: e0(), want: ok(1), note: "CD echoed"},
		query{qname: "www.example.com.", qtype: dns.TypeA, ad: true, edns: e0(), want: ok(1), note: "AD in query"},
		query{qname: "www.example.com.", qtype: dns.TypeA, z: true, want: ok(1), note: "header Z bit set"},
		query{qname: "short.example.com.", qtype: dns.TypeA, want: ok(1), note: "own TTL"},
		query{qname: "_sip._udp.example.com.", qtype: dns.TypeSRV, edns: e0(), want: ok(1), note: "SRV target in additional"},
		query{qname: "info.example.com.", qtype: dns.TypeHINFO, want: ok(1)},
		query{qname: "ns1.example.com.", qtype: dns.TypeAAAA, want: ok(1)},
		query{qname: "example.com.", qtype: dns.TypeDS, edns: e0(), want: nodata(), note: "DS at an apex whose parent is not served"},
		query{qname: "www.example.com.", qtype: dns.TypeSOA, want: nodata(), note: "SOA below the apex"},
		query{qname: "www.example.com.", qtype: typeUnknown65401, want: nodata(), note: "unknown type"},
	)

	// NXDOMAIN and NODATA: SOA in authority, TTL min(SOA TTL, MINIMUM).
	// example.com. has SOA TTL 3600 > MINIMUM 300; example.net. has
	// SOA TTL 60 < MINIMUM 600.
	add("negative",
		query{qname: "nonexistent.example.com.", qtype: dns.TypeA, want: nxdomain(0), note: "TTL from MINIMUM"},
		query{qname: "nonexistent.example.com.", qtype: dns.TypeA, edns: e0(), want: nxdomain(0)},
		query{qname: "nonexistent.example.com.", qtype: dns.TypeA, tcp: true, want: nxdomain(0)},
		query{qname: "a.b.c.nonexistent.example.com.", qtype: dns.TypeTXT, want: nxdomain(0)},
		query{qname: "www.example.com.", qtype: dns.TypeMX, want: nodata(), note: "TTL from MINIMUM"},
		query{qname: "mail.example.com.", qtype: dns.TypeAAAA, edns: e0(), want: nodata()},
		query{qname: "nonexistent.example.net.", qtype: dns.TypeA, want: nxdomain(0), note: "TTL from SOA TTL"},
		query{qname: "nonexistent.example.net.", qtype: dns.TypeAAAA, edns: e0(), tcp: true, want: nxdomain(0), note: "TTL from SOA TTL"},
		query{qname: "www.example.net.", qtype: dns.TypeMX, want: nodata(), note: "TTL from SOA TTL"},
		query{qname: "www.example.net.", qtype: dns.TypeA, want: ok(1)},
	)

	// CNAME chains are followed inside the zone, not into other zones.
	add("cname",
		query{qname: "alias1.example.com.", qtype: dns.TypeA, want: ok(4), note: "three hops"},
		query{qname: "alias1.example.com.", qtype: dns.TypeAAAA, edns: e0(), want: ok(4), note: "three hops"},
		query{qname: "alias2.example.com.", qtype: dns.TypeTXT, want: ok(3)},
		query{qname: "alias1.example.com.", qtype: dns.TypeCNAME, want: ok(1), note: "the CNAME itself"},
		query{qname: "out.example.com.", qtype: dns.TypeA, want: ok(1), note: "target outside every served zone"},
		query{qname: "cross.example.com.", qtype: dns.TypeA, edns: e0(), want: ok(1), note: "target in another served zone"},
		query{qname: "chain-nodata.example.com.", qtype: dns.TypeMX, want: ok(2), note: "chain ends in NODATA"},
		query{qname: "chain-nx.example.com.", qtype: dns.TypeA, want: nxdomain(2), note: "chain ends in NXDOMAIN"},
		query{qname: "chain-nx.example.com.", qtype: dns.TypeA, edns: e0(), tcp: true, want: nxdomain(2), note: "chain ends in NXDOMAIN"},
		query{qname: "to-wild.example.com.", qtype: dns.TypeA, want: ok(2), note: "chain ends in a wildcard"},
		query{qname: "to-deleg.example.com.", qtype: dns.TypeA, edns: e0(), want: ok(1), note: "chain ends in a referral"},
		query{qname: "loop1.example.com.", qtype: dns.TypeA, want: ok(2), note: "loop"},
	)

	// DNAME synthesis (RFC 6672).
	longPrefix := strings.Repeat("p", 63) + "." + strings.Repeat("q", 63) + "."
	add("dname",
		query{qname: "www.old.example.com.", qtype: dns.TypeA, want: ok(3), note: "synthesized CNAME followed in zone"},
		query{qname: "www.old.example.com.", qtype: dns.TypeA, edns: e0(), tcp: true, want: ok(3)},
		query{qname: "a.b.old.example.com.", qtype: dns.TypeA, want: ok(3), note: "two labels below"},
		query{qname: "nothere.old.example.com.", qtype: dns.TypeA, want: nxdomain(2), note: "target does not exist"},
		query{qname: "www.old.example.com.", qtype: dns.TypeCNAME, want: ok(2), note: "QTYPE CNAME"},
		query{qname: "www.old.example.com.", qtype: dns.TypeDNAME, want: ok(2), note: "QTYPE DNAME below the owner"},
		query{qname: "old.example.com.", qtype: dns.TypeDNAME, want: ok(1), note: "the owner itself"},
		query{qname: "old.example.com.", qtype: dns.TypeA, want: nodata(), note: "owner is not redirected"},
		query{qname: "old.example.com.", qtype: dns.TypeTXT, want: ok(1), note: "owner's other data"},
		query{qname: "www.ext.example.com.", qtype: dns.TypeA, edns: e0(), want: ok(2), note: "target in another zone"},
		// RFC 6672 §2.2 requires YXDOMAIN; Knot 3.2.6 answers NXDOMAIN, which
		// the knot-dname-overflow correction in the comparator accounts for.
		query{qname: longPrefix + "long.example.com.", qtype: dns.TypeA, want: nxdomain(1), note: "substitution over 255 octets"},
	)

	// Referrals, glue, DS from the parent side, RFC 9471 truncation.
	add("delegation",
		query{qname: "www.sub.example.com.", qtype: dns.TypeA, want: referral(), note: "below the cut"},
		query{qname: "www.sub.example.com.", qtype: dns.TypeA, edns: e0(), rd: true, want: referral()},
		query{qname: "sub.example.com.", qtype: dns.TypeNS, want: referral(), note: "NS at the cut"},
		query{qname: "sub.example.com.", qtype: dns.TypeA, edns: e0(), want: referral(), note: "at the cut"},
		query{qname: "ns1.sub.example.com.", qtype: dns.TypeA, want: referral(), note: "glue is not an answer"},
		query{qname: "a.b.www.sub.example.com.", qtype: dns.TypeMX, tcp: true, want: referral(), note: "deep below the cut"},
		query{qname: "sub.example.com.", qtype: dns.TypeDS, want: ok(1), note: "DS present, from the parent"},
		query{qname: "sub.example.com.", qtype: dns.TypeDS, edns: e0(), tcp: true, want: ok(1), note: "DS present, from the parent"},
		query{qname: "nods.example.com.", qtype: dns.TypeDS, want: nodata(), note: "DS absent, from the parent"},
		query{qname: "www.sub.example.com.", qtype: dns.TypeDS, want: referral(), note: "DS below the cut"},
		query{qname: "host.nods.example.com.", qtype: dns.TypeAAAA, edns: e0(), want: referral()},
		query{qname: "big.example.com.", qtype: dns.TypeA, want: truncated(false), note: "in-domain glue over 512 octets (RFC 9471)"},
		query{qname: "www.big.example.com.", qtype: dns.TypeA, edns: &ednsQuery{size: 512}, want: truncated(false), note: "in-domain glue over 512 octets (RFC 9471)"},
		query{qname: "www.big.example.com.", qtype: dns.TypeA, edns: e0(), want: referral(), note: "all glue fits 1232"},
		query{qname: "big.example.com.", qtype: dns.TypeNS, tcp: true, want: referral(), note: "all glue over TCP"},
		query{qname: "big.example.com.", qtype: dns.TypeDS, want: nodata(), note: "DS absent at the big cut"},
		query{qname: "www.example.com.", qtype: dns.TypeRRSIG, want: nodata(), note: "RRSIG query, unsigned zone"},
	)

	// A message filled with whole RRsets as far as they fit (RFC 2181 §9;
	// issue 10): an RRset of glue or additional addresses that does not fit
	// does not end the section, a smaller one after it may. Truncated
	// answers are compared in full, like the others.
	add("fill",
		query{qname: "www.big.example.com.", qtype: dns.TypeA, want: truncated(false), note: "glue over 512 octets"},
		query{qname: "www.big.example.com.", qtype: dns.TypeA, edns: &ednsQuery{size: 600}, want: truncated(false), note: "glue over 600 octets"},
		query{qname: "www.big.example.com.", qtype: dns.TypeA, edns: &ednsQuery{size: 700}, want: truncated(false), note: "glue over 700 octets"},
		query{qname: "www.big.example.com.", qtype: dns.TypeA, edns: &ednsQuery{size: 800, do: true}, want: truncated(false), note: "glue over 800 octets"},
		query{qname: "big.example.com.", qtype: dns.TypeNS, edns: &ednsQuery{size: 512, do: true}, want: truncated(false), note: "NS at the cut, glue over 512 octets"},
		query{qname: "manymx.example.com.", qtype: dns.TypeMX, want: ok(10), note: "additional addresses over 512 octets, no TC"},
		query{qname: "manymx.example.com.", qtype: dns.TypeMX, edns: &ednsQuery{size: 512}, want: ok(10), note: "additional addresses over 512 octets, no TC"},
		query{qname: "manymx.example.com.", qtype: dns.TypeMX, edns: &ednsQuery{size: 600}, want: ok(10), note: "additional addresses over 600 octets, no TC"},
		query{qname: "manymx.example.com.", qtype: dns.TypeMX, edns: &ednsQuery{size: 700, nsid: true}, want: ok(10), note: "additional addresses and NSID over 700 octets"},
		query{qname: "manymx.example.com.", qtype: dns.TypeMX, edns: e0(), want: ok(10), note: "all additional addresses fit 1232"},
		query{qname: "fill.example.com.", qtype: dns.TypeTXT, edns: &ednsQuery{size: 512}, want: ok(1), note: "answer and OPT exactly within 512 octets"},
		query{qname: "fill.example.com.", qtype: dns.TypeTXT, want: ok(1), note: "answer within 512 octets"},
		query{qname: "fill.example.com.", qtype: dns.TypeTXT, edns: &ednsQuery{size: 512, nsid: true}, want: truncated(true), note: "answer, OPT and NSID over 512 octets"},
	)

	// A parent and its children served together (issue 10): DS at a
	// child's apex is the parent's data (RFC 4034 §5, RFC 4035 §3.1.4.1),
	// the DS RRset or the parent's NODATA with the parent's SOA, and with
	// DO in a signed parent its signatures and NSEC/NSEC3 proof. Every
	// other query at or below the apex is the child's. A child without its
	// parent here answers DS itself (nsec.example., nsec3.example.,
	// example.com.), a parent without the child gives the referral's DS
	// (sub., nods., secure., insecure.).
	add("zone cut",
		query{qname: "kid.example.com.", qtype: dns.TypeDS, want: ok(1), note: "DS from the unsigned parent"},
		query{qname: "kid.example.com.", qtype: dns.TypeDS, edns: eDO(), want: ok(1), note: "DS from the unsigned parent, DO"},
		query{qname: "kid.example.com.", qtype: dns.TypeDS, tcp: true, want: ok(1), note: "DS from the unsigned parent"},
		query{qname: "kidnods.example.com.", qtype: dns.TypeDS, want: nodata(), note: "no DS: the parent's NODATA"},
		query{qname: "kidnods.example.com.", qtype: dns.TypeDS, edns: eDO(), want: nodata(), note: "no DS: the parent's NODATA, DO"},
		query{qname: "orphan.example.com.", qtype: dns.TypeDS, want: nxdomain(0), note: "no delegation in the parent: the parent's NXDOMAIN"},
		query{qname: "orphan.example.com.", qtype: dns.TypeSOA, want: ok(1), note: "the child answers the rest"},
		query{qname: "kid.example.com.", qtype: dns.TypeSOA, want: ok(1), note: "the child answers the rest"},
		query{qname: "kid.example.com.", qtype: dns.TypeNS, edns: e0(), want: ok(1), note: "the child answers the rest"},
		query{qname: "kid.example.com.", qtype: dns.TypeDNSKEY, edns: eDO(), want: nodata(), note: "the child answers the rest"},
		query{qname: "www.kid.example.com.", qtype: dns.TypeA, want: ok(1), note: "the child answers the rest"},
		query{qname: "www.kid.example.com.", qtype: dns.TypeDS, want: nodata(), note: "DS below the child's apex is the child's"},
		query{qname: "sub.example.com.", qtype: dns.TypeDS, edns: eDO(), want: ok(1), note: "only the parent served, DO"},
		query{qname: "example.com.", qtype: dns.TypeDS, edns: eDO(), want: nodata(), note: "only the child served, DO"},
		query{qname: "KID.example.COM.", qtype: dns.TypeDS, want: ok(1), note: "mixed case"},
	)
	for _, parent := range []string{"nsec.example.", "nsec3.example."} {
		add("zone cut",
			query{qname: "kid." + parent, qtype: dns.TypeDS, edns: eDO(), want: ok(2), note: "DS and RRSIG from the signed parent"},
			query{qname: "kid." + parent, qtype: dns.TypeDS, edns: eDO(), tcp: true, want: ok(2), note: "DS and RRSIG from the signed parent"},
			query{qname: "kid." + parent, qtype: dns.TypeDS, edns: e0(), want: ok(1), note: "DS from the signed parent, DO=0"},
			query{qname: "kid." + parent, qtype: dns.TypeDS, want: ok(1), note: "DS from the signed parent, no EDNS"},
			query{qname: "kidnods." + parent, qtype: dns.TypeDS, edns: eDO(), want: nodata(), note: "no DS: the parent's NODATA proof"},
			query{qname: "kidnods." + parent, qtype: dns.TypeDS, edns: e0(), want: nodata(), note: "no DS: the parent's NODATA, DO=0"},
			query{qname: "kid." + parent, qtype: dns.TypeDNSKEY, edns: eDO(), want: ok(2), note: "the signed child answers the rest"},
			query{qname: "kid." + parent, qtype: dns.TypeSOA, edns: eDO(), want: ok(2), note: "the signed child answers the rest"},
			query{qname: "kid." + parent, qtype: dns.TypeNS, edns: eDO(), want: ok(2), note: "the signed child answers the rest"},
			query{qname: "www.kid." + parent, qtype: dns.TypeDS, edns: eDO(), want: nodata(), note: "DS below the child's apex: the child's proof"},
			query{qname: "nonexistent.kid." + parent, qtype: dns.TypeA, edns: eDO(), want: nxdomain(0), note: "the signed child's NXDOMAIN proof"},
			query{qname: "kidnods." + parent, qtype: dns.TypeSOA, edns: eDO(), want: ok(1), note: "the unsigned child answers the rest"},
			query{qname: parent, qtype: dns.TypeDS, edns: eDO(), want: nodata(), note: "only the signed child served: its own NODATA proof"},
			query{qname: parent, qtype: dns.TypeDS, want: nodata(), note: "only the signed child served, no EDNS"},
		)
	}

	// Wildcards (RFC 4592).
	add("wildcard",
		query{qname: "host.wild.example.com.", qtype: dns.TypeA, want: ok(1), note: "answer"},
		query{qname: "host.wild.example.com.", qtype: dns.TypeTXT, edns: e0(), want: ok(1), note: "answer"},
		query{qname: "a.b.c.wild.example.com.", qtype: dns.TypeA, want: ok(1), note: "several labels"},
		query{qname: "host.wild.example.com.", qtype: dns.TypeMX, want: nodata(), note: "NODATA"},
		query{qname: "host.wild.example.com.", qtype: dns.TypeAAAA, edns: e0(), tcp: true, want: nodata(), note: "NODATA"},
		query{qname: "exists.wild.example.com.", qtype: dns.TypeA, want: ok(1), note: "existing name wins"},
		query{qname: "exists.wild.example.com.", qtype: dns.TypeTXT, want: nodata(), note: "existing name blocks the wildcard"},
		query{qname: "ent.wild.example.com.", qtype: dns.TypeA, want: nodata(), note: "empty non-terminal blocks it"},
		query{qname: "foo.ent.wild.example.com.", qtype: dns.TypeA, want: nxdomain(0), note: "below an empty non-terminal"},
		query{qname: "x.ent.wild.example.com.", qtype: dns.TypeA, want: ok(1)},
		query{qname: "*.wild.example.com.", qtype: dns.TypeA, want: ok(1), note: "the wildcard name itself"},
		query{qname: "foo.cname.example.com.", qtype: dns.TypeA, want: ok(2), note: "wildcard CNAME followed"},
		query{qname: "foo.cname.example.com.", qtype: dns.TypeMX, edns: e0(), want: ok(1), note: "wildcard CNAME to NODATA"},
		query{qname: "foo.cname.example.com.", qtype: dns.TypeCNAME, want: ok(1), note: "wildcard CNAME itself"},
		query{qname: "foo.wb.example.com.", qtype: dns.TypeA, want: ok(1), note: "wildcard with a name below it"},
		query{qname: "foo.bar.wb.example.com.", qtype: dns.TypeA, want: ok(1), note: "wildcard with a name below it"},
		query{qname: "host.*.wb.example.com.", qtype: dns.TypeA, want: ok(1), note: "the name below the wildcard"},
		query{qname: "other.*.wb.example.com.", qtype: dns.TypeA, want: nxdomain(0), note: "beside the name below the wildcard"},
		query{qname: "a.host.*.wb.example.com.", qtype: dns.TypeA, want: nxdomain(0), note: "below the name below the wildcard"},
	)

	// ANY (RFC 8482).
	add("any",
		query{qname: "www.example.com.", qtype: dns.TypeANY, want: ok(1)},
		query{qname: "www.example.com.", qtype: dns.TypeANY, tcp: true, want: ok(1)},
		query{qname: "example.com.", qtype: dns.TypeANY, edns: e0(), want: ok(1), note: "apex"},
		query{qname: "host.wild.example.com.", qtype: dns.TypeANY, want: ok(1), note: "wildcard"},
		query{qname: "nonexistent.example.com.", qtype: dns.TypeANY, want: nxdomain(0)},
		query{qname: "ent.wild.example.com.", qtype: dns.TypeANY, want: nodata(), note: "empty non-terminal"},
		query{qname: "www.sub.example.com.", qtype: dns.TypeANY, want: referral()},
		query{qname: "www.nsec.example.", qtype: dns.TypeANY, edns: eDO(), want: ok(2), note: "signed"},
	)

	// Names outside every served zone.
	add("refused",
		query{qname: "www.example.org.", qtype: dns.TypeA, want: rcode(dns.RcodeRefused)},
		query{qname: "www.example.org.", qtype: dns.TypeA, edns: e0(), rd: true, want: rcode(dns.RcodeRefused)},
		query{qname: "www.example.org.", qtype: dns.TypeA, tcp: true, want: rcode(dns.RcodeRefused)},
		query{qname: "com.", qtype: dns.TypeNS, want: rcode(dns.RcodeRefused), note: "parent of a served zone"},
		query{qname: "example.", qtype: dns.TypeSOA, want: rcode(dns.RcodeRefused), note: "parent of a served zone"},
		query{qname: ".", qtype: dns.TypeNS, want: rcode(dns.RcodeRefused), note: "root"},
		query{qname: "example.com.", qtype: dns.TypeSOA, qclass: dns.ClassCHAOS, want: rcode(dns.RcodeRefused), note: "served name, other class"},
	)

	// Opcodes other than QUERY.
	add("opcode",
		query{qname: "www.example.com.", qtype: dns.TypeA, opcode: dns.OpcodeIQuery, want: rcode(dns.RcodeNotImplemented)},
		query{qname: "www.example.com.", qtype: dns.TypeA, opcode: dns.OpcodeStatus, want: rcode(dns.RcodeNotImplemented)},
		query{qname: "www.example.com.", qtype: dns.TypeA, opcode: 3, want: rcode(dns.RcodeNotImplemented), note: "unassigned"},
		query{qname: "www.example.com.", qtype: dns.TypeA, opcode: 15, edns: e0(), want: rcode(dns.RcodeNotImplemented), note: "unassigned"},
	)

	// Malformed queries: whether each server answers, and the RCODE. Knot
	// drops some (no answer) and answers FORMERR to others.
	add("malformed", malformedQueries()...)

	// CHAOS identity queries (RFC 4892); the identity is the NSID text.
	add("chaos",
		query{qname: "id.server.", qtype: dns.TypeTXT, qclass: dns.ClassCHAOS, want: rcode(dns.RcodeSuccess).with(1)},
		query{qname: "hostname.bind.", qtype: dns.TypeTXT, qclass: dns.ClassCHAOS, want: rcode(dns.RcodeSuccess).with(1)},
		query{qname: "version.bind.", qtype: dns.TypeTXT, qclass: dns.ClassCHAOS, want: rcode(dns.RcodeSuccess).with(1)},
		query{qname: "version.server.", qtype: dns.TypeTXT, qclass: dns.ClassCHAOS, want: rcode(dns.RcodeSuccess).with(1)},
		query{qname: "ID.Server.", qtype: dns.TypeTXT, qclass: dns.ClassCHAOS, edns: e0(), want: rcode(dns.RcodeSuccess).with(1), note: "mixed case"},
		query{qname: "id.server.", qtype: dns.TypeTXT, qclass: dns.ClassCHAOS, tcp: true, want: rcode(dns.RcodeSuccess).with(1)},
		query{qname: "authors.bind.", qtype: dns.TypeTXT, qclass: dns.ClassCHAOS, want: rcode(dns.RcodeRefused), note: "not offered"},
		query{qname: "id.server.", qtype: dns.TypeA, qclass: dns.ClassCHAOS, want: rcode(dns.RcodeRefused), note: "not TXT"},
	)

	// EDNS(0): echo, versions, buffer sizes, NSID, unknown options.
	add("edns",
		query{qname: "www.example.com.", qtype: dns.TypeA, edns: e0(), want: ok(1), note: "OPT echoed"},
		query{qname: "www.example.com.", qtype: dns.TypeA, edns: eDO(), want: ok(1), note: "DO echoed, unsigned zone"},
		query{qname: "nonexistent.example.com.", qtype: dns.TypeA, edns: eDO(), want: nxdomain(0), note: "DO, unsigned zone"},
		query{qname: "www.example.com.", qtype: dns.TypeA, edns: &ednsQuery{version: 1, size: 1232}, want: rcode(dns.RcodeBadVers), note: "BADVERS"},
		query{qname: "www.example.com.", qtype: dns.TypeA, edns: &ednsQuery{version: 1, size: 1232, do: true}, tcp: true, want: rcode(dns.RcodeBadVers), note: "BADVERS"},
		query{qname: "www.example.org.", qtype: dns.TypeA, edns: &ednsQuery{version: 2, size: 1232}, want: rcode(dns.RcodeBadVers), note: "BADVERS before REFUSED"},
		query{qname: "www.example.com.", qtype: dns.TypeA, edns: &ednsQuery{size: 1232, nsid: true}, want: ok(1), note: "NSID"},
		query{qname: "nonexistent.example.com.", qtype: dns.TypeA, edns: &ednsQuery{size: 1232, nsid: true}, tcp: true, want: nxdomain(0), note: "NSID"},
		query{qname: "www.example.org.", qtype: dns.TypeA, edns: &ednsQuery{size: 1232, nsid: true}, want: rcode(dns.RcodeRefused), note: "NSID on REFUSED"},
		query{qname: "www.example.com.", qtype: dns.TypeA, edns: &ednsQuery{size: 1232, options: []dns.EDNS0{&dns.EDNS0_LOCAL{Code: 65001, Data: []byte{1, 2, 3}}}}, want: ok(1), note: "unknown option ignored"},
		query{qname: "www.example.com.", qtype: dns.TypeA, edns: &ednsQuery{size: 1232, z: 0x1}, want: ok(1), note: "OPT Z bit not echoed"},
		query{qname: "www.example.com.", qtype: dns.TypeA, edns: &ednsQuery{size: 100}, want: ok(1), note: "buffer under 512"},
		query{qname: "many.example.com.", qtype: dns.TypeA, want: truncated(true), note: "40 A without EDNS"},
		query{qname: "many.example.com.", qtype: dns.TypeA, edns: &ednsQuery{size: 512}, want: truncated(true), note: "40 A, 512 buffer"},
		query{qname: "many.example.com.", qtype: dns.TypeA, edns: &ednsQuery{size: 100}, want: truncated(true), note: "40 A, buffer under 512 counts as 512"},
		query{qname: "many.example.com.", qtype: dns.TypeA, edns: e0(), want: ok(40), note: "40 A, 1232 buffer"},
		query{qname: "many.example.com.", qtype: dns.TypeA, edns: &ednsQuery{size: 4096}, want: ok(40), note: "40 A, 4096 buffer"},
		query{qname: "many.example.com.", qtype: dns.TypeA, tcp: true, want: ok(40), note: "40 A over TCP"},
		query{qname: "midtxt.example.com.", qtype: dns.TypeTXT, want: truncated(true), note: "900 octets of TXT without EDNS"},
		query{qname: "midtxt.example.com.", qtype: dns.TypeTXT, edns: &ednsQuery{size: 512}, want: truncated(true), note: "900 octets of TXT, 512 buffer"},
		query{qname: "midtxt.example.com.", qtype: dns.TypeTXT, edns: e0(), want: ok(8), note: "900 octets of TXT, 1232 buffer"},
		query{qname: "bigtxt.example.com.", qtype: dns.TypeTXT, edns: &ednsQuery{size: 4096}, want: truncated(true), note: "2.6k of TXT over the server's 1232"},
		query{qname: "bigtxt.example.com.", qtype: dns.TypeTXT, edns: &ednsQuery{size: 4096}, tcp: true, want: ok(24), note: "2.6k of TXT over TCP"},
		query{qname: "bigtxt.example.com.", qtype: dns.TypeTXT, tcp: true, want: ok(24), note: "2.6k of TXT over TCP without EDNS"},
	)

	// EDNS Client Subnet (RFC 7871) on answers that are not steered: the
	// option is echoed with SCOPE PREFIX-LENGTH 0; malformed ones are
	// FORMERR.
	add("ecs",
		query{qname: "www.example.com.", qtype: dns.TypeA, edns: ecs(1, 24, 0, 198, 51, 100), want: ok(1), note: "IPv4 /24"},
		query{qname: "www.example.com.", qtype: dns.TypeA, edns: ecs(1, 32, 0, 198, 51, 100, 7), want: ok(1), note: "IPv4 /32"},
		query{qname: "www.example.com.", qtype: dns.TypeAAAA, edns: ecs(2, 56, 0, 0x20, 1, 0xd, 0xb8, 0, 1, 2), want: ok(1), note: "IPv6 /56"},
		query{qname: "www.example.com.", qtype: dns.TypeA, edns: ecs(1, 0, 0), want: ok(1), note: "source 0"},
		query{qname: "www.example.com.", qtype: dns.TypeA, edns: ecs(1, 24, 0, 198, 51, 100), tcp: true, want: ok(1), note: "over TCP"},
		query{qname: "nonexistent.example.com.", qtype: dns.TypeA, edns: ecs(1, 24, 0, 198, 51, 100), want: nxdomain(0), note: "NXDOMAIN"},
		query{qname: "www.example.org.", qtype: dns.TypeA, edns: ecs(1, 24, 0, 198, 51, 100), want: rcode(dns.RcodeRefused), note: "REFUSED"},
		query{qname: "www.example.com.", qtype: dns.TypeA, edns: ecs(3, 24, 0, 198, 51, 100), want: rcode(dns.RcodeFormatError), note: "unknown family"},
		query{qname: "www.example.com.", qtype: dns.TypeA, edns: ecs(1, 33, 0, 198, 51, 100, 7, 0), want: rcode(dns.RcodeFormatError), note: "source longer than the family"},
		query{qname: "www.example.com.", qtype: dns.TypeA, edns: ecs(1, 24, 16, 198, 51, 100), want: ok(1), note: "scope in a query (MUST be 0, no FORMERR named)"},
		query{qname: "www.example.com.", qtype: dns.TypeA, edns: ecs(1, 24, 0, 198, 51, 100, 0), want: ok(1), note: "too many address octets: Knot answers, knot-ecs-lenient"},
		query{qname: "www.example.com.", qtype: dns.TypeA, edns: ecs(1, 24, 0, 198, 51), want: rcode(dns.RcodeFormatError), note: "too few address octets"},
		query{qname: "www.example.com.", qtype: dns.TypeA, edns: ecs(1, 22, 0, 198, 51, 101), want: ok(1), note: "address bits beyond the source: Knot answers, knot-ecs-lenient"},
	)

	add("nsec", signedQueries("nsec.example.", false)...)
	add("nsec3", signedQueries("nsec3.example.", true)...)
	add("nsec3",
		query{qname: "nsec3.example.", qtype: dns.TypeNSEC3PARAM, edns: eDO(), want: ok(2)},
		query{qname: "nsec3.example.", qtype: dns.TypeNSEC3PARAM, want: ok(1)},
	)

	// Newer and unknown types.
	add("types",
		query{qname: "types.example.", qtype: dns.TypeHTTPS, edns: e0(), want: ok(1), note: "ServiceMode, target the owner"},
		query{qname: "alias.types.example.", qtype: dns.TypeHTTPS, edns: e0(), want: ok(1), note: "AliasMode, target's addresses in additional"},
		query{qname: "_dns.types.example.", qtype: dns.TypeSVCB, want: ok(1), note: "target's address in additional"},
		query{qname: "_8443._foo.types.example.", qtype: dns.TypeSVCB, edns: e0(), want: ok(1), note: "unknown key"},
		query{qname: "www.types.example.", qtype: dns.TypeHTTPS, want: nodata()},
		query{qname: "types.example.", qtype: dns.TypeCAA, edns: e0(), want: ok(3)},
		query{qname: "_443._tcp.www.types.example.", qtype: dns.TypeTLSA, want: ok(1)},
		query{qname: "_25._tcp.mail.types.example.", qtype: dns.TypeTLSA, tcp: true, want: ok(1)},
		query{qname: "_tcp.mail.types.example.", qtype: dns.TypeTLSA, want: nodata(), note: "empty non-terminal"},
		query{qname: "unknown.types.example.", qtype: typeUnknown65400, want: ok(2), note: "RFC 3597"},
		query{qname: "unknown.types.example.", qtype: typeUnknown65400, edns: eDO(), tcp: true, want: ok(2), note: "RFC 3597"},
		query{qname: "unknown.types.example.", qtype: typeUnknown65401, want: nodata(), note: "RFC 3597"},
		query{qname: "unknown.types.example.", qtype: dns.TypeA, want: ok(1)},
	)

	// Random letter case: the question is echoed exactly as asked.
	mixed := []query{
		{qname: "www.example.com.", qtype: dns.TypeA, want: ok(1)},
		{qname: "www.example.com.", qtype: dns.TypeAAAA, edns: e0(), tcp: true, want: ok(1)},
		{qname: "example.com.", qtype: dns.TypeNS, want: ok(2)},
		{qname: "nonexistent.example.com.", qtype: dns.TypeA, want: nxdomain(0)},
		{qname: "alias1.example.com.", qtype: dns.TypeA, want: ok(4)},
		{qname: "www.old.example.com.", qtype: dns.TypeA, edns: e0(), want: ok(3)},
		{qname: "host.wild.example.com.", qtype: dns.TypeA, want: ok(1)},
		{qname: "www.sub.example.com.", qtype: dns.TypeA, want: referral()},
		{qname: "www.nsec.example.", qtype: dns.TypeA, edns: eDO(), want: ok(2)},
		{qname: "nonexistent.nsec3.example.", qtype: dns.TypeA, edns: eDO(), want: nxdomain(0)},
		{qname: "host.wild.nsec3.example.", qtype: dns.TypeA, edns: eDO(), want: ok(2)},
		{qname: "www.example.org.", qtype: dns.TypeA, want: rcode(dns.RcodeRefused)},
		{qname: "unknown.types.example.", qtype: typeUnknown65400, want: ok(2)},
	}
	for i, q := range mixed {
		q.qname = mixCase(q.qname, uint64(i+1))
		add("case", q)
	}
	return qs
}

// signedQueries covers a pre-signed zone: with DO=1 every RRset comes with
// its RRSIG and negative answers with NSEC or NSEC3 proofs; with DO=0 there
// are no DNSSEC records beyond what was asked for.
func signedQueries(zone string, nsec3 bool) []query {
	n := func(label string) string {
		if label == "" {
			return zone
		}
		return label + "." + zone
	}
	// An NSEC record exists at www in the NSEC zone; NSEC3 records live at
	// hashed names, so the same query at www in the NSEC3 zone is NODATA.
	nsecType, nsecWant := dns.TypeNSEC, ok(1)
	if nsec3 {
		nsecType, nsecWant = dns.TypeNSEC3, nodata()
	}
	qs := []query{
		{qname: n(""), qtype: dns.TypeSOA, edns: eDO(), want: ok(2)},
		{qname: n(""), qtype: dns.TypeSOA, edns: e0(), want: ok(1), note: "DO=0"},
		{qname: n(""), qtype: dns.TypeNS, edns: eDO(), want: ok(2)},
		{qname: n(""), qtype: dns.TypeDNSKEY, edns: eDO(), want: ok(2)},
		{qname: n(""), qtype: dns.TypeDNSKEY, edns: e0(), want: ok(1), note: "DO=0"},
		{qname: n(""), qtype: dns.TypeMX, edns: eDO(), want: ok(2), note: "signed additional"},
		{qname: n("www"), qtype: dns.TypeA, edns: eDO(), want: ok(2)},
		{qname: n("www"), qtype: dns.TypeA, edns: e0(), want: ok(1), note: "DO=0"},
		{qname: n("www"), qtype: dns.TypeA, want: ok(1), note: "no EDNS"},
		{qname: n("www"), qtype: dns.TypeAAAA, edns: eDO(), tcp: true, want: ok(2)},
		{qname: n("nonexistent"), qtype: dns.TypeA, edns: eDO(), want: nxdomain(0), note: "NXDOMAIN proof"},
		{qname: n("nonexistent"), qtype: dns.TypeA, edns: eDO(), tcp: true, want: nxdomain(0), note: "NXDOMAIN proof"},
		{qname: n("a.b.nonexistent"), qtype: dns.TypeA, edns: eDO(), want: nxdomain(0), note: "NXDOMAIN proof, deeper"},
		{qname: n("zzz"), qtype: dns.TypeA, edns: eDO(), want: nxdomain(0), note: "NXDOMAIN proof, after the last name"},
		{qname: n("nonexistent"), qtype: dns.TypeA, edns: e0(), want: nxdomain(0), note: "DO=0"},
		{qname: n("www"), qtype: dns.TypeMX, edns: eDO(), want: nodata(), note: "NODATA proof"},
		{qname: n("www"), qtype: dns.TypeMX, edns: e0(), want: nodata(), note: "DO=0"},
		{qname: n("ent"), qtype: dns.TypeA, edns: eDO(), want: nodata(), note: "NODATA proof at an empty non-terminal"},
		{qname: n("alias"), qtype: dns.TypeA, edns: eDO(), want: ok(4), note: "signed CNAME chain"},
		{qname: n("host.wild"), qtype: dns.TypeA, edns: eDO(), want: ok(2), note: "wildcard answer proof"},
		{qname: n("a.b.wild"), qtype: dns.TypeTXT, edns: eDO(), want: ok(2), note: "wildcard answer proof, several labels"},
		{qname: n("host.wild"), qtype: dns.TypeA, edns: e0(), want: ok(1), note: "wildcard, DO=0"},
		{qname: n("host.wild"), qtype: dns.TypeMX, edns: eDO(), want: nodata(), note: "wildcard NODATA proof"},
		{qname: n("www.insecure"), qtype: dns.TypeA, edns: eDO(), want: referral(), note: "insecure delegation proof"},
		{qname: n("insecure"), qtype: dns.TypeNS, edns: eDO(), tcp: true, want: referral(), note: "insecure delegation proof"},
		{qname: n("www.insecure"), qtype: dns.TypeA, edns: e0(), want: referral(), note: "insecure delegation, DO=0"},
		{qname: n("insecure"), qtype: dns.TypeDS, edns: eDO(), want: nodata(), note: "DS absent proof"},
		{qname: n("www.secure"), qtype: dns.TypeA, edns: eDO(), want: referral(), note: "secure delegation with DS"},
		{qname: n("secure"), qtype: dns.TypeDS, edns: eDO(), want: ok(2), note: "DS from the parent"},
		{qname: n("www"), qtype: nsecType, edns: e0(), want: nsecWant, note: "NSEC/NSEC3 type at a name, DO=0"},
		{qname: n("www"), qtype: dns.TypeA, edns: eDO(), cd: true, want: ok(2), note: "CD"},
		// QTYPE=RRSIG: the signatures of the lowest signed type at the name,
		// as Knot answers, and no denial proof beside them.
		{qname: n("www"), qtype: dns.TypeRRSIG, edns: eDO(), want: ok(1), note: "RRSIG query"},
		{qname: n("www"), qtype: dns.TypeRRSIG, edns: e0(), want: ok(1), note: "RRSIG query, DO=0"},
		{qname: n("www"), qtype: dns.TypeRRSIG, want: ok(1), note: "RRSIG query, no EDNS"},
		{qname: n("www"), qtype: dns.TypeRRSIG, edns: eDO(), tcp: true, want: ok(1), note: "RRSIG query"},
		{qname: n(""), qtype: dns.TypeRRSIG, edns: eDO(), want: ok(1), note: "RRSIG query at the apex"},
		{qname: n("alias"), qtype: dns.TypeRRSIG, edns: eDO(), want: ok(1), note: "RRSIG query at a CNAME: not followed"},
		{qname: n("host.wild"), qtype: dns.TypeRRSIG, edns: eDO(), want: ok(1), note: "RRSIG query at a wildcard: with its proof"},
		{qname: n("host.wild"), qtype: dns.TypeRRSIG, edns: e0(), want: ok(1), note: "RRSIG query at a wildcard, DO=0"},
		{qname: n("ent"), qtype: dns.TypeRRSIG, edns: eDO(), want: nodata(), note: "RRSIG query at an empty non-terminal"},
		{qname: n("nonexistent"), qtype: dns.TypeRRSIG, edns: eDO(), want: nxdomain(0), note: "RRSIG query at no name"},
		{qname: n("www.insecure"), qtype: dns.TypeRRSIG, edns: eDO(), want: referral(), note: "RRSIG query below a cut"},
		{qname: n("secure"), qtype: dns.TypeRRSIG, edns: eDO(), want: referral(), note: "RRSIG query at a cut"},
		{qname: n("kid"), qtype: dns.TypeRRSIG, edns: eDO(), want: ok(1), note: "RRSIG query at a served child's apex"},
	}
	return qs
}

// with sets the expected number of answers.
func (w expect) with(answers int) expect {
	w.answers = answers
	return w
}

// malformedQueries are hand-made messages that no valid client sends.
func malformedQueries() []query {
	www := packName("www.example.com.")
	question := append(append([]byte(nil), www...), 0, 1, 0, 1) // A IN
	opt := []byte{0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0}       // root, OPT, 1232, no flags, no RDATA
	return []query{
		{raw: header(0x0000, 2, 0, 0, 0, question, question), want: expect{noAnswer: true}, note: "QDCOUNT=2"},
		{raw: header(0x0000, 1, 0, 0, 0, www[:7]), want: expect{noAnswer: true}, note: "question cut inside the name"},
		{raw: header(0x0000, 1, 0, 0, 0, www), want: expect{noAnswer: true}, note: "question without type and class"},
		{raw: header(0x0000, 1, 0, 0, 1, question), want: rcode(dns.RcodeFormatError), note: "ARCOUNT=1 without a record"},
		{raw: header(0x0000, 1, 0, 0, 2, question, opt, opt), want: rcode(dns.RcodeFormatError), note: "two OPT records (RFC 6891 §6.1.1)"},
		{raw: header(0x0000, 1, 0, 0, 0, []byte{0xc0, 12, 0, 1, 0, 1}), want: expect{noAnswer: true}, note: "compression pointer loop"},
		{raw: header(0x0000, 0, 0, 0, 0), want: rcode(dns.RcodeFormatError), note: "QDCOUNT=0"},
		{raw: header(0x0000, 1, 0, 0, 0, question, []byte{0xde, 0xad}), want: rcode(dns.RcodeFormatError), note: "trailing garbage"},
		{raw: header(0x0000, 1, 0, 0, 0, question), tcp: true, want: ok(1), note: "well-formed control"},
		{raw: []byte{0, 0, 1, 0, 0}, want: expect{noAnswer: true}, note: "shorter than a header"},
		{raw: header(0x8000, 1, 0, 0, 0, question), want: expect{noAnswer: true}, note: "a response (QR=1)"},
	}
}

// header builds a message: ID 0 (the test sets it), the given flags and
// section counts, then body.
func header(flags, qd, an, ns, ar uint16, body ...[]byte) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint16(b[2:], flags)
	binary.BigEndian.PutUint16(b[4:], qd)
	binary.BigEndian.PutUint16(b[6:], an)
	binary.BigEndian.PutUint16(b[8:], ns)
	binary.BigEndian.PutUint16(b[10:], ar)
	for _, p := range body {
		b = append(b, p...)
	}
	return b
}

// packName is a name in uncompressed wire format.
func packName(name string) []byte {
	var b []byte
	for _, l := range dns.SplitDomainName(name) {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}
