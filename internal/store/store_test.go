package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"
	"go.uber.org/goleak"

	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/testkit/pgtest"
	"github.com/anycastdns/anycastdns/internal/zone"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(pgtest.Main(m))
}

var t0 = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func rrs(t testing.TB, lines ...string) []dns.RR {
	t.Helper()
	out := make([]dns.RR, len(lines))
	for i, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		out[i] = rr
	}
	return out
}

func baseZone(t testing.TB) []dns.RR {
	return rrs(t,
		"example.com. 3600 IN SOA ns1.example.com. hostmaster.example.com. 100 7200 3600 1209600 300",
		"example.com. 3600 IN NS ns1.example.com.",
		"ns1.example.com. 3600 IN A 192.0.2.1",
		"www.example.com. 300 IN A 192.0.2.10",
	)
}

func open(t testing.TB, dir string, opts ...store.Option) *store.Store {
	t.Helper()
	s, err := openBackend(t, dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newStore opens a store in a new directory with the clock at t0, closed at
// the end of the test.
func newStore(t testing.TB, opts ...store.Option) (*store.Store, string) {
	t.Helper()
	dir := t.TempDir()
	s := open(t, dir, append([]store.Option{store.WithClock(func() time.Time { return t0 })}, opts...)...)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s, dir
}

func text(t testing.TB, z *zone.Zone) string {
	t.Helper()
	var b bytes.Buffer
	if _, err := z.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestCreateAndRead(t *testing.T) {
	ctx := t.Context()
	s, _ := newStore(t)
	info, err := s.CreateZone(ctx, "Example.COM", baseZone(t), "")
	if err != nil {
		t.Fatal(err)
	}
	want := store.ZoneInfo{Name: "example.com.", Serial: 100, Records: 4, Updated: t0, SerialPolicy: "increment"}
	if diff := cmp.Diff(want, info); diff != "" {
		t.Errorf("CreateZone (-want +got):\n%s", diff)
	}
	list, err := s.ListZones(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]store.ZoneInfo{want}, list); diff != "" {
		t.Errorf("ListZones (-want +got):\n%s", diff)
	}
	z, err := s.Zone(ctx, "example.com.")
	if err != nil {
		t.Fatal(err)
	}
	if z.Serial != 100 || z.Records != 4 {
		t.Errorf("zone serial %d records %d", z.Serial, z.Records)
	}
	got, err := s.RRset(ctx, "example.com", "WWW.example.com.", dns.TypeA)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].String() != "www.example.com.\t300\tIN\tA\t192.0.2.10" {
		t.Errorf("RRset = %v", got)
	}
	for _, tc := range []struct {
		zone, name string
		typ        uint16
	}{
		{"example.com.", "www.example.com.", dns.TypeAAAA},
		{"example.com.", "nope.example.com.", dns.TypeA},
		{"example.net.", "www.example.net.", dns.TypeA},
	} {
		if _, err := s.RRset(ctx, tc.zone, tc.name, tc.typ); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("RRset(%s, %s, %d) error %v, want ErrNotFound", tc.zone, tc.name, tc.typ, err)
		}
	}
	if _, err := s.Zone(ctx, "example.net."); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Zone(example.net.) error %v, want ErrNotFound", err)
	}
}

func TestCreateErrors(t *testing.T) {
	ctx := t.Context()
	s, _ := newStore(t)
	if _, err := s.CreateZone(ctx, "example.com.", baseZone(t), ""); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		zone   string
		rrs    []dns.RR
		policy store.SerialPolicy
		is     error
		msg    string
	}{
		{"exists", "EXAMPLE.com", baseZone(t), "", store.ErrExists, "zone example.com.: already exists"},
		{"cname and other data", "example.org.", rrs(t,
			"example.org. 3600 IN SOA ns1.example.org. h.example.org. 1 2 3 4 5",
			"example.org. 3600 IN NS ns1.example.org.",
			"ns1.example.org. 3600 IN A 192.0.2.1",
			"ns1.example.org. 3600 IN CNAME www.example.org.",
		), "", store.ErrInvalid, "records[2]: ns1.example.org. A: CNAME and other data at the same name"},
		{"no soa", "example.org.", rrs(t, "example.org. 3600 IN NS ns1.example.net."), "", store.ErrInvalid, "no SOA record at the zone apex example.org."},
		{"out of zone", "example.org.", rrs(t,
			"example.org. 3600 IN SOA ns1.example.org. h.example.org. 1 2 3 4 5",
			"example.org. 3600 IN NS ns1.example.net.",
			"www.example.net. 3600 IN A 192.0.2.1",
		), "", store.ErrInvalid, "records[2]: www.example.net. A: out-of-zone data (not in example.org.)"},
		{"bad policy", "example.org.", baseZone(t), "weekly", store.ErrInvalid, `serial policy "weekly"`},
		{"bad name", "a..b", baseZone(t), "", store.ErrInvalid, "zone name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.CreateZone(ctx, tt.zone, tt.rrs, tt.policy)
			if !errors.Is(err, tt.is) {
				t.Fatalf("error %v, want %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not contain %q", err, tt.msg)
			}
		})
	}
	if list, _ := s.ListZones(ctx); len(list) != 1 {
		t.Errorf("failed creates left zones: %v", list)
	}
}

func TestCreateDatePolicy(t *testing.T) {
	ctx := t.Context()
	s, _ := newStore(t)
	info, err := s.CreateZone(ctx, "example.com.", baseZone(t), store.SerialDate)
	if err != nil {
		t.Fatal(err)
	}
	if info.Serial != 2026031400 || info.SerialPolicy != "date" {
		t.Errorf("serial %d policy %s, want 2026031400 date", info.Serial, info.SerialPolicy)
	}
	serial, err := s.SetRRset(ctx, "example.com.", "www.example.com.", dns.TypeA, rrs(t, "www.example.com. 60 IN A 192.0.2.11"))
	if err != nil || serial != 2026031401 {
		t.Errorf("SetRRset = %d, %v; want 2026031401", serial, err)
	}
}

func TestSetRRset(t *testing.T) {
	ctx := t.Context()
	s, _ := newStore(t)
	if _, err := s.CreateZone(ctx, "example.com.", baseZone(t), ""); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name       string
		do         func() (uint32, error)
		wantSerial uint32
		wantErr    error
		msg        string
		// the change logged, as text, for a successful step
		del, add []string
	}{
		{"add a set", func() (uint32, error) {
			return s.SetRRset(ctx, "example.com.", "mail.example.com.", dns.TypeA, rrs(t, "MAIL.example.com. 300 IN A 192.0.2.20", "mail.example.com. 600 IN A 192.0.2.21"))
		}, 101, nil, "", nil, []string{"mail.example.com.\t300\tIN\tA\t192.0.2.20", "mail.example.com.\t300\tIN\tA\t192.0.2.21"}},
		{"same again changes nothing", func() (uint32, error) {
			return s.SetRRset(ctx, "example.com.", "mail.example.com.", dns.TypeA, rrs(t, "mail.example.com. 300 IN A 192.0.2.21", "mail.example.com. 300 IN A 192.0.2.20"))
		}, 101, nil, "", nil, nil},
		{"replace one record and the ttl", func() (uint32, error) {
			return s.SetRRset(ctx, "example.com.", "mail.example.com.", dns.TypeA, rrs(t, "mail.example.com. 60 IN A 192.0.2.21", "mail.example.com. 60 IN A 192.0.2.22"))
		}, 102, nil, "",
			// In the order the zone holds them (a TTL change deletes and adds
			// every record of the RRset).
			[]string{"mail.example.com.\t300\tIN\tA\t192.0.2.20", "mail.example.com.\t300\tIN\tA\t192.0.2.21"},
			[]string{"mail.example.com.\t60\tIN\tA\t192.0.2.21", "mail.example.com.\t60\tIN\tA\t192.0.2.22"}},
		{"delete", func() (uint32, error) { return s.DeleteRRset(ctx, "example.com.", "mail.example.com.", dns.TypeA) }, 103, nil, "",
			[]string{"mail.example.com.\t60\tIN\tA\t192.0.2.21", "mail.example.com.\t60\tIN\tA\t192.0.2.22"}, nil},
		{"delete again", func() (uint32, error) { return s.DeleteRRset(ctx, "example.com.", "mail.example.com.", dns.TypeA) }, 0, store.ErrNotFound, "rrset mail.example.com. A: not found", nil, nil},
		{"cname beside data", func() (uint32, error) {
			return s.SetRRset(ctx, "example.com.", "www.example.com.", dns.TypeCNAME, rrs(t, "www.example.com. 300 IN CNAME ns1.example.com."))
		}, 0, store.ErrInvalid, "www.example.com. A: CNAME and other data at the same name", nil, nil},
		{"duplicate", func() (uint32, error) {
			return s.SetRRset(ctx, "example.com.", "txt.example.com.", dns.TypeTXT, rrs(t, `txt.example.com. 300 IN TXT "a"`, `txt.example.com. 300 IN TXT "a"`))
		}, 0, store.ErrInvalid, "records[1]: txt.example.com. TXT: duplicate record (first at records[0])", nil, nil},
		{"wrong owner", func() (uint32, error) {
			return s.SetRRset(ctx, "example.com.", "a.example.com.", dns.TypeA, rrs(t, "b.example.com. 300 IN A 192.0.2.1"))
		}, 0, store.ErrInvalid, `records[0]: owner "b.example.com." does not match the RRset`, nil, nil},
		{"wrong type", func() (uint32, error) {
			return s.SetRRset(ctx, "example.com.", "a.example.com.", dns.TypeAAAA, rrs(t, "a.example.com. 300 IN A 192.0.2.1"))
		}, 0, store.ErrInvalid, "records[0]: type A does not match the RRset", nil, nil},
		{"out of zone", func() (uint32, error) {
			return s.SetRRset(ctx, "example.com.", "a.example.net.", dns.TypeA, rrs(t, "a.example.net. 300 IN A 192.0.2.1"))
		}, 0, store.ErrInvalid, "records[0]: a.example.net. A: out-of-zone data", nil, nil},
		{"meta type", func() (uint32, error) {
			return s.SetRRset(ctx, "example.com.", "a.example.com.", dns.TypeANY, rrs(t, "a.example.com. 300 IN A 192.0.2.1"))
		}, 0, store.ErrInvalid, "type ANY cannot be stored in a zone", nil, nil},
		{"empty set", func() (uint32, error) { return s.SetRRset(ctx, "example.com.", "a.example.com.", dns.TypeA, nil) }, 0, store.ErrInvalid, "no records", nil, nil},
		{"delete the apex NS", func() (uint32, error) { return s.DeleteRRset(ctx, "example.com.", "example.com.", dns.TypeNS) }, 0, store.ErrInvalid, "no NS records at the zone apex", nil, nil},
		{"delete the SOA", func() (uint32, error) { return s.DeleteRRset(ctx, "example.com.", "example.com.", dns.TypeSOA) }, 0, store.ErrInvalid, "exactly one SOA record, got 0", nil, nil},
		{"unknown zone", func() (uint32, error) {
			return s.SetRRset(ctx, "example.net.", "a.example.net.", dns.TypeA, rrs(t, "a.example.net. 300 IN A 192.0.2.1"))
		}, 0, store.ErrNotFound, "zone example.net.: not found", nil, nil},
		{"soa with an older serial gets the next one", func() (uint32, error) {
			return s.SetRRset(ctx, "example.com.", "example.com.", dns.TypeSOA, rrs(t, "example.com. 3600 IN SOA ns1.example.com. dns.example.com. 5 7200 3600 1209600 300"))
		}, 104, nil, "",
			[]string{"example.com.\t3600\tIN\tSOA\tns1.example.com. hostmaster.example.com. 103 7200 3600 1209600 300"},
			[]string{"example.com.\t3600\tIN\tSOA\tns1.example.com. dns.example.com. 104 7200 3600 1209600 300"}},
		{"soa with a newer serial keeps it", func() (uint32, error) {
			return s.SetRRset(ctx, "example.com.", "example.com.", dns.TypeSOA, rrs(t, "example.com. 3600 IN SOA ns1.example.com. dns.example.com. 5000 7200 3600 1209600 300"))
		}, 5000, nil, "",
			[]string{"example.com.\t3600\tIN\tSOA\tns1.example.com. dns.example.com. 104 7200 3600 1209600 300"},
			[]string{"example.com.\t3600\tIN\tSOA\tns1.example.com. dns.example.com. 5000 7200 3600 1209600 300"}},
	}
	serial := uint32(100)
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			got, err := st.do()
			if st.wantErr != nil {
				if !errors.Is(err, st.wantErr) || !strings.Contains(err.Error(), st.msg) {
					t.Fatalf("error %v, want %v containing %q", err, st.wantErr, st.msg)
				}
				return
			}
			if err != nil || got != st.wantSerial {
				t.Fatalf("serial %d, error %v; want %d", got, err, st.wantSerial)
			}
			z, err := s.Zone(ctx, "example.com.")
			if err != nil || z.Serial != got {
				t.Fatalf("zone serial %d (%v), want %d", z.Serial, err, got)
			}
			changes, err := s.Changes(ctx, "example.com.", serial)
			if err != nil {
				t.Fatal(err)
			}
			if got == serial {
				if len(changes) != 0 {
					t.Errorf("a write that changed nothing logged %v", changes)
				}
				return
			}
			if len(changes) != 1 || changes[0].From != serial || changes[0].To != got {
				t.Fatalf("changes from %d: %v", serial, changes)
			}
			strs := func(rrs []dns.RR) []string {
				var out []string
				for _, rr := range rrs {
					out = append(out, rr.String())
				}
				return out
			}
			del, add := strs(changes[0].Del), strs(changes[0].Add)
			if !strings.Contains(del[0], "\tSOA\t") || !strings.Contains(add[0], "\tSOA\t") {
				t.Errorf("change does not start with the SOA: %v %v", del, add)
			}
			wantDel, wantAdd := st.del, st.add
			if !slices.ContainsFunc(st.del, func(s string) bool { return strings.Contains(s, "SOA") }) {
				wantDel = append([]string{del[0]}, st.del...)
				wantAdd = append([]string{add[0]}, st.add...)
			}
			if diff := cmp.Diff(wantDel, del); diff != "" {
				t.Errorf("deleted (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantAdd, add); diff != "" {
				t.Errorf("added (-want +got):\n%s", diff)
			}
			serial = got
		})
	}
}

func TestUpdateRRsetErrorChangesNothing(t *testing.T) {
	ctx := t.Context()
	s, _ := newStore(t)
	if _, err := s.CreateZone(ctx, "example.com.", baseZone(t), ""); err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	_, _, err := s.UpdateRRset(ctx, "example.com.", "www.example.com.", dns.TypeA, func(cur []dns.RR) ([]dns.RR, error) {
		if len(cur) != 1 {
			t.Errorf("current records %v", cur)
		}
		cur[0].(*dns.A).A[3] = 99 // a copy: must not reach the store
		return nil, stop
	})
	if !errors.Is(err, stop) {
		t.Fatalf("error %v, want the function's", err)
	}
	got, err := s.RRset(ctx, "example.com.", "www.example.com.", dns.TypeA)
	if err != nil || got[0].(*dns.A).A.String() != "192.0.2.10" {
		t.Errorf("RRset after a failed update: %v %v", got, err)
	}
	if z, _ := s.Zone(ctx, "example.com."); z.Serial != 100 {
		t.Errorf("serial %d after a failed update", z.Serial)
	}
}

const importText = `$ORIGIN example.com.
$TTL 3600
@	IN SOA ns1 hostmaster 7 7200 3600 1209600 300
	IN NS ns1
ns1	IN A 192.0.2.1
www 300	IN A 192.0.2.10
`

func TestImport(t *testing.T) {
	ctx := t.Context()
	s, _ := newStore(t, store.WithMaxRecords(1_000_000))
	info, err := s.ImportZone(ctx, "example.com", strings.NewReader(importText))
	if err != nil {
		t.Fatal(err)
	}
	if info.Serial != 7 || info.Records != 4 {
		t.Errorf("created %+v", info)
	}
	// Same content, the serial as it was: nothing happens.
	again, err := s.ImportZone(ctx, "example.com", strings.NewReader(importText))
	if err != nil || again != info {
		t.Errorf("re-import = %+v, %v; want %+v", again, err, info)
	}
	changed := strings.Replace(importText, "192.0.2.10", "192.0.2.11", 1) + "new IN AAAA 2001:db8::1\n"
	info, err = s.ImportZone(ctx, "example.com", strings.NewReader(changed))
	if err != nil {
		t.Fatal(err)
	}
	if info.Serial != 8 || info.Records != 5 {
		t.Errorf("after import %+v", info)
	}
	ch, err := s.Changes(ctx, "example.com.", 7)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range ch {
		for _, rr := range c.Del {
			got = append(got, "-"+rr.String())
		}
		for _, rr := range c.Add {
			got = append(got, "+"+rr.String())
		}
	}
	want := []string{
		"-example.com.\t3600\tIN\tSOA\tns1.example.com. hostmaster.example.com. 7 7200 3600 1209600 300",
		"-www.example.com.\t300\tIN\tA\t192.0.2.10",
		"+example.com.\t3600\tIN\tSOA\tns1.example.com. hostmaster.example.com. 8 7200 3600 1209600 300",
		"+new.example.com.\t3600\tIN\tAAAA\t2001:db8::1",
		"+www.example.com.\t300\tIN\tA\t192.0.2.11",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("change (-want +got):\n%s", diff)
	}
	// A newer serial in the text is kept.
	info, err = s.ImportZone(ctx, "example.com", strings.NewReader(strings.Replace(changed, " 7 7200", " 900 7200", 1)))
	if err != nil || info.Serial != 900 {
		t.Errorf("import with serial 900 = %+v, %v", info, err)
	}

	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("stolen IN TXT \"secret\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var gen strings.Builder
	gen.WriteString(importText)
	for range 20 {
		gen.WriteString("$GENERATE 1-60000 h$ A 192.0.2.1\n")
	}
	errTests := []struct {
		name, text, msg string
	}{
		{"syntax", importText + "bad IN A 192.0.2.999\n", `zonefile:7:20: bad A A: "192.0.2.999"`},
		{"invalid names the line", importText + "www IN CNAME ns1\n", "zonefile:6: www.example.com. A: CNAME and other data at the same name"},
		{"no include", importText + "$INCLUDE " + secret + "\n", "$INCLUDE directive not allowed"},
		{"generate bomb", gen.String(), "more than the limit of 1000000 records"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.ImportZone(ctx, "example.com.", strings.NewReader(tt.text))
			if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %v, want ErrInvalid containing %q", err, tt.msg)
			}
		})
	}
	if z, _ := s.Zone(ctx, "example.com."); z.Serial != 900 || z.Records != 5 {
		t.Errorf("failed imports changed the zone: serial %d records %d", z.Serial, z.Records)
	}
}

// TestDefaultMaxRecords: with the default limit, the store takes a zone of
// more than a million records (the 1,000,000-name zone of make
// bench-change has 1,949,003); the limit of 1,000,000 refused it.
func TestDefaultMaxRecords(t *testing.T) {
	if testing.Short() {
		t.Skip("imports 1,020,000 records")
	}
	s, _ := newStore(t)
	var text strings.Builder
	text.WriteString(importText)
	for g := range 17 {
		fmt.Fprintf(&text, "$GENERATE 1-60000 h$.g%d A 192.0.2.1\n", g)
	}
	info, err := s.ImportZone(t.Context(), "example.com.", strings.NewReader(text.String()))
	if err != nil || info.Records != 4+17*60000 {
		t.Fatalf("import of 1,020,000 more records = %+v, %v", info, err)
	}
}

func TestDeleteZone(t *testing.T) {
	ctx := t.Context()
	s, dir := newStore(t)
	if _, err := s.CreateZone(ctx, "example.com.", baseZone(t), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetRRset(ctx, "example.com.", "a.example.com.", dns.TypeA, rrs(t, "a.example.com. 1 IN A 192.0.2.1")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteZone(ctx, "example.com"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteZone(ctx, "example.com"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if _, err := s.Changes(ctx, "example.com.", 100); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("changes of a deleted zone: %v", err)
	}
	// Re-created, the zone starts afresh: the old change log is gone.
	if _, err := s.CreateZone(ctx, "example.com.", baseZone(t), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Changes(ctx, "example.com.", 100); err != nil {
		t.Errorf("changes from the current serial: %v", err)
	}
	if _, err := s.Changes(ctx, "example.com.", 101); !errors.Is(err, store.ErrNoJournal) {
		t.Errorf("changes from the deleted zone's serial: %v, want ErrNoJournal", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, dir)
	defer s2.Close()
	got, err := s2.RRset(ctx, "example.com.", "a.example.com.", dns.TypeA)
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("record of the deleted zone came back: %v %v", got, err)
	}
}

// TestChangesReplay writes a series of versions and checks that applying
// the change log from any version with zone.Apply gives the current zone.
func TestChangesReplay(t *testing.T) {
	ctx := t.Context()
	s, _ := newStore(t, store.WithJournalLimit(8))
	if _, err := s.CreateZone(ctx, "example.com.", baseZone(t), ""); err != nil {
		t.Fatal(err)
	}
	versions := map[uint32]*zone.Zone{}
	z, _ := s.Zone(ctx, "example.com.")
	versions[z.Serial] = z
	for i := range 12 {
		var err error
		switch i % 4 {
		case 0:
			_, err = s.SetRRset(ctx, "example.com.", fmt.Sprintf("h%d.example.com.", i), dns.TypeA, rrs(t, fmt.Sprintf("h%d.example.com. 60 IN A 192.0.2.%d", i, i)))
		case 1:
			_, err = s.SetRRset(ctx, "example.com.", "www.example.com.", dns.TypeA, rrs(t, fmt.Sprintf("www.example.com. %d IN A 192.0.2.%d", 60+i, i)))
		case 2:
			_, err = s.DeleteRRset(ctx, "example.com.", fmt.Sprintf("h%d.example.com.", i-2), dns.TypeA)
		case 3:
			_, err = s.ImportZone(ctx, "example.com.", strings.NewReader(importText+fmt.Sprintf("imp%d IN TXT \"%d\"\n", i, i)))
		}
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		z, _ := s.Zone(ctx, "example.com.")
		versions[z.Serial] = z
	}
	cur, _ := s.Zone(ctx, "example.com.")
	want := text(t, cur)
	inLog := 0
	for serial, old := range versions {
		changes, err := s.Changes(ctx, "example.com.", serial)
		if errors.Is(err, store.ErrNoJournal) {
			continue
		}
		if err != nil {
			t.Fatalf("from %d: %v", serial, err)
		}
		inLog++
		z := old
		for _, c := range changes {
			if c.From != z.Serial {
				t.Fatalf("from %d: change %d→%d does not follow %d", serial, c.From, c.To, z.Serial)
			}
			if z, err = zone.Apply(z, c.Del, c.Add); err != nil {
				t.Fatalf("from %d: apply %d→%d: %v", serial, c.From, c.To, err)
			}
		}
		if got := text(t, z); got != want {
			t.Errorf("replay from %d:\n%s\nwant\n%s", serial, got, want)
		}
	}
	// 13 versions, 8 changes kept: the last 9 versions can be replayed.
	if inLog != 9 {
		t.Errorf("%d versions reachable through the log, want 9", inLog)
	}
}

func TestReopen(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	s := open(t, dir)
	if _, err := s.CreateZone(ctx, "example.com.", baseZone(t), store.SerialDate); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetRRset(ctx, "example.com.", "a.example.com.", dns.TypeTXT, rrs(t, `a.example.com. 1 IN TXT "x"`)); err != nil {
		t.Fatal(err)
	}
	if !onPostgres(t) { // on PostgreSQL, replicas share the database (TestReplicas)
		if _, err := store.Open(ctx, filepath.Join(dir, "zones.db"), nil); err == nil || !strings.Contains(err.Error(), "in use by another process") {
			t.Errorf("second open of the same database: %v", err)
		}
	}
	before, _ := s.ListZones(ctx)
	zBefore, _ := s.Zone(ctx, "example.com.")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ListZones(ctx); !errors.Is(err, store.ErrClosed) {
		t.Errorf("ListZones after Close: %v", err)
	}
	s = open(t, dir)
	defer s.Close()
	after, _ := s.ListZones(ctx)
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("zones after reopening (-before +after):\n%s", diff)
	}
	zAfter, _ := s.Zone(ctx, "example.com.")
	if text(t, zBefore) != text(t, zAfter) {
		t.Errorf("content differs after reopening")
	}
	if ch, err := s.Changes(ctx, "example.com.", before[0].Serial-1); err != nil || len(ch) != 1 {
		t.Errorf("change log after reopening: %v %v", ch, err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	for _, p := range []string{"", filepath.Join(dir, "a?b"), filepath.Join(dir, "missing", "zones.db")} {
		if s, err := store.Open(ctx, p, nil); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", p)
		}
	}
	if _, err := store.Open(ctx, filepath.Join(dir, "z.db"), nil, store.WithDefaultPolicy("weekly")); err == nil {
		t.Error("Open with a bad default policy succeeded")
	}
}

func TestCreateZoneFromText(t *testing.T) {
	ctx := t.Context()
	s, _ := newStore(t)
	info, err := s.CreateZoneFromText(ctx, "example.com.", strings.NewReader(importText), store.SerialDate)
	if err != nil {
		t.Fatal(err)
	}
	if info.Serial != 2026031400 || info.SerialPolicy != "date" || info.Records != 4 {
		t.Errorf("created %+v", info)
	}
	if _, err := s.CreateZoneFromText(ctx, "example.com.", strings.NewReader(importText), ""); !errors.Is(err, store.ErrExists) {
		t.Errorf("second create: %v, want ErrExists", err)
	}
	_, err = s.CreateZoneFromText(ctx, "example.org.", strings.NewReader("$ORIGIN example.org.\n@ 60 IN SOA ns1 h 1 2 3 4 5\n@ 60 IN NS ns1.example.net.\n@ 60 IN NS ns1.example.net.\n"), "")
	if !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "zonefile:4: example.org. NS: duplicate record (first at zonefile:3)") {
		t.Errorf("invalid text: %v", err)
	}
}

// TestWriteBatches: the RRsets of a write go to the database several to a
// statement; zones of sizes around the batch (64 RRsets), and writes that
// delete some RRsets and add others, read back from the database as the
// store served them.
func TestWriteBatches(t *testing.T) {
	for _, n := range []int{1, 60, 61, 62, 125, 200} { // + SOA, NS and ns1's A: 64, 65, 128 RRsets among them
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			ctx := t.Context()
			s, dir := newStore(t)
			recs := baseZone(t)[:3]
			for i := range n {
				recs = append(recs, rrs(t, fmt.Sprintf("h%d.example.com. 300 IN A 192.0.2.%d", i, i%250+1))...)
			}
			if _, err := s.CreateZone(ctx, "example.com.", recs, ""); err != nil {
				t.Fatal(err)
			}
			// Delete every third host, change every third, add as many.
			if _, err := s.UpdateRRsets(ctx, "example.com.", func(*zone.Zone) ([]store.RRsetWrite, error) {
				var w []store.RRsetWrite
				for i := range n {
					name := fmt.Sprintf("h%d.example.com.", i)
					switch i % 3 {
					case 0:
						w = append(w, store.RRsetWrite{Name: name, Type: dns.TypeA})
					case 1:
						w = append(w, store.RRsetWrite{Name: name, Type: dns.TypeA, RRs: rrs(t, name+" 300 IN A 198.51.100.1")})
					}
					if i%3 != 2 {
						nn := fmt.Sprintf("n%d.example.com.", i)
						w = append(w, store.RRsetWrite{Name: nn, Type: dns.TypeTXT, RRs: rrs(t, nn+` 60 IN TXT "new"`)})
					}
				}
				return w, nil
			}); err != nil {
				t.Fatal(err)
			}
			want, err := s.Zone(ctx, "example.com.")
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s2 := open(t, dir)
			defer s2.Close()
			got, err := s2.Zone(ctx, "example.com.")
			if err != nil {
				t.Fatal(err)
			}
			if text(t, got) != text(t, want) {
				t.Errorf("the database holds\n%s\nwant\n%s", text(t, got), text(t, want))
			}
		})
	}
}
