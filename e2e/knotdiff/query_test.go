package knotdiff

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/miekg/dns"
)

// query is one query of the differential test. Either the fields describe a
// message that is packed with miekg/dns, or raw holds hand-made bytes (a
// malformed message) whose first two octets are overwritten with the ID.
type query struct {
	note   string // what the query covers; part of the subtest name
	qname  string
	qtype  uint16
	qclass uint16 // 0 is IN
	opcode int
	rd     bool
	cd     bool
	ad     bool
	z      bool // the header's reserved Z bit
	tcp    bool
	edns   *ednsQuery // nil sends no OPT
	raw    []byte
	// want is what Knot must answer. It is checked against Knot first, so a
	// test zone or query that no longer covers what its note says is caught
	// instead of quietly comparing something else.
	want expect
}

type ednsQuery struct {
	version uint8
	size    uint16
	do      bool
	nsid    bool
	z       uint16 // OPT flag bits other than DO
	options []dns.EDNS0
}

// expect is the oracle check of a query.
type expect struct {
	rcode    int
	aa       bool
	tc       bool
	answers  int  // records in the answer section
	noAnswer bool // Knot is expected to send nothing back
}

// e0 is a plain EDNS(0) OPT with the common 1232-octet buffer.
func e0() *ednsQuery { return &ednsQuery{size: 1232} }

// eDO is e0 with the DO bit.
func eDO() *ednsQuery { return &ednsQuery{size: 1232, do: true} }

func (q *query) class() uint16 {
	if q.qclass == 0 {
		return dns.ClassINET
	}
	return q.qclass
}

// name is the subtest name: type, name, transport and options.
func (q *query) name() string {
	var parts []string
	if q.raw != nil {
		parts = append(parts, "raw")
	} else {
		if q.class() != dns.ClassINET {
			parts = append(parts, dns.Class(q.class()).String())
		}
		parts = append(parts, dns.Type(q.qtype).String(), q.qname)
		if q.opcode != dns.OpcodeQuery {
			parts = append(parts, "opcode="+opcodeString(q.opcode))
		}
	}
	if q.tcp {
		parts = append(parts, "tcp")
	}
	if e := q.edns; e != nil {
		s := fmt.Sprintf("edns%d(%d", e.version, e.size)
		if e.do {
			s += ",do"
		}
		if e.nsid {
			s += ",nsid"
		}
		if e.z != 0 {
			s += fmt.Sprintf(",z=%#x", e.z)
		}
		for _, o := range e.options {
			s += fmt.Sprintf(",opt%d", o.Option())
		}
		parts = append(parts, s+")")
	}
	for _, f := range []struct {
		set  bool
		name string
	}{{q.rd, "rd"}, {q.cd, "cd"}, {q.ad, "ad"}, {q.z, "z"}} {
		if f.set {
			parts = append(parts, f.name)
		}
	}
	if q.note != "" {
		parts = append(parts, "-", q.note)
	}
	return strings.Join(parts, " ")
}

func (q *query) network() string {
	if q.tcp {
		return "tcp"
	}
	return "udp"
}

// wire packs the query with the given ID.
func (q *query) wire(id uint16) ([]byte, error) {
	if q.raw != nil {
		b := append([]byte(nil), q.raw...)
		if len(b) >= 2 {
			binary.BigEndian.PutUint16(b, id)
		}
		return b, nil
	}
	m := &dns.Msg{
		MsgHdr: dns.MsgHdr{
			Id:                id,
			Opcode:            q.opcode,
			RecursionDesired:  q.rd,
			CheckingDisabled:  q.cd,
			AuthenticatedData: q.ad,
			Zero:              q.z,
		},
		Question: []dns.Question{{Name: q.qname, Qtype: q.qtype, Qclass: q.class()}},
	}
	if e := q.edns; e != nil {
		opt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		opt.SetUDPSize(e.size)
		opt.SetVersion(e.version)
		opt.SetDo(e.do)
		opt.SetZ(e.z)
		if e.nsid {
			opt.Option = append(opt.Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
		}
		opt.Option = append(opt.Option, e.options...)
		m.Extra = append(m.Extra, opt)
	}
	b, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", q.name(), err)
	}
	return b, nil
}

// check compares Knot's view of the query with want.
func (w expect) check(v *view) error {
	if w.noAnswer {
		if v.answered {
			return fmt.Errorf("answered with %s, expected no answer", rcodeString(v.rcode))
		}
		return nil
	}
	if !v.answered {
		return fmt.Errorf("no answer (%s), expected %s", v.why, rcodeString(w.rcode))
	}
	if v.rcode != w.rcode || v.flags.aa != w.aa || v.flags.tc != w.tc || len(v.sections[0]) != w.answers {
		return fmt.Errorf("got %s aa=%t tc=%t answers=%d, expected %s aa=%t tc=%t answers=%d",
			rcodeString(v.rcode), v.flags.aa, v.flags.tc, len(v.sections[0]),
			rcodeString(w.rcode), w.aa, w.tc, w.answers)
	}
	return nil
}

// Shorthands for the expectations of the table.
func ok(answers int) expect { return expect{rcode: dns.RcodeSuccess, aa: true, answers: answers} }
func nodata() expect        { return expect{rcode: dns.RcodeSuccess, aa: true} }
func nxdomain(answers int) expect {
	return expect{rcode: dns.RcodeNameError, aa: true, answers: answers}
}
func referral() expect         { return expect{rcode: dns.RcodeSuccess} }
func truncated(aa bool) expect { return expect{rcode: dns.RcodeSuccess, aa: aa, tc: true} }
func rcode(rc int) expect      { return expect{rcode: rc} }

// mixCase returns name with the case of each letter chosen by a fixed-seed
// generator: random-looking, but the same on every run.
func mixCase(name string, seed uint64) string {
	r := rand.New(rand.NewPCG(seed, 0x6b6e6f74))
	b := []byte(name)
	for i, c := range b {
		if c >= 'a' && c <= 'z' && r.IntN(2) == 1 {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
