package store_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/testkit/pgtest"
)

// TestReplicas is the concurrency test of issue 17: two stores on one
// PostgreSQL database (two control-plane replicas), each with 8 writers
// making 500 changes to one zone. Every acknowledged write is present in
// both replicas and in the database, every serial was given once, each
// writer saw its serials increase, the change log is one chain through
// every acknowledged serial, and both replicas converge on the database's
// version through the notifications alone.
func TestReplicas(t *testing.T) {
	const replicas, writers, changes = 2, 8, 500
	dsn := pgtest.Shared(t).NewDatabase(t)
	ctx := t.Context()
	opts := []store.Option{store.WithJournalLimit(replicas*writers*changes + 10)}
	var ss [replicas]*store.Store
	for i := range ss {
		s, err := store.OpenPostgres(ctx, dsn, nil, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Error(err)
			}
		})
		ss[i] = s
	}
	info, err := ss[0].CreateZone(ctx, "example.com.", baseZone(t), store.SerialIncrement)
	if err != nil {
		t.Fatal(err)
	}
	type ack struct {
		name   string
		serial uint32
	}
	acks := make([][]ack, replicas*writers)
	errs := make([][]error, replicas*writers)
	var wg sync.WaitGroup
	start := time.Now()
	for r := range replicas {
		for w := range writers {
			wg.Go(func() {
				k := r*writers + w
				for n := range changes {
					name := fmt.Sprintf("c%d.w%d.r%d.example.com.", n, w, r)
					rr, err := dns.NewRR(fmt.Sprintf("%s 60 IN A 192.0.2.%d", name, 1+n%250))
					if err != nil {
						errs[k] = append(errs[k], err)
						return
					}
					serial, err := ss[r].SetRRset(ctx, "example.com.", name, dns.TypeA, []dns.RR{rr})
					if err != nil {
						errs[k] = append(errs[k], fmt.Errorf("replica %d writer %d change %d: %w", r, w, n, err))
						continue
					}
					acks[k] = append(acks[k], ack{name, serial})
				}
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	total := 0
	for k := range acks {
		total += len(acks[k])
		for _, err := range errs[k] {
			t.Error(err)
		}
	}
	t.Logf("%d replicas x %d writers x %d changes on one zone: %d acknowledged in %v, %.0f writes/s",
		replicas, writers, changes, total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds())
	if total != replicas*writers*changes {
		t.Errorf("%d writes acknowledged, want %d", total, replicas*writers*changes)
	}

	// Serials: once each, increasing for each writer.
	seen := map[uint32]string{}
	for k, list := range acks {
		for i, a := range list {
			if other, dup := seen[a.serial]; dup {
				t.Fatalf("serial %d given to %s and to %s", a.serial, other, a.name)
			}
			seen[a.serial] = a.name
			if i > 0 && a.serial <= list[i-1].serial {
				t.Errorf("writer %d: serial %d after %d", k, a.serial, list[i-1].serial)
			}
		}
	}

	// Both replicas converge on the database's version, by notification.
	check, err := store.OpenPostgres(ctx, dsn, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer check.Close()
	want, wz, err := check.Get(ctx, "example.com.")
	if err != nil {
		t.Fatal(err)
	}
	if want.Serial != info.Serial+uint32(total) {
		t.Errorf("serial %d in the database, want %d (+%d)", want.Serial, info.Serial+uint32(total), total)
	}
	for i, s := range ss {
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, z, err := s.Get(ctx, "example.com.")
			if err == nil && got.Serial == want.Serial {
				if text(t, z) != text(t, wz) {
					t.Errorf("replica %d at serial %d differs from the database", i, got.Serial)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %d at serial %d (%v), the database at %d", i, got.Serial, err, want.Serial)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Every acknowledged write is there.
	for _, list := range acks {
		for _, a := range list {
			if _, err := check.RRset(ctx, "example.com.", a.name, dns.TypeA); err != nil {
				t.Fatalf("acknowledged write of %s (serial %d) is missing: %v", a.name, a.serial, err)
			}
		}
	}
	// The change log is one chain from the created zone through every
	// acknowledged serial, readable through either replica.
	for i, s := range ss {
		log, err := s.Changes(ctx, "example.com.", info.Serial)
		if err != nil {
			t.Fatalf("replica %d: change log: %v", i, err)
		}
		var tos []uint32
		for _, c := range log {
			tos = append(tos, c.To)
		}
		var acked []uint32
		for sr := range seen {
			acked = append(acked, sr)
		}
		slices.Sort(acked)
		if !slices.Equal(tos, acked) {
			t.Fatalf("replica %d: the change log has %d steps, %d writes were acknowledged", i, len(tos), len(acked))
		}
	}
}

// TestReplicaStaleWrite: a write on a replica whose copy of the zone is
// behind (the notification not handled yet) starts from the database's
// version: no update is lost and the serial is the next one. The zone is
// changed on one replica while the other's listener is kept from running
// by holding nothing but time: the write follows at once.
func TestReplicaStaleWrite(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	ctx := t.Context()
	a, err := store.OpenPostgres(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := store.OpenPostgres(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := a.CreateZone(ctx, "example.com.", baseZone(t), ""); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		// Alternate replicas without waiting for any notification.
		s1, s2 := a, b
		if i%2 == 1 {
			s1, s2 = b, a
		}
		n1 := fmt.Sprintf("x%d.example.com.", i)
		sr1, err := s1.SetRRset(ctx, "example.com.", n1, dns.TypeA, rrs(t, n1+" 60 IN A 192.0.2.1"))
		if err != nil {
			t.Fatal(err)
		}
		n2 := fmt.Sprintf("y%d.example.com.", i)
		sr2, err := s2.SetRRset(ctx, "example.com.", n2, dns.TypeA, rrs(t, n2+" 60 IN A 192.0.2.2"))
		if err != nil {
			t.Fatal(err)
		}
		if sr2 != sr1+1 {
			t.Fatalf("step %d: serial %d after %d on the other replica", i, sr2, sr1)
		}
		if _, err := s2.RRset(ctx, "example.com.", n1, dns.TypeA); err != nil {
			t.Fatalf("step %d: the other replica's write is lost: %v", i, err)
		}
	}
	// A zone deleted on one replica is gone on the other for writes too.
	if err := a.DeleteZone(ctx, "example.com."); err != nil {
		t.Fatal(err)
	}
	if _, err := b.SetRRset(ctx, "example.com.", "z.example.com.", dns.TypeA, rrs(t, "z.example.com. 60 IN A 192.0.2.3")); err == nil {
		t.Fatal("write to a zone deleted on the other replica succeeded")
	}
	if _, err := b.CreateZone(ctx, "example.com.", baseZone(t), ""); err != nil {
		t.Fatalf("create again on the other replica: %v", err)
	}
	if _, err := a.CreateZone(ctx, "example.com.", baseZone(t), ""); err == nil {
		t.Fatal("the zone was created twice, once on each replica")
	}
}

// TestReplicaListenerReconnects: a replica whose notification connection
// is cut (its backend terminated, as at a database restart or failover)
// connects again and catches up with the commits it missed.
func TestReplicaListenerReconnects(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	ctx := t.Context()
	a, err := store.OpenPostgres(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := store.OpenPostgres(ctx, dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := a.CreateZone(ctx, "example.com.", baseZone(t), ""); err != nil {
		t.Fatal(err)
	}
	admin, err := store.OpenPostgres(ctx, dsn, nil) // any connection can terminate the others
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if n, err := admin.TerminateListeners(ctx); err != nil || n != 3 {
		t.Fatalf("terminated %d listeners (%v), want the 3 replicas'", n, err)
	}
	serial, err := b.SetRRset(ctx, "example.com.", "x.example.com.", dns.TypeA, rrs(t, "x.example.com. 60 IN A 192.0.2.1"))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, _, err := a.Get(ctx, "example.com.")
		if err == nil && info.Serial == serial {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica a at %d (%v) 10 s after its listener was cut, b wrote %d", info.Serial, err, serial)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
