package xfrout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/tsig"
)

// receiver is a secondary that receives NOTIFYs over UDP on 127.0.0.1: it
// ignores the first drop of them, then answers with rcode, signed when the
// NOTIFY was and key is set (and checks their signature).
type receiver struct {
	addr  netip.AddrPort
	drop  int
	rcode int
	key   *clientKey

	mu  sync.Mutex
	got []received
}

type received struct {
	zone     string
	serial   uint32
	at       time.Time
	signed   bool
	tsigErr  error
	answered bool
}

func startReceiver(t *testing.T, drop, rcode int, key *clientKey) *receiver {
	t.Helper()
	pc, err := net.ListenPacket("udp", loopback+":0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{addr: pc.LocalAddr().(*net.UDPAddr).AddrPort(), drop: drop, rcode: rcode, key: key}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			r.serve(pc, from, buf[:n])
		}
	}()
	t.Cleanup(func() {
		pc.Close()
		<-done
	})
	return r
}

func (r *receiver) serve(pc net.PacketConn, from net.Addr, raw []byte) {
	m := new(dns.Msg)
	if err := m.Unpack(raw); err != nil || m.Opcode != dns.OpcodeNotify || len(m.Question) != 1 {
		return
	}
	g := received{zone: m.Question[0].Name, at: time.Now()}
	if len(m.Answer) == 1 {
		if soa, ok := m.Answer[0].(*dns.SOA); ok {
			g.serial = soa.Serial
		}
	}
	ts := m.IsTsig()
	g.signed = ts != nil
	if ts != nil && r.key != nil {
		g.tsigErr = dns.TsigVerify(append([]byte(nil), raw...), r.key.secret, "", false)
	}
	r.mu.Lock()
	g.answered = len(r.got) >= r.drop
	r.got = append(r.got, g)
	r.mu.Unlock()
	if !g.answered {
		return
	}
	a := new(dns.Msg)
	a.SetRcode(m, r.rcode)
	a.Authoritative = true
	out, err := a.Pack()
	if ts != nil && r.key != nil {
		a.SetTsig(ts.Hdr.Name, ts.Algorithm, tsig.Fudge, time.Now().Unix())
		out, _, err = dns.TsigGenerate(a, r.key.secret, ts.MAC, false)
	}
	if err == nil {
		_, _ = pc.WriteTo(out, from)
	}
}

func (r *receiver) all() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// waitFor waits for a NOTIFY of zone at serial.
func (r *receiver) waitFor(t *testing.T, zoneName string, serial uint32) {
	t.Helper()
	waitFor(t, fmt.Sprintf("notify %s serial %d", zoneName, serial), func() bool {
		for _, g := range r.all() {
			if g.zone == zoneName && g.serial == serial {
				return true
			}
		}
		return false
	})
}

// notifyConfig sends NOTIFY to rcv signed with key A, quickly.
func notifyConfig(rcv *receiver, tries int) Config {
	cfg := aclConfig()
	cfg.Notify = []NotifyTarget{{Addr: rcv.addr, Key: keyA}}
	cfg.NotifyTries = tries
	cfg.NotifyTimeout = 300 * time.Millisecond
	cfg.NotifyBackoff = 20 * time.Millisecond
	return cfg
}

// TestNotifyRetries: the receiver drops the first two NOTIFYs; the third
// is acknowledged and ends the retries.
func TestNotifyRetries(t *testing.T) {
	rcv := startReceiver(t, 2, dns.RcodeSuccess, signA)
	src := newMemSource()
	src.set(t, makeZone(t, origin, 7, 1))
	s, _ := startServer(t, notifyConfig(rcv, 5), src)
	waitFor(t, "an acknowledged notify", func() bool {
		return counter(t, s, "anycastd_xfrout_notifies_total", map[string]string{"result": notifyOK}) == 1
	})
	time.Sleep(200 * time.Millisecond) // no further retry may come
	got := rcv.all()
	if len(got) != 3 {
		t.Fatalf("receiver got %d NOTIFYs, want 3 (2 dropped, 1 answered): %+v", len(got), got)
	}
	for i, g := range got {
		if g.zone != origin || g.serial != 7 || !g.signed || g.tsigErr != nil {
			t.Errorf("notify %d: %+v, want %s serial 7 signed with a valid TSIG", i, g, origin)
		}
		if i > 0 {
			// Each retry waits for the answer timeout, then the backoff.
			if gap := g.at.Sub(got[i-1].at); gap < 300*time.Millisecond {
				t.Errorf("retry %d came %v after the previous NOTIFY, before the answer timeout", i, gap)
			}
		}
	}
	if n := counter(t, s, "anycastd_xfrout_notify_messages_total", nil); n != 3 {
		t.Errorf("notify_messages_total = %v, want 3", n)
	}
}

// TestNotifyGivesUp: a receiver that never answers gets NotifyTries
// NOTIFYs, then no more.
func TestNotifyGivesUp(t *testing.T) {
	rcv := startReceiver(t, 1000, dns.RcodeSuccess, signA)
	src := newMemSource()
	src.set(t, makeZone(t, origin, 7, 1))
	s, _ := startServer(t, notifyConfig(rcv, 3), src)
	waitFor(t, "the notify to be given up", func() bool {
		return counter(t, s, "anycastd_xfrout_notifies_total", map[string]string{"result": notifyFailed}) == 1
	})
	time.Sleep(200 * time.Millisecond)
	if got := rcv.all(); len(got) != 3 {
		t.Errorf("receiver got %d NOTIFYs, want 3: %+v", len(got), got)
	}
}

// TestNotifyRejected: an error answer is final.
func TestNotifyRejected(t *testing.T) {
	rcv := startReceiver(t, 0, dns.RcodeNotAuth, signA)
	src := newMemSource()
	src.set(t, makeZone(t, origin, 7, 1))
	s, _ := startServer(t, notifyConfig(rcv, 5), src)
	waitFor(t, "the notify to be rejected", func() bool {
		return counter(t, s, "anycastd_xfrout_notifies_total", map[string]string{"result": notifyRejected}) == 1
	})
	time.Sleep(200 * time.Millisecond)
	if got := rcv.all(); len(got) != 1 {
		t.Errorf("receiver got %d NOTIFYs, want 1: %+v", len(got), got)
	}
}

// TestNotifyOnChange: each change event is notified with its serial,
// unsigned to a target without a key; a deletion is not.
func TestNotifyOnChange(t *testing.T) {
	rcv := startReceiver(t, 0, dns.RcodeSuccess, nil)
	src := newMemSource()
	src.set(t, makeZone(t, origin, 1, 1))
	cfg := aclConfig()
	cfg.Notify = []NotifyTarget{{Addr: rcv.addr}}
	startServer(t, cfg, src)
	rcv.waitFor(t, origin, 1) // at start-up
	src.set(t, makeZone(t, origin, 2, 2))
	rcv.waitFor(t, origin, 2)
	src.set(t, makeZone(t, "example.net.", 5, 2))
	rcv.waitFor(t, "example.net.", 5)
	src.remove("example.net.")
	src.set(t, makeZone(t, origin, 3, 3))
	rcv.waitFor(t, origin, 3)
	for _, g := range rcv.all() {
		if g.signed {
			t.Errorf("notify %+v is signed; the target has no key", g)
		}
	}
	if n := len(rcv.all()); n != 4 {
		t.Errorf("%d NOTIFYs, want 4: %+v", n, rcv.all())
	}
}

// fakeNet is the network of the scheduling tests, in a synctest bubble:
// send takes delay, then fails with fail(zone, serial, try) (nil =
// acknowledged).
type fakeNet struct {
	mu       sync.Mutex
	start    time.Time
	serials  map[string]uint32 // current serial of each zone
	sends    []fakeSend
	inflight map[string]int // by target
	maxIn    map[string]int
	delay    time.Duration
	fail     func(zone string, serial uint32) error
}

type fakeSend struct {
	Target string
	Zone   string
	Serial uint32
	At     time.Duration // since start
}

func newFakeNet() *fakeNet {
	return &fakeNet{start: time.Now(), serials: map[string]uint32{}, inflight: map[string]int{}, maxIn: map[string]int{}}
}

func (f *fakeNet) setSerial(zone string, serial uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.serials[zone] = serial
}

func (f *fakeNet) soa(_ context.Context, zone string) (*dns.SOA, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	serial, ok := f.serials[zone]
	if !ok {
		return nil, fmt.Errorf("zone %s: %w", zone, store.ErrNotFound)
	}
	return &dns.SOA{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET}, Ns: "ns.", Mbox: "m.", Serial: serial}, nil
}

func (f *fakeNet) send(ctx context.Context, t *target, m *dns.Msg) error {
	serial := m.Answer[0].(*dns.SOA).Serial
	zone := m.Question[0].Name
	f.mu.Lock()
	f.sends = append(f.sends, fakeSend{Target: t.addr.String(), Zone: zone, Serial: serial, At: time.Since(f.start)})
	f.inflight[t.addr.String()]++
	f.maxIn[t.addr.String()] = max(f.maxIn[t.addr.String()], f.inflight[t.addr.String()])
	fail := f.fail
	f.mu.Unlock()
	select {
	case <-time.After(f.delay):
	case <-ctx.Done():
	}
	f.mu.Lock()
	f.inflight[t.addr.String()]--
	f.mu.Unlock()
	if fail == nil {
		return nil
	}
	return fail(zone, serial)
}

func (f *fakeNet) log() []fakeSend {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeSend(nil), f.sends...)
}

// newTestNotifier returns a notifier on fakeNet with targets addrs.
func newTestNotifier(f *fakeNet, workers int, addrs ...string) (*notifier, *metricsSet) {
	cfg := Config{NotifyTries: 5, NotifyBackoff: time.Second, NotifyConcurrency: workers}
	for _, a := range addrs {
		cfg.Notify = append(cfg.Notify, NotifyTarget{Addr: netip.MustParseAddrPort(a)})
	}
	met := newMetrics()
	n := newNotifier(cfg, nil, slog.New(slog.DiscardHandler), met, f.soa)
	n.send = f.send
	return n, met
}

func notifyCount(t *testing.T, met *metricsSet, result string) float64 {
	t.Helper()
	s := &Server{met: met}
	return counter(t, s, "anycastd_xfrout_notifies_total", map[string]string{"result": result})
}

// run starts the notifier in the bubble and returns a function that stops
// it and waits for it.
func runNotifier(n *notifier) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		n.run(ctx)
		close(done)
	}()
	return func() {
		cancel()
		<-done
	}
}

// TestNotifyBackoff: unanswered NOTIFYs are retried after 1s, 2s, 4s, 8s,
// then given up.
func TestNotifyBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeNet()
		f.fail = func(string, uint32) error { return errors.New("timeout") }
		f.setSerial("a.", 1)
		n, met := newTestNotifier(f, 2, "192.0.2.1:53")
		stop := runNotifier(n)
		defer stop()
		n.enqueue("a.", 1)
		time.Sleep(time.Minute)
		synctest.Wait()
		var at []time.Duration
		for _, s := range f.log() {
			at = append(at, s.At)
		}
		want := []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second, 15 * time.Second}
		if diff := cmp.Diff(want, at); diff != "" {
			t.Errorf("send times (-want +got):\n%s", diff)
		}
		if got := notifyCount(t, met, notifyFailed); got != 1 {
			t.Errorf("failed = %v, want 1", got)
		}
	})
}

// TestNotifySuperseded: a newer serial ends the retries of the older one
// and is sent at once, with tries of its own.
func TestNotifySuperseded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeNet()
		f.fail = func(_ string, serial uint32) error {
			if serial == 1 {
				return errors.New("timeout")
			}
			return nil
		}
		f.setSerial("a.", 1)
		n, met := newTestNotifier(f, 2, "192.0.2.1:53")
		stop := runNotifier(n)
		defer stop()
		n.enqueue("a.", 1)
		time.Sleep(2 * time.Second) // sent at 0s and 1s; next retry due at 3s
		f.setSerial("a.", 2)
		n.enqueue("a.", 2)
		n.enqueue("a.", 1) // an older serial changes nothing
		time.Sleep(time.Minute)
		synctest.Wait()
		want := []fakeSend{
			{"192.0.2.1:53", "a.", 1, 0},
			{"192.0.2.1:53", "a.", 1, time.Second},
			{"192.0.2.1:53", "a.", 2, 2 * time.Second},
		}
		if diff := cmp.Diff(want, f.log()); diff != "" {
			t.Errorf("sends (-want +got):\n%s", diff)
		}
		if got := notifyCount(t, met, notifySuperseded); got != 1 {
			t.Errorf("superseded = %v, want 1", got)
		}
		if got := notifyCount(t, met, notifyOK); got != 1 {
			t.Errorf("ok = %v, want 1", got)
		}
	})
}

// TestNotifyNewerWhileInFlight: a serial that arrives while the older one
// is in flight is sent when the older one is answered.
func TestNotifyNewerWhileInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeNet()
		f.delay = time.Second
		f.setSerial("a.", 1)
		n, met := newTestNotifier(f, 4, "192.0.2.1:53")
		stop := runNotifier(n)
		defer stop()
		n.enqueue("a.", 1)
		time.Sleep(500 * time.Millisecond)
		f.setSerial("a.", 2)
		n.enqueue("a.", 2)
		time.Sleep(time.Minute)
		synctest.Wait()
		want := []fakeSend{
			{"192.0.2.1:53", "a.", 1, 0},
			{"192.0.2.1:53", "a.", 2, time.Second},
		}
		if diff := cmp.Diff(want, f.log()); diff != "" {
			t.Errorf("sends (-want +got):\n%s", diff)
		}
		if got := notifyCount(t, met, notifyOK); got != 2 {
			t.Errorf("ok = %v, want 2", got)
		}
	})
}

// TestNotifyConcurrency: each target has at most NotifyConcurrency
// NOTIFYs in flight; targets do not wait for each other.
func TestNotifyConcurrency(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeNet()
		f.delay = time.Second
		n, met := newTestNotifier(f, 3, "192.0.2.1:53", "192.0.2.2:53")
		for i := range 12 {
			f.setSerial(fmt.Sprintf("z%d.", i), 1)
		}
		stop := runNotifier(n)
		defer stop()
		for i := range 12 {
			n.enqueue(fmt.Sprintf("z%d.", i), 1)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		for _, a := range []string{"192.0.2.1:53", "192.0.2.2:53"} {
			if f.maxIn[a] != 3 {
				t.Errorf("target %s: at most %d in flight, want 3", a, f.maxIn[a])
			}
		}
		// 12 zones, 3 at a time, 1s each: both targets done at 3s.
		last := f.log()[len(f.log())-1].At
		if len(f.log()) != 24 || last != 3*time.Second {
			t.Errorf("%d sends, the last at %v; want 24, the last at 3s", len(f.log()), last)
		}
		if got := notifyCount(t, met, notifyOK); got != 24 {
			t.Errorf("ok = %v, want 24", got)
		}
	})
}

// TestNotifyDeletedZone: a zone that is gone when its NOTIFY is due is
// dropped without a send.
func TestNotifyDeletedZone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeNet()
		f.fail = func(string, uint32) error { return errors.New("timeout") }
		f.setSerial("a.", 1)
		n, _ := newTestNotifier(f, 1, "192.0.2.1:53")
		stop := runNotifier(n)
		defer stop()
		n.enqueue("a.", 1)
		n.enqueue("gone.", 1)
		time.Sleep(500 * time.Millisecond)
		f.mu.Lock()
		delete(f.serials, "a.") // deleted while waiting to retry
		f.mu.Unlock()
		time.Sleep(time.Minute)
		synctest.Wait()
		want := []fakeSend{{"192.0.2.1:53", "a.", 1, 0}}
		if diff := cmp.Diff(want, f.log()); diff != "" {
			t.Errorf("sends (-want +got):\n%s", diff)
		}
		t0 := n.targets[0]
		t0.mu.Lock()
		defer t0.mu.Unlock()
		if len(t0.jobs) != 0 {
			t.Errorf("%d jobs left, want none", len(t0.jobs))
		}
	})
}
