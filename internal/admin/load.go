package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"time"
)

// PathLoad is the path of the node's load, for the monitor (anycastd
// monitor) to read.
const PathLoad = "/v1/load"

// Loader is a Backend that measures its load; Handler serves GET /v1/load
// only for one.
type Loader interface {
	// Load is the load over the last interval. It returns an error that
	// matches ErrUnavailable while it has nothing to report yet.
	Load() (Load, error)
}

// Load is what a node carries, measured over the interval that ends at
// Time: rates are per second over Interval, TCPConnections is the count at
// Time.
//
// Its JSON form (GET /v1/load):
//
//	{
//	  "node": "a-pop-1",                  identity, as in NSID
//	  "time": "2026-03-14T15:09:26.5Z",   end of the interval
//	  "interval_seconds": 1.0,            its length (1 to 2 s)
//	  "queries_per_second": 1520.5,       queries answered, every transport
//	  "tcp_connections": 12,              open now
//	  "cpu": 0.35,                        of the process, in cores (1 = one core busy)
//	  "dropped_per_second": 0,            packets dropped unanswered (too short, responses)
//	  "rrl_dropped_per_second": 3.0,      answers over the rate limit, dropped
//	  "rrl_slipped_per_second": 1.5,      answers over the rate limit, sent truncated
//	  "tcp_evicted_per_second": 0,        TCP connections closed to make room
//	  "tcp_refused_per_second": 0         TCP connections closed unserved
//	}
type Load struct {
	Node                string
	Time                time.Time
	Interval            time.Duration
	QueriesPerSecond    float64
	TCPConnections      int64
	CPU                 float64
	DroppedPerSecond    float64
	RRLDroppedPerSecond float64
	RRLSlippedPerSecond float64
	TCPEvictedPerSecond float64
	TCPRefusedPerSecond float64
}

type loadJSON struct {
	Node                string    `json:"node"`
	Time                time.Time `json:"time"`
	IntervalSeconds     float64   `json:"interval_seconds"`
	QueriesPerSecond    float64   `json:"queries_per_second"`
	TCPConnections      int64     `json:"tcp_connections"`
	CPU                 float64   `json:"cpu"`
	DroppedPerSecond    float64   `json:"dropped_per_second"`
	RRLDroppedPerSecond float64   `json:"rrl_dropped_per_second"`
	RRLSlippedPerSecond float64   `json:"rrl_slipped_per_second"`
	TCPEvictedPerSecond float64   `json:"tcp_evicted_per_second"`
	TCPRefusedPerSecond float64   `json:"tcp_refused_per_second"`
}

// MarshalJSON implements json.Marshaler.
func (l Load) MarshalJSON() ([]byte, error) {
	return json.Marshal(loadJSON{
		Node: l.Node, Time: l.Time, IntervalSeconds: l.Interval.Seconds(),
		QueriesPerSecond: l.QueriesPerSecond, TCPConnections: l.TCPConnections, CPU: l.CPU,
		DroppedPerSecond: l.DroppedPerSecond, RRLDroppedPerSecond: l.RRLDroppedPerSecond,
		RRLSlippedPerSecond: l.RRLSlippedPerSecond, TCPEvictedPerSecond: l.TCPEvictedPerSecond,
		TCPRefusedPerSecond: l.TCPRefusedPerSecond,
	})
}

// UnmarshalJSON implements json.Unmarshaler. Negative rates and counts are
// refused: no node sends them.
func (l *Load) UnmarshalJSON(b []byte) error {
	var j loadJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	interval, err := duration(j.IntervalSeconds, time.Second)
	if err != nil {
		return errors.New("interval_seconds: " + err.Error())
	}
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"queries_per_second", j.QueriesPerSecond}, {"tcp_connections", float64(j.TCPConnections)}, {"cpu", j.CPU},
		{"dropped_per_second", j.DroppedPerSecond}, {"rrl_dropped_per_second", j.RRLDroppedPerSecond},
		{"rrl_slipped_per_second", j.RRLSlippedPerSecond}, {"tcp_evicted_per_second", j.TCPEvictedPerSecond},
		{"tcp_refused_per_second", j.TCPRefusedPerSecond},
	} {
		if f.v < 0 || math.IsNaN(f.v) {
			return fmt.Errorf("%s: must not be negative, got %v", f.name, f.v)
		}
	}
	*l = Load{
		Node: j.Node, Time: j.Time, Interval: interval,
		QueriesPerSecond: j.QueriesPerSecond, TCPConnections: j.TCPConnections, CPU: j.CPU,
		DroppedPerSecond: j.DroppedPerSecond, RRLDroppedPerSecond: j.RRLDroppedPerSecond,
		RRLSlippedPerSecond: j.RRLSlippedPerSecond, TCPEvictedPerSecond: j.TCPEvictedPerSecond,
		TCPRefusedPerSecond: j.TCPRefusedPerSecond,
	}
	return nil
}

func (h *handler) load(l Loader) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		ld, err := l.Load()
		if err != nil {
			writeError(w, statusCode(err), "load: "+err.Error())
			return
		}
		writeJSON(w, http.StatusOK, ld)
	}
}

// LoadHandler serves GET /v1/load of l alone, with the same checks as
// Handler (local Host only, no cross-origin requests), for a listener
// other than the admin one (the node's metrics listener, which a monitor
// on another host can reach).
func LoadHandler(l Loader) http.Handler {
	h := &handler{cop: http.NewCrossOriginProtection()}
	h.routes = map[string][]route{PathLoad: {{http.MethodGet, h.load(l)}}}
	return h
}

// Load returns the node's load over its last interval.
func (c *Client) Load(ctx context.Context) (Load, error) {
	var l Load
	err := c.get(ctx, "load", PathLoad, &l)
	return l, err
}
