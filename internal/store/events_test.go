package store_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/store"
)

func recv(t *testing.T, ch <-chan store.Event) store.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("channel closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	return store.Event{}
}

func TestSubscribe(t *testing.T) {
	ctx := t.Context()
	s, _ := newStore(t)
	ch, cancel := s.Subscribe()
	if _, err := s.CreateZone(ctx, "example.com.", baseZone(t), ""); err != nil {
		t.Fatal(err)
	}
	if got, want := recv(t, ch), (store.Event{Zone: "example.com.", Serial: 100, Created: true}); got != want {
		t.Errorf("event %+v, want %+v", got, want)
	}
	set := func(i int) {
		t.Helper()
		rr := &dns.A{Hdr: dns.RR_Header{Name: "a.example.com.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: []byte{192, 0, 2, byte(i)}}
		if _, err := s.SetRRset(ctx, "example.com.", "a.example.com.", dns.TypeA, []dns.RR{rr}); err != nil {
			t.Fatal(err)
		}
	}
	set(1)
	if got, want := recv(t, ch), (store.Event{Zone: "example.com.", Serial: 101}); got != want {
		t.Errorf("event %+v, want %+v", got, want)
	}
	// Nobody reads while 100 writes happen: they do not block, and the
	// reader then gets at most one event in flight plus one merged.
	for i := range 100 {
		set(i + 2)
	}
	var last store.Event
	for last.Serial != 201 {
		last = recv(t, ch)
	}
	select {
	case ev := <-ch:
		t.Errorf("extra event %+v", ev)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if _, ok := <-ch; ok {
		t.Error("channel open after cancel")
	}
	cancel() // twice is harmless
}

// TestSubscribeMerge makes changes nobody reads at once; whatever the
// subscriber's goroutine holds in flight, the last event of each zone tells
// its final state.
func TestSubscribeMerge(t *testing.T) {
	ctx := t.Context()
	s, _ := newStore(t)
	ch, cancel := s.Subscribe()
	defer cancel()
	if _, err := s.CreateZone(ctx, "example.com.", baseZone(t), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateZone(ctx, "example.org.", rrsFor(t, "example.org."), ""); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteZone(ctx, "example.com."); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateZone(ctx, "example.com.", baseZone(t), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteRRset(ctx, "example.com.", "www.example.com.", dns.TypeA); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteZone(ctx, "example.org."); err != nil {
		t.Fatal(err)
	}
	var got []store.Event
	last := map[string]store.Event{}
	createdAfterDelete := false
	for {
		select {
		case ev := <-ch:
			got = append(got, ev)
			if ev.Zone == "example.com." && last["example.com."].Deleted && ev.Created {
				createdAfterDelete = true
			}
			last[ev.Zone] = ev
			continue
		case <-time.After(200 * time.Millisecond):
		}
		break
	}
	if len(got) > 4 {
		t.Errorf("%d events for 6 changes of 2 zones read late: %+v", len(got), got)
	}
	want := map[string]store.Event{
		"example.com.": {Zone: "example.com.", Serial: 101, Created: true},
		"example.org.": {Zone: "example.org.", Serial: 1, Deleted: true},
	}
	// The re-creation of example.com. shows as Created on the merged
	// event unless the reader saw the deletion on its own first.
	if createdAfterDelete || last["example.com."].Created {
		if diff := cmp.Diff(want, last); diff != "" {
			t.Errorf("last events (-want +got):\n%s\nall: %+v", diff, got)
		}
	} else {
		t.Errorf("the re-creation of example.com. was not reported: %+v", got)
	}
}

func rrsFor(t *testing.T, origin string) []dns.RR {
	return rrs(t,
		origin+" 3600 IN SOA ns1."+origin+" h."+origin+" 1 7200 3600 1209600 300",
		origin+" 3600 IN NS ns1.example.net.",
	)
}

func TestCloseEndsSubscriptions(t *testing.T) {
	s := open(t, t.TempDir())
	ch, cancel := s.Subscribe()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-ch; ok {
		t.Error("channel open after Close")
	}
	cancel()
	ch2, cancel2 := s.Subscribe()
	if _, ok := <-ch2; ok {
		t.Error("subscription after Close is open")
	}
	cancel2()
}
