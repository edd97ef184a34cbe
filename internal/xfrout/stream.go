package xfrout

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/steer"
	"github.com/anycastdns/anycastdns/internal/tsig"
	"github.com/anycastdns/anycastdns/internal/wire"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// Header flag bits.
const (
	flagQR = 1 << 15
	flagAA = 1 << 10
	flagTC = 1 << 9
	flagRD = 1 << 8
)

// optRR is the OPT record of our answers to EDNS requests: version 0, a
// 1232-byte payload, no options.
var optRR = []byte{0, 0, 41, 1232 >> 8, 1232 & 0xff, 0, 0, 0, 0, 0, 0}

// Errors of a stream.
var (
	// errTooLarge: a record does not fit in a message at all.
	errTooLarge = errors.New("record does not fit in a message")
	// errSend: writing a message failed (the connection is gone).
	errSend = errors.New("send")
)

// stream writes one response: a single message, or the messages of a
// transfer (RFC 5936 §2.2), each of at most limit bytes with its TSIG
// record, each signed when sig is set. Records are written from wire form
// with the names of the RFC 1035 types compressed, through the same
// builder as the query path.
type stream struct {
	b     wire.Builder
	frame []byte // a 2-byte length prefix, then the message
	limit int
	udp   bool
	id    uint16
	flags uint16
	qname []byte // as the request had it
	qtype uint16
	opt   bool // the request had an OPT record: answer with one
	sig   *tsig.Signer
	send  func(frame []byte) error // frame[2:] is the message, frame[:2] its length
	// noPools leaves out the pool records (steer.TypePool): a transfer
	// to a peer that is not one of our nodes.
	noPools bool

	open    bool // a message has been started
	msgs    int  // messages sent
	records int  // records written
	bytes   int  // message bytes sent
	scratch []byte
}

// slack is room beyond the limit: the builder writes a record that might
// not fit before it checks, and must not outgrow the frame meanwhile.
const slack = wire.MaxName + 10 + 65535

func (st *stream) start() {
	if len(st.frame) < 2+st.limit || cap(st.frame) < 2+st.limit+slack {
		st.frame = make([]byte, 2+st.limit, 2+st.limit+slack)
	}
	st.b.Reset(st.frame[2:2], st.limit)
	reserve := 0
	if st.opt {
		reserve += len(optRR)
	}
	if st.sig != nil {
		reserve += st.sig.Size()
	}
	st.b.Reserve(reserve)
	st.b.Header(st.id, st.flags)
	if st.qname != nil {
		st.b.Question(st.qname, st.qtype, dns.ClassINET)
	}
	st.open = true
}

// rr adds one record to the answer section, starting a new message when the
// current one is full. Over UDP, a record that does not fit sets TC instead.
func (st *stream) rr(owner []byte, t uint16, ttl uint32, rdata []byte) error {
	if !st.open {
		st.start()
	}
	if st.b.RR(wire.Answer, owner, t, dns.ClassINET, ttl, rdata) {
		st.records++
		return nil
	}
	if st.udp {
		st.b.SetFlags(st.b.Flags() | flagTC)
		return nil
	}
	if st.b.Count(wire.Answer) == 0 {
		return fmt.Errorf("%s %s: %w", zone.NameString(owner), dns.TypeToString[t], errTooLarge)
	}
	if err := st.flush(); err != nil {
		return err
	}
	st.start()
	if !st.b.RR(wire.Answer, owner, t, dns.ClassINET, ttl, rdata) {
		return fmt.Errorf("%s %s: %w", zone.NameString(owner), dns.TypeToString[t], errTooLarge)
	}
	st.records++
	return nil
}

// rrValue adds a record given as a miekg/dns value.
func (st *stream) rrValue(rr dns.RR) error {
	if st.scratch == nil {
		st.scratch = make([]byte, 65536+512)
	}
	n, err := dns.PackRR(rr, st.scratch, 0, nil, false)
	if err != nil {
		return fmt.Errorf("pack %s: %w", rr.Header().Name, err)
	}
	p := st.scratch[:n]
	o := wire.NameLen(p)
	if o < 0 || o+10 > n {
		return fmt.Errorf("pack %s: malformed record", rr.Header().Name)
	}
	t := binary.BigEndian.Uint16(p[o:])
	ttl := binary.BigEndian.Uint32(p[o+4:])
	return st.rr(p[:o], t, ttl, p[o+10:])
}

// zone adds every record of z, SOA first (RRSIGs of the SOA after it).
func (st *stream) zone(z *zone.Zone) error {
	soa := z.Apex.Get(dns.TypeSOA)
	if soa == nil || soa.Len() != 1 {
		return fmt.Errorf("zone %s has no SOA", z.Origin)
	}
	origin := z.OriginWire()
	if err := st.rr(origin, dns.TypeSOA, soa.TTL, soa.First()); err != nil {
		return err
	}
	var err error
	z.Nodes(func(n *zone.Node) {
		for i := range n.Sets {
			if err != nil {
				return
			}
			set := &n.Sets[i]
			if st.noPools && set.Type == steer.TypePool {
				continue
			}
			if n != z.Apex || set.Type != dns.TypeSOA {
				for rd := range set.All() {
					if err = st.rr(n.Name, set.Type, set.TTL, rd); err != nil {
						return
					}
				}
			}
			for rd := range set.Sigs() {
				if err = st.rr(n.Name, dns.TypeRRSIG, set.SigTTL(), rd); err != nil {
					return
				}
			}
		}
	})
	return err
}

// soa adds the SOA record of z.
func (st *stream) soa(z *zone.Zone) error {
	soa := z.Apex.Get(dns.TypeSOA)
	if soa == nil || soa.Len() != 1 {
		return fmt.Errorf("zone %s has no SOA", z.Origin)
	}
	return st.rr(z.OriginWire(), dns.TypeSOA, soa.TTL, soa.First())
}

// flush completes the current message (OPT, TSIG) and sends it.
func (st *stream) flush() error {
	if !st.open {
		st.start()
	}
	st.open = false
	if st.opt {
		st.b.AppendRaw(wire.Additional, 1, optRR)
	}
	msg := st.b.Bytes()
	if st.sig != nil {
		msg = st.sig.Sign(msg)
	}
	if &msg[0] != &st.frame[2] {
		// The builder or the signer outgrew the frame, which the slack
		// and the reserve prevent: keep the frame contiguous anyway.
		st.frame = append(st.frame[:2], msg...)
		msg = st.frame[2:]
	}
	binary.BigEndian.PutUint16(st.frame, uint16(len(msg)))
	if err := st.send(st.frame[:2+len(msg)]); err != nil {
		return fmt.Errorf("%w: %w", errSend, err)
	}
	st.msgs++
	st.bytes += len(msg)
	return nil
}
