package zonesync

import (
	"context"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
)

const primaryAddr = "192.0.2.1:53"

// fixture is a Manager of one zone (example.com.) with one primary on an
// in-memory network, for tests inside a synctest bubble.
type fixture struct {
	t    *testing.T
	net  *pipeNet
	p    *primary
	m    *Manager
	cfg  Config
	stop func()
	// logger, when set before start, replaces testLogger.
	logger *slog.Logger
}

func newFixture(t *testing.T, mod func(*Config)) *fixture {
	t.Helper()
	return newFixtureWith(t, mod, nil)
}

// newFixtureWith is newFixture with prep applied to the primary before the
// Manager starts.
func newFixtureWith(t *testing.T, mod func(*Config), prep func(*primary)) *fixture {
	t.Helper()
	return newFixtureLogged(t, mod, prep, nil)
}

// newFixtureLogged is newFixtureWith with the Manager logging to logger
// (nil: testLogger).
func newFixtureLogged(t *testing.T, mod func(*Config), prep func(*primary), logger *slog.Logger) *fixture {
	t.Helper()
	f := &fixture{t: t, net: &pipeNet{}, logger: logger}
	f.p = newPrimary(t, f.net.listen(primaryAddr), makeZone(t, 1), "")
	if prep != nil {
		f.p.with(prep)
	}
	f.cfg = Config{
		DataDir: t.TempDir(), Keys: testKeys(),
		Zones: []Zone{{Name: origin, Primaries: []Primary{{Addr: mustAddrPort(primaryAddr), Key: testKey}}}},
		Dial:  f.net.dial,
		// The tests check the SOA timers to the second.
		Timers: Timers{Jitter: -1},
	}
	if mod != nil {
		mod(&f.cfg)
	}
	f.start()
	return f
}

// start creates and runs a Manager on f.cfg; f.stop stops it.
func (f *fixture) start() {
	f.t.Helper()
	logger := f.logger
	if logger == nil {
		logger = testLogger(f.t)
	}
	m, err := New(f.cfg, logger)
	if err != nil {
		f.t.Fatal(err)
	}
	f.m = m
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	stopped := false
	f.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			f.t.Errorf("Run: %v", err)
		}
	}
	f.t.Cleanup(f.stop)
}

// notify sends a signed NOTIFY from the primary and checks that it is
// accepted.
func (f *fixture) notify() {
	f.t.Helper()
	resp := f.m.Notify(notifyMsg(f.t, origin, testKey, testSecret), mustAddrPort(primaryAddr))
	var r dns.Msg
	if err := r.Unpack(resp); err != nil || r.Rcode != dns.RcodeSuccess {
		f.t.Fatalf("notify answered %v (unpack error %v)", dns.RcodeToString[r.Rcode], err)
	}
}

// notifyMsg packs a NOTIFY for name, signed with key and secret unless key
// is empty.
func notifyMsg(t testing.TB, name, key, secret string) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetNotify(name)
	if key == "" {
		out, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	m.SetTsig(key, dns.HmacSHA256, 300, time.Now().Unix())
	out, _, err := dns.TsigGenerate(m, secret, "", false)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (f *fixture) servedSerial() uint32 {
	z := served(f.m, origin)
	if z == nil {
		return 0
	}
	return z.Serial
}

func (f *fixture) wantServed(want uint32) {
	f.t.Helper()
	if got := f.servedSerial(); got != want {
		f.t.Fatalf("served serial = %d, want %d; status %+v", got, want, f.m.Status())
	}
}

func (f *fixture) wantSameAsPrimary() {
	f.t.Helper()
	if diff := cmp.Diff(dump(f.t, f.p.current(origin)), dump(f.t, served(f.m, origin))); diff != "" {
		f.t.Fatalf("served zone differs from the primary's (-primary +served):\n%s", diff)
	}
}

func TestInitialAXFRThenNotifyIXFR(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, nil)
		synctest.Wait()
		f.wantServed(1)
		f.wantSameAsPrimary()
		if f.p.axfrs.Load() != 1 || f.p.ixfrs.Load() != 0 {
			t.Errorf("axfr %d ixfr %d, want 1 and 0", f.p.axfrs.Load(), f.p.ixfrs.Load())
		}

		f.p.set(makeZone(t, 2, "new.example.com. 300 IN TXT \"hello\""))
		f.notify()
		synctest.Wait()
		f.wantServed(2)
		f.wantSameAsPrimary()
		if f.p.ixfrs.Load() != 1 || f.p.axfrs.Load() != 1 {
			t.Errorf("axfr %d ixfr %d, want 1 and 1", f.p.axfrs.Load(), f.p.ixfrs.Load())
		}
		st := f.m.Status()[0]
		if st.Primary != primaryAddr || st.LastError != "" || st.Serial != 2 || st.Expired {
			t.Errorf("status %+v", st)
		}
	})
}
