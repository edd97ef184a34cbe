// Package admin is the node's local admin API: JSON over HTTP on a loopback
// address (config admin.listen), with the node's status and the operator's
// drain and undrain. It has no authentication, so Serve refuses non-loopback
// listeners and the handler rejects cross-origin browser requests and
// non-local Host headers (DNS rebinding). Client is its typed client.
//
//	GET  /v1/status   → Status
//	POST /v1/drain    → Status after the drain
//	POST /v1/undrain  → Status after the undrain
//	GET  /v1/load     → Load: queries/s, TCP connections, CPU, drops over the last interval
//	                    (when the Backend is a Loader; see Load for the JSON)
//	POST /v1/level    → Status after pinning the PoP level: {"level": "shed-2", "reason": "..."}
//	DELETE /v1/level  → Status after unpinning it (both when the Backend is a Leveler; see Level)
//	GET  /healthz     → 200 "ok" (liveness)
//	GET  /readyz      → 200 "ready", or 503 "not ready: ..." (zones loaded, DNS up)
//
// Errors are {"error": "..."} with a 4xx or 5xx status code.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/netip"
	"time"
)

// Sentinel errors. A Backend returns them (wrapped) to choose the HTTP status
// code; Client returns errors that match them with errors.Is.
var (
	// ErrConflict: the request contradicts the node's state or
	// configuration, such as a drain on a node that has no BGP (409).
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: the node cannot act now, such as while it shuts down
	// (503).
	ErrUnavailable = errors.New("unavailable")
)

// Backend is what the admin API needs from a node.
type Backend interface {
	// Status is a snapshot of the node's state.
	Status() Status
	// Drain is the operator's drain: withdraw the anycast routes and keep
	// answering queries. It persists until Undrain, whatever the health.
	Drain(ctx context.Context) error
	// Undrain ends a drain: the routes are announced again once, and as
	// long as, the node is healthy.
	Undrain(ctx context.Context) error
}

// Status is the node's state as the admin API reports it. Lists are in the
// backend's order.
type Status struct {
	Node    string        // identity, as in NSID
	Version string        // of anycastd
	Uptime  time.Duration // since the process started
	Ready   bool          // zones loaded and every listener up
	Drained bool          // an operator drain is in force
	Healthy bool          // the debounced health state
	Checks  []Check       // last result of each health check
	// Sessions are the BGP neighbours; empty without BGP.
	Sessions []Session
	// Announced are the prefixes currently announced.
	Announced []netip.Prefix
	// Level is the PoP level the node announces at and why; nil without
	// BGP.
	Level *Level
	// Steering is the steering state the node answers with (issue #14):
	// nil until the control plane sent one.
	Steering *Steering
	Zones    []Zone
}

// Steering is the node's steering state: the control plane's version,
// when it arrived, and the endpoints it lists (any other is up).
type Steering struct {
	Version   uint64             `json:"version"`
	Received  time.Time          `json:"received"`
	Endpoints []SteeringEndpoint `json:"endpoints"`
	// Geo is the node's own map of client places (its configuration's
	// steering section); nil without one.
	Geo *SteeringGeo `json:"geo,omitempty"`
}

// SteeringGeo is the node's map of client places: PoPs whose Digest is
// the same place every client alike.
type SteeringGeo struct {
	Digest       string    `json:"digest"`
	Prefixes     int       `json:"prefixes"`                // of steering.regions
	Ranges       int       `json:"ranges"`                  // the database's networks in regions, as address ranges
	Database     string    `json:"database,omitempty"`      // the file
	DatabaseType string    `json:"database_type,omitempty"` // its metadata's, e.g. GeoLite2-Country
	Built        time.Time `json:"built,omitzero"`          // its build time
	Networks     int       `json:"networks,omitempty"`      // networks in it
	Mapped       int       `json:"mapped,omitempty"`        // of which in a region
	Loaded       time.Time `json:"loaded"`
}

// SteeringEndpoint is one endpoint of the steering state.
type SteeringEndpoint struct {
	Endpoint string   `json:"endpoint"`
	Down     bool     `json:"down"`
	Load     *float64 `json:"load,omitempty"`
}

// Check is the last result of one health check.
type Check struct {
	Name    string
	OK      bool
	Error   string        // of the last run; "" when it passed
	Last    time.Time     // start of the last run; zero before the first
	Latency time.Duration // of the last run
}

// Session is the state of one BGP neighbour.
type Session struct {
	Peer   netip.Addr
	ASN    uint32
	State  string        // BGP FSM state: idle, connect, active, opensent, openconfirm, established
	Uptime time.Duration // since established; 0 when not established
	BFD    string        // BFD state: "" (BFD disabled), down, init, up, admin_down
}

// Zone is one zone the node serves.
type Zone struct {
	Name    string `json:"name"`
	Serial  uint32 `json:"serial"`
	Records int    `json:"records"`
	Source  string `json:"source"` // where it came from: a file path, a primary's address
	// Expired: a secondary zone past its SOA expire, which no primary
	// confirmed since; it is answered SERVFAIL until one does.
	Expired bool `json:"expired,omitempty"`
}

// The JSON forms. Durations are in seconds (uptime_seconds) or milliseconds
// (latency_ms) as floating-point numbers, lists are never null, and a zero
// time is left out.

type statusJSON struct {
	Node          string         `json:"node"`
	Version       string         `json:"version"`
	UptimeSeconds float64        `json:"uptime_seconds"`
	Ready         bool           `json:"ready"`
	Drained       bool           `json:"drained"`
	Healthy       bool           `json:"healthy"`
	Checks        []Check        `json:"checks"`
	Sessions      []Session      `json:"sessions"`
	Announced     []netip.Prefix `json:"announced"`
	Level         *Level         `json:"level,omitempty"`
	Steering      *Steering      `json:"steering,omitempty"`
	Zones         []Zone         `json:"zones"`
}

type checkJSON struct {
	Name      string    `json:"name"`
	OK        bool      `json:"ok"`
	Error     string    `json:"error,omitempty"`
	Last      time.Time `json:"last,omitzero"`
	LatencyMS float64   `json:"latency_ms"`
}

type sessionJSON struct {
	Peer          netip.Addr `json:"peer"`
	ASN           uint32     `json:"asn"`
	State         string     `json:"state"`
	UptimeSeconds float64    `json:"uptime_seconds"`
	BFD           string     `json:"bfd,omitempty"`
}

// MarshalJSON implements json.Marshaler.
func (s Status) MarshalJSON() ([]byte, error) {
	return json.Marshal(statusJSON{
		Node: s.Node, Version: s.Version, UptimeSeconds: s.Uptime.Seconds(),
		Ready: s.Ready, Drained: s.Drained, Healthy: s.Healthy,
		Checks: nonNil(s.Checks), Sessions: nonNil(s.Sessions),
		Announced: nonNil(s.Announced), Level: s.Level, Steering: s.Steering, Zones: nonNil(s.Zones),
	})
}

// UnmarshalJSON implements json.Unmarshaler.
func (s *Status) UnmarshalJSON(b []byte) error {
	var j statusJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	uptime, err := duration(j.UptimeSeconds, time.Second)
	if err != nil {
		return errors.New("uptime_seconds: " + err.Error())
	}
	*s = Status{
		Node: j.Node, Version: j.Version, Uptime: uptime,
		Ready: j.Ready, Drained: j.Drained, Healthy: j.Healthy,
		Checks: j.Checks, Sessions: j.Sessions, Announced: j.Announced, Level: j.Level, Steering: j.Steering, Zones: j.Zones,
	}
	return nil
}

// MarshalJSON implements json.Marshaler.
func (c Check) MarshalJSON() ([]byte, error) {
	return json.Marshal(checkJSON{
		Name: c.Name, OK: c.OK, Error: c.Error, Last: c.Last,
		LatencyMS: float64(c.Latency) / float64(time.Millisecond),
	})
}

// UnmarshalJSON implements json.Unmarshaler.
func (c *Check) UnmarshalJSON(b []byte) error {
	var j checkJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	latency, err := duration(j.LatencyMS, time.Millisecond)
	if err != nil {
		return errors.New("latency_ms: " + err.Error())
	}
	*c = Check{Name: j.Name, OK: j.OK, Error: j.Error, Last: j.Last, Latency: latency}
	return nil
}

// MarshalJSON implements json.Marshaler.
func (s Session) MarshalJSON() ([]byte, error) {
	return json.Marshal(sessionJSON{
		Peer: s.Peer, ASN: s.ASN, State: s.State, UptimeSeconds: s.Uptime.Seconds(), BFD: s.BFD,
	})
}

// UnmarshalJSON implements json.Unmarshaler.
func (s *Session) UnmarshalJSON(b []byte) error {
	var j sessionJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	uptime, err := duration(j.UptimeSeconds, time.Second)
	if err != nil {
		return errors.New("uptime_seconds: " + err.Error())
	}
	*s = Session{Peer: j.Peer, ASN: j.ASN, State: j.State, Uptime: uptime, BFD: j.BFD}
	return nil
}

// duration converts v units to a Duration, rounded to the nanosecond.
func duration(v float64, unit time.Duration) (time.Duration, error) {
	d := math.Round(v * float64(unit))
	if math.IsNaN(d) || d < 0 || d >= math.MaxInt64 {
		return 0, errors.New("out of range")
	}
	return time.Duration(d), nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
