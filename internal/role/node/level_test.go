package node

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/anycastdns/anycastdns/internal/fleet/level"
)

// levelsUnderTest records the changes levels reports.
type levelsUnderTest struct {
	*levels
	mu      sync.Mutex
	changes []string
}

func newLevelsUnderTest() *levelsUnderTest {
	lt := &levelsUnderTest{}
	lt.levels = newLevels(slog.New(slog.DiscardHandler), func(reason string) {
		lt.mu.Lock()
		defer lt.mu.Unlock()
		lt.changes = append(lt.changes, reason)
	})
	return lt
}

// takeChanges returns the changes reported since the last call.
func (lt *levelsUnderTest) takeChanges() []string {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	c := lt.changes
	lt.changes = nil
	return c
}

func (lt *levelsUnderTest) now() string {
	l, src, _ := lt.current()
	return fmt.Sprintf("%v (%s)", l, src)
}

// after lets d pass in the bubble and every timer due fire.
func after(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

// TestRemoteLevelLapses: the control plane's level holds until its
// validity, at most MaxRemoteValidity, and then the node is back at
// normal; renewals extend it; a validity in the past is refused.
func TestRemoteLevelLapses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lt := newLevelsUnderTest()
		defer lt.close()
		if got := lt.now(); got != "normal (default)" {
			t.Fatalf("at start: %s", got)
		}

		if err := lt.setRemote(level.Shed2, "load above the high-water mark", time.Now().Add(2*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if got := lt.now(); got != "shed-2 (control)" {
			t.Errorf("after SetRemoteLevel: %s", got)
		}
		if c := lt.takeChanges(); len(c) != 1 || !strings.Contains(c[0], "control plane shed-2") {
			t.Errorf("changes reported: %q", c)
		}
		after(2*time.Minute - time.Nanosecond)
		if got := lt.now(); got != "shed-2 (control)" {
			t.Errorf("just before valid_until: %s", got)
		}
		after(time.Nanosecond)
		if got := lt.now(); got != "normal (default)" {
			t.Errorf("at valid_until: %s, want back at normal", got)
		}
		if c := lt.takeChanges(); len(c) != 1 || !strings.Contains(c[0], "lapsed") {
			t.Errorf("lapse reported as %q", c)
		}
		if _, remote := lt.settings(); remote != nil {
			t.Errorf("the lapsed level is still reported: %+v", remote)
		}

		// A validity an hour ahead is cut to MaxRemoteValidity.
		start := time.Now()
		if err := lt.setRemote(level.Withdrawn, "down from 2 of 3 vantage points", start.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		_, remote := lt.settings()
		if remote == nil || !remote.until.Equal(start.Add(MaxRemoteValidity)) {
			t.Errorf("validity of an hour kept as %+v, want cut to %v", remote, MaxRemoteValidity)
		}
		after(MaxRemoteValidity - time.Second)
		if got := lt.now(); got != "withdrawn (control)" {
			t.Errorf("1s before the bound: %s", got)
		}
		after(time.Second)
		if got := lt.now(); got != "normal (default)" {
			t.Errorf("%v after a withdrawn the control plane never renewed: %s, want normal", MaxRemoteValidity, got)
		}
		lt.takeChanges()

		// Renewed every minute, it holds; the timer of an earlier renewal
		// does not end a later one.
		start = time.Now()
		for range 4 {
			if err := lt.setRemote(level.Shed1, "hot", time.Now().Add(90*time.Second)); err != nil {
				t.Fatal(err)
			}
			after(time.Minute)
			if got := lt.now(); got != "shed-1 (control)" {
				t.Fatalf("renewed every minute for 90s, at %v: %s", time.Since(start), got)
			}
		}
		if _, remote := lt.settings(); remote == nil || !remote.since.Equal(start) {
			t.Errorf("since of a renewed level: %+v, want %v", remote, start)
		}
		if c := lt.takeChanges(); len(c) != 1 {
			t.Errorf("renewals reported as changes: %q", c)
		}
		after(30 * time.Second)
		if got := lt.now(); got != "normal (default)" {
			t.Errorf("90s after the last renewal: %s", got)
		}

		// Refused: a validity that has passed, a level that is not one.
		if err := lt.setRemote(level.Shed3, "late", time.Now()); err == nil || !strings.Contains(err.Error(), "has passed") {
			t.Errorf("validity now: %v, want refused", err)
		}
		if err := lt.setRemote(level.Level(5), "x", time.Now().Add(time.Minute)); err == nil {
			t.Error("level 5 accepted")
		}
		if got := lt.now(); got != "normal (default)" {
			t.Errorf("after refused levels: %s", got)
		}
	})
}

// TestPinWins: the operator's pin overrides the control plane's level;
// the control plane's level lapses under it; unpinning gives back what is
// valid then.
func TestPinWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		lt := newLevelsUnderTest()
		defer lt.close()
		if err := lt.setRemote(level.Shed3, "hot", time.Now().Add(3*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := lt.setPin(level.Normal, "the monitor is wrong about us"); err != nil {
			t.Fatal(err)
		}
		if got := lt.now(); got != "normal (operator)" {
			t.Errorf("pinned normal over control shed-3: %s", got)
		}
		if err := lt.setRemote(level.Withdrawn, "down from 3 of 3", time.Now().Add(3*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if got := lt.now(); got != "normal (operator)" {
			t.Errorf("pinned normal over control withdrawn: %s", got)
		}
		lt.unpin()
		if got := lt.now(); got != "withdrawn (control)" {
			t.Errorf("unpinned while the control plane's level is valid: %s", got)
		}
		if err := lt.setPin(level.Shed2, "maintenance"); err != nil {
			t.Fatal(err)
		}
		after(4 * time.Minute)
		if got := lt.now(); got != "shed-2 (operator)" {
			t.Errorf("the control plane's level lapsed under the pin: %s", got)
		}
		lt.unpin()
		if got := lt.now(); got != "normal (default)" {
			t.Errorf("unpinned after the control plane's level lapsed: %s", got)
		}
		before := len(lt.takeChanges())
		lt.unpin() // nothing pinned: nothing happens
		if c := lt.takeChanges(); len(c) != 0 || before == 0 {
			t.Errorf("changes: %d before, %q after an unpin of nothing", before, c)
		}
		if err := lt.setPin(level.Level(-1), "x"); err == nil {
			t.Error("pin of level -1 accepted")
		}
	})
}
