package dnstap

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	pb "github.com/dnstap/golang-dnstap"
	framestream "github.com/farsightsec/golang-framestream"
	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/dnsserver"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// hotPath answers p as a UDP reader does, tap hook included: Handle,
// then the Tap of the snapshot when there is one.
func hotPath(w *dnsserver.Worker, p []byte, received time.Time) []byte {
	resp, _ := w.Handle(p, testClient, dnsserver.UDP)
	if resp != nil && w.Tapping() {
		w.Tap(p, resp, testServer, dnsserver.UDP, received)
	}
	return resp
}

func benchHandler(tb testing.TB, tap dnsserver.Tap) *dnsserver.Handler {
	tb.Helper()
	every := 0
	if tp, ok := tap.(*Tap); ok {
		every = tp.Every()
	}
	z, err := zone.Load("example.com.", "../dnsserver/testdata/example.com.zone")
	if err != nil {
		tb.Fatal(err)
	}
	h := dnsserver.NewHandler(dnsserver.Settings{Identity: dnsserver.Identity{Name: "pop"}, MaxUDP: 1232, Tap: tap, TapEvery: every}, &dnsserver.Stats{})
	h.SetZones(zone.NewSet(z))
	return h
}

func wwwQuery(tb testing.TB) []byte {
	m := new(dns.Msg)
	m.SetQuestion("www.example.com.", dns.TypeA)
	m.SetEdns0(1232, false)
	p, err := m.Pack()
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// TestHotPathAllocs: the query path allocates nothing with the tap off,
// and nothing either with it on once its pool is warm (the copy goes into
// a pooled buffer; the worker encodes).
func TestHotPathAllocs(t *testing.T) {
	p := wwwQuery(t)
	now := time.Now()
	off := benchHandler(t, nil).NewWorker()
	if a := testing.AllocsPerRun(1000, func() { hotPath(off, p, now) }); a != 0 {
		t.Errorf("tap off: %.2f allocations a query, want 0", a)
	}
	// On, with a queue nobody drains: every query is copied and queued
	// or, once it is full, dropped.
	tp := New(slog.New(slog.DiscardHandler))
	q := NewQueue(1<<16, 1, nil)
	tp.q.Store(&queues{frame: q})
	on := benchHandler(t, tp).NewWorker()
	for range 100 { // warm the pool
		hotPath(on, p, now)
		q.put(q.next())
	}
	if a := testing.AllocsPerRun(1000, func() {
		hotPath(on, p, now)
		q.put(q.next())
	}); a != 0 {
		t.Errorf("tap on: %.2f allocations a query, want 0", a)
	}
}

// loop runs the hot path b.N times; see threadLoop.
func loop(b *testing.B, w *dnsserver.Worker, p []byte, now time.Time) {
	threadLoop(b, func() {
		if hotPath(w, p, now) == nil {
			b.Fatal("no answer")
		}
	})
}

// threadLoop runs f b.N times on one locked thread and reports, besides
// the wall time, cpu-ns/op: the CPU time of that thread alone, the cost on
// the reader's core, which other load on the machine (and the output's
// worker on another core) does not inflate.
func threadLoop(b *testing.B, f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	start, ok := threadCPU()
	for b.Loop() {
		f()
	}
	if end, ok2 := threadCPU(); ok && ok2 {
		b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkHotPath is the cost of answering a query on the reader's core
// with dnstap off, sampled (1 in 100) and full, the output running and
// writing to a collector on a Unix socket (its worker and the collector
// run on other cores when there are any). drops/op is the share of
// sampled queries the queue had no room for.
func BenchmarkHotPath(b *testing.B) {
	p := wwwQuery(b)
	now := time.Now()
	b.Run("off", func(b *testing.B) {
		loop(b, benchHandler(b, nil).NewWorker(), p, now)
	})
	for _, bc := range []struct {
		name   string
		sample int
	}{{"sample100", 100}, {"full", 1}} {
		b.Run(bc.name, func(b *testing.B) {
			dir := b.TempDir()
			sock := filepath.Join(dir, "b.sock")
			if len(sock) > 100 {
				b.Skip("temp dir path too long for a Unix socket")
			}
			rcv := listenDiscard(b, sock)
			defer rcv()
			tp := New(slog.New(slog.DiscardHandler))
			tp.Apply(Config{Dnstap: &FrameConfig{Collector: Collector{"unix", sock}, Identity: "pop", Version: "v", Sample: bc.sample, Queue: 4096}})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { _ = tp.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			for value(tp.conn.WithLabelValues(outDnstap)) != 1 {
				time.Sleep(time.Millisecond)
			}
			loop(b, benchHandler(b, tp).NewWorker(), p, now)
			b.ReportMetric(value(tp.dropped.WithLabelValues(outDnstap, "queue_full"))/float64(b.N), "drops/op")
		})
	}
}

// listenDiscard is a collector on a Unix socket that reads and discards
// every frame; the returned function stops it.
func listenDiscard(tb testing.TB, path string) func() {
	tb.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				fr, err := framestream.NewReader(c, &framestream.ReaderOptions{
					ContentTypes: [][]byte{pb.FSContentType}, Bidirectional: true, Timeout: 5 * time.Second,
				})
				if err != nil {
					return
				}
				buf := make([]byte, 1<<16)
				for {
					if _, err := fr.ReadFrame(buf); err != nil {
						return
					}
				}
			})
		}
	})
	return func() { ln.Close(); wg.Wait() }
}

// BenchmarkHook is the hook alone, after the answer is built: what
// BenchmarkHotPath adds to an answer, measured without it.
func BenchmarkHook(b *testing.B) {
	p := wwwQuery(b)
	now := time.Now()
	for _, bc := range []struct {
		name   string
		sample int
	}{{"off", 0}, {"sample100", 100}} {
		b.Run(bc.name, func(b *testing.B) {
			var tap dnsserver.Tap
			// The records go back to the pool as the worker's would
			// (here on this core: the off case pays the same look at
			// the queue's length).
			q := NewQueue(1024, max(bc.sample, 1), nil)
			if bc.sample > 0 {
				tp := New(slog.New(slog.DiscardHandler))
				tp.Apply(Config{Dnstap: &FrameConfig{Sample: bc.sample}}) // not run: only the rate
				tp.q.Store(&queues{frame: q, every: uint64(bc.sample)})
				tap = tp
			}
			w := benchHandler(b, tap).NewWorker()
			resp, _ := w.Handle(p, testClient, dnsserver.UDP)
			resp = append([]byte(nil), resp...)
			threadLoop(b, func() {
				if w.Tapping() {
					w.Tap(p, resp, testServer, dnsserver.UDP, now)
				}
				if q.Len() > 0 {
					q.put(q.next())
				}
			})
		})
	}
}
