package dnstap

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anycastdns/anycastdns/internal/dnsserver"
)

// record is one tapped query on its way from the query path to an
// output's worker: the two messages copied into a pooled buffer.
type record struct {
	buf       []byte // the query, then the response
	qlen      int    // the query's length in buf
	client    netip.AddrPort
	server    netip.AddrPort
	transport dnsserver.Transport
	received  time.Time // when the query was read
	answered  time.Time // when the answer was tapped
}

func (r *record) query() []byte    { return r.buf[:r.qlen] }
func (r *record) response() []byte { return r.buf[r.qlen:] }

// maxPooledBuf is the largest buffer a record keeps when it goes back to
// the pool: a rare large TCP answer does not keep 64 KiB per record.
const maxPooledBuf = 8 << 10

// Queue is the bounded hand-off between the query path and one output's
// worker. Offer never blocks: a sampled query that finds the queue full is
// dropped and counted. Records and their buffers come from a pool, so a
// query that is queued costs a copy of its two messages and no allocation
// once the pool is warm.
type Queue struct {
	ch      chan *record
	pool    sync.Pool
	sample  atomic.Uint64 // 1 in sample queries is queued; 0 and 1: every one
	dropped func()        // counts a drop; never nil
}

// NewQueue returns a queue holding at most size records (at least 1),
// taking 1 in sample queries (0 or 1: every one); dropped, if not nil, is
// called for each sampled query that found the queue full.
func NewQueue(size, sample int, dropped func()) *Queue {
	if size < 1 {
		size = 1
	}
	if dropped == nil {
		dropped = func() {}
	}
	q := &Queue{ch: make(chan *record, size), dropped: dropped}
	q.pool.New = func() any { return &record{buf: make([]byte, 0, 1024)} }
	q.SetSample(sample)
	return q
}

// SetSample changes the sampling rate: 1 in n queries (0 or 1: every one).
func (q *Queue) SetSample(n int) {
	if n < 1 {
		n = 1
	}
	q.sample.Store(uint64(n))
}

// Len is the number of records waiting.
func (q *Queue) Len() int { return len(q.ch) }

// Cap is the most records that can wait.
func (q *Queue) Cap() int { return cap(q.ch) }

// Offer samples m and, when it is taken and there is room, queues a copy
// of it. It reports whether m was queued. It never blocks.
func (q *Queue) Offer(m *dnsserver.TapMessage) bool { return q.offer(m, 1) }

// offer is Offer for a message that was already sampled 1 in pre: it is
// taken with the probability pre/sample, so that 1 in sample is in all.
func (q *Queue) offer(m *dnsserver.TapMessage, pre uint64) bool {
	// A random draw, not a shared counter: the readers of every core
	// sample without touching a common cache line.
	if n := q.sample.Load(); n > pre && rand.Uint64N(n) >= pre { //nolint:gosec // sampling, not a secret
		return false
	}
	if len(q.ch) == cap(q.ch) {
		// Full: drop before copying anything.
		q.dropped()
		return false
	}
	r := q.pool.Get().(*record)
	r.buf = append(append(r.buf[:0], m.Query...), m.Response...)
	r.qlen = len(m.Query)
	r.client, r.server, r.transport = m.Client, m.Server, m.Transport
	r.received, r.answered = m.Received, time.Now()
	select {
	case q.ch <- r:
		return true
	default:
		// Filled up since the check by another reader.
		q.put(r)
		q.dropped()
		return false
	}
}

// put returns r to the pool once its worker is done with it.
func (q *Queue) put(r *record) {
	if cap(r.buf) > maxPooledBuf {
		r.buf = make([]byte, 0, 1024)
	}
	q.pool.Put(r)
}

// next returns the oldest record, or nil when none is waiting.
func (q *Queue) next() *record {
	select {
	case r := <-q.ch:
		return r
	default:
		return nil
	}
}

// pollInterval is how long an output's worker sleeps when its queue is
// empty before it looks again. The query path never wakes the worker: a
// send on a channel that a goroutine waits on hands the record over and
// readies that goroutine, which cost the reader about 100 ns a query at 1
// in 100 sampling (BenchmarkHotPath, 330 -> 430 ns). Polling costs an idle
// worker 100 wake-ups a second and delays a message by at most this.
const pollInterval = 10 * time.Millisecond

// wait returns the next record, sleeping pollInterval at a time (on t)
// while there is none; nil once ctx ends.
func (q *Queue) wait(ctx context.Context, t *time.Timer) *record {
	for {
		if r := q.next(); r != nil {
			return r
		}
		t.Reset(pollInterval)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
