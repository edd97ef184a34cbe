package api

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/zone"
)

// Bounds of record input.
const (
	maxRdataText = 1 << 16 // one record's presentation text
	maxTTL       = 1<<31 - 1
)

// ParseType parses a type mnemonic (case-insensitive) or TYPEnnn (RFC 3597)
// and rejects the types that cannot be stored in a zone.
func ParseType(s string) (uint16, error) {
	u := strings.ToUpper(s)
	t, ok := dns.StringToType[u]
	if !ok {
		n, found := strings.CutPrefix(u, "TYPE")
		v, err := strconv.ParseUint(n, 10, 16)
		if !found || err != nil || n == "" || n[0] == '+' {
			return 0, fmt.Errorf("unknown type %q", s)
		}
		t = uint16(v)
	}
	switch t {
	case 0, dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY, dns.TypeIXFR, dns.TypeAXFR,
		dns.TypeMAILA, dns.TypeMAILB, dns.TypeANY:
		return 0, fmt.Errorf("type %s cannot be stored in a zone", typeString(t))
	}
	return t, nil
}

func typeString(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return "TYPE" + strconv.Itoa(int(t))
}

// CanonicalZone returns a zone name lower-cased with the trailing dot.
func CanonicalZone(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty zone name")
	}
	w, err := zone.NameWire(name)
	if err != nil {
		return "", fmt.Errorf("invalid zone name %q", name)
	}
	return zone.NameString(w), nil
}

// ResolveName turns a name as written in a path into a fully qualified one
// inside zone (canonical): "@" is the apex; a name with a trailing dot, or
// one that ends with the zone's name, is taken as it is; anything else is
// relative to the zone.
func ResolveName(zoneName, name string) (string, error) {
	var fqdn string
	lower := strings.ToLower(name)
	switch {
	case name == "":
		return "", errors.New("empty name")
	case name == "@":
		fqdn = zoneName
	case strings.HasSuffix(name, "."):
		fqdn = name
	case zoneName != "." && (lower+"." == zoneName || strings.HasSuffix(lower+".", "."+zoneName)):
		fqdn = name + "."
	case zoneName == ".":
		fqdn = name + "."
	default:
		fqdn = name + "." + zoneName
	}
	w, err := zone.NameWire(fqdn)
	if err != nil {
		return "", fmt.Errorf("invalid name %q", name)
	}
	canon := zone.NameString(w)
	if !dns.IsSubDomain(zoneName, canon) {
		return "", fmt.Errorf("name %s is not in zone %s", canon, zoneName)
	}
	return canon, nil
}

// checkText rejects record text that is not one line of reasonable size;
// the zone parser would read a newline as the start of another entry.
func checkText(s string) error {
	switch {
	case strings.TrimSpace(s) == "":
		return errors.New("empty")
	case len(s) > maxRdataText:
		return fmt.Errorf("longer than %d bytes", maxRdataText)
	case strings.ContainsAny(s, "\n\r\x00"):
		return errors.New("must be one line (use \\010 for a newline inside a string)")
	}
	return nil
}

var parseErrRE = regexp.MustCompile(`^dns: (.*) at line: \d+:\d+$`)

// parseOne parses text that must hold exactly one record, relative to
// origin, with $INCLUDE refused.
func parseOne(origin, text string) (dns.RR, error) {
	zp := dns.NewZoneParser(strings.NewReader(text+"\n"), origin, "")
	zp.SetIncludeAllowed(false)
	zp.SetDefaultTTL(3600)
	rr, ok := zp.Next()
	if !ok {
		if err := zp.Err(); err != nil {
			msg := err.Error()
			if m := parseErrRE.FindStringSubmatch(msg); m != nil {
				msg = m[1]
			}
			return nil, errors.New(msg)
		}
		return nil, errors.New("no record")
	}
	if _, more := zp.Next(); more {
		return nil, errors.New("more than one record")
	}
	// The parser accepts some data it cannot encode (odd-length hex) and
	// records with data missing (the "delete" form of dynamic updates
	// leaves every field zero). Such a record either does not encode or
	// does not read back as itself from the text the API would show.
	wire, err := packRR(rr)
	if err != nil {
		return nil, fmt.Errorf("cannot encode: %w", err)
	}
	if rr.Header().Name == "" {
		return nil, errors.New("the owner name is missing")
	}
	if !emptyRdataAllowed(rr) {
		var name [256]byte
		if l, err := dns.PackDomainName(rr.Header().Name, name[:], 0, nil, false); err == nil && len(wire) == l+10 {
			return nil, errors.New("no record data")
		}
		shown := rr.String()
		zp := dns.NewZoneParser(strings.NewReader(shown+"\n"), ".", "")
		again, ok := zp.Next()
		if !ok {
			return nil, errors.New("missing or incomplete record data")
		}
		if w, err := packRR(again); err != nil || w != wire {
			return nil, fmt.Errorf("missing or incomplete record data (it reads as %q)", rdataText(rr))
		}
	}
	return rr, nil
}

func packRR(rr dns.RR) (string, error) {
	buf := make([]byte, dns.Len(rr)+16)
	n, err := dns.PackRR(rr, buf, 0, nil, false)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// emptyRdataAllowed reports whether a record may have no data: the types
// whose data can be empty, and any type written as "\# 0".
func emptyRdataAllowed(rr dns.RR) bool {
	switch rr.(type) {
	case *dns.RFC3597, *dns.NULL, *dns.APL:
		return true
	}
	return false
}

// ParseRRset builds the records of an RRset of type t at owner (fully
// qualified, in zone origin) from rdata in presentation format. Errors
// name the record as records[i].
func ParseRRset(origin, owner string, t uint16, ttl uint32, rdata []string) ([]dns.RR, error) {
	if ttl > maxTTL {
		return nil, fmt.Errorf("ttl: must be at most %d, got %d", maxTTL, ttl)
	}
	prefix := owner + " " + strconv.FormatUint(uint64(ttl), 10) + " IN " + typeString(t) + " "
	out := make([]dns.RR, 0, len(rdata))
	for i, rd := range rdata {
		if err := checkText(rd); err != nil {
			return nil, fmt.Errorf("records[%d]: %w", i, err)
		}
		if strings.HasPrefix(strings.TrimSpace(rd), ";") {
			return nil, fmt.Errorf("records[%d]: empty", i)
		}
		if err := checkStringsQuoted(t, rd); err != nil {
			return nil, fmt.Errorf("records[%d]: %w", i, err)
		}
		rr, err := parseOne(origin, prefix+rd)
		if err != nil {
			return nil, fmt.Errorf("records[%d]: invalid %s record %q: %w", i, typeString(t), rd, err)
		}
		if h := rr.Header(); h.Rrtype != t || !strings.EqualFold(h.Name, owner) {
			return nil, fmt.Errorf("records[%d]: invalid %s record %q", i, typeString(t), rd)
		}
		out = append(out, rr)
	}
	return out, nil
}

// checkStringsQuoted refuses TXT and SPF data that does not start with a
// quote and has a space or tab outside a \ escape: in presentation format
// each word would be a string of its own, "v=spf1 -all" two strings that
// SPF reads joined as "v=spf1-all". Whoever sends it almost always means
// one string, so the API asks for the quotes rather than guess.
func checkStringsQuoted(t uint16, rd string) error {
	if t != dns.TypeTXT && t != dns.TypeSPF {
		return nil
	}
	s := strings.TrimSpace(rd)
	if strings.HasPrefix(s, `"`) || strings.HasPrefix(s, `\#`) {
		return nil
	}
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++ // the escaped character, or the first digit of \DDD
		case ' ', '\t':
			return fmt.Errorf("%s data %q is not quoted and would be split into a string per word; quote it: %q for one string "+
				"(or quote each string of several)", typeString(t), rd, `"`+s+`"`)
		}
	}
	return nil
}

// ParseRecords parses whole records in zone-file form relative to origin
// (no directives, no blank owner). Errors name the record as records[i].
func ParseRecords(origin string, lines []string) ([]dns.RR, error) {
	out := make([]dns.RR, 0, len(lines))
	for i, l := range lines {
		if err := checkText(l); err != nil {
			return nil, fmt.Errorf("records[%d]: %w", i, err)
		}
		switch l[0] {
		case '$':
			return nil, fmt.Errorf("records[%d]: directives such as %s are not records", i, strings.Fields(l)[0])
		case ' ', '\t':
			return nil, fmt.Errorf("records[%d]: %q: the owner name is missing", i, l)
		case ';':
			return nil, fmt.Errorf("records[%d]: empty", i)
		}
		rr, err := parseOne(origin, l)
		if err != nil {
			return nil, fmt.Errorf("records[%d]: %q: %w", i, l, err)
		}
		out = append(out, rr)
	}
	return out, nil
}

// rdataText returns a record's data in presentation format: what follows
// the owner, TTL, class and type, which are tab-separated (names escape
// their tabs).
func rdataText(rr dns.RR) string {
	f := strings.SplitN(rr.String(), "\t", 5)
	if len(f) < 5 {
		return ""
	}
	return f[4]
}

// toRRset converts records of one owner and type for JSON; the TTL is the
// lowest.
func toRRset(owner string, t uint16, rrs []dns.RR) RRset {
	set := RRset{Name: owner, Type: typeString(t), Records: make([]string, len(rrs))}
	for i, rr := range rrs {
		set.Records[i] = rdataText(rr)
		if i == 0 || rr.Header().Ttl < set.TTL {
			set.TTL = rr.Header().Ttl
		}
	}
	return set
}

// zoneRRsets lists the RRsets of a zone in canonical order, types in
// numeric order after the SOA and the signatures of a name last; only at
// name when it is not empty.
func zoneRRsets(z *zone.Zone, name string) ([]RRset, error) {
	out := []RRset{}
	var err error
	visit := func(n *zone.Node) {
		if err != nil {
			return
		}
		owner := zone.NameString(n.Name)
		var sigs []dns.RR
		// The SOA first, as in zone files and transfers.
		order := make([]int, 0, len(n.Sets))
		for i := range n.Sets {
			if n.Sets[i].Type == dns.TypeSOA {
				order = append([]int{i}, order...)
			} else {
				order = append(order, i)
			}
		}
		for _, i := range order {
			s := &n.Sets[i]
			data := s.WithoutSigs()
			rrs, e := data.RRs(owner)
			if e != nil {
				err = fmt.Errorf("%s %s: %w", owner, typeString(s.Type), e)
				return
			}
			out = append(out, toRRset(owner, s.Type, rrs))
			if s.SigLen() > 0 {
				sig := s.SigSet()
				rrs, e := sig.RRs(owner)
				if e != nil {
					err = fmt.Errorf("%s RRSIG: %w", owner, e)
					return
				}
				sigs = append(sigs, rrs...)
			}
		}
		if len(sigs) > 0 {
			out = append(out, toRRset(owner, dns.TypeRRSIG, sigs))
		}
	}
	if name != "" {
		w, e := zone.NameWire(name)
		if e != nil {
			return nil, e
		}
		if n := z.Lookup(w); n != nil {
			visit(n)
		}
		return out, err
	}
	z.Nodes(visit)
	return out, err
}

// ETag returns the entity tag of an RRset's content: the same records with
// the same TTLs give the same tag, in any order. An empty RRset has none.
func ETag(rrs []dns.RR) string {
	if len(rrs) == 0 {
		return ""
	}
	lines := make([]string, len(rrs))
	for i, rr := range rrs {
		lines[i] = strconv.FormatUint(uint64(rr.Header().Ttl), 10) + " " + rdataText(rr)
	}
	slices.Sort(lines)
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l))
		h.Write([]byte{'\n'})
	}
	return `"` + hex.EncodeToString(h.Sum(nil)[:12]) + `"`
}
