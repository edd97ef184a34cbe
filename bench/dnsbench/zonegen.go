package main

import (
	"bufio"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/anycastdns/anycastdns/bench/internal/benchkit"
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
	benchkit.Zone
	QueryPath string // empty when no queries were asked for
	Mix       [numKinds]int
	Samples   [numKinds][]query // a few queries of each kind for answer checks
	Probe     query             // a positive A query near the end of the zone
}

// generate writes the zone file (and the query file when cfg.Queries > 0)
// into dir.
func generate(cfg genConfig, dir string) (*zoneData, error) {
	z, err := benchkit.GenerateZone(cfg.Origin, cfg.Names, dir)
	if err != nil {
		return nil, err
	}
	zd := &zoneData{Zone: *z}
	l := z.Layout
	probe := l.Hosts - 1
	zd.Probe = query{Name: l.HostName(probe) + "." + cfg.Origin, Type: benchkit.TypeA, Kind: kindPositive, WantA: benchkit.HostA(probe, 0)}
	if cfg.Queries > 0 {
		zd.QueryPath = filepath.Join(dir, "queries.txt")
		if err := writeQueries(zd, l, cfg); err != nil {
			return nil, err
		}
	}
	return zd, nil
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
func makeQuery(r *rand.Rand, k kind, l benchkit.Layout) query {
	q := query{Kind: k}
	switch k {
	case kindPositive:
		if r.IntN(50) == 0 { // apex and name servers
			switch r.IntN(4) {
			case 0:
				q.Name, q.Type = "@", benchkit.TypeSOA
			case 1:
				q.Name, q.Type = "@", benchkit.TypeNS
			case 2:
				q.Name, q.Type = "@", benchkit.TypeMX
			default:
				q.Name, q.Type = "ns1", benchkit.TypeA
				q.WantA = netip.MustParseAddr("192.0.2.1")
			}
			break
		}
		i := r.IntN(l.Hosts)
		q.Name = l.HostName(i)
		types := []uint16{benchkit.TypeA, benchkit.TypeA, benchkit.TypeA}
		if benchkit.HostHasAAAA(i) {
			types = append(types, benchkit.TypeAAAA, benchkit.TypeAAAA)
		}
		if benchkit.HostHasTXT(i) {
			types = append(types, benchkit.TypeTXT)
		}
		if benchkit.HostHasMX(i) {
			types = append(types, benchkit.TypeMX)
		}
		q.Type = types[r.IntN(len(types))]
		if q.Type == benchkit.TypeA && benchkit.HostACount(i) == 1 {
			q.WantA = benchkit.HostA(i, 0)
		}
	case kindNXDomain:
		switch r.IntN(4) {
		case 0:
			q.Name = fmt.Sprintf("nx%d", r.IntN(1<<30))
		case 1: // below an existing leaf
			q.Name = "www." + l.HostName(r.IntN(l.Hosts))
		case 2: // under an empty non-terminal
			q.Name = fmt.Sprintf("x%d.g%d", r.IntN(1<<20), r.IntN(l.Groups))
		default: // a host number past the end
			q.Name = fmt.Sprintf("h%d", l.Hosts+r.IntN(1<<20)*2)
		}
		q.Type = []uint16{benchkit.TypeA, benchkit.TypeAAAA, benchkit.TypeTXT}[r.IntN(3)]
	case kindNoData:
		switch r.IntN(4) {
		case 0: // host without AAAA
			i := r.IntN(l.Hosts)
			for benchkit.HostHasAAAA(i) {
				i = (i + 1) % l.Hosts
			}
			q.Name, q.Type = l.HostName(i), benchkit.TypeAAAA
		case 1:
			q.Name, q.Type = l.HostName(r.IntN(l.Hosts)), benchkit.TypeSRV
		case 2: // empty non-terminal
			q.Name, q.Type = fmt.Sprintf("g%d", r.IntN(l.Groups)), benchkit.TypeA
		default:
			q.Name, q.Type = "wild", benchkit.TypeA // empty non-terminal above the wildcard
		}
	case kindCNAME:
		q.Name = fmt.Sprintf("c%d", r.IntN(l.CNAMEs))
		q.Type = []uint16{benchkit.TypeA, benchkit.TypeA, benchkit.TypeAAAA}[r.IntN(3)]
	case kindReferral:
		i := r.IntN(l.Delegs)
		switch r.IntN(4) {
		case 0:
			q.Name, q.Type = fmt.Sprintf("d%d", i), benchkit.TypeNS
		case 1:
			q.Name, q.Type = fmt.Sprintf("ns1.d%d", i), benchkit.TypeA
		default:
			q.Name, q.Type = fmt.Sprintf("www.d%d", i), benchkit.TypeA
		}
	case kindWildcard:
		if r.IntN(4) == 0 {
			q.Name = fmt.Sprintf("a.w%d.wild", r.IntN(1<<30))
		} else {
			q.Name = fmt.Sprintf("w%d.wild", r.IntN(1<<30))
		}
		q.Type = []uint16{benchkit.TypeA, benchkit.TypeA, benchkit.TypeAAAA, benchkit.TypeTXT}[r.IntN(4)]
		if q.Type == benchkit.TypeA {
			q.WantA = netip.MustParseAddr("192.0.2.80")
		}
	}
	return q
}

// samplesPerKind is how many queries of each kind are kept for checking
// the servers' answers before they are measured.
const samplesPerKind = 40

func writeQueries(zd *zoneData, l benchkit.Layout, cfg genConfig) (err error) {
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
		_, _ = fmt.Fprintf(w, "%s %s\n", q.Name, benchkit.TypeString(q.Type))
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
