package store

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSubscriberQueue checks the queue without its goroutine: one event per
// zone, in the order zones first changed, merged as documented.
func TestSubscriberQueue(t *testing.T) {
	sub := &subscriber{pending: map[string]int{}, wake: make(chan struct{}, 1)}
	for _, ev := range []Event{
		{Zone: "a.", Serial: 1, Created: true},
		{Zone: "b.", Serial: 7},
		{Zone: "a.", Serial: 2},
		{Zone: "c.", Serial: 3, Created: true},
		{Zone: "c.", Serial: 3, Deleted: true},
		{Zone: "b.", Serial: 7, Deleted: true},
		{Zone: "b.", Serial: 1, Created: true},
		{Zone: "b.", Serial: 2},
	} {
		sub.push(ev)
	}
	var got []Event
	for {
		ev, ok := sub.pop()
		if !ok {
			break
		}
		got = append(got, ev)
	}
	want := []Event{
		{Zone: "a.", Serial: 2, Created: true}, // created then changed: still new to the reader
		{Zone: "b.", Serial: 2, Created: true}, // deleted and re-created
		{Zone: "c.", Serial: 3, Deleted: true}, // created and deleted
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("queue (-want +got):\n%s", diff)
	}
	sub.push(Event{Zone: "d.", Serial: 9})
	if ev, ok := sub.pop(); !ok || ev.Zone != "d." {
		t.Errorf("queue after draining: %+v %v", ev, ok)
	}
}
