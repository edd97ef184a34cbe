// Package dnstap copies the node's answered queries out without slowing
// them down: as dnstap messages (AUTH_QUERY and AUTH_RESPONSE, protobuf
// over the Frame Streams protocol) to a collector on a Unix socket or a
// TCP address, and as a sampled JSON query log.
//
// The query path only samples and copies: Tap.Tap draws 1 in N at random
// and copies the query and response into a pooled buffer queued on a
// bounded channel (Queue), dropping and counting what finds it full. A
// worker per output encodes and writes off the query path, reconnecting
// with backoff when the collector goes away. With both outputs off the
// node installs no Tap, and the query path pays one comparison.
package dnstap

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/anycastdns/anycastdns/internal/dnsserver"
)

// Config of the outputs; a nil one is off.
type Config struct {
	Dnstap   *FrameConfig
	QueryLog *LogConfig
}

// FrameConfig is the dnstap output.
type FrameConfig struct {
	Collector Collector
	// Identity and Version fill the messages' identity and version
	// fields: the node's name and software version.
	Identity, Version string
	Sample            int // 1 in Sample answered queries (0, 1: every one)
	Queue             int // records waiting at most
}

// LogConfig is the query log.
type LogConfig struct {
	File     string
	MaxSize  int64  // bytes; past it the file becomes File.1
	Identity string // the node's name, in every line
	Sample   int
	Queue    int
}

// Output names, the "output" label of the metrics.
const (
	outDnstap   = "dnstap"
	outQueryLog = "query_log"
)

// outputMetrics are the counters of one output; they outlive its
// restarts by reloads.
type outputMetrics struct {
	queueFull   prometheus.Counter // sampled queries dropped: queue full
	writeErrors prometheus.Counter // records lost to a failed write
	written     prometheus.Counter // records written
	connected   prometheus.Gauge   // 1 while connected (dnstap) or the file is open
}

// running is one started output.
type running[C comparable] struct {
	cfg    C
	q      *Queue
	cancel context.CancelFunc
	done   chan struct{}
	reopen func() // the query log's reopen request; nil for dnstap
}

func (r *running[C]) stop() {
	r.cancel()
	<-r.done
}

// queues are what the query path reads: the queue of each running
// output, nil when off, and the rate the DNS server samples at before it
// calls Tap (Every).
type queues struct {
	frame, log *Queue
	every      uint64
}

// Tap is the node's tap (a dnsserver.Tap): its outputs, started by Run and
// changed by Apply. It is safe for concurrent use.
type Tap struct {
	log     *slog.Logger
	metrics map[string]*outputMetrics
	dropped *prometheus.CounterVec
	written *prometheus.CounterVec
	conn    *prometheus.GaugeVec

	q atomic.Pointer[queues] // never nil

	mu      sync.Mutex
	cfg     Config
	ctx     context.Context // Run's; nil until Run
	frame   *running[frameKey]
	qlog    *running[logKey]
	backoff func(int) time.Duration // tests: nil = backoffDelay
}

// frameKey and logKey are what a running output cannot change without a
// restart: everything but the sampling rate.
type frameKey struct {
	collector         Collector
	identity, version string
	queue             int
}

type logKey struct {
	file, identity string
	maxSize        int64
	queue          int
}

// New returns a tap with both outputs off.
func New(logger *slog.Logger) *Tap {
	t := &Tap{log: logger.With("component", "dnstap"), metrics: map[string]*outputMetrics{}}
	t.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "anycastd_tap_dropped_total",
		Help: "Sampled queries not copied out, by output (dnstap, query_log) and reason: queue_full (the output's worker fell behind or its collector is away), write_error (lost with a failed write).",
	}, []string{"output", "reason"})
	t.written = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "anycastd_tap_written_total",
		Help: "Queries copied out, by output: for dnstap a query and its response message.",
	}, []string{"output"})
	t.conn = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "anycastd_tap_connected",
		Help: "1 while the output is connected to its collector (dnstap) or has its file open (query_log).",
	}, []string{"output"})
	for _, o := range []string{outDnstap, outQueryLog} {
		t.metrics[o] = &outputMetrics{
			queueFull:   t.dropped.WithLabelValues(o, "queue_full"),
			writeErrors: t.dropped.WithLabelValues(o, "write_error"),
			written:     t.written.WithLabelValues(o),
			connected:   t.conn.WithLabelValues(o),
		}
	}
	t.q.Store(&queues{})
	return t
}

// Collectors are the tap's Prometheus metrics.
func (t *Tap) Collectors() []prometheus.Collector {
	return []prometheus.Collector{t.dropped, t.written, t.conn}
}

// Enabled reports whether cfg has an output on.
func (c Config) Enabled() bool { return c.Dnstap != nil || c.QueryLog != nil }

// Tap samples an answered query for each running output and queues a copy
// for those that take it. It never blocks (dnsserver.Tap).
func (t *Tap) Tap(m dnsserver.TapMessage) {
	qs := t.q.Load()
	every := max(qs.every, 1)
	if qs.frame != nil {
		qs.frame.offer(&m, every)
	}
	if qs.log != nil {
		qs.log.offer(&m, every)
	}
}

// Every is the rate at which the DNS server samples the queries it hands
// to Tap (dnsserver.Settings.TapEvery): the most often sampled output's,
// so that each output sees 1 in its own sample in all. The query path pays
// for Tap only on those.
func (t *Tap) Every() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return int(every(t.cfg))
}

// every is the DNS server's sampling rate for cfg: the smallest sample of
// its outputs (1 when none is on).
func every(cfg Config) uint64 {
	n := uint64(0)
	for _, s := range []int{sampleOf(cfg.Dnstap), sampleOfLog(cfg.QueryLog)} {
		if s > 0 && (n == 0 || uint64(s) < n) {
			n = uint64(s)
		}
	}
	return max(n, 1)
}

func sampleOf(f *FrameConfig) int {
	if f == nil {
		return 0
	}
	return max(f.Sample, 1)
}

func sampleOfLog(l *LogConfig) int {
	if l == nil {
		return 0
	}
	return max(l.Sample, 1)
}

// Apply makes cfg the outputs' configuration: an output whose collector,
// file, identity or queue size changed is restarted (the old one writes
// what it has queued first), a changed sampling rate applies at once, and
// the query log's file is reopened (for logrotate). Before Run it only
// records cfg.
func (t *Tap) Apply(cfg Config) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cfg = cfg
	if t.ctx == nil {
		return
	}
	t.applyLocked()
}

// applyLocked starts, changes or stops the outputs to match t.cfg.
func (t *Tap) applyLocked() {
	cfg := t.cfg
	if f := cfg.Dnstap; f == nil {
		t.stopFrame()
	} else {
		key := frameKey{collector: f.Collector, identity: f.Identity, version: f.Version, queue: f.Queue}
		if t.frame != nil && t.frame.cfg != key {
			t.stopFrame()
		}
		if t.frame == nil {
			q := NewQueue(f.Queue, f.Sample, t.metrics[outDnstap].queueFull.Inc)
			o := newFrameOutput(f.Collector, f.Identity, f.Version, q, t.metrics[outDnstap], t.log)
			o.backoff = t.backoff
			t.frame = startRunning(t.ctx, key, q, o.run)
		} else {
			t.frame.q.SetSample(f.Sample)
		}
	}
	if l := cfg.QueryLog; l == nil {
		t.stopLog()
	} else {
		key := logKey{file: l.File, identity: l.Identity, maxSize: l.MaxSize, queue: l.Queue}
		if t.qlog != nil && t.qlog.cfg != key {
			t.stopLog()
		}
		if t.qlog == nil {
			q := NewQueue(l.Queue, l.Sample, t.metrics[outQueryLog].queueFull.Inc)
			o := newLogOutput(l.File, l.MaxSize, l.Identity, q, t.metrics[outQueryLog], t.log)
			o.backoff = t.backoff
			r := startRunning(t.ctx, key, q, o.run)
			r.reopen = func() { o.reopen.Store(true) }
			t.qlog = r
		} else {
			t.qlog.q.SetSample(l.Sample)
			t.qlog.reopen()
		}
	}
	qs := &queues{every: every(cfg)}
	if t.frame != nil {
		qs.frame = t.frame.q
	}
	if t.qlog != nil {
		qs.log = t.qlog.q
	}
	t.q.Store(qs)
}

func startRunning[C comparable](parent context.Context, key C, q *Queue, run func(context.Context)) *running[C] {
	ctx, cancel := context.WithCancel(parent) //nolint:gosec // called by running.stop
	r := &running[C]{cfg: key, q: q, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		run(ctx)
	}()
	return r
}

// stopFrame and stopLog stop an output: first the query path stops
// queueing to it, then its worker writes what is queued and ends.
func (t *Tap) stopFrame() {
	if t.frame == nil {
		return
	}
	qs := *t.q.Load()
	qs.frame = nil
	t.q.Store(&qs)
	t.frame.stop()
	t.frame = nil
}

func (t *Tap) stopLog() {
	if t.qlog == nil {
		return
	}
	qs := *t.q.Load()
	qs.log = nil
	t.q.Store(&qs)
	t.qlog.stop()
	t.qlog = nil
}

// Run starts the outputs of the configuration applied so far and keeps
// them (as Apply changes them) until ctx ends; then it stops them, each
// writing what it has queued.
func (t *Tap) Run(ctx context.Context) error {
	t.mu.Lock()
	t.ctx = context.WithoutCancel(ctx)
	t.applyLocked()
	t.mu.Unlock()
	<-ctx.Done()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopFrame()
	t.stopLog()
	t.ctx = nil
	return nil
}
