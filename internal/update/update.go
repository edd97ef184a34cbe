// Package update applies DNS UPDATE messages (RFC 2136) to the control
// plane's zones: the zone section, the prerequisites (§2.4, §3.2), the
// permission of the TSIG key that signed the message (a Policy, after
// BIND's update-policy), the prescan of the update section (§3.4.1) and
// the changes (§3.4.2), made on a copy of the zone's RRsets and written
// with store.UpdateRRsets: one transaction, one serial step, one
// change-log entry per message, or nothing at all.
//
// The transfer server (internal/xfrout) receives the messages on its
// listener and checks their TSIG; the nodes forward the ones they receive
// to it (Forwarder).
package update

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/zone"
)

// Error is why an UPDATE is not applied, with the rcode to answer.
type Error struct {
	Rcode int
	Msg   string
}

func (e *Error) Error() string { return dns.RcodeToString[e.Rcode] + ": " + e.Msg }

func fail(rcode int, format string, args ...any) *Error {
	return &Error{Rcode: rcode, Msg: fmt.Sprintf(format, args...)}
}

// Request is an UPDATE whose zone section has been checked.
type Request struct {
	Zone    string   // canonical
	Prereqs []dns.RR // the prerequisite section
	Updates []dns.RR // the update section
}

// Parse checks the zone section of an UPDATE (§3.1.1): one zone, of type
// SOA (FORMERR otherwise) and class IN (NOTAUTH otherwise: the only class
// served).
func Parse(m *dns.Msg) (*Request, error) {
	if m.Opcode != dns.OpcodeUpdate {
		return nil, fail(dns.RcodeFormatError, "opcode %s, not UPDATE", dns.OpcodeToString[m.Opcode])
	}
	if len(m.Question) != 1 {
		return nil, fail(dns.RcodeFormatError, "%d zones in the zone section, want 1", len(m.Question))
	}
	q := m.Question[0]
	if q.Qtype != dns.TypeSOA {
		return nil, fail(dns.RcodeFormatError, "zone section of type %s, want SOA", dns.Type(q.Qtype))
	}
	if q.Qclass != dns.ClassINET {
		return nil, fail(dns.RcodeNotAuth, "zone %s in class %s: only IN is served", q.Name, dns.Class(q.Qclass))
	}
	if _, err := zone.NameWire(q.Name); err != nil {
		return nil, fail(dns.RcodeFormatError, "zone name %q: %v", q.Name, err)
	}
	return &Request{Zone: dns.CanonicalName(q.Name), Prereqs: m.Answer, Updates: m.Ns}, nil
}

// Plan evaluates r against z, the current version of its zone, for the
// key (canonical) that signed it: the prerequisites, the permissions of
// pol, the prescan and the changes, in the order of RFC 2136 §3. It
// returns the RRsets the update replaces (each whole; none deletes it),
// or an *Error with the rcode to answer. z is only read.
func Plan(z *zone.Zone, r *Request, key string, pol *Policy) ([]store.RRsetWrite, error) {
	w := &work{z: z, zone: r.Zone, sets: map[setKey][]dns.RR{}}
	if err := w.prerequisites(r.Prereqs); err != nil {
		return nil, err
	}
	if !pol.Has(key) {
		return nil, fail(dns.RcodeRefused, "key %s may not update any zone", keyLabel(key))
	}
	for _, rr := range r.Updates {
		if err := w.permitted(rr, key, pol); err != nil {
			return nil, err
		}
	}
	for _, rr := range r.Updates {
		if err := w.prescan(rr); err != nil {
			return nil, err
		}
	}
	for _, rr := range r.Updates {
		w.apply(rr)
	}
	out := make([]store.RRsetWrite, 0, len(w.order))
	for _, k := range w.order {
		out = append(out, store.RRsetWrite{Name: k.name, Type: k.typ, RRs: w.sets[k]})
	}
	return out, nil
}

func keyLabel(key string) string {
	if key == "" {
		return "(none: the message is unsigned)"
	}
	return key
}

type setKey struct {
	name string // canonical
	typ  uint16
}

// work is the zone as the update changes it: the RRsets it touched, over
// the zone's.
type work struct {
	z     *zone.Zone
	zone  string
	sets  map[setKey][]dns.RR
	order []setKey // the touched RRsets in the order first touched
}

// stored returns the records of type t at name in the zone (owner and
// TTL as stored).
func (w *work) stored(name string, t uint16) []dns.RR {
	n := w.node(name)
	if n == nil {
		return nil
	}
	set := n.Get(t)
	if set == nil || set.Len() == 0 {
		return nil
	}
	data := set.WithoutSigs()
	rrs, err := data.RRs(name)
	if err != nil {
		return nil // rdata the zone accepted always converts
	}
	return rrs
}

func (w *work) node(name string) *zone.Node {
	nw, err := zone.NameWire(name)
	if err != nil {
		return nil
	}
	return w.z.Lookup(nw)
}

// get returns the records of type t at name as the update left them.
func (w *work) get(name string, t uint16) []dns.RR {
	if rrs, ok := w.sets[setKey{name, t}]; ok {
		return rrs
	}
	return w.stored(name, t)
}

func (w *work) put(name string, t uint16, rrs []dns.RR) {
	k := setKey{name, t}
	if _, ok := w.sets[k]; !ok {
		w.order = append(w.order, k)
	}
	w.sets[k] = rrs
}

// types returns the types with records at name as the update left them.
func (w *work) types(name string) []uint16 {
	var out []uint16
	if n := w.node(name); n != nil {
		for i := range n.Sets {
			if n.Sets[i].Len() > 0 {
				out = append(out, n.Sets[i].Type)
			}
		}
	}
	for k := range w.sets {
		if k.name == name && !slices.Contains(out, k.typ) {
			out = append(out, k.typ)
		}
	}
	out = slices.DeleteFunc(out, func(t uint16) bool { return len(w.get(name, t)) == 0 })
	slices.Sort(out)
	return out
}

// inZone checks that an owner name is in the zone (NOTZONE otherwise) and
// returns it canonical.
func (w *work) inZone(rr dns.RR, section string) (string, error) {
	name := dns.CanonicalName(rr.Header().Name)
	if !dns.IsSubDomain(w.zone, name) {
		return "", fail(dns.RcodeNotZone, "%s: %s is not in zone %s", section, rr.Header().Name, w.zone)
	}
	return name, nil
}

// prerequisites checks the prerequisite section (§3.2).
func (w *work) prerequisites(rrs []dns.RR) error {
	type valueSet struct {
		key setKey
		rrs []dns.RR
	}
	var values []*valueSet
	byKey := map[setKey]*valueSet{}
	for _, rr := range rrs {
		h := rr.Header()
		if h.Ttl != 0 {
			return fail(dns.RcodeFormatError, "prerequisite %s: TTL %d, want 0", h.Name, h.Ttl)
		}
		name, err := w.inZone(rr, "prerequisite")
		if err != nil {
			return err
		}
		switch h.Class {
		case dns.ClassANY:
			if h.Rdlength != 0 {
				return fail(dns.RcodeFormatError, "prerequisite %s %s: class ANY with data", h.Name, dns.Type(h.Rrtype))
			}
			if h.Rrtype == dns.TypeANY {
				if len(w.types(name)) == 0 {
					return fail(dns.RcodeNameError, "prerequisite: name %s is not in use", name)
				}
			} else if len(w.stored(name, h.Rrtype)) == 0 {
				return fail(dns.RcodeNXRrset, "prerequisite: no %s RRset at %s", dns.Type(h.Rrtype), name)
			}
		case dns.ClassNONE:
			if h.Rdlength != 0 {
				return fail(dns.RcodeFormatError, "prerequisite %s %s: class NONE with data", h.Name, dns.Type(h.Rrtype))
			}
			if h.Rrtype == dns.TypeANY {
				if len(w.types(name)) > 0 {
					return fail(dns.RcodeYXDomain, "prerequisite: name %s is in use", name)
				}
			} else if len(w.stored(name, h.Rrtype)) > 0 {
				return fail(dns.RcodeYXRrset, "prerequisite: %s RRset at %s exists", dns.Type(h.Rrtype), name)
			}
		case dns.ClassINET:
			if h.Rrtype == dns.TypeANY || noData(rr) {
				return fail(dns.RcodeFormatError, "prerequisite %s %s: a value-dependent prerequisite needs data", h.Name, dns.Type(h.Rrtype))
			}
			k := setKey{name, h.Rrtype}
			vs := byKey[k]
			if vs == nil {
				vs = &valueSet{key: k}
				byKey[k] = vs
				values = append(values, vs)
			}
			if !slices.ContainsFunc(vs.rrs, func(o dns.RR) bool { return dns.IsDuplicate(o, rr) }) {
				vs.rrs = append(vs.rrs, rr)
			}
		default:
			return fail(dns.RcodeFormatError, "prerequisite %s: class %s", h.Name, dns.Class(h.Class))
		}
	}
	for _, vs := range values {
		if !sameSet(vs.rrs, w.stored(vs.key.name, vs.key.typ)) {
			return fail(dns.RcodeNXRrset, "prerequisite: the %s RRset at %s is not the one given", dns.Type(vs.key.typ), vs.key.name)
		}
	}
	return nil
}

// noData reports whether rr came with no data (RDLENGTH 0): miekg/dns
// unpacks it as a record of its type with zero fields.
func noData(rr dns.RR) bool { return rr.Header().Rdlength == 0 }

// sameSet reports whether two RRsets hold the same records, TTLs aside.
func sameSet(a, b []dns.RR) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y dns.RR) bool { return dns.IsDuplicate(x, y) }) {
			return false
		}
	}
	return true
}

// permitted checks that key may make the change of one update record
// (§3.3): for a deletion of every RRset of a name, each type the name has.
func (w *work) permitted(rr dns.RR, key string, pol *Policy) error {
	h := rr.Header()
	name, err := w.inZone(rr, "update")
	if err != nil {
		return err
	}
	types := []uint16{h.Rrtype}
	if h.Class == dns.ClassANY && h.Rrtype == dns.TypeANY {
		types = w.types(name)
		if name == w.zone {
			types = slices.DeleteFunc(types, func(t uint16) bool { return t == dns.TypeSOA || t == dns.TypeNS })
		}
	}
	for _, t := range types {
		if !pol.Allows(key, w.zone, name, t) {
			return fail(dns.RcodeRefused, "key %s may not change %s records at %s in zone %s", keyLabel(key), dns.Type(t), name, w.zone)
		}
	}
	return nil
}

// metaTypes are types that are never data: an update may not add them.
var metaTypes = []uint16{dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR, dns.TypeMAILA, dns.TypeMAILB, dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, 0}

// prescan checks the form of one update record (§3.4.1).
func (w *work) prescan(rr dns.RR) error {
	h := rr.Header()
	what := fmt.Sprintf("update %s %s %s", h.Name, dns.Class(h.Class), dns.Type(h.Rrtype))
	switch h.Class {
	case dns.ClassINET:
		if slices.Contains(metaTypes, h.Rrtype) {
			return fail(dns.RcodeFormatError, "%s: not a type of zone data", what)
		}
		if noData(rr) {
			return fail(dns.RcodeFormatError, "%s: a record to add needs data", what)
		}
	case dns.ClassANY:
		if h.Ttl != 0 || !noData(rr) {
			return fail(dns.RcodeFormatError, "%s: a deletion has TTL 0 and no data", what)
		}
		if h.Rrtype != dns.TypeANY && slices.Contains(metaTypes, h.Rrtype) {
			return fail(dns.RcodeFormatError, "%s: not a type of zone data", what)
		}
	case dns.ClassNONE:
		if h.Ttl != 0 {
			return fail(dns.RcodeFormatError, "%s: a deletion has TTL 0", what)
		}
		if slices.Contains(metaTypes, h.Rrtype) || noData(rr) {
			return fail(dns.RcodeFormatError, "%s: a record to delete needs its type and data", what)
		}
	default:
		return fail(dns.RcodeFormatError, "%s: class is not IN, ANY or NONE", what)
	}
	return nil
}

// apply makes the change of one update record that passed the prescan
// (§3.4.2), on the work copy; changes the RFC ignores are ignored.
func (w *work) apply(rr dns.RR) {
	h := rr.Header()
	name := dns.CanonicalName(h.Name)
	apex := name == w.zone
	switch h.Class {
	case dns.ClassINET:
		w.add(name, rr)
	case dns.ClassANY:
		if h.Rrtype != dns.TypeANY {
			if apex && (h.Rrtype == dns.TypeSOA || h.Rrtype == dns.TypeNS) {
				return
			}
			w.put(name, h.Rrtype, nil)
			return
		}
		for _, t := range w.types(name) {
			if apex && (t == dns.TypeSOA || t == dns.TypeNS) {
				continue
			}
			w.put(name, t, nil)
		}
	case dns.ClassNONE:
		if h.Rrtype == dns.TypeSOA {
			return
		}
		// The record as the zone has it, in class IN.
		in := dns.Copy(rr)
		in.Header().Class = dns.ClassINET
		cur := w.get(name, h.Rrtype)
		next := slices.DeleteFunc(slices.Clone(cur), func(o dns.RR) bool { return dns.IsDuplicate(o, in) })
		if len(next) == len(cur) || apex && h.Rrtype == dns.TypeNS && len(next) == 0 {
			return // not there, or the zone's last NS
		}
		w.put(name, h.Rrtype, next)
	}
}

// add adds one record (§3.4.2.2): a record with the data of one in the
// RRset replaces it, the RRset takes the new record's TTL, a CNAME is not
// added beside other data nor other data beside a CNAME, and an SOA
// replaces the apex SOA only with a newer serial.
func (w *work) add(name string, rr dns.RR) {
	t := rr.Header().Rrtype
	c := dns.Copy(rr)
	c.Header().Name = name
	switch t {
	case dns.TypeSOA:
		cur := w.get(name, t)
		if name != w.zone || len(cur) != 1 {
			return
		}
		old, ok1 := cur[0].(*dns.SOA)
		soa, ok2 := c.(*dns.SOA)
		if !ok1 || !ok2 || !zone.SerialLess(old.Serial, soa.Serial) {
			return
		}
		w.put(name, t, []dns.RR{c})
		return
	case dns.TypeCNAME:
		for _, o := range w.types(name) {
			if o != dns.TypeCNAME && !isDNSSEC(o) {
				return
			}
		}
		w.put(name, t, []dns.RR{c})
		return
	}
	if len(w.get(name, dns.TypeCNAME)) > 0 && !isDNSSEC(t) {
		return
	}
	cur := w.get(name, t)
	next := make([]dns.RR, 0, len(cur)+1)
	for _, o := range cur {
		if !dns.IsDuplicate(o, c) {
			o = dns.Copy(o)
			o.Header().Ttl = c.Header().Ttl
			next = append(next, o)
		}
	}
	w.put(name, t, append(next, c))
}

func isDNSSEC(t uint16) bool {
	switch t {
	case dns.TypeRRSIG, dns.TypeNSEC, dns.TypeNSEC3:
		return true
	}
	return false
}

// Store is where updates are written: *store.Store.
type Store interface {
	UpdateRRsets(ctx context.Context, zone string, fn func(*zone.Zone) ([]store.RRsetWrite, error)) (uint32, error)
}

// Updater applies UPDATE messages to a store under a policy.
type Updater struct {
	st  Store
	pol *Policy
	log *slog.Logger
}

// New returns an Updater writing to st under the rules.
func New(st Store, rules []Rule, logger *slog.Logger) (*Updater, error) {
	pol, err := NewPolicy(rules)
	if err != nil {
		return nil, fmt.Errorf("update policy: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Updater{st: st, pol: pol, log: logger.With("component", "update")}, nil
}

// Result is what an UPDATE came to.
type Result struct {
	Rcode  int
	Zone   string
	Serial uint32 // the zone's serial after it (NOERROR only)
	Err    error  // why it failed, for the log; nil with NOERROR
}

// Apply applies m, an UPDATE whose TSIG (if any) verified with key
// (canonical; "" when unsigned: refused), received from src.
func (u *Updater) Apply(ctx context.Context, m *dns.Msg, key string, src netip.AddrPort) Result {
	res := u.apply(ctx, m, key)
	log := u.log.With("zone", res.Zone, "key", keyLabel(key), "src", src.String(), "rcode", dns.RcodeToString[res.Rcode])
	switch {
	case res.Err == nil:
		log.Info("update applied", "serial", res.Serial, "records", len(m.Ns))
	case res.Rcode == dns.RcodeServerFailure:
		log.Error("update failed", "err", res.Err)
	default:
		log.Info("update not applied", "err", res.Err)
	}
	return res
}

func (u *Updater) apply(ctx context.Context, m *dns.Msg, key string) Result {
	r, err := Parse(m)
	if err != nil {
		return result("", err)
	}
	if key == "" {
		// Prerequisites are not even looked at: they would tell an
		// unsigned sender what the zone holds.
		return result(r.Zone, fail(dns.RcodeRefused, "unsigned: an UPDATE must be signed with a TSIG key of the update policy"))
	}
	serial, err := u.st.UpdateRRsets(ctx, r.Zone, func(z *zone.Zone) ([]store.RRsetWrite, error) {
		return Plan(z, r, key, u.pol)
	})
	if err != nil {
		return result(r.Zone, err)
	}
	return Result{Rcode: dns.RcodeSuccess, Zone: r.Zone, Serial: serial}
}

// result classifies an error: an *Error keeps its rcode; a zone the store
// does not have is NOTAUTH; a change the store refuses (invalid zone data,
// a signed zone) REFUSED; anything else SERVFAIL.
func result(zoneName string, err error) Result {
	res := Result{Zone: zoneName, Err: err}
	var ue *Error
	switch {
	case errors.As(err, &ue):
		res.Rcode = ue.Rcode
	case errors.Is(err, store.ErrNotFound):
		res.Rcode = dns.RcodeNotAuth
	case errors.Is(err, store.ErrInvalid), errors.Is(err, store.ErrSigned):
		res.Rcode = dns.RcodeRefused
	default:
		res.Rcode = dns.RcodeServerFailure
	}
	return res
}
