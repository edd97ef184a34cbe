package standalone

import (
	"context"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The standalone holds each zone twice (the control plane's store and the
// node's copy), and loading a large zone makes several times its size in
// short-lived garbage: the import's parse and database write, the
// transfer to the node, the node's zone file. With the default GC target
// the heap then stays at twice what is live, and the runtime hands back
// only what lies above that: on the 1,000,000-name zone of make
// bench-change, about 570 MiB live and 1.3 GiB resident. A lower GC target
// costs every load a full mark of the heap far more often. So the
// standalone trims instead: once the heap has been quiet for quietLooks
// looks in a row (allocated less than live/quietShare between two), and
// it holds more than live/trimShare beyond what is live, it collects and
// returns the free memory to the system (debug.FreeOSMemory), once per
// burst. A trim marks the whole heap and takes the heap lock while it
// returns memory (one or two seconds of CPU at this size): it comes in the
// first quiet second after the burst, while nothing else is asked of the
// process, rather than later among the changes that follow (a trim that
// fell among them made single changes take 20-40 ms).
const (
	trimEvery  = time.Second
	quietLooks = 1
	quietShare = 50       // quiet: allocated under live/quietShare since the last look
	trimShare  = 4        // trim when objects and free memory exceed live by live/trimShare
	trimFloor  = 32 << 20 // ... and by at least this
)

// heapSample reads what trimming looks at.
type heapSample struct {
	allocs  uint64 // cumulative bytes allocated
	live    uint64 // marked live by the last GC
	objects uint64 // in heap objects, garbage not yet collected included
	free    uint64 // free heap memory not returned to the system
}

var heapMetrics = []string{"/gc/heap/allocs:bytes", "/gc/heap/live:bytes", "/memory/classes/heap/objects:bytes", "/memory/classes/heap/free:bytes"}

func readHeap() heapSample {
	s := make([]metrics.Sample, len(heapMetrics))
	for i, n := range heapMetrics {
		s[i].Name = n
	}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return s[i].Value.Uint64()
	}
	return heapSample{allocs: v(0), live: v(1), objects: v(2), free: v(3)}
}

// shouldTrim reports whether the heap, quiet since prev, holds enough
// beyond what is live to be worth a collection and a return to the
// system.
func shouldTrim(prev, cur heapSample) bool {
	return isQuiet(prev, cur) && cur.objects+cur.free > cur.live+max(cur.live/trimShare, trimFloor)
}

// isQuiet reports whether little was allocated between two looks.
func isQuiet(prev, cur heapSample) bool { return cur.allocs-prev.allocs < cur.live/quietShare }

// trimMemory looks at the heap every interval until ctx ends, and trims it
// when shouldTrim says so after quietLooks quiet looks.
func trimMemory(ctx context.Context, every time.Duration, log *slog.Logger) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	prev := readHeap()
	quiet := 0 // looks in a row that found the heap quiet
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		cur := readHeap()
		quiet++
		if !isQuiet(prev, cur) {
			quiet = 0
		}
		if quiet >= quietLooks && shouldTrim(prev, cur) {
			quiet = 0
			start := time.Now()
			debug.FreeOSMemory()
			after := readHeap()
			log.Debug("standalone: returned free memory to the system", "live_mib", after.live>>20,
				"before_mib", (cur.objects+cur.free)>>20, "after_mib", (after.objects+after.free)>>20, "took", time.Since(start))
			cur = after
		}
		prev = cur
	}
}
