package health

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// DNSCheck asks the node's own DNS server for the SOA of every zone it
// serves and requires an authoritative answer: rcode NOERROR, the AA flag,
// and exactly one SOA record owned by the zone. It asks on three paths:
//
//   - Direct, when set: the node's query handler in process, a path no
//     flood can fill. It proves the answers (zone data, answer code).
//   - UDP and TCP to Addr, through the listening sockets: they prove the
//     listeners live.
//
// Zones past their SOA expire are not asked: they answer SERVFAIL. When
// every zone is expired, the check asks the expired ones and requires
// SERVFAIL, which still proves that the listeners answer.
//
// # Flooded is not broken
//
// Under a flood the node's public sockets are full and its CPU busy: the
// check's own queries over them may get no answer in time although the
// node answers all it can. Withdrawing then would move the flood to the
// next region (docs/ddos.md, "Absorb, don't withdraw"), so a transport
// whose queries only went unanswered (timeouts, a connection reset to make
// room) is excused while the server demonstrably works on that transport:
// its progress count (UDPProgress, TCPProgress) moved since the start of
// the previous run (a window of two runs, so that the answer to the
// previous run's query, sent after that run gave up, counts). judge holds
// the whole decision:
//
//   - a wrong answer on any path, a refused connection or any other error
//     that is not a missing answer fails (broken);
//   - a transport without an answer and without progress fails (a wedged
//     listener, a hung process);
//   - a transport without an answer but with progress is flooded: the
//     check passes and Flooded counts the run, provided the answers are
//     proven, by Direct or by the other transport.
//
// Each transport uses one connection for all zones, in order; a TCP
// connection the server closed is reopened (servers may limit queries per
// connection), and a UDP query that gets no answer within half the time left
// is sent once more.
type DNSCheck struct {
	Addr  netip.AddrPort
	Zones func() []string // zones to query; none (and no Expired) is a failure
	// Expired lists the zones past their SOA expire, asked (expecting
	// SERVFAIL) only when Zones has none; nil = none.
	Expired func() []string
	Label   string // Name; "" = "dns"
	// Direct, when set, answers a query in process, without a socket
	// (the node's handler); a nil answer is a dropped query. It must be
	// safe for concurrent use and must not count in UDPProgress or
	// TCPProgress.
	Direct func(req *dns.Msg) (*dns.Msg, error)
	// UDPProgress and TCPProgress, when set, count what the server has
	// done on each transport (packets handled, queries answered,
	// connections evicted). Without one, that transport's missing
	// answers are never excused.
	UDPProgress func() uint64
	TCPProgress func() uint64
	// Pressure, when set, counts the signs of a flood: packets the kernel
	// dropped for full receive buffers, connections it could not queue,
	// connections the server evicted or refused (KernelPressure plus the
	// server's own). Missing answers are then excused only when it moved
	// within the window too: a path that is cut (a firewall, a blackhole
	// on the check's address) while the server answers other traffic is
	// broken, not flooded — its queries never arrive, so nothing overflows.
	Pressure func() uint64
	// TCPAcceptQueue, when set, tells how many connections wait in the
	// accept queue of Addr's TCP listener (AcceptQueue). Empty at the
	// end of a run, it shows the accept loop keeping up although the
	// check's own TCP query went unanswered (a process starved of CPU
	// may not even send it): a hung loop leaves the check's connections
	// queued.
	TCPAcceptQueue func() (int, error)
	// Flooded counts the runs that passed as flooded.
	Flooded atomic.Uint64

	mu   sync.Mutex
	prev progress // the counts at the start of the previous run
	have bool     // prev is set
	// Progress with Pressure: the counts at its last call, and how many
	// calls found both work and pressure moved.
	busyLast progress
	busyHave bool
	busy     uint64
}

// progress holds the counts of both transports, and the pressure, at one
// moment.
type progress struct{ udp, tcp, pressure uint64 }

func (d *DNSCheck) progress() progress {
	var p progress
	if d.UDPProgress != nil {
		p.udp = d.UDPProgress()
	}
	if d.TCPProgress != nil {
		p.tcp = d.TCPProgress()
	}
	if d.Pressure != nil {
		p.pressure = d.Pressure()
	}
	return p
}

// Progress implements Patient: the sum of both transports' counts.
// With Pressure set, the count moves only when both the work and the
// pressure moved since the previous call: a late check is held for a
// flood, not for a server that answers other traffic while the check's
// own path is cut.
func (d *DNSCheck) Progress() uint64 {
	p := d.progress()
	if d.Pressure == nil {
		return p.udp + p.tcp
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.busyHave && p.udp+p.tcp > d.busyLast.udp+d.busyLast.tcp && p.pressure > d.busyLast.pressure {
		d.busy++
	}
	d.busyLast, d.busyHave = p, true
	return d.busy
}

// Name implements Check.
func (d *DNSCheck) Name() string { return cmp.Or(d.Label, "dns") }

// outcome is what one path's queries came to.
type outcome int

const (
	outAnswered outcome = iota // every query answered right
	outSilent                  // only missing answers: timeouts, resets, not asked for want of time
	outFaulty                  // a wrong answer, a refused connection, another error
	outUnused                  // the path is not configured
)

func (o outcome) String() string {
	return [...]string{"answered", "silent", "faulty", "unused"}[o]
}

// observation is one run of the check, for judge.
type observation struct {
	direct, udp, tcp          outcome
	directErr, udpErr, tcpErr string
	// udpProgress, tcpProgress: the server's count of the transport
	// moved within the window (false when it has no count), or for TCP
	// its accept queue was empty at the end.
	udpProgress, tcpProgress bool
}

// judge decides a run: nil when it passes, with flooded when it passed
// only because a transport's missing answers were excused.
func judge(o observation) (flooded bool, err error) {
	var fails []string
	for _, p := range []struct {
		name     string
		out      outcome
		msg      string
		progress bool
	}{
		{"in process", o.direct, o.directErr, o.udpProgress || o.tcpProgress},
		{"udp", o.udp, o.udpErr, o.udpProgress},
		{"tcp", o.tcp, o.tcpErr, o.tcpProgress},
	} {
		switch {
		case p.out == outFaulty:
			fails = append(fails, p.msg)
		case p.out == outSilent && !p.progress:
			fails = append(fails, fmt.Sprintf("%s (and the server handled nothing over %s)", p.msg, p.name))
		case p.out == outSilent:
			flooded = true
		}
	}
	if len(fails) > 0 {
		return false, errors.New(strings.Join(fails, "; "))
	}
	if flooded && o.direct != outAnswered && o.udp != outAnswered && o.tcp != outAnswered {
		// Nothing answered at all: the answers are not proven.
		return false, fmt.Errorf("no path answered: %s; %s", o.udpErr, o.tcpErr)
	}
	return flooded, nil
}

// Check implements Check.
func (d *DNSCheck) Check(ctx context.Context) error {
	zones, expired := d.Zones(), false
	if len(zones) == 0 && d.Expired != nil {
		zones, expired = d.Expired(), true
	}
	if len(zones) == 0 {
		return errors.New("no zones to query")
	}
	start := d.progress()
	d.mu.Lock()
	base := start
	if d.have {
		base = d.prev
	}
	d.prev, d.have = start, true
	d.mu.Unlock()

	o := observation{direct: outUnused}
	if d.Direct != nil {
		o.direct, o.directErr = d.direct(zones, expired)
	}
	var wg sync.WaitGroup
	wg.Go(func() { o.udp, o.udpErr = d.check(ctx, "udp", zones, expired) })
	wg.Go(func() { o.tcp, o.tcpErr = d.check(ctx, "tcp", zones, expired) })
	wg.Wait()
	end := d.progress()
	o.udpProgress = d.UDPProgress != nil && end.udp > base.udp
	o.tcpProgress = d.TCPProgress != nil && end.tcp > base.tcp
	if !o.tcpProgress && o.tcp == outSilent && d.TCPAcceptQueue != nil {
		n, err := d.TCPAcceptQueue()
		o.tcpProgress = err == nil && n == 0
	}
	if d.Pressure != nil && end.pressure == base.pressure {
		// Work without pressure: the check's queries did not arrive.
		o.udpProgress, o.tcpProgress = false, false
	}
	flooded, err := judge(o)
	if err != nil {
		return err
	}
	if flooded {
		d.Flooded.Add(1)
	}
	return nil
}

// direct asks every zone in process. It does so even past the deadline:
// it costs microseconds, and a run that started late (a process starved
// of CPU) still learns whether the answers are right.
func (d *DNSCheck) direct(zones []string, expired bool) (outcome, string) {
	var fails []string
	for _, z := range zones {
		zone := dns.Fqdn(z)
		m := new(dns.Msg)
		m.SetQuestion(zone, dns.TypeSOA)
		m.RecursionDesired = false
		r, err := d.Direct(m)
		switch {
		case err != nil:
		case r == nil:
			err = errors.New("dropped")
		case expired:
			err = validateExpired(r, zone)
		default:
			err = validate(r, zone)
		}
		if err != nil {
			fails = append(fails, fmt.Sprintf("%s in process: %v", z, err))
		}
	}
	if len(fails) > 0 {
		return outFaulty, listSome(fails)
	}
	return outAnswered, ""
}

// check queries every zone over one transport; expired: the zones are
// expired and must answer SERVFAIL.
func (d *DNSCheck) check(ctx context.Context, network string, zones []string, expired bool) (outcome, string) {
	s := &session{ctx: ctx, network: network, addr: d.Addr.String(), client: &dns.Client{Net: network}, expired: expired}
	defer s.close()
	var fails []string
	out := outAnswered
	for i, z := range zones {
		if done(ctx) {
			fails = append(fails, fmt.Sprintf("%d zones not queried over %s: %v", len(zones)-i, network, cmp.Or(context.Cause(ctx), context.DeadlineExceeded)))
			out = max(out, outSilent)
			break
		}
		err := s.query(dns.Fqdn(z))
		if err == nil {
			continue
		}
		if missing(err) {
			out = max(out, outSilent)
		} else {
			out = outFaulty
		}
		var de dialError
		if errors.As(err, &de) {
			// Without a connection the other zones cannot be asked.
			fails = append(fails, fmt.Sprintf("%s: %v", network, de))
			if n := len(zones) - i - 1; n > 0 {
				fails = append(fails, fmt.Sprintf("%d zones not queried over %s", n, network))
			}
			break
		}
		fails = append(fails, fmt.Sprintf("%s over %s: %v", z, network, err))
	}
	if len(fails) > 0 {
		return out, listSome(fails)
	}
	return outAnswered, ""
}

// missing reports whether err is an answer that did not come, rather than
// a wrong one or a refusal: a timeout, or a connection the server reset or
// closed (a server under a connection flood closes the connections idle
// longest to make room).
func missing(err error) bool {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout(),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	return false
}

// done reports whether ctx is done or its deadline has passed: a read
// that ran into the deadline may return before ctx reports it.
func done(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// dialError is a failure to connect, which ends the transport's queries.
type dialError struct{ err error }

func (e dialError) Error() string { return e.err.Error() }
func (e dialError) Unwrap() error { return e.err }

// session is one transport's connection, opened on demand.
type session struct {
	ctx     context.Context
	network string
	addr    string
	client  *dns.Client
	conn    *dns.Conn
	used    int         // answers received on conn
	stop    func() bool // of the context.AfterFunc that unblocks conn
	expired bool        // the zones are expired: SERVFAIL is the right answer
}

func (s *session) close() {
	if s.conn != nil {
		s.stop()
		_ = s.conn.Close()
		s.conn = nil
	}
}

// query sends one SOA query for zone and validates the answer.
func (s *session) query(zone string) error {
	for attempt := 0; ; attempt++ {
		if s.conn == nil {
			conn, err := s.client.DialContext(s.ctx, s.addr)
			if err != nil {
				return dialError{err}
			}
			// Cancellation (not only the deadline) unblocks a read.
			s.conn, s.used = conn, 0
			s.stop = context.AfterFunc(s.ctx, func() { _ = conn.SetDeadline(time.Now()) })
		}
		if s.network == "udp" {
			if dl, ok := s.ctx.Deadline(); ok {
				s.client.ReadTimeout = max(time.Until(dl)/2, time.Millisecond)
			}
		}
		m := new(dns.Msg)
		m.SetQuestion(zone, dns.TypeSOA)
		m.RecursionDesired = false
		r, _, err := s.client.ExchangeWithConnContext(s.ctx, m, s.conn)
		if err == nil {
			s.used++
			if s.expired {
				return validateExpired(r, zone)
			}
			return validate(r, zone)
		}
		var retry bool
		switch s.network {
		case "tcp":
			// The server may have closed a connection it had served.
			retry = s.used > 0
			s.close()
		default:
			var ne net.Error
			retry = errors.As(err, &ne) && ne.Timeout()
		}
		if attempt > 0 || !retry || done(s.ctx) {
			return err
		}
	}
}

// validateReply checks that r is a reply to the SOA query of zone.
func validateReply(r *dns.Msg, zone string) error {
	switch {
	case !r.Response:
		return errors.New("reply is not a response")
	case r.Opcode != dns.OpcodeQuery:
		return fmt.Errorf("reply opcode %s", dns.OpcodeToString[r.Opcode])
	case len(r.Question) != 1 || r.Question[0].Qtype != dns.TypeSOA || !strings.EqualFold(r.Question[0].Name, zone):
		return errors.New("reply question does not match the query")
	}
	return nil
}

// validateExpired checks that r is the SERVFAIL of an expired zone.
func validateExpired(r *dns.Msg, zone string) error {
	if err := validateReply(r, zone); err != nil {
		return err
	}
	if r.Rcode != dns.RcodeServerFailure {
		return fmt.Errorf("expired zone answered %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	return nil
}

// validate checks that r is an authoritative answer with the SOA of zone.
func validate(r *dns.Msg, zone string) error {
	if err := validateReply(r, zone); err != nil {
		return err
	}
	switch {
	case r.Rcode != dns.RcodeSuccess:
		return fmt.Errorf("rcode %s", dns.RcodeToString[r.Rcode])
	case !r.Authoritative:
		return errors.New("not authoritative (no AA flag)")
	case r.Truncated:
		return errors.New("truncated")
	}
	n := 0
	for _, rr := range r.Answer {
		if rr.Header().Rrtype == dns.TypeSOA && strings.EqualFold(rr.Header().Name, zone) {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("%d SOA records for the zone in the answer, want 1", n)
	}
	return nil
}

// AcceptQueue returns how many connections wait to be accepted by the TCP
// listener of addr (or of the unspecified address on its port), from the
// kernel's socket table (/proc/net/tcp, tcp6): the rx_queue of a
// listening socket is its accept queue.
func AcceptQueue(addr netip.AddrPort) (int, error) {
	files := []string{"/proc/net/tcp"}
	if addr.Addr().Is6() && !addr.Addr().Is4In6() {
		files = []string{"/proc/net/tcp6"}
	}
	want := []string{procAddr(addr.Addr().Unmap(), addr.Port())}
	if addr.Addr().Unmap().Is4() {
		want = append(want, procAddr(netip.IPv4Unspecified(), addr.Port()))
	} else {
		want = append(want, procAddr(netip.IPv6Unspecified(), addr.Port()))
	}
	found, total := false, 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return 0, fmt.Errorf("accept queue of %s: %w", addr, err)
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			fl := strings.Fields(line)
			// sl local_address rem_address st tx_queue:rx_queue ...
			if len(fl) < 5 || fl[3] != "0A" || !slices.Contains(want, fl[1]) {
				continue
			}
			_, rx, ok := strings.Cut(fl[4], ":")
			n, err := strconv.ParseUint(rx, 16, 32)
			if !ok || err != nil {
				return 0, fmt.Errorf("accept queue of %s: bad queue field %q in %s", addr, fl[4], f)
			}
			found, total = true, total+int(n)
		}
	}
	if !found {
		return 0, fmt.Errorf("accept queue of %s: no listening socket", addr)
	}
	return total, nil
}

// procAddr is addr:port as /proc/net/tcp writes it: the address in 32-bit
// words of host byte order, in hex, then the port in hex.
func procAddr(addr netip.Addr, port uint16) string {
	var b strings.Builder
	raw := addr.AsSlice()
	for i := 0; i < len(raw); i += 4 {
		fmt.Fprintf(&b, "%08X", binary.NativeEndian.Uint32(raw[i:i+4]))
	}
	fmt.Fprintf(&b, ":%04X", port)
	return b.String()
}
