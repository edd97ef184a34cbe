package health

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/miekg/dns"
)

// Sentinel errors of the operator checks, checked with errors.Is.
var (
	ErrMaintenance = errors.New("maintenance file present")
	ErrDrained     = errors.New("drained by operator")
)

// ZoneState is what ZoneCheck needs to know about a loaded zone.
type ZoneState struct {
	Serial uint32
	// Expired: the zone is past its SOA expire without a refresh. It is
	// answered SERVFAIL; that is not a failure of the node, since every
	// PoP following the same primaries expires it at the same moment, and
	// withdrawing them would take every other zone down with it.
	Expired bool
	// Unconfirmed: the zone was found expired on disk at start-up and
	// no refresh attempt has ended since. It counts as not loaded.
	Unconfirmed bool
}

// ZoneCheck fails, until it first passes, while a wanted zone is not
// loaded: a starting node attracts no queries before it has all its data.
// A zone with data past its SOA expire is loaded (it answers SERVFAIL,
// alone): failing on it would withdraw every PoP at once when their common
// primaries are away.
//
// Once the check has passed, a zone added afterwards (a new catalog member,
// a zone added by a reload) that has not loaded yet is pending, not a
// failure: every PoP learns of a new zone at the same moment, so failing
// on it would withdraw them all at once, turning the provisioning of one
// zone into an outage of every zone. Until it loads, the zone is answered
// REFUSED everywhere alike, as on any secondary before its first transfer.
type ZoneCheck struct {
	Want   func() []string             // configured zones
	Loaded func() map[string]ZoneState // loaded zones by name
	Label  string                      // Name; "" = "zones"

	passed atomic.Bool // the check passed once: missing zones are pending
}

// Pending returns the wanted zones that were added after the check first
// passed and have not loaded yet, sorted.
func (z *ZoneCheck) Pending() []string {
	if !z.passed.Load() {
		return nil
	}
	missing, _ := z.scan()
	slices.Sort(missing)
	return missing
}

// Name implements Check.
func (z *ZoneCheck) Name() string { return cmp.Or(z.Label, "zones") }

// scan lists the wanted zones that are not loaded and those expired. Zone
// names are compared case-insensitively, with or without the final dot.
func (z *ZoneCheck) scan() (missing, expired []string) {
	loaded := make(map[string]ZoneState)
	for name, st := range z.Loaded() {
		loaded[dns.CanonicalName(name)] = st
	}
	for _, name := range z.Want() {
		st, ok := loaded[dns.CanonicalName(name)]
		switch {
		case !ok || st.Unconfirmed:
			missing = append(missing, name)
		case st.Expired:
			expired = append(expired, name)
		}
	}
	return missing, expired
}

// Check implements Check.
func (z *ZoneCheck) Check(context.Context) error {
	if !z.passed.Load() {
		if missing, _ := z.scan(); len(missing) > 0 {
			return errors.New("not loaded: " + listSome(missing))
		}
	}
	z.passed.Store(true)
	return nil
}

// FileCheck fails while the file at Path exists: operators drain a node by
// creating it and undrain it by removing it. A Path that cannot be examined
// (other than not existing) fails too.
type FileCheck struct {
	Path  string
	Label string // Name; "" = "maintenance_file"
}

// Name implements Check.
func (f *FileCheck) Name() string { return cmp.Or(f.Label, "maintenance_file") }

// Check implements Check.
func (f *FileCheck) Check(context.Context) error {
	_, err := os.Stat(f.Path)
	switch {
	case err == nil:
		return fmt.Errorf("%w: %s", ErrMaintenance, f.Path)
	case errors.Is(err, fs.ErrNotExist):
		return nil
	default:
		return fmt.Errorf("maintenance file: %w", err)
	}
}

// FlagCheck is an in-memory operator switch: it fails while drained. The
// zero value is undrained. Call Checker.CheckNow after Set to act at once.
type FlagCheck struct {
	Label   string // Name; "" = "drain"
	drained atomic.Bool
}

// Name implements Check.
func (f *FlagCheck) Name() string { return cmp.Or(f.Label, "drain") }

// Set drains (true) or undrains (false) the node.
func (f *FlagCheck) Set(drained bool) { f.drained.Store(drained) }

// Drained reports whether the switch is set.
func (f *FlagCheck) Drained() bool { return f.drained.Load() }

// Check implements Check.
func (f *FlagCheck) Check(context.Context) error {
	if f.drained.Load() {
		return ErrDrained
	}
	return nil
}

// listSome joins up to three items and says how many more there are.
func listSome(items []string) string {
	const show = 3
	if len(items) <= show {
		return strings.Join(items, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(items[:show], ", "), len(items)-show)
}
