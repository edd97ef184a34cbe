// Package lifecycle starts and stops the parts of a role in order: each
// part is a Task (Run until its context ends; Ready, optionally, when it
// serves), started in the order added once the ones before are ready, and
// stopped in an explicit order of stages — tasks stopped together, or a
// step such as "withdraw and drain" — when the role's context ends or any
// task ends on its own. Every task's error is collected, and Run returns
// only once every task's goroutine has ended.
//
// Adding a part to a role is one Add, and one place in its StopOrder.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// Task is a long-running part of a role: it runs until its context ends
// (then it stops cleanly and returns nil) or it fails.
type Task interface {
	Run(ctx context.Context) error
}

// Readier is a Task that needs a while before it serves (binding sockets,
// loading): the next task starts once Ready is closed.
type Readier interface {
	Ready() <-chan struct{}
}

// Func is a Task of a function.
type Func func(ctx context.Context) error

// Run implements Task.
func (f Func) Run(ctx context.Context) error { return f(ctx) }

// WithReady is a Task that runs run and is ready when ready is closed: a
// part whose Run takes more than a context (a role, run as a part of
// another).
func WithReady(run Func, ready <-chan struct{}) Task { return readyTask{run, ready} }

type readyTask struct {
	Func
	ready <-chan struct{}
}

func (t readyTask) Ready() <-chan struct{} { return t.ready }

// Stage is one step of the shutdown: tasks stopped together (Stop), or a
// function called (Do).
type Stage struct {
	names []string
	label string
	do    func(cause error)
}

// Stop is a stage that stops the named tasks together and waits for all
// of them to end.
func Stop(names ...string) Stage { return Stage{names: names, label: strings.Join(names, "+")} }

// Do is a stage that calls f with the cause of the shutdown: nil when the
// role's context ended once every task was ready, context.Canceled when it
// ended during the start-up, else the failure that ended the run.
func Do(label string, f func(cause error)) Stage { return Stage{label: label, do: f} }

// Runner runs the tasks of a role. Add the tasks and set the stop order
// before Run; a Runner runs once.
type Runner struct {
	log    *slog.Logger
	tasks  []*task
	byName map[string]*task
	order  []Stage

	mu      sync.Mutex
	stopped []string // the stages of the last shutdown, as they ended
}

type task struct {
	name    string
	t       Task
	started bool
	cancel  context.CancelFunc
	done    chan struct{}
	err     error // valid once done is closed
	asked   bool  // asked to stop: its end is not a failure
}

// New returns a Runner that logs with logger (nil: nothing).
func New(logger *slog.Logger) *Runner {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Runner{log: logger, byName: map[string]*task{}}
}

// Add adds a task, started after every task added before it is ready. Its
// name says what failed in errors and places it in the stop order.
func (r *Runner) Add(name string, t Task) {
	tk := &task{name: name, t: t}
	r.tasks = append(r.tasks, tk)
	r.byName[name] = tk
}

// StopOrder sets the shutdown's stages. Every task must be stopped by
// exactly one stage. Without it the tasks stop one by one in the reverse
// order of their start.
func (r *Runner) StopOrder(stages ...Stage) { r.order = stages }

// Stopped returns the labels of the stages of the last shutdown in the
// order they completed (a Stop stage's label is its task names joined by
// "+"; stages of tasks that never started are left out).
func (r *Runner) Stopped() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.stopped)
}

// check validates the stop order against the tasks.
func (r *Runner) check() error {
	if len(r.byName) != len(r.tasks) {
		return errors.New("lifecycle: two tasks have the same name")
	}
	if r.order == nil {
		return nil
	}
	seen := map[string]bool{}
	for _, st := range r.order {
		for _, n := range st.names {
			if r.byName[n] == nil {
				return fmt.Errorf("lifecycle: the stop order names %q, which is no task", n)
			}
			if seen[n] {
				return fmt.Errorf("lifecycle: the stop order stops %q twice", n)
			}
			seen[n] = true
		}
	}
	for _, t := range r.tasks {
		if !seen[t.name] {
			return fmt.Errorf("lifecycle: task %q has no place in the stop order", t.name)
		}
	}
	return nil
}

// ended is a task that ended on its own: its failure ends the run.
type ended struct {
	t   *task
	err error
}

// Run starts the tasks in order, each once the ones before it are ready,
// and calls ready (if not nil) when all are. It then serves until ctx ends
// or a task ends on its own (a nil return counts as a failure), and shuts
// down through the stop order; a failure at start-up shuts down the tasks
// already started the same way. It returns every task's error, each
// prefixed with the task's name, joined; nil after a clean shutdown.
func (r *Runner) Run(ctx context.Context, ready func()) error {
	if err := r.check(); err != nil {
		return err
	}
	ends := make(chan ended, len(r.tasks))
	var cause error
	aborted := false
start:
	for _, t := range r.tasks {
		r.start(t, ends)
		readyc := (<-chan struct{})(nil)
		if rd, ok := t.t.(Readier); ok {
			readyc = rd.Ready()
		}
		if readyc == nil {
			continue
		}
		select {
		case <-readyc:
		case e := <-ends:
			cause, aborted = failure(e), true
			break start
		case <-ctx.Done():
			// Not a failure: the stages learn that the role never
			// got ready.
			cause, aborted = context.Cause(ctx), true
			break start
		}
	}
	if !aborted {
		if ready != nil {
			ready()
		}
		select {
		case <-ctx.Done():
		case e := <-ends:
			cause = failure(e)
		}
	}
	if cause != nil && !errors.Is(cause, context.Canceled) {
		r.log.Error("shutting down after a failure", "err", cause)
	}
	r.shutdown(cause)
	var errs []error
	for _, t := range r.tasks {
		if !t.started {
			continue
		}
		switch {
		case t.err != nil && !errors.Is(t.err, context.Canceled):
			errs = append(errs, named(t.name, t.err))
		case t.err == nil && !t.asked:
			errs = append(errs, fmt.Errorf("%s: %w", t.name, errStopped))
		}
	}
	return errors.Join(errs...)
}

// errStopped is the failure of a task that returned nil unasked.
var errStopped = errors.New("stopped on its own")

func failure(e ended) error {
	err := e.err
	if err == nil {
		err = errStopped
	}
	return named(e.t.name, err)
}

// named prefixes err with the task's name, unless it starts with it
// already.
func named(name string, err error) error {
	if strings.HasPrefix(err.Error(), name+": ") {
		return err
	}
	return fmt.Errorf("%s: %w", name, err)
}

// start runs t in a goroutine of its own, with a context of its own: a
// task outlives the role's context until its stage.
func (r *Runner) start(t *task, ends chan<- ended) {
	tctx, cancel := context.WithCancel(context.Background())
	t.cancel, t.done, t.started = cancel, make(chan struct{}), true
	r.log.Debug("starting", "task", t.name)
	go func() {
		err := t.t.Run(tctx)
		t.err = err
		close(t.done)
		ends <- ended{t, err} // buffered for every task: never blocks
	}()
}

// slowStop is how long a task may take to end after its stage asked it
// before the runner logs that it still waits for it (and again each time
// as long again passes): a task that ignores its context shows by name
// instead of hanging the shutdown in silence.
var slowStop = 5 * time.Second

// wait waits for t to end, logging while it takes longer than slowStop.
func (r *Runner) wait(t *task, stage string) {
	start := time.Now()
	tick := time.NewTicker(slowStop)
	defer tick.Stop()
	for {
		select {
		case <-t.done:
			return
		case <-tick.C:
			r.log.Warn("still waiting for a task to stop", "task", t.name, "stage", stage, "waited", time.Since(start).Round(time.Millisecond))
		}
	}
}

// shutdown runs the stop order; every started task has ended when it
// returns.
func (r *Runner) shutdown(cause error) {
	order := r.order
	if order == nil {
		for _, t := range slices.Backward(r.tasks) {
			order = append(order, Stop(t.name))
		}
	}
	r.mu.Lock()
	r.stopped = nil
	r.mu.Unlock()
	for _, st := range order {
		start := time.Now()
		if st.do != nil {
			st.do(cause)
		} else {
			var ts []*task
			for _, n := range st.names {
				if t := r.byName[n]; t.started {
					select {
					case <-t.done: // ended on its own before
					default:
						t.asked = true
					}
					t.cancel()
					ts = append(ts, t)
				}
			}
			if len(ts) == 0 {
				continue
			}
			for _, t := range ts {
				r.wait(t, st.label)
			}
		}
		r.log.Debug("stopped", "stage", st.label, "duration", time.Since(start))
		r.mu.Lock()
		r.stopped = append(r.stopped, st.label)
		r.mu.Unlock()
	}
}
