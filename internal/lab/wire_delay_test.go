package lab

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"
)

// TestWireSetDelay: a running wire takes a new delay for the packets it
// reads from then on, in both directions (the steer-latency scenario moves
// the lab's link delays this way); a negative delay is refused; the delay
// file of `anycastlab wire` is read as a Go duration.
func TestWireSetDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b, w, stop := startWire(t, WireConfig{Name: "t", Delay: 5 * time.Millisecond})
		// transit sends one packet from p and returns how long it took
		// to reach q.
		transit := func(p, q *memPort, seq int) time.Duration {
			start := time.Now()
			p.in <- seqPacket(seq)
			for {
				synctest.Wait()
				select {
				case <-q.out:
					return time.Since(start)
				default:
				}
				time.Sleep(time.Millisecond)
			}
		}
		if d := transit(a, b, 1); d < 5*time.Millisecond || d > 6*time.Millisecond {
			t.Errorf("before: a→b took %v, want 5ms", d)
		}
		if err := w.SetDelay(30 * time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if d := transit(a, b, 2); d < 30*time.Millisecond || d > 31*time.Millisecond {
			t.Errorf("after SetDelay(30ms): a→b took %v, want 30ms", d)
		}
		if d := transit(b, a, 3); d < 30*time.Millisecond || d > 31*time.Millisecond {
			t.Errorf("after SetDelay(30ms): b→a took %v, want 30ms", d)
		}
		if err := w.SetDelay(-time.Millisecond); err == nil || w.Delay() != 30*time.Millisecond {
			t.Errorf("SetDelay(-1ms): err %v, delay %v; want an error and 30ms kept", err, w.Delay())
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	})

	w, err := NewWire(WireConfig{Name: "f", Delay: time.Millisecond}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "wire.delay")
	for _, c := range []struct {
		content string
		want    time.Duration
		ok      bool
	}{{"15ms\n", 15 * time.Millisecond, true}, {"soon", 15 * time.Millisecond, false}, {"-2ms", 15 * time.Millisecond, false}, {" 1ms ", time.Millisecond, true}} {
		if err := os.WriteFile(file, []byte(c.content), 0o600); err != nil {
			t.Fatal(err)
		}
		err := w.reloadDelay(file)
		if (err == nil) != c.ok || w.Delay() != c.want {
			t.Errorf("delay file %q: err %v, delay %v; want ok=%v, %v", c.content, err, w.Delay(), c.ok, c.want)
		}
	}
}
