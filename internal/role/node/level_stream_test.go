package node

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/anycastdns/anycastdns/internal/admin"
	"github.com/anycastdns/anycastdns/internal/fleet"
	"github.com/anycastdns/anycastdns/internal/fleet/level"
	"github.com/anycastdns/anycastdns/internal/stream"
)

// emptySource is a control plane without zones.
type emptySource struct{}

func (emptySource) Zones(context.Context) (map[string]uint32, error) { return map[string]uint32{}, nil }
func (emptySource) Subscribe() (<-chan stream.Event, func()) {
	return make(chan stream.Event), func() {}
}
func (emptySource) Catalog() string { return "" }
func (emptySource) Transfer(context.Context, string, uint32, bool, func([]byte) error) (uint32, bool, error) {
	return 0, false, fmt.Errorf("no zones")
}

const streamTestSecret = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

// startLevelControl is a control plane's stream server over a fleet that
// decides levels (interval 100ms, validity validity) on loopback; stop
// ends it (the control plane gone).
func startLevelControl(t *testing.T, validity time.Duration) (reg *fleet.Registry, addr string, stop func()) {
	t.Helper()
	reg, err := fleet.New(fleet.Config{Levels: &fleet.LevelsConfig{Engine: level.Config{Quorum: 2, Stale: 2 * time.Second},
		Interval: 100 * time.Millisecond, Validity: validity}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := base64.StdEncoding.DecodeString(streamTestSecret)
	srv, err := stream.NewServer(stream.ServerConfig{Name: "ctl", Keys: map[string][]byte{"k.": secret}, Heartbeat: 100 * time.Millisecond},
		emptySource{}, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served, levels := make(chan struct{}), make(chan struct{})
	go func() { _ = srv.Serve(ctx, ln, nil, nil); close(served) }()
	go func() { _ = reg.RunLevels(ctx); close(levels) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-served
			<-levels
		}
	}
	t.Cleanup(stop)
	return reg, ln.Addr().String(), stop
}

// TestStreamLevelApplied: a level the control plane decides reaches the
// node over the stream and is announced (prepends at the router); the
// refreshes keep it past its validity; once the control plane is gone it
// lapses after the validity and the node is back at normal.
func TestStreamLevelApplied(t *testing.T) {
	const validity = 1500 * time.Millisecond
	reg, addr, stopControl := startLevelControl(t, validity)
	b := startBGPNodeWith(t, fmt.Sprintf(`tsig_keys: [{name: k, secret: %q}]
control: {servers: ["http://%s"], key: k, pop: B}
`, streamTestSecret, addr))
	b.waitPath(t, 1, 20*time.Second, "initial announce")
	if err := reg.Pin("B", level.Shed2, "maintenance"); err != nil {
		t.Fatal(err)
	}
	d := b.waitPath(t, 3, 5*time.Second, "shed-2 from the control plane")
	t.Logf("shed-2 announced %v after the pin", d)
	b.checkLevel(t, level.Shed2, admin.SourceControl)
	if st := b.Status().Level; st == nil || !strings.Contains(st.Reason, "maintenance") || st.Control == nil {
		t.Errorf("status level %+v, want the control plane's reason", st)
	}
	// Refreshed every 100ms: still shed-2 well past one validity.
	time.Sleep(2 * validity)
	if r, ok := b.router.Route(testPrefix); !ok || len(r.ASPath) != 3 {
		t.Fatalf("after %v of refreshes the route is %+v (present %v), want shed-2", 2*validity, r, ok)
	}
	b.checkLevel(t, level.Shed2, admin.SourceControl)

	// The control plane goes away: the level lapses, the node is back
	// at normal after the validity of the last refresh it received, not
	// before. That refresh is read once the control plane has stopped
	// (none can follow); on a loaded machine it may be older than the
	// stop by a stalled stream, so the validity counts from it.
	stopControl()
	st := b.Status().Level
	if st == nil || st.Control == nil {
		t.Fatalf("the control plane's level was gone as soon as it stopped: %+v", st)
	}
	lastRefresh := st.Control.Until.Add(-validity)
	d = b.waitPath(t, 1, 10*time.Second, "normal after the level lapsed")
	if since := time.Since(lastRefresh); since < validity-200*time.Millisecond {
		t.Errorf("back at normal %v after the last refresh, before the validity %v", since, validity)
	}
	t.Logf("normal again %v after the control plane stopped", d)
	b.checkLevel(t, level.Normal, admin.SourceDefault)
}

// TestStreamLevelIgnored: a node without BGP ignores the levels (logged
// once); a level for another PoP, an unknown level or a validity of 0 is
// not applied.
func TestStreamLevelIgnored(t *testing.T) {
	n := &Node{log: slog.New(slog.DiscardHandler)}
	now := time.Now()
	if !n.levelLog.allow(true, now) || n.levelLog.allow(true, now) {
		t.Error("the no-BGP line is not logged exactly once")
	}
	n.applyStreamLevel("B", stream.Level{PoP: "B", Level: "withdrawn", ValidMS: 1000}, now) // no BGP: no panic, nothing

	b := startBGPNode(t)
	b.waitPath(t, 1, 20*time.Second, "initial announce")
	for _, l := range []stream.Level{
		{PoP: "A", Level: "shed-1", ValidMS: 1000},
		{PoP: "B", Level: "shed-9", ValidMS: 1000},
		{PoP: "B", Level: "shed-1", ValidMS: 0},
	} {
		b.applyStreamLevel("B", l, time.Now())
		b.checkLevel(t, level.Normal, admin.SourceDefault)
	}
	b.applyStreamLevel("B", stream.Level{PoP: "B", Level: "shed-1", Reason: "hot", ValidMS: 1000}, time.Now())
	b.checkLevel(t, level.Shed1, admin.SourceControl)
}
