package announce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The interop test re-executes this binary as the speaker inside a
	// network namespace.
	if os.Getenv(childEnv) != "" {
		os.Exit(childMain())
	}
	goleak.VerifyTestMain(m,
		// GoBGP v4.8.0 closes a peer's outgoing queue with a non-blocking
		// drain (server/util.go cleanInfiniteChannel): when messages are still
		// queued as the FSM stops, the queue's buffer goroutine stays blocked.
		// It is the library's, one per torn-down session at most.
		goleak.IgnoreTopFunction("github.com/eapache/channels.(*InfiniteChannel).infiniteBuffer"),
	)
}

const (
	ourASN  = 64512
	peerASN = 64513
)

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() && os.Getenv("ANNOUNCE_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// freePort returns a TCP port that was free on addr a moment ago.
func freePort(t testing.TB, addr string) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatalf("find free port: %v", err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

// testPeer is a real GoBGP router in the same process that receives our routes.
type testPeer struct {
	t    testing.TB
	srv  *server.BgpServer
	addr netip.Addr // the speaker's address as seen by this router
}

// newTestPeer starts a GoBGP router with ASN peerASN. If listen is non-zero it
// accepts the speaker's connection on that port; if connectPort is non-zero it
// connects to the speaker on that port.
func newTestPeer(t testing.TB, local, speaker netip.Addr, listen, connectPort uint16) *testPeer {
	t.Helper()
	srv := server.NewBgpServer(server.LoggerOption(testLogger(t).With("side", "router"), nil))
	go srv.Serve()
	lp := int32(-1)
	if listen != 0 {
		lp = int32(listen)
	}
	if err := srv.StartBgp(context.Background(), &api.StartBgpRequest{Global: &api.Global{
		Asn: peerASN, RouterId: "192.0.2.254", ListenPort: lp, ListenAddresses: []string{local.String()},
	}}); err != nil {
		srv.Stop()
		t.Fatalf("start test router: %v", err)
	}
	t.Cleanup(srv.Stop)
	p := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: speaker.String(), PeerAsn: ourASN},
		Transport: &api.Transport{PassiveMode: connectPort == 0, RemotePort: uint32(connectPort), LocalAddress: local.String()},
		Timers:    &api.Timers{Config: &api.TimersConfig{ConnectRetry: 1, HoldTime: 9, KeepaliveInterval: 3}},
		AfiSafis: []*api.AfiSafi{
			{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}, Enabled: true}},
			{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}, Enabled: true}},
		},
	}
	if err := srv.AddPeer(context.Background(), &api.AddPeerRequest{Peer: p}); err != nil {
		t.Fatalf("add speaker to test router: %v", err)
	}
	return &testPeer{t: t, srv: srv, addr: speaker}
}

// route is what the router received for one prefix, reduced to what we check.
type route struct {
	Prefix      netip.Prefix
	NextHop     netip.Addr
	ASPath      []uint32
	MED         *uint32
	Communities []uint32
	Large       [][3]uint32
}

func (r route) String() string {
	med := "-"
	if r.MED != nil {
		med = fmt.Sprint(*r.MED)
	}
	return fmt.Sprintf("%v via %v path %v med %s comm %v large %v", r.Prefix, r.NextHop, r.ASPath, med, r.Communities, r.Large)
}

// routes returns the routes in the router's Adj-RIB-In from the speaker.
func (p *testPeer) routes() map[netip.Prefix]route {
	out := map[netip.Prefix]route{}
	for _, fam := range []bgp.Family{bgp.RF_IPv4_UC, bgp.RF_IPv6_UC} {
		err := p.srv.ListPath(apiutil.ListPathRequest{
			TableType: api.TableType_TABLE_TYPE_ADJ_IN, Name: p.addr.String(), Family: fam,
		}, func(nlri bgp.NLRI, paths []*apiutil.Path) {
			for _, pa := range paths {
				if pa.Withdrawal {
					continue
				}
				r := route{Prefix: netip.MustParsePrefix(nlri.String())}
				for _, a := range pa.Attrs {
					switch a := a.(type) {
					case *bgp.PathAttributeNextHop:
						r.NextHop = a.Value
					case *bgp.PathAttributeMpReachNLRI:
						r.NextHop = a.Nexthop
					case *bgp.PathAttributeAsPath:
						for _, seg := range a.Value {
							r.ASPath = append(r.ASPath, seg.GetAS()...)
						}
					case *bgp.PathAttributeMultiExitDisc:
						v := a.Value
						r.MED = &v
					case *bgp.PathAttributeCommunities:
						r.Communities = a.Value
					case *bgp.PathAttributeLargeCommunities:
						for _, c := range a.Values {
							r.Large = append(r.Large, [3]uint32{c.ASN, c.LocalData1, c.LocalData2})
						}
					}
				}
				out[r.Prefix] = r
			}
		})
		if err != nil && !strings.Contains(err.Error(), "not found") && !strings.Contains(err.Error(), "doesn't exist") {
			p.t.Errorf("list adj-in %v: %v", fam, err)
		}
	}
	return out
}

// waitRoutes waits until the router's routes from the speaker equal want.
func (p *testPeer) waitRoutes(want map[netip.Prefix]route, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	var diff string
	for time.Now().Before(deadline) {
		diff = cmp.Diff(want, p.routes(), netipCmp)
		if diff == "" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("router routes after %v (-want +got):\n%s", timeout, diff)
}

// netipCmp lets go-cmp compare netip values.
var netipCmp = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

func u32(v uint32) *uint32 { return &v }

var (
	v4 = Announcement{
		Prefix:           netip.MustParsePrefix("192.0.2.53/32"),
		Communities:      []uint32{64512<<16 | 100, 65535<<16 | 1},
		LargeCommunities: [][3]uint32{{64512, 1, 2}, {4200000000, 7, 8}},
		MED:              u32(50),
		Prepend:          2,
	}
	v4b = Announcement{Prefix: netip.MustParsePrefix("198.51.100.0/24"), NextHop: netip.MustParseAddr("198.51.100.1")}
	v6  = Announcement{
		Prefix:      netip.MustParsePrefix("2001:db8::53/128"),
		NextHop:     netip.MustParseAddr("2001:db8::1"),
		Communities: []uint32{64512<<16 | 200},
		MED:         u32(0),
	}
)

func startSpeaker(t *testing.T, cfg Config) (*Speaker, context.CancelFunc, chan error) {
	t.Helper()
	s, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("speaker not ready after 10s")
	}
	return s, cancel, done
}

func waitEstablished(t *testing.T, s *Speaker, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		st := s.Status()
		ok := len(st.Sessions) > 0
		for _, ss := range st.Sessions {
			ok = ok && ss.State == "established"
		}
		if ok {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("sessions not established after %v: %+v", timeout, s.Status().Sessions)
}

func TestAnnounceAttributesWithdrawAndExit(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	port := freePort(t, lo.String())
	router := newTestPeer(t, lo, lo, port, 0)
	s, cancel, done := startSpeaker(t, Config{
		ASN: ourASN, RouterID: netip.MustParseAddr("192.0.2.1"),
		Peers: []Peer{{
			Address: lo, ASN: peerASN, Port: port,
			HoldTime: 9 * time.Second,
		}},
		Announce: []Announcement{v4, v4b, v6},
	})
	if err := s.Set([]netip.Prefix{v4.Prefix, v6.Prefix}); err != nil {
		t.Fatalf("Set: %v", err)
	}
	want := map[netip.Prefix]route{
		v4.Prefix: {
			Prefix: v4.Prefix, NextHop: lo, ASPath: []uint32{ourASN, ourASN, ourASN},
			MED: u32(50), Communities: v4.Communities, Large: v4.LargeCommunities,
		},
		v6.Prefix: {
			Prefix: v6.Prefix, NextHop: v6.NextHop, ASPath: []uint32{ourASN},
			MED: u32(0), Communities: v6.Communities,
		},
	}
	router.waitRoutes(want, 15*time.Second)
	waitEstablished(t, s, time.Second)

	st := s.Status()
	if diff := cmp.Diff([]netip.Prefix{v4.Prefix, v6.Prefix}, st.Announced, netipCmp); diff != "" {
		t.Errorf("Status().Announced (-want +got):\n%s", diff)
	}
	if len(st.Sessions) != 1 || st.Sessions[0].Peer != lo || st.Sessions[0].Uptime <= 0 || st.Sessions[0].BFD != "" {
		t.Errorf("Status().Sessions = %+v, want one established session to %v with uptime, no BFD", st.Sessions, lo)
	}

	t.Run("idempotent", func(t *testing.T) {
		if err := s.Set([]netip.Prefix{v6.Prefix, v4.Prefix, v4.Prefix}); err != nil {
			t.Fatalf("Set: %v", err)
		}
		router.waitRoutes(want, time.Second)
	})
	t.Run("partial", func(t *testing.T) {
		if err := s.Set([]netip.Prefix{v6.Prefix, v4b.Prefix}); err != nil {
			t.Fatalf("Set: %v", err)
		}
		router.waitRoutes(map[netip.Prefix]route{
			v6.Prefix:  want[v6.Prefix],
			v4b.Prefix: {Prefix: v4b.Prefix, NextHop: v4b.NextHop, ASPath: []uint32{ourASN}},
		}, 5*time.Second)
	})
	t.Run("withdraw all", func(t *testing.T) {
		if err := s.Set(nil); err != nil {
			t.Fatalf("Set(nil): %v", err)
		}
		router.waitRoutes(map[netip.Prefix]route{}, 5*time.Second)
		if got := s.Status().Announced; len(got) != 0 {
			t.Errorf("Status().Announced = %v, want none", got)
		}
	})
	t.Run("announce again", func(t *testing.T) {
		if err := s.Set([]netip.Prefix{v4.Prefix, v6.Prefix}); err != nil {
			t.Fatalf("Set: %v", err)
		}
		router.waitRoutes(want, 5*time.Second)
	})
	t.Run("unknown prefix", func(t *testing.T) {
		err := s.Set([]netip.Prefix{v4.Prefix, netip.MustParsePrefix("203.0.113.0/24")})
		if !errors.Is(err, ErrUnknownPrefix) {
			t.Fatalf("Set(unknown) = %v, want ErrUnknownPrefix", err)
		}
		// A rejected Set changes nothing.
		router.waitRoutes(want, time.Second)
	})
	t.Run("run exit withdraws", func(t *testing.T) {
		cancel()
		select {
		case err := <-done:
			done <- err // for the cleanup
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return 10s after cancel")
		}
		router.waitRoutes(map[netip.Prefix]route{}, 5*time.Second)
		if err := s.Set([]netip.Prefix{v4.Prefix}); !errors.Is(err, ErrStopped) {
			t.Errorf("Set after Run = %v, want ErrStopped", err)
		}
		if err := s.Set(nil); err != nil {
			t.Errorf("Set(nil) after Run = %v, want nil", err)
		}
		if st := s.Status(); st.Running || len(st.Announced) != 0 {
			t.Errorf("Status after Run = %+v, want not running, nothing announced", st)
		}
	})
}

// TestPassiveSetBeforeRun: the router connects to the speaker, and the
// prefixes set before Run are announced once it runs.
func TestPassiveSetBeforeRun(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	port := freePort(t, lo.String())
	s, err := New(Config{
		ASN: ourASN, RouterID: netip.MustParseAddr("192.0.2.1"), ListenPort: int32(port),
		Peers:    []Peer{{Address: lo, ASN: peerASN, Passive: true}},
		Announce: []Announcement{v4, v6},
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]netip.Prefix{v4.Prefix}); err != nil {
		t.Fatalf("Set before Run: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Ready()
	router := newTestPeer(t, lo, lo, 0, port)
	// Stop the speaker before the router (cleanups run last-in first-out).
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	router.waitRoutes(map[netip.Prefix]route{
		v4.Prefix: {
			Prefix: v4.Prefix, NextHop: lo, ASPath: []uint32{ourASN, ourASN, ourASN},
			MED: u32(50), Communities: v4.Communities, Large: v4.LargeCommunities,
		},
	}, 15*time.Second)
}

// TestIPv6Session: over an IPv6 session, next hop self gives the session's
// IPv6 address for an IPv6 prefix.
func TestIPv6Session(t *testing.T) {
	lo6 := netip.MustParseAddr("::1")
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	router := newTestPeer(t, lo6, lo6, port, 0)
	a := Announcement{Prefix: netip.MustParsePrefix("2001:db8:53::/48"), LargeCommunities: [][3]uint32{{1, 2, 3}}}
	s, _, _ := startSpeaker(t, Config{
		ASN: ourASN, RouterID: netip.MustParseAddr("192.0.2.1"),
		Peers:    []Peer{{Address: lo6, ASN: peerASN, Port: port}},
		Announce: []Announcement{a},
	})
	if err := s.Set([]netip.Prefix{a.Prefix}); err != nil {
		t.Fatal(err)
	}
	router.waitRoutes(map[netip.Prefix]route{
		a.Prefix: {Prefix: a.Prefix, NextHop: lo6, ASPath: []uint32{ourASN}, Large: a.LargeCommunities},
	}, 15*time.Second)
}

// TestConcurrentSet: concurrent Sets converge to the last one.
func TestConcurrentSet(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	port := freePort(t, lo.String())
	router := newTestPeer(t, lo, lo, port, 0)
	s, _, _ := startSpeaker(t, Config{
		ASN: ourASN, RouterID: netip.MustParseAddr("192.0.2.1"),
		Peers:    []Peer{{Address: lo, ASN: peerASN, Port: port}},
		Announce: []Announcement{v4, v4b, v6},
	})
	sets := [][]netip.Prefix{nil, {v4.Prefix}, {v4b.Prefix, v6.Prefix}, {v4.Prefix, v4b.Prefix, v6.Prefix}}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 25 {
				if err := s.Set(sets[(i+j)%len(sets)]); err != nil {
					t.Errorf("Set: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if err := s.Set([]netip.Prefix{v4b.Prefix}); err != nil {
		t.Fatal(err)
	}
	router.waitRoutes(map[netip.Prefix]route{
		v4b.Prefix: {Prefix: v4b.Prefix, NextHop: v4b.NextHop, ASPath: []uint32{ourASN}},
	}, 15*time.Second)
	if diff := cmp.Diff([]netip.Prefix{v4b.Prefix}, s.Status().Announced, netipCmp); diff != "" {
		t.Errorf("Announced (-want +got):\n%s", diff)
	}
}

// TestReconnectAfterRouterRestart: when the session is lost the speaker
// re-creates the peer and announces again within a few seconds, instead of
// GoBGP's fixed 5 s idle hold plus connect retry.
func TestReconnectAfterRouterRestart(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	port := freePort(t, lo.String())
	router := newTestPeer(t, lo, lo, port, 0)
	s, _, _ := startSpeaker(t, Config{
		ASN: ourASN, RouterID: netip.MustParseAddr("192.0.2.1"),
		Peers:    []Peer{{Address: lo, ASN: peerASN, Port: port}},
		Announce: []Announcement{v4b},
	})
	if err := s.Set([]netip.Prefix{v4b.Prefix}); err != nil {
		t.Fatal(err)
	}
	want := map[netip.Prefix]route{v4b.Prefix: {Prefix: v4b.Prefix, NextHop: v4b.NextHop, ASPath: []uint32{ourASN}}}
	router.waitRoutes(want, 15*time.Second)
	if err := router.srv.ResetPeer(context.Background(), &api.ResetPeerRequest{Address: lo.String(), Communication: "test"}); err != nil {
		t.Fatalf("reset from router: %v", err)
	}
	// The router keeps the peer idle for its own idle hold time after an
	// administrative reset, so drop and re-add it for a clean restart.
	if err := router.srv.DeletePeer(context.Background(), &api.DeletePeerRequest{Address: lo.String()}); err != nil {
		t.Fatal(err)
	}
	router.waitRoutes(map[netip.Prefix]route{}, 5*time.Second)
	start := time.Now()
	if err := router.srv.AddPeer(context.Background(), &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: lo.String(), PeerAsn: ourASN},
		Transport: &api.Transport{PassiveMode: true, LocalAddress: lo.String()},
	}}); err != nil {
		t.Fatal(err)
	}
	router.waitRoutes(want, 5*time.Second)
	t.Logf("re-announced %v after the router came back", time.Since(start).Round(time.Millisecond))
	var restarts int
	for _, ss := range s.Status().Sessions {
		restarts += ss.Restarts
	}
	if restarts < 1 {
		t.Errorf("Restarts = %d, want at least 1", restarts)
	}
}

func TestValidate(t *testing.T) {
	good := func() Config {
		return Config{
			ASN: ourASN, RouterID: netip.MustParseAddr("192.0.2.1"),
			Peers:    []Peer{{Address: netip.MustParseAddr("192.0.2.2"), ASN: peerASN}},
			Announce: []Announcement{v4, v6},
		}
	}
	tests := []struct {
		name   string
		modify func(*Config)
		want   []string // substrings of the error; none = valid
	}{
		{"valid", func(*Config) {}, nil},
		{"no asn", func(c *Config) { c.ASN = 0 }, []string{"asn: must be set"}},
		{"v6 router id", func(c *Config) { c.RouterID = netip.MustParseAddr("2001:db8::1") }, []string{"router id"}},
		{"no peers", func(c *Config) { c.Peers = nil }, []string{"at least one"}},
		{"passive without listen", func(c *Config) { c.Peers[0].Passive = true }, []string{"passive peer needs a listen port"}},
		{"short hold", func(c *Config) { c.Peers[0].HoldTime = 2 * time.Second }, []string{"hold time"}},
		{"keepalive above hold", func(c *Config) {
			c.Peers[0].HoldTime = 3 * time.Second
			c.Peers[0].Keepalive = 3 * time.Second
		}, []string{"below the hold time"}},
		{"bfd multihop", func(c *Config) {
			c.Peers[0].BFD = BFD{Enabled: true}
			c.Peers[0].Multihop = 2
		}, []string{"single-hop"}},
		{"bfd interval", func(c *Config) { c.Peers[0].BFD = BFD{Enabled: true, Interval: time.Millisecond} }, []string{"bfd interval"}},
		{"duplicate peer", func(c *Config) { c.Peers = append(c.Peers, c.Peers[0]) }, []string{"duplicate peer"}},
		{"host bits", func(c *Config) { c.Announce[1].Prefix = netip.MustParsePrefix("2001:db8::1/64") }, []string{"host bits"}},
		{"duplicate prefix", func(c *Config) { c.Announce = append(c.Announce, v4) }, []string{"duplicate prefix"}},
		{"next hop family", func(c *Config) { c.Announce[1].NextHop = netip.MustParseAddr("192.0.2.1") }, []string{"next hop 192.0.2.1"}},
		{"v6 self over v4 session", func(c *Config) { c.Announce[1].NextHop = netip.Addr{} }, []string{"next hop self needs a session of the prefix's family"}},
		{"prepend ibgp", func(c *Config) { c.Peers[0].ASN = ourASN }, []string{"prepend is eBGP only"}},
		{"level prepend ibgp", func(c *Config) {
			c.Announce = []Announcement{v6}
			c.Levels[1].Prepend = 1
			c.Peers[0].ASN = ourASN
		}, []string{"level shed-2: prepend is eBGP only, but peer 192.0.2.2 is iBGP"}},
		{"level communities ibgp", func(c *Config) {
			c.Announce = []Announcement{v6}
			c.Levels[1].Communities = []uint32{1}
			c.Peers[0].ASN = ourASN
		}, nil},
		{"all at once", func(c *Config) {
			c.ASN = 0
			c.Peers[0].ASN = 0
			c.Announce[0].Prefix = netip.Prefix{}
		}, []string{"asn: must be set", "peer 0 (192.0.2.2): asn must be set", "invalid prefix"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			c.Peers = slices.Clone(c.Peers)
			c.Announce = slices.Clone(c.Announce)
			tt.modify(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				if _, err := New(c, testLogger(t)); err != nil {
					t.Fatalf("New() = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors containing %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to contain %q", err, w)
				}
			}
			if _, err := New(c, testLogger(t)); err == nil {
				t.Error("New() accepted an invalid config")
			}
		})
	}
}

func TestSetValidatesBeforeRun(t *testing.T) {
	s, err := New(Config{
		ASN: ourASN, RouterID: netip.MustParseAddr("192.0.2.1"),
		Peers:    []Peer{{Address: netip.MustParseAddr("192.0.2.2"), ASN: peerASN}},
		Announce: []Announcement{v4},
	}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set([]netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}); !errors.Is(err, ErrUnknownPrefix) {
		t.Errorf("Set(unknown) = %v, want ErrUnknownPrefix", err)
	}
	if err := s.Set([]netip.Prefix{v4.Prefix}); err != nil {
		t.Errorf("Set(known) before Run = %v", err)
	}
	if st := s.Status(); st.Running || len(st.Announced) != 0 {
		t.Errorf("Status before Run = %+v, want not running and nothing announced", st)
	}
}

// A PoP with a router session per family and next hop self: each prefix goes
// over the session of its own family only.
func TestPeerFamilies(t *testing.T) {
	v4 := Peer{Address: netip.MustParseAddr("100.64.0.1")}
	v6 := Peer{Address: netip.MustParseAddr("2001:db8:ffff::1")}
	self := []Announcement{{Prefix: netip.MustParsePrefix("192.0.2.53/32")}, {Prefix: netip.MustParsePrefix("2001:db8::53/128")}}
	if got := peerFamilies(v4, self); len(got) != 1 || got[0] != bgp.RF_IPv4_UC {
		t.Errorf("v4 session, next hop self: %v", got)
	}
	if got := peerFamilies(v6, self); len(got) != 1 || got[0] != bgp.RF_IPv6_UC {
		t.Errorf("v6 session, next hop self: %v", got)
	}
	explicit := []Announcement{self[0], {Prefix: self[1].Prefix, NextHop: netip.MustParseAddr("2001:db8:ffff::2")}}
	if got := peerFamilies(v4, explicit); len(got) != 2 {
		t.Errorf("v4 session, v6 prefix with a next hop: %v, want both families", got)
	}
	cfg := Config{ASN: 65100, RouterID: netip.MustParseAddr("192.0.2.1"), Peers: []Peer{
		{Address: v4.Address, ASN: 65001}, {Address: v6.Address, ASN: 65001}}, Announce: self}
	if err := cfg.Validate(); err != nil {
		t.Errorf("one session per family with next hop self: %v", err)
	}
}
