package xfrout

import (
	"context"

	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// ZoneSource is where the served zones come from: *store.Store in the
// control plane, an in-memory source in tests. Its methods must be safe for
// concurrent use.
type ZoneSource interface {
	// ListZones returns every zone (for the catalog and the NOTIFYs at
	// start-up).
	ListZones(ctx context.Context) ([]store.ZoneInfo, error)
	// Zone returns the current version of a zone; an error matching
	// store.ErrNotFound when there is none.
	Zone(ctx context.Context, name string) (*zone.Zone, error)
	// Changes returns the changes from serial from to the current one,
	// each Del and Add list starting with the SOA: empty when from is
	// current, an error matching store.ErrNoJournal when the log does not
	// reach back to from.
	Changes(ctx context.Context, zone string, from uint32) ([]store.Change, error)
	// Subscribe returns the zone events, sent after each change, and a
	// function that ends the subscription.
	Subscribe() (<-chan store.Event, func())
}

var _ ZoneSource = (*store.Store)(nil)
