package control

import (
	"errors"
	"fmt"
	"testing"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/store"
)

// TestClassifyDatabaseLost: a write that failed because the PostgreSQL
// database was lost (as during a failover) is the API's 503, not a 500.
func TestClassifyDatabaseLost(t *testing.T) {
	for _, err := range []error{store.ErrUnavailable, store.ErrCommitUnknown, store.ErrClosed} {
		wrapped := fmt.Errorf("zone example.com.: %w", err)
		if got := classify(wrapped); !errors.Is(got, api.ErrUnavailable) || got.Error() != wrapped.Error() {
			t.Errorf("classify(%v) = %v, want it marked api.ErrUnavailable with the same message", wrapped, got)
		}
	}
}
