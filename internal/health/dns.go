package health

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// DNSCheck asks the node's own DNS server, over UDP and over TCP, for the SOA
// of every zone it serves and requires an authoritative answer: rcode
// NOERROR, the AA flag, and exactly one SOA record owned by the zone. A
// wedged or dead listener on either transport therefore fails the check.
// Zones past their SOA expire are not asked: they answer SERVFAIL. When
// every zone is expired, the check asks the expired ones and requires
// SERVFAIL, which still proves that the listeners answer.
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
	// UDPProgress, when set, counts the UDP packets the server has
	// handled (answered or dropped). A round whose UDP queries only timed
	// out while this count advanced, and whose TCP queries were answered,
	// is a server too busy to answer the check in time — flooded, not
	// broken — and passes: a PoP absorbs a flood instead of withdrawing
	// and moving it to the next region (docs/ddos.md). A wedged UDP
	// listener handles nothing and still fails. Flooded counts those
	// rounds.
	UDPProgress func() uint64
	Flooded     atomic.Uint64
}

// Name implements Check.
func (d *DNSCheck) Name() string { return cmp.Or(d.Label, "dns") }

// Check implements Check.
func (d *DNSCheck) Check(ctx context.Context) error {
	zones, expired := d.Zones(), false
	if len(zones) == 0 && d.Expired != nil {
		zones, expired = d.Expired(), true
	}
	if len(zones) == 0 {
		return errors.New("no zones to query")
	}
	var before uint64
	if d.UDPProgress != nil {
		before = d.UDPProgress()
	}
	var wg sync.WaitGroup
	errs := make([]string, 2)
	var udpTimeoutsOnly bool
	for i, network := range []string{"udp", "tcp"} {
		wg.Go(func() {
			timeoutsOnly, err := d.check(ctx, network, zones, expired)
			if err != nil {
				errs[i] = err.Error()
			}
			if i == 0 {
				udpTimeoutsOnly = timeoutsOnly
			}
		})
	}
	wg.Wait()
	if errs[0] != "" && errs[1] == "" && udpTimeoutsOnly && d.UDPProgress != nil && d.UDPProgress() > before {
		d.Flooded.Add(1)
		return nil
	}
	if errs[0] != "" && errs[1] != "" {
		return errors.New(errs[0] + "; " + errs[1])
	}
	if msg := errs[0] + errs[1]; msg != "" {
		return errors.New(msg)
	}
	return nil
}

// check queries every zone over one transport; expired: the zones are
// expired and must answer SERVFAIL. timeoutsOnly tells that every failure
// was a query without an answer in time (or a zone not asked for want of
// time).
func (d *DNSCheck) check(ctx context.Context, network string, zones []string, expired bool) (timeoutsOnly bool, err error) {
	s := &session{ctx: ctx, network: network, addr: d.Addr.String(), client: &dns.Client{Net: network}, expired: expired}
	defer s.close()
	var fails []string
	timeoutsOnly = true
	for i, z := range zones {
		if done(ctx) {
			cause := context.Cause(ctx)
			if cause == nil {
				cause = context.DeadlineExceeded
			}
			fails = append(fails, fmt.Sprintf("%d zones not queried over %s: %v", len(zones)-i, network, cause))
			break
		}
		err := s.query(dns.Fqdn(z))
		if err == nil {
			continue
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			timeoutsOnly = false
		}
		var de dialError
		if errors.As(err, &de) {
			// Without a connection the other zones cannot be asked.
			fails = append(fails, de.Error())
			if n := len(zones) - i - 1; n > 0 {
				fails = append(fails, fmt.Sprintf("%d zones not queried over %s", n, network))
			}
			break
		}
		fails = append(fails, fmt.Sprintf("%s over %s: %v", z, network, err))
	}
	if len(fails) > 0 {
		return timeoutsOnly, errors.New(listSome(fails))
	}
	return false, nil
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
