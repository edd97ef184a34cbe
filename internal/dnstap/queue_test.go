package dnstap

import (
	"bytes"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/dnsserver"
)

var (
	testClient = netip.MustParseAddrPort("192.0.2.7:5300")
	testServer = netip.MustParseAddrPort("198.51.100.53:53")
)

func testMessage(q, resp []byte) dnsserver.TapMessage {
	return dnsserver.TapMessage{Query: q, Response: resp, Client: testClient, Server: testServer,
		Transport: dnsserver.UDP, Received: time.Now()}
}

// TestQueueDropsWhenFull: with no worker taking records, the queue holds
// its size and every further sampled query is dropped and counted, each
// Offer returning at once.
func TestQueueDropsWhenFull(t *testing.T) {
	var drops atomic.Int64
	q := NewQueue(4, 1, func() { drops.Add(1) })
	m := testMessage([]byte("query"), []byte("response"))
	queued := 0
	for range 10 {
		start := time.Now()
		if q.Offer(&m) {
			queued++
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Fatalf("Offer took %v on a full queue", d)
		}
	}
	if queued != 4 || q.Len() != 4 {
		t.Errorf("queued %d, Len %d; want 4 and 4", queued, q.Len())
	}
	if n := drops.Load(); n != 6 {
		t.Errorf("drops counted %d, want 6", n)
	}
	// Taking one makes room for one.
	r := q.next()
	q.put(r)
	if !q.Offer(&m) {
		t.Error("Offer after a record was taken: not queued")
	}
	if q.Offer(&m) {
		t.Error("Offer on a full queue again: queued")
	}
	if n := drops.Load(); n != 7 {
		t.Errorf("drops counted %d, want 7", n)
	}
}

// TestQueueNeverBlocks: many goroutines offering to a queue nobody reads
// all finish, and every offer is either queued or counted as dropped.
func TestQueueNeverBlocks(t *testing.T) {
	var drops atomic.Int64
	q := NewQueue(64, 1, func() { drops.Add(1) })
	const goroutines, each = 16, 2000
	var queued atomic.Int64
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range goroutines {
		wg.Go(func() {
			m := testMessage(make([]byte, 40), make([]byte, 200))
			for range each {
				if q.Offer(&m) {
					queued.Add(1)
				}
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("offers to a full queue blocked")
	}
	if queued.Load() != 64 {
		t.Errorf("queued %d, want the queue's size 64", queued.Load())
	}
	if got := queued.Load() + drops.Load(); got != goroutines*each {
		t.Errorf("queued + dropped = %d, want every offer %d", got, goroutines*each)
	}
}

// TestQueueCopies: a queued record holds a copy of both messages, so the
// server reusing its buffers does not change it.
func TestQueueCopies(t *testing.T) {
	q := NewQueue(2, 1, nil)
	query, resp := []byte("the query"), []byte("the response")
	m := testMessage(query, resp)
	if !q.Offer(&m) {
		t.Fatal("not queued")
	}
	copy(query, "XXXXXXXXX")
	copy(resp, "YYYYYYYYYYYY")
	r := q.next()
	if !bytes.Equal(r.query(), []byte("the query")) || !bytes.Equal(r.response(), []byte("the response")) {
		t.Errorf("record holds %q / %q, want the messages as offered", r.query(), r.response())
	}
	if r.client != testClient || r.server != testServer || r.transport != dnsserver.UDP || r.answered.Before(r.received) {
		t.Errorf("record %+v: addresses, transport or times wrong", r)
	}
}

// TestQueueSample: 1 in N offers is taken, the rest neither queued nor
// counted as dropped.
func TestQueueSample(t *testing.T) {
	var drops atomic.Int64
	q := NewQueue(1<<20, 10, func() { drops.Add(1) })
	m := testMessage([]byte("q"), []byte("r"))
	const offers = 100_000
	for range offers {
		q.Offer(&m)
	}
	// 10,000 expected; the binomial standard deviation is 95.
	if n := q.Len(); n < 9_500 || n > 10_500 {
		t.Errorf("sample 10: %d of %d queued, want about 10,000", n, offers)
	}
	if drops.Load() != 0 {
		t.Errorf("%d drops counted for queries not sampled", drops.Load())
	}
	q.SetSample(1)
	before := q.Len()
	for range 100 {
		q.Offer(&m)
	}
	if got := q.Len() - before; got != 100 {
		t.Errorf("sample 1: %d of 100 queued", got)
	}
}

// TestOfferAllocs: once the pool is warm, queueing a query and recycling
// its record allocates nothing.
func TestOfferAllocs(t *testing.T) {
	q := NewQueue(16, 1, nil)
	m := testMessage(make([]byte, 40), make([]byte, 300))
	allocs := testing.AllocsPerRun(1000, func() {
		q.Offer(&m)
		q.put(q.next())
	})
	if allocs != 0 {
		t.Errorf("Offer + recycle: %.1f allocations, want 0", allocs)
	}
	full := NewQueue(1, 1, func() {})
	full.Offer(&m)
	if a := testing.AllocsPerRun(1000, func() { full.Offer(&m) }); a != 0 {
		t.Errorf("Offer to a full queue: %.1f allocations, want 0", a)
	}
}

// TestTapSplitsSampling: the server samples at the most often sampled
// output's rate (Every), and each output takes its share of what it is
// handed, so that each sees 1 in its own sample.
func TestTapSplitsSampling(t *testing.T) {
	tp := New(slog.New(slog.DiscardHandler))
	cfg := Config{Dnstap: &FrameConfig{Sample: 10, Queue: 1 << 20}, QueryLog: &LogConfig{Sample: 100, Queue: 1 << 20}}
	tp.Apply(cfg) // not run: the queues are set by hand below
	if e := tp.Every(); e != 10 {
		t.Fatalf("Every = %d, want 10 (the smaller sample)", e)
	}
	frame, log := NewQueue(1<<20, 10, nil), NewQueue(1<<20, 100, nil)
	tp.q.Store(&queues{frame: frame, log: log, every: 10})
	m := testMessage([]byte("q"), []byte("r"))
	// What the server hands on: 1 in 10 of 200,000 queries.
	for range 20_000 {
		tp.Tap(m)
	}
	if n := frame.Len(); n != 20_000 {
		t.Errorf("dnstap (sample 10) took %d of the 20,000 handed on, want all", n)
	}
	// 2,000 expected; the standard deviation is 42.
	if n := log.Len(); n < 1_800 || n > 2_200 {
		t.Errorf("query log (sample 100) took %d of the 20,000 handed on, want about 2,000", n)
	}
	if e := every(Config{}); e != 1 {
		t.Errorf("every of no output = %d, want 1", e)
	}
}
