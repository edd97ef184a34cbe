package fleet

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/api"
	"github.com/anycastdns/anycastdns/internal/fleet"
	"github.com/anycastdns/anycastdns/internal/testkit"
)

// TestStreamCut runs the real anycastd control and two nodes that know only
// the control plane's address and key (the control plane lists no node and
// sends no NOTIFY, and the zone's SOA refresh is an hour: what reaches the
// nodes comes over the stream). Record changes flow through the API while
// the control plane is killed (SIGKILL) and started again; afterwards
// every node serves the last serial, every change that the API
// acknowledged, and the versions each node installed follow one another:
// no change lost, none applied twice. A third node started afterwards
// joins the fleet by itself and serves every zone.
func TestStreamCut(t *testing.T) {
	bin := testkit.BuildAnycastd(t)
	p := newPlane(t, bin, t.TempDir())
	ctl := p.start(t, "control.log")
	const zone = "cut.example."
	createZone(t, p.client, zone)
	nodes := []*node{newNode(t, p, "n1", 0), newNode(t, p, "n2", 0)}
	for _, n := range nodes {
		n.start(t, bin)
	}
	for _, n := range nodes {
		waitSerial(t, n, zone, 1, 20*time.Second)
	}
	ctx := context.Background()
	// A node can have the zone by AXFR before its stream's hello has
	// registered it in the fleet: wait (bounded) for both to be there.
	for _, n := range nodes {
		deadline := time.Now().Add(10 * time.Second)
		for {
			v, err := p.client.Fleet(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			m, ok := member(v, n.name)
			if ok && m.State == fleet.StateConnected && m.PoP == "pop-"+n.name {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s in the fleet after 10 s: %+v (found %v)", n.name, m, ok)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// One change, timed: the stream pushes it in milliseconds (NOTIFY
	// would not come at all, the SOA refresh in an hour).
	res, err := p.client.SetRRset(ctx, zone, "first."+zone, "TXT", api.RRset{TTL: 60, Records: []string{`"first"`}}, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		d := waitSerial(t, n, zone, res.Serial, 5*time.Second)
		t.Logf("FIGURE stream: %s served serial %d %.1f ms after the API call returned", n.name, res.Serial, float64(d.Microseconds())/1000)
	}

	// Changes keep coming; the control plane is killed in the middle of
	// them and started again.
	var mu sync.Mutex
	var acked []int // records the API acknowledged
	var last uint32
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			res, err := p.client.SetRRset(rctx, zone, fmt.Sprintf("rec%d.%s", i, zone), "TXT", api.RRset{TTL: 60, Records: []string{fmt.Sprintf(`"change %d"`, i)}}, "")
			cancel()
			if err == nil {
				mu.Lock()
				acked = append(acked, i)
				last = res.Serial
				mu.Unlock()
			} else {
				time.Sleep(20 * time.Millisecond) // the control plane is away
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
	waitAcked := func(n int) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			k := len(acked)
			mu.Unlock()
			if k >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("only %d changes acknowledged", k)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitAcked(40)
	ctl.Kill()
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	time.Sleep(500 * time.Millisecond)
	p.start(t, "control-restarted.log")
	waitAcked(before + 40)
	close(stop)
	wg.Wait()
	t.Logf("%d changes acknowledged, %d of them before the kill; last serial %d", len(acked), before, last)

	for _, n := range nodes {
		d := waitSerial(t, n, zone, last, 20*time.Second)
		t.Logf("%s at the last serial %v after the last change", n.name, d.Round(time.Millisecond))
	}
	for _, n := range nodes {
		missing := 0
		for _, i := range acked {
			r, err := testkit.Query(n.dns, fmt.Sprintf("rec%d.%s", i, zone), dns.TypeTXT)
			if err != nil || len(r.Answer) != 1 {
				missing++
			}
		}
		if missing > 0 {
			t.Errorf("%s lacks %d of the %d acknowledged changes", n.name, missing, len(acked))
		}
		ups := testkit.ZoneUpdates(t, n.log, zone)
		seen := map[uint32]bool{}
		for i, u := range ups {
			if seen[u.Serial] {
				t.Errorf("%s installed serial %d twice", n.name, u.Serial)
			}
			seen[u.Serial] = true
			if i > 0 && u.Previous != ups[i-1].Serial {
				t.Errorf("%s: update %d from %d, but the previous one installed %d", n.name, i, u.Previous, ups[i-1].Serial)
			}
			if u.Serial <= u.Previous {
				t.Errorf("%s: update %d went from %d to %d", n.name, i, u.Previous, u.Serial)
			}
		}
		stream := 0
		for _, u := range ups {
			if strings.Contains(u.Source, "stream") {
				stream++
			}
		}
		t.Logf("%s installed %d versions, %d of them pushed over the stream", n.name, len(ups), stream)
		if len(ups) == 0 || ups[len(ups)-1].Serial != last {
			t.Errorf("%s: the last version installed is not serial %d", n.name, last)
		}
		if stream < len(ups)/2 {
			t.Errorf("%s: only %d of %d versions came over the stream", n.name, stream, len(ups))
		}
	}

	// The metrics say the same: each node's stream is up and brought the
	// changes; the control plane sees both members connected.
	for _, n := range nodes {
		url := "http://" + n.metrics + "/metrics"
		control := fmt.Sprintf(`{control="http://%s/v1/stream"}`, p.stream)
		if up := testkit.Metric(t, url, "anycastd_stream_up"+control); up != 1 {
			t.Errorf("%s: anycastd_stream_up %v, want 1", n.name, up)
		}
		if pushes := testkit.Metric(t, url, "anycastd_stream_pushes_total"+control); pushes < 10 {
			t.Errorf("%s: anycastd_stream_pushes_total %v", n.name, pushes)
		}
		if c := testkit.Metric(t, "http://"+p.metric+"/metrics", fmt.Sprintf(`anycastd_fleet_connected{node=%q,pop="pop-%s"}`, n.name, n.name)); c != 1 {
			t.Errorf("anycastd_fleet_connected of %s: %v, want 1", n.name, c)
		}
	}

	// A new PoP joins with the address and the key alone.
	createZone(t, p.client, "second.example.")
	n3 := newNode(t, p, "n3", 0)
	n3.start(t, bin)
	var joined time.Time
	var m fleet.MemberView
	for deadline := time.Now().Add(20 * time.Second); ; {
		v, err := p.client.Fleet(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		var ok bool
		if m, ok = member(v, "n3"); ok && !m.FirstHeartbeat.IsZero() {
			joined = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n3 not in the fleet after 20s: %+v", v)
		}
		time.Sleep(20 * time.Millisecond)
	}
	seenAfter := joined.Sub(m.FirstHeartbeat)
	t.Logf("FIGURE join: n3 listed %v after its first heartbeat", seenAfter.Round(time.Millisecond))
	if seenAfter > time.Second {
		t.Errorf("n3 listed %v after its first heartbeat, want within 1s", seenAfter)
	}
	zones, err := p.client.ListZones(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, z := range zones {
		waitSerial(t, n3, z.Name, z.Serial, 20*time.Second)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		v, err := p.client.Fleet(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		m, _ := member(v, "n3")
		if m.State == fleet.StateConnected && m.ZonesBehind == 0 && m.ZonesMissing == 0 && m.ZonesFollowed == len(zones)+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n3 in the fleet: %d followed, %d behind, %d missing; want %d zones, in sync", m.ZonesFollowed, m.ZonesBehind, m.ZonesMissing, len(zones)+1)
		}
	}

	// Revoked, n3 is sent away and stays away; the others are untouched.
	if _, err := p.client.Revoke(ctx, "n3"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	v, err := p.client.Fleet(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"n1", "n2", "n3"} {
		m, _ := member(v, name)
		want := fleet.StateConnected
		if name == "n3" {
			want = fleet.StateRevoked
		}
		if m.State != want {
			t.Errorf("%s is %s, want %s", name, m.State, want)
		}
	}
	if s := testkit.SOASerial(n3.dns, zone); s != last {
		t.Errorf("revoked n3 answers serial %d of %s, want %d: a revoked node keeps serving", s, zone, last)
	}
}
