package dnsserver

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// The query counters are kept per worker, without locks or label lookups on
// the query path, and summed when metrics are scraped.

// QtypeBuckets are the query types counted separately; others count as OTHER.
var qtypeBuckets = []uint16{
	dns.TypeA, dns.TypeAAAA, dns.TypeNS, dns.TypeCNAME, dns.TypeSOA, dns.TypePTR,
	dns.TypeMX, dns.TypeTXT, dns.TypeSRV, dns.TypeDS, dns.TypeDNSKEY, dns.TypeSVCB,
	dns.TypeHTTPS, dns.TypeCAA, dns.TypeANY, dns.TypeAXFR, dns.TypeIXFR,
}

const numQtypes = 18 // len(qtypeBuckets) + OTHER

func qtypeIndex(t uint16) int {
	for i, b := range qtypeBuckets {
		if b == t {
			return i
		}
	}
	return numQtypes - 1
}

// QtypeName returns the label value of a qtype bucket.
func QtypeName(i int) string {
	if i < len(qtypeBuckets) {
		return dns.TypeToString[qtypeBuckets[i]]
	}
	return "OTHER"
}

const numRcodes = 24

// LatencyBuckets are the upper bounds, in seconds, of the response latency
// histogram.
var LatencyBuckets = []float64{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05}

type workerStats struct {
	queries [numTransports][numQtypes][numRcodes]atomic.Uint64
	dropped atomic.Uint64
	// early counts packets dropped before an answer was built, by
	// reason; exempt counts queries from exempt prefixes.
	early  [NumDropReasons]atomic.Uint64
	exempt atomic.Uint64
	// UDP answers the response rate limiter dropped or sent truncated.
	rrlDropped, rrlSlipped atomic.Uint64
	lat                    [12]atomic.Uint64 // len(LatencyBuckets)+1
	latSum                 atomic.Uint64     // nanoseconds
}

func (s *workerStats) count(t Transport, qtype uint16, rcode int) {
	if rcode < 0 || rcode >= numRcodes {
		rcode = numRcodes - 1
	}
	s.queries[t][qtypeIndex(qtype)][rcode].Add(1)
}

func (s *workerStats) observe(d time.Duration) {
	sec := d.Seconds()
	i := 0
	for i < len(LatencyBuckets) && sec > LatencyBuckets[i] {
		i++
	}
	s.lat[i].Add(1)
	s.latSum.Add(uint64(d))
}

// Stats aggregates the counters of all workers.
type Stats struct {
	mu        sync.Mutex
	workers   []*workerStats
	Malformed atomic.Uint64 // TCP framing errors and the like
	TCPConns  atomic.Int64  // open TCP connections
	TCPRefuse atomic.Uint64 // connections closed at once (the server was closing)
	// TCPEvicted counts connections closed to make room for a new one:
	// the table or the source's share was full.
	TCPEvicted atomic.Uint64
}

func (s *Stats) newWorker() *workerStats {
	w := &workerStats{}
	s.mu.Lock()
	s.workers = append(s.workers, w)
	s.mu.Unlock()
	return w
}

// RRL sums the workers' counts of UDP answers the response rate limiter
// dropped and sent truncated (slipped).
func (s *Stats) RRL() (dropped, slipped uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.workers {
		dropped += w.rrlDropped.Load()
		slipped += w.rrlSlipped.Load()
	}
	return dropped, slipped
}

// EarlyDrops sums the workers' counts of packets dropped before an answer
// was built, indexed by DropReason (DropNone stays 0), and of queries from
// prefixes exempt from the per-source limit.
func (s *Stats) EarlyDrops() (drops [NumDropReasons]uint64, exempt uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.workers {
		for i := range drops {
			drops[i] += w.early[i].Load()
		}
		exempt += w.exempt.Load()
	}
	return drops, exempt
}

// UDPHandled counts the UDP packets the workers have handled: answered,
// dropped, or limited. The health check reads it to tell a flooded server
// (the count moves, the check's answer is late) from a wedged one.
func (s *Stats) UDPHandled() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n uint64
	for _, w := range s.workers {
		n += w.dropped.Load() + w.rrlDropped.Load()
		for q := range numQtypes {
			for r := range numRcodes {
				n += w.queries[UDP][q][r].Load()
			}
		}
	}
	return n
}

// QueryCount is one series of the query counter.
type QueryCount struct {
	Transport, Qtype, Rcode string
	N                       uint64
}

// Snapshot sums the workers' counters.
func (s *Stats) Snapshot() (queries []QueryCount, dropped uint64, latCounts []uint64, latSum time.Duration) {
	s.mu.Lock()
	ws := append([]*workerStats(nil), s.workers...)
	s.mu.Unlock()
	latCounts = make([]uint64, len(LatencyBuckets)+1)
	var sum [numTransports][numQtypes][numRcodes]uint64
	for _, w := range ws {
		for t := range numTransports {
			for q := range numQtypes {
				for r := range numRcodes {
					sum[t][q][r] += w.queries[t][q][r].Load()
				}
			}
		}
		dropped += w.dropped.Load()
		for i := range latCounts {
			latCounts[i] += w.lat[i].Load()
		}
		latSum += time.Duration(w.latSum.Load())
	}
	for t := range numTransports {
		for q := range numQtypes {
			for r := range numRcodes {
				if n := sum[t][q][r]; n > 0 {
					rc, ok := dns.RcodeToString[r]
					if !ok {
						rc = strconv.Itoa(r)
					}
					queries = append(queries, QueryCount{Transport(t).String(), QtypeName(q), rc, n})
				}
			}
		}
	}
	return queries, dropped, latCounts, latSum
}
