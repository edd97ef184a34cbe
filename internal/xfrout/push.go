package xfrout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/store"
	fleetstream "github.com/anycastdns/anycastdns/internal/stream"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// StreamSource returns the server's zones, the catalog zone included, as
// the control plane's stream pushes them to the nodes (package stream):
// the same versions, change log and catalog that NOTIFY, IXFR and AXFR
// serve, written by the same message writer. It is usable once Ready is
// closed.
func (s *Server) StreamSource() fleetstream.Source { return pushSource{s} }

type pushSource struct{ s *Server }

var _ fleetstream.Source = pushSource{}

func (p pushSource) Catalog() string {
	if p.s.cat == nil {
		return ""
	}
	return p.s.cat.name
}

// Zones returns the current serial of every zone and of the catalog.
func (p pushSource) Zones(ctx context.Context) (map[string]uint32, error) {
	infos, err := p.s.src.ListZones(ctx)
	if err != nil {
		return nil, fmt.Errorf("list zones: %w", err)
	}
	out := make(map[string]uint32, len(infos)+1)
	for _, zi := range infos {
		out[dns.CanonicalName(zi.Name)] = zi.Serial
	}
	if c := p.s.cat; c != nil {
		delete(out, c.name) // a zone named like the catalog is not served
		if z := c.current(); z != nil {
			out[c.name] = z.Serial
		}
	}
	return out, nil
}

// Subscribe merges the source's zone events and the catalog's new
// versions.
func (p pushSource) Subscribe() (<-chan fleetstream.Event, func()) {
	events, unsubscribe := p.s.src.Subscribe()
	catalog, unsubscribeCatalog := p.s.subscribeCatalog()
	out := make(chan fleetstream.Event)
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		defer close(out)
		for {
			var ev fleetstream.Event
			select {
			case <-done:
				return
			case e, ok := <-events:
				if !ok {
					return
				}
				name := dns.CanonicalName(e.Zone)
				if p.s.cat != nil && name == p.s.cat.name {
					continue
				}
				ev = fleetstream.Event{Zone: name, Serial: e.Serial, Deleted: e.Deleted}
			case <-catalog:
				z := p.s.cat.current()
				if z == nil {
					continue
				}
				ev = fleetstream.Event{Zone: p.s.cat.name, Serial: z.Serial}
			}
			select {
			case out <- ev:
			case <-done:
				return
			}
		}
	}()
	var once sync.Once
	return out, func() {
		once.Do(func() {
			close(done)
			<-exited
			unsubscribe()
			unsubscribeCatalog()
		})
	}
}

// Transfer writes the IXFR answer that brings a secondary from serial from
// to the current version (the whole zone AXFR-style when the change log
// does not reach back), or the AXFR when full, each message passed to
// send. The answers carry no TSIG: the stream authenticates every frame.
func (p pushSource) Transfer(ctx context.Context, name string, from uint32, full bool, send func([]byte) error) (uint32, bool, error) {
	s := p.s
	name = dns.CanonicalName(name)
	z, err := s.currentZone(ctx, name)
	if err != nil {
		return 0, false, err
	}
	if !full && !zone.SerialLess(from, z.Serial) {
		return z.Serial, false, nil
	}
	qname, err := nameWireAsIs(name)
	if err != nil {
		return 0, false, err
	}
	st := &stream{
		limit: s.cfg.MessageSize, flags: flagQR | flagAA, qname: qname, qtype: dns.TypeIXFR,
		send: func(frame []byte) error { return send(frame[2:]) },
	}
	if full {
		st.qtype = dns.TypeAXFR
	} else {
		changes, err := s.changes(ctx, name, from)
		switch {
		case err == nil && len(changes) == 0:
			return from, false, nil // the zone moved back to from meanwhile
		case err == nil && checkChain(changes, from) == nil:
			if err := s.sendChanges(st, changes); err != nil {
				return 0, false, err
			}
			s.met.bytes.WithLabelValues("stream").Add(float64(st.bytes))
			return changes[len(changes)-1].To, true, nil
		case err == nil:
			s.log.Error("change log unusable, pushing the whole zone", "zone", name, "from_serial", from, "err", checkChain(changes, from))
		case !errors.Is(err, store.ErrNoJournal):
			return 0, false, fmt.Errorf("changes of %s from %d: %w", name, from, err)
		}
		// Not in the change log: the whole zone, AXFR-style, which the
		// node applies in place of its version.
	}
	if err := st.zone(z); err != nil {
		return 0, false, err
	}
	if err := st.soa(z); err != nil {
		return 0, false, err
	}
	if err := st.flush(); err != nil {
		return 0, false, err
	}
	s.met.bytes.WithLabelValues("stream").Add(float64(st.bytes))
	return z.Serial, true, nil
}

// catalogSubs are the subscribers to new catalog versions: each a channel
// of capacity 1, so that versions a slow reader missed merge into one.
type catalogSubs struct {
	mu   sync.Mutex
	subs []chan struct{}
}

func (s *Server) subscribeCatalog() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.catSubs.mu.Lock()
	s.catSubs.subs = append(s.catSubs.subs, ch)
	s.catSubs.mu.Unlock()
	return ch, func() {
		s.catSubs.mu.Lock()
		defer s.catSubs.mu.Unlock()
		s.catSubs.subs = slices.DeleteFunc(s.catSubs.subs, func(c chan struct{}) bool { return c == ch })
	}
}

// catalogChanged tells the subscribers that the catalog has a new version.
func (s *Server) catalogChanged() {
	s.catSubs.mu.Lock()
	defer s.catSubs.mu.Unlock()
	for _, ch := range s.catSubs.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
