package config

import (
	"net/netip"

	"go.yaml.in/yaml/v3"
)

// The node's copies of its query stream (package dnstap): the "dnstap"
// and "query_log" sections. Both are reloaded on SIGHUP.

// Dnstap sends the node's queries and responses as dnstap messages
// (AUTH_QUERY, AUTH_RESPONSE) over the Frame Streams protocol to a
// collector on a Unix socket or a TCP address: exactly one of Socket and
// TCP is set. Identity and version are the node's (identity.name,
// identity.version).
type Dnstap struct {
	Socket string         // path of the collector's Unix socket
	TCP    netip.AddrPort // the collector's TCP address
	Sample int            // 1 in Sample answered queries is sent, 1..MaxTapSample (default 1: every one)
	Queue  int            // queries waiting for the collector at most, 1..MaxTapQueue (default 4096); more are dropped and counted
}

// QueryLog writes a sample of the node's queries to File as JSON lines.
type QueryLog struct {
	File   string // absolute, or relative to the configuration's directory
	Sample int    // 1 in Sample answered queries is logged, 1..MaxTapSample (default 1)
	Queue  int    // as Dnstap.Queue
	// MaxSize bounds the file: past it the file is renamed File.1
	// (replacing the previous one) and a new one started, so the log
	// takes at most twice MaxSize bytes; 1 MiB..1 TiB (default 100 MiB).
	MaxSize int64
}

// Bounds and defaults of Dnstap and QueryLog.
const (
	MaxTapSample          = 1_000_000
	MaxTapQueue           = 1 << 20
	defaultTapQueue       = 4096
	defaultQueryLogSize   = 100 << 20
	minQueryLogSize       = 1 << 20
	maxQueryLogSize       = 1 << 40
	maxUnixSocketPathSize = 107 // sun_path less its terminating NUL (Linux)
)

// tapFields are the node's "dnstap" and "query_log" sections.
func (d *decoder) tapFields(n *Node) []field {
	return []field{
		{"dnstap", func(v *yaml.Node, p string) {
			if isNull(v) {
				return
			}
			t := &Dnstap{Sample: 1, Queue: defaultTapQueue}
			n.Dnstap = t
			d.mapping(v, p, []field{
				{"socket", func(v *yaml.Node, p string) { d.file(v, p, &t.Socket) }},
				{"tcp", func(v *yaml.Node, p string) { t.TCP, _ = parseScalar(d, v, p, parseAddrPort) }},
				{"sample", func(v *yaml.Node, p string) { d.intValue(v, p, &t.Sample) }},
				{"queue", func(v *yaml.Node, p string) { d.intValue(v, p, &t.Queue) }},
			})
		}},
		{"query_log", func(v *yaml.Node, p string) {
			if isNull(v) {
				return
			}
			q := &QueryLog{Sample: 1, Queue: defaultTapQueue, MaxSize: defaultQueryLogSize}
			n.QueryLog = q
			d.mapping(v, p, []field{
				{"file", func(v *yaml.Node, p string) { d.file(v, p, &q.File) }},
				{"sample", func(v *yaml.Node, p string) { d.intValue(v, p, &q.Sample) }},
				{"queue", func(v *yaml.Node, p string) { d.intValue(v, p, &q.Queue) }},
				{"max_size", func(v *yaml.Node, p string) {
					if x, ok := d.integer(v, p); ok {
						q.MaxSize = x
					}
				}},
			})
		}},
	}
}

// tap checks the dnstap and query_log sections.
func (v *validator) tap(n *Node) {
	if t := n.Dnstap; t != nil {
		switch {
		case t.Socket == "" && !t.TCP.IsValid():
			v.add("dnstap", "needs socket (a Unix socket path) or tcp (an address:port)")
		case t.Socket != "" && t.TCP.IsValid():
			v.add("dnstap.tcp", "socket and tcp are exclusive: the collector is one or the other")
		case len(t.Socket) > maxUnixSocketPathSize:
			v.add("dnstap.socket", "a Unix socket path is at most %d bytes, got %d", maxUnixSocketPathSize, len(t.Socket))
		case t.TCP.IsValid() && t.TCP.Port() == 0:
			v.add("dnstap.tcp", "port must not be 0")
		}
		tapBounds(v, "dnstap", t.Sample, t.Queue)
	}
	if q := n.QueryLog; q != nil {
		if q.File == "" {
			v.add("query_log.file", "required")
		}
		tapBounds(v, "query_log", q.Sample, q.Queue)
		if q.MaxSize < minQueryLogSize || q.MaxSize > maxQueryLogSize {
			v.add("query_log.max_size", "%s bytes", rangeMsg(q.MaxSize, minQueryLogSize, maxQueryLogSize))
		}
	}
}

func tapBounds(v *validator, section string, sample, queue int) {
	if sample < 1 || sample > MaxTapSample {
		v.add(section+".sample", "%s (1 in sample queries; 1 = every one)", rangeMsg(int64(sample), 1, MaxTapSample))
	}
	if queue < 1 || queue > MaxTapQueue {
		v.add(section+".queue", "%s", rangeMsg(int64(queue), 1, MaxTapQueue))
	}
}
