package zonesync

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/anycastdns/anycastdns/internal/health"
	"github.com/anycastdns/anycastdns/internal/testkit/testzone"
	"github.com/anycastdns/anycastdns/internal/tsig"
	"github.com/anycastdns/anycastdns/internal/zone"
)

const origin = "example.com."

// makeZone builds example.com. at serial with the standard records and
// extra lines (master-file syntax, absolute names).
func makeZone(t testing.TB, serial uint32, extra ...string) *zone.Zone {
	t.Helper()
	return makeZoneFor(t, origin, serial, extra...)
}

// makeZoneFor returns zone name with serial, 20 host records and extra.
func makeZoneFor(t testing.TB, name string, serial uint32, extra ...string) *zone.Zone {
	t.Helper()
	return testzone.New(t, name, serial, 20, extra...)
}

// runIdle runs m inside a synctest bubble until every goroutine of the
// bubble is blocked (its first refreshes done, persisted), then stops it.
func runIdle(t *testing.T, m *Manager) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	synctest.Wait()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// dump prints a zone in canonical master-file form, for comparisons.
func dump(t testing.TB, z *zone.Zone) string {
	t.Helper()
	if z == nil {
		return "<nil>"
	}
	var b strings.Builder
	if _, err := z.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// recordLog is a slog handler that keeps every record's level and message.
type recordLog struct {
	mu      sync.Mutex
	records []string // "LEVEL message"
	full    []string // "LEVEL message key=value ..."
}

// find returns the records, with their attributes, that contain sub.
func (r *recordLog) find(sub string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.full {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return out
}

func (r *recordLog) Enabled(context.Context, slog.Level) bool { return true }
func (r *recordLog) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recordLog) WithGroup(string) slog.Handler            { return r }
func (r *recordLog) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec.Level.String()+" "+rec.Message)
	line := rec.Level.String() + " " + rec.Message
	rec.Attrs(func(a slog.Attr) bool {
		line += " " + a.String()
		return true
	})
	r.full = append(r.full, line)
	return nil
}

// count returns how many records had this level and message.
func (r *recordLog) count(level slog.Level, msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.records {
		if l == level.String()+" "+msg {
			n++
		}
	}
	return n
}

func testKeys() []tsig.Key {
	return []tsig.Key{{Name: testKey, Algorithm: "hmac-sha256", Secret: testSecret}}
}

func served(m *Manager, name string) *zone.Zone {
	for _, z := range m.Zones() {
		if z.Origin == name {
			return z
		}
	}
	return nil
}

func counter(t testing.TB, c interface{ Write(*dto.Metric) error }) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// waitSerial waits until m serves origin at serial want, looking again at
// each change m reports on changed.
func waitSerial(t testing.TB, m *Manager, changed <-chan struct{}, want uint32) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		if z := served(m, origin); z != nil && z.Serial == want {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("serial %d not served after 20s; status %+v", want, m.Status())
		}
	}
}

// runSecondary starts a Manager for origin with one primary at addr on the
// real network; it stops when the test ends. changed receives its changes.
func runSecondary(t *testing.T, addr netip.AddrPort) (m *Manager, changed chan struct{}) {
	t.Helper()
	m, err := New(Config{
		DataDir: t.TempDir(), Keys: testKeys(),
		Zones: []Zone{{Name: origin, Primaries: []Primary{{Addr: addr, Key: testKey}}}},
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	changed = make(chan struct{}, 100)
	m.OnChange(func() { changed <- struct{}{} })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return m, changed
}

// notifyOK hands m a signed NOTIFY for origin from addr and wants it
// accepted.
func notifyOK(t testing.TB, m *Manager, addr netip.AddrPort) {
	t.Helper()
	if resp := m.Notify(notifyMsg(t, origin, testKey, testSecret), addr); len(resp) < 4 || resp[3]&0xf != 0 {
		t.Fatalf("notify answer %x", resp)
	}
}

// gauges collects c and returns its gauges as "name{label=value,...}" →
// value.
func gauges(t testing.TB, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			out[mf.GetName()+"{"+strings.Join(labels, ",")+"}"] = m.GetGauge().GetValue()
		}
	}
	return out
}

// healthStates gives m's zone states to a health.ZoneCheck, as the node
// does.
func healthStates(m *Manager) func() map[string]health.ZoneState {
	return func() map[string]health.ZoneState {
		out := map[string]health.ZoneState{}
		for name, st := range m.States() {
			out[name] = health.ZoneState{Serial: st.Serial, Expired: st.Expired, Unconfirmed: st.Unconfirmed}
		}
		return out
	}
}
