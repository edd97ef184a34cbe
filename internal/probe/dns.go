package probe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// DNS is a DNS probe: it asks Addr for the SOA of Zone over Net ("udp" or
// "tcp") and passes when the answer has the query's ID and question,
// rcode NOERROR, the AA bit and the zone's SOA in the answer section.
type DNS struct {
	Addr string // host:port
	Net  string // "udp" or "tcp"
	Zone string // the canary zone; fully qualified or not
}

// maxUDPAnswer is the EDNS buffer size the probe offers and the largest
// UDP answer it reads.
const maxUDPAnswer = 4096

// Probe sends one query and checks the answer. Over UDP, datagrams that do
// not match the query (another ID, another question) are skipped, as a
// resolver would, until the context ends.
func (p DNS) Probe(ctx context.Context) Result {
	start := time.Now()
	r := Result{Start: start}
	zone := dns.Fqdn(strings.ToLower(p.Zone))
	if _, ok := dns.IsDomainName(zone); !ok {
		r.Err = fmt.Errorf("probe: invalid zone name %q", p.Zone)
		return r
	}
	q := new(dns.Msg)
	q.SetQuestion(zone, dns.TypeSOA)
	q.RecursionDesired = false
	q.SetEdns0(maxUDPAnswer, false)
	wire, err := q.Pack()
	if err != nil {
		r.Err = fmt.Errorf("probe: pack query: %w", err)
		return r
	}
	var ans *dns.Msg
	switch p.Net {
	case "udp":
		ans, err = p.udp(ctx, q, wire)
	case "tcp":
		ans, err = p.tcp(ctx, q, wire)
	default:
		err = fmt.Errorf("probe: unknown transport %q (want udp or tcp)", p.Net)
	}
	r.RTT = time.Since(start)
	if err != nil {
		r.Err = err
		return r
	}
	r.Serial, r.Err = checkSOA(ans, zone)
	if r.Err != nil {
		r.Err = fmt.Errorf("soa %s from %s over %s: %w", zone, p.Addr, p.Net, r.Err)
	}
	return r
}

func (p DNS) udp(ctx context.Context, q *dns.Msg, wire []byte) (*dns.Msg, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", p.Addr)
	if err != nil {
		return nil, ioErr(ctx, "udp "+p.Addr, err)
	}
	defer func() { _ = conn.Close() }()
	stop := closeOnDone(ctx, conn)
	defer stop()
	if _, err := conn.Write(wire); err != nil {
		return nil, ioErr(ctx, "udp "+p.Addr+": send", err)
	}
	buf := make([]byte, maxUDPAnswer)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return nil, ioErr(ctx, "udp "+p.Addr+": receive", err)
		}
		ans := new(dns.Msg)
		if err := ans.Unpack(buf[:n]); err != nil {
			continue // not a DNS message: not our answer
		}
		if matches(q, ans) {
			return ans, nil
		}
	}
}

func (p DNS) tcp(ctx context.Context, q *dns.Msg, wire []byte) (*dns.Msg, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", p.Addr)
	if err != nil {
		return nil, ioErr(ctx, "tcp "+p.Addr, err)
	}
	defer func() { _ = conn.Close() }()
	stop := closeOnDone(ctx, conn)
	defer stop()
	msg := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(wire)), uint16(len(wire)))
	if _, err := conn.Write(append(msg, wire...)); err != nil {
		return nil, ioErr(ctx, "tcp "+p.Addr+": send", err)
	}
	var hdr [2]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return nil, ioErr(ctx, "tcp "+p.Addr+": receive", err)
	}
	buf := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(conn, buf); err != nil {
		return nil, ioErr(ctx, "tcp "+p.Addr+": receive", err)
	}
	ans := new(dns.Msg)
	if err := ans.Unpack(buf); err != nil {
		return nil, fmt.Errorf("tcp %s: malformed answer: %w", p.Addr, err)
	}
	if !matches(q, ans) {
		return nil, fmt.Errorf("tcp %s: the answer does not match the query (id %d, question %v)", p.Addr, ans.Id, ans.Question)
	}
	return ans, nil
}

// matches reports whether ans answers q: a response with q's ID and
// question (names compared without case).
func matches(q, ans *dns.Msg) bool {
	if !ans.Response || ans.Id != q.Id || len(ans.Question) != 1 {
		return false
	}
	a, b := ans.Question[0], q.Question[0]
	return a.Qtype == b.Qtype && a.Qclass == b.Qclass && strings.EqualFold(a.Name, b.Name)
}

// checkSOA checks an answer to "zone SOA" and returns the serial.
func checkSOA(ans *dns.Msg, zone string) (uint32, error) {
	if ans.Rcode != dns.RcodeSuccess {
		return 0, fmt.Errorf("rcode %s, want NOERROR", dns.RcodeToString[ans.Rcode])
	}
	if !ans.Authoritative {
		return 0, errors.New("the answer is not authoritative (AA bit clear)")
	}
	for _, rr := range ans.Answer {
		if soa, ok := rr.(*dns.SOA); ok && strings.EqualFold(soa.Hdr.Name, zone) {
			return soa.Serial, nil
		}
	}
	return 0, errors.New("no SOA of the zone in the answer section")
}
