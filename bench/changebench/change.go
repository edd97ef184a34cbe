package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/anycastdns/anycastdns/bench/internal/benchkit"
)

// change is one single-RRset change: the A RRset of a host, which has one
// address in the zone, replaced by a new address.
type change struct {
	Name string     `json:"name"` // relative to the origin
	Old  netip.Addr `json:"old"`
	New  netip.Addr `json:"new"`
}

// maxChanges bounds -changes: the new addresses come from 198.18.0.0/15
// (RFC 2544), far more than that.
const maxChanges = 10_000

// planChanges picks n hosts spread evenly through the zone, each with a
// single A record, and gives change k the address 198.18.0.0 + k + 1.
func planChanges(l benchkit.Layout, n int) ([]change, error) {
	if n < 1 || n > maxChanges {
		return nil, fmt.Errorf("changes %d: want 1..%d", n, maxChanges)
	}
	// Host k is in the middle of the k-th of n equal slices of the hosts;
	// one host in ten has three A records, so the next one may be taken.
	// Four hosts a slice keep that inside the slice.
	if l.Hosts < 4*n {
		return nil, fmt.Errorf("%d changes on a zone of %d hosts: need at least four hosts per change; raise -names", n, l.Hosts)
	}
	out := make([]change, 0, n)
	base := binary.BigEndian.Uint32([]byte{198, 18, 0, 0})
	for k := range n {
		i := (2*k + 1) * l.Hosts / (2 * n)
		for benchkit.HostACount(i) != 1 {
			i++
		}
		var a [4]byte
		binary.BigEndian.PutUint32(a[:], base+uint32(k+1))
		out = append(out, change{Name: l.HostName(i), Old: benchkit.HostA(i, 0), New: netip.AddrFrom4(a)})
	}
	return out, nil
}

// answers says whether m is an authoritative answer whose answer section is
// exactly one A record of qname (lower case, dot-terminated) with address
// want.
func answers(m *benchkit.Message, qname string, want netip.Addr) bool {
	if !m.Response || m.RCode != benchkit.RCodeNoError || !m.AA || len(m.Answer) != 1 {
		return false
	}
	r := m.Answer[0]
	a, ok := netip.AddrFromSlice(r.RData)
	return r.Type == benchkit.TypeA && r.Name == qname && ok && a == want
}

// errNotAnswered is a change the server did not answer in time.
var errNotAnswered = errors.New("not answered")

// awaitAnswer queries addr for qname A every interval over UDP until an
// answer holds exactly want (see answers), and returns when that answer
// arrived. It ends with errNotAnswered when ctx does. A query whose reply
// is late is not waited for: the next one goes out on time, and a late
// reply still counts when it arrives.
func awaitAnswer(ctx context.Context, addr netip.AddrPort, qname string, want netip.Addr, interval time.Duration) (time.Time, error) {
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return time.Time{}, fmt.Errorf("poll socket: %w", err)
	}
	defer func() { _ = conn.Close() }()
	buf := make([]byte, 65535)
	next := time.Now()
	for id := uint16(1); ; id++ {
		if ctx.Err() != nil {
			return time.Time{}, errNotAnswered
		}
		msg, err := benchkit.BuildQuery(id, qname, benchkit.TypeA)
		if err != nil {
			return time.Time{}, err
		}
		_, _ = conn.Write(msg) // a refused send is a server not yet listening: try again
		if next = next.Add(interval); time.Until(next) <= 0 {
			next = time.Now().Add(interval) // fell behind: do not send a burst
		}
		for {
			_ = conn.SetReadDeadline(next)
			n, err := conn.Read(buf)
			if err != nil {
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					// ICMP port unreachable: wait for the next query's turn.
					time.Sleep(time.Until(next))
				}
				break
			}
			at := time.Now()
			if m, err := benchkit.ParseMessage(buf[:n]); err == nil && answers(m, qname, want) {
				return at, nil
			}
		}
	}
}
