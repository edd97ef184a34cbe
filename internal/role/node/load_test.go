package node

import (
	"errors"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/anycastdns/anycastdns/internal/admin"
	"github.com/anycastdns/anycastdns/internal/dnsserver"
)

func TestRates(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := loadSample{t: t0, queries: 1000, dropped: 5, rrlDropped: 10, rrlSlipped: 4, tcpEvicted: 1, tcpRefused: 2, cpu: time.Second, tcpConns: 7}
	tests := []struct {
		name string
		b    loadSample
		want admin.Load
	}{
		{"two seconds", loadSample{t: t0.Add(2 * time.Second), queries: 4000, dropped: 9, rrlDropped: 30, rrlSlipped: 8, tcpEvicted: 5, tcpRefused: 2, cpu: 2500 * time.Millisecond, tcpConns: 3},
			admin.Load{Time: t0.Add(2 * time.Second), Interval: 2 * time.Second, QueriesPerSecond: 1500, TCPConnections: 3, CPU: 0.75,
				DroppedPerSecond: 2, RRLDroppedPerSecond: 10, RRLSlippedPerSecond: 2, TCPEvictedPerSecond: 2}},
		{"idle", loadSample{t: t0.Add(time.Second), queries: 1000, dropped: 5, rrlDropped: 10, rrlSlipped: 4, tcpEvicted: 1, tcpRefused: 2, cpu: time.Second},
			admin.Load{Time: t0.Add(time.Second), Interval: time.Second}},
		{"counters going backwards read 0", loadSample{t: t0.Add(time.Second), cpu: 0},
			admin.Load{Time: t0.Add(time.Second), Interval: time.Second}},
		{"two cores busy", loadSample{t: t0.Add(time.Second), queries: 1000, cpu: 3 * time.Second},
			admin.Load{Time: t0.Add(time.Second), Interval: time.Second, CPU: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, rates(a, tt.b)); diff != "" {
				t.Errorf("rates (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLoadMeter: the load covers from the newest sample at least
// loadInterval old to now, and is unavailable in the first moments.
func TestLoadMeter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 100 queries/s for 2.5 s, then 400/s.
		start := time.Now()
		queries := func() uint64 {
			ms := uint64(time.Since(start).Milliseconds())
			if ms <= 2500 {
				return ms / 10
			}
			return 250 + (ms-2500)*4/10
		}
		m := &loadMeter{sample: func() loadSample { return loadSample{t: time.Now(), queries: queries()} }}
		ctx := t.Context()
		go m.run(ctx)
		synctest.Wait()
		if _, err := m.load(); !errors.Is(err, admin.ErrUnavailable) {
			t.Fatalf("load at start: %v, want ErrUnavailable", err)
		}
		time.Sleep(2500 * time.Millisecond)
		l, err := m.load()
		if err != nil {
			t.Fatal(err)
		}
		// Samples at 0, 1 s, 2 s: the newest at least 1 s old is at 1 s.
		if l.Interval != 1500*time.Millisecond || math.Abs(l.QueriesPerSecond-100) > 1e-9 {
			t.Errorf("after 2.5 s: interval %v, %v q/s; want 1.5s, 100 q/s", l.Interval, l.QueriesPerSecond)
		}
		time.Sleep(time.Second)
		l, err = m.load()
		if err != nil {
			t.Fatal(err)
		}
		// Now 3.5 s; samples at 1, 2, 3 s; from 2 s: 2 s to 2.5 s at
		// 100/s (50), 2.5 s to 3.5 s at 400/s (400).
		if l.Interval != 1500*time.Millisecond || math.Abs(l.QueriesPerSecond-300) > 1e-9 {
			t.Errorf("after 3.5 s: interval %v, %v q/s; want 1.5s, 300 q/s", l.Interval, l.QueriesPerSecond)
		}
	})
}

// TestStatsSample reads the real counters.
func TestStatsSample(t *testing.T) {
	var st dnsserver.Stats
	st.TCPConns.Store(4)
	st.TCPEvicted.Store(9)
	st.TCPRefuse.Store(2)
	s := statsSample(&st, time.Unix(100, 0))
	if s.tcpConns != 4 || s.tcpEvicted != 9 || s.tcpRefused != 2 || s.queries != 0 || !s.t.Equal(time.Unix(100, 0)) {
		t.Errorf("sample %+v", s)
	}
	if s.cpu <= 0 {
		t.Errorf("process CPU time %v, want > 0", s.cpu)
	}
}
