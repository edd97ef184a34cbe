package zonesync

import (
	"encoding/json"
	"log/slog"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestPersistedZoneVerification: a persisted zone is served at start only
// when its file matches the checksum and record count of its state. A file
// cut at a line boundary (still valid master-file syntax), altered, or at
// odds with its state is discarded with a warning naming the file and
// transferred again in full; it is never served, and no IXFR is applied to
// it. A state without a checksum (written by an earlier version) is served
// but refreshed by AXFR, not IXFR. Each run ends serving what the primary
// has, with a state that vouches for the file.
func TestPersistedZoneVerification(t *testing.T) {
	// cut drops the last n lines of the zone file.
	cut := func(n int) func(t *testing.T, st *store) {
		return func(t *testing.T, st *store) {
			path := st.zonePath(origin)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.SplitAfter(string(b), "\n")
			lines = lines[:len(lines)-1-n] // the split leaves "" after the last newline
			if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	alter := func(t *testing.T, st *store) {
		path := st.zonePath(origin)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(strings.Replace(string(b), "10.0.0.15", "10.0.0.51", 1)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// editState rewrites the state file's JSON fields.
	editState := func(edit func(map[string]any)) func(t *testing.T, st *store) {
		return func(t *testing.T, st *store) {
			path := st.statePath(origin)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			m := map[string]any{}
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			edit(m)
			if b, err = json.Marshal(m); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	stripSum := editState(func(m map[string]any) { delete(m, "sha256"); delete(m, "records") })
	tests := []struct {
		name       string
		damage     []func(*testing.T, *store)
		wantServed bool // from disk, before any transfer
		wantWarn   bool // the discarded file is named in a warning
		wantIXFR   bool // refreshed with IXFR (else AXFR)
	}{
		{name: "intact", wantServed: true, wantIXFR: true},
		{name: "cut at a line boundary", damage: []func(*testing.T, *store){cut(5)}, wantWarn: true},
		{name: "record altered", damage: []func(*testing.T, *store){alter}, wantWarn: true},
		{name: "record count wrong", damage: []func(*testing.T, *store){editState(func(m map[string]any) { m["records"] = 3 })}, wantWarn: true},
		{name: "no checksum (earlier version)", damage: []func(*testing.T, *store){stripSum}, wantServed: true},
		// Served as it is (an earlier version wrote it with fsync and
		// rename), but the IXFR that would build on the cut copy is
		// not made.
		{name: "no checksum and cut", damage: []func(*testing.T, *store){cut(5), stripSum}, wantServed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dataDir := t.TempDir()
				st, err := newStore(dataDir)
				if err != nil {
					t.Fatal(err)
				}
				v7 := makeZone(t, 7, "kept.example.com. 300 IN AAAA 2001:db8::7")
				if _, err := st.save(v7, state{Zone: origin, Serial: 7, LastRefresh: time.Now(), Primary: primaryAddr}); err != nil {
					t.Fatal(err)
				}
				for _, d := range tt.damage {
					d(t, st)
				}
				pn := &pipeNet{}
				p := newPrimary(t, pn.listen(primaryAddr), v7, "")
				// Version 8 only adds a record: an IXFR from 7 applies
				// cleanly even to a cut copy.
				p.set(makeZone(t, 8, "kept.example.com. 300 IN AAAA 2001:db8::7", "new.example.com. 300 IN A 192.0.2.99"))

				rec := &recordLog{}
				cfg := Config{DataDir: dataDir, Keys: testKeys(), Dial: pn.dial, Timers: Timers{Jitter: -1},
					Zones: []Zone{{Name: origin, Primaries: []Primary{{Addr: mustAddrPort(primaryAddr), Key: testKey}}}}}
				m, err := New(cfg, slog.New(rec))
				if err != nil {
					t.Fatal(err)
				}
				if got := served(m, origin) != nil; got != tt.wantServed {
					t.Errorf("served from disk: %v, want %v", got, tt.wantServed)
				}
				warns := rec.find("persisted zone discarded")
				if got := len(warns) == 1 && strings.HasPrefix(warns[0], "WARN") && strings.Contains(warns[0], st.zonePath(origin)); got != tt.wantWarn {
					t.Errorf("warning naming %s: %v, want %v (records %q)", st.zonePath(origin), got, tt.wantWarn, warns)
				}

				runIdle(t, m)

				if got, want := dump(t, served(m, origin)), dump(t, p.current(origin)); got != want {
					t.Errorf("served after the refresh:\n%s\nwant the primary's:\n%s", got, want)
				}
				ixfrs, axfrs := p.ixfrs.Load(), p.axfrs.Load()
				if tt.wantIXFR && (ixfrs != 1 || axfrs != 0) || !tt.wantIXFR && (ixfrs != 0 || axfrs != 1) {
					t.Errorf("%d IXFR and %d AXFR, want IXFR %v", ixfrs, axfrs, tt.wantIXFR)
				}
				// The new state vouches for the new file: a restart
				// serves it.
				z, after, err := st.load(origin)
				if err != nil || after.SHA256 == "" || after.Records != z.Records || z.Serial != 8 {
					t.Fatalf("reloaded: %v, state %+v", err, after)
				}
			})
		})
	}
}
