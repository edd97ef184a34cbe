package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/sign"
	"github.com/anycastdns/anycastdns/internal/sign/signtest"
	"github.com/anycastdns/anycastdns/internal/steer"
	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/zone"
)

func sealer(t testing.TB) (*sign.Sealer, []byte) {
	t.Helper()
	kf := sign.GenerateKeyFile()
	s, err := sign.NewSealer(kf)
	if err != nil {
		t.Fatal(err)
	}
	return s, kf
}

// clock is a settable clock for the store.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func signedBase(t testing.TB) []dns.RR {
	return append(baseZone(t), rrs(t,
		"sub.example.com. 3600 IN NS ns.sub.example.com.",
		"ns.sub.example.com. 3600 IN A 192.0.2.53",
		"a.b.c.example.com. 300 IN TXT \"deep\"",
		"mail.example.com. 300 IN MX 10 www.example.com.",
	)...)
}

// replay checks that the change log turns version old into the current
// version: what the nodes receive by IXFR.
func replay(t *testing.T, s *store.Store, old *zone.Zone) {
	t.Helper()
	ctx := t.Context()
	cur, err := s.Zone(ctx, "example.com.")
	if err != nil {
		t.Fatal(err)
	}
	changes, err := s.Changes(ctx, "example.com.", old.Serial)
	if err != nil {
		t.Fatalf("changes from %d: %v", old.Serial, err)
	}
	z := old
	for _, c := range changes {
		if z, err = zone.Apply(z, c.Del, c.Add); err != nil {
			t.Fatalf("apply %d→%d: %v", c.From, c.To, err)
		}
	}
	if got, want := text(t, z), text(t, cur); got != want {
		t.Errorf("replay from %d differs from the current version %d", old.Serial, cur.Serial)
	}
}

// TestSigningWritePath: a zone whose signing is enabled is signed whole,
// then every write through the store's write functions (set, delete,
// update, SOA, delegation with DS, import, pre-signed import) leaves it
// signed, as the verifiers check it, with a change log that replays to it
// and only the touched RRsets re-signed.
func TestSigningWritePath(t *testing.T) {
	nsec3 := sign.DefaultPolicy()
	nsec3.NSEC3, nsec3.CSK, nsec3.CDS = true, false, true
	for name, p := range map[string]sign.Policy{"nsec/csk": sign.DefaultPolicy(), "nsec3/ksk+zsk/cds": nsec3} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			sl, _ := sealer(t)
			s, _ := newStore(t, store.WithSealer(sl), store.WithClock(time.Now))
			if _, err := s.CreateZone(ctx, "example.com.", signedBase(t), ""); err != nil {
				t.Fatal(err)
			}
			before, _ := s.Zone(ctx, "example.com.")
			st, err := s.EnableSigning(ctx, "example.com.", "default", p)
			if err != nil {
				t.Fatal(err)
			}
			if !st.Enabled || len(st.Keys) != map[bool]int{true: 1, false: 2}[p.CSK] || st.NextEvent.IsZero() {
				t.Fatalf("status after enable: %+v", st)
			}
			z, _ := s.Zone(ctx, "example.com.")
			if !z.Signed || z.Serial != before.Serial+1 {
				t.Fatalf("after enable: signed %v serial %d (was %d)", z.Signed, z.Serial, before.Serial)
			}
			signtest.Verify(t, z)
			replay(t, s, before)

			sub := "sub.example.com."
			steps := []struct {
				name  string
				write func() error
			}{
				{"add a name", func() error {
					_, err := s.SetRRset(ctx, "example.com.", "new.example.com.", dns.TypeA, rrs(t, "new.example.com. 300 IN A 192.0.2.77"))
					return err
				}},
				{"change an RRset", func() error {
					_, err := s.SetRRset(ctx, "example.com.", "www.example.com.", dns.TypeA, rrs(t, "www.example.com. 300 IN A 192.0.2.11", "www.example.com. 300 IN A 192.0.2.12"))
					return err
				}},
				{"add a type at a name", func() error {
					_, _, err := s.UpdateRRset(ctx, "example.com.", "www.example.com.", dns.TypeTXT, func(cur []dns.RR) ([]dns.RR, error) {
						return rrs(t, "www.example.com. 300 IN TXT \"hello\""), nil
					})
					return err
				}},
				{"delete a deep name (empty non-terminals go)", func() error {
					_, err := s.DeleteRRset(ctx, "example.com.", "a.b.c.example.com.", dns.TypeTXT)
					return err
				}},
				{"several RRsets in one update (RFC 2136)", func() error {
					_, err := s.UpdateRRsets(ctx, "example.com.", func(*zone.Zone) ([]store.RRsetWrite, error) {
						return []store.RRsetWrite{
							{Name: "_acme-challenge.example.com.", Type: dns.TypeTXT, RRs: rrs(t, "_acme-challenge.example.com. 60 IN TXT \"token\"")},
							{Name: "www.example.com.", Type: dns.TypeTXT},
							{Name: "new2.example.com.", Type: dns.TypeAAAA, RRs: rrs(t, "new2.example.com. 300 IN AAAA 2001:db8::77")},
						}, nil
					})
					return err
				}},
				{"DS at the delegation", func() error {
					_, err := s.SetRRset(ctx, "example.com.", sub, dns.TypeDS, rrs(t, sub+" 3600 IN DS 12345 13 2 "+strings.Repeat("ab", 32)))
					return err
				}},
				{"new delegation", func() error {
					_, err := s.SetRRset(ctx, "example.com.", "other.example.com.", dns.TypeNS, rrs(t, "other.example.com. 3600 IN NS ns1.example.com."))
					return err
				}},
				{"SOA edit", func() error {
					_, err := s.SetRRset(ctx, "example.com.", "example.com.", dns.TypeSOA, rrs(t, "example.com. 3600 IN SOA ns1.example.com. dns.example.com. 1 7200 3600 1209600 300"))
					return err
				}},
				{"SOA minimum (the chain's TTL) edit", func() error {
					_, err := s.SetRRset(ctx, "example.com.", "example.com.", dns.TypeSOA, rrs(t, "example.com. 3600 IN SOA ns1.example.com. dns.example.com. 1 7200 3600 1209600 600"))
					return err
				}},
				{"import", func() error {
					cur, _ := s.Zone(ctx, "example.com.")
					rrs, err := cur.RRs()
					if err != nil {
						return err
					}
					var b strings.Builder
					for _, rr := range rrs {
						if sign.Generated(rr.Header().Rrtype, rr.Header().Name == "example.com.") || rr.Header().Name == "mail.example.com." {
							continue
						}
						b.WriteString(rr.String() + "\n")
					}
					b.WriteString("imported.example.com. 300 IN AAAA 2001:db8::1\n")
					_, err = s.ImportZone(ctx, "example.com.", strings.NewReader(b.String()))
					return err
				}},
				{"pre-signed import (signed by another signer) is signed again", func() error {
					cur, _ := s.Zone(ctx, "example.com.")
					other, err := sign.New(sign.DefaultPolicy(), "example.com.", mustKeys(t, sign.DefaultPolicy()))
					if err != nil {
						return err
					}
					// Unsigned content first, then signed by the other signer.
					rrs, err := cur.RRs()
					if err != nil {
						return err
					}
					var recs []zone.Record
					for _, rr := range rrs {
						if !sign.Generated(rr.Header().Rrtype, rr.Header().Name == "example.com.") {
							recs = append(recs, zone.Record{RR: rr})
						}
					}
					recs = append(recs, zone.Record{RR: rrs1(t, "presigned.example.com. 300 IN A 192.0.2.99")})
					uz, err := zone.Build("example.com.", recs)
					if err != nil {
						return err
					}
					oz, err := other.Sign(uz, time.Now())
					if err != nil {
						return err
					}
					_, err = s.ImportZone(ctx, "example.com.", strings.NewReader(text(t, oz)))
					return err
				}},
			}
			for _, step := range steps {
				prev, _ := s.Zone(ctx, "example.com.")
				if err := step.write(); err != nil {
					t.Fatalf("%s: %v", step.name, err)
				}
				z, _ := s.Zone(ctx, "example.com.")
				if z.Serial == prev.Serial {
					t.Fatalf("%s: serial stayed %d", step.name, z.Serial)
				}
				if fails := signtest.Failures(t, z); len(fails) > 0 {
					t.Fatalf("%s: the zone does not verify:\n%s", step.name, strings.Join(fails, "\n"))
				}
				replay(t, s, prev)
			}
			// One edit re-signs a few RRsets, not the zone.
			prev, _ := s.Zone(ctx, "example.com.")
			if _, err := s.SetRRset(ctx, "example.com.", "www.example.com.", dns.TypeA, rrs(t, "www.example.com. 300 IN A 192.0.2.13")); err != nil {
				t.Fatal(err)
			}
			ch, err := s.Changes(ctx, "example.com.", prev.Serial)
			if err != nil || len(ch) != 1 {
				t.Fatalf("changes: %v %d", err, len(ch))
			}
			if n := len(ch[0].Del) + len(ch[0].Add); n > 20 || n >= prev.Records/2 {
				t.Errorf("one A record changed: %d records in the change of a zone of %d", n, prev.Records)
			}
		})
	}
}

func rrs1(t testing.TB, s string) dns.RR { return rrs(t, s)[0] }

func mustKeys(t testing.TB, p sign.Policy) []*sign.Key {
	t.Helper()
	k, err := sign.GenerateKey("example.com.", sign.CSK, p, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return []*sign.Key{k}
}

// TestSigningRefusals: what a signed zone refuses, with ErrSigned, and
// what signing refuses without a key file.
func TestSigningRefusals(t *testing.T) {
	ctx := t.Context()
	plain, _ := newStore(t, store.WithClock(time.Now))
	if _, err := plain.CreateZone(ctx, "example.com.", signedBase(t), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := plain.EnableSigning(ctx, "example.com.", "default", sign.DefaultPolicy()); !errors.Is(err, store.ErrNoKeyFile) {
		t.Errorf("enable without a key file: %v, want ErrNoKeyFile", err)
	}
	sl, _ := sealer(t)
	s, _ := newStore(t, store.WithSealer(sl), store.WithClock(time.Now))
	if _, err := s.CreateZone(ctx, "example.com.", signedBase(t), ""); err != nil {
		t.Fatal(err)
	}
	bad := sign.DefaultPolicy()
	bad.NSEC3Iterations = 10
	if _, err := s.EnableSigning(ctx, "example.com.", "x", bad); !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), "nsec3_iterations") {
		t.Errorf("enable with a bad policy: %v", err)
	}
	if _, err := s.EnableSigning(ctx, "example.com.", "default", sign.DefaultPolicy()); err != nil {
		t.Fatal(err)
	}
	poolSig := &dns.RFC3597{Hdr: dns.RR_Header{Name: "www.example.com.", Rrtype: steer.TypePoolSig, Class: dns.ClassINET, Ttl: 60}, Rdata: "00"}
	for _, c := range []struct {
		name string
		t    uint16
		rrs  []dns.RR
	}{
		{"example.com.", dns.TypeDNSKEY, rrs(t, "example.com. 3600 IN DNSKEY 257 3 13 "+strings.Repeat("A", 88))},
		{"www.example.com.", dns.TypeNSEC, rrs(t, "www.example.com. 300 IN NSEC example.com. A")},
		{"www.example.com.", steer.TypePoolSig, []dns.RR{poolSig}},
	} {
		if _, err := s.SetRRset(ctx, "example.com.", c.name, c.t, c.rrs); !errors.Is(err, store.ErrSigned) {
			t.Errorf("set %s %s in a zone the store signs: %v, want ErrSigned", c.name, dns.TypeToString[c.t], err)
		}
	}
	split := sign.DefaultPolicy()
	split.CSK = false
	if _, err := s.EnableSigning(ctx, "example.com.", "split", split); !errors.Is(err, store.ErrSigned) {
		t.Errorf("key split change of the same algorithm by policy: %v, want ErrSigned", err)
	}
	// An algorithm change starts an algorithm rollover (TestAlgorithmRollover);
	// another change of the algorithm during it is refused.
	ed := sign.DefaultPolicy()
	ed.Algorithm = sign.ED25519
	if st, err := s.EnableSigning(ctx, "example.com.", "ed", ed); err != nil || !strings.Contains(st.Rollover, "algorithm rollover ECDSAP256SHA256 to ED25519") {
		t.Errorf("algorithm change by policy: %+v %v, want an algorithm rollover", st, err)
	}
	rsa := sign.DefaultPolicy()
	rsa.Algorithm = sign.RSASHA256
	if _, err := s.EnableSigning(ctx, "example.com.", "rsa", rsa); !errors.Is(err, store.ErrSigned) || !strings.Contains(err.Error(), "rollover is under way") {
		t.Errorf("algorithm change during an algorithm rollover: %v, want ErrSigned", err)
	}
	// Too large a TTL for the policy: invalid, nothing written.
	z0, _ := s.Zone(ctx, "example.com.")
	if _, err := s.SetRRset(ctx, "example.com.", "www.example.com.", dns.TypeA, rrs(t, "www.example.com. 172800 IN A 192.0.2.1")); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("TTL above zone_max_ttl: %v, want ErrInvalid", err)
	}
	if z, _ := s.Zone(ctx, "example.com."); z.Serial != z0.Serial {
		t.Errorf("a refused write changed the serial")
	}
}

// TestSigningPersists: the policy and the keys survive a reopen (the keys
// sealed with the key file), a database without the key file or with
// another one is refused, and disabling takes every DNSSEC record out.
func TestSigningPersists(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sl, kf := sealer(t)
	s := open(t, dir, store.WithSealer(sl))
	if _, err := s.CreateZone(ctx, "example.com.", signedBase(t), ""); err != nil {
		t.Fatal(err)
	}
	st1, err := s.EnableSigning(ctx, "example.com.", "default", sign.DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !onPostgres(t) { // the file of the SQLite database
		db, err := os.ReadFile(filepath.Join(dir, "zones.db"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(db), "PRIVATE") || strings.Contains(string(db), "private_pkcs8") {
			t.Errorf("the database holds a key in the clear")
		}
	}
	if _, err := openBackend(t, dir); !errors.Is(err, store.ErrNoKeyFile) {
		t.Errorf("open without the key file: %v, want ErrNoKeyFile", err)
	}
	other, _ := sealer(t)
	if _, err := openBackend(t, dir, store.WithSealer(other)); !errors.Is(err, sign.ErrWrongKeyFile) {
		t.Errorf("open with another key file: %v, want ErrWrongKeyFile", err)
	}
	same, err := sign.NewSealer(kf)
	if err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, store.WithSealer(same))
	defer s.Close()
	st2, err := s.Signing(ctx, "example.com.")
	if err != nil {
		t.Fatal(err)
	}
	if !st2.Enabled || len(st2.Keys) != 1 || st2.Keys[0].ID != st1.Keys[0].ID || st2.Keys[0].DS == "" {
		t.Fatalf("after reopen: %+v, before %+v", st2, st1)
	}
	if _, err := s.SetRRset(ctx, "example.com.", "x.example.com.", dns.TypeA, rrs(t, "x.example.com. 60 IN A 192.0.2.5")); err != nil {
		t.Fatal(err)
	}
	z, _ := s.Zone(ctx, "example.com.")
	signtest.Verify(t, z)
	if _, err := s.DisableSigning(ctx, "example.com."); err != nil {
		t.Fatal(err)
	}
	z, _ = s.Zone(ctx, "example.com.")
	if z.Signed || strings.Contains(text(t, z), "RRSIG") || strings.Contains(text(t, z), "DNSKEY") {
		t.Errorf("after disable the zone still has DNSSEC records:\n%s", text(t, z))
	}
	if st, _ := s.Signing(ctx, "example.com."); st.Enabled {
		t.Errorf("status after disable: %+v", st)
	}
	// Unsigned again: edits are plain writes.
	if _, err := s.SetRRset(ctx, "example.com.", "y.example.com.", dns.TypeA, rrs(t, "y.example.com. 60 IN A 192.0.2.6")); err != nil {
		t.Fatal(err)
	}
}

// TestSigningMaintenance: with the clock moved past the refresh time, the
// signatures that come due are made again (a few at a time, spread by the
// jitter), and the zone's signatures are valid at every step of 30 days.
func TestSigningMaintenance(t *testing.T) {
	ctx := t.Context()
	c := &clock{t: time.Now()}
	sl, _ := sealer(t)
	s, _ := newStore(t, store.WithSealer(sl), store.WithClock(c.now))
	recs := signedBase(t)
	for i := range 200 {
		recs = append(recs, rrs1(t, fmt.Sprintf("h%d.example.com. 300 IN A 192.0.2.%d", i, i%250)))
	}
	if _, err := s.CreateZone(ctx, "example.com.", recs, ""); err != nil {
		t.Fatal(err)
	}
	p := sign.DefaultPolicy()
	if _, err := s.EnableSigning(ctx, "example.com.", "default", p); err != nil {
		t.Fatal(err)
	}
	start := c.now()
	refreshes := 0
	for c.now().Before(start.Add(30 * 24 * time.Hour)) {
		next, err := s.MaintainSigning(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !next.After(c.now()) {
			t.Fatalf("at %v: next %v not after now after maintenance", c.now(), next)
		}
		z, _ := s.Zone(ctx, "example.com.")
		checkSigsAt(t, z, c.now())
		before := z.Serial
		c.set(next)
		if _, err := s.MaintainSigning(ctx); err != nil {
			t.Fatal(err)
		}
		if z, _ := s.Zone(ctx, "example.com."); z.Serial != before {
			refreshes++
		}
	}
	// 30 days of 14-day signatures refreshed 5 days early over a 12-hour
	// jitter: at least two rounds, each in several writes.
	if refreshes < 4 {
		t.Errorf("%d refresh writes in 30 days", refreshes)
	}
}

// checkSigsAt verifies every signature of z with its DNSKEY and that it is
// valid at now.
func checkSigsAt(t *testing.T, z *zone.Zone, now time.Time) {
	t.Helper()
	all, err := z.RRs()
	if err != nil {
		t.Fatal(err)
	}
	keys := map[uint16]*dns.DNSKEY{}
	sets := map[string][]dns.RR{}
	var sigs []*dns.RRSIG
	for _, rr := range all {
		switch v := rr.(type) {
		case *dns.DNSKEY:
			keys[v.KeyTag()] = v
		case *dns.RRSIG:
			sigs = append(sigs, v)
			continue
		}
		k := strings.ToLower(rr.Header().Name) + " " + dns.Type(rr.Header().Rrtype).String()
		sets[k] = append(sets[k], rr)
	}
	bad := 0
	for _, sig := range sigs {
		k := strings.ToLower(sig.Hdr.Name) + " " + dns.Type(sig.TypeCovered).String()
		key := keys[sig.KeyTag]
		if key == nil || sig.Verify(key, sets[k]) != nil || !sig.ValidityPeriod(now) {
			if bad++; bad < 5 {
				t.Errorf("at %v: %s: signature by %d does not verify or is not valid", now, k, sig.KeyTag)
			}
		}
	}
	if len(sigs) == 0 {
		t.Fatal("no signatures")
	}
}

// TestSigningWritesOnlyWhatDiffers: enabling and disabling signing write
// the RRsets that change (the signatures, the NSEC chain, the apex's key
// RRsets and SOA), not the zone's data again, which stays in the database
// as it was. A trigger on the SQLite file counts the rows written.
func TestSigningWritesOnlyWhatDiffers(t *testing.T) {
	if onPostgres(t) {
		t.Skip("counts the rows written with an SQLite trigger")
	}
	ctx := t.Context()
	sl, _ := sealer(t)
	s, dir := newStore(t, store.WithSealer(sl), store.WithClock(time.Now))
	recs := signedBase(t)
	const hosts = 200
	for i := range hosts {
		recs = append(recs, rrs1(t, fmt.Sprintf("h%d.example.com. 300 IN A 192.0.2.%d", i, i%250+1)),
			rrs1(t, fmt.Sprintf("h%d.example.com. 300 IN TXT \"host %d\"", i, i)))
	}
	if _, err := s.CreateZone(ctx, "example.com.", recs, ""); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, "zones.db")+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`CREATE TABLE written (n INTEGER)`,
		`CREATE TRIGGER written_ins AFTER INSERT ON rrsets BEGIN INSERT INTO written VALUES (1); END`,
		`CREATE TRIGGER written_upd AFTER UPDATE ON rrsets BEGIN INSERT INTO written VALUES (1); END`,
		`CREATE TRIGGER written_del AFTER DELETE ON rrsets BEGIN INSERT INTO written VALUES (1); END`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	written := func() int {
		t.Helper()
		var n int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM written`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `DELETE FROM written`); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Each name gets an RRSIG and an NSEC RRset; the apex its DNSKEY and
	// its SOA; the data RRsets (2 per host) are not written again.
	names := hosts + 8
	if _, err := s.EnableSigning(ctx, "example.com.", "default", sign.DefaultPolicy()); err != nil {
		t.Fatal(err)
	}
	if n := written(); n > 2*names+4 {
		t.Errorf("enable signing of %d names wrote %d rows, want at most %d (the signatures and the chain)", names, n, 2*names+4)
	}
	z, _ := s.Zone(ctx, "example.com.")
	signtest.Verify(t, z)
	if _, err := s.DisableSigning(ctx, "example.com."); err != nil {
		t.Fatal(err)
	}
	if n := written(); n > 2*names+4 {
		t.Errorf("disable signing of %d names wrote %d rows, want at most %d", names, n, 2*names+4)
	}
	// What is in the database is the zone: a store opened on it has the
	// same version.
	want, _ := s.Zone(ctx, "example.com.")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := open(t, dir, store.WithSealer(sl), store.WithClock(time.Now))
	defer s2.Close()
	got, _ := s2.Zone(ctx, "example.com.")
	if text(t, got) != text(t, want) {
		t.Errorf("the database holds another zone than the store served:\n%s\nwant\n%s", text(t, got), text(t, want))
	}
}
