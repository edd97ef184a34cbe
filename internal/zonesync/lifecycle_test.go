package zonesync

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/health"
	"github.com/anycastdns/anycastdns/internal/tsig"
)

// The SOA of the test zones says refresh 3600, retry 600, expire 86400.

func TestRefreshTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, nil)
		synctest.Wait()
		f.wantServed(1)
		f.p.set(makeZone(t, 2, "late.example.com. 300 IN A 192.0.2.200"))
		time.Sleep(3599 * time.Second)
		synctest.Wait()
		f.wantServed(1)
		time.Sleep(2 * time.Second)
		synctest.Wait()
		f.wantServed(2)
		f.wantSameAsPrimary()
		if n := f.p.soas.Load(); n != 1 {
			t.Errorf("%d SOA queries, want 1 (the refresh; the first transfer needs none)", n)
		}
	})
}

func TestRetryExpireAndRecover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var changes atomic.Int64
		f := newFixture(t, nil)
		f.m.OnChange(func() { changes.Add(1) })
		synctest.Wait()
		f.wantServed(1)
		start := time.Now()
		f.p.with(func(p *primary) { p.refuse = true })

		// Refresh at 1h fails; retries every 10 minutes.
		time.Sleep(time.Hour + time.Second)
		synctest.Wait()
		st := f.m.Status()[0]
		if !strings.Contains(st.LastError, "REFUSED") || !st.NextRefresh.Equal(st.LastAttempt.Add(600*time.Second)) {
			t.Errorf("after a failed refresh: last error %q, next refresh %v after the attempt, want REFUSED and 10m",
				st.LastError, st.NextRefresh.Sub(st.LastAttempt))
		}
		queries := f.p.queries.Load()
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := f.p.queries.Load() - queries; n != 6 {
			t.Errorf("%d SOA queries in an hour of retries, want 6", n)
		}
		f.wantServed(1)

		// Still served just before the expire time, expired after it:
		// kept for the set, marked expired (it answers SERVFAIL), and no
		// failure of the node's health.
		time.Sleep(time.Until(start.Add(86400*time.Second - time.Second)))
		synctest.Wait()
		f.wantServed(1)
		before := changes.Load()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		f.wantServed(0)
		if got := f.m.States()[origin]; got != (ZoneState{Serial: 1, Expired: true}) {
			t.Errorf("States()[%s] = %+v, want serial 1 expired", origin, got)
		}
		if _, expired := f.m.ZoneSets(); len(expired) != 1 || expired[0].Serial != 1 {
			t.Errorf("ZoneSets expired = %v, want the zone at serial 1", expired)
		}
		if changes.Load() == before {
			t.Error("OnChange not called when the zone expired")
		}
		g := gauges(t, &zonesCollector{f.m})
		if g["anycastd_zonesync_zones{state=expired}"] != 1 || g["anycastd_zonesync_zone_expired{zone="+origin+"}"] != 1 {
			t.Errorf("metrics of the expired zone: %v", g)
		}
		check := &health.ZoneCheck{Want: f.m.Names, Loaded: healthStates(f.m)}
		if err := check.Check(t.Context()); err != nil {
			t.Errorf("ZoneCheck = %v, want it to pass: an expired zone fails alone", err)
		}

		// The primary comes back: the next retry serves the zone again.
		f.p.with(func(p *primary) { p.refuse = false })
		time.Sleep(600 * time.Second)
		synctest.Wait()
		f.wantServed(1)
		if got := f.m.States()[origin]; got.Expired {
			t.Errorf("still expired after the primary confirmed it: %+v", got)
		}
		if _, expired := f.m.ZoneSets(); len(expired) != 0 {
			t.Errorf("ZoneSets expired = %v after the primary confirmed it", expired)
		}
		g = gauges(t, &zonesCollector{f.m})
		if _, ok := g["anycastd_zonesync_zone_expired{zone="+origin+"}"]; ok || g["anycastd_zonesync_zones{state=served}"] != 1 {
			t.Errorf("metrics after recovery: %v", g)
		}
		if err := check.Check(t.Context()); err != nil {
			t.Errorf("ZoneCheck after recovery: %v", err)
		}
	})
}

// TestRefreshFailureLogging: a primary that stays down gives one warning
// per zone, not one per retry; the same error again is debug, and the
// recovery is logged.
func TestRefreshFailureLogging(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recordLog{}
		f := newFixtureLogged(t, nil, nil, slog.New(rec))
		synctest.Wait()
		f.wantServed(1)
		f.p.with(func(p *primary) { p.refuse = true })

		// Refresh at 1h fails, then six retries 10 minutes apart.
		time.Sleep(2*time.Hour + time.Second)
		synctest.Wait()
		if n := rec.count(slog.LevelWarn, "zone refresh failed"); n != 1 {
			t.Errorf("%d warnings for 7 failures with the same error, want 1", n)
		}
		if n := rec.count(slog.LevelDebug, "zone refresh failed"); n != 6 {
			t.Errorf("%d debug records for the repeated failures, want 6", n)
		}

		// Another error is a warning again.
		f.p.with(func(p *primary) { p.refuse = false; p.unsigned = true })
		time.Sleep(600 * time.Second)
		synctest.Wait()
		if n := rec.count(slog.LevelWarn, "zone refresh failed"); n != 2 {
			t.Errorf("%d warnings after the error changed, want 2", n)
		}

		f.p.with(func(p *primary) { p.unsigned = false })
		time.Sleep(600 * time.Second)
		synctest.Wait()
		if n := rec.count(slog.LevelInfo, "zone refresh recovered"); n != 1 {
			t.Errorf("%d recovery records, want 1", n)
		}
		if st := f.m.Status()[0]; st.LastError != "" {
			t.Errorf("last error after recovery: %q", st.LastError)
		}
	})
}

func TestNoDataRetriesWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixtureWith(t, func(c *Config) { c.Timers.Initial = time.Second; c.Timers.MaxRetry = 8 * time.Second },
			func(p *primary) { p.refuse = true })
		synctest.Wait()
		base := f.p.queries.Load()
		time.Sleep(60 * time.Second)
		synctest.Wait()
		// Waits 1,2,4,8,8,8... after each failure: about 9 attempts in 60s.
		if n := f.p.queries.Load() - base; n < 7 || n > 10 {
			t.Errorf("%d attempts in 60s with backoff 1s..8s", n)
		}
		if _, ok := f.m.States()[origin]; ok {
			t.Error("a zone without data is in States")
		}
		check := &health.ZoneCheck{Want: f.m.Names, Loaded: healthStates(f.m)}
		if err := check.Check(t.Context()); err == nil || !strings.Contains(err.Error(), "not loaded") {
			t.Errorf("ZoneCheck = %v, want not loaded", err)
		}
	})
}

func TestNotifyBurstCoalesces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, nil)
		synctest.Wait()
		soas := f.p.soas.Load()
		f.p.set(makeZone(t, 2))
		// Each answer takes a second (of the bubble's clock, which stands
		// still while this goroutine sends), so the whole burst arrives
		// while the first refresh is in progress.
		f.p.with(func(p *primary) { p.delay = time.Second })
		for range 100 {
			f.notify()
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		f.wantServed(2)
		if n := f.p.soas.Load() - soas; n < 1 || n > 2 {
			t.Errorf("a burst of 100 NOTIFY made %d refreshes, want 1 or 2", n)
		}
	})
}

func TestRestartFromDiskWithoutPrimary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, nil)
		synctest.Wait()
		f.p.set(makeZone(t, 7, "kept.example.com. 300 IN AAAA 2001:db8::7"))
		f.notify()
		synctest.Wait()
		f.wantServed(7)
		want := dump(t, f.p.current(origin))
		f.stop()
		if err := f.p.srv.Shutdown(); err != nil {
			t.Fatal(err)
		}

		// Served from disk by New, before Run and without the primary.
		m, err := New(f.cfg, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		if got := dump(t, served(m, origin)); got != want {
			t.Fatalf("after restart served\n%s\nwant\n%s", got, want)
		}
		f.m = m
		f.start() // a second Manager on the same directory, Run without primary
		synctest.Wait()
		f.wantServed(7)
		if st := f.m.Status()[0]; st.LastError == "" || st.Primary != primaryAddr {
			t.Errorf("status after a failed refresh from disk: %+v", st)
		}
		f.stop()

		// Restarted after the expire time: loaded, expired (answered
		// SERVFAIL) and unconfirmed until a refresh attempt ends.
		time.Sleep(86400 * time.Second)
		m, err = New(f.cfg, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		if _, expired := m.ZoneSets(); len(m.Zones()) != 0 || len(expired) != 1 || !m.States()[origin].Expired || !m.States()[origin].Unconfirmed {
			t.Errorf("expired on disk: zones %d, expired %d, states %+v; want it expired and unconfirmed", len(m.Zones()), len(expired), m.States())
		}
	})
}

func TestBadTSIGRejected(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(f *fixture)
		secret string // the Manager's secret
		want   error
		errSub string
	}{
		{"primary signs with another secret", func(f *fixture) {}, testSecret, ErrTSIG, "dns: bad signature"},
		{"manager has another secret", nil, otherSecret, ErrRcode, "NOTAUTH"},
		{"primary does not sign", func(f *fixture) { f.p.with(func(p *primary) { p.unsigned = true }) }, testSecret, ErrTSIG, "not signed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				pn := &pipeNet{}
				signWith := ""
				if tt.name == "primary signs with another secret" {
					signWith = otherSecret
				}
				p := newPrimary(t, pn.listen(primaryAddr), makeZone(t, 1), signWith)
				f := &fixture{t: t, net: pn, p: p}
				if tt.setup != nil {
					tt.setup(f)
				}
				f.cfg = Config{
					DataDir: t.TempDir(), Keys: []tsig.Key{{Name: testKey, Algorithm: "hmac-sha256", Secret: tt.secret}},
					Zones: []Zone{{Name: origin, Primaries: []Primary{{Addr: mustAddrPort(primaryAddr), Key: testKey}}}},
					Dial:  pn.dial,
				}
				f.start()
				synctest.Wait()
				f.wantServed(0)
				st := f.m.Status()[0]
				if !strings.Contains(st.LastError, tt.errSub) {
					t.Errorf("last error %q, want it to contain %q", st.LastError, tt.errSub)
				}
				_, err := f.m.client.soa(t.Context(), f.cfg.Zones[0].Primaries[0], origin)
				if !errors.Is(err, tt.want) {
					t.Errorf("soa query error %v, want %v", err, tt.want)
				}
			})
		})
	}
}

func TestInvalidTransferKeepsServing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, nil)
		synctest.Wait()
		f.wantServed(1)
		old := dump(t, served(f.m, origin))
		cname, err := dns.NewRR("host0.example.com. 300 IN CNAME elsewhere.example.net.")
		if err != nil {
			t.Fatal(err)
		}
		f.p.with(func(p *primary) { p.inject = []dns.RR{cname} })
		f.p.set(makeZone(t, 2))
		f.notify()
		synctest.Wait()
		f.wantServed(1)
		if got := dump(t, served(f.m, origin)); got != old {
			t.Errorf("served zone changed after an invalid transfer")
		}
		st := f.m.Status()[0]
		if !strings.Contains(st.LastError, "CNAME") {
			t.Errorf("last error %q does not name the problem", st.LastError)
		}
		// The IXFR result failed, then the AXFR fallback did too.
		if n := counter(t, f.m.met.transfers.WithLabelValues("ixfr", "invalid")); n != 1 {
			t.Errorf("ixfr invalid = %v, want 1", n)
		}
		if n := counter(t, f.m.met.transfers.WithLabelValues("axfr", "invalid")); n != 1 {
			t.Errorf("axfr invalid = %v, want 1", n)
		}
		// What is on disk is still the valid version.
		f.stop()
		m, err := New(f.cfg, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		if got := dump(t, served(m, origin)); got != old {
			t.Errorf("persisted zone changed after an invalid transfer")
		}

		// Fixed on the primary: the next retry takes it.
		f.m = m
		f.p.with(func(p *primary) { p.inject = nil })
		f.start()
		synctest.Wait()
		f.wantServed(2)
	})
}

func TestIXFRFallbacks(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(p *primary)
		wantIXFR float64 // ixfr ok
		wantAXFR float64 // axfr ok (AXFR-style answers to IXFR included)
		axfrs    int64   // AXFR queries after the initial one
	}{
		{"incremental", func(p *primary) {}, 1, 0, 0},
		{"primary answers AXFR-style", func(p *primary) { p.noIXFR = true }, 0, 1, 0},
		{"primary lost the history", func(p *primary) { p.versions[origin] = p.versions[origin][1:] }, 0, 1, 0},
		{"diverged: deletes a record we lack", func(p *primary) { p.brokenIXFR = true }, 0, 1, 1},
		{"single message per record", func(p *primary) { p.perMsg = 1 }, 1, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFixture(t, nil)
				synctest.Wait()
				f.p.set(makeZone(t, 2, "a.example.com. 60 IN TXT \"v2\""))
				f.p.set(makeZone(t, 3, "a.example.com. 60 IN TXT \"v3\"", "b.example.com. 60 IN MX 10 mail.example.com."))
				f.p.with(tt.setup)
				axfrs := f.p.axfrs.Load()
				ok := func(typ string) float64 { return counter(t, f.m.met.transfers.WithLabelValues(typ, "ok")) }
				base := ok("axfr")
				f.notify()
				synctest.Wait()
				f.wantServed(3)
				f.wantSameAsPrimary()
				if got := ok("ixfr"); got != tt.wantIXFR {
					t.Errorf("ixfr ok = %v, want %v", got, tt.wantIXFR)
				}
				if got := ok("axfr") - base; got != tt.wantAXFR {
					t.Errorf("axfr ok = %v, want %v", got, tt.wantAXFR)
				}
				if got := f.p.axfrs.Load() - axfrs; got != tt.axfrs {
					t.Errorf("%d AXFR queries, want %d", got, tt.axfrs)
				}
			})
		})
	}
}

func TestIXFRUpToDateAndOlderPrimary(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, nil)
		synctest.Wait()
		pr := f.cfg.Zones[0].Primaries[0]
		res, err := f.m.client.transfer(t.Context(), pr, origin, served(f.m, origin).SOA())
		if err != nil || res.kind != kindUpToDate {
			t.Fatalf("IXFR at the current serial: %v, %v; want up-to-date", res, err)
		}
		// A primary that went back to an older serial is not followed.
		f.p.set(makeZone(t, 5))
		f.notify()
		synctest.Wait()
		f.wantServed(5)
		f.p.set(makeZone(t, 4))
		f.notify()
		synctest.Wait()
		f.wantServed(5)
		if st := f.m.Status()[0]; st.LastError != "" {
			t.Errorf("an older primary serial is not an error: %q", st.LastError)
		}
	})
}

func TestSecondPrimaryUsedWhenFirstFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, func(c *Config) {
			c.Zones[0].Primaries = append([]Primary{{Addr: mustAddrPort("192.0.2.99:53"), Key: testKey}}, c.Zones[0].Primaries...)
		})
		synctest.Wait()
		f.wantServed(1)
		if st := f.m.Status()[0]; st.Primary != primaryAddr {
			t.Errorf("source primary %q, want %s", st.Primary, primaryAddr)
		}
	})
}

func TestPersistedFiles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, nil)
		synctest.Wait()
		dir := filepath.Join(f.cfg.DataDir, "zones")
		var names []string
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(dir, path)
				names = append(names, rel)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		zonePath, statePath := f.m.store.zonePath(origin), f.m.store.statePath(origin)
		want := []string{statePath[len(dir)+1:], zonePath[len(dir)+1:]}
		if !slices.Equal(names, want) {
			t.Errorf("data dir holds %v, want the zone and state files only, %v", names, want)
		}
		f.stop()

		// Files of the flat layout of earlier versions are read, and
		// removed with the zone.
		legacy := f.m.store.legacyPaths(origin)
		for i, p := range []string{zonePath, statePath} {
			if err := os.Rename(p, legacy[i]); err != nil {
				t.Fatal(err)
			}
		}
		m, err := New(f.cfg, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Zones()) != 1 {
			t.Errorf("flat layout: %d zones served, want 1", len(m.Zones()))
		}
		if err := m.store.remove(origin); err != nil {
			t.Fatal(err)
		}
		for _, p := range legacy {
			if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s after remove: %v, want deleted", p, err)
			}
		}

		// A damaged zone file is reported and the zone waits for a transfer.
		if err := os.WriteFile(statePath, []byte(`{"zone":"example.com."}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(zonePath, []byte("garbage\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		m, err = New(f.cfg, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Zones()) != 0 || counter(t, m.met.persistErrors) != 1 {
			t.Errorf("damaged file: zones %d, persist errors %v", len(m.Zones()), counter(t, m.met.persistErrors))
		}
		if _, _, err := m.store.load("missing.example."); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("load of a zone never stored: %v, want ErrNotExist", err)
		}
	})
}

// A NOTIFY whose SOA serial the node already has does not make the zone ask
// its primary again (a control plane re-sending NOTIFYs for 10,000 zones
// would cost 10,000 SOA queries); a newer serial does.
func TestNotifyForCurrentSerial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, nil)
		synctest.Wait()
		f.wantServed(1)
		withSerial := func(serial uint32) []byte {
			m := new(dns.Msg)
			m.SetNotify(origin)
			m.Answer = []dns.RR{&dns.SOA{Hdr: dns.RR_Header{Name: origin, Rrtype: dns.TypeSOA, Class: dns.ClassINET},
				Ns: "ns.example.com.", Mbox: "h.example.com.", Serial: serial}}
			m.SetTsig(testKey, dns.HmacSHA256, 300, time.Now().Unix())
			out, _, err := dns.TsigGenerate(m, testSecret, "", false)
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		send := func(serial uint32) {
			t.Helper()
			var r dns.Msg
			if err := r.Unpack(f.m.Notify(withSerial(serial), mustAddrPort(primaryAddr))); err != nil || r.Rcode != dns.RcodeSuccess {
				t.Fatalf("notify of serial %d answered %s (%v)", serial, dns.RcodeToString[r.Rcode], err)
			}
			synctest.Wait()
		}
		soas := f.p.soas.Load()
		send(1)
		if n := f.p.soas.Load() - soas; n != 0 {
			t.Errorf("%d SOA queries after a NOTIFY of the serial served, want 0", n)
		}
		f.p.set(makeZone(t, 2))
		send(2)
		f.wantServed(2)
	})
}

// With the default jitter, refresh and retry intervals are shortened by at
// most a tenth, differently for each zone, so that zones transferred
// together do not refresh together.
func TestRefreshJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.Timers.Jitter = 0 })
		synctest.Wait()
		f.wantServed(1)
		st := f.m.Status()[0]
		if d := st.NextRefresh.Sub(st.LastRefresh); d < 3240*time.Second || d > 3600*time.Second {
			t.Errorf("next refresh %v after the transfer, want 54m..1h (SOA refresh 1h, jitter 10%%)", d)
		}
	})
	tm := Timers{}
	tm.defaults()
	seen := map[time.Duration]bool{}
	for range 100 {
		d := tm.jitter(time.Hour)
		if d < 54*time.Minute || d > time.Hour {
			t.Fatalf("jitter(1h) = %v, want 54m..1h", d)
		}
		seen[d] = true
	}
	if len(seen) < 50 {
		t.Errorf("jitter(1h) gave %d distinct values in 100 draws", len(seen))
	}
	if d := (&Timers{Jitter: -1}).jitter(time.Hour); d != time.Hour {
		t.Errorf("jitter off: %v, want 1h", d)
	}
}
