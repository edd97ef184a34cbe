package store

import (
	"testing"
	"time"
)

// TestCommitBudget: a write of a few RRsets gets commitTimeout; the import
// of a 1,000,000-name zone (about 1,000,000 RRsets), which took over a
// minute on a busy machine and was rolled back at commitTimeout, gets more
// than twice that.
func TestCommitBudget(t *testing.T) {
	if got := commitBudget(1); got < commitTimeout || got > commitTimeout+time.Second {
		t.Errorf("one RRset: %v, want about %v", got, commitTimeout)
	}
	if got := commitBudget(1_000_000); got < 2*commitTimeout+30*time.Second {
		t.Errorf("1,000,000 RRsets: %v, want over %v", got, 2*commitTimeout+30*time.Second)
	}
}
