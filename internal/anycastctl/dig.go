package anycastctl

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// DefaultServer is where dig sends queries without -server: the DNS port
// of the local host, where a PoP serves (dig is about which PoP answers).
// anycastd standalone serves on StandaloneServer instead, and a refused
// query says so.
const DefaultServer = "127.0.0.1:53"

// StandaloneServer is where anycastd standalone (make run) serves DNS by
// default.
const StandaloneServer = "127.0.0.1:5353"

// ErrNoServer matches the error of a query that nothing listens for: the
// host refused it (connection refused, or ICMP port unreachable for UDP).
var ErrNoServer = errors.New("nothing listens there")

// ednsSize is the EDNS buffer size of the queries (DNS flag day 2020).
const ednsSize = 1232

// Question is what dig asks.
type Question struct {
	Name string // fully qualified
	Type uint16
}

func (q Question) String() string { return q.Name + " " + dns.TypeToString[q.Type] }

// ParseQuestion checks a name and an optional type (default A) as given on
// the command line: a type mnemonic such as AAAA or TYPE65, any case.
func ParseQuestion(name, typ string) (Question, error) {
	if _, ok := dns.IsDomainName(name); !ok || name == "" {
		return Question{}, fmt.Errorf("invalid name %q", name)
	}
	q := Question{Name: dns.Fqdn(name), Type: dns.TypeA}
	if typ == "" {
		return q, nil
	}
	u := strings.ToUpper(typ)
	if t, ok := dns.StringToType[u]; ok {
		q.Type = t
	} else if n, err := strconv.ParseUint(strings.TrimPrefix(u, "TYPE"), 10, 16); err == nil && strings.HasPrefix(u, "TYPE") {
		q.Type = uint16(n)
	} else {
		return Question{}, fmt.Errorf("unknown query type %q", typ)
	}
	switch q.Type {
	case dns.TypeAXFR, dns.TypeIXFR:
		return Question{}, fmt.Errorf("query type %s: zone transfers are not supported", typ)
	case dns.TypeOPT, dns.TypeNone:
		return Question{}, fmt.Errorf("query type %s cannot be asked", typ)
	}
	return q, nil
}

// ServerAddr completes a server given as host:port, host or IP address
// (IPv6 with or without brackets) with port 53.
func ServerAddr(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty server address")
	}
	bare := s
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		bare = s[1 : len(s)-1]
	}
	if a, err := netip.ParseAddr(bare); err == nil {
		return netip.AddrPortFrom(a, 53).String(), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if strings.Contains(s, ":") {
			return "", fmt.Errorf("invalid server address %q: %w", s, err)
		}
		return net.JoinHostPort(s, "53"), nil
	}
	if host == "" {
		return "", fmt.Errorf("invalid server address %q: no host", s)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", fmt.Errorf("invalid server address %q: bad port %q", s, port)
	}
	return s, nil
}

// DigOptions says how dig queries.
type DigOptions struct {
	Server  string        // host:port, as ServerAddr returns it
	TCP     bool          // TCP only; otherwise UDP, and TCP again when truncated
	Timeout time.Duration // of one exchange; 0 = 2s
}

// Reply is one answer to dig's query.
type Reply struct {
	Msg       *dns.Msg
	NSID      []byte        // the server's NSID option; nil when there was none
	RTT       time.Duration // of the exchange that gave Msg
	Transport string        // udp or tcp
	Retried   bool          // the UDP answer was truncated and Msg came over TCP
}

// PoP is the name of the PoP that answered: the NSID as text, or in hex
// when it is not printable; "" without NSID.
func (r Reply) PoP() string { return nsidText(r.NSID) }

func nsidText(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	for _, c := range b {
		if c < 0x21 || c > 0x7e {
			return "0x" + hex.EncodeToString(b)
		}
	}
	return string(b)
}

// Query sends q with the EDNS NSID option to the server and returns the
// answer. A truncated UDP answer is asked again over TCP.
func Query(ctx context.Context, opts DigOptions, q Question) (Reply, error) {
	m := new(dns.Msg)
	m.SetQuestion(q.Name, q.Type)
	m.RecursionDesired = false // an authoritative server is asked
	m.SetEdns0(ednsSize, false)
	opt := m.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})

	transport := "udp"
	if opts.TCP {
		transport = "tcp"
	}
	r, err := exchange(ctx, opts, transport, m)
	if err != nil {
		return Reply{}, err
	}
	if r.Msg.Truncated && transport == "udp" {
		r, err = exchange(ctx, opts, "tcp", m)
		if err != nil {
			return Reply{}, fmt.Errorf("truncated over udp, then: %w", err)
		}
		r.Retried = true
	}
	return r, nil
}

func exchange(ctx context.Context, opts DigOptions, transport string, m *dns.Msg) (Reply, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	c := &dns.Client{Net: transport, Timeout: timeout}
	conn, err := c.DialContext(ctx, opts.Server)
	if err != nil {
		return Reply{}, exchangeErr(transport, opts.Server, err)
	}
	defer func() { _ = conn.Close() }()
	// The library honours only the context's deadline; cancellation (^C)
	// must interrupt a read as well.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	resp, rtt, err := c.ExchangeWithConnContext(ctx, m, conn)
	if ctx.Err() != nil {
		return Reply{}, ctx.Err()
	}
	if err != nil {
		return Reply{}, exchangeErr(transport, opts.Server, err)
	}
	// An error answer (FORMERR) may come without the question.
	if (len(resp.Question) == 0 && resp.Rcode == dns.RcodeSuccess) || len(resp.Question) > 1 ||
		(len(resp.Question) == 1 && (!strings.EqualFold(resp.Question[0].Name, m.Question[0].Name) ||
			resp.Question[0].Qtype != m.Question[0].Qtype)) {
		return Reply{}, fmt.Errorf("%s %s: the answer is for another question", transport, opts.Server)
	}
	r := Reply{Msg: resp, RTT: rtt, Transport: transport}
	if o := resp.IsEdns0(); o != nil {
		for _, e := range o.Option {
			if n, ok := e.(*dns.EDNS0_NSID); ok {
				b, err := hex.DecodeString(n.Nsid)
				if err != nil {
					return Reply{}, fmt.Errorf("%s %s: nsid: %w", transport, opts.Server, err)
				}
				r.NSID = append([]byte{}, b...) // non-nil even when empty
			}
		}
	}
	return r, nil
}

// exchangeErr names the transport and server of a failed exchange; a
// refused one matches ErrNoServer.
func exchangeErr(transport, server string, err error) error {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s %s: %w (connection refused)", transport, server, ErrNoServer)
	}
	return fmt.Errorf("%s %s: %w", transport, server, err)
}

// Hint is advice for an error of Query or Repeat asking server, "" when
// there is none.
func Hint(server string, err error) string {
	if !errors.Is(err, ErrNoServer) {
		return ""
	}
	h := fmt.Sprintf("Nothing serves DNS at %s. Give the server with -server ADDR[:PORT]", server)
	if server != StandaloneServer {
		h += fmt.Sprintf("; anycastd standalone (make run) serves on %s: -server %s", StandaloneServer, StandaloneServer)
	}
	return h + "."
}

// WriteReply prints one answer in the manner of dig, led by the PoP that
// answered and the round-trip time.
func WriteReply(w io.Writer, server string, q Question, r Reply) error {
	ew := &errWriter{w: w}
	pop := "no NSID in the answer"
	switch {
	case r.NSID != nil && len(r.NSID) == 0:
		pop = "empty NSID"
	case r.NSID != nil:
		pop = "PoP " + r.PoP()
	}
	via := r.Transport
	if r.Retried {
		via = "udp, truncated, then tcp"
	}
	m := r.Msg
	ew.printf(";; %s answered %s in %s (%s %s)\n", pop, q, fmtRTT(r.RTT), server, via)
	ew.printf(";; %s, flags %s, id %d\n", dns.RcodeToString[m.Rcode], flags(m), m.Id)
	if o := m.IsEdns0(); o != nil {
		for _, e := range o.Option {
			if ede, ok := e.(*dns.EDNS0_EDE); ok {
				ew.printf(";; extended error: %s\n", ede.String())
			}
		}
	}
	for _, s := range []struct {
		name string
		rrs  []dns.RR
	}{{"ANSWER", m.Answer}, {"AUTHORITY", m.Ns}, {"ADDITIONAL", m.Extra}} {
		var rrs []dns.RR
		for _, rr := range s.rrs {
			if rr.Header().Rrtype != dns.TypeOPT {
				rrs = append(rrs, rr)
			}
		}
		if len(rrs) == 0 {
			continue
		}
		ew.printf("\n;; %s\n", s.name)
		for _, rr := range rrs {
			ew.printf("%s\n", rr.String())
		}
	}
	return ew.err
}

func flags(m *dns.Msg) string {
	var f []string
	for _, x := range []struct {
		on   bool
		name string
	}{
		{m.Response, "qr"}, {m.Authoritative, "aa"}, {m.Truncated, "tc"}, {m.RecursionDesired, "rd"},
		{m.RecursionAvailable, "ra"}, {m.AuthenticatedData, "ad"}, {m.CheckingDisabled, "cd"},
	} {
		if x.on {
			f = append(f, x.name)
		}
	}
	if len(f) == 0 {
		return "none"
	}
	return strings.Join(f, " ")
}

// Tally counts the answers of repeated queries per PoP.
type Tally struct {
	Queries, Errors int
	Changes         int // times the answering PoP differed from the previous answer's
	last            string
	pops            map[string]*popTally
	order           []string // PoPs in order of first answer
}

type popTally struct {
	n             int
	min, max, sum time.Duration
}

// Add counts one query's outcome.
func (t *Tally) Add(r Reply, err error) {
	t.Queries++
	if err != nil {
		t.Errors++
		return
	}
	pop := r.PoP()
	if t.pops == nil {
		t.pops = map[string]*popTally{}
	}
	p := t.pops[pop]
	if p == nil {
		p = &popTally{min: r.RTT, max: r.RTT}
		t.pops[pop] = p
		t.order = append(t.order, pop)
	}
	p.n++
	p.sum += r.RTT
	p.min = min(p.min, r.RTT)
	p.max = max(p.max, r.RTT)
	if t.Queries-t.Errors > 1 && pop != t.last {
		t.Changes++
	}
	t.last = pop
}

// Answered is the number of queries that got an answer.
func (t *Tally) Answered() int { return t.Queries - t.Errors }

// WriteSummary prints the counts per PoP, most answers first.
func (t *Tally) WriteSummary(w io.Writer, server string, q Question) error {
	ew := &errWriter{w: w}
	ew.printf("--- %s @%s: %s, %s, %s, %s\n", q, server,
		plural(t.Queries, "query", "queries"), plural(t.Answered(), "answer", "answers"),
		plural(t.Errors, "error", "errors"), plural(t.Changes, "PoP change", "PoP changes"))
	if len(t.order) == 0 {
		return ew.err
	}
	pops := append([]string(nil), t.order...)
	sort.SliceStable(pops, func(i, j int) bool { return t.pops[pops[i]].n > t.pops[pops[j]].n })
	var tb table
	tb.row("POP", "ANSWERS", "SHARE", "RTT MIN/AVG/MAX")
	for _, pop := range pops {
		p := t.pops[pop]
		name := pop
		if name == "" {
			name = "(no NSID)"
		}
		tb.row(name, strconv.Itoa(p.n), fmt.Sprintf("%.1f%%", 100*float64(p.n)/float64(t.Answered())),
			fmtRTT(p.min)+"/"+fmtRTT(p.sum/time.Duration(p.n))+"/"+fmtRTT(p.max))
	}
	tb.writeTo(ew, "")
	return ew.err
}

// Repeat asks q count times (0 = until ctx is done), interval apart,
// printing a line per query as it goes and the summary at the end, also
// when ctx ends early. It fails when no query was answered.
func Repeat(ctx context.Context, w io.Writer, opts DigOptions, q Question, count int, interval time.Duration) error {
	var t Tally
	var lastErr error
	ew := &errWriter{w: w}
	ew.printf("%4s  %-20s %-9s %9s  %s\n", "SEQ", "POP", "RCODE", "RTT", "ANSWER")
	timer := time.NewTimer(0)
	defer timer.Stop()
loop:
	for i := 1; count == 0 || i <= count; i++ {
		if i > 1 {
			timer.Reset(interval)
			select {
			case <-ctx.Done():
				break loop
			case <-timer.C:
			}
		}
		r, err := Query(ctx, opts, q)
		if ctx.Err() != nil {
			break
		}
		t.Add(r, err)
		if err != nil {
			lastErr = err
			ew.printf("%4d  %-20s %-9s %9s  %s\n", i, "-", "error", "-", err)
			continue
		}
		pop := r.PoP()
		if pop == "" {
			pop = "(no NSID)"
		}
		ew.printf("%4d  %-20s %-9s %9s  %s\n", i, pop, dns.RcodeToString[r.Msg.Rcode], fmtRTT(r.RTT), brief(r.Msg))
	}
	ew.printf("\n")
	if ew.err != nil {
		return ew.err
	}
	if err := t.WriteSummary(w, opts.Server, q); err != nil {
		return err
	}
	if t.Answered() == 0 {
		if t.Queries == 0 {
			return ctx.Err()
		}
		if errors.Is(lastErr, ErrNoServer) {
			return fmt.Errorf("no answer to %s: %w", plural(t.Queries, "query", "queries"), lastErr)
		}
		return fmt.Errorf("no answer to %s", plural(t.Queries, "query", "queries"))
	}
	return nil
}

// brief is the answer section's data in one short line.
func brief(m *dns.Msg) string {
	var parts []string
	for _, rr := range m.Answer {
		s := rr.String()
		h := rr.Header().String()
		parts = append(parts, strings.TrimSpace(strings.TrimPrefix(s, h)))
	}
	if len(parts) == 0 {
		return fmt.Sprintf("(%s)", plural(len(m.Ns), "authority record", "authority records"))
	}
	s := strings.Join(parts, ", ")
	if r := []rune(s); len(r) > 60 {
		s = string(r[:59]) + "…"
	}
	return s
}

// fmtRTT rounds a round-trip time to what is worth reading.
func fmtRTT(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// errWriter keeps the first write error.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) {
	_, _ = fmt.Fprintf(e, format, args...) // e keeps the error
}
