package lab

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// The dnssec-rollover scenario (issue #16): the control plane signs a lab
// parent zone and a child zone under it, which every PoP serves; a
// validating resolver (unbound) in every client namespace, whose only
// trust anchor is the parent's key, resolves the child through the
// anycast address (so the answers of every PoP are validated) while the
// child's keys roll in accelerated time (lifetimes of seconds, TTLs of
// 5 s). The parent follows the child's CDS RRset (RFC 7344): the scenario
// copies it into the parent's DS RRset through the API, and confirms a new
// key's DS (ds-seen) once every PoP serves it.
const (
	// DNSSECParentZone is the lab parent, signed with a CSK that never
	// rolls: the resolver's trust anchor is its DS.
	DNSSECParentZone = "dnssec.example."
	// DNSSECZone is the zone whose keys roll, delegated from the parent.
	DNSSECZone = "roll.dnssec.example."

	// rolloverTTL is every TTL of both zones (DNSKEY, DS and the
	// negative TTL too): short, so that the resolver keeps fetching
	// and validating the keys and signatures of the moment.
	rolloverTTL = 5 * time.Second
	// rolloverPropagation is the policies' propagation_delay: the PoPs
	// follow the control plane's stream within milliseconds.
	rolloverPropagation = 2 * time.Second
	// rolloverLifetime is the key lifetime given to start a ZSK or KSK
	// rollover: longer than a rollover, propagation_delay + TTL (7 s),
	// and over for the key in use by the time it is given, so that the
	// signing task starts the rollover at once.
	rolloverLifetime = 10 * time.Second
	// rolloverRate is the resolver's queries per second.
	rolloverRate = 25
	// unboundPort is where the resolver listens, on its namespace's
	// loopback.
	unboundPort = 5300
)

// Rollovers are the rollovers of the dnssec-rollover scenario, in order.
var Rollovers = []string{"zsk", "ksk", "algorithm"}

// rolloverAlgorithms are the child's algorithm before and after the
// algorithm rollover.
var rolloverAlgorithms = [2]string{"ECDSAP256SHA256", "ED25519"}

// RolloverLine is one rollover of the dnssec-rollover scenario: what the
// validating resolver answered while it ran, from the API call that
// started it until the keys it replaced had left every PoP's DNSKEY RRset
// and the resolver's caches (one TTL more).
type RolloverLine struct {
	Scenario string `json:"scenario"`
	// Rollover is zsk, ksk or algorithm.
	Rollover string `json:"rollover"`
	// Queries counts the queries to the resolver; ServFail those it
	// answered SERVFAIL (how unbound answers bogus data); Bogus the
	// answers without the AD bit, which all should have (the zone is
	// signed and the chain reaches the trust anchor); Lost those it did
	// not answer in time; Validated those answered with AD.
	Queries   int `json:"queries"`
	ServFail  int `json:"servfail"`
	Bogus     int `json:"bogus"`
	Lost      int `json:"lost"`
	Validated int `json:"validated"`
	// Wrong counts validated answers that are not what the zone holds
	// (another rcode, no record of the type asked).
	Wrong     int     `json:"wrong"`
	DurationS float64 `json:"duration_s"`
	// Keys are the key tags (and algorithms) replaced and new, "old →
	// new".
	Keys string `json:"keys"`
	// DSUpdates counts the parent's DS RRset changes (following the
	// child's CDS) and DSSeen the keys confirmed with ds-seen.
	DSUpdates int `json:"ds_updates"`
	DSSeen    int `json:"ds_seen"`
	// Client lists the namespaces the resolvers ran in (one per client,
	// each reaching the PoP of its catchment), comma-separated.
	Client string `json:"client"`
}

// Failures lists what of the line breaks the scenario's promise: no
// SERVFAIL, no answer without AD, nothing lost or wrong, something
// validated.
func (l RolloverLine) Failures() []string {
	var out []string
	if l.ServFail != 0 {
		out = append(out, fmt.Sprintf("%s: %d SERVFAIL of %d queries", l.Rollover, l.ServFail, l.Queries))
	}
	if l.Bogus != 0 {
		out = append(out, fmt.Sprintf("%s: %d answers without AD of %d queries", l.Rollover, l.Bogus, l.Queries))
	}
	if l.Lost != 0 {
		out = append(out, fmt.Sprintf("%s: %d queries unanswered of %d", l.Rollover, l.Lost, l.Queries))
	}
	if l.Wrong != 0 {
		out = append(out, fmt.Sprintf("%s: %d wrong answers of %d queries", l.Rollover, l.Wrong, l.Queries))
	}
	if l.Validated == 0 {
		out = append(out, fmt.Sprintf("%s: no validated answer", l.Rollover))
	}
	return out
}

// resolverQuery is one query the scenario's client sends the resolver:
// names that exist, a name that does not (NXDOMAIN, denied by NSEC), the
// child's keys and the parent's SOA.
type resolverQuery struct {
	name  string // "*" is replaced by a fresh random label
	qtype uint16
	rcode int
}

var resolverQueries = []resolverQuery{
	{"www." + DNSSECZone, dns.TypeA, dns.RcodeSuccess},
	{"*." + DNSSECZone, dns.TypeA, dns.RcodeNameError},
	{DNSSECZone, dns.TypeDNSKEY, dns.RcodeSuccess},
	{DNSSECZone, dns.TypeSOA, dns.RcodeSuccess},
	{"txt." + DNSSECZone, dns.TypeTXT, dns.RcodeSuccess},
	{DNSSECParentZone, dns.TypeSOA, dns.RcodeSuccess},
}

// Outcomes of a query to the resolver.
const (
	outValidated = "validated"
	outServFail  = "servfail"
	outBogus     = "bogus" // an answer without AD
	outLost      = "lost"
	outWrong     = "wrong" // validated, but not the answer the zone holds
)

// resolverOutcome classifies the resolver's answer to q (nil: none in
// time).
func resolverOutcome(q resolverQuery, m *dns.Msg) string {
	switch {
	case m == nil:
		return outLost
	case m.Rcode == dns.RcodeServerFailure:
		return outServFail
	case !m.AuthenticatedData:
		return outBogus
	case m.Rcode != q.rcode:
		return outWrong
	case q.rcode == dns.RcodeSuccess && !answers(m, q.qtype):
		return outWrong
	}
	return outValidated
}

// answers reports whether m holds a record of type t in its answer.
func answers(m *dns.Msg, t uint16) bool {
	for _, rr := range m.Answer {
		if rr.Header().Rrtype == t {
			return true
		}
	}
	return false
}

// resolverResult is one query's outcome, at the time it was sent.
type resolverResult struct {
	sent    time.Time
	outcome string
	detail  string // the question, and the rcode of a failure
}

// tallyRollover counts the results sent in [from, to) into a line.
func tallyRollover(line *RolloverLine, results []resolverResult, from, to time.Time) (failures []string) {
	for _, r := range results {
		if r.sent.Before(from) || !r.sent.Before(to) {
			continue
		}
		line.Queries++
		switch r.outcome {
		case outValidated:
			line.Validated++
		case outServFail:
			line.ServFail++
		case outBogus:
			line.Bogus++
		case outWrong:
			line.Wrong++
		case outLost:
			line.Lost++
		}
		if r.outcome != outValidated && len(failures) < 5 {
			failures = append(failures, fmt.Sprintf("%s at %s: %s", r.outcome, r.sent.Format("15:04:05.000"), r.detail))
		}
	}
	line.DurationS = float64(to.Sub(from).Round(100*time.Millisecond)) / float64(time.Second)
	return failures
}

// rolloverPolicy is the child's signing policy as the API takes it: a KSK
// and a ZSK of alg with CDS, TTLs of rolloverTTL, and the lifetimes given
// (0: never rolled).
func rolloverPolicy(alg string, zsk, ksk time.Duration) (json.RawMessage, error) {
	return json.Marshal(map[string]any{
		"algorithm": alg, "csk": false, "cds": true,
		"zsk_lifetime": zsk.String(), "ksk_lifetime": ksk.String(),
		"dnskey_ttl": rolloverTTL.String(), "zone_max_ttl": rolloverTTL.String(), "propagation_delay": rolloverPropagation.String(),
	})
}

// parentPolicy is the lab parent's: one CSK that never rolls.
func parentPolicy() (json.RawMessage, error) {
	return json.Marshal(map[string]any{
		"algorithm": rolloverAlgorithms[0], "csk": true, "ksk_lifetime": "0s", "zsk_lifetime": "0s",
		"dnskey_ttl": rolloverTTL.String(), "zone_max_ttl": rolloverTTL.String(), "propagation_delay": rolloverPropagation.String(),
	})
}

// rolloverZones returns the records of the parent and the child, both
// served at the anycast address.
func rolloverZones(anycast netip.Addr) (parent, child []string) {
	ttl := int(rolloverTTL.Seconds())
	soa := fmt.Sprintf("@ %d IN SOA ns1 hostmaster 1 60 10 600 %d", ttl, ttl)
	a := "A"
	if anycast.Is6() {
		a = "AAAA"
	}
	label := strings.TrimSuffix(DNSSECZone, "."+DNSSECParentZone)
	parent = []string{soa, fmt.Sprintf("@ %d IN NS ns1", ttl), fmt.Sprintf("ns1 %d IN %s %s", ttl, a, anycast),
		fmt.Sprintf("%s %d IN NS ns1.%s", label, ttl, label), fmt.Sprintf("ns1.%s %d IN %s %s", label, ttl, a, anycast)}
	child = []string{soa, fmt.Sprintf("@ %d IN NS ns1", ttl), fmt.Sprintf("ns1 %d IN %s %s", ttl, a, anycast),
		fmt.Sprintf("www %d IN A 192.0.2.80", ttl), fmt.Sprintf("txt %d IN TXT \"signed on the control plane, served by every PoP\"", ttl)}
	return parent, child
}

// cdsToDS turns a CDS RRset into the DS records the parent publishes
// ("tag alg digest-type digest", sorted); a delete request (algorithm 0,
// RFC 8078) yields none.
func cdsToDS(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		c, ok := rr.(*dns.CDS)
		if !ok || c.Algorithm == 0 {
			continue
		}
		out = append(out, fmt.Sprintf("%d %d %d %s", c.KeyTag, c.Algorithm, c.DigestType, strings.ToUpper(c.Digest)))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// unboundConfig is the resolver's configuration: on its namespace's
// loopback, validating (val-log-level 2 logs every failure) from the trust
// anchor in anchorFile, both zones stubbed to the anycast address, cache
// TTLs capped at the zones' TTL so that it validates again and again, no
// chroot, no user change, its files in dir (named by its client), its log
// on stderr.
func unboundConfig(dir, client string, anycast netip.Addr, anchorFile string) string {
	var b strings.Builder
	w := func(format string, args ...any) { _, _ = fmt.Fprintf(&b, format+"\n", args...) }
	w("# Generated by anycastlab for the dnssec-rollover scenario.")
	w("server:")
	w("\tverbosity: 1")
	w("\tval-log-level: 2")
	w("\tuse-syslog: no")
	w("\tlogfile: \"\"")
	w("\tlog-time-ascii: yes")
	w("\tchroot: \"\"")
	w("\tusername: \"\"")
	w("\tdirectory: %q", dir)
	w("\tpidfile: %q", dir+"/unbound."+client+".pid")
	w("\tinterface: 127.0.0.1@%d", unboundPort)
	w("\tport: %d", unboundPort)
	w("\taccess-control: 127.0.0.0/8 allow")
	w("\tdo-ip6: %v", yesNo(anycast.Is6()))
	w("\tnum-threads: 1")
	w("\tso-reuseport: no")
	w("\tmodule-config: \"validator iterator\"")
	w("\ttrust-anchor-file: %q", anchorFile)
	w("\tcache-max-ttl: %d", int(rolloverTTL.Seconds()))
	w("\tcache-max-negative-ttl: %d", int(rolloverTTL.Seconds()))
	w("\tprefetch: no")
	w("\tqname-minimisation: no")
	w("\tserve-expired: no")
	w("\tharden-algo-downgrade: no")
	for _, z := range []string{DNSSECParentZone, DNSSECZone} {
		w("stub-zone:")
		w("\tname: %q", z)
		w("\tstub-addr: %s", anycast)
	}
	return b.String()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// writeRolloverTable prints the rollover lines.
func writeRolloverTable(w io.Writer, lines []RolloverLine) {
	printf(w, "ROLLOVER\tKEYS\tQUERIES\tVALIDATED\tSERVFAIL\tBOGUS\tLOST\tDS UPDATES\tDS SEEN\tDURATION s\t\n")
	for _, l := range lines {
		printf(w, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.1f\t\n", l.Rollover, l.Keys, l.Queries, l.Validated, l.ServFail, l.Bogus, l.Lost,
			l.DSUpdates, l.DSSeen, l.DurationS)
	}
}
