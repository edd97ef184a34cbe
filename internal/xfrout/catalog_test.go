package xfrout

import (
	"crypto/sha1" //nolint:gosec // the member id convention
	"encoding/hex"
	"errors"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	testkit.Golden(t, filepath.Join("testdata", name), []byte(got))
}

func TestCatalogGolden(t *testing.T) {
	members := []string{"example.com.", "example.net.", "sub.example.org.", "xn--bcher-kva.example.", "zz.test."}
	z, err := buildCatalog("catalog.invalid.", 2024010100, members)
	if err != nil {
		t.Fatal(err)
	}
	rrs, err := z.RRs()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, rr := range rrs {
		b.WriteString(strings.ReplaceAll(rr.String(), "\t", " "))
		b.WriteByte('\n')
	}
	golden(t, "catalog.golden", b.String())

	// The ids are the SHA-1 of the member's wire name (the convention of
	// BIND's documentation), so that another implementation agrees.
	sum := sha1.Sum([]byte("\x07example\x03com\x00")) //nolint:gosec // see above
	if id := memberID("Example.COM."); id != hex.EncodeToString(sum[:]) {
		t.Errorf("memberID(example.com.) = %s, want %x", id, sum)
	}
	if !strings.Contains(b.String(), memberID("example.com.")+".zones.catalog.invalid. 0 IN PTR example.com.") {
		t.Error("no PTR of example.com. under its id")
	}
}

func TestCatalogVersions(t *testing.T) {
	now := time.Unix(1000, 0)
	c := newCatalog("Catalog.Invalid", 2, func() time.Time { return now })
	if c.current() != nil {
		t.Fatal("catalog before its first update")
	}
	if _, err := c.changes(1); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("changes before the first update: %v, want ErrNotFound", err)
	}
	step := func(members []string, wantChanged bool, wantSerial uint32) {
		t.Helper()
		changed, err := c.update(members)
		if err != nil {
			t.Fatal(err)
		}
		if changed != wantChanged || c.current().Serial != wantSerial {
			t.Fatalf("update(%v) changed=%t serial %d, want %t %d", members, changed, c.current().Serial, wantChanged, wantSerial)
		}
	}
	step([]string{"b.", "a."}, true, 1000)        // the clock
	step([]string{"a.", "b.", "a."}, false, 1000) // same list
	step([]string{"a.", "b.", "c."}, true, 1001)  // same second: +1
	now = time.Unix(5000, 0)
	step([]string{"a.", "c."}, true, 5000) // the clock again

	got, err := c.changes(1000)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"-catalog.invalid. 0 IN SOA invalid. invalid. 1000 60 30 2147483646 0",
		"+catalog.invalid. 0 IN SOA invalid. invalid. 1001 60 30 2147483646 0",
		"+" + memberID("c.") + ".zones.catalog.invalid. 0 IN PTR c.",
		"-catalog.invalid. 0 IN SOA invalid. invalid. 1001 60 30 2147483646 0",
		"-" + memberID("b.") + ".zones.catalog.invalid. 0 IN PTR b.",
		"+catalog.invalid. 0 IN SOA invalid. invalid. 5000 60 30 2147483646 0",
	}
	if diff := cmp.Diff(want, changeStrings(got)); diff != "" {
		t.Errorf("changes from 1000 (-want +got):\n%s", diff)
	}
	if got, err := c.changes(5000); err != nil || len(got) != 0 {
		t.Errorf("changes from the current serial: %v, %v; want none", got, err)
	}
	if _, err := c.changes(999); !errors.Is(err, store.ErrNoJournal) {
		t.Errorf("changes from an unknown serial: %v, want ErrNoJournal", err)
	}
	// The journal keeps 2 changes: 1000 falls out.
	step([]string{"a."}, true, 5001)
	if _, err := c.changes(1000); !errors.Is(err, store.ErrNoJournal) {
		t.Errorf("changes from a trimmed serial: %v, want ErrNoJournal", err)
	}
	if got, err := c.changes(1001); err != nil || len(got) != 2 {
		t.Errorf("changes from 1001: %d changes, %v; want 2", len(got), err)
	}
	// A clock that went back does not make the serial go back.
	now = time.Unix(10, 0)
	step([]string{"a.", "d."}, true, 5002)
}

// TestCatalogServed runs the catalog through the server: AXFR, new versions
// on zone creation and deletion (not on other changes), IXFR between them
// and their NOTIFYs.
func TestCatalogServed(t *testing.T) {
	src := newMemSource()
	src.set(t, makeZone(t, "example.com.", 1, 2))
	src.set(t, makeZone(t, "example.org.", 1, 2))
	rcv := startReceiver(t, 0, dns.RcodeSuccess, nil)
	cfg := aclConfig()
	cfg.Catalog = "catalog.invalid."
	cfg.CatalogDelay = 20 * time.Millisecond
	cfg.Notify = []NotifyTarget{{Addr: rcv.addr}}
	s, addr := startServer(t, cfg, src)
	const cat = "catalog.invalid."

	catalogSerial := func() uint32 {
		m, _, err := exchangeUDP(t, addr, soaQuery(cat), signA)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Answer) != 1 {
			t.Fatalf("catalog SOA query: %v", m)
		}
		return m.Answer[0].(*dns.SOA).Serial
	}
	members := func() []string {
		resp, err := exchangeTCP(t, addr, axfrQuery(cat), signA)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, rr := range resp.records() {
			if p, ok := rr.(*dns.PTR); ok {
				out = append(out, p.Ptr)
			}
		}
		slices.Sort(out)
		return out
	}
	s1 := catalogSerial()
	if diff := cmp.Diff([]string{"example.com.", "example.org."}, members()); diff != "" {
		t.Errorf("members (-want +got):\n%s", diff)
	}
	rcv.waitFor(t, cat, s1)

	// A change of a member is not a catalog change, but is notified.
	src.set(t, makeZone(t, "example.com.", 2, 3))
	rcv.waitFor(t, "example.com.", 2)

	src.set(t, makeZone(t, "example.net.", 1, 2))
	waitFor(t, "a new catalog version", func() bool { return catalogSerial() != s1 })
	s2 := catalogSerial()
	rcv.waitFor(t, cat, s2)
	if diff := cmp.Diff([]string{"example.com.", "example.net.", "example.org."}, members()); diff != "" {
		t.Errorf("members after a creation (-want +got):\n%s", diff)
	}
	src.remove("example.org.")
	waitFor(t, "a new catalog version", func() bool { return catalogSerial() != s2 })
	s3 := catalogSerial()
	rcv.waitFor(t, cat, s3)

	resp, err := exchangeTCP(t, addr, ixfrQuery(cat, s1), signA)
	if err != nil {
		t.Fatal(err)
	}
	_, changes, axfrStyle := parseIXFR(t, resp.records())
	if axfrStyle || len(changes) != 2 {
		t.Fatalf("IXFR of the catalog from %d: axfr-style=%t, %d changes; want 2", s1, axfrStyle, len(changes))
	}
	want := []string{
		"-catalog.invalid. 0 IN SOA invalid. invalid. " + serialText(s1) + " 60 30 2147483646 0",
		"+catalog.invalid. 0 IN SOA invalid. invalid. " + serialText(s2) + " 60 30 2147483646 0",
		"+" + memberID("example.net.") + ".zones.catalog.invalid. 0 IN PTR example.net.",
		"-catalog.invalid. 0 IN SOA invalid. invalid. " + serialText(s2) + " 60 30 2147483646 0",
		"-" + memberID("example.org.") + ".zones.catalog.invalid. 0 IN PTR example.org.",
		"+catalog.invalid. 0 IN SOA invalid. invalid. " + serialText(s3) + " 60 30 2147483646 0",
	}
	if diff := cmp.Diff(want, changeStrings(changes)); diff != "" {
		t.Errorf("catalog IXFR (-want +got):\n%s", diff)
	}
	if got := counter(t, s, "anycastd_xfrout_catalog_members", nil); got != 2 {
		t.Errorf("catalog_members = %v, want 2", got)
	}
	if got := counter(t, s, "anycastd_xfrout_catalog_serial", nil); got != float64(s3) {
		t.Errorf("catalog_serial = %v, want %d", got, s3)
	}
}

func serialText(s uint32) string { return strconv.FormatUint(uint64(s), 10) }

func TestCatalogWait(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		last time.Time
		now  time.Time
		want time.Duration
	}{
		{"first change ever", time.Time{}, t0, 0},
		{"last version long ago", t0, t0.Add(time.Minute), 0},
		{"last version just now", t0, t0.Add(300 * time.Millisecond), 700 * time.Millisecond},
		{"exactly one delay later", t0, t0.Add(time.Second), 0},
	} {
		if got := catalogWait(tc.last, tc.now, time.Second); got != tc.want {
			t.Errorf("%s: wait %v, want %v", tc.name, got, tc.want)
		}
	}
}
