package store

import "sync"

// Subscribe returns a channel of zone events, sent after each write has
// committed, and a function that ends the subscription and closes the
// channel. A subscriber that reads slowly never holds up writers: the events
// of a zone that wait to be read are merged into one carrying the newest
// serial. Events of one zone arrive in order. Close ends every
// subscription.
func (s *Store) Subscribe() (<-chan Event, func()) {
	sub := &subscriber{
		out:     make(chan Event),
		pending: map[string]int{},
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		exited:  make(chan struct{}),
	}
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		close(sub.out)
		return sub.out, func() {}
	}
	s.subs.add(sub)
	go sub.run()
	return sub.out, func() {
		s.subs.remove(sub)
		sub.stop()
	}
}

type subscribers struct {
	mu   sync.Mutex
	list []*subscriber
}

func (ss *subscribers) add(sub *subscriber) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.list = append(ss.list, sub)
}

func (ss *subscribers) remove(sub *subscriber) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for i, x := range ss.list {
		if x == sub {
			ss.list = append(ss.list[:i], ss.list[i+1:]...)
			return
		}
	}
}

func (ss *subscribers) publish(ev Event) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, sub := range ss.list {
		sub.push(ev)
	}
}

func (ss *subscribers) closeAll() {
	ss.mu.Lock()
	list := ss.list
	ss.list = nil
	ss.mu.Unlock()
	for _, sub := range list {
		sub.stop()
	}
}

// subscriber queues at most one event per zone; a goroutine hands them to
// the reader in the order the zones first changed.
type subscriber struct {
	out     chan Event
	mu      sync.Mutex
	q       []Event        // waiting events
	pending map[string]int // zone -> index in q
	wake    chan struct{}
	done    chan struct{}
	exited  chan struct{}
	once    sync.Once
}

// push queues ev, merging it with a waiting event of the same zone. It never
// blocks.
func (sub *subscriber) push(ev Event) {
	sub.mu.Lock()
	if i, ok := sub.pending[ev.Zone]; ok {
		sub.q[i] = merge(sub.q[i], ev)
	} else {
		sub.pending[ev.Zone] = len(sub.q)
		sub.q = append(sub.q, ev)
	}
	sub.mu.Unlock()
	select {
	case sub.wake <- struct{}{}:
	default:
	}
}

// merge folds a newer event into an older one of the same zone that was not
// read yet: the newest serial and state, and Created if the zone was
// (re-)created in between and still exists.
func merge(old, ev Event) Event {
	if !ev.Deleted && old.Created {
		ev.Created = true
	}
	return ev
}

func (sub *subscriber) pop() (Event, bool) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if len(sub.q) == 0 {
		return Event{}, false
	}
	ev := sub.q[0]
	sub.q = sub.q[1:]
	delete(sub.pending, ev.Zone)
	for z, i := range sub.pending {
		sub.pending[z] = i - 1
	}
	if len(sub.q) == 0 {
		sub.q = nil
	}
	return ev, true
}

func (sub *subscriber) run() {
	defer close(sub.exited)
	defer close(sub.out)
	for {
		select {
		case <-sub.wake:
		case <-sub.done:
			return
		}
		for {
			ev, ok := sub.pop()
			if !ok {
				break
			}
			select {
			case sub.out <- ev:
			case <-sub.done:
				return
			}
		}
	}
}

// stop ends the subscription and waits until the channel is closed.
func (sub *subscriber) stop() {
	sub.once.Do(func() { close(sub.done) })
	<-sub.exited
}
