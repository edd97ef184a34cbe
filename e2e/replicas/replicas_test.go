//go:build linux

package replicas

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/apiclient"
	"github.com/anycastdns/anycastdns/internal/testkit"
	"github.com/anycastdns/anycastdns/internal/testkit/pgtest"
)

// The figure: two replicas × 8 writers × 500 changes on one zone.
const (
	nReplicas         = 2
	writersPerReplica = 8
	changesPerWriter  = 500
)

// Bounds of the test.
const (
	requestBound  = 30 * time.Second // one API request
	learnBound    = 10 * time.Second // a replica learning of the other's last commit
	convergeBound = 60 * time.Second // a node at the final serial, after the last acknowledgement
)

// write is one API change: a TXT record at a name of its own.
type write struct {
	replica, writer, change int
	name, text              string
	serial                  uint32 // the serial the API acknowledged
	status                  int    // 200, the API's error status, or 0 without an HTTP answer
	err                     error
	end                     time.Time
}

// TestReplicasNodes runs two `anycastd control` replicas on one PostgreSQL
// database and two `anycastd node`s that list both (n1 with replica r1
// first, n2 with r2 first, as catalog primaries and stream servers).
// 8 writers on each replica, each through its own replica's API, make 500
// changes each to one zone, every change a TXT record at a name of its own.
// Every write must be acknowledged (a failure may only be a retryable
// 503), with a serial no other write got, increasing for each writer; the
// serials acknowledged are exactly the ones after the zone's creation, so
// the final serial is the created one plus the acknowledged count. Both
// replicas serve that serial and every acknowledged record (AXFR); both
// nodes reach it within convergeBound of the last acknowledgement and
// answer every acknowledged record, with the versions they installed
// following one another; and each node installed versions pushed over the
// stream of each replica, including versions whose serial was
// acknowledged through the other replica (the pushing replica learned of
// that commit from PostgreSQL, not from its own API).
func TestReplicasNodes(t *testing.T) {
	bin := testkit.BuildAnycastd(t)
	dsn := pgtest.Shared(t).NewDatabase(t)
	dir := t.TempDir()
	ctx := t.Context()

	reps := make([]*replica, nReplicas)
	for i := range reps {
		reps[i] = newReplica(t, fmt.Sprintf("r%d", i+1), dir, dsn, writersPerReplica)
	}
	// Started together: the schema's migration runs under an advisory
	// lock, so replicas may start at once.
	for _, r := range reps {
		r.start(t, bin)
	}
	for _, r := range reps {
		r.ready(t)
	}

	const zone = "replicas.example."
	info, err := reps[0].client.CreateZone(ctx, api.CreateZone{Name: zone, Records: []string{
		"@ 3600 IN SOA ns1 hostmaster 1 3600 600 604800 60",
		"@ 3600 IN NS ns1",
		"ns1 3600 IN A 192.0.2.53",
	}})
	if err != nil {
		t.Fatal(err)
	}
	created := info.Serial
	for _, r := range reps[1:] {
		waitReplicaSerial(t, r, zone, created)
	}

	nodes := []*node{
		newNode(t, "n1", dir, []*replica{reps[0], reps[1]}),
		newNode(t, "n2", dir, []*replica{reps[1], reps[0]}),
	}
	for _, n := range nodes {
		n.start(t, bin)
	}
	for _, n := range nodes {
		waitNodeSerial(t, n, zone, created, 30*time.Second)
	}

	// Each node's serial is watched from now on, so that the time it
	// reached the final serial is known however long the checks below take.
	watchers := make([]*watcher, len(nodes))
	for i, n := range nodes {
		watchers[i] = watch(t, n, zone)
	}

	// The writers: all start together, each through its own replica's API.
	writes := make([][]write, nReplicas*writersPerReplica)
	begin := make(chan struct{})
	var wg sync.WaitGroup
	for ri, r := range reps {
		for wi := range writersPerReplica {
			ws := make([]write, changesPerWriter)
			writes[ri*writersPerReplica+wi] = ws
			wg.Go(func() {
				<-begin
				for ci := range ws {
					w := &ws[ci]
					w.replica, w.writer, w.change = ri, wi, ci
					w.name = fmt.Sprintf("c%d.w%d.%s.%s", ci, wi, r.name, zone)
					w.text = fmt.Sprintf("%s writer %d change %d", r.name, wi, ci)
					res, err := r.client.SetRRset(ctx, zone, w.name, "TXT", api.RRset{TTL: 60, Records: []string{`"` + w.text + `"`}}, "")
					w.end, w.err, w.serial, w.status = time.Now(), err, res.Serial, http.StatusOK
					var ae *apiclient.Error
					if errors.As(err, &ae) {
						w.status = ae.StatusCode
					} else if err != nil {
						w.status = 0
					}
				}
			})
		}
	}
	started := time.Now()
	close(begin)
	wg.Wait()

	// Every write acknowledged, or a retryable 503.
	var acked []*write
	var lastAck time.Time
	unavailable, failed := 0, 0
	for _, ws := range writes {
		for i := range ws {
			w := &ws[i]
			switch {
			case w.err == nil:
				acked = append(acked, w)
				if w.end.After(lastAck) {
					lastAck = w.end
				}
			case w.status == http.StatusServiceUnavailable:
				if unavailable++; unavailable <= 10 {
					t.Logf("write %s through %s: %v (retryable 503, not acknowledged)", w.name, reps[w.replica].name, w.err)
				}
			default:
				if failed++; failed <= 10 {
					t.Errorf("write %s through %s: %v, want an acknowledgement or a retryable 503", w.name, reps[w.replica].name, w.err)
				}
			}
		}
	}
	if failed > 0 {
		t.Errorf("%d writes failed with something other than a retryable 503", failed)
	}
	if len(acked) == 0 {
		t.Fatal("no write acknowledged")
	}
	elapsed := lastAck.Sub(started)
	t.Logf("FIGURE writes: %d of %d acknowledged (%d answered 503) in %v: %.0f writes/s through the API of %d replicas with %d writers each",
		len(acked), nReplicas*writersPerReplica*changesPerWriter, unavailable, elapsed.Round(time.Millisecond),
		float64(len(acked))/elapsed.Seconds(), nReplicas, writersPerReplica)

	// Serials: each once, increasing for each writer, and exactly the
	// ones after the zone's creation.
	serialProblems := 0
	serialError := func(format string, args ...any) {
		t.Helper()
		if serialProblems++; serialProblems <= 10 {
			t.Errorf(format, args...)
		}
	}
	bySerial := make(map[uint32]*write, len(acked))
	for _, w := range acked {
		if o, dup := bySerial[w.serial]; dup {
			serialError("serial %d acknowledged twice: %s through %s and %s through %s", w.serial, o.name, reps[o.replica].name, w.name, reps[w.replica].name)
		}
		bySerial[w.serial] = w
	}
	for _, ws := range writes {
		var prev *write
		for i := range ws {
			w := &ws[i]
			if w.err != nil {
				continue
			}
			if prev != nil && w.serial <= prev.serial {
				serialError("%s writer %d: change %d acknowledged serial %d after change %d got %d", reps[w.replica].name, w.writer, w.change, w.serial, prev.change, prev.serial)
			}
			prev = w
		}
	}
	if serialProblems > 10 {
		t.Errorf("%d problems with the serials in all", serialProblems)
	}
	final := created + uint32(len(acked)) //nolint:gosec // at most 8000
	for s := created + 1; s <= final; s++ {
		if _, ok := bySerial[s]; !ok {
			t.Errorf("no acknowledged write got serial %d (created at %d, %d acknowledged)", s, created, len(acked))
			break
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Both replicas serve the final serial and every acknowledged record,
	// and nothing else.
	for _, r := range reps {
		waitReplicaSerial(t, r, zone, final)
		rrs, err := axfr(r.xfr, zone)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, rr := range rrs {
			switch rr := rr.(type) {
			case *dns.SOA:
				if rr.Serial != final {
					t.Errorf("%s: AXFR with SOA serial %d, want %d", r.name, rr.Serial, final)
				}
			case *dns.TXT:
				got[strings.ToLower(rr.Hdr.Name)] = strings.Join(rr.Txt, "")
			}
		}
		if diff := compare(got, acked); diff != "" {
			t.Errorf("%s: the zone transferred differs from the acknowledged writes: %s", r.name, diff)
		}
	}

	// Both nodes reach the final serial, timed from the last
	// acknowledgement (negative: before the writer had the answer).
	for i, n := range nodes {
		at, ok := watchers[i].wait(final, lastAck.Add(convergeBound))
		if !ok {
			t.Fatalf("%s: %s at serial %d %v after the last acknowledgement, want %d", n.name, zone, testkit.SOASerial(n.dns, zone), convergeBound, final)
		}
		t.Logf("FIGURE converge: %s at the final serial %d %v after the last acknowledgement", n.name, final, at.Sub(lastAck).Round(time.Millisecond))
	}

	// Each node answers every acknowledged record.
	for _, n := range nodes {
		if diff := answers(n, acked); diff != "" {
			t.Errorf("%s: %s", n.name, diff)
		}
	}

	// The versions each node installed follow one another, end at the
	// final serial, and came over both replicas' streams, each including
	// commits made through the other replica.
	for _, n := range nodes {
		ups := testkit.ZoneUpdates(t, n.log, zone)
		checkChain(t, n, ups, final)
		fromStream := make([]int, nReplicas) // versions pushed by replica i
		fromOther := make([]int, nReplicas)  // of which acknowledged through another replica
		other := 0                           // versions not from a stream
		for _, u := range ups {
			ri := slices.IndexFunc(reps, func(r *replica) bool {
				return strings.Contains(u.Source, "stream http://"+r.stream+"/")
			})
			if ri < 0 {
				other++
				continue
			}
			fromStream[ri]++
			if w, ok := bySerial[u.Serial]; ok && w.replica != ri {
				fromOther[ri]++
			}
		}
		var figs []string
		for ri, r := range reps {
			figs = append(figs, fmt.Sprintf("%d from %s's stream (%d of them acknowledged through the other replica)", fromStream[ri], r.name, fromOther[ri]))
			if fromOther[ri] == 0 {
				t.Errorf("%s: no version pushed by %s's stream was a commit made through another replica (%d from its stream)", n.name, r.name, fromStream[ri])
			}
			url := "http://" + n.metrics + "/metrics"
			label := fmt.Sprintf(`{control="http://%s/v1/stream"}`, r.stream)
			if up := testkit.Metric(t, url, "anycastd_stream_up"+label); up != 1 {
				t.Errorf("%s: anycastd_stream_up%s = %v, want 1", n.name, label, up)
			}
		}
		t.Logf("FIGURE versions: %s installed %d versions: %s, %d otherwise", n.name, len(ups), strings.Join(figs, ", "), other)
	}
}

// watcher follows the serial a node answers for a zone.
type watcher struct {
	mu     sync.Mutex
	serial uint32
	since  time.Time // when the node was first seen answering serial
}

// watch polls a node's serial of zone every 5 ms until the test ends.
func watch(t *testing.T, n *node, zone string) *watcher {
	w := &watcher{}
	ctx := t.Context()
	done := make(chan struct{})
	t.Cleanup(func() { <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			s := testkit.SOASerial(n.dns, zone)
			now := time.Now()
			w.mu.Lock()
			if s != w.serial {
				w.serial, w.since = s, now
			}
			w.mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return w
}

// wait waits until the node answers serial, at the latest until deadline,
// and returns when it was first seen answering it.
func (w *watcher) wait(serial uint32, deadline time.Time) (time.Time, bool) {
	for {
		w.mu.Lock()
		s, since := w.serial, w.since
		w.mu.Unlock()
		if s == serial {
			return since, true
		}
		if time.Now().After(deadline) {
			return time.Time{}, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitReplicaSerial waits until a replica's API reports zone at serial.
func waitReplicaSerial(t *testing.T, r *replica, zone string, serial uint32) {
	t.Helper()
	var got uint32
	for deadline := time.Now().Add(learnBound); ; time.Sleep(20 * time.Millisecond) {
		zones, err := r.client.ListZones(context.Background())
		if err != nil {
			t.Fatalf("%s: list zones: %v", r.name, err)
		}
		for _, z := range zones {
			if z.Name == zone {
				got = z.Serial
			}
		}
		if got == serial {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s at serial %d after %v, want %d", r.name, zone, got, learnBound, serial)
		}
	}
}

// waitNodeSerial waits until a node answers zone's SOA with serial.
func waitNodeSerial(t *testing.T, n *node, zone string, serial uint32, limit time.Duration) {
	t.Helper()
	var got uint32
	for deadline := time.Now().Add(limit); ; time.Sleep(10 * time.Millisecond) {
		if got = testkit.SOASerial(n.dns, zone); got == serial {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s at serial %d after %v, want %d", n.name, zone, got, limit, serial)
		}
	}
}

// compare returns what differs between the TXT records of a zone (by
// lower-case owner name) and the acknowledged writes, "" when nothing.
func compare(got map[string]string, acked []*write) string {
	var missing, wrong []string
	want := make(map[string]bool, len(acked))
	for _, w := range acked {
		want[w.name] = true
		switch txt, ok := got[w.name]; {
		case !ok:
			missing = append(missing, w.name)
		case txt != w.text:
			wrong = append(wrong, fmt.Sprintf("%s %q (want %q)", w.name, txt, w.text))
		}
	}
	var extra []string
	for name := range got {
		if !want[name] {
			extra = append(extra, name)
		}
	}
	return problems(missing, wrong, extra)
}

// answers queries a node for every acknowledged record and returns what
// differs, "" when nothing.
func answers(n *node, acked []*write) string {
	const parallel = 8
	var mu sync.Mutex
	var missing, wrong []string
	next := make(chan *write)
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for w := range next {
				r, err := testkit.Query(n.dns, w.name, dns.TypeTXT)
				var got []string
				if err == nil {
					for _, rr := range r.Answer {
						if txt, ok := rr.(*dns.TXT); ok {
							got = append(got, strings.Join(txt.Txt, ""))
						}
					}
				}
				mu.Lock()
				switch {
				case err != nil || r.Rcode != dns.RcodeSuccess || len(got) == 0:
					missing = append(missing, fmt.Sprintf("%s (%v)", w.name, describe(r, err)))
				case len(got) != 1 || got[0] != w.text:
					wrong = append(wrong, fmt.Sprintf("%s %q (want %q)", w.name, got, w.text))
				}
				mu.Unlock()
			}
		})
	}
	for _, w := range acked {
		next <- w
	}
	close(next)
	wg.Wait()
	return problems(missing, wrong, nil)
}

func describe(r *dns.Msg, err error) string {
	if err != nil {
		return err.Error()
	}
	return dns.RcodeToString[r.Rcode] + fmt.Sprintf(", %d answers", len(r.Answer))
}

// problems formats the differences found, at most a few of each.
func problems(missing, wrong, extra []string) string {
	var out []string
	show := func(what string, l []string) {
		if len(l) == 0 {
			return
		}
		slices.Sort(l)
		s := fmt.Sprintf("%d %s", len(l), what)
		if len(l) > 5 {
			l = append(l[:5:5], "...")
		}
		out = append(out, s+": "+strings.Join(l, ", "))
	}
	show("acknowledged writes missing", missing)
	show("records with another text", wrong)
	show("records no write acknowledged", extra)
	return strings.Join(out, "; ")
}

// checkChain checks that the versions a node installed of a zone follow
// one another (each from the serial the previous one installed, no serial
// twice, increasing) and end at final.
func checkChain(t *testing.T, n *node, ups []testkit.ZoneUpdate, final uint32) {
	t.Helper()
	seen := map[uint32]bool{}
	for i, u := range ups {
		if seen[u.Serial] {
			t.Errorf("%s installed serial %d twice", n.name, u.Serial)
		}
		seen[u.Serial] = true
		if i > 0 && u.Previous != ups[i-1].Serial {
			t.Errorf("%s: version %d installed from serial %d, but the previous one installed %d", n.name, i, u.Previous, ups[i-1].Serial)
		}
		if u.Serial <= u.Previous {
			t.Errorf("%s: version %d went from serial %d to %d", n.name, i, u.Previous, u.Serial)
		}
	}
	if len(ups) == 0 || ups[len(ups)-1].Serial != final {
		t.Errorf("%s: the last version installed is not serial %d", n.name, final)
	}
}

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m).Run()) }
