package knotdiff

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

// view is one server's response to one query, decoded for comparison: the
// header straight from the wire, the sections as records, and EDNS apart.
// Accepted differences normalise views before they are rendered and compared.
type view struct {
	answered  bool
	why       string // why there is no answer
	unpackErr string
	idEchoed  bool
	opcode    int
	rcode     int // header RCODE with the OPT's extended bits
	flags     flags
	question  []dns.Question
	sections  [3][]dns.RR // answer, authority, additional (without OPT)
	edns      *ednsView
	lowerCase bool // render names outside the question in lower case
}

type flags struct {
	qr, aa, tc, rd, ra, z, ad, cd bool
}

func (f flags) String() string {
	var out []string
	for _, b := range []struct {
		set  bool
		name string
	}{{f.qr, "qr"}, {f.aa, "aa"}, {f.tc, "tc"}, {f.rd, "rd"}, {f.ra, "ra"}, {f.z, "z"}, {f.ad, "ad"}, {f.cd, "cd"}} {
		if b.set {
			out = append(out, b.name)
		}
	}
	return strings.Join(out, " ")
}

// ednsView is the OPT record of a response.
type ednsView struct {
	Count    int    // OPT records in the message; more than one is a protocol error
	Owner    string // must be the root
	Version  uint8
	DO       bool
	UDPSize  uint16
	ExtRcode uint8    // upper 8 bits of the RCODE, as on the wire
	Z        uint16   // flag bits other than DO: must be zero in a response
	Options  []string // "NSID=text" or "CODE=hex", sorted
}

// rendered is what the comparator diffs: every field a plain value, every
// section sorted so that record order within a section does not matter.
type rendered struct {
	Answered    bool
	UnpackError string
	IDEchoed    bool
	Opcode      string
	Rcode       string
	Flags       string
	Question    []string // exact case: a server echoes the query's question
	Answer      []string
	Authority   []string
	Additional  []string
	EDNS        *ednsView
}

var sectionNames = [3]string{"answer", "authority", "additional"}

// newView decodes a response to the query whose ID was id. A nil resp with
// err set means the server sent nothing back.
func newView(id uint16, resp []byte, err error) *view {
	v := &view{}
	if err != nil {
		v.why = err.Error()
		return v
	}
	v.answered = true
	if len(resp) < 12 {
		v.unpackErr = fmt.Sprintf("response of %d octets is shorter than a header", len(resp))
		return v
	}
	v.idEchoed = binary.BigEndian.Uint16(resp) == id
	b2, b3 := resp[2], resp[3]
	v.flags = flags{
		qr: b2&0x80 != 0, aa: b2&0x04 != 0, tc: b2&0x02 != 0, rd: b2&0x01 != 0,
		ra: b3&0x80 != 0, z: b3&0x40 != 0, ad: b3&0x20 != 0, cd: b3&0x10 != 0,
	}
	v.opcode = int(b2>>3) & 0xF
	v.rcode = int(b3 & 0xF)

	m := new(dns.Msg)
	if err := m.Unpack(resp); err != nil {
		v.unpackErr = err.Error()
		return v
	}
	v.question = m.Question
	v.sections[0] = m.Answer
	v.sections[1] = m.Ns
	for _, rr := range m.Extra {
		opt, ok := rr.(*dns.OPT)
		if !ok {
			v.sections[2] = append(v.sections[2], rr)
			continue
		}
		if v.edns != nil {
			v.edns.Count++
			continue
		}
		v.edns = &ednsView{
			Count:    1,
			Owner:    opt.Hdr.Name,
			Version:  opt.Version(),
			DO:       opt.Do(),
			UDPSize:  opt.UDPSize(),
			ExtRcode: uint8(opt.Hdr.Ttl >> 24),
			Z:        uint16(opt.Hdr.Ttl) &^ 0x8000,
		}
		for _, o := range opt.Option {
			v.edns.Options = append(v.edns.Options, optionString(o))
		}
		slices.Sort(v.edns.Options)
		v.rcode |= int(v.edns.ExtRcode) << 4
	}
	return v
}

func optionString(o dns.EDNS0) string {
	if n, ok := o.(*dns.EDNS0_NSID); ok {
		if b, err := hex.DecodeString(n.Nsid); err == nil {
			return fmt.Sprintf("NSID=%q", b)
		}
		return "NSID=hex:" + n.Nsid
	}
	var b []byte
	if l, ok := o.(*dns.EDNS0_LOCAL); ok {
		b = l.Data
	} else {
		return fmt.Sprintf("%d=%s", o.Option(), o.String())
	}
	return fmt.Sprintf("%d=%x", o.Option(), b)
}

func rcodeString(rc int) string {
	switch rc {
	case dns.RcodeBadVers:
		return "BADVERS"
	}
	if s, ok := dns.RcodeToString[rc]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", rc)
}

func opcodeString(op int) string {
	if s, ok := dns.OpcodeToString[op]; ok {
		return s
	}
	return fmt.Sprintf("OPCODE%d", op)
}

func questionString(q dns.Question) string {
	return fmt.Sprintf("%s %s %s", q.Name, dns.Class(q.Qclass), dns.Type(q.Qtype))
}

func (v *view) render() rendered {
	r := rendered{Answered: v.answered}
	if !v.answered {
		return r
	}
	r.UnpackError = v.unpackErr
	r.IDEchoed = v.idEchoed
	r.Opcode = opcodeString(v.opcode)
	r.Rcode = rcodeString(v.rcode)
	r.Flags = v.flags.String()
	for _, q := range v.question {
		r.Question = append(r.Question, questionString(q))
	}
	r.Answer = renderRRs(v.sections[0], v.lowerCase)
	r.Authority = renderRRs(v.sections[1], v.lowerCase)
	r.Additional = renderRRs(v.sections[2], v.lowerCase)
	r.EDNS = v.edns
	return r
}

// renderRRs prints records one a line, sorted, so that two sections with the
// same RRsets in another order compare equal. TTLs are part of the line.
func renderRRs(rrs []dns.RR, lower bool) []string {
	var out []string
	for _, rr := range rrs {
		if lower {
			rr = lowerNames(rr)
		}
		out = append(out, strings.Join(strings.Fields(rr.String()), " "))
	}
	slices.Sort(out)
	return out
}

// lowerNames returns a copy of rr with its owner and the domain names in its
// RDATA in lower case.
func lowerNames(rr dns.RR) dns.RR {
	rr = dns.Copy(rr)
	rr.Header().Name = strings.ToLower(rr.Header().Name)
	switch r := rr.(type) {
	case *dns.NS:
		r.Ns = strings.ToLower(r.Ns)
	case *dns.CNAME:
		r.Target = strings.ToLower(r.Target)
	case *dns.DNAME:
		r.Target = strings.ToLower(r.Target)
	case *dns.PTR:
		r.Ptr = strings.ToLower(r.Ptr)
	case *dns.MX:
		r.Mx = strings.ToLower(r.Mx)
	case *dns.SOA:
		r.Ns = strings.ToLower(r.Ns)
		r.Mbox = strings.ToLower(r.Mbox)
	case *dns.SRV:
		r.Target = strings.ToLower(r.Target)
	case *dns.RRSIG:
		r.SignerName = strings.ToLower(r.SignerName)
	case *dns.NSEC:
		r.NextDomain = strings.ToLower(r.NextDomain)
	case *dns.SVCB:
		r.Target = strings.ToLower(r.Target)
	case *dns.HTTPS:
		r.Target = strings.ToLower(r.Target)
	case *dns.NAPTR:
		r.Replacement = strings.ToLower(r.Replacement)
	}
	return rr
}

// compareViews applies the accepted differences to both views and returns
// the remaining difference (empty when the responses agree) and the IDs of
// the accepted differences that were needed to get there.
func compareViews(q *query, knot, ours *view, accepted []acceptedDifference) (diff string, used []string) {
	for _, a := range accepted {
		if a.apply(q, knot, ours) {
			used = append(used, a.id)
		}
	}
	kr, or := knot.render(), ours.render()
	if q.raw != nil {
		// A malformed query: only whether and with which RCODE each server
		// answers is compared, not what it made of the rest.
		kr, or = malformedOnly(kr), malformedOnly(or)
	}
	return cmp.Diff(kr, or), used
}

func malformedOnly(r rendered) rendered {
	return rendered{Answered: r.Answered, IDEchoed: r.IDEchoed, Rcode: r.Rcode}
}

// acceptedDifference is a way in which anycastd may answer differently from
// Knot because the RFCs allow both answers. apply normalises the two views
// where, and only where, the difference is allowed, and reports whether the
// views did differ in that way.
//
// An entry with knotWrong is of another kind: there Knot itself departs
// from the RFC, and apply corrects Knot's view to what the RFC requires.
type acceptedDifference struct {
	id        string
	reason    string
	knotWrong bool
	apply     func(q *query, knot, ours *view) bool
}

// acceptedDifferences is the whole list; README.md repeats it. zone holds the
// records of the test zones, by lower-case owner, for the ANY check.
func acceptedDifferences(zone map[string][]dns.RR) []acceptedDifference {
	return []acceptedDifference{
		{
			id: "any-subset",
			reason: "RFC 8482 §4.1-4.2: a server may answer QTYPE=ANY with any non-empty subset of the RRsets at the name " +
				"(Knot gives one) or with one synthesized HINFO \"RFC8482\" RRset; our answer must be one of those, " +
				"and the additional section follows from the RRset chosen",
			apply: func(q *query, knot, ours *view) bool { return applyANYSubset(zone, q, knot, ours) },
		},
		{
			id: "version-text",
			reason: "RFC 4892 §2.1 describes the CHAOS TXT convention; no RFC defines the text of version.bind./version.server., " +
				"which is the implementation's own version string; both must answer one CH TXT record for the name, only the text differs",
			apply: applyVersionText,
		},
		{
			id: "name-case",
			reason: "RFC 4343 §3-4 and RFC 1034 §3.1: names compare case-insensitively; whether owner names and names " +
				"in RDATA outside the question (e.g. a DNAME-synthesized CNAME target) take the query's or the zone's " +
				"case is the server's choice. The question section itself must echo the query exactly",
			apply: applyNameCase,
		},
		{
			id: "edns-udp-size",
			reason: "RFC 6891 §6.2.3: the UDP payload size in a response's OPT is the responder's own maximum; " +
				"each server advertises its configured value, and any value of 512 or more is valid",
			apply: applyUDPSize,
		},
		{
			id:        "knot-dname-overflow",
			knotWrong: true,
			reason: "RFC 6672 §2.2: when DNAME substitution would make a name longer than 255 octets the server returns " +
				"YXDOMAIN with the DNAME as proof; Knot 3.2.6 answers NXDOMAIN instead. Knot's RCODE is corrected to " +
				"YXDOMAIN, and the authority section (Knot's SOA), which the RFC does not specify here, is not compared",
			apply: applyDNAMEOverflow,
		},
		{
			id:        "knot-ecs-lenient",
			knotWrong: true,
			reason: "RFC 7871 §6: an ECS option with more ADDRESS octets than SOURCE PREFIX-LENGTH needs, or with address " +
				"bits set beyond it, SHOULD get FORMERR; Knot 3.2.6 (edns-client-subnet: on) answers the query and echoes " +
				"the option. Knot's view is corrected to FORMERR with no records and no ECS option",
			apply: applyECSLenient,
		},
		{
			id: "malformed-drop",
			reason: "RFC 1035 §4.1.1 and RFC 6891 §7: a query that cannot be parsed may be answered with FORMERR or " +
				"dropped; where Knot drops it, anycastd may answer FORMERR instead",
			apply: applyMalformedDrop,
		},
	}
}

func applyANYSubset(zone map[string][]dns.RR, q *query, knot, ours *view) bool {
	if q.qtype != dns.TypeANY || q.raw != nil || !knot.answered || !ours.answered ||
		knot.rcode != dns.RcodeSuccess || ours.rcode != dns.RcodeSuccess || len(knot.sections[0]) == 0 {
		return false
	}
	if err := checkANYAnswer(zone, q.qname, knot.sections[0]); err != nil {
		// Knot's own answer is not a subset of the zone: the test data and
		// this check disagree, so let the full comparison show it.
		return false
	}
	if err := checkANYAnswer(zone, q.qname, ours.sections[0]); err != nil {
		return false
	}
	differ := !slices.Equal(renderRRs(knot.sections[0], true), renderRRs(ours.sections[0], true)) ||
		!slices.Equal(renderRRs(knot.sections[2], true), renderRRs(ours.sections[2], true))
	knot.sections[0], ours.sections[0] = nil, nil
	knot.sections[2], ours.sections[2] = nil, nil
	return differ
}

// checkANYAnswer checks an answer to QTYPE=ANY against RFC 8482: one
// synthesized HINFO, or complete RRsets (and their signatures) that exist at
// the name in the zone, directly or through the wildcard that covers it.
func checkANYAnswer(zone map[string][]dns.RR, qname string, answer []dns.RR) error {
	if len(answer) == 0 {
		return fmt.Errorf("empty answer")
	}
	if h, ok := answer[0].(*dns.HINFO); ok && len(answer) == 1 && h.Cpu == "RFC8482" {
		return nil
	}
	owner := strings.ToLower(qname)
	source := owner
	if _, ok := zone[source]; !ok {
		// The name may be synthesized from a wildcard.
		labels := dns.SplitDomainName(owner)
		for i := 1; i < len(labels); i++ {
			cand := "*." + strings.Join(labels[i:], ".") + "."
			if _, ok := zone[cand]; ok {
				source = cand
				break
			}
		}
	}
	have := map[string]bool{}
	sets := map[string]int{}
	for _, rr := range zone[source] {
		have[rrKey(rr)] = true
		sets[setKey(rr)]++
	}
	got := map[string]int{}
	for _, rr := range answer {
		rr = lowerNames(rr)
		if rr.Header().Name != owner {
			return fmt.Errorf("record for another name: %s", rr)
		}
		rr.Header().Name = source
		if !have[rrKey(rr)] {
			return fmt.Errorf("record not in the zone at %s: %s", source, rr)
		}
		got[setKey(rr)]++
	}
	for k, n := range got {
		if n != sets[k] {
			return fmt.Errorf("incomplete RRset %s: %d of %d records", k, n, sets[k])
		}
	}
	return nil
}

func rrKey(rr dns.RR) string {
	return strings.Join(strings.Fields(lowerNames(rr).String()), " ")
}

func setKey(rr dns.RR) string {
	if sig, ok := rr.(*dns.RRSIG); ok {
		return "RRSIG/" + dns.Type(sig.TypeCovered).String()
	}
	return dns.Type(rr.Header().Rrtype).String()
}

func applyVersionText(q *query, knot, ours *view) bool {
	name := strings.ToLower(q.qname)
	if q.qclass != dns.ClassCHAOS || q.qtype != dns.TypeTXT || (name != "version.bind." && name != "version.server.") {
		return false
	}
	kt, ok1 := singleTXT(knot, q.qname)
	ot, ok2 := singleTXT(ours, q.qname)
	if !ok1 || !ok2 {
		return false
	}
	differ := !slices.Equal(kt.Txt, ot.Txt)
	ot.Txt = slices.Clone(kt.Txt)
	return differ
}

func singleTXT(v *view, qname string) (*dns.TXT, bool) {
	if !v.answered || v.rcode != dns.RcodeSuccess || len(v.sections[0]) != 1 {
		return nil, false
	}
	t, ok := v.sections[0][0].(*dns.TXT)
	if !ok || !strings.EqualFold(t.Hdr.Name, qname) || t.Hdr.Class != dns.ClassCHAOS {
		return nil, false
	}
	return t, true
}

func applyNameCase(_ *query, knot, ours *view) bool {
	differ := false
	for i := range knot.sections {
		exact := slices.Equal(renderRRs(knot.sections[i], false), renderRRs(ours.sections[i], false))
		folded := slices.Equal(renderRRs(knot.sections[i], true), renderRRs(ours.sections[i], true))
		if !exact && folded {
			differ = true
		}
	}
	knot.lowerCase, ours.lowerCase = true, true
	return differ
}

func applyUDPSize(_ *query, knot, ours *view) bool {
	if knot.edns == nil || ours.edns == nil || knot.edns.UDPSize < 512 || ours.edns.UDPSize < 512 {
		return false
	}
	differ := knot.edns.UDPSize != ours.edns.UDPSize
	e := *ours.edns
	e.UDPSize = knot.edns.UDPSize
	ours.edns = &e
	return differ
}

// applyECSLenient corrects Knot's answer to a query whose ECS option is
// malformed in the ways Knot lets through (RFC 7871 §6) to FORMERR.
func applyECSLenient(q *query, knot, ours *view) bool {
	if q.raw != nil || q.edns == nil || !knot.answered || knot.rcode == dns.RcodeFormatError || ours.rcode != dns.RcodeFormatError {
		return false
	}
	lenient := false
	for _, o := range q.edns.options {
		l, ok := o.(*dns.EDNS0_LOCAL)
		if !ok || l.Code != dns.EDNS0SUBNET || len(l.Data) < 4 {
			continue
		}
		source, addr := int(l.Data[2]), l.Data[4:]
		switch {
		case len(addr) > (source+7)/8:
			lenient = true
		case source%8 != 0 && len(addr) == (source+7)/8 && addr[len(addr)-1]&(0xFF>>(source%8)) != 0:
			lenient = true
		}
	}
	if !lenient {
		return false
	}
	knot.rcode = dns.RcodeFormatError
	knot.flags.aa = false
	knot.sections = [3][]dns.RR{}
	if knot.edns != nil {
		knot.edns.Options = nil
	}
	return true
}

func applyMalformedDrop(q *query, knot, ours *view) bool {
	// Only for something that looks like a query: a message too short for a
	// header or one with QR=1 (a response) must not be answered at all.
	if len(q.raw) < 12 || q.raw[2]&0x80 != 0 {
		return false
	}
	if knot.answered || !ours.answered || ours.rcode != dns.RcodeFormatError {
		return false
	}
	*ours = view{why: knot.why}
	return true
}

func applyDNAMEOverflow(q *query, knot, ours *view) bool {
	if q.raw != nil || !knot.answered || knot.rcode != dns.RcodeNameError || len(knot.sections[0]) != 1 {
		return false
	}
	d, ok := knot.sections[0][0].(*dns.DNAME)
	if !ok || !dns.IsSubDomain(strings.ToLower(d.Hdr.Name), strings.ToLower(q.qname)) {
		return false
	}
	synthesized := wireLen(q.qname) - wireLen(d.Hdr.Name) + wireLen(d.Target)
	if synthesized <= 255 {
		return false
	}
	knot.rcode = dns.RcodeYXDomain
	knot.sections[1], ours.sections[1] = nil, nil
	return true
}

// wireLen is the length of a name in uncompressed wire format.
func wireLen(name string) int {
	n := 1
	for _, l := range dns.SplitDomainName(name) {
		n += 1 + len(l)
	}
	return n
}
