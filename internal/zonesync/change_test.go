package zonesync

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestOnChangePause: a change that comes alone is handed to OnChange at
// once, however long the previous call took; changes that come during a
// call are coalesced and wait four times its length.
func TestOnChangePause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, err := New(Config{DataDir: t.TempDir()}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var mu sync.Mutex
		var calls []time.Duration
		m.OnChange(func() {
			mu.Lock()
			calls = append(calls, time.Since(start))
			mu.Unlock()
			time.Sleep(10 * time.Millisecond) // a slow rebuild
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()

		m.notifyChange() // alone: called at once
		time.Sleep(15 * time.Millisecond)
		m.notifyChange() // alone again, after the call: called at once
		time.Sleep(5 * time.Millisecond)
		m.notifyChange() // during the call: waits for the pause
		m.notifyChange() // coalesced with it
		time.Sleep(200 * time.Millisecond)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		want := []time.Duration{0, 15 * time.Millisecond, 65 * time.Millisecond}
		if diff := cmp.Diff(want, calls); diff != "" {
			t.Errorf("calls at (-want +got):\n%s", diff)
		}
	})
}
