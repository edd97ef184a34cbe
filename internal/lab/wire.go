package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A wire carries the packets of one point-to-point link between two ports
// (the two TUN devices of the link, one in each namespace) and imposes the
// link's delay and loss on them, in each direction independently. The kernel
// here has no netem qdisc, so this is how delayed links exist at all.
//
// Each direction is a reader, a FIFO queue and a writer: the reader stamps a
// packet with the time it is due (now + delay) or drops it with the loss
// probability; the writer sleeps until the head of the queue is due and
// writes it out. A constant delay keeps FIFO order, so no reordering and no
// priority queue. A full queue drops (tail drop), as a router's would.

// WireConfig configures a wire.
type WireConfig struct {
	Name  string        // for logs
	Delay time.Duration // one way, each direction
	Loss  float64       // probability 0..1 that a packet is dropped
	Seed  uint64        // of the loss generator, so runs can be repeated
	// QueueLen bounds the packets in flight per direction (default 4096:
	// enough for 1 Gbit/s of full-size packets at 40 ms).
	QueueLen int
	// MTU bounds the packet size (default 1500); reads use MTU+64 bytes.
	MTU int
	// DelayFile, when set, holds a new delay (a Go duration) that the
	// wire of `anycastlab wire` reads on SIGUSR1 (Lab.SetLinkDelay).
	DelayFile string
}

// WireStats counts what a wire did, per direction (0: a→b, 1: b→a).
type WireStats struct {
	Forwarded [2]uint64
	Lost      [2]uint64 // dropped by the loss probability
	Overflow  [2]uint64 // dropped because the queue was full
	Failed    [2]uint64 // writes the far side refused (device down)
}

// Wire is a running link. Create it with NewWire and start it with Run.
type Wire struct {
	cfg    WireConfig
	logger *slog.Logger
	pool   sync.Pool
	stats  [2]struct{ forwarded, lost, overflow, failed atomic.Uint64 }
	// delay is the one-way delay in force (SetDelay changes it while the
	// wire runs).
	delay atomic.Int64
}

// NewWire checks cfg and returns a wire.
func NewWire(cfg WireConfig, logger *slog.Logger) (*Wire, error) {
	if cfg.Delay < 0 {
		return nil, fmt.Errorf("wire %s: negative delay %s", cfg.Name, cfg.Delay)
	}
	if cfg.Loss < 0 || cfg.Loss > 1 {
		return nil, fmt.Errorf("wire %s: loss %g outside [0, 1]", cfg.Name, cfg.Loss)
	}
	if cfg.QueueLen == 0 {
		cfg.QueueLen = 4096
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	if cfg.QueueLen < 1 || cfg.MTU < 68 {
		return nil, fmt.Errorf("wire %s: queue length %d or mtu %d too small", cfg.Name, cfg.QueueLen, cfg.MTU)
	}
	w := &Wire{cfg: cfg, logger: logger.With("component", "wire", "link", cfg.Name)}
	w.delay.Store(int64(cfg.Delay))
	size := cfg.MTU + 64
	w.pool.New = func() any { b := make([]byte, size); return &b }
	return w, nil
}

// SetDelay changes the one-way delay of both directions: packets read
// from now on are due after d. Packets already queued keep their time; a
// shorter delay thus waits behind them (FIFO), as a re-routed link would.
func (w *Wire) SetDelay(d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("wire %s: negative delay %s", w.cfg.Name, d)
	}
	w.delay.Store(int64(d))
	return nil
}

// reloadDelay sets the delay written in file (a Go duration).
func (w *Wire) reloadDelay(file string) error {
	b, err := os.ReadFile(file) //nolint:gosec // the lab's own file, named by its flag
	if err != nil {
		return fmt.Errorf("read delay: %w", err)
	}
	d, err := time.ParseDuration(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("delay in %s: %w", file, err)
	}
	if err := w.SetDelay(d); err != nil {
		return err
	}
	w.logger.Info("wire delay changed", "delay", d)
	return nil
}

// Delay is the one-way delay in force.
func (w *Wire) Delay() time.Duration { return time.Duration(w.delay.Load()) }

// Stats returns the counters so far.
func (w *Wire) Stats() WireStats {
	var s WireStats
	for d := range 2 {
		s.Forwarded[d] = w.stats[d].forwarded.Load()
		s.Lost[d] = w.stats[d].lost.Load()
		s.Overflow[d] = w.stats[d].overflow.Load()
		s.Failed[d] = w.stats[d].failed.Load()
	}
	return s
}

type packet struct {
	buf *[]byte
	n   int
	due time.Time
}

// Run carries packets between a and b until ctx is done or a port fails;
// it closes both ports before it returns. Each Read of a port must return
// one packet and each Write must send one, as a TUN device does. It returns
// nil when ctx ended it.
func (w *Wire) Run(ctx context.Context, a, b io.ReadWriteCloser) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var closeOnce sync.Once
	closePorts := func() {
		closeOnce.Do(func() {
			_ = a.Close()
			_ = b.Close()
		})
	}
	errc := make(chan error, 4)
	var wg sync.WaitGroup
	for dir, ports := range [2][2]io.ReadWriteCloser{{a, b}, {b, a}} {
		q := make(chan packet, w.cfg.QueueLen)
		rng := rand.New(rand.NewPCG(w.cfg.Seed, uint64(dir))) //nolint:gosec // simulated loss, seeded to be repeatable
		wg.Add(2)
		go func() {
			defer wg.Done()
			errc <- w.read(ctx, dir, ports[0], q, rng)
		}()
		go func() {
			defer wg.Done()
			errc <- w.write(ctx, dir, ports[1], q)
		}()
	}
	// The first goroutine to stop ends the wire: cancel the others and close
	// the ports so that blocked reads return.
	first := <-errc
	cancel()
	closePorts()
	wg.Wait()
	s := w.Stats()
	w.logger.Info("wire stopped", "forwarded", s.Forwarded, "lost", s.Lost, "overflow", s.Overflow, "failed", s.Failed)
	if first != nil {
		return fmt.Errorf("wire %s: %w", w.cfg.Name, first)
	}
	return nil
}

func (w *Wire) read(ctx context.Context, dir int, src io.Reader, q chan<- packet, rng *rand.Rand) error {
	st := &w.stats[dir]
	for {
		buf := w.pool.Get().(*[]byte)
		n, err := src.Read(*buf)
		if err != nil {
			w.pool.Put(buf)
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read: %w", err)
		}
		if n == 0 {
			w.pool.Put(buf)
			continue
		}
		if w.cfg.Loss > 0 && rng.Float64() < w.cfg.Loss {
			st.lost.Add(1)
			w.pool.Put(buf)
			continue
		}
		select {
		case q <- packet{buf: buf, n: n, due: time.Now().Add(w.Delay())}:
		default:
			st.overflow.Add(1)
			w.pool.Put(buf)
		}
	}
}

func (w *Wire) write(ctx context.Context, dir int, dst io.Writer, q <-chan packet) error {
	st := &w.stats[dir]
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		var p packet
		select {
		case p = <-q:
		case <-ctx.Done():
			return nil
		}
		if d := time.Until(p.due); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return nil
			}
		}
		_, err := dst.Write((*p.buf)[:p.n])
		w.pool.Put(p.buf)
		switch {
		case err == nil:
			st.forwarded.Add(1)
		case errors.Is(err, os.ErrClosed):
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("write: %w", err)
		default:
			// A TUN device that is down refuses packets (EIO); a real link
			// would lose them, so count and go on.
			st.failed.Add(1)
		}
	}
}
