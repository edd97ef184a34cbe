package store_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/store"
)

// TestConcurrentWriters runs goroutines that increment one counter with
// read-modify-write (UpdateRRset) beside goroutines that each write their
// own RRsets. No update may be lost, every write gets its own serial, and
// the change log holds every step in order.
func TestConcurrentWriters(t *testing.T) {
	ctx := t.Context()
	s, _ := newStore(t, store.WithJournalLimit(10000))
	if _, err := s.CreateZone(ctx, "example.com.", baseZone(t), ""); err != nil {
		t.Fatal(err)
	}
	const (
		counters   = 8  // goroutines incrementing the shared counter
		increments = 25 // each
		writers    = 8  // goroutines writing their own RRsets
		writes     = 25 // each
	)
	var wg sync.WaitGroup
	errs := make(chan error, counters+writers)
	for range counters {
		wg.Go(func() {
			for range increments {
				_, _, err := s.UpdateRRset(ctx, "example.com.", "counter.example.com.", dns.TypeTXT, func(cur []dns.RR) ([]dns.RR, error) {
					n := 0
					if len(cur) == 1 {
						v, err := strconv.Atoi(cur[0].(*dns.TXT).Txt[0])
						if err != nil {
							return nil, err
						}
						n = v
					}
					rr := &dns.TXT{Hdr: dns.RR_Header{Name: "counter.example.com.", Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
						Txt: []string{strconv.Itoa(n + 1)}}
					return []dns.RR{rr}, nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	serials := make(chan uint32, writers*writes)
	for w := range writers {
		wg.Go(func() {
			for i := range writes {
				name := fmt.Sprintf("w%d.example.com.", w)
				rr := &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}}
				rr.A = []byte{192, 0, 2, byte(i)}
				serial, err := s.SetRRset(ctx, "example.com.", name, dns.TypeA, []dns.RR{rr})
				if err != nil {
					errs <- err
					return
				}
				serials <- serial
			}
		})
	}
	wg.Wait()
	close(errs)
	close(serials)
	for err := range errs {
		t.Fatal(err)
	}
	got, err := s.RRset(ctx, "example.com.", "counter.example.com.", dns.TypeTXT)
	if err != nil {
		t.Fatal(err)
	}
	if want := strconv.Itoa(counters * increments); got[0].(*dns.TXT).Txt[0] != want {
		t.Errorf("counter = %s, want %s: updates were lost", got[0].(*dns.TXT).Txt[0], want)
	}
	for w := range writers {
		got, err := s.RRset(ctx, "example.com.", fmt.Sprintf("w%d.example.com.", w), dns.TypeA)
		if err != nil || got[0].(*dns.A).A[3] != writes-1 {
			t.Errorf("w%d = %v, %v; want its last write", w, got, err)
		}
	}
	seen := map[uint32]bool{}
	for serial := range serials {
		if seen[serial] {
			t.Errorf("serial %d returned twice", serial)
		}
		seen[serial] = true
	}
	total := uint32(counters*increments + writers*writes)
	z, _ := s.Zone(ctx, "example.com.")
	if z.Serial != 100+total {
		t.Errorf("serial %d, want %d (one per write)", z.Serial, 100+total)
	}
	changes, err := s.Changes(ctx, "example.com.", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != int(total) {
		t.Errorf("%d changes logged, want %d", len(changes), total)
	}
}

// TestReadersDuringWrites reads zones and the change log while writes run;
// the race detector checks the rest.
func TestReadersDuringWrites(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s, _ := newStore(t)
	if _, err := s.CreateZone(ctx, "example.com.", baseZone(t), ""); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				z, err := s.Zone(ctx, "example.com.")
				if err != nil {
					return
				}
				if _, err := s.Changes(ctx, "example.com.", 100); err != nil && ctx.Err() == nil {
					t.Errorf("Changes: %v", err)
					return
				}
				if _, err := z.RRs(); err != nil {
					t.Errorf("RRs: %v", err)
					return
				}
			}
		})
	}
	for i := range 50 {
		rr := &dns.A{Hdr: dns.RR_Header{Name: "x.example.com.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: []byte{192, 0, 2, byte(i)}}
		if _, err := s.SetRRset(ctx, "example.com.", "x.example.com.", dns.TypeA, []dns.RR{rr}); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	wg.Wait()
}
