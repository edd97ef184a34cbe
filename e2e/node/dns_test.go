//go:build linux

package node

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// question returns a query without RD for name, type and class.
func question(name string, qtype, qclass uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.Question[0].Qclass = qclass
	m.RecursionDesired = false
	return m
}

// withNSID adds EDNS(0) with an empty NSID option to m.
func withNSID(m *dns.Msg) *dns.Msg {
	m.SetEdns0(1232, false)
	opt := m.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
	return m
}

// exchange sends m over network ("udp" or "tcp") and returns the answer.
func exchange(network string, addr netip.AddrPort, m *dns.Msg, timeout time.Duration) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: timeout}
	r, _, err := c.Exchange(m, addr.String())
	if err != nil {
		return nil, fmt.Errorf("%s %s %s over %s: %w", m.Question[0].Name, dns.TypeToString[m.Question[0].Qtype], addr, network, err)
	}
	return r, nil
}

// mustExchange is exchange that fails the test on error.
func mustExchange(t *testing.T, network string, addr netip.AddrPort, m *dns.Msg) *dns.Msg {
	t.Helper()
	r, err := exchange(network, addr, m, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// rrStrings renders a section for comparisons and messages.
func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		out = append(out, rr.String())
	}
	return out
}

// expectA checks an authoritative NOERROR answer holding exactly one A
// record with address want.
func expectA(t *testing.T, r *dns.Msg, want string) {
	t.Helper()
	q := r.Question[0].Name
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative {
		t.Errorf("%s A: rcode %s aa=%t, want NOERROR aa=true", q, dns.RcodeToString[r.Rcode], r.Authoritative)
		return
	}
	if len(r.Answer) != 1 {
		t.Errorf("%s A: answer %q, want one A %s", q, rrStrings(r.Answer), want)
		return
	}
	a, ok := r.Answer[0].(*dns.A)
	if !ok || a.A.String() != want {
		t.Errorf("%s A: answer %q, want A %s", q, rrStrings(r.Answer), want)
	}
}

// soaSerial returns the serial of the SOA in the answer section.
func soaSerial(t *testing.T, r *dns.Msg) uint32 {
	t.Helper()
	for _, rr := range r.Answer {
		if soa, ok := rr.(*dns.SOA); ok {
			return soa.Serial
		}
	}
	t.Fatalf("no SOA in answer: rcode %s answer %q", dns.RcodeToString[r.Rcode], rrStrings(r.Answer))
	return 0
}

// chaosTXT returns the text of a CH TXT answer, or the rcode as an error.
func chaosTXT(r *dns.Msg) (string, error) {
	if r.Rcode != dns.RcodeSuccess {
		return "", fmt.Errorf("rcode %s", dns.RcodeToString[r.Rcode])
	}
	if len(r.Answer) != 1 {
		return "", fmt.Errorf("answer %q, want one TXT", rrStrings(r.Answer))
	}
	txt, ok := r.Answer[0].(*dns.TXT)
	if !ok || txt.Hdr.Class != dns.ClassCHAOS {
		return "", fmt.Errorf("answer %q, want one CH TXT", rrStrings(r.Answer))
	}
	return strings.Join(txt.Txt, ""), nil
}

// nsid returns the NSID payload of a response and whether it carried one.
func nsid(r *dns.Msg) (string, bool) {
	opt := r.IsEdns0()
	if opt == nil {
		return "", false
	}
	for _, o := range opt.Option {
		if n, ok := o.(*dns.EDNS0_NSID); ok {
			b, err := hex.DecodeString(n.Nsid)
			if err != nil {
				return "(bad hex " + n.Nsid + ")", true
			}
			return string(b), true
		}
	}
	return "", false
}

// packMsg packs m or fails the test.
func packMsg(t *testing.T, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatalf("pack: %v", err)
	}
	return b
}

// frame prefixes each message with its two-octet length (RFC 1035 §4.2.2)
// and concatenates them.
func frame(msgs ...[]byte) []byte {
	var out []byte
	for _, m := range msgs {
		out = binary.BigEndian.AppendUint16(out, uint16(len(m)))
		out = append(out, m...)
	}
	return out
}

// readFramed reads one length-prefixed DNS message from a TCP stream.
func readFramed(c net.Conn) (*dns.Msg, error) {
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, err
	}
	buf := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, fmt.Errorf("message body: %w", err)
	}
	m := new(dns.Msg)
	if err := m.Unpack(buf); err != nil {
		return nil, fmt.Errorf("unpack: %w", err)
	}
	return m, nil
}

// dialTCP opens a TCP connection to addr.
func dialTCP(t *testing.T, addr netip.AddrPort) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 3*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// tcpQuery writes m on c and reads one answer within timeout.
func tcpQuery(c net.Conn, m *dns.Msg, timeout time.Duration) (*dns.Msg, error) {
	b, err := m.Pack()
	if err != nil {
		return nil, err
	}
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	if _, err := c.Write(frame(b)); err != nil {
		return nil, err
	}
	r, err := readFramed(c)
	if err != nil {
		return nil, err
	}
	if r.Id != m.Id {
		return nil, fmt.Errorf("answer ID %d, want %d", r.Id, m.Id)
	}
	return r, nil
}
