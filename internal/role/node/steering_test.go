package node

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/steer"
	"github.com/anycastdns/anycastdns/internal/stream"
)

// answers is what the engine answers a client for an up,least-load pool
// over .1 and .2.
func answers(t *testing.T, e *steer.Engine) []string {
	t.Helper()
	rd, err := steer.Encode(dns.TypeA, steer.Pool{TTL: 5, Policy: []string{"up", "least-load"},
		Endpoints: []steer.Endpoint{{Address: netip.MustParseAddr("192.0.2.1")}, {Address: netip.MustParseAddr("192.0.2.2")}}})
	if err != nil {
		t.Fatal(err)
	}
	var d steer.Decision
	if !e.Decide(rd, steer.NewClient(netip.MustParseAddr("198.51.100.7"), 32, false), &d) {
		t.Fatal("pool refused")
	}
	var out []string
	for i := range d.Len() {
		out = append(out, net.IP(d.Rdata(i)).String())
	}
	return out
}

// TestSteeringApplied: a steering frame becomes the engine's state (a down
// endpoint leaves the answers, load steers least-load), an older or equal
// version is dropped, and the status shows the version in force.
func TestSteeringApplied(t *testing.T) {
	s := newSteering()
	if got := answers(t, s.engine); len(got) != 2 {
		t.Fatalf("without a state: %v, want both", got)
	}
	if s.status() != nil {
		t.Fatal("status before any state")
	}
	now := time.Now()
	if !s.apply(stream.Steering{Version: 10, Endpoints: map[string]stream.SteeringEndpoint{"192.0.2.1": {Down: true}}}, now) {
		t.Fatal("version 10 not applied")
	}
	if got := answers(t, s.engine); len(got) != 1 || got[0] != "192.0.2.2" {
		t.Fatalf("with .1 down: %v, want [192.0.2.2]", got)
	}
	if s.apply(stream.Steering{Version: 9}, now) || s.apply(stream.Steering{Version: 10}, now) {
		t.Fatal("an older or equal version applied")
	}
	if got := answers(t, s.engine); len(got) != 1 {
		t.Fatalf("after a dropped state: %v", got)
	}
	lo, hi := 1.0, 50.0
	s.apply(stream.Steering{Version: 11, Endpoints: map[string]stream.SteeringEndpoint{"192.0.2.1": {Load: &hi}, "192.0.2.2": {Load: &lo}}}, now)
	if got := answers(t, s.engine); len(got) != 1 || got[0] != "192.0.2.2" {
		t.Fatalf("least-load with loads 50 and 1: %v, want [192.0.2.2]", got)
	}
	s.apply(stream.Steering{Version: 12, Endpoints: map[string]stream.SteeringEndpoint{"192.0.2.1": {Load: &lo}, "192.0.2.2": {Load: &hi}}}, now)
	if got := answers(t, s.engine); len(got) != 1 || got[0] != "192.0.2.1" {
		t.Fatalf("least-load with loads 1 and 50: %v, want [192.0.2.1]", got)
	}
	st := s.status()
	if st == nil || st.Version != 12 || len(st.Endpoints) != 2 || st.Endpoints[0].Endpoint != "192.0.2.1" || *st.Endpoints[1].Load != 50 {
		t.Fatalf("status %+v", st)
	}
	rtt := stateOf(stream.Steering{RTTms: map[string]map[string]float64{"eu": {"192.0.2.1": 2.5}}}).RTT
	if rtt["eu"]["192.0.2.1"] != 2500*time.Microsecond {
		t.Errorf("RTT %v, want 2.5ms", rtt)
	}
}
