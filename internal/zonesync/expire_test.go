package zonesync

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/anycastdns/anycastdns/internal/health"
)

// persistExpired writes name at serial to dataDir as a copy last confirmed
// two days ago: past the test zones' one-day SOA expire.
func persistExpired(t *testing.T, dataDir, name string, serial uint32) {
	t.Helper()
	st, err := newStore(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	z := makeZoneFor(t, name, serial)
	if _, err := st.save(z, state{Zone: name, Serial: serial, LastRefresh: time.Now().Add(-48 * time.Hour), Primary: primaryAddr}); err != nil {
		t.Fatal(err)
	}
}

// TestExpiredOnDiskAtStart: a zone found expired on disk at start-up counts
// as not loaded (the node does not announce) until a refresh attempt ends:
// confirmed by the primary it is served; with the primary unreachable it
// is expired (SERVFAIL, alone) and no longer holds the node back. One zone
// failing to reach a primary settles every zone of that primary, so that a
// node restarted while the primaries are away does not wait for thousands
// of queued attempts.
func TestExpiredOnDiskAtStart(t *testing.T) {
	const other = "example.net."
	tests := []struct {
		name    string
		zones   []string
		primary bool // the primary answers
		// block: TCP dials after the first one hang (a primary whose
		// packets are dropped) and one transfer runs at a time.
		block       bool
		wantServed  int
		wantExpired int
	}{
		{name: "primary confirms", zones: []string{origin}, primary: true, wantServed: 1},
		{name: "primary refuses connections", zones: []string{origin}, wantExpired: 1},
		{name: "primary unreachable, attempts queued", zones: []string{origin, other}, block: true, wantExpired: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				pn := &pipeNet{}
				if tt.primary {
					p := newPrimary(t, pn.listen(primaryAddr), makeZone(t, 1), "")
					t.Cleanup(func() { _ = p.srv.Shutdown() })
				}
				var dials atomic.Int64
				dial := pn.dial
				if tt.block {
					dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
						if network == "tcp" && dials.Add(1) > 1 {
							<-ctx.Done()
							return nil, ctx.Err()
						}
						return nil, fmt.Errorf("dial %s %s: connection refused", network, addr)
					}
				}
				cfg := Config{DataDir: t.TempDir(), Keys: testKeys(), Dial: dial, Timers: Timers{Jitter: -1}, MaxTransfers: 1}
				for _, name := range tt.zones {
					persistExpired(t, cfg.DataDir, name, 1)
					cfg.Zones = append(cfg.Zones, Zone{Name: name, Primaries: []Primary{{Addr: mustAddrPort(primaryAddr), Key: testKey}}})
				}
				m, err := New(cfg, testLogger(t))
				if err != nil {
					t.Fatal(err)
				}
				check := &health.ZoneCheck{Want: m.Names, Loaded: healthStates(m)}
				// Before any attempt: expired, unconfirmed, not loaded.
				for _, name := range tt.zones {
					if st := m.States()[name]; !st.Expired || !st.Unconfirmed {
						t.Errorf("%s before Run: %+v, want expired and unconfirmed", name, st)
					}
				}
				if err := check.Check(t.Context()); err == nil || !strings.Contains(err.Error(), "not loaded") {
					t.Errorf("ZoneCheck before Run = %v, want not loaded", err)
				}
				if served, expired := m.ZoneSets(); len(served) != 0 || len(expired) != len(tt.zones) {
					t.Errorf("before Run: %d served, %d expired; want 0 and %d (answered SERVFAIL)", len(served), len(expired), len(tt.zones))
				}

				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error, 1)
				go func() { done <- m.Run(ctx) }()
				defer func() { cancel(); <-done }()
				synctest.Wait()

				for name, st := range m.States() {
					if st.Unconfirmed {
						t.Errorf("%s after the attempts: %+v, want confirmed or expired", name, st)
					}
				}
				served, expired := m.ZoneSets()
				if len(served) != tt.wantServed || len(expired) != tt.wantExpired {
					t.Errorf("after the attempts: %d served, %d expired; want %d and %d", len(served), len(expired), tt.wantServed, tt.wantExpired)
				}
				if err := check.Check(t.Context()); err != nil {
					t.Errorf("ZoneCheck after the attempts = %v, want it to pass", err)
				}
				if tt.block && dials.Load() != 2 {
					t.Errorf("%d TCP dials, want 2 (one refused, one hanging)", dials.Load())
				}
			})
		})
	}
}
