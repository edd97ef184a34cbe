package node

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"

	"github.com/anycastdns/anycastdns/internal/admin"
	"github.com/anycastdns/anycastdns/internal/dnsserver"
)

// loadInterval is how often the node samples its counters for /v1/load: a
// load covers from the newest sample at least this old to now, so 1 to 2
// intervals.
const loadInterval = time.Second

// loadSample is the node's counters at one time.
type loadSample struct {
	t                      time.Time
	queries, dropped       uint64
	rrlDropped, rrlSlipped uint64
	tcpEvicted, tcpRefused uint64
	cpu                    time.Duration // user + system time of the process
	tcpConns               int64
}

// loadMeter keeps the last samples of the node's counters and turns them
// into rates.
type loadMeter struct {
	sample func() loadSample // the counters now

	mu      sync.Mutex
	samples []loadSample // oldest first, at most 3
}

func newLoadMeter(stats *dnsserver.Stats) *loadMeter {
	return &loadMeter{sample: func() loadSample { return statsSample(stats, time.Now()) }}
}

// processCPU is the user and system CPU time of the process so far.
func processCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// statsSample reads the DNS server's counters and the process's CPU time.
func statsSample(stats *dnsserver.Stats, now time.Time) loadSample {
	q, dropped, _, _ := stats.Snapshot()
	s := loadSample{t: now, dropped: dropped, tcpConns: stats.TCPConns.Load(),
		tcpEvicted: stats.TCPEvicted.Load(), tcpRefused: stats.TCPRefuse.Load()}
	for _, c := range q {
		s.queries += c.N
	}
	s.rrlDropped, s.rrlSlipped = stats.RRL()
	s.cpu, _ = processCPU() // on error 0: the CPU rate reads 0 (rates never go negative)
	return s
}

// tick records a sample; run calls it every loadInterval.
func (m *loadMeter) tick() {
	s := m.sample()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.samples = append(m.samples, s)
	if len(m.samples) > 3 {
		m.samples = m.samples[len(m.samples)-3:]
	}
}

// run samples every loadInterval until ctx ends.
func (m *loadMeter) run(ctx context.Context) {
	m.tick()
	t := time.NewTicker(loadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.tick()
		}
	}
}

// minLoadInterval is the shortest interval a load is computed over.
const minLoadInterval = 10 * time.Millisecond

// load is the load from the newest sample at least loadInterval old (or
// the oldest there is) to now.
func (m *loadMeter) load() (admin.Load, error) {
	cur := m.sample()
	m.mu.Lock()
	var prev *loadSample
	for i := len(m.samples) - 1; i >= 0; i-- {
		prev = &m.samples[i]
		if cur.t.Sub(prev.t) >= loadInterval {
			break
		}
	}
	var p loadSample
	if prev != nil {
		p = *prev
	}
	m.mu.Unlock()
	if prev == nil || cur.t.Sub(p.t) < minLoadInterval {
		return admin.Load{}, fmt.Errorf("the node started less than %v ago: %w", minLoadInterval, admin.ErrUnavailable)
	}
	return rates(p, cur), nil
}

// rates is the load between two samples. A counter that went backwards
// (never, with the node's counters) counts as 0.
func rates(a, b loadSample) admin.Load {
	dt := b.t.Sub(a.t)
	per := func(x, y uint64) float64 {
		if y < x {
			return 0
		}
		return float64(y-x) / dt.Seconds()
	}
	cpu := 0.0
	if b.cpu > a.cpu {
		cpu = float64(b.cpu-a.cpu) / float64(dt)
	}
	return admin.Load{
		Time: b.t, Interval: dt,
		QueriesPerSecond: per(a.queries, b.queries), TCPConnections: b.tcpConns, CPU: cpu,
		DroppedPerSecond:    per(a.dropped, b.dropped),
		RRLDroppedPerSecond: per(a.rrlDropped, b.rrlDropped), RRLSlippedPerSecond: per(a.rrlSlipped, b.rrlSlipped),
		TCPEvictedPerSecond: per(a.tcpEvicted, b.tcpEvicted), TCPRefusedPerSecond: per(a.tcpRefused, b.tcpRefused),
	}
}

// Load implements admin.Loader.
func (n *Node) Load() (admin.Load, error) {
	l, err := n.load.load()
	if err != nil {
		return admin.Load{}, err
	}
	n.mu.Lock()
	l.Node = n.cfg.Identity.Name
	n.mu.Unlock()
	return l, nil
}
