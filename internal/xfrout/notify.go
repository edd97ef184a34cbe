package xfrout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/tsig"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// Outcomes of the NOTIFYs of one serial to one target, the "result" label.
const (
	notifyOK         = "ok"         // acknowledged
	notifyRejected   = "rejected"   // answered with an error rcode: not retried
	notifyFailed     = "failed"     // unanswered after every try
	notifySuperseded = "superseded" // unanswered, then a newer serial replaced it
)

// errRejected: the target answered the NOTIFY with an error rcode.
var errRejected = errors.New("notify rejected")

// errNotServed: the target answered NOTAUTH without a TSIG error: it is not
// authoritative for the zone, typically not yet, as a secondary that learns
// of a new zone from the catalog sent at the same moment. It wraps
// errRejected.
var errNotServed = fmt.Errorf("%w: the target does not serve the zone (yet)", errRejected)

// notifier sends NOTIFY (RFC 1996) to every target for each new serial of a
// zone. Each target has a queue of zones and NotifyConcurrency workers; a
// zone is never sent to one target twice at once. An unanswered NOTIFY is
// retried after NotifyBackoff, doubling, until NotifyTries were sent; a
// newer serial of the zone ends the retries of the older one and is sent at
// once, with tries of its own.
type notifier struct {
	tries   int
	backoff time.Duration
	workers int
	timeout time.Duration
	log     *slog.Logger
	met     *metricsSet
	// soa returns the current SOA of a zone (sent in the answer section);
	// an error matching store.ErrNotFound drops the zone's NOTIFYs.
	soa func(ctx context.Context, zone string) (*dns.SOA, error)
	// send sends one NOTIFY and waits for its answer: nil when
	// acknowledged, an error matching errRejected when refused, another
	// error when unanswered.
	send func(ctx context.Context, t *target, m *dns.Msg) error

	mu      sync.Mutex
	targets []*target       // replaced by setTargets
	ctx     context.Context // of run while it runs, else nil
	wg      sync.WaitGroup  // the targets' workers
}

// target is one secondary and its queue.
type target struct {
	addr   netip.AddrPort
	key    string             // canonical name of the key it signs with; "" = unsigned
	ring   *tsig.Keyring      // that key alone, as it was when the target was made
	client *dns.Client        // signs with ring
	stop   context.CancelFunc // ends the target's workers; nil before they start

	mu    sync.Mutex
	jobs  map[string]*job // zone → its pending NOTIFY
	queue []*job          // jobs to send now, in order
	wake  chan struct{}   // a job was queued
}

// job is the pending NOTIFY of one zone to one target.
type job struct {
	zone     string
	serial   uint32 // the newest serial to announce
	tries    int    // NOTIFYs of serial sent unanswered
	queued   bool
	inflight bool
	timer    *time.Timer // waiting to retry
	gen      int         // invalidates a timer that was stopped too late
}

func newNotifier(cfg Config, ring *tsig.Keyring, log *slog.Logger, met *metricsSet, soa func(context.Context, string) (*dns.SOA, error)) *notifier {
	n := &notifier{
		tries: cfg.NotifyTries, backoff: cfg.NotifyBackoff, workers: cfg.NotifyConcurrency,
		timeout: cfg.NotifyTimeout, log: log, met: met, soa: soa,
	}
	n.send = func(ctx context.Context, t *target, m *dns.Msg) error {
		return exchangeNotify(ctx, t.client, t, m)
	}
	for _, nt := range cfg.Notify {
		n.targets = append(n.targets, n.newTarget(nt, ring))
	}
	return n
}

// newTarget returns the target of nt, its key taken from ring.
func (n *notifier) newTarget(nt NotifyTarget, ring *tsig.Keyring) *target {
	t := &target{addr: nt.Addr, jobs: map[string]*job{}, wake: make(chan struct{}, 1)}
	t.client = &dns.Client{Net: "udp", Timeout: n.timeout}
	// Each target signs with its own key: a reconfiguration that
	// changes the keys does not change what a running target signs with.
	if nt.Key != "" {
		if t.ring = ring.Only(nt.Key); t.ring != nil {
			t.key = dns.CanonicalName(nt.Key)
			t.client.TsigProvider = t.ring
		}
	}
	return t
}

// sameKey reports whether two targets sign alike.
func sameKey(a, b *target) bool { return a.key == b.key && a.ring.Equal(b.ring) }

// setTargets replaces the targets by those of list. A target whose address
// and key are unchanged is kept with its queue; one that is gone stops
// and drops its pending NOTIFYs; a new one starts when the notifier runs.
// It returns the new targets.
func (n *notifier) setTargets(list []NotifyTarget, ring *tsig.Keyring) []*target {
	n.mu.Lock()
	defer n.mu.Unlock()
	kept := map[*target]bool{}
	var next, added []*target
	for _, nt := range list {
		var t *target
		want := n.newTarget(nt, ring)
		for _, old := range n.targets {
			if !kept[old] && old.addr == want.addr && sameKey(old, want) {
				t = old
				break
			}
		}
		if t == nil {
			t = want
			added = append(added, t)
			if n.ctx != nil {
				n.start(t)
			}
		}
		kept[t] = true
		next = append(next, t)
	}
	for _, old := range n.targets {
		if !kept[old] {
			if old.stop != nil {
				old.stop()
			}
			old.clear()
		}
	}
	n.targets = next
	return added
}

// current returns the targets.
func (n *notifier) current() []*target {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.targets
}

// exchangeNotify sends m to t over UDP and checks the answer.
func exchangeNotify(ctx context.Context, c *dns.Client, t *target, m *dns.Msg) error {
	r, _, err := c.ExchangeContext(ctx, m, t.addr.String())
	if err != nil {
		if r != nil && r.Id == m.Id && r.Response && r.Rcode != dns.RcodeSuccess {
			// An error answer whose TSIG miekg/dns cannot check (it
			// refuses to verify any NOTAUTH): final all the same, as
			// retrying would only repeat it.
			return rejection(r)
		}
		return err
	}
	if t.key != "" && r.IsTsig() == nil {
		return errors.New("unsigned answer to a signed notify")
	}
	if r.Opcode != dns.OpcodeNotify || r.Rcode != dns.RcodeSuccess {
		return rejection(r)
	}
	return nil
}

// rejection says what an error answer to a NOTIFY means. NOTAUTH is two
// things: with a TSIG error (BADSIG, BADKEY, BADTIME: RFC 8945 §5.2) the
// target did not accept our signature; without one, it is not
// authoritative for the zone (RFC 1996), which is how a secondary answers a
// NOTIFY for a zone it does not serve yet (errNotServed). Its TSIG is not
// verified (miekg/dns refuses to verify a NOTAUTH): a forged answer can
// only end the retries of one NOTIFY, and the secondary's refresh timer
// still runs.
func rejection(r *dns.Msg) error {
	if r.Rcode == dns.RcodeNotAuth {
		if ts := r.IsTsig(); ts != nil && ts.Error != dns.RcodeSuccess {
			return fmt.Errorf("%w: NOTAUTH, the target did not accept our TSIG signature (%s)", errRejected, tsigErrorName(ts.Error))
		}
		return errNotServed
	}
	return fmt.Errorf("%w: %s, opcode %s", errRejected, dns.RcodeToString[r.Rcode], dns.OpcodeToString[r.Opcode])
}

// tsigErrorName names a TSIG error code (RFC 8945 §5.2).
func tsigErrorName(code uint16) string {
	if s, ok := dns.RcodeToString[int(code)]; ok {
		return s
	}
	return fmt.Sprintf("error %d", code)
}

// enqueue announces serial of zone to every target.
func (n *notifier) enqueue(zoneName string, serial uint32) {
	n.enqueueTo(n.current(), zoneName, serial)
}

// enqueueTo announces serial of zone to targets.
func (n *notifier) enqueueTo(targets []*target, zoneName string, serial uint32) {
	zoneName = dns.CanonicalName(zoneName)
	for _, t := range targets {
		t.mu.Lock()
		j := t.jobs[zoneName]
		switch {
		case j == nil:
			j = &job{zone: zoneName, serial: serial}
			t.jobs[zoneName] = j
			t.push(j)
		case zone.SerialLess(j.serial, serial):
			if j.tries > 0 && !j.inflight {
				n.met.notifies.WithLabelValues(notifySuperseded).Inc()
			}
			j.serial, j.tries = serial, 0
			if j.timer != nil {
				j.timer.Stop()
				j.timer = nil
				j.gen++
				t.push(j)
			}
			// Queued: it goes with the new serial. In flight: the
			// worker sends again when it is done.
		}
		t.mu.Unlock()
	}
}

// push queues j; t.mu is held.
func (t *target) push(j *job) {
	j.queued = true
	t.queue = append(t.queue, j)
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// pop takes the next job to send, nil when there is none.
func (t *target) pop() *job {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.queue) == 0 {
		return nil
	}
	j := t.queue[0]
	t.queue[0] = nil
	t.queue = t.queue[1:]
	if len(t.queue) == 0 {
		t.queue = nil
	} else {
		select { // let another worker take the next one
		case t.wake <- struct{}{}:
		default:
		}
	}
	j.queued, j.inflight = false, true
	return j
}

// run sends until ctx is done; then pending retries are dropped.
func (n *notifier) run(ctx context.Context) {
	n.mu.Lock()
	n.ctx = ctx
	for _, t := range n.targets {
		n.start(t)
	}
	n.mu.Unlock()
	<-ctx.Done()
	n.mu.Lock()
	n.ctx = nil // no target starts after this
	targets := n.targets
	n.mu.Unlock()
	n.wg.Wait()
	for _, t := range targets {
		t.clear()
	}
}

// start runs t's workers until n.ctx is done or t is removed; n.mu is held
// and n.ctx is set.
func (n *notifier) start(t *target) {
	ctx, cancel := context.WithCancel(n.ctx)
	t.stop = cancel
	for range n.workers {
		n.wg.Go(func() { n.work(ctx, t) })
	}
}

// clear drops t's pending NOTIFYs and their retry timers.
func (t *target) clear() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, j := range t.jobs {
		if j.timer != nil {
			j.timer.Stop()
		}
	}
	t.jobs, t.queue = map[string]*job{}, nil
}

func (n *notifier) work(ctx context.Context, t *target) {
	for {
		j := t.pop()
		if j == nil {
			select {
			case <-t.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		sent, err := n.sendOne(ctx, t, j.zone)
		if ctx.Err() != nil {
			return
		}
		n.done(t, j, sent, err)
	}
}

// sendOne sends one NOTIFY of the current SOA of a zone and returns the
// serial it announced.
func (n *notifier) sendOne(ctx context.Context, t *target, zoneName string) (uint32, error) {
	soa, err := n.soa(ctx, zoneName)
	if err != nil {
		return 0, err
	}
	m := new(dns.Msg)
	m.SetNotify(zoneName)
	m.Answer = []dns.RR{soa}
	t.ring.SetTsig(m, t.key)
	n.met.notifyMessages.Inc()
	return soa.Serial, n.send(ctx, t, m)
}

// done records the outcome of a NOTIFY of serial sent for j.
func (n *notifier) done(t *target, j *job, sent uint32, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	j.inflight = false
	if err != nil && errors.Is(err, store.ErrNotFound) {
		delete(t.jobs, j.zone) // the zone is gone
		return
	}
	if zone.SerialLess(j.serial, sent) {
		j.serial = sent // the zone was newer than the event said
	}
	newer := j.serial != sent
	log := n.log.With("zone", j.zone, "serial", sent, "target", t.addr)
	switch {
	case err == nil:
		n.met.notifies.WithLabelValues(notifyOK).Inc()
		log.Debug("notify acknowledged", "tries", j.tries+1)
	case errors.Is(err, errNotServed):
		n.met.notifies.WithLabelValues(notifyRejected).Inc()
		// A secondary learns of a new zone from the catalog, NOTIFYed at
		// the same moment, and transfers it then: nothing is wrong.
		log.Debug("notify: the target does not serve the zone yet (a new zone reaches it through the catalog)")
	case errors.Is(err, errRejected):
		n.met.notifies.WithLabelValues(notifyRejected).Inc()
		log.Warn("notify rejected", "err", err)
	case newer:
		n.met.notifies.WithLabelValues(notifySuperseded).Inc()
	default:
		j.tries++
		if j.tries >= n.tries {
			n.met.notifies.WithLabelValues(notifyFailed).Inc()
			log.Warn("notify unanswered, giving up", "tries", j.tries, "err", err)
			delete(t.jobs, j.zone)
			return
		}
		log.Debug("notify unanswered, will retry", "tries", j.tries, "err", err)
		j.gen++
		gen := j.gen
		j.timer = time.AfterFunc(n.backoff<<min(j.tries-1, 16), func() {
			t.mu.Lock()
			defer t.mu.Unlock()
			if j.gen == gen && t.jobs[j.zone] == j {
				j.timer = nil
				t.push(j)
			}
		})
		return
	}
	if newer {
		j.tries = 0
		t.push(j)
		return
	}
	delete(t.jobs, j.zone)
}
