package zonesync

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/zone"
)

// ErrCatalog marks a catalog zone this consumer does not accept as a whole
// (a wrong or missing schema version); the previous member list stays.
var ErrCatalog = errors.New("invalid catalog zone")

// member is one member zone of a catalog.
type member struct {
	name string // canonical
	id   string // unique id: the label below "zones"
}

// catalogMembers reads the member zones of an RFC 9432 catalog zone
// (schema version 2). Members whose PTR is not a single name that
// zone.ValidateZoneName accepts (the rule the API creates zones by) are
// skipped and reported in problems; a zone listed under two ids keeps the
// first id in canonical order. Properties (group, coo) are ignored.
func catalogMembers(z *zone.Zone) (members []member, problems []string, err error) {
	rrs, err := z.RRs()
	if err != nil {
		return nil, nil, err
	}
	origin := z.Origin
	zonesSuffix := "zones." + origin
	if origin == "." {
		zonesSuffix = "zones."
	}
	version := ""
	ptrs := map[string][]string{} // id → member names
	var ids []string
	for _, rr := range rrs {
		h := rr.Header()
		owner := dns.CanonicalName(h.Name)
		switch {
		case owner == "version."+origin && h.Rrtype == dns.TypeTXT:
			if version != "" {
				return nil, nil, fmt.Errorf("%w %s: more than one version TXT record", ErrCatalog, origin)
			}
			version = strings.Join(rr.(*dns.TXT).Txt, "")
		case h.Rrtype == dns.TypePTR && strings.HasSuffix(owner, "."+zonesSuffix):
			id := strings.TrimSuffix(owner, "."+zonesSuffix)
			if strings.Contains(id, ".") {
				continue // a property below a member (coo.ID, group.ID...)
			}
			if _, ok := ptrs[id]; !ok {
				ids = append(ids, id)
			}
			ptrs[id] = append(ptrs[id], dns.CanonicalName(rr.(*dns.PTR).Ptr))
		}
	}
	if version != "2" {
		return nil, nil, fmt.Errorf("%w %s: schema version %q, want \"2\" (RFC 9432)", ErrCatalog, origin, version)
	}
	slices.Sort(ids)
	byName := map[string]string{}
	for _, id := range ids {
		names := ptrs[id]
		var nameErr error
		if len(names) == 1 {
			nameErr = zone.ValidateZoneName(names[0])
		}
		switch {
		case len(names) != 1:
			problems = append(problems, fmt.Sprintf("member %s has %d PTR records, ignored", id, len(names)))
		case nameErr != nil:
			problems = append(problems, fmt.Sprintf("member %s ignored: %v", id, nameErr))
		case byName[names[0]] != "":
			problems = append(problems, fmt.Sprintf("member %s repeats zone %s of member %s, ignored", id, names[0], byName[names[0]]))
		default:
			byName[names[0]] = id
			members = append(members, member{name: names[0], id: id})
		}
	}
	return members, problems, nil
}
