package main

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// kind classifies a query by the answer the algorithm of RFC 1034 must give.
type kind int

const (
	kindPositive kind = iota // name and type exist: the RRset in the answer
	kindNXDomain             // name does not exist
	kindNoData               // name exists (or is an empty non-terminal), type does not
	kindCNAME                // name owns a CNAME: the CNAME (and the in-zone target)
	kindReferral             // name is at or below a delegation: NS + glue, AA clear
	kindWildcard             // name synthesised from *.wild
	numKinds
)

var kindNames = [numKinds]string{"positive", "nxdomain", "nodata", "cname", "referral", "wildcard"}

func (k kind) String() string { return kindNames[k] }

// kindShare is the share of each kind in the query file, in percent.
var kindShare = [numKinds]int{50, 15, 10, 8, 12, 5}

var kindHelp = [numKinds]string{
	"A/AAAA/TXT/MX/SOA/NS that exist (hosts, apex, name servers)",
	"names under the apex, below hosts and under empty non-terminals",
	"missing type at a host, SRV, empty non-terminals",
	"CNAME owners, in-zone (chased) and out-of-zone targets",
	"at, below and at the glue of delegations",
	"names synthesised from *.wild (A/AAAA/TXT)",
}

// genConfig says what to generate.
type genConfig struct {
	Origin  string // zone apex, lower case, dot-terminated
	Names   int    // owner names that carry records
	Queries int    // lines in the dnsperf query file (0: none)
	Seed    uint64
}

// query is one line of the query file with the kind of answer it needs.
type query struct {
	Name string // letter case randomised
	Type uint16
	Kind kind
	// WantA is the address a positive A answer must contain when known.
	WantA netip.Addr
}

// zoneData is what generate wrote and what the benchmark needs about it.
type zoneData struct {
	Origin     string
	ZonePath   string
	QueryPath  string // empty when no queries were asked for
	Names      int    // owner names with records
	Records    int    // resource records in the file
	Bytes      int64  // size of the zone file
	Mix        [numKinds]int
	Samples    [numKinds][]query // a few queries of each kind for answer checks
	Probe      query             // a positive A query near the end of the zone
	hostCount  int
	delegCount int
}

// zoneLayout divides the owner names between the record shapes.
type zoneLayout struct {
	hosts, cnames, delegs, wildExplicit, groups int
}

// Fixed names: apex, ns1, ns2, mail and the wildcard owner.
const fixedNames = 5

func layout(names int) (zoneLayout, error) {
	if names < 100 {
		return zoneLayout{}, fmt.Errorf("names %d: need at least 100", names)
	}
	l := zoneLayout{
		cnames:       names * 8 / 100,
		delegs:       names * 4 / 100, // three names each: cut, ns1, ns2
		wildExplicit: names / 100,
	}
	l.hosts = names - fixedNames - l.cnames - 3*l.delegs - l.wildExplicit
	l.groups = max(1, l.hosts/400)
	return l, nil
}

// Host i: half the hosts directly under the apex, half one level down under
// an empty non-terminal "g<k>" so that lookups see some depth and ENTs.
func hostName(i int, l zoneLayout) string {
	if i%2 == 0 {
		return fmt.Sprintf("h%d", i)
	}
	return fmt.Sprintf("h%d.g%d", i, i%l.groups)
}

func hostHasAAAA(i int) bool { return i%2 == 0 || i%5 == 1 }
func hostHasTXT(i int) bool  { return i%5 == 0 }
func hostHasMX(i int) bool   { return i%10 == 3 }
func hostACount(i int) int {
	if i%10 == 7 {
		return 3
	}
	return 1
}

// hostA is the n-th address of host i, from 100.64.0.0/10 (4M addresses;
// it wraps beyond that, which only makes addresses repeat).
func hostA(i, n int) netip.Addr {
	v := uint32(100<<24|64<<16) + uint32((i*4+n)%(1<<22))
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func hostAAAA(i int) netip.Addr {
	a := [16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0}
	a[12], a[13], a[14], a[15] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
	return netip.AddrFrom16(a)
}

// generate writes the zone file (and the query file when cfg.Queries > 0)
// into dir.
func generate(cfg genConfig, dir string) (*zoneData, error) {
	l, err := layout(cfg.Names)
	if err != nil {
		return nil, err
	}
	zd := &zoneData{
		Origin:     cfg.Origin,
		ZonePath:   filepath.Join(dir, strings.TrimSuffix(cfg.Origin, ".")+".zone"),
		hostCount:  l.hosts,
		delegCount: l.delegs,
	}
	if err := writeZone(zd, l); err != nil {
		return nil, err
	}
	probe := l.hosts - 1
	zd.Probe = query{Name: hostName(probe, l) + "." + cfg.Origin, Type: typeA, Kind: kindPositive, WantA: hostA(probe, 0)}
	if cfg.Queries > 0 {
		zd.QueryPath = filepath.Join(dir, "queries.txt")
		if err := writeQueries(zd, l, cfg); err != nil {
			return nil, err
		}
	}
	return zd, nil
}

func writeZone(zd *zoneData, l zoneLayout) (err error) {
	f, err := os.Create(zd.ZonePath)
	if err != nil {
		return fmt.Errorf("create zone file: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close zone file: %w", cerr)
		}
	}()
	cw := &countingWriter{w: f}
	w := bufio.NewWriterSize(cw, 1<<20)
	// A bufio.Writer keeps its first error and Flush returns it.
	printf := func(format string, args ...any) { _, _ = fmt.Fprintf(w, format, args...) }
	rec := func(format string, args ...any) {
		printf(format+"\n", args...)
		zd.Records++
	}
	printf("$ORIGIN %s\n$TTL 3600\n", zd.Origin)
	rec("@ SOA ns1 hostmaster 2024010101 7200 3600 1209600 3600")
	rec("@ NS ns1")
	rec("@ NS ns2")
	rec("@ MX 10 mail")
	rec(`@ TXT "v=spf1 -all"`)
	rec("ns1 A 192.0.2.1")
	rec("ns1 AAAA 2001:db8::1")
	rec("ns2 A 198.51.100.1")
	rec("ns2 AAAA 2001:db8:1::1")
	rec("mail A 203.0.113.25")
	rec("*.wild A 192.0.2.80")
	rec("*.wild AAAA 2001:db8::80")
	rec(`*.wild TXT "synthesised from a wildcard"`)
	names := fixedNames

	for i := range l.hosts {
		n := hostName(i, l)
		for k := range hostACount(i) {
			rec("%s A %s", n, hostA(i, k))
		}
		if hostHasAAAA(i) {
			rec("%s AAAA %s", n, hostAAAA(i))
		}
		if hostHasTXT(i) {
			rec(`%s TXT "host %d; benchmark text record of a typical length"`, n, i)
		}
		if hostHasMX(i) {
			rec("%s MX 10 mail", n)
		}
		names++
	}
	for i := range l.cnames {
		if i%8 == 7 {
			rec("c%d CNAME www%d.example.net.", i, i)
		} else {
			rec("c%d CNAME %s", i, hostName((i*7919)%l.hosts, l))
		}
		names++
	}
	for i := range l.delegs {
		rec("d%d NS ns1.d%d", i, i)
		rec("d%d NS ns2.d%d", i, i)
		rec("ns1.d%d A %s", i, hostA(i, 3))
		rec("ns1.d%d AAAA %s", i, hostAAAA(i))
		rec("ns2.d%d A %s", i, hostA(i, 2))
		names += 3
	}
	for i := range l.wildExplicit {
		rec("e%d.wild A %s", i, hostA(i, 1))
		names++
	}
	zd.Names = names
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write zone file: %w", err)
	}
	zd.Bytes = cw.n
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// randomCase flips the case of each letter with probability one half, the
// way resolvers using DNS 0x20 do.
func randomCase(r *rand.Rand, s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' && r.IntN(2) == 0 {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// pickKind draws a kind with the weights of kindShare.
func pickKind(r *rand.Rand) kind {
	x := r.IntN(100)
	for k, s := range kindShare {
		if x < s {
			return kind(k)
		}
		x -= s
	}
	return kindPositive
}

// makeQuery draws one query of kind k. Names are relative to the origin.
func makeQuery(r *rand.Rand, k kind, l zoneLayout) query {
	q := query{Kind: k}
	switch k {
	case kindPositive:
		if r.IntN(50) == 0 { // apex and name servers
			switch r.IntN(4) {
			case 0:
				q.Name, q.Type = "@", typeSOA
			case 1:
				q.Name, q.Type = "@", typeNS
			case 2:
				q.Name, q.Type = "@", typeMX
			default:
				q.Name, q.Type = "ns1", typeA
				q.WantA = netip.MustParseAddr("192.0.2.1")
			}
			break
		}
		i := r.IntN(l.hosts)
		q.Name = hostName(i, l)
		types := []uint16{typeA, typeA, typeA}
		if hostHasAAAA(i) {
			types = append(types, typeAAAA, typeAAAA)
		}
		if hostHasTXT(i) {
			types = append(types, typeTXT)
		}
		if hostHasMX(i) {
			types = append(types, typeMX)
		}
		q.Type = types[r.IntN(len(types))]
		if q.Type == typeA && hostACount(i) == 1 {
			q.WantA = hostA(i, 0)
		}
	case kindNXDomain:
		switch r.IntN(4) {
		case 0:
			q.Name = fmt.Sprintf("nx%d", r.IntN(1<<30))
		case 1: // below an existing leaf
			q.Name = "www." + hostName(r.IntN(l.hosts), l)
		case 2: // under an empty non-terminal
			q.Name = fmt.Sprintf("x%d.g%d", r.IntN(1<<20), r.IntN(l.groups))
		default: // a host number past the end
			q.Name = fmt.Sprintf("h%d", l.hosts+r.IntN(1<<20)*2)
		}
		q.Type = []uint16{typeA, typeAAAA, typeTXT}[r.IntN(3)]
	case kindNoData:
		switch r.IntN(4) {
		case 0: // host without AAAA
			i := r.IntN(l.hosts)
			for hostHasAAAA(i) {
				i = (i + 1) % l.hosts
			}
			q.Name, q.Type = hostName(i, l), typeAAAA
		case 1:
			q.Name, q.Type = hostName(r.IntN(l.hosts), l), typeSRV
		case 2: // empty non-terminal
			q.Name, q.Type = fmt.Sprintf("g%d", r.IntN(l.groups)), typeA
		default:
			q.Name, q.Type = "wild", typeA // empty non-terminal above the wildcard
		}
	case kindCNAME:
		q.Name = fmt.Sprintf("c%d", r.IntN(l.cnames))
		q.Type = []uint16{typeA, typeA, typeAAAA}[r.IntN(3)]
	case kindReferral:
		i := r.IntN(l.delegs)
		switch r.IntN(4) {
		case 0:
			q.Name, q.Type = fmt.Sprintf("d%d", i), typeNS
		case 1:
			q.Name, q.Type = fmt.Sprintf("ns1.d%d", i), typeA
		default:
			q.Name, q.Type = fmt.Sprintf("www.d%d", i), typeA
		}
	case kindWildcard:
		if r.IntN(4) == 0 {
			q.Name = fmt.Sprintf("a.w%d.wild", r.IntN(1<<30))
		} else {
			q.Name = fmt.Sprintf("w%d.wild", r.IntN(1<<30))
		}
		q.Type = []uint16{typeA, typeA, typeAAAA, typeTXT}[r.IntN(4)]
		if q.Type == typeA {
			q.WantA = netip.MustParseAddr("192.0.2.80")
		}
	}
	return q
}

// samplesPerKind is how many queries of each kind are kept for checking
// the servers' answers before they are measured.
const samplesPerKind = 40

func writeQueries(zd *zoneData, l zoneLayout, cfg genConfig) (err error) {
	f, err := os.Create(zd.QueryPath)
	if err != nil {
		return fmt.Errorf("create query file: %w", err)
	}
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close query file: %w", cerr)
		}
	}()
	w := bufio.NewWriterSize(f, 1<<20)
	r := rand.New(rand.NewPCG(cfg.Seed, 0x0ddba11)) //nolint:gosec // a reproducible query mix, not a secret
	for range cfg.Queries {
		q := makeQuery(r, pickKind(r), l)
		if q.Name == "@" {
			q.Name = zd.Origin
		} else {
			q.Name += "." + zd.Origin
		}
		q.Name = randomCase(r, q.Name)
		zd.Mix[q.Kind]++
		if len(zd.Samples[q.Kind]) < samplesPerKind {
			zd.Samples[q.Kind] = append(zd.Samples[q.Kind], q)
		}
		// The bufio.Writer keeps its first error for Flush.
		_, _ = fmt.Fprintf(w, "%s %s\n", q.Name, typeString(q.Type))
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write query file: %w", err)
	}
	return nil
}

// logMix logs the query mix, one line per kind.
func logMix(logger *slog.Logger, zd *zoneData) {
	total := 0
	for _, n := range zd.Mix {
		total += n
	}
	logger.Info("zone", "origin", zd.Origin, "names", zd.Names, "records", zd.Records, "bytes", zd.Bytes,
		"queries", total, "letter_case", "random")
	for k := range numKinds {
		logger.Info("query mix", "kind", k.String(), "queries", zd.Mix[k],
			"share", fmt.Sprintf("%.1f%%", 100*float64(zd.Mix[k])/float64(max(total, 1))), "what", kindHelp[k])
	}
}
