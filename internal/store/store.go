// Package store keeps the control plane's zones: the content of every zone,
// the recent changes between its versions (for IXFR) and its serial policy,
// in one SQLite database file, with the current version of each zone held in
// memory as an immutable *zone.Zone.
//
// Every write is one transaction that makes the next version of the zone
// from the current one (zone.Zone.Apply: the names it changes, validated
// with the rules of zone loading; a whole new content, from text, with
// zone.Build), bumps the SOA serial by the zone's policy without ever going
// backwards (RFC 1982), stores the new content and records the difference,
// SOA change included (zone.DiffWire), in the zone's change log. The zone
// is held once, as that version.
// Writes are serialized; reads are served from memory without touching
// SQLite, except Changes, which reads the log.
//
// The database runs in WAL mode with synchronous=FULL: a write that returned
// without error has been fsynced and survives a crash of the process or the
// machine. An exclusive lock on "<path>.lock" keeps a second process from
// opening the same database, whose in-memory state would go stale.
//
// The package is the only one that imports the database driver.
package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/sign"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// Errors of the store, matched with errors.Is.
var (
	// ErrNotFound: the zone or RRset does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: the zone already exists.
	ErrExists = errors.New("already exists")
	// ErrInvalid: the write would make the zone invalid, or its input is
	// malformed. The message names the offending record; errors from zone
	// validation also match zone.ErrInvalid.
	ErrInvalid = errors.New("invalid")
	// ErrNoJournal: the change log does not reach back to the serial asked
	// for (a full transfer is needed).
	ErrNoJournal = errors.New("serial not in the change log")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store closed")
	// ErrSigned: the write would break the DNSSEC signatures of a zone
	// that was written signed (the store does not sign): an edit of one
	// RRset of a signed zone, an RRset of a DNSSEC type, or signed text
	// whose SOA serial would have to change.
	ErrSigned = errors.New("zone is DNSSEC-signed")
)

// SerialPolicy decides the next SOA serial of a zone.
type SerialPolicy string

// Serial policies.
const (
	// SerialIncrement adds one to the serial.
	SerialIncrement SerialPolicy = "increment"
	// SerialDate uses YYYYMMDDnn (UTC): today with nn = 00 if that is newer
	// than the current serial, else the current serial plus one.
	SerialDate SerialPolicy = "date"
)

// ParseSerialPolicy checks a policy name.
func ParseSerialPolicy(s string) (SerialPolicy, error) {
	switch p := SerialPolicy(s); p {
	case SerialIncrement, SerialDate:
		return p, nil
	}
	return "", invalidf("serial policy %q: want increment or date", s)
}

// ZoneInfo describes the current version of a zone.
type ZoneInfo struct {
	Name         string // lower-case, fully qualified
	Serial       uint32
	Records      int
	Updated      time.Time // when the current version was written
	SerialPolicy string
}

// Change is one step of a zone's change log: the records deleted from the
// version with serial From and added to reach the version with serial To,
// each list starting with the SOA, as an IXFR sends them (RFC 1995).
type Change struct {
	From, To uint32
	Del, Add []dns.RR
	// encoded, when set, holds Del and Add as the change log stores
	// them (encodeRRs), from a writer that has the records in wire
	// form; Del and Add are then empty.
	encoded *[2][]byte
}

// Event tells subscribers that a zone changed. Created is set when the zone
// was created (or re-created) since the last event for it that was received;
// Deleted when it no longer exists.
type Event struct {
	Zone    string
	Serial  uint32
	Deleted bool
	Created bool
}

// Defaults of the options.
const (
	DefaultJournalLimit = 1000
	// DefaultMaxRecords is the transfer bound of the nodes (zonesync's
	// MaxRecords): a zone of 1,000,000 names has about 2,000,000 records.
	DefaultMaxRecords = 10_000_000
)

type options struct {
	journalLimit int
	maxRecords   int
	policy       SerialPolicy
	now          func() time.Time
	sealer       *sign.Sealer // seals the signing keys; nil: no signing
}

// Option adjusts Open.
type Option func(*options)

// WithJournalLimit keeps the last n changes of each zone (default
// DefaultJournalLimit); IXFR from an older serial needs a full transfer.
func WithJournalLimit(n int) Option { return func(o *options) { o.journalLimit = max(n, 1) } }

// WithMaxRecords bounds the number of records of one zone (default
// DefaultMaxRecords); writes that exceed it are invalid.
func WithMaxRecords(n int) Option { return func(o *options) { o.maxRecords = max(n, 1) } }

// WithDefaultPolicy is the serial policy of zones created without one
// (default SerialIncrement).
func WithDefaultPolicy(p SerialPolicy) Option { return func(o *options) { o.policy = p } }

// WithClock replaces time.Now, for the date policy and Updated.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// Store is the zone database. Its methods are safe for concurrent use.
type Store struct {
	db   *sql.DB
	path string
	log  *slog.Logger
	opt  options
	lock interface{ Close() error }

	// wsem serializes writes (a channel so that waiting honours ctx).
	wsem chan struct{}

	mu     sync.RWMutex // guards zones and closed
	zones  map[string]*zoneState
	closed bool

	subs subscribers

	pg *pgState // nil on SQLite
}

// zoneState is one zone as the store holds it: the current version, whose
// next one a write makes with zone.Apply and which shares every node the
// write does not change. A write replaces the whole value in Store.zones.
type zoneState struct {
	id      int64
	info    ZoneInfo
	z       *zone.Zone
	lastSeq int64      // sequence number of the newest change log entry
	sig     *signState // nil: the store does not sign the zone
}

// setKey names a row of the rrsets table: one RRset, or every RRSIG of an
// owner.
type setKey struct {
	name string // lower-case presentation form
	typ  uint16
}

// Close closes the database and every subscription. Writes that are in
// progress finish first.
func (s *Store) Close() error {
	s.stopPG()
	s.wsem <- struct{}{} // wait for the current write
	defer func() { <-s.wsem }()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.subs.closeAll()
	err := s.db.Close()
	if lerr := s.lock.Close(); err == nil {
		err = lerr
	}
	if err != nil {
		return fmt.Errorf("close store %s: %w", s.path, err)
	}
	return nil
}

// ListZones returns every zone in canonical order of their names.
func (s *Store) ListZones(ctx context.Context) ([]ZoneInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	states := make([]*zoneState, 0, len(s.zones))
	for _, st := range s.zones {
		states = append(states, st)
	}
	slices.SortFunc(states, func(a, b *zoneState) int { return zone.Compare(a.z.OriginWire(), b.z.OriginWire()) })
	out := make([]ZoneInfo, len(states))
	for i, st := range states {
		out[i] = st.info
	}
	return out, nil
}

// Zone returns the current version of a zone.
func (s *Store) Zone(ctx context.Context, name string) (*zone.Zone, error) {
	_, z, err := s.Get(ctx, name)
	return z, err
}

// Get returns the description and the content of the current version of a
// zone, both of the same version.
func (s *Store) Get(ctx context.Context, name string) (ZoneInfo, *zone.Zone, error) {
	if err := ctx.Err(); err != nil {
		return ZoneInfo{}, nil, err
	}
	zname, err := canonicalZone(name)
	if err != nil {
		return ZoneInfo{}, nil, err
	}
	st, err := s.state(zname)
	if err != nil {
		return ZoneInfo{}, nil, err
	}
	return st.info, st.z, nil
}

func (s *Store) state(zname string) (*zoneState, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	st, ok := s.zones[zname]
	if !ok {
		return nil, fmt.Errorf("zone %s: %w", zname, ErrNotFound)
	}
	return st, nil
}

// RRset returns the records of type t at name in a zone. RRSIG returns every
// signature at the name. A name or type without records is ErrNotFound.
func (s *Store) RRset(ctx context.Context, zoneName, name string, t uint16) ([]dns.RR, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	zname, err := canonicalZone(zoneName)
	if err != nil {
		return nil, err
	}
	owner, err := canonicalName(name)
	if err != nil {
		return nil, err
	}
	st, err := s.state(zname)
	if err != nil {
		return nil, err
	}
	rrs, err := rrsetOf(st.z, owner, t)
	if err != nil {
		return nil, err
	}
	if len(rrs) == 0 {
		return nil, fmt.Errorf("zone %s: rrset %s %s: %w", zname, owner, typeString(t), ErrNotFound)
	}
	return rrs, nil
}

// rrsetOf extracts the records of type t at owner from a zone, as the zone
// serves them. For RRSIG it returns the signatures of every RRset there.
func rrsetOf(z *zone.Zone, owner string, t uint16) ([]dns.RR, error) {
	w, err := zone.NameWire(owner)
	if err != nil {
		return nil, invalidf("name %q: %v", owner, err)
	}
	n := z.Lookup(w)
	if n == nil {
		return nil, nil
	}
	if t != dns.TypeRRSIG {
		set := n.Get(t)
		if set == nil {
			return nil, nil
		}
		data := set.WithoutSigs()
		return data.RRs(owner)
	}
	var out []dns.RR
	for i := range n.Sets {
		set := &n.Sets[i]
		if set.SigLen() == 0 {
			continue
		}
		sigs := set.SigSet()
		rrs, err := sigs.RRs(owner)
		if err != nil {
			return nil, err
		}
		out = append(out, rrs...)
	}
	return out, nil
}

// canonicalName returns name fully qualified and lower-cased, in the
// presentation form miekg/dns gives it.
func canonicalName(name string) (string, error) {
	if name == "" {
		return "", invalidf("empty name")
	}
	w, err := zone.NameWire(name)
	if err != nil {
		return "", invalidf("%v", err)
	}
	return zone.NameString(w), nil
}

func canonicalZone(name string) (string, error) {
	n, err := canonicalName(name)
	if err != nil {
		return "", fmt.Errorf("zone name: %w", err)
	}
	return n, nil
}

func typeString(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return fmt.Sprintf("TYPE%d", t)
}

// invalidError is a problem with the input of a write. It matches
// ErrInvalid and unwraps to the underlying error (a zone validation error
// matches zone.ErrInvalid too).
type invalidError struct{ err error }

func (e *invalidError) Error() string        { return e.err.Error() }
func (e *invalidError) Unwrap() error        { return e.err }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(err error) error { return &invalidError{err} }

// signedError is a write refused because of DNSSEC; it matches ErrSigned.
type signedError struct{ msg string }

func (e *signedError) Error() string        { return e.msg }
func (e *signedError) Is(target error) bool { return target == ErrSigned }

func signedf(format string, args ...any) error { return &signedError{fmt.Sprintf(format, args...)} }

// dnssecTypes are the types a signer writes: the store keeps them as they
// come and cannot make new ones.
var dnssecTypes = []uint16{dns.TypeDNSKEY, dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNSEC3, dns.TypeNSEC3PARAM}

func isDNSSECType(t uint16) bool { return slices.Contains(dnssecTypes, t) }

// dnssecIn returns the DNSSEC types among types ("DNSKEY, RRSIG"), ""
// when there are none.
func dnssecIn(types iter.Seq[uint16]) string {
	found := map[uint16]bool{}
	for t := range types {
		if isDNSSECType(t) {
			found[t] = true
		}
	}
	var names []string
	for _, t := range dnssecTypes {
		if found[t] {
			names = append(names, typeString(t))
		}
	}
	return strings.Join(names, ", ")
}

// signed returns the DNSSEC types of a zone's current version, read at its
// apex alone so that a write costs no walk of the zone: a signed zone has its
// DNSKEY, its NSEC or NSEC3PARAM and the RRSIGs of its SOA there, and zone
// imports, which may carry DNSSEC records anywhere, are checked record by
// record (signedRecords).
func (st *zoneState) signed() string {
	apex := st.z.Apex
	if apex == nil {
		return ""
	}
	return dnssecIn(func(yield func(uint16) bool) {
		for i := range apex.Sets {
			set := &apex.Sets[i]
			if !yield(set.Type) {
				return
			}
			if set.SigLen() > 0 && !yield(dns.TypeRRSIG) {
				return
			}
		}
	})
}

// signedRecords returns the DNSSEC types among records.
func signedRecords(recs []zone.Record) string {
	return dnssecIn(func(yield func(uint16) bool) {
		for _, r := range recs {
			if !yield(r.RR.Header().Rrtype) {
				return
			}
		}
	})
}

// howToEditSigned is the advice of an edit refused with ErrSigned.
const howToEditSigned = "the zone was imported signed and its signing is not enabled on the control plane: enable it " +
	"(anycastctl dnssec enable, which signs the zone again with the control plane's keys), sign the zone again with its signer " +
	"and import the whole signed zone (a newer SOA serial), or import the zone without its DNSSEC records to serve it unsigned"

func invalidf(format string, args ...any) error { return invalid(fmt.Errorf(format, args...)) }

// hasDirective reports whether master-file text contains the directive
// (such as "$GENERATE"), ignoring case.
func hasDirective(data []byte, directive string) bool {
	for i := bytes.IndexByte(data, '$'); i >= 0; {
		if len(data)-i >= len(directive) && bytes.EqualFold(data[i:i+len(directive)], []byte(directive)) {
			return true
		}
		j := bytes.IndexByte(data[i+1:], '$')
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}
