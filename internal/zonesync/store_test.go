package zonesync

import (
	"sync"
	"testing"
)

// Concurrent writes share the fsyncs of the directory, and each returns
// only after one that started after its call.
func TestGroupSync(t *testing.T) {
	st, err := newStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	g := newGroupSync(st.dir)
	if err := g.sync(); err != nil || g.started != 1 || g.done != 1 {
		t.Fatalf("one call: err %v, started %d, done %d; want nil, 1, 1", err, g.started, g.done)
	}
	const callers = 64
	var wg sync.WaitGroup
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() { errs[i] = g.sync() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	if n := g.started - 1; n < 1 || n > callers {
		t.Errorf("%d fsyncs for %d concurrent callers, want 1..%d", n, callers, callers)
	}
	t.Logf("%d fsyncs for %d concurrent callers", g.started-1, callers)
}
