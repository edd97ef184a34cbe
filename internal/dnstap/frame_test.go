package dnstap

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	pb "github.com/dnstap/golang-dnstap"
	framestream "github.com/farsightsec/golang-framestream"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"

	"github.com/anycastdns/anycastdns/internal/dnsserver"
)

// receiver is a dnstap collector for tests: it accepts Frame Streams
// connections (bidirectional, as fstrm_capture does) on a Unix socket and
// keeps every message decoded.
type receiver struct {
	t    *testing.T
	ln   net.Listener
	path string

	mu    sync.Mutex
	msgs  []*pb.Dnstap
	conns []net.Conn
	wg    sync.WaitGroup
}

// shortDir is a new directory with a path short enough for a Unix socket.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tap")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func listenReceiver(t *testing.T, path string) *receiver {
	t.Helper()
	return listenReceiverOn(t, "unix", path)
}

// listenReceiverOn is listenReceiver on any network; path is then the
// listener's address.
func listenReceiverOn(t *testing.T, network, addr string) *receiver {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, ln: ln, path: ln.Addr().String()}
	r.wg.Go(r.accept)
	t.Cleanup(r.close)
	return r
}

func (r *receiver) accept() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		r.conns = append(r.conns, c)
		r.mu.Unlock()
		r.wg.Go(func() { r.read(c) })
	}
}

func (r *receiver) read(c net.Conn) {
	fr, err := framestream.NewReader(c, &framestream.ReaderOptions{
		ContentTypes: [][]byte{pb.FSContentType}, Bidirectional: true, Timeout: 5 * time.Second,
	})
	if err != nil {
		return
	}
	buf := make([]byte, 1<<16)
	for {
		n, err := fr.ReadFrame(buf)
		if err != nil {
			return
		}
		m := &pb.Dnstap{}
		if err := proto.Unmarshal(buf[:n], m); err != nil {
			r.t.Errorf("a frame that is not a dnstap message: %v", err)
			return
		}
		r.mu.Lock()
		r.msgs = append(r.msgs, m)
		r.mu.Unlock()
	}
}

// close stops listening and drops every connection, as a collector that
// goes away.
func (r *receiver) close() {
	r.ln.Close()
	r.mu.Lock()
	for _, c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}

func (r *receiver) messages() []*pb.Dnstap {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*pb.Dnstap(nil), r.msgs...)
}

// waitMessages waits until the receiver holds n messages.
func (r *receiver) waitMessages(n int) []*pb.Dnstap {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := r.messages(); len(m) >= n {
			return m
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.t.Fatalf("receiver has %d messages, want %d", len(r.messages()), n)
	return nil
}

func packed(t *testing.T, m *dns.Msg) []byte {
	t.Helper()
	p, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runTap runs a tap with cfg until the test ends.
func runTap(t *testing.T, cfg Config) *Tap {
	t.Helper()
	tp := New(slog.New(slog.DiscardHandler))
	tp.backoff = func(int) time.Duration { return 10 * time.Millisecond }
	tp.Apply(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = tp.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitRunning(t, tp)
	return tp
}

// waitRunning waits until Run has started the outputs applied before it.
func waitRunning(t *testing.T, tp *Tap) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		tp.mu.Lock()
		started := tp.ctx != nil
		tp.mu.Unlock()
		if started {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not start")
		}
	}
}

// TestFrameMessages: every answered query reaches the collector as an
// AUTH_QUERY and an AUTH_RESPONSE with the wire messages, addresses,
// ports, transport, times and the node's identity and version.
func TestFrameMessages(t *testing.T) {
	dir := shortDir(t)
	rcv := listenReceiver(t, filepath.Join(dir, "tap.sock"))
	tp := runTap(t, Config{Dnstap: &FrameConfig{Collector: Collector{"unix", rcv.path}, Identity: "pop-ams-1", Version: "anycastdns 1.2", Queue: 16}})

	q := new(dns.Msg)
	q.SetQuestion("www.example.com.", dns.TypeA)
	resp := new(dns.Msg)
	resp.SetReply(q)
	resp.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "www.example.com.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: net.IPv4(192, 0, 2, 1)}}
	qw, rw := packed(t, q), packed(t, resp)
	received := time.Now().Add(-time.Millisecond)
	tp.Tap(dnsserver.TapMessage{Query: qw, Response: rw, Client: testClient, Server: testServer, Transport: dnsserver.UDP, Received: received})
	v6 := dnsserver.TapMessage{Query: qw, Response: rw, Client: netip.MustParseAddrPort("[2001:db8::7]:40000"),
		Server: netip.MustParseAddrPort("[2001:db8::53]:53"), Transport: dnsserver.TCP, Received: received}
	tp.Tap(v6)

	msgs := rcv.waitMessages(4)
	for i, want := range []struct {
		typ      pb.Message_Type
		family   pb.SocketFamily
		proto    pb.SocketProtocol
		client   netip.AddrPort
		server   netip.AddrPort
		query    []byte
		response []byte
	}{
		{pb.Message_AUTH_QUERY, pb.SocketFamily_INET, pb.SocketProtocol_UDP, testClient, testServer, qw, nil},
		{pb.Message_AUTH_RESPONSE, pb.SocketFamily_INET, pb.SocketProtocol_UDP, testClient, testServer, nil, rw},
		{pb.Message_AUTH_QUERY, pb.SocketFamily_INET6, pb.SocketProtocol_TCP, v6.Client, v6.Server, qw, nil},
		{pb.Message_AUTH_RESPONSE, pb.SocketFamily_INET6, pb.SocketProtocol_TCP, v6.Client, v6.Server, nil, rw},
	} {
		d := msgs[i]
		if string(d.GetIdentity()) != "pop-ams-1" || string(d.GetVersion()) != "anycastdns 1.2" || d.GetType() != pb.Dnstap_MESSAGE {
			t.Errorf("message %d: identity %q version %q type %v", i, d.GetIdentity(), d.GetVersion(), d.GetType())
		}
		m := d.GetMessage()
		if m.GetType() != want.typ || m.GetSocketFamily() != want.family || m.GetSocketProtocol() != want.proto {
			t.Errorf("message %d: %v %v %v, want %v %v %v", i, m.GetType(), m.GetSocketFamily(), m.GetSocketProtocol(), want.typ, want.family, want.proto)
		}
		ca, _ := netip.AddrFromSlice(m.GetQueryAddress())
		sa, _ := netip.AddrFromSlice(m.GetResponseAddress())
		if got := netip.AddrPortFrom(ca, uint16(m.GetQueryPort())); got != want.client {
			t.Errorf("message %d: query address %v, want %v", i, got, want.client)
		}
		if got := netip.AddrPortFrom(sa, uint16(m.GetResponsePort())); got != want.server {
			t.Errorf("message %d: response address %v, want %v", i, got, want.server)
		}
		if !bytes.Equal(m.GetQueryMessage(), want.query) || !bytes.Equal(m.GetResponseMessage(), want.response) {
			t.Errorf("message %d: wire messages differ from those tapped", i)
		}
		qt := time.Unix(int64(m.GetQueryTimeSec()), int64(m.GetQueryTimeNsec()))
		if !qt.Equal(received) {
			t.Errorf("message %d: query time %v, want %v", i, qt, received)
		}
		if want.typ == pb.Message_AUTH_RESPONSE {
			rt := time.Unix(int64(m.GetResponseTimeSec()), int64(m.GetResponseTimeNsec()))
			if rt.Before(received) || time.Since(rt) > time.Minute {
				t.Errorf("message %d: response time %v, query at %v", i, rt, received)
			}
		}
	}
	if n := value(tp.written.WithLabelValues(outDnstap)); n != 2 {
		t.Errorf("anycastd_tap_written_total{output=dnstap} = %v, want 2", n)
	}
}

// TestFrameReconnect: when the collector goes away, queries are queued
// (and dropped past the queue, counted) while the output reconnects with
// backoff, and the queued ones reach the collector once it is back.
func TestFrameReconnect(t *testing.T) {
	dir := shortDir(t)
	path := filepath.Join(dir, "tap.sock")
	rcv := listenReceiver(t, path)
	tp := runTap(t, Config{Dnstap: &FrameConfig{Collector: Collector{"unix", path}, Identity: "pop", Queue: 8}})
	m := testMessage([]byte("query-1"), []byte("response-1"))
	tp.Tap(m)
	rcv.waitMessages(2)
	waitGauge(t, tp, outDnstap, 1)

	rcv.close()
	os.Remove(path)
	// The output finds the collector gone at its next flush: that query
	// is lost (write_error), and the output reconnects with backoff.
	tp.Tap(testMessage([]byte("query-lost"), []byte("response")))
	waitGauge(t, tp, outDnstap, 0)
	if n := value(tp.dropped.WithLabelValues(outDnstap, "write_error")); n != 1 {
		t.Errorf("write_error drops %v, want the 1 query written as the collector went", n)
	}
	// While it is away, the queue holds 8 queries and drops the rest.
	for range 20 {
		tp.Tap(testMessage([]byte("query-2"), []byte("response-2")))
	}
	if n := value(tp.dropped.WithLabelValues(outDnstap, "queue_full")); n != 12 {
		t.Errorf("queue_full drops %v, want 12 of 20 with a queue of 8", n)
	}

	rcv2 := listenReceiver(t, path)
	msgs := rcv2.waitMessages(16)
	for _, m := range msgs {
		if q := m.GetMessage().GetQueryMessage(); m.GetMessage().GetType() == pb.Message_AUTH_QUERY && string(q) != "query-2" {
			t.Errorf("after the reconnect: query %q, want query-2", q)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(rcv2.messages()); n != 16 {
		t.Errorf("after the reconnect %d messages arrived, want the 8 queued queries' 16", n)
	}
	if n := value(tp.written.WithLabelValues(outDnstap)); n != 9 {
		t.Errorf("written %v, want 1 + 8", n)
	}
}

// waitGauge waits for anycastd_tap_connected{output} to be v.
func waitGauge(t *testing.T, tp *Tap, output string, v float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for value(tp.conn.WithLabelValues(output)) != v {
		if time.Now().After(deadline) {
			t.Fatalf("anycastd_tap_connected{output=%q} never became %v", output, v)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestFrameNoCollector: with no collector at all, the query path still
// never blocks: the queue fills and the rest are counted.
func TestFrameNoCollector(t *testing.T) {
	dir := shortDir(t)
	tp := runTap(t, Config{Dnstap: &FrameConfig{Collector: Collector{"unix", filepath.Join(dir, "absent.sock")}, Queue: 4}})
	m := testMessage([]byte("q"), []byte("r"))
	start := time.Now()
	for range 1000 {
		tp.Tap(m)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("1000 taps with no collector took %v", d)
	}
	if n := value(tp.dropped.WithLabelValues(outDnstap, "queue_full")); n != 996 {
		t.Errorf("queue_full drops %v, want 996", n)
	}
}

// TestBackoffDelay: the delays double from 100 ms to at most 10 s, less
// at most a quarter of jitter.
func TestBackoffDelay(t *testing.T) {
	for n, base := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 8: 10 * time.Second, 50: 10 * time.Second} {
		for range 20 {
			if d := backoffDelay(n); d > base || d < base*3/4 {
				t.Errorf("backoffDelay(%d) = %v, want in [%v, %v]", n, d, base*3/4, base)
			}
		}
	}
}

// TestApplyRestartsOnChange: a new collector address restarts the
// output (the old stream ends), a new sampling rate does not, and off
// stops it.
func TestApplyRestartsOnChange(t *testing.T) {
	dir := shortDir(t)
	a := listenReceiver(t, filepath.Join(dir, "a.sock"))
	b := listenReceiver(t, filepath.Join(dir, "b.sock"))
	cfg := func(path string, sample int) Config {
		return Config{Dnstap: &FrameConfig{Collector: Collector{"unix", path}, Sample: sample, Queue: 64}}
	}
	tp := runTap(t, cfg(a.path, 1))
	tp.Tap(testMessage([]byte("to-a"), []byte("r")))
	a.waitMessages(2)
	first := tp.q.Load().frame
	tp.Apply(cfg(a.path, 1_000_000))
	if tp.q.Load().frame != first {
		t.Error("a new sampling rate restarted the output")
	}
	tp.Apply(cfg(b.path, 1))
	tp.Tap(testMessage([]byte("to-b"), []byte("r")))
	if got := b.waitMessages(2); string(got[0].GetMessage().GetQueryMessage()) != "to-b" {
		t.Errorf("collector b got %q", got[0].GetMessage().GetQueryMessage())
	}
	if n := len(a.messages()); n != 2 {
		t.Errorf("collector a got %d messages after the change, want its 2", n)
	}
	tp.Apply(Config{})
	if tp.q.Load().frame != nil {
		t.Error("output off: the query path still queues")
	}
}

// TestFinishWritesQueued: on shutdown the output writes what is queued
// and ends the stream (STOP), so nothing accepted is lost.
func TestFinishWritesQueued(t *testing.T) {
	dir := shortDir(t)
	rcv := listenReceiver(t, filepath.Join(dir, "tap.sock"))
	tp := New(slog.New(slog.DiscardHandler))
	tp.Apply(Config{Dnstap: &FrameConfig{Collector: Collector{"unix", rcv.path}, Queue: 1000}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- tp.Run(ctx) }()
	waitGauge(t, tp, outDnstap, 1)
	for range 500 {
		tp.Tap(testMessage([]byte("q"), []byte("r")))
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	written := value(tp.written.WithLabelValues(outDnstap))
	dropped := value(tp.dropped.WithLabelValues(outDnstap, "queue_full"))
	if written+dropped != 500 {
		t.Errorf("written %v + dropped %v, want 500", written, dropped)
	}
	rcv.waitMessages(int(written) * 2)
}

// value is the value of a counter or gauge.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// TestFrameTCP: a collector on a TCP address gets the same stream.
func TestFrameTCP(t *testing.T) {
	rcv := listenReceiverOn(t, "tcp", "127.0.0.1:0")
	tp := runTap(t, Config{Dnstap: &FrameConfig{Collector: Collector{"tcp", rcv.path}, Identity: "pop-tcp", Queue: 16}})
	tp.Tap(testMessage([]byte("query"), []byte("response")))
	msgs := rcv.waitMessages(2)
	if string(msgs[0].GetIdentity()) != "pop-tcp" || string(msgs[1].GetMessage().GetResponseMessage()) != "response" {
		t.Errorf("over TCP: %v", msgs)
	}
}
