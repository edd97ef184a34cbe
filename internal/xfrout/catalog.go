package xfrout

import (
	"crypto/sha1" //nolint:gosec // a name hash for stable member ids, not a security function
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// catalog is the generated catalog zone (RFC 9432, schema version 2) and
// the recent changes between its versions, for IXFR.
//
// Its serial is the Unix time of the version, or the previous serial plus
// one when that is not newer, so that it keeps increasing across restarts
// of the control plane, which do not keep the catalog.
type catalog struct {
	name string // canonical
	keep int    // changes kept
	now  func() time.Time

	mu      sync.RWMutex
	z       *zone.Zone // nil until the first update
	members []string
	journal []store.Change // oldest first, consecutive
}

func newCatalog(name string, keep int, now func() time.Time) *catalog {
	return &catalog{name: dns.CanonicalName(name), keep: keep, now: now}
}

// current returns the current version, nil before the first update.
func (c *catalog) current() *zone.Zone {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.z
}

// update makes members (canonical names, in any order) the member list. It
// returns whether that made a new version.
func (c *catalog) update(members []string) (bool, error) {
	members = slices.Clone(members)
	slices.Sort(members) // any fixed order will do: the zone sorts itself
	members = slices.Compact(members)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.z != nil && slices.Equal(members, c.members) {
		return false, nil
	}
	serial := uint32(c.now().Unix())
	if c.z != nil && !zone.SerialLess(c.z.Serial, serial) {
		serial = c.z.Serial + 1
	}
	nz, err := buildCatalog(c.name, serial, members)
	if err != nil {
		return false, err
	}
	if c.z != nil {
		del, add, err := zone.Diff(c.z, nz)
		if err != nil {
			return false, fmt.Errorf("catalog %s: diff: %w", c.name, err)
		}
		c.journal = append(c.journal, store.Change{From: c.z.Serial, To: serial, Del: del, Add: add})
		if len(c.journal) > c.keep {
			c.journal = slices.Delete(c.journal, 0, len(c.journal)-c.keep)
		}
	}
	c.z, c.members = nz, members
	return true, nil
}

// changes is ZoneSource.Changes for the catalog.
func (c *catalog) changes(from uint32) ([]store.Change, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.z == nil {
		return nil, fmt.Errorf("zone %s: %w", c.name, store.ErrNotFound)
	}
	if from == c.z.Serial {
		return []store.Change{}, nil
	}
	for i, ch := range c.journal {
		if ch.From == from {
			return slices.Clone(c.journal[i:]), nil
		}
	}
	return nil, fmt.Errorf("zone %s: serial %d: %w", c.name, from, store.ErrNoJournal)
}

// memberID is the unique id of a member zone: the hex SHA-1 of its name in
// lower-case wire form, as the first catalog zone drafts defined it and as
// BIND still documents it. It depends on the name alone, so it stays the
// same across versions and restarts.
func memberID(name string) string {
	w, err := zone.NameWire(name)
	if err != nil {
		w = []byte(name)
	}
	sum := sha1.Sum(w) //nolint:gosec // see above
	return hex.EncodeToString(sum[:])
}

// catalogTTL is the TTL of every catalog record; RFC 9432 gives TTLs no
// meaning in catalogs.
const catalogTTL = 0

// buildCatalog returns the catalog zone name at serial listing members.
// The SOA refresh (60s) is how soon secondaries pick up a change whose
// NOTIFY they missed; the expire is as long as possible, because a catalog
// that expires would take its members away.
func buildCatalog(name string, serial uint32, members []string) (*zone.Zone, error) {
	hdr := func(owner string, t uint16) dns.RR_Header {
		return dns.RR_Header{Name: owner, Rrtype: t, Class: dns.ClassINET, Ttl: catalogTTL}
	}
	rrs := []dns.RR{
		&dns.SOA{Hdr: hdr(name, dns.TypeSOA), Ns: "invalid.", Mbox: "invalid.", Serial: serial,
			Refresh: 60, Retry: 30, Expire: 2147483646, Minttl: 0},
		&dns.NS{Hdr: hdr(name, dns.TypeNS), Ns: "invalid."},
		&dns.TXT{Hdr: hdr("version."+name, dns.TypeTXT), Txt: []string{"2"}},
	}
	for _, m := range members {
		rrs = append(rrs, &dns.PTR{Hdr: hdr(memberID(m)+".zones."+name, dns.TypePTR), Ptr: m})
	}
	z, err := zone.FromRecords(name, rrs, "(catalog)")
	if err != nil {
		return nil, fmt.Errorf("build catalog %s: %w", name, err)
	}
	return z, nil
}
