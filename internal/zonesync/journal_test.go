package zonesync

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"testing/synctest"
	"time"

	"github.com/anycastdns/anycastdns/internal/zone"
)

// TestJournal: the versions an IXFR makes of a large zone go to its
// journal, not a new zone file; a restart serves the newest version (zone
// file and journal); a torn end of the journal is cut off and a journal of
// another zone file ignored; a journal that outgrows its share of the
// zone file, or a version from an AXFR, makes a new zone file and removes
// the journal.
func TestJournal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dataDir := t.TempDir()
		st, err := newStore(dataDir)
		if err != nil {
			t.Fatal(err)
		}
		hosts := make([]string, 40) // a zone file of about 2 KB
		for i := range hosts {
			hosts[i] = "h" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + ".example.com. 300 IN A 192.0.2.1"
		}
		v7 := makeZone(t, 7, hosts...)
		saved, err := st.save(v7, state{Zone: origin, Serial: 7, LastRefresh: time.Now(), Primary: primaryAddr})
		if err != nil {
			t.Fatal(err)
		}
		zoneFile, err := os.ReadFile(st.zonePath(origin))
		if err != nil {
			t.Fatal(err)
		}
		// The size the next change is measured against (a running
		// node's, without a load in between).
		if saved.FileBytes != int64(len(zoneFile)) {
			t.Fatalf("save: FileBytes %d, the file has %d", saved.FileBytes, len(zoneFile))
		}
		pn := &pipeNet{}
		p := newPrimary(t, pn.listen(primaryAddr), v7, "")
		cfg := Config{DataDir: dataDir, Keys: testKeys(), Dial: pn.dial, Timers: Timers{Jitter: -1},
			Zones: []Zone{{Name: origin, Primaries: []Primary{{Addr: mustAddrPort(primaryAddr), Key: testKey}}}}}
		// refresh runs a manager (with journals from 1 KB) until its first
		// refresh is done.
		refresh := func(t *testing.T) {
			t.Helper()
			m, err := New(cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			m.store.journalMin = 1 << 10
			runIdle(t, m)
			if got, want := dump(t, served(m, origin)), dump(t, p.current(origin)); got != want {
				t.Fatalf("served:\n%s\nwant the primary's:\n%s", got, want)
			}
		}
		// loaded is what a restart serves.
		loaded := func(t *testing.T, wantSerial uint32) state {
			t.Helper()
			z, s, err := st.load(origin)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if z.Serial != wantSerial || dump(t, z) != dump(t, p.current(origin)) {
				t.Fatalf("loaded serial %d, want %d:\n%s", z.Serial, wantSerial, dump(t, z))
			}
			return s
		}
		sameFile := func(t *testing.T, want bool) {
			t.Helper()
			b, err := os.ReadFile(st.zonePath(origin))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(b, zoneFile) != want {
				t.Fatalf("zone file unchanged: %v, want %v", !want, want)
			}
		}
		journal := func(t *testing.T) []byte {
			t.Helper()
			b, err := os.ReadFile(st.journalPath(origin))
			if err != nil {
				t.Fatal(err)
			}
			return b
		}

		refresh(t) // up to date: nothing written but the state
		if _, err := os.Stat(st.journalPath(origin)); err == nil {
			t.Fatal("a journal without a change")
		}
		p.set(makeZone(t, 8, append(hosts, "new.example.com. 300 IN A 192.0.2.99")...))
		refresh(t)
		p.set(makeZone(t, 9, append(hosts[1:], "new.example.com. 300 IN A 192.0.2.98")...))
		refresh(t)
		sameFile(t, true)
		s := loaded(t, 9)
		if s.JournalBytes == 0 || s.FileBytes != int64(len(zoneFile)) {
			t.Errorf("state %+v", s)
		}

		// A torn end is cut off.
		good := journal(t)
		if err := os.WriteFile(st.journalPath(origin), append(bytes.Clone(good), 0, 0, 1, 7, 9), 0o600); err != nil {
			t.Fatal(err)
		}
		loaded(t, 9)
		if !bytes.Equal(journal(t), good) {
			t.Error("the torn end was not cut off")
		}
		// The last entry cut short: the version before it.
		if err := os.WriteFile(st.journalPath(origin), good[:len(good)-3], 0o600); err != nil {
			t.Fatal(err)
		}
		if z, _, err := st.load(origin); err != nil || z.Serial != 8 {
			t.Errorf("last entry torn: serial %v, %v; want 8", z, err)
		}
		if err := os.WriteFile(st.journalPath(origin), good, 0o600); err != nil {
			t.Fatal(err)
		}

		// Changes until the journal outgrows a quarter of the file: then
		// a new zone file and no journal.
		serial := uint32(9)
		for len(journal(t)) < len(zoneFile)/journalShare {
			serial++
			p.set(makeZone(t, serial, append(hosts[1:], "new.example.com. 300 IN TXT \"v"+string(rune('a'+serial%26))+"\"")...))
			refresh(t)
			sameFile(t, true)
		}
		serial++
		p.set(makeZone(t, serial, hosts[2:]...))
		refresh(t)
		sameFile(t, false)
		if _, err := os.Stat(st.journalPath(origin)); err == nil {
			t.Error("journal left beside the new zone file")
		}
		loaded(t, serial)

		// A journal of another zone file is ignored and removed.
		if err := os.WriteFile(st.journalPath(origin), good, 0o600); err != nil {
			t.Fatal(err)
		}
		loaded(t, serial)
		if _, err := os.Stat(st.journalPath(origin)); err == nil {
			t.Error("stale journal kept")
		}

		// An AXFR's version (not made from the one on disk) is written
		// whole.
		zoneFile, err = os.ReadFile(st.zonePath(origin))
		if err != nil {
			t.Fatal(err)
		}
		p.mu.Lock()
		p.noIXFR = true
		p.mu.Unlock()
		serial++
		p.set(makeZone(t, serial, hosts...))
		refresh(t)
		sameFile(t, false)
		loaded(t, serial)
	})
}

// TestJournalEntry: an entry decodes to what was encoded; one cut short
// anywhere, or with a byte changed, is torn.
func TestJournalEntry(t *testing.T) {
	rr := func(name string, ttl uint32, rdata ...byte) zone.RR {
		w, err := zone.NameWire(name)
		if err != nil {
			t.Fatal(err)
		}
		return zone.RR{Name: w, Type: 1, TTL: ttl, Rdata: rdata}
	}
	del := []zone.RR{rr("a.example.", 300, 192, 0, 2, 1)}
	add := []zone.RR{rr("a.example.", 60, 192, 0, 2, 2), rr("b.example.", 0)}
	e, err := journalEntry(7, 8, del, add)
	if err != nil {
		t.Fatal(err)
	}
	from, to, d, a, n, err := decodeEntry(append(bytes.Clone(e), 1, 2, 3))
	if err != nil || from != 7 || to != 8 || n != len(e) || len(d) != 1 || len(a) != 2 ||
		d[0].Key() != del[0].Key() || a[0].TTL != 60 || a[1].Key() != add[1].Key() {
		t.Fatalf("decoded %d %d %v %v %d %v", from, to, d, a, n, err)
	}
	for i := range len(e) {
		if _, _, _, _, _, err := decodeEntry(e[:i]); !errors.Is(err, errTorn) {
			t.Errorf("cut at %d: %v", i, err)
		}
		b := bytes.Clone(e)
		b[i] ^= 0x10
		if _, _, _, _, _, err := decodeEntry(b); err == nil {
			t.Errorf("byte %d changed: decoded", i)
		}
	}
}

// TestRefreshWaitsForSmallZonesOnly: a refresh waits for its version to be
// written only when the zone has at most waitMaxRecords records; a larger
// one's write (whole, after an AXFR: seconds for a large zone) goes on in
// the background while the next refresh may begin.
func TestRefreshWaitsForSmallZonesOnly(t *testing.T) {
	cfg := Config{DataDir: t.TempDir(), Keys: testKeys(),
		Zones: []Zone{{Name: origin, Primaries: []Primary{{Addr: mustAddrPort(primaryAddr), Key: testKey}}}}}
	m, err := New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	s := m.zones[origin]
	hosts := make([]string, waitMaxRecords)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("h%d.example.com. 300 IN A 192.0.2.1", i)
	}
	for _, tt := range []struct {
		name string
		z    *zone.Zone
		wait bool
	}{
		{"small", makeZone(t, 1), true},
		{"large", makeZone(t, 2, hosts...), false},
	} {
		s.mu.Lock() // the write waits for it
		returned := make(chan struct{})
		go func() {
			s.persist(tt.z, state{Zone: origin, Serial: tt.z.Serial}, true)
			close(returned)
		}()
		select {
		case <-returned:
			if tt.wait {
				t.Errorf("%s zone: persist returned before its version was written", tt.name)
			}
		case <-time.After(200 * time.Millisecond):
			if !tt.wait {
				t.Errorf("%s zone (%d records): persist waited for the write", tt.name, tt.z.Records)
			}
		}
		s.mu.Unlock()
		<-returned
		s.waitPersisted()
		if z, _, err := m.store.load(origin); err != nil || z.Serial != tt.z.Serial {
			t.Errorf("%s zone: on disk %v, %v; want serial %d", tt.name, z, err, tt.z.Serial)
		}
	}
}
