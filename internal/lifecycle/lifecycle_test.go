package lifecycle

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/anycastdns/anycastdns/internal/testkit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// journal records what the test tasks do, in order.
type journal struct {
	mu     sync.Mutex
	events []string
}

func (j *journal) add(e string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.events = append(j.events, e)
}

func (j *journal) list() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.events)
}

// fake is a task that records its start, readiness and end.
type fake struct {
	name       string
	j          *journal
	readyAfter time.Duration // 0: ready at once
	failStart  error         // returned before ready
	failStop   error         // returned when stopped
	failAfter  time.Duration // fail (with failStop) this long after ready, unasked
	ready      chan struct{}
}

func newFake(name string, j *journal) *fake {
	return &fake{name: name, j: j, ready: make(chan struct{})}
}

func (f *fake) Ready() <-chan struct{} { return f.ready }

func (f *fake) Run(ctx context.Context) error {
	f.j.add("start " + f.name)
	if f.failStart != nil {
		return f.failStart
	}
	time.Sleep(f.readyAfter)
	f.j.add("ready " + f.name)
	close(f.ready)
	if f.failAfter > 0 {
		select {
		case <-time.After(f.failAfter):
			f.j.add("fail " + f.name)
			return f.failStop
		case <-ctx.Done():
		}
	} else {
		<-ctx.Done()
	}
	f.j.add("end " + f.name)
	return f.failStop
}

// TestOrder: tasks start in order, each once the one before is ready, and
// stop in the stages of the stop order, a step included, after the context
// ends and not before.
func TestOrder(t *testing.T) {
	var j journal
	r := New(nil)
	a, b, c, d := newFake("a", &j), newFake("b", &j), newFake("c", &j), newFake("d", &j)
	a.readyAfter = 30 * time.Millisecond
	r.Add("a", a)
	r.Add("b", b)
	r.Add("c", c)
	r.Add("d", Func(func(ctx context.Context) error { return d.Run(ctx) })) // no Ready: the next starts at once
	r.StopOrder(Stop("c"), Do("step", func(cause error) {
		if cause != nil {
			t.Errorf("cause %v after the context ended", cause)
		}
		j.add("step")
	}), Stop("a", "d"), Stop("b"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, func() { j.add("ready") }) }()
	for !slices.Contains(j.list(), "ready") {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	if slices.ContainsFunc(j.list(), func(e string) bool { return strings.HasPrefix(e, "end") }) {
		t.Fatal("a task ended before the context did")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := j.list()
	at := func(e string) int { return slices.Index(got, e) }
	for _, before := range [][2]string{
		{"ready a", "start b"}, {"ready b", "start c"}, {"ready c", "start d"}, {"ready c", "ready"},
		{"end c", "step"}, {"step", "end a"}, {"step", "end d"}, {"end a", "end b"}, {"end d", "end b"},
	} {
		if at(before[0]) < 0 || at(before[1]) < 0 || at(before[0]) > at(before[1]) {
			t.Errorf("%q not before %q in %v", before[0], before[1], got)
		}
	}
	if s := r.Stopped(); !slices.Equal(s, []string{"c", "step", "a+d", "b"}) {
		t.Errorf("Stopped = %v", s)
	}
}

// TestReverseOrder: without a stop order, tasks stop in the reverse order
// of their start.
func TestReverseOrder(t *testing.T) {
	var j journal
	ctx, cancel := context.WithCancel(context.Background())
	r := New(nil)
	for _, n := range []string{"x", "y", "z"} {
		r.Add(n, newFake(n, &j))
	}
	if err := r.Run(ctx, cancel); err != nil {
		t.Fatal(err)
	}
	if s := r.Stopped(); !slices.Equal(s, []string{"z", "y", "x"}) {
		t.Errorf("Stopped = %v, want z y x", s)
	}
}

// TestFailure: a task that fails while serving ends the run; the stages
// learn why, every task still stops in order, and every task's error is
// returned with its name.
func TestFailure(t *testing.T) {
	var j journal
	r := New(nil)
	a, b, c := newFake("a", &j), newFake("b", &j), newFake("c", &j)
	b.failAfter, b.failStop = 20*time.Millisecond, errors.New("socket gone")
	c.failStop = errors.New("flush failed")
	r.Add("a", a)
	r.Add("b", b)
	r.Add("c", c)
	var gotCause error
	r.StopOrder(Do("drain", func(cause error) { gotCause = cause }), Stop("c"), Stop("b"), Stop("a"))
	err := r.Run(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "b: socket gone") || !strings.Contains(err.Error(), "c: flush failed") {
		t.Errorf("Run = %v, want both errors with their task's name", err)
	}
	if gotCause == nil || !strings.Contains(gotCause.Error(), "b: socket gone") {
		t.Errorf("cause %v", gotCause)
	}
	if s := r.Stopped(); !slices.Equal(s, []string{"drain", "c", "b", "a"}) {
		t.Errorf("Stopped = %v", s)
	}
}

// TestStopsOnItsOwn: a task that returns nil unasked is a failure too.
func TestStopsOnItsOwn(t *testing.T) {
	r := New(nil)
	r.Add("loop", Func(func(context.Context) error { return nil }))
	r.Add("other", newFake("other", &journal{}))
	err := r.Run(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "loop: stopped on its own") {
		t.Errorf("Run = %v", err)
	}
}

// TestStartFailure: a task that fails before it is ready stops the
// start-up: the tasks after it never start, those before it stop in
// order.
func TestStartFailure(t *testing.T) {
	var j journal
	r := New(nil)
	a, b, c := newFake("a", &j), newFake("b", &j), newFake("c", &j)
	b.failStart = errors.New("address in use")
	r.Add("a", a)
	r.Add("b", b)
	r.Add("c", c)
	readyCalled := false
	err := r.Run(context.Background(), func() { readyCalled = true })
	if err == nil || !strings.Contains(err.Error(), "b: address in use") || readyCalled {
		t.Errorf("Run = %v, ready called %t", err, readyCalled)
	}
	if slices.Contains(j.list(), "start c") {
		t.Error("a task after the failed one started")
	}
	if !slices.Contains(j.list(), "end a") {
		t.Error("a task started before the failure was not stopped")
	}
	if s := r.Stopped(); !slices.Equal(s, []string{"b", "a"}) {
		t.Errorf("Stopped = %v (c never started)", s)
	}
}

// TestCancelledDuringStart: the context ending while a task gets ready
// stops what started; the stages learn that the role never got ready.
func TestCancelledDuringStart(t *testing.T) {
	r := New(nil)
	r.Add("slow", Func(func(ctx context.Context) error { <-ctx.Done(); return nil }))
	r.Add("never", &never{ready: make(chan struct{})})
	var cause error
	r.StopOrder(Do("step", func(c error) { cause = c }), Stop("never", "slow"))
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if err := r.Run(ctx, func() { t.Error("ready called") }); err != nil {
		t.Errorf("Run = %v", err)
	}
	if !errors.Is(cause, context.Canceled) {
		t.Errorf("cause %v, want context.Canceled", cause)
	}
}

// never is a task that is never ready and stops when asked.
type never struct{ ready chan struct{} }

func (n *never) Ready() <-chan struct{}      { return n.ready }
func (*never) Run(ctx context.Context) error { <-ctx.Done(); return nil }

// TestBadStopOrder: a stop order that forgets a task, names one that does
// not exist or stops one twice is refused before anything starts.
func TestBadStopOrder(t *testing.T) {
	for _, tc := range []struct {
		order []Stage
		want  string
	}{
		{[]Stage{Stop("a")}, `task "b" has no place`},
		{[]Stage{Stop("a", "b", "c")}, `names "c", which is no task`},
		{[]Stage{Stop("a", "b"), Stop("a")}, `stops "a" twice`},
	} {
		var j journal
		r := New(nil)
		r.Add("a", newFake("a", &j))
		r.Add("b", newFake("b", &j))
		r.StopOrder(tc.order...)
		if err := r.Run(context.Background(), nil); err == nil || !strings.Contains(err.Error(), tc.want) || len(j.list()) != 0 {
			t.Errorf("Run = %v, started %v; want %q before any start", err, j.list(), tc.want)
		}
	}
}

// TestWithReady: a part with a Run of its own shape runs as a task, ready
// when its channel says so, and its errors are not named twice.
func TestWithReady(t *testing.T) {
	ready := make(chan struct{})
	var order journal
	r := New(nil)
	r.Add("role", WithReady(func(ctx context.Context) error {
		time.Sleep(20 * time.Millisecond)
		close(ready)
		<-ctx.Done()
		return errors.New("role: listener: closed")
	}, ready))
	r.Add("next", Func(func(ctx context.Context) error {
		select {
		case <-ready:
			order.add("ready first")
		default:
			order.add("started early")
		}
		<-ctx.Done()
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	err := r.Run(ctx, cancel)
	if err == nil || err.Error() != "role: listener: closed" {
		t.Errorf("Run = %q, want the role's error once", err)
	}
	if got := order.list(); !slices.Equal(got, []string{"ready first"}) {
		t.Errorf("next: %v", got)
	}
}

// lingerer ends only a while after its context ends.
type lingerer struct{ linger time.Duration }

func (l lingerer) Run(ctx context.Context) error {
	<-ctx.Done()
	time.Sleep(l.linger)
	return nil
}

// TestSlowStopIsNamed: a task that takes longer than slowStop to end after
// its stage asked it is named in a warning while the runner waits, so that
// a shutdown that hangs says on what; one that ends in time is not.
func TestSlowStopIsNamed(t *testing.T) {
	old := slowStop
	slowStop = 20 * time.Millisecond
	defer func() { slowStop = old }()
	var logs testkit.Buffer
	r := New(slog.New(slog.NewTextHandler(&logs, nil)))
	r.Add("quick", lingerer{})
	r.Add("slow", lingerer{linger: 150 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := r.Run(ctx, nil); err != nil {
		t.Fatalf("Run: %v", err)
	}
	out := logs.String()
	if !strings.Contains(out, "still waiting for a task to stop") || !strings.Contains(out, "task=slow") {
		t.Errorf("no warning naming the slow task:\n%s", out)
	}
	if strings.Contains(out, "task=quick") {
		t.Errorf("the quick task was named:\n%s", out)
	}
}
