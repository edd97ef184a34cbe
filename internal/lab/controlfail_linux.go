package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/apiclient"
	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// failoverWrite is one write of the control-failover scenario's writer.
type failoverWrite struct {
	name, text string
	sent       time.Time
	acked      time.Time // zero: no replica acknowledged it
	by         int       // the replica that acknowledged it, -1: none
	serial     uint32
	err        error // the last failure, when none acknowledged it
}

// failoverWriter is an operator's client with the API endpoints of every
// replica: it writes to the current one and, when a write fails (no
// connection, a timeout, an error answer), moves on to the next and sends
// the write there.
type failoverWriter struct {
	clients []*apiclient.Client
	cur     int
}

func (w *failoverWriter) write(ctx context.Context, fw *failoverWrite) {
	set := api.RRset{TTL: 60, Records: []string{`"` + fw.text + `"`}}
	for range w.clients {
		res, err := w.clients[w.cur].SetRRset(ctx, ControlFailoverZone, fw.name, "TXT", set, "")
		if err == nil {
			fw.acked, fw.by, fw.serial, fw.err = time.Now(), w.cur, res.Serial, nil
			return
		}
		fw.err = fmt.Errorf("replica %d: %w", w.cur+1, err)
		if ctx.Err() != nil {
			return
		}
		w.cur = (w.cur + 1) % len(w.clients)
	}
}

// replicaClient is a client of replica i's API from the namespace of
// node: at 127.0.0.1 when the replica runs there, else at its address.
func (l *Lab) replicaClient(from *Node, i int, timeout time.Duration) (*apiclient.Client, error) {
	node, addr, err := l.ControlReplicaNode(i)
	if err != nil {
		return nil, err
	}
	if node == from.Name {
		addr = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	return apiclient.New(netip.AddrPortFrom(addr, ControlAPIPort).String(), l.ctl.Token, httpClientIn(from, timeout))
}

// controlFailover: with two replicas of the control plane on one
// PostgreSQL, a writer in the first replica's namespace (an operator's
// host with both endpoints) changes one record every 30 ms, each at a name
// of its own, through the first replica; 3 s in, the first replica is
// killed (SIGKILL, by its PID) and the writer moves on to the second,
// writing 3 s more. Then every acknowledged write must be in the database
// and on every PoP (queried at its unicast address), with the zone's final
// serial, and the writes must have resumed within ControlFailoverMaxGap.
// The killed replica is started again at the end and must serve the final
// serial; the zone is deleted.
func (l *Lab) controlFailover(ctx context.Context, o ScenarioOptions) (_ *Result, err error) {
	const name = "control-failover"
	if l.ctl == nil {
		return nil, ErrNoControl
	}
	if l.ControlReplicas() < 2 || l.ctl.DSN == "" {
		return nil, fmt.Errorf("%s: needs two control-plane replicas on PostgreSQL (anycastlab runs them for this scenario; Options.ControlReplicas)", name)
	}
	run := newRun(name, o.Progress)
	if err := l.WaitSettled(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	killedNode, _, err := l.ControlReplicaNode(0)
	if err != nil {
		return nil, err
	}
	survivorNode, survivorAddr, err := l.ControlReplicaNode(1)
	if err != nil {
		return nil, err
	}
	from, err := l.plan.node(killedNode)
	if err != nil {
		return nil, err
	}
	w := &failoverWriter{}
	for i := range 2 {
		c, err := l.replicaClient(from, i, controlFailoverWriteTimeout)
		if err != nil {
			return nil, err
		}
		w.clients = append(w.clients, c)
	}
	// The survivor's client from its own namespace, for what the
	// scenario itself asks (not the writer).
	survivorNS, err := l.plan.node(survivorNode)
	if err != nil {
		return nil, err
	}
	admin, err := l.replicaClient(survivorNS, 1, 10*time.Second)
	if err != nil {
		return nil, err
	}
	pollers, _, closePollers, err := l.runningPollers(name)
	if err != nil {
		return nil, err
	}
	defer closePollers()

	// A clean start: the zone of an interrupted run goes first.
	if err := admin.DeleteZone(ctx, ControlFailoverZone); err != nil && !errors.Is(err, apiclient.ErrNotFound) {
		return nil, fmt.Errorf("%s: delete old %s: %w", name, ControlFailoverZone, err)
	}
	info, err := w.clients[0].CreateZone(ctx, api.CreateZone{Name: ControlFailoverZone,
		Records: []string{"@ 60 IN SOA ns1 hostmaster 1 3600 600 604800 60", "@ 60 IN NS ns1", "ns1 60 IN A 192.0.2.53"}})
	if err != nil {
		return nil, fmt.Errorf("%s: create %s through replica 1: %w", name, ControlFailoverZone, err)
	}
	t0 := time.Now()
	_, errs := waitAllPoPs(ctx, pollers, t0, ControlFailoverZone, dns.TypeSOA, servesSOA(info.Serial), 30*time.Second)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%s: new zone %s not served by every PoP: %w", name, ControlFailoverZone, err)
	}
	run.notef("zone %s created through replica 1 (%s); every PoP serves it after %s; replica 2 runs on %s (%s), both on PostgreSQL",
		ControlFailoverZone, killedNode, time.Since(t0).Round(time.Millisecond), survivorNode, survivorAddr)
	rejoined := false
	defer func() {
		// Leave the lab as it was: both replicas running, no zone.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if p := l.ControlReplicaProcess(0); !rejoined && (p == nil || !p.Running()) {
			if rerr := l.startReplica(dctx, 0); rerr != nil {
				err = errors.Join(err, fmt.Errorf("%s: start replica 1 again: %w", name, rerr))
			}
		}
		if derr := admin.DeleteZone(dctx, ControlFailoverZone); derr != nil {
			err = errors.Join(err, fmt.Errorf("%s: delete %s: %w", name, ControlFailoverZone, derr))
		}
	}()

	// The writer, until told to stop.
	var writes []*failoverWrite
	stop := make(chan struct{})
	writerDone := make(chan struct{})
	var mu sync.Mutex
	acked1 := 0
	go func() {
		defer close(writerDone)
		tick := time.NewTicker(controlFailoverEvery)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			default:
			}
			label := fmt.Sprintf("w%05d", i)
			fw := &failoverWrite{name: label + "." + ControlFailoverZone, text: label, by: -1, sent: time.Now()}
			w.write(ctx, fw)
			mu.Lock()
			writes = append(writes, fw)
			if fw.by == 0 {
				acked1++
			}
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	stopWriter := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		<-writerDone
	}
	defer stopWriter()

	if err := sleep(ctx, controlFailoverBefore); err != nil {
		return nil, err
	}
	mu.Lock()
	before := acked1
	mu.Unlock()
	if before == 0 {
		stopWriter()
		last := errors.New("no write sent")
		if len(writes) > 0 && writes[len(writes)-1].err != nil {
			last = writes[len(writes)-1].err
		}
		return nil, fmt.Errorf("%s: replica 1 acknowledged no write in %s: %w", name, controlFailoverBefore, last)
	}
	p := l.ControlReplicaProcess(0)
	if p == nil || !p.Running() {
		return nil, fmt.Errorf("%s: replica 1 does not run", name)
	}
	killed := time.Now()
	if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil {
		return nil, fmt.Errorf("%s: SIGKILL replica 1 (pid %d): %w", name, p.PID, err)
	}
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		return nil, fmt.Errorf("%s: replica 1 (pid %d) still runs 5 s after SIGKILL", name, p.PID)
	}
	run.notef("replica 1 (%s, pid %d) killed (SIGKILL) at %s, after %d writes acknowledged by it", killedNode, p.PID, run.at(killed), before)
	if err := sleep(ctx, controlFailoverAfter); err != nil {
		return nil, err
	}
	stopWriter()
	// The end of the writes: the last answer (or failure) the writer got.
	var lastWrite time.Time
	for _, fw := range writes {
		lastWrite = maxTime(lastWrite, maxTime(fw.sent, fw.acked))
	}

	ln := &ControlFailoverLine{Scenario: name, Replicas: l.ControlReplicas(), Killed: killedNode, Survivor: survivorNode,
		SerialsIncreasing: true, MissingPoPs: map[string]int{}}
	var last1, first2 time.Time
	var prev uint32
	var failed []*failoverWrite
	var acked []*failoverWrite
	for _, fw := range writes {
		ln.Writes++
		switch fw.by {
		case -1:
			ln.FailedAll++
			failed = append(failed, fw)
			continue
		case 0:
			ln.AckedBy1++
			last1 = fw.acked
		default:
			ln.AckedBy2++
			if first2.IsZero() {
				first2 = fw.acked
			}
		}
		acked = append(acked, fw)
		if len(acked) > 1 && !zone.SerialLess(prev, fw.serial) {
			ln.SerialsIncreasing = false
		}
		prev = fw.serial
	}
	ln.Acknowledged = len(acked)
	if !last1.IsZero() && !first2.IsZero() {
		ln.GapMS = ms(first2.Sub(last1))
		ln.KillToAckMS = ms(first2.Sub(killed))
	}
	for _, fw := range failed {
		run.notef("%s acknowledged by no replica: %v", fw.name, fw.err)
	}
	run.notef("writer: %d writes every %s, %d acknowledged (%d by replica 1, %d by replica 2); last ack by replica 1 at %s, first by replica 2 at %s",
		ln.Writes, controlFailoverEvery, ln.Acknowledged, ln.AckedBy1, ln.AckedBy2, atOrDash(run, last1), atOrDash(run, first2))

	// The database: read by a store of its own, opened now.
	final, present, err := l.readFailoverZone(ctx, writes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	ln.FinalSerial = final
	lostNames := map[string]bool{}
	for _, fw := range acked {
		if !present[fw.name] {
			ln.MissingDB++
			lostNames[fw.name] = true
		}
	}
	for _, fw := range failed {
		if present[fw.name] {
			ln.CommittedUnacked++
		}
	}
	run.notef("database: serial %d, %d of %d acknowledged writes present, %d unacknowledged writes committed", final, ln.Acknowledged-ln.MissingDB,
		ln.Acknowledged, ln.CommittedUnacked)

	// Every PoP: the final serial, then every acknowledged write (each
	// asked on its own, also when the serial did not come: what a PoP
	// missed is counted write by write).
	type popOutcome struct {
		serial  bool      // served the final serial in time
		missing []string  // acknowledged writes it did not serve
		at      time.Time // when it served the last of them
	}
	outcomes := make([]popOutcome, len(pollers))
	var wg sync.WaitGroup
	deadline := lastWrite.Add(controlFailoverConverge)
	for i, pl := range pollers {
		wg.Go(func() {
			oc := &outcomes[i]
			at, err := pl.waitFor(ctx, ControlFailoverZone, dns.TypeSOA, servesSOA(final), deadline)
			oc.serial, oc.at = err == nil, at
			for _, fw := range acked {
				// Past the deadline a write still gets a few queries.
				at, err := pl.waitFor(ctx, fw.name, dns.TypeTXT, servesTXT(fw.text), maxTime(deadline, time.Now().Add(100*time.Millisecond)))
				if err != nil {
					oc.missing = append(oc.missing, fw.name)
					continue
				}
				oc.at = maxTime(oc.at, at)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ln.PoPsConverged = true
	var convergedAt time.Time
	for i, pl := range pollers {
		oc := outcomes[i]
		ln.MissingPoPs[pl.pop] = len(oc.missing)
		for _, n := range oc.missing {
			lostNames[n] = true
		}
		if !oc.serial {
			run.notef("%s: does not serve serial %d of %s within %s", pl.pop, final, ControlFailoverZone, controlFailoverConverge)
		}
		if !oc.serial || len(oc.missing) > 0 {
			ln.PoPsConverged = false
			continue
		}
		convergedAt = maxTime(convergedAt, oc.at)
	}
	ln.Lost = len(lostNames)
	if ln.PoPsConverged {
		ln.ConvergedMS = ms(convergedAt.Sub(lastWrite))
		run.notef("every PoP (%d) serves serial %d and all %d acknowledged writes, %s after the last write", len(pollers), final, ln.Acknowledged,
			convergedAt.Sub(lastWrite).Round(time.Millisecond))
	} else {
		run.notef("PoPs not converged within %s: missing writes by PoP %s", controlFailoverConverge, fmtCounts(ln.MissingPoPs))
	}

	// Replica 1 again: from the database, it serves the final serial.
	t1 := time.Now()
	if err := l.startReplica(ctx, 0); err != nil {
		return nil, fmt.Errorf("%s: start replica 1 again: %w", name, err)
	}
	rejoined = true
	c1, err := l.replicaClient(from, 0, 10*time.Second)
	if err != nil {
		return nil, err
	}
	zi, err := c1.Zone(ctx, ControlFailoverZone)
	switch {
	case err != nil:
		run.notef("replica 1 started again: %s: %v", ControlFailoverZone, err)
	default:
		ln.ReplicaRejoined = zi.Serial == final
		run.notef("replica 1 started again in %s: serves %s at serial %d (final %d)", time.Since(t1).Round(time.Millisecond), ControlFailoverZone, zi.Serial, final)
	}
	run.res.ControlFailover = ln
	run.res.Failures = ln.failures()
	return run.done(), nil
}

// readFailoverZone opens a store of its own on the replicas' database and
// returns the zone's serial and which of the writes' names hold a TXT.
func (l *Lab) readFailoverZone(ctx context.Context, writes []*failoverWrite) (uint32, map[string]bool, error) {
	st, err := store.OpenPostgres(ctx, l.ctl.DSN, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("read the database: %w", err)
	}
	defer func() { _ = st.Close() }()
	info, z, err := st.Get(ctx, ControlFailoverZone)
	if err != nil {
		return 0, nil, fmt.Errorf("read %s from the database: %w", ControlFailoverZone, err)
	}
	present := map[string]bool{}
	buf := make([]byte, 256)
	for _, fw := range writes {
		off, err := dns.PackDomainName(dns.CanonicalName(fw.name), buf, 0, nil, false)
		if err != nil {
			return 0, nil, fmt.Errorf("name %s: %w", fw.name, err)
		}
		if n := z.Lookup(buf[:off]); n != nil && n.Get(dns.TypeTXT) != nil {
			present[fw.name] = true
		}
	}
	return info.Serial, present, nil
}

func atOrDash(r *scenarioRun, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return r.at(t)
}
