package zonesync

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/zone"
)

const catName = "catalog.invalid."

// catalogZone builds a catalog of schema version with members "id=zone".
func catalogZone(t testing.TB, serial uint32, version string, members ...string) *zone.Zone {
	t.Helper()
	lines := []string{
		fmt.Sprintf("%s 0 IN SOA invalid. invalid. %d 3600 600 86400 0", catName, serial),
		catName + " 0 IN NS invalid.",
	}
	if version != "" {
		lines = append(lines, fmt.Sprintf("version.%s 0 IN TXT %q", catName, version))
	}
	group := map[string]bool{}
	for _, m := range members {
		id, name, _ := strings.Cut(m, "=")
		lines = append(lines, fmt.Sprintf("%s.zones.%s 0 IN PTR %s", id, catName, name))
		if !group[id] {
			group[id] = true
			lines = append(lines, fmt.Sprintf("group.%s.zones.%s 0 IN TXT \"g\"", id, catName))
		}
	}
	z, err := zone.FromRecords(catName, rrs(t, lines...), "test")
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func TestCatalogMembers(t *testing.T) {
	tests := []struct {
		name     string
		z        *zone.Zone
		want     []member
		problems int
		err      bool
	}{
		{"members", catalogZone(t, 1, "2", "m2=B.example", "m1=a.example."), []member{{"a.example.", "m1"}, {"b.example.", "m2"}}, 0, false},
		{"no version", catalogZone(t, 1, "", "m1=a.example."), nil, 0, true},
		{"version 1", catalogZone(t, 1, "1", "m1=a.example."), nil, 0, true},
		{"same zone twice keeps the first id", catalogZone(t, 1, "2", "m2=a.example.", "m1=a.example."), []member{{"a.example.", "m1"}}, 1, false},
		{"two PTRs for one id", catalogZone(t, 1, "2", "m1=a.example.", "m1=b.example."), nil, 1, false},
		{"unusable name", catalogZone(t, 1, "2", `m1=a\032b.example.`), nil, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, problems, err := catalogMembers(tt.z)
			if (err != nil) != tt.err || (err != nil && !errors.Is(err, ErrCatalog)) {
				t.Fatalf("err = %v, want error %t (ErrCatalog)", err, tt.err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(member{})); diff != "" {
				t.Errorf("members (-want +got):\n%s", diff)
			}
			if len(problems) != tt.problems {
				t.Errorf("problems %q, want %d", problems, tt.problems)
			}
		})
	}
}

// TestCatalogMemberNames checks that the consumer takes exactly the member
// names zone.ValidateZoneName accepts, the rule the API creates zones by,
// and says why it skips the others.
func TestCatalogMemberNames(t *testing.T) {
	for _, name := range []string{
		"a.example.", "0/25.2.0.192.in-addr.arpa.", "_x.example.", "com.",
		"*.test.", `a\.b.test.`, `a\000b.test.`, `a\@b.test.`, `x\ y.test.`,
	} {
		got, problems, err := catalogMembers(catalogZone(t, 1, "2", "m1="+name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if verr := zone.ValidateZoneName(name); verr == nil {
			if len(got) != 1 || len(problems) != 0 {
				t.Errorf("%s: members %v, problems %q; want it accepted", name, got, problems)
			}
		} else if len(got) != 0 || len(problems) != 1 || !strings.Contains(problems[0], verr.Error()) {
			t.Errorf("%s: members %v, problems %q; want it skipped with %q", name, got, problems, verr)
		}
	}
}

func TestCatalogConsumer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pn := &pipeNet{}
		p := newPrimary(t, pn.listen(primaryAddr), catalogZone(t, 1, "2", "m1=a.example.", "m2=b.example.", "m4=file.example."), "")
		for _, n := range []string{"a.example.", "b.example.", "c.example.", "file.example."} {
			p.set(makeZoneFor(t, n, 1))
		}
		f := &fixture{t: t, net: pn, p: p, cfg: Config{
			DataDir: t.TempDir(), Keys: testKeys(), Dial: pn.dial,
			Catalog:  &Catalog{Zone: catName, Primaries: []Primary{{Addr: mustAddrPort(primaryAddr), Key: testKey}}},
			Reserved: []string{"file.example."},
		}}
		// An empty node does not know its members until the catalog
		// arrives: health counts the catalog as not loaded.
		if m, err := New(f.cfg, testLogger(t)); err != nil || m.CatalogPending() != catName {
			t.Fatalf("empty node: CatalogPending() = %q, %v; want %s", m.CatalogPending(), err, catName)
		}
		var changes int
		f.start()
		f.m.OnChange(func() { changes++ })
		names := func() []string {
			var out []string
			for _, z := range f.m.Zones() {
				out = append(out, z.Origin)
			}
			slices.Sort(out)
			return out
		}
		check := func(want ...string) {
			t.Helper()
			if got := names(); !slices.Equal(got, want) {
				t.Fatalf("served %v, want %v", got, want)
			}
			if got := f.m.Names(); !slices.Equal(got, want) {
				t.Fatalf("Names() = %v, want %v", got, want)
			}
		}
		notifyCatalog := func() {
			t.Helper()
			resp := f.m.Notify(notifyMsg(t, catName, testKey, testSecret), mustAddrPort(primaryAddr))
			var r dns.Msg
			if err := r.Unpack(resp); err != nil || r.Rcode != dns.RcodeSuccess {
				t.Fatalf("catalog notify answered %s", dns.RcodeToString[r.Rcode])
			}
			synctest.Wait()
		}
		synctest.Wait()
		check("a.example.", "b.example.")
		if c := f.m.CatalogPending(); c != "" {
			t.Errorf("catalog transferred: CatalogPending() = %q, want none", c)
		}
		if changes == 0 {
			t.Error("OnChange not called for new members")
		}
		if st := f.m.Status(); len(st) != 3 || !st[2].Catalog || st[2].Name != catName || st[0].MemberOf != catName {
			t.Errorf("status %+v", st)
		}
		bFiles := []string{f.m.store.zonePath("b.example."), f.m.store.statePath("b.example.")}
		for _, file := range bFiles {
			if _, err := os.Stat(file); err != nil {
				t.Fatalf("member not persisted: %v", err)
			}
		}

		// b leaves, c joins.
		p.set(catalogZone(t, 2, "2", "m1=a.example.", "m5=c.example."))
		notifyCatalog()
		check("a.example.", "c.example.")
		for _, file := range bFiles {
			if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("removed member's file %s: %v, want deleted", file, err)
			}
		}

		// A catalog of the wrong schema version changes nothing.
		p.set(catalogZone(t, 3, "1", "m1=a.example."))
		notifyCatalog()
		check("a.example.", "c.example.")
		if n := counter(t, f.m.met.catalogErrors); n != 1 {
			t.Errorf("catalog errors = %v, want 1", n)
		}

		// A new unique id for a resets it: transferred afresh.
		axfrs := p.axfrs.Load()
		p.set(catalogZone(t, 4, "2", "m9=a.example.", "m5=c.example."))
		notifyCatalog()
		check("a.example.", "c.example.")
		// The catalog itself comes by IXFR; a.example. by AXFR although
		// its data on disk is current.
		if n := p.axfrs.Load() - axfrs; n != 1 {
			t.Errorf("%d AXFRs after the id change, want 1 (a.example.)", n)
		}

		// Restart without the primary: members come from disk at once, and
		// files of a member that left while the node was down are deleted.
		f.stop()
		if err := p.srv.Shutdown(); err != nil {
			t.Fatal(err)
		}
		stale := makeZoneFor(t, "b.example.", 1)
		if _, err := f.m.store.save(stale, state{Zone: "b.example.", Serial: 1, LastRefresh: time.Now(), Catalog: catName, MemberID: "m2"}); err != nil {
			t.Fatal(err)
		}
		m, err := New(f.cfg, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		f.m = m
		check("a.example.", "c.example.")
		if c := m.CatalogPending(); c != "" {
			t.Errorf("catalog on disk: CatalogPending() = %q, want none", c)
		}
		for _, file := range bFiles {
			if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("stale member's file %s: %v, want deleted at start", file, err)
			}
		}
	})
}

// TestCatalogKnownBeforeVisible: from the moment the catalog has data
// (CatalogPending no longer holds the node back) Names() lists every
// member, so a health check never sees an empty node as complete. It
// failed when the members were added after the catalog became visible:
// TestCatalog10k saw the prefix announced while 880 of 10,000 zones were
// served.
func TestCatalogKnownBeforeVisible(t *testing.T) {
	const n = 5000
	members := make([]string, n)
	for i := range members {
		members[i] = fmt.Sprintf("m%d=z%d.example.", i, i)
	}
	cat := catalogZone(t, 1, "2", members...)
	m, err := New(Config{
		DataDir: t.TempDir(), Keys: testKeys(),
		Catalog: &Catalog{Zone: catName, Primaries: []Primary{{Addr: mustAddrPort(primaryAddr), Key: testKey}}},
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	m.mu.RLock()
	s := m.zones[catName]
	m.mu.RUnlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.install(cat)
	}()
	for polls := 0; ; polls++ {
		select {
		case <-done:
			if got := len(m.Names()); got != n || m.CatalogPending() != "" {
				t.Fatalf("after install: %d members, CatalogPending() = %q; want %d, none", got, m.CatalogPending(), n)
			}
			t.Logf("%d polls during the install", polls)
			return
		default:
		}
		if m.CatalogPending() == "" {
			if got := len(m.Names()); got != n {
				t.Fatalf("catalog visible while %d of %d members were known", got, n)
			}
		}
	}
}
