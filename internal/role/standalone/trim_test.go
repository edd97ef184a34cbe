package standalone

import (
	"context"
	"log/slog"
	"runtime"
	"testing"
	"time"
)

func TestShouldTrim(t *testing.T) {
	const mib = 1 << 20
	for _, tt := range []struct {
		name      string
		prev, cur heapSample
		want      bool
	}{
		{"quiet, twice the live heap", heapSample{allocs: 1000 * mib}, heapSample{allocs: 1001 * mib, live: 570 * mib, objects: 900 * mib, free: 300 * mib}, true},
		{"allocating", heapSample{allocs: 1000 * mib}, heapSample{allocs: 1100 * mib, live: 570 * mib, objects: 900 * mib, free: 300 * mib}, false},
		{"quiet, near the live heap", heapSample{allocs: 1000 * mib}, heapSample{allocs: 1001 * mib, live: 570 * mib, objects: 600 * mib, free: 50 * mib}, false},
		{"small heap, under the floor", heapSample{allocs: 10 * mib}, heapSample{allocs: 10 * mib, live: 4 * mib, objects: 10 * mib, free: 20 * mib}, false},
		{"small heap, over the floor", heapSample{allocs: 10 * mib}, heapSample{allocs: 10 * mib, live: 4 * mib, objects: 10 * mib, free: 40 * mib}, true},
	} {
		if got := shouldTrim(tt.prev, tt.cur); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

var sink [][]byte

// TestTrimMemory: after a burst of garbage, the trimmer returns the free
// memory to the system within a few looks.
func TestTrimMemory(t *testing.T) {
	runtime.GC()
	for range 256 {
		sink = append(sink, make([]byte, 512<<10)) // 128 MiB
	}
	sink = nil
	runtime.GC() // garbage collected, its memory free but kept
	before := readHeap()
	if before.free < 64<<20 {
		t.Skipf("the runtime kept only %d MiB free after the burst", before.free>>20)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- trimMemory(ctx, 20*time.Millisecond, slog.New(slog.DiscardHandler)) }()
	deadline := time.Now().Add(5 * time.Second)
	for readHeap().free > 32<<20 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if after := readHeap(); after.free > 32<<20 {
		t.Errorf("free heap memory %d MiB after trimming, %d MiB before", after.free>>20, before.free>>20)
	}
}
