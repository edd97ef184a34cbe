package stream

import (
	"net/netip"
	"time"
)

// Path is where a control plane serves the stream.
const Path = "/v1/stream"

// Headers of the stream request. The node names itself and its key before
// any frame, so that an unknown key or a revoked node is refused with an
// HTTP status instead of a stream.
const (
	HeaderKey   = "Anycastd-Key"   // name of the TSIG key
	HeaderNode  = "Anycastd-Node"  // the node's identity
	HeaderNonce = "Anycastd-Nonce" // base64 of the node's 32-byte nonce
)

// serverHello follows the server's nonce in the challenge frame.
type serverHello struct {
	Server  string `json:"server"`  // the control plane's name
	Version string `json:"version"` // of anycastd
	// HeartbeatMS is how often the node should send a heartbeat, and how
	// often the server sends a keepalive: a side that hears nothing for
	// three intervals reconnects.
	HeartbeatMS int64  `json:"heartbeat_ms"`
	Catalog     string `json:"catalog,omitempty"` // the control plane's catalog zone
}

// nodeHello is the node's first frame: who it is and the serial of every
// secondary zone it holds, from which the server resumes.
type nodeHello struct {
	Node    string            `json:"node"`
	PoP     string            `json:"pop"`
	Version string            `json:"version"`
	Zones   map[string]uint32 `json:"zones"`
	// Levels: the node takes level frames (a node of an older version
	// would end the stream on a frame type it does not know).
	Levels bool `json:"levels,omitempty"`
	// Steering: the node takes steering frames (Steering).
	Steering bool `json:"steering,omitempty"`
}

// Steering is the steering state the control plane built from the
// monitors' endpoint checks (issue #14): every node holds the same one,
// named by Version, so that every PoP answers a client alike. It is sent
// whole, at once when it changes and when the node joins.
type Steering struct {
	// Version names the state; a newer state has a larger version.
	Version uint64 `json:"version"`
	// Endpoints by endpoint key (steer.Endpoint.Key); an endpoint not
	// listed is up with no load known.
	Endpoints map[string]SteeringEndpoint `json:"endpoints"`
	// RTTms is the RTT from a region (a monitor's vantage point) to an
	// endpoint, in milliseconds.
	RTTms map[string]map[string]float64 `json:"rtt_ms,omitempty"`
}

// SteeringEndpoint is one endpoint in a Steering state.
type SteeringEndpoint struct {
	Down bool     `json:"down"`
	Load *float64 `json:"load,omitempty"`
}

// Level is the level the control plane decided for the node's PoP (see
// package internal/fleet/level), sent at once when it changes and again
// every decision interval as a refresh. The node keeps it for Valid from
// when it reads the frame (a duration, not a time: the two clocks need not
// agree), then returns to normal unless a refresh came.
type Level struct {
	PoP    string `json:"pop"`
	Level  string `json:"level"` // normal, shed-1, shed-2, shed-3, withdrawn
	Reason string `json:"reason"`
	// ValidMS is how long the level holds without a refresh, in
	// milliseconds.
	ValidMS int64 `json:"valid_ms"`
}

// Valid is how long the level holds without a refresh.
func (l Level) Valid() time.Duration { return time.Duration(l.ValidMS) * time.Millisecond }

// Status is what a node reports about itself in each heartbeat.
type Status struct {
	// Health is "healthy", "unhealthy", "starting" or "stopping"; a node
	// without BGP reports "healthy" once ready.
	Health string `json:"health"`
	// Drained: an operator drain (or the maintenance file) is in force.
	Drained bool `json:"drained,omitempty"`
	// Announced are the anycast prefixes announced now; BGP false when
	// the node has no BGP speaker at all.
	BGP       bool           `json:"bgp"`
	Announced []netip.Prefix `json:"announced"`
	// Level is the PoP level the node announces at (normal, shed-1..3,
	// withdrawn) and LevelSource what set it (health, drain, pin, control,
	// ...); empty without BGP.
	Level       string `json:"level,omitempty"`
	LevelSource string `json:"level_source,omitempty"`
	// QPS is the queries per second since the previous heartbeat.
	QPS float64 `json:"qps"`
	// TCPConns is the number of open DNS TCP connections.
	TCPConns int `json:"tcp_conns"`
	// Zones is the number of zones served; Expired those past their SOA
	// expire (answered SERVFAIL).
	Zones   int `json:"zones"`
	Expired int `json:"expired"`
	// UptimeSeconds of the node's process.
	UptimeSeconds float64 `json:"uptime_seconds"`
	// Queries is the node's count of queries since it started, from
	// which the client computes QPS; not sent.
	Queries uint64 `json:"-"`
}

// Heartbeat is the node's periodic frame.
type Heartbeat struct {
	Status
	// Serials holds the zones whose serial changed since the previous
	// heartbeat of this stream (by any path: the stream, NOTIFY and IXFR,
	// SOA refresh); Removed the zones no longer held.
	Serials map[string]uint32 `json:"serials,omitempty"`
	Removed []string          `json:"removed,omitempty"`
}

// ack answers one pushed transfer: the serial the node holds afterwards
// (0: none), whether it applied it, and when it could not, whether only a
// full transfer can bring it up to date.
type ack struct {
	Zone string `json:"zone"`
	// Push is the id of the pushed transfer (from its xfr-end frame).
	Push   uint64 `json:"push"`
	Serial uint32 `json:"serial"`
	OK     bool   `json:"ok"`
	// Full asks for the whole zone: the node holds no version it may
	// build on (none, or one loaded from disk that no checksum vouches
	// for).
	Full bool `json:"full,omitempty"`
	// Unknown: the node does not serve the zone as a secondary.
	Unknown bool   `json:"unknown,omitempty"`
	Error   string `json:"error,omitempty"`
	// Follow and Unfollow are the zones the node started or stopped
	// following because of this transfer (a catalog's new and removed
	// members), so that the server sends the new ones at once.
	Follow   map[string]uint32 `json:"follow,omitempty"`
	Unfollow []string          `json:"unfollow,omitempty"`
}

// bye is the server's last frame.
type bye struct {
	Reason string `json:"reason"`
}

// Reasons of a bye.
const (
	ByeRevoked  = "revoked"  // an operator revoked the member
	ByeReplaced = "replaced" // a newer stream of the same node took over
	ByeShutdown = "shutdown" // the control plane stops
)
