package xfrout

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/testkit"
	"github.com/anycastdns/anycastdns/internal/testkit/testzone"
	"github.com/anycastdns/anycastdns/internal/tsig"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// Test keys (base64 secrets of 32 bytes).
const (
	keyA     = "key-a."
	secretA  = "KmSBOQmjtyYzILPFjRYDIUmaEGkpbDVAkwbzmB8pfLE="
	keyB     = "key-b."
	secretB  = "c2VjcmV0LW9mLWFub3RoZXIta2V5LTAxMjM0NTY3ODk="
	origin   = "example.com."
	loopback = "127.0.0.1"
)

// memSource is an in-memory ZoneSource: each set records the difference
// from the previous version in the zone's journal (zone.Diff, as the store
// does) and publishes an event.
type memSource struct {
	mu         sync.Mutex
	zones      map[string]*memZone
	subs       []chan store.Event
	listErr    error
	changesErr error // returned by Changes when set
	changesN   int   // Changes calls
}

type memZone struct {
	z       *zone.Zone
	journal []store.Change
}

func newMemSource() *memSource { return &memSource{zones: map[string]*memZone{}} }

// set installs z as the current version of its zone.
func (m *memSource) set(t testing.TB, z *zone.Zone) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	mz := m.zones[z.Origin]
	created := mz == nil
	if created {
		mz = &memZone{}
		m.zones[z.Origin] = mz
	} else {
		del, add, err := zone.Diff(mz.z, z)
		if err != nil {
			t.Fatal(err)
		}
		mz.journal = append(mz.journal, store.Change{From: mz.z.Serial, To: z.Serial, Del: del, Add: add})
	}
	mz.z = z
	m.publish(store.Event{Zone: z.Origin, Serial: z.Serial, Created: created})
}

// trim keeps the last n changes of a zone.
func (m *memSource) trim(name string, n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mz := m.zones[name]
	mz.journal = mz.journal[max(0, len(mz.journal)-n):]
}

func (m *memSource) remove(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.zones, name)
	m.publish(store.Event{Zone: name, Deleted: true})
}

func (m *memSource) publish(ev store.Event) {
	for _, c := range m.subs {
		c <- ev
	}
}

func (m *memSource) ListZones(ctx context.Context) ([]store.ZoneInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.listErr != nil {
		return nil, m.listErr
	}
	var out []store.ZoneInfo
	for name, mz := range m.zones {
		out = append(out, store.ZoneInfo{Name: name, Serial: mz.z.Serial, Records: mz.z.Records})
	}
	slices.SortFunc(out, func(a, b store.ZoneInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (m *memSource) Zone(ctx context.Context, name string) (*zone.Zone, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mz := m.zones[dns.CanonicalName(name)]
	if mz == nil {
		return nil, fmt.Errorf("zone %s: %w", name, store.ErrNotFound)
	}
	return mz.z, nil
}

func (m *memSource) Changes(ctx context.Context, name string, from uint32) ([]store.Change, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.changesN++
	if m.changesErr != nil {
		return nil, m.changesErr
	}
	mz := m.zones[dns.CanonicalName(name)]
	if mz == nil {
		return nil, fmt.Errorf("zone %s: %w", name, store.ErrNotFound)
	}
	if from == mz.z.Serial {
		return []store.Change{}, nil
	}
	for i, c := range mz.journal {
		if c.From == from {
			return slices.Clone(mz.journal[i:]), nil
		}
	}
	return nil, fmt.Errorf("zone %s: serial %d: %w", name, from, store.ErrNoJournal)
}

func (m *memSource) Subscribe() (<-chan store.Event, func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := make(chan store.Event, 1000)
	m.subs = append(m.subs, c)
	var once sync.Once
	return c, func() {
		once.Do(func() {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.subs = slices.DeleteFunc(m.subs, func(x chan store.Event) bool { return x == c })
			close(c)
		})
	}
}

// makeZone returns zone name with serial, hosts host records and extra.
func makeZone(t testing.TB, name string, serial uint32, hosts int, extra ...string) *zone.Zone {
	t.Helper()
	return testzone.New(t, name, serial, hosts, extra...)
}

// rrStrings returns the records in presentation form, sorted, TTLs kept.
func rrStrings(rrs []dns.RR) []string {
	out := make([]string, len(rrs))
	for i, rr := range rrs {
		out[i] = strings.ReplaceAll(rr.String(), "\t", " ")
	}
	slices.Sort(out)
	return out
}

func zoneStrings(t testing.TB, z *zone.Zone) []string {
	t.Helper()
	rrs, err := z.RRs()
	if err != nil {
		t.Fatal(err)
	}
	return rrStrings(rrs)
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startServer runs a Server for src on 127.0.0.1 (a free port) until the
// test ends, and checks that Run then returns nil.
func startServer(t *testing.T, cfg Config, src ZoneSource) (*Server, netip.AddrPort) {
	t.Helper()
	if cfg.Listen == nil {
		cfg.Listen = []netip.AddrPort{netip.MustParseAddrPort(loopback + ":0")}
	}
	s, err := New(cfg, src, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	testkit.Start(t, s)
	return s, s.Addrs()[0]
}

// testKeys are the keys of the tests' configurations.
func testKeys() []tsig.Key {
	return []tsig.Key{{Name: keyA, Algorithm: "hmac-sha256", Secret: secretA}, {Name: keyB, Algorithm: "hmac-sha512", Secret: secretB}}
}

// clientKey is how a test client signs: a name, an algorithm and a secret
// that need not match the server's.
type clientKey struct {
	name, alg, secret string
	timeShift         time.Duration // added to the signing time
}

var (
	signA = &clientKey{name: keyA, alg: dns.HmacSHA256, secret: secretA}
	signB = &clientKey{name: keyB, alg: dns.HmacSHA512, secret: secretB}
)

// response is what a test client read: the messages and their raw bytes.
type response struct {
	msgs []*dns.Msg
	raw  [][]byte
}

// records returns the answer records of every message, in order.
func (r *response) records() []dns.RR {
	var out []dns.RR
	for _, m := range r.msgs {
		out = append(out, m.Answer...)
	}
	return out
}

// pack packs q, signed with key when it is set, and returns it with its MAC.
func pack(t testing.TB, q *dns.Msg, key *clientKey) ([]byte, string) {
	t.Helper()
	if key == nil {
		b, err := q.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b, ""
	}
	q.SetTsig(key.name, key.alg, tsig.Fudge, time.Now().Add(key.timeShift).Unix())
	b, mac, err := dns.TsigGenerate(q, key.secret, "", false)
	if err != nil {
		t.Fatal(err)
	}
	return b, mac
}

// exchangeTCP sends q over TCP and reads the answer: one message, or the
// messages of a transfer until it is complete. Every message of an answer to
// a signed request must carry a TSIG that miekg/dns verifies (the first with
// the request's MAC, the next ones timers-only with the previous MAC).
func exchangeTCP(t testing.TB, addr netip.AddrPort, q *dns.Msg, key *clientKey) (*response, error) {
	t.Helper()
	return exchangeTCPFrom(t, netip.Addr{}, addr, q, key)
}

// exchangeTCPFrom is exchangeTCP from a given local address.
func exchangeTCPFrom(t testing.TB, from netip.Addr, addr netip.AddrPort, q *dns.Msg, key *clientKey) (*response, error) {
	t.Helper()
	req, mac := pack(t, q, key)
	d := net.Dialer{Timeout: 5 * time.Second}
	if from.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(from, 0))
	}
	c, err := d.Dial("tcp", addr.String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	frame := binary.BigEndian.AppendUint16(nil, uint16(len(req)))
	if _, err := c.Write(append(frame, req...)); err != nil {
		return nil, err
	}
	resp := &response{}
	xfr := q.Question[0].Qtype == dns.TypeAXFR || q.Question[0].Qtype == dns.TypeIXFR
	var tr xfrTracker
	for {
		var lenb [2]byte
		if _, err := io.ReadFull(c, lenb[:]); err != nil {
			return resp, fmt.Errorf("after %d messages: %w", len(resp.msgs), err)
		}
		raw := make([]byte, binary.BigEndian.Uint16(lenb[:]))
		if _, err := io.ReadFull(c, raw); err != nil {
			return resp, err
		}
		m := new(dns.Msg)
		if err := m.Unpack(raw); err != nil {
			return resp, fmt.Errorf("message %d: %w", len(resp.msgs), err)
		}
		if m.Id != q.Id {
			return resp, fmt.Errorf("message %d: id %d, want %d", len(resp.msgs), m.Id, q.Id)
		}
		if key != nil {
			ts := m.IsTsig()
			if ts == nil {
				return resp, fmt.Errorf("message %d is not signed", len(resp.msgs))
			}
			if ts.Error == dns.RcodeSuccess || ts.Error == dns.RcodeBadTime {
				if err := verifyAnswer(raw, key, mac, len(resp.msgs) > 0); err != nil {
					return resp, fmt.Errorf("message %d: tsig: %w", len(resp.msgs), err)
				}
				mac = ts.MAC
			}
		}
		resp.msgs = append(resp.msgs, m)
		resp.raw = append(resp.raw, raw)
		if !xfr || m.Rcode != dns.RcodeSuccess || tr.add(m.Answer) {
			return resp, nil
		}
	}
}

// xfrTracker tells when an AXFR or IXFR answer is complete.
type xfrTracker struct {
	n      int    // records seen
	serial uint32 // of the first SOA
	ixfr   bool   // the second record is an SOA: incremental
	seen   int    // SOAs of serial seen
}

// add takes the records of one message and reports whether the answer is
// complete after it.
func (x *xfrTracker) add(rrs []dns.RR) bool {
	for _, rr := range rrs {
		soa, isSOA := rr.(*dns.SOA)
		switch x.n {
		case 0:
			if isSOA {
				x.serial = soa.Serial
			}
			x.seen = 1
		case 1:
			x.ixfr = isSOA && soa.Serial != x.serial
		}
		if x.n > 0 && isSOA && soa.Serial == x.serial {
			x.seen++
		}
		x.n++
	}
	switch {
	case x.n == 1:
		return true // one SOA alone: up to date
	case x.ixfr:
		return x.seen == 3
	default:
		return x.seen == 2
	}
}

// exchangeUDP sends q over UDP from 127.0.0.1 and returns the answer.
func exchangeUDP(t testing.TB, addr netip.AddrPort, q *dns.Msg, key *clientKey) (*dns.Msg, []byte, error) {
	t.Helper()
	req, mac := pack(t, q, key)
	c, err := net.Dial("udp", addr.String())
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(req); err != nil {
		return nil, nil, err
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return nil, nil, err
	}
	m := new(dns.Msg)
	if err := m.Unpack(buf[:n]); err != nil {
		return nil, nil, err
	}
	if key != nil && m.IsTsig() != nil && (m.IsTsig().Error == dns.RcodeSuccess || m.IsTsig().Error == dns.RcodeBadTime) {
		if err := verifyAnswer(buf[:n], key, mac, false); err != nil {
			return m, buf[:n], fmt.Errorf("tsig: %w", err)
		}
	}
	return m, buf[:n], nil
}

func axfrQuery(name string) *dns.Msg {
	q := new(dns.Msg)
	q.SetAxfr(name)
	return q
}

func ixfrQuery(name string, serial uint32) *dns.Msg {
	q := new(dns.Msg)
	q.SetIxfr(name, serial, "ns.", "mbox.")
	return q
}

func soaQuery(name string) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeSOA)
	return q
}

// counter reads a counter of the server's metrics.
func counter(t testing.TB, s *Server, name string, labels map[string]string) float64 {
	t.Helper()
	for _, c := range s.Collectors() {
		ch := make(chan prometheus.Metric, 64)
		go func() { c.Collect(ch); close(ch) }()
		var total float64
		found := false
		for m := range ch {
			if !strings.Contains(m.Desc().String(), `"`+name+`"`) {
				continue
			}
			var pb dto.Metric
			if err := m.Write(&pb); err != nil {
				t.Fatal(err)
			}
			if !labelsMatch(pb.GetLabel(), labels) {
				continue
			}
			found = true
			switch {
			case pb.Counter != nil:
				total += pb.Counter.GetValue()
			case pb.Gauge != nil:
				total += pb.Gauge.GetValue()
			}
		}
		if found {
			return total
		}
	}
	return 0
}

func labelsMatch(got []*dto.LabelPair, want map[string]string) bool {
	for k, v := range want {
		ok := false
		for _, l := range got {
			if l.GetName() == k && l.GetValue() == v {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// waitFor polls cond until it holds or 10 seconds pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// rawUDP sends a datagram and returns the answer; an error when none comes
// within 500ms.
func rawUDP(addr netip.AddrPort, req []byte) ([]byte, error) {
	c, err := net.Dial("udp", addr.String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(500 * time.Millisecond))
	if _, err := c.Write(req); err != nil {
		return nil, err
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}

// verifyAnswer checks the TSIG of an answer with miekg/dns, or, for NOTAUTH
// answers, which miekg/dns refuses to verify at all, with testkit.VerifyTSIG.
func verifyAnswer(raw []byte, key *clientKey, requestMAC string, timersOnly bool) error {
	if raw[3]&0xf == dns.RcodeNotAuth {
		return testkit.VerifyTSIG(raw, key.secret, requestMAC)
	}
	// TsigVerify changes the ARCOUNT of the buffer it is given.
	return dns.TsigVerify(append([]byte(nil), raw...), key.secret, requestMAC, timersOnly)
}
