// Package authority implements the authoritative answer algorithm of RFC 1034
// §4.3.2 over an immutable zone.Set, with the refinements of RFC 2181, 2308,
// 4592 (wildcards), 6672 (DNAME), 6604 (rcode in CNAME chains), 8482 (minimal
// ANY), 9471 (glue and TC), and DNSSEC for pre-signed zones (RFC 4035 §3.1,
// RFC 5155 §7.2).
//
// It writes the answer, authority and additional sections straight into a
// wire.Builder whose header and question the caller has written; nothing is
// allocated per query.
package authority

import (
	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/steer"
	"github.com/anycastdns/anycastdns/internal/wire"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// maxChain bounds CNAME/DNAME chains followed inside a zone.
const maxChain = 12

// Query is one question as the answer algorithm sees it.
type Query struct {
	Name  []byte // lower-cased uncompressed wire name
	Type  uint16
	DO    bool // DNSSEC OK
	Class uint16
}

// Result tells the caller how to finish the header.
type Result struct {
	Rcode int
	AA    bool
	// TC is set when required data (answer, authority, or glue that RFC
	// 9471 requires) did not fit.
	TC   bool
	Zone *zone.Zone // the zone that answered (SERVFAIL: the expired zone), nil for REFUSED
}

// Answerer holds per-worker scratch space; it is not safe for concurrent use.
// The zero value is ready.
type Answerer struct {
	b       *wire.Builder
	z       *zone.Zone
	do      bool
	res     Result
	names   [maxChain + 1][wire.MaxName + 1]byte
	arena   [4096]byte
	used    int
	written [16]*zone.RRset // NSEC3/NSEC records already in the authority section
	nw      int
	// Steering (SetSteering): the engine, the client of the query being
	// answered, and what the last answer's ECS scope came to (Scope).
	steer  *steer.Engine
	client *steer.Source
	scope  uint8
	dec    steer.Decision
}

// SetSteering makes the answerer steer A and AAAA at names with a pool (a
// steer.TypePool record) with e, for the client in *client, which the
// caller fills in before each Answer and which is read only by a steered
// answer. A nil e answers the records at such names as they are. Query
// and Result stay as small as they were: the query path passes them by
// value, and every unsteered answer would pay for the extra words.
func (a *Answerer) SetSteering(e *steer.Engine, client *steer.Source) {
	if client == nil {
		client = &noSource
	}
	a.steer, a.client = e, client
}

// Scope is the ECS SCOPE PREFIX-LENGTH of the last answer: how many
// leading bits of the ECS client address it depended on; 0 when it did
// not (not steered, or steered by the resolver's address).
func (a *Answerer) Scope() uint8 { return a.scope }

// Answer resolves q against set and writes the sections into b.
func (a *Answerer) Answer(set *zone.Set, q Query, b *wire.Builder) Result {
	a.b = b
	a.do = q.DO
	if a.client == nil {
		a.client = &noSource
	}
	a.scope = 0
	a.nw = 0
	a.used = 0
	a.res = Result{}
	if q.Class != dns.ClassINET && q.Class != dns.ClassANY {
		a.res.Rcode = dns.RcodeRefused
		return a.res
	}
	z := findZone(set, q)
	if z == nil {
		a.res.Rcode = dns.RcodeRefused
		return a.res
	}
	if set.Expired(z) {
		// A secondary zone past its SOA expire fails alone, as in Knot
		// and BIND: SERVFAIL, no AA, no data.
		a.res.Rcode, a.res.Zone = dns.RcodeServerFailure, z
		return a.res
	}
	a.z = z
	a.res.Zone = z
	a.res.AA = true
	a.resolve(q.Name, q.Type)
	return a.res
}

// findZone picks the zone that answers q: the one with the longest origin
// at or above the name, except that a DS query for the apex of a zone goes
// to the parent zone when this node serves it. The DS RRset, or its
// absence, is the parent's data (RFC 4034 §5, RFC 4035 §3.1.4.1); the
// child's apex has none. Without the parent the child answers (NODATA with
// its own SOA), as Knot does.
func findZone(set *zone.Set, q Query) *zone.Zone {
	z := set.Find(q.Name)
	if z == nil || q.Type != dns.TypeDS || len(q.Name) <= 1 || string(z.OriginWire()) != string(q.Name) {
		return z
	}
	if p := set.Find(wire.Parent(q.Name)); p != nil {
		return p
	}
	return z
}

// resolve follows the name through CNAME and DNAME records inside the zone.
func (a *Answerer) resolve(name []byte, qtype uint16) {
	z := a.z
	var seen [maxChain + 1][]byte
	for hop := 0; ; hop++ {
		// Stop at a CNAME loop or an over-long chain, as Knot and NSD do:
		// what was written is the answer, the resolver sees the loop.
		if hop > maxChain {
			return
		}
		for _, s := range seen[:hop] {
			if string(s) == string(name) {
				return
			}
		}
		seen[hop] = name
		n := z.Lookup(name)
		if n != nil {
			switch {
			case n.Cut != nil && n.Cut != n:
				a.referral(n.Cut, hop)
				return
			case n.DNAME != nil:
				next, ok := a.dname(name, n.DNAME, hop)
				if !ok || qtype == dns.TypeCNAME {
					return
				}
				name = next
				continue
			case n.Cut == n && (qtype != dns.TypeDS || n == z.Apex):
				a.referral(n, hop)
				return
			}
			next, ok := a.exact(name, n, qtype, nil)
			if !ok {
				return
			}
			name = next
			continue
		}
		// The name does not exist: find its closest encloser.
		p := wire.Parent(name)
		var ce *zone.Node
		for ; len(p) >= len(z.OriginWire()); p = wire.Parent(p) {
			if ce = z.Lookup(p); ce != nil {
				break
			}
		}
		if ce == nil { // cannot happen: the apex encloses every name
			a.res.Rcode = dns.RcodeServerFailure
			return
		}
		switch {
		case ce.Cut != nil:
			a.referral(ce.Cut, hop)
			return
		case ce.DNAME != nil || ce.Get(dns.TypeDNAME) != nil:
			d := ce.DNAME
			if d == nil {
				d = ce
			}
			next, ok := a.dname(name, d, hop)
			if !ok || qtype == dns.TypeCNAME {
				return
			}
			name = next
			continue
		case ce.Wildcard != nil:
			next, ok := a.exact(name, ce.Wildcard, qtype, ce)
			if !ok {
				return
			}
			name = next
			continue
		}
		a.res.Rcode = dns.RcodeNameError
		a.negative(name, ce, nil, qtype)
		return
	}
}

// exact answers at node n for owner name. When synth is not nil, n is the
// wildcard child of the closest encloser synth (RFC 4592). It returns the next
// name when a CNAME is to be followed inside the zone.
func (a *Answerer) exact(name []byte, n *zone.Node, qtype uint16, synth *zone.Node) ([]byte, bool) {
	z := a.z
	switch qtype {
	case dns.TypeANY:
		a.anyAnswer(name, n, synth)
		return nil, false
	case dns.TypeRRSIG:
		a.sigAnswer(name, n, synth)
		return nil, false
	}
	if pools := a.poolsAt(n, qtype); pools != nil && a.steered(name, n, pools, qtype, synth) {
		return nil, false
	}
	set := n.Get(qtype)
	if qtype == steer.TypePool {
		set = nil // pools are the node's own data, never an answer
	}
	if set != nil {
		if !a.rrset(wire.Answer, name, set) {
			return nil, false
		}
		if synth != nil && a.do {
			a.wildcardProof(name, synth)
		}
		a.additional(name, set)
		return nil, false
	}
	if c := n.Get(dns.TypeCNAME); c != nil {
		if !a.rrset(wire.Answer, name, c) {
			return nil, false
		}
		if synth != nil && a.do {
			a.wildcardProof(name, synth)
		}
		target := c.First()
		lt := a.lowered(target)
		if !wire.IsSubdomain(lt, z.OriginWire()) {
			return nil, false // the resolver continues elsewhere
		}
		if a.client.HasECS && a.steeredAt(lt, qtype) {
			// A tailored answer at the end of a CNAME chain: only the
			// CNAME goes in (RFC 7871 §7.2.1), so that the resolver
			// caches it for everyone and asks for the target with its
			// client's subnet.
			return nil, false
		}
		return lt, true
	}
	// NODATA.
	a.negative(name, synth, n, qtype)
	return nil, false
}

var noSource steer.Source

// poolsAt returns the pools at n that may steer a query of qtype: A or
// AAAA, on a node that steers, and in a signed zone only where the
// control plane signed the pools' answers (TypePoolSig records at n).
func (a *Answerer) poolsAt(n *zone.Node, qtype uint16) *zone.RRset {
	if (qtype != dns.TypeA && qtype != dns.TypeAAAA) || a.steer == nil {
		return nil
	}
	if a.z.Signed && n.Get(steer.TypePoolSig) == nil {
		return nil
	}
	return n.Get(steer.TypePool)
}

// steeredAt reports whether a query for name and qtype in the zone would
// be steered: an A or AAAA query at a name with a pool for it.
func (a *Answerer) steeredAt(name []byte, qtype uint16) bool {
	n := a.z.Lookup(name)
	if n == nil {
		return false
	}
	pools := a.poolsAt(n, qtype)
	if pools == nil {
		return false
	}
	for rd, rest := pools.Head(); rd != nil; rd, rest = zone.Tail(rest) {
		if steer.RdataType(rd) == qtype {
			return true
		}
	}
	return false
}

// steered answers qtype at name from the pool for it among pools (the
// TypePool RRset at the node), as the steering engine decides for the
// client: the addresses chosen, or a CNAME to the first endpoint chosen when
// it is a name, with the pool's TTL. It returns false when there is no
// usable pool for qtype, and the records at the name answer as usual (a
// pool this node cannot read falls back to them).
//
// In a signed zone (the node steers there only when the control plane
// signed the pools' answers: TypePoolSig records at n) a DNSSEC query
// gets the RRSIGs made for the very answer chosen (steer.MatchPoolSig,
// by the pool record's hash and the answer's endpoints), and the
// wildcard proof when n is a wildcard (synth its closest encloser).
func (a *Answerer) steered(name []byte, n *zone.Node, pools *zone.RRset, qtype uint16, synth *zone.Node) bool {
	for rd, rest := pools.Head(); rd != nil; rd, rest = zone.Tail(rest) {
		if steer.RdataType(rd) != qtype {
			continue
		}
		cl := a.client.Client()
		d := &a.dec
		if !a.steer.Decide(rd, cl, d) {
			return false
		}
		if cl.ECS {
			a.scope = d.Scope
		}
		m := a.b.Save()
		if d.Len() > 0 && d.IsName(0) {
			if !a.b.RR(wire.Answer, name, dns.TypeCNAME, dns.ClassINET, d.TTL(), d.Rdata(0)) {
				a.b.Restore(m)
				a.res.TC = true
				return true
			}
			a.steeredSigs(name, n, synth, m)
			return true
		}
		for i := range d.Len() {
			if d.IsName(i) {
				continue
			}
			if !a.b.RR(wire.Answer, name, qtype, dns.ClassINET, d.TTL(), d.Rdata(i)) {
				a.b.Restore(m)
				a.res.TC = true
				return true
			}
		}
		a.steeredSigs(name, n, synth, m)
		return true
	}
	return false
}

// steeredSigs adds, for a DNSSEC query in a signed zone, the signatures
// of the steered answer just written (a.dec, of a pool record at n,
// looked up in the index steer keeps of the name's TypePoolSig records)
// and the wildcard proof; m is where the answer began, restored when the
// signatures do not fit. An answer the control plane signed no variant
// for (a pool newer than its signatures cannot be: they come in the same
// change) goes unsigned.
func (a *Answerer) steeredSigs(name []byte, n *zone.Node, synth *zone.Node, m wire.Mark) {
	if !a.do || !a.z.Signed {
		return
	}
	d := &a.dec
	if set := n.Get(steer.TypePoolSig); set != nil {
		head, rest := set.Head()
		for _, sig := range d.AnswerSigs(head, rest, set.Len(), zone.Tail) {
			if !a.b.RR(wire.Answer, name, dns.TypeRRSIG, dns.ClassINET, d.TTL(), sig) {
				a.b.Restore(m)
				a.res.TC = true
				return
			}
		}
	}
	if synth != nil {
		a.wildcardProof(name, synth)
	}
}

// anyAnswer gives a minimal answer to ANY (RFC 8482 §4.2): one RRset.
func (a *Answerer) anyAnswer(name []byte, n, synth *zone.Node) {
	var pick *zone.RRset
	for i := range n.Sets {
		s := &n.Sets[i]
		switch s.Type {
		case dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNSEC3, steer.TypePool:
			continue
		}
		pick = s
		break
	}
	if pick == nil {
		a.negative(name, synth, n, dns.TypeANY)
		return
	}
	if a.rrset(wire.Answer, name, pick) && synth != nil && a.do {
		a.wildcardProof(name, synth)
	}
}

// sigAnswer answers QTYPE=RRSIG at n with the signatures covering one
// RRset, the one of the lowest type that is signed, as Knot does. The
// RRSIGs at a name are no RRset of their own (each covers another RRset,
// RFC 4034 §3, and is never signed itself, RFC 4035 §2.2), and no RFC says
// which of them such a diagnostic query gets; one covered type keeps the
// answer small, like a minimal ANY answer (RFC 8482). A CNAME at n is not
// followed. Without signatures at n the answer is NODATA.
func (a *Answerer) sigAnswer(name []byte, n, synth *zone.Node) {
	var set *zone.RRset
	for i := range n.Sets {
		if n.Sets[i].SigLen() > 0 {
			set = &n.Sets[i]
			break
		}
	}
	if set == nil {
		a.negative(name, synth, n, dns.TypeRRSIG)
		return
	}
	m := a.b.Save()
	for rd, rest := set.SigHead(); rd != nil; rd, rest = zone.Tail(rest) {
		if !a.b.RR(wire.Answer, name, dns.TypeRRSIG, dns.ClassINET, set.SigTTL(), rd) {
			a.b.Restore(m)
			a.res.TC = true
			return
		}
	}
	if synth != nil && a.do {
		a.wildcardProof(name, synth)
	}
}

// dname synthesizes a CNAME from the DNAME at d for name (RFC 6672 §3.3).
func (a *Answerer) dname(name []byte, d *zone.Node, hop int) ([]byte, bool) {
	set := d.Get(dns.TypeDNAME)
	if !a.rrset(wire.Answer, d.Name, set) {
		return nil, false
	}
	target := set.First()
	prefix := name[:len(name)-len(d.Name)]
	if len(prefix)+len(target) > wire.MaxName {
		a.res.Rcode = dns.RcodeYXDomain
		return nil, false
	}
	buf := a.names[hop%len(a.names)][:0]
	buf = append(buf, prefix...)
	buf = append(buf, target...)
	// The synthesized CNAME is unsigned; its TTL is the DNAME's.
	if !a.b.RR(wire.Answer, name, dns.TypeCNAME, dns.ClassINET, set.TTL, buf) {
		a.res.TC = true
		return nil, false
	}
	lt := wire.LowerName(buf, buf)
	if !wire.IsSubdomain(lt, a.z.OriginWire()) {
		return nil, false
	}
	return lt, true
}

// referral writes a delegation: NS in authority, DS or its absence proof when
// DNSSEC is asked for, and glue in additional (RFC 9471).
func (a *Answerer) referral(cut *zone.Node, hop int) {
	if hop == 0 {
		a.res.AA = false
	}
	ns := cut.Get(dns.TypeNS)
	if !a.rrsetNoSig(wire.Authority, cut.Name, ns) {
		return
	}
	if a.do && a.z.Signed {
		if ds := cut.Get(dns.TypeDS); ds != nil {
			if !a.rrset(wire.Authority, cut.Name, ds) {
				return
			}
		} else {
			a.noDSProof(cut)
		}
	}
	// Glue below the cut is required (TC when it does not fit, RFC 9471),
	// other in-zone addresses optional.
	a.addresses(ns, cut.Name, cut.Name)
}

// addresses writes the in-zone A and AAAA RRsets of the names in the rdata
// of set (NS, MX, SRV, SVCB, HTTPS) to the additional section. Each RRset
// goes in whole or not at all, and one that does not fit does not end the
// section: the next name's may be smaller (RFC 2181 §9: fill the message
// with whole RRsets). After a name's A does not fit its AAAA is not tried,
// so that no name is left with only its second address family, as Knot
// does. A name at or below cut (nil for none) is glue whose absence sets
// TC (RFC 9471); owner is the name "." in SVCB/HTTPS rdata stands for.
func (a *Answerer) addresses(set *zone.RRset, owner, cut []byte) {
	off := 0
	switch set.Type {
	case dns.TypeMX, dns.TypeSVCB, dns.TypeHTTPS:
		off = 2
	case dns.TypeSRV:
		off = 6
	}
	for rd, rest := set.Head(); rd != nil; rd, rest = zone.Tail(rest) {
		if len(rd) <= off {
			continue
		}
		target := a.lowered(rd[off:])
		if len(target) == 1 && (set.Type == dns.TypeSVCB || set.Type == dns.TypeHTTPS) {
			target = owner // "." in ServiceMode means the owner itself (RFC 9460 §2.5)
		}
		if !wire.IsSubdomain(target, a.z.OriginWire()) {
			continue
		}
		t := a.z.Lookup(target)
		if t == nil {
			continue
		}
		required := cut != nil && wire.IsSubdomain(target, cut)
		for _, typ := range [2]uint16{dns.TypeA, dns.TypeAAAA} {
			s := t.Get(typ)
			if s == nil {
				continue
			}
			var ok bool
			if t.Cut != nil {
				ok = a.rrsetNoSig(wire.Additional, target, s) // glue: not signed here
			} else {
				ok = a.rrsetOptional(wire.Additional, target, s)
			}
			if !ok {
				if required {
					a.res.TC = true
				}
				break
			}
		}
	}
}

// noDSProof proves that a delegation has no DS (an insecure delegation).
func (a *Answerer) noDSProof(cut *zone.Node) {
	if a.z.NSEC3 != nil {
		if m, _ := a.z.NSEC3Lookup(cut.Name); m != nil {
			a.proof(m, dns.TypeNSEC3)
			return
		}
		// Opt-out: closest provable encloser and the next closer name.
		a.closestEncloserProof(cut.Name, false)
		return
	}
	if s := cut.Get(dns.TypeNSEC); s != nil {
		a.proof(cut, dns.TypeNSEC)
	}
}

// negative writes the SOA and, with DNSSEC, the denial proofs for NXDOMAIN
// (node == nil, ce is the closest encloser) or NODATA at node (synth is the
// closest encloser when node is a wildcard).
func (a *Answerer) negative(name []byte, ce, node *zone.Node, qtype uint16) {
	z := a.z
	soa := z.Apex.Get(dns.TypeSOA)
	if !a.b.RR(wire.Authority, z.Apex.Name, dns.TypeSOA, dns.ClassINET, z.NegTTL, soa.First()) {
		a.res.TC = true
		return
	}
	if !a.do || !z.Signed {
		return
	}
	for sig, rest := soa.SigHead(); sig != nil; sig, rest = zone.Tail(rest) {
		if !a.b.RR(wire.Authority, z.Apex.Name, dns.TypeRRSIG, dns.ClassINET, z.NegTTL, sig) {
			a.res.TC = true
			return
		}
	}
	if z.NSEC3 != nil {
		a.negativeNSEC3(name, ce, node, qtype)
		return
	}
	switch {
	case node == nil: // NXDOMAIN: the name and the wildcard do not exist
		c := z.CoveringNSEC(name)
		if c != nil {
			a.proof(c, dns.TypeNSEC)
		}
		var wbuf [wire.MaxName + 3]byte
		w := append(append(wbuf[:0], 1, '*'), ce.Name...)
		if len(w) <= wire.MaxName {
			if c2 := z.CoveringNSEC(w); c2 != nil {
				a.proof(c2, dns.TypeNSEC)
			}
		}
	case node.Get(dns.TypeNSEC) != nil:
		a.proof(node, dns.TypeNSEC)
		if ce != nil { // wildcard NODATA: also no exact match for name
			if c := z.CoveringNSEC(name); c != nil {
				a.proof(c, dns.TypeNSEC)
			}
		}
	default: // empty non-terminal
		if c := z.CoveringNSEC(name); c != nil {
			a.proof(c, dns.TypeNSEC)
		}
	}
}

func (a *Answerer) negativeNSEC3(name []byte, ce, node *zone.Node, _ uint16) {
	z := a.z
	switch {
	case node == nil: // NXDOMAIN: closest encloser proof plus no wildcard
		a.closestEncloserProof(name, true)
	case ce != nil: // wildcard NODATA (RFC 5155 §7.2.5)
		a.closestEncloserProof(name, false)
		if m, _ := z.NSEC3Lookup(node.Name); m != nil {
			a.proof(m, dns.TypeNSEC3)
		}
	default:
		if m, _ := z.NSEC3Lookup(node.Name); m != nil {
			a.proof(m, dns.TypeNSEC3)
			return
		}
		// DS NODATA under opt-out (RFC 5155 §7.2.4).
		a.closestEncloserProof(name, false)
	}
}

// closestEncloserProof writes the NSEC3 matching the closest provable
// encloser of name and the one covering the next closer name; with wildcard
// it adds the one covering the wildcard at the closest encloser.
func (a *Answerer) closestEncloserProof(name []byte, wildcard bool) {
	z := a.z
	next := name
	for ce := wire.Parent(name); len(ce) >= len(z.OriginWire()); ce = wire.Parent(ce) {
		if m, _ := z.NSEC3Lookup(ce); m != nil {
			a.proof(m, dns.TypeNSEC3)
			if _, c := z.NSEC3Lookup(next); c != nil {
				a.proof(c, dns.TypeNSEC3)
			}
			if wildcard {
				var wbuf [wire.MaxName + 3]byte
				w := append(append(wbuf[:0], 1, '*'), ce...)
				if len(w) <= wire.MaxName {
					if _, c := z.NSEC3Lookup(w); c != nil {
						a.proof(c, dns.TypeNSEC3)
					}
				}
			}
			return
		}
		next = ce
	}
}

// wildcardProof proves, for a wildcard answer, that the query name itself
// does not exist (RFC 4035 §3.1.3.3, RFC 5155 §7.2.6).
func (a *Answerer) wildcardProof(name []byte, ce *zone.Node) {
	z := a.z
	if !z.Signed {
		return
	}
	if z.NSEC3 != nil {
		// The next closer name: one label more than the closest encloser.
		next := name
		for len(wire.Parent(next)) > len(ce.Name) {
			next = wire.Parent(next)
		}
		if _, c := z.NSEC3Lookup(next); c != nil {
			a.proof(c, dns.TypeNSEC3)
		}
		return
	}
	if c := z.CoveringNSEC(name); c != nil {
		a.proof(c, dns.TypeNSEC)
	}
}

// proof writes the NSEC or NSEC3 RRset of n with signatures to authority,
// once per response.
func (a *Answerer) proof(n *zone.Node, t uint16) {
	set := n.Get(t)
	if set == nil {
		return
	}
	for _, w := range a.written[:a.nw] {
		if w == set {
			return
		}
	}
	if a.nw < len(a.written) {
		a.written[a.nw] = set
		a.nw++
	}
	a.rrset(wire.Authority, n.Name, set)
}

// additional adds in-zone addresses for the targets of NS, MX, SRV, SVCB and
// HTTPS.
func (a *Answerer) additional(owner []byte, set *zone.RRset) {
	switch set.Type {
	case dns.TypeNS, dns.TypeMX, dns.TypeSRV, dns.TypeSVCB, dns.TypeHTTPS:
		a.addresses(set, owner, nil)
	}
}

// rrset writes a whole RRset (and its signatures with DNSSEC) or nothing;
// failure to fit sets TC.
func (a *Answerer) rrset(section int, owner []byte, set *zone.RRset) bool {
	if section == wire.Additional {
		return a.rrsetOptional(section, owner, set)
	}
	m := a.b.Save()
	if !a.write(section, owner, set, a.do) {
		a.b.Restore(m)
		a.res.TC = true
		return false
	}
	return true
}

// rrsetOptional writes an RRset if it fits, without setting TC.
func (a *Answerer) rrsetOptional(section int, owner []byte, set *zone.RRset) bool {
	m := a.b.Save()
	if !a.write(section, owner, set, a.do) {
		a.b.Restore(m)
		return false
	}
	return true
}

// rrsetNoSig writes an RRset that is not authoritative here (delegation NS,
// glue), never with signatures.
func (a *Answerer) rrsetNoSig(section int, owner []byte, set *zone.RRset) bool {
	m := a.b.Save()
	if !a.write(section, owner, set, false) {
		a.b.Restore(m)
		if section != wire.Additional {
			a.res.TC = true
		}
		return false
	}
	return true
}

func (a *Answerer) write(section int, owner []byte, set *zone.RRset, sigs bool) bool {
	for rd, rest := set.Head(); rd != nil; rd, rest = zone.Tail(rest) {
		if !a.b.RR(section, owner, set.Type, dns.ClassINET, set.TTL, rd) {
			return false
		}
	}
	if sigs && a.z.Signed {
		for rd, rest := set.SigHead(); rd != nil; rd, rest = zone.Tail(rest) {
			if !a.b.RR(section, owner, dns.TypeRRSIG, dns.ClassINET, set.SigTTL(), rd) {
				return false
			}
		}
	}
	return true
}

// lowered returns a lower-cased copy of an uncompressed wire name in scratch
// space that stays valid for the rest of the query.
func (a *Answerer) lowered(name []byte) []byte {
	n := wire.NameLen(name)
	if n < 0 {
		return nil
	}
	if a.used+n > len(a.arena) {
		return wire.LowerName(make([]byte, n), name[:n]) // rare: very long chains
	}
	out := wire.LowerName(a.arena[a.used:a.used+n], name[:n])
	a.used += n
	return out
}
