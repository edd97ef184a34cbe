package lab

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"math"
	"os"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// memPort is one side of an in-memory point-to-point link: what the wire
// writes to it lands in out; what the test sends appears in in.
type memPort struct {
	in     chan []byte
	out    chan []byte
	closed chan struct{}
	once   sync.Once
}

func newMemPort() *memPort {
	return &memPort{in: make(chan []byte, 1<<16), out: make(chan []byte, 1<<16), closed: make(chan struct{})}
}

func (p *memPort) Read(b []byte) (int, error) {
	select {
	case pkt := <-p.in:
		return copy(b, pkt), nil
	case <-p.closed:
		return 0, os.ErrClosed
	}
}

func (p *memPort) Write(b []byte) (int, error) {
	select {
	case <-p.closed:
		return 0, os.ErrClosed
	default:
	}
	p.out <- append([]byte(nil), b...)
	return len(b), nil
}

func (p *memPort) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}

func seqPacket(i int) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint32(b, uint32(i))
	return b
}

func startWire(t *testing.T, cfg WireConfig) (a, b *memPort, w *Wire, stop func() error) {
	t.Helper()
	w, err := NewWire(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a, b = newMemPort(), newMemPort()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, a, b) }()
	return a, b, w, func() error { cancel(); return <-done }
}

func TestWireDelay(t *testing.T) {
	for _, delay := range []time.Duration{0, 5 * time.Millisecond, 40 * time.Millisecond} {
		t.Run(delay.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				a, b, w, stop := startWire(t, WireConfig{Name: "t", Delay: delay})
				start := time.Now()
				// Packets sent 1 ms apart, from both sides.
				type arrival struct {
					seq int
					at  time.Duration
				}
				var gotB, gotA []arrival
				collect := func(p *memPort, got *[]arrival) {
					for {
						select {
						case pkt := <-p.out:
							*got = append(*got, arrival{int(binary.BigEndian.Uint32(pkt)), time.Since(start)})
						default:
							return
						}
					}
				}
				// Step the fake clock 1 ms at a time, sending a packet from
				// each side in the first 5 steps and noting when each
				// reaches the far side.
				for step := range 60 {
					if step < 5 {
						a.in <- seqPacket(step)
						b.in <- seqPacket(100 + step)
					}
					synctest.Wait()
					collect(b, &gotB)
					collect(a, &gotA)
					time.Sleep(time.Millisecond)
				}
				var wantB, wantA []arrival
				for i := range 5 {
					at := time.Duration(i)*time.Millisecond + delay
					wantB = append(wantB, arrival{i, at})
					wantA = append(wantA, arrival{100 + i, at})
				}
				opt := cmp.AllowUnexported(arrival{})
				if d := cmp.Diff(wantB, gotB, opt); d != "" {
					t.Errorf("a→b arrivals (-want +got):\n%s", d)
				}
				if d := cmp.Diff(wantA, gotA, opt); d != "" {
					t.Errorf("b→a arrivals (-want +got):\n%s", d)
				}
				if err := stop(); err != nil {
					t.Errorf("Run: %v", err)
				}
				if s := w.Stats(); s.Forwarded != [2]uint64{5, 5} {
					t.Errorf("forwarded %v, want [5 5]", s.Forwarded)
				}
			})
		})
	}
}

func TestWireLoss(t *testing.T) {
	const n = 20000
	for _, loss := range []float64{0, 0.01, 0.3, 1} {
		t.Run("", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				a, b, w, stop := startWire(t, WireConfig{Name: "t", Delay: time.Millisecond, Loss: loss, Seed: 42, QueueLen: n})
				for i := range n {
					a.in <- seqPacket(i)
				}
				synctest.Wait()
				time.Sleep(2 * time.Millisecond)
				synctest.Wait()
				got := len(b.out)
				if err := stop(); err != nil {
					t.Fatalf("Run: %v", err)
				}
				s := w.Stats()
				if uint64(got) != s.Forwarded[0] || s.Forwarded[0]+s.Lost[0] != n || s.Overflow[0] != 0 {
					t.Fatalf("delivered %d, stats %+v: counts do not add up to %d", got, s, n)
				}
				// Binomial: within 5 standard deviations of n(1-loss).
				mean := n * (1 - loss)
				sd := math.Sqrt(n * loss * (1 - loss))
				if math.Abs(float64(got)-mean) > 5*sd+0.5 {
					t.Errorf("loss %g: delivered %d of %d, want %.0f ± %.0f", loss, got, n, mean, 5*sd)
				}
				// Survivors keep their order.
				last := -1
				for range got {
					seq := int(binary.BigEndian.Uint32(<-b.out))
					if seq <= last {
						t.Fatalf("packet %d after %d", seq, last)
					}
					last = seq
				}
			})
		})
	}
}

func TestWireOverflow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b, w, stop := startWire(t, WireConfig{Name: "t", Delay: 10 * time.Millisecond, QueueLen: 8})
		for i := range 20 {
			a.in <- seqPacket(i)
		}
		synctest.Wait()
		time.Sleep(11 * time.Millisecond)
		synctest.Wait()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		s := w.Stats()
		// The queue holds 8 while the first waits out its delay; the
		// writer may already hold one more, out of the queue.
		if len(b.out) < 8 || len(b.out) > 9 || s.Overflow[0] != uint64(20-len(b.out)) {
			t.Errorf("delivered %d, stats %+v; want 8 or 9 delivered and the rest overflowed", len(b.out), s)
		}
	})
}

// failPort fails its first read, as a TUN device does when its namespace
// is deleted under it.
type failPort struct{ *memPort }

func (p *failPort) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

func TestWirePortFailureStopsIt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, err := NewWire(WireConfig{Name: "t"}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		a := &failPort{newMemPort()}
		b := newMemPort()
		err = w.Run(context.Background(), a, b)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("Run = %v, want the read error", err)
		}
		select {
		case <-b.closed:
		default:
			t.Error("the other port was left open")
		}
	})
}

func TestNewWireRejects(t *testing.T) {
	for _, cfg := range []WireConfig{{Delay: -1}, {Loss: 1.5}, {Loss: -0.1}, {MTU: 10}} {
		if _, err := NewWire(cfg, slog.New(slog.DiscardHandler)); err == nil {
			t.Errorf("NewWire(%+v) accepted", cfg)
		}
	}
}
