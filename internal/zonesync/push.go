package zonesync

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/zone"
)

// A control plane's stream (package stream) pushes each committed change
// to the node the moment it commits: the DNS messages of the IXFR answer
// (or the AXFR) that the node would have asked for, from the serial the
// node holds. ApplyPushed hands them to the zone's loop, which parses them
// with the transfer parser and builds, validates, installs and persists
// the new version as after a refresh: one code path whichever way a
// version arrives, and one version at a time per zone.

// StreamGrace is how long a node with a live stream leaves the stream to
// deliver what would otherwise make a zone refresh at once: a NOTIFY (the
// same change reaches the node over the stream at the same moment), and
// the first transfer of a zone that a catalog pushed over the stream just
// added. Past it, the usual refresh runs: the stream is an accelerator,
// NOTIFY, IXFR and AXFR stay the fallback.
const StreamGrace = 2 * time.Second

// PushResult is the outcome of a pushed transfer.
type PushResult struct {
	// Serial is the serial the zone holds afterwards, 0 when it has no
	// data.
	Serial uint32
	// Applied: the zone now holds the pushed version (it was installed,
	// or the zone already had it or a newer one).
	Applied bool
	// Unknown: the node has no secondary zone of that name.
	Unknown bool
	// NeedFull: the push was a difference but the zone holds no version
	// it may apply one to (none, or an unverified copy from disk).
	NeedFull bool
}

type pushReq struct {
	msgs   [][]byte
	source string
	done   chan pushDone
}

type pushDone struct {
	res PushResult
	err error
}

// ErrNotRunning is the error of a pushed transfer that came before Run or
// after it ended.
var ErrNotRunning = errors.New("zonesync is not running")

// ApplyPushed applies a transfer pushed by source (a control plane's
// stream) to a secondary zone: msgs are the DNS messages of an IXFR answer
// from the zone's serial, or of an AXFR. It waits until the zone's loop
// has installed and persisted the new version, or refused it; the error
// says why it was not applied. A zone that does not exist is
// PushResult.Unknown, without an error.
func (m *Manager) ApplyPushed(ctx context.Context, name string, msgs [][]byte, source string) (PushResult, error) {
	name = dns.CanonicalName(name)
	m.mu.RLock()
	s := m.zones[name]
	var done chan struct{}
	if s != nil {
		done = s.done
	}
	m.mu.RUnlock()
	if s == nil {
		return PushResult{Unknown: true}, nil
	}
	if done == nil {
		return PushResult{}, fmt.Errorf("push %s: %w", name, ErrNotRunning)
	}
	req := &pushReq{msgs: msgs, source: source, done: make(chan pushDone, 1)}
	select {
	case s.push <- req:
	case <-done:
		// Stopped: removed from the catalog meanwhile, or shutting down.
		return PushResult{Unknown: true}, nil
	case <-ctx.Done():
		return PushResult{}, ctx.Err()
	}
	d := <-req.done // the loop always answers a request it took
	return d.res, d.err
}

// applyPush runs in the zone's loop. It returns the refresh interval and
// true when the push confirmed the zone (a new version, or the one it
// has), which restarts the refresh timer as a refresh would.
func (s *secondary) applyPush(req *pushReq) (time.Duration, bool) {
	res, updated, err := s.pushed(req)
	ok := err == nil && res.Applied
	var next time.Duration
	if ok {
		// As after a refresh: the zone is confirmed (expire timer) and
		// the version persisted, in the background: the next change of
		// the stream does not wait for the disk.
		next = s.confirmed(req.source, updated, false)
	}
	req.done <- pushDone{res, err}
	return next, ok
}

// pushed parses and installs a pushed transfer; updated reports a new
// version.
func (s *secondary) pushed(req *pushReq) (_ PushResult, updated bool, _ error) {
	m := s.m
	s.mu.Lock()
	cur, unverified := s.z, s.unverified
	s.mu.Unlock()
	held := uint32(0)
	var have *dns.SOA
	if cur != nil {
		held = cur.Serial
		if !unverified {
			have = cur.SOA()
		}
	}
	p := newParser(s.name, have, m.cfg.MaxRecords)
	err := feedMessages(p, req.msgs)
	if err == nil && !p.done {
		err = fmt.Errorf("%w: the transfer ends before its closing SOA", ErrStream)
	}
	if err != nil {
		if have == nil {
			// Nothing to apply differences to: only the whole zone
			// will do.
			return PushResult{Serial: held, NeedFull: true}, false, fmt.Errorf("pushed transfer of %s: %w", s.name, err)
		}
		m.met.transfers.WithLabelValues("stream", resultOf(err)).Inc()
		return PushResult{Serial: held}, false, fmt.Errorf("pushed transfer of %s: %w", s.name, err)
	}
	if p.kind == kindUpToDate {
		return PushResult{Serial: held, Applied: true}, false, nil
	}
	if p.kind == kindFull && cur != nil && !unverified && p.first.Serial == cur.Serial {
		// The version we hold, sent whole (the server did not know our
		// serial): nothing to do.
		return PushResult{Serial: held, Applied: true}, false, nil
	}
	if p.kind == kindFull && cur != nil && !unverified && !zone.SerialLess(cur.Serial, p.first.Serial) {
		s.m.log.Warn("pushed zone is older than ours; keeping ours", "zone", s.name, "source", req.source, "pushed_serial", p.first.Serial, "serial", cur.Serial)
		return PushResult{Serial: held}, false, fmt.Errorf("pushed transfer of %s: serial %d is not newer than %d", s.name, p.first.Serial, cur.Serial)
	}
	label := "axfr_stream"
	if p.kind == kindDelta {
		label = "ixfr_stream"
	}
	nz, err := s.buildFrom(p, cur, req.source)
	if err != nil {
		m.met.transfers.WithLabelValues(label, resultOf(err)).Inc()
		if errors.Is(err, ErrDiverged) && unverified {
			return PushResult{Serial: held, NeedFull: true}, false, fmt.Errorf("pushed transfer of %s: %w", s.name, err)
		}
		return PushResult{Serial: held}, false, fmt.Errorf("pushed transfer of %s: %w", s.name, err)
	}
	m.met.transfers.WithLabelValues(label, "ok").Inc()
	s.install(nz)
	return PushResult{Serial: nz.Serial, Applied: true}, true, nil
}

// feedMessages parses the answer records of each DNS message in turn.
func feedMessages(p *xfrParser, msgs [][]byte) error {
	for i, raw := range msgs {
		var msg dns.Msg
		if err := msg.Unpack(raw); err != nil {
			return fmt.Errorf("%w: message %d: %w", ErrStream, i+1, err)
		}
		if msg.Rcode != dns.RcodeSuccess {
			return fmt.Errorf("%w: message %d has rcode %s", ErrStream, i+1, dns.RcodeToString[msg.Rcode])
		}
		for _, rr := range msg.Answer {
			if p.done && p.kind == kindUpToDate {
				// A difference that ends at a serial we have (resent
				// after a reconnect): the rest is of no use.
				return nil
			}
			if err := p.next(rr); err != nil {
				return err
			}
		}
	}
	return nil
}

// Serials returns the serial of every secondary zone the node follows,
// the catalog zone included: 0 for a zone that has no data yet. A stream
// resumes from them.
func (m *Manager) Serials() map[string]uint32 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make(map[string]uint32, len(m.zones))
	for name, s := range m.zones {
		s.mu.Lock()
		if s.z != nil && !s.unverified {
			out[name] = s.z.Serial
		} else {
			out[name] = 0
		}
		s.mu.Unlock()
	}
	return out
}

// CatalogZone returns the name of the configured catalog zone, "" when
// there is none.
func (m *Manager) CatalogZone() string { return m.catName }

// SetStreamLive tells the manager how to know whether a control plane's
// stream is delivering changes: while live returns true, a NOTIFY and the
// first refresh of a new catalog member wait StreamGrace for the stream
// before they refresh. Call it before Run.
func (m *Manager) SetStreamLive(live func() bool) {
	m.fnMu.Lock()
	m.streamLive = live
	m.fnMu.Unlock()
}

func (m *Manager) streaming() bool {
	m.fnMu.Lock()
	live := m.streamLive
	m.fnMu.Unlock()
	return live != nil && live()
}

// deferNotify makes a NOTIFY for serial (0: none given) refresh the zone
// after StreamGrace unless the stream brought that serial meanwhile. It
// reports false when no stream is live: the NOTIFY refreshes at once.
func (m *Manager) deferNotify(s *secondary, serial uint32) bool {
	if !m.streaming() {
		return false
	}
	time.AfterFunc(StreamGrace, func() {
		cur, expired := s.serving()
		if serial == 0 || cur == nil || expired || zone.SerialLess(cur.Serial, serial) {
			m.log.Debug("notify not answered by the stream in time; refreshing", "zone", s.name, "serial", serial)
			s.kick()
		}
	})
	return true
}
