package stream_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/store"
	"github.com/anycastdns/anycastdns/internal/stream"
	"github.com/anycastdns/anycastdns/internal/tsig"
	"github.com/anycastdns/anycastdns/internal/xfrout"
	"github.com/anycastdns/anycastdns/internal/zonesync"
)

const (
	keyName   = "node-key."
	keySecret = "KmSBOQmjtyYzILPFjRYDIUmaEGkpbDVAkwbzmB8pfLE="
	catalog   = "catalog.invalid."
)

// zonesAdapter is what role/node gives the stream client.
type zonesAdapter struct{ m *zonesync.Manager }

func (a zonesAdapter) Serials() map[string]uint32 { return a.m.Serials() }
func (a zonesAdapter) CatalogZone() string        { return a.m.CatalogZone() }
func (a zonesAdapter) Refresh(zone string) error  { return a.m.Refresh(zone) }
func (a zonesAdapter) ApplyPushed(ctx context.Context, zone string, msgs [][]byte, source string) (stream.PushResult, error) {
	r, err := a.m.ApplyPushed(ctx, zone, msgs, source)
	return stream.PushResult(r), err
}

// updates records the node's "zone updated" log lines.
type updates struct {
	mu   sync.Mutex
	seen map[string][][2]uint64 // zone → (previous, serial) in order
}

func (u *updates) Enabled(context.Context, slog.Level) bool { return true }
func (u *updates) WithAttrs([]slog.Attr) slog.Handler       { return u }
func (u *updates) WithGroup(string) slog.Handler            { return u }
func (u *updates) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "zone updated" {
		return nil
	}
	var zone string
	var prev, serial uint64
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "zone":
			zone = a.Value.String()
		case "previous":
			prev = a.Value.Uint64()
		case "serial":
			serial = a.Value.Uint64()
		}
		return true
	})
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.seen == nil {
		u.seen = map[string][][2]uint64{}
	}
	u.seen[zone] = append(u.seen[zone], [2]uint64{prev, serial})
	return nil
}

func (u *updates) of(zone string) [][2]uint64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.seen[zone])
}

// plane is a control plane in the test: store, transfer server and stream
// server.
type plane struct {
	st        *store.Store
	xfr       *xfrout.Server
	xfrAddr   netip.AddrPort
	streamURL string
	stopXfr   func()
	stopSrv   func()
}

func startPlane(t *testing.T) *plane {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "zones.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	x, err := xfrout.New(xfrout.Config{
		Listen:        []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:0")},
		Keys:          []tsig.Key{{Name: keyName, Algorithm: "hmac-sha256", Secret: keySecret}},
		AllowTransfer: []xfrout.ACL{{Prefix: netip.MustParsePrefix("127.0.0.0/8"), Key: keyName}},
		Catalog:       catalog, CatalogDelay: 10 * time.Millisecond,
	}, st, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- x.Run(ctx) }()
	<-x.Ready()
	p := &plane{st: st, xfr: x, xfrAddr: x.Addrs()[0]}
	p.stopXfr = func() { cancel(); <-done }
	t.Cleanup(p.stopXfr)
	p.startStream(t, "127.0.0.1:0")
	return p
}

// startStream starts the stream server at addr (a restart gives the
// address it had).
func (p *plane) startStream(t *testing.T, addr string) {
	t.Helper()
	secret, _ := base64.StdEncoding.DecodeString(keySecret)
	srv, err := stream.NewServer(stream.ServerConfig{Name: "ctl", Keys: map[string][]byte{keyName: secret}, Heartbeat: 100 * time.Millisecond},
		p.xfr.StreamSource(), nopRegistry{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	for range 100 {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	p.streamURL = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln, nil, nil) }()
	stopped := false
	p.stopSrv = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(p.stopSrv)
}

type nopRegistry struct{}

func (nopRegistry) Admit(string, string) error                      { return nil }
func (nopRegistry) Join(stream.Member, func(string)) stream.Session { return nopSession{} }

type nopSession struct{}

func (nopSession) Heartbeat(stream.Heartbeat) {}
func (nopSession) Serial(string, uint32)      {}
func (nopSession) Unfollow(string)            {}
func (nopSession) Pushed(string, uint32)      {}
func (nopSession) Leave(error)                {}

// node is a node's secondary zones following the plane's catalog, with a
// stream to it.
type node struct {
	m   *zonesync.Manager
	c   *stream.Client
	log *updates
}

func startNode(t *testing.T, p *plane) *node {
	t.Helper()
	u := &updates{}
	m, err := zonesync.New(zonesync.Config{
		DataDir: t.TempDir(),
		Keys:    []tsig.Key{{Name: keyName, Algorithm: "hmac-sha256", Secret: keySecret}},
		Catalog: &zonesync.Catalog{Zone: catalog, Primaries: []zonesync.Primary{{Addr: p.xfrAddr, Key: keyName}}},
	}, slog.New(u))
	if err != nil {
		t.Fatal(err)
	}
	secret, _ := base64.StdEncoding.DecodeString(keySecret)
	c, err := stream.NewClient(stream.ClientConfig{URL: p.streamURL, KeyName: keyName, Secret: secret, Node: "n1", PoP: "test"},
		zonesAdapter{m}, func() stream.Status { return stream.Status{Health: "healthy"} }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	m.SetStreamLive(c.Live)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = m.Run(ctx) })
	wg.Go(func() { _ = c.Run(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return &node{m: m, c: c, log: u}
}

func (n *node) serial(zone string) uint32 { return n.m.Serials()[zone] }

func waitSerial(t *testing.T, n *node, zone string, serial uint32, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for n.serial(zone) != serial {
		if time.Since(start) > within {
			t.Fatalf("%s not at serial %d after %s (at %d); stream %+v", zone, serial, within, n.serial(zone), n.c.State())
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

func createZone(t *testing.T, st *store.Store, name string) uint32 {
	t.Helper()
	var rrs []dns.RR
	for _, l := range []string{
		name + " 3600 IN SOA ns1." + name + " hostmaster." + name + " 1 3600 600 604800 60",
		name + " 3600 IN NS ns1." + name,
		"ns1." + name + " 3600 IN A 192.0.2.53",
	} {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatal(err)
		}
		rrs = append(rrs, rr)
	}
	info, err := st.CreateZone(context.Background(), name, rrs, store.SerialIncrement)
	if err != nil {
		t.Fatal(err)
	}
	return info.Serial
}

func setTXT(t *testing.T, st *store.Store, zone string, i int) uint32 {
	t.Helper()
	rr, err := dns.NewRR(fmt.Sprintf("rec%d.%s 60 IN TXT \"change %d\"", i, zone, i))
	if err != nil {
		t.Fatal(err)
	}
	serial, err := st.SetRRset(context.Background(), zone, rr.Header().Name, dns.TypeTXT, []dns.RR{rr})
	if err != nil {
		t.Fatal(err)
	}
	return serial
}

// TestPushEndToEnd runs the real store, transfer server, stream, and
// secondary zones in one process, with no NOTIFY target: a new zone and
// each change reach the node over the stream, and with the stream cut
// mid-flow of changes and the stream server restarted, the node converges
// to the last serial with every change applied once, in order.
func TestPushEndToEnd(t *testing.T) {
	p := startPlane(t)
	createZone(t, p.st, "a.example.")
	n := startNode(t, p)
	waitSerial(t, n, "a.example.", 1, 10*time.Second)
	for deadline := time.Now().Add(5 * time.Second); !n.c.Live(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("stream not live")
		}
	}
	var worst time.Duration
	for i := range 20 {
		serial := setTXT(t, p.st, "a.example.", i)
		worst = max(worst, waitSerial(t, n, "a.example.", serial, 2*time.Second))
	}
	t.Logf("20 changes, the slowest served %s after its commit", worst)
	if worst > 500*time.Millisecond {
		t.Errorf("a change took %s to reach the node; the stream pushes in milliseconds", worst)
	}

	// A new zone: the catalog, then the zone, over the stream.
	serial := createZone(t, p.st, "b.example.")
	t.Logf("new zone served after %s", waitSerial(t, n, "b.example.", serial, 5*time.Second))

	// Changes keep coming while the stream server goes away and returns.
	addr := p.streamURL[len("http://"):]
	stopWriting := make(chan struct{})
	var last uint32
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 100; ; i++ {
			select {
			case <-stopWriting:
				return
			default:
			}
			last = setTXT(t, p.st, "a.example.", i)
			time.Sleep(5 * time.Millisecond)
		}
	})
	time.Sleep(200 * time.Millisecond)
	p.stopSrv()
	time.Sleep(300 * time.Millisecond)
	p.startStream(t, addr)
	time.Sleep(200 * time.Millisecond)
	close(stopWriting)
	wg.Wait()
	waitSerial(t, n, "a.example.", last, 10*time.Second)

	// Every version the node installed follows the one before: nothing
	// applied twice or out of order; the last is the store's. (The log
	// line of an update follows the swap by a moment.)
	ups := n.log.of("a.example.")
	for deadline := time.Now().Add(2 * time.Second); ups[len(ups)-1][1] != uint64(last) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
		ups = n.log.of("a.example.")
	}
	for i := 1; i < len(ups); i++ {
		if ups[i][0] != ups[i-1][1] || ups[i][1] <= ups[i][0] {
			t.Errorf("update %d: %d → %d after %d → %d", i, ups[i][0], ups[i][1], ups[i-1][0], ups[i-1][1])
		}
	}
	if got := ups[len(ups)-1][1]; got != uint64(last) {
		t.Errorf("last update to %d, the store is at %d", got, last)
	}
	rrs, err := p.st.RRset(context.Background(), "a.example.", "rec100.a.example.", dns.TypeTXT)
	if err != nil || len(rrs) != 1 {
		t.Errorf("store lost a change: %v %v", rrs, err)
	}
}
