// Package bgptest is a BGP router for tests: a GoBGP server in the test's
// process that connects to a speaker on loopback and reports the routes it
// received. It lives under internal/announce because only that package
// tree imports GoBGP.
package bgptest

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// Config describes the router and the one speaker it connects to.
type Config struct {
	ASN      uint32     // the router's AS
	RouterID netip.Addr // the router's BGP identifier (IPv4)
	// Speaker is the speaker's address, SpeakerPort the TCP port it
	// accepts sessions on, SpeakerASN its AS.
	Speaker     netip.Addr
	SpeakerPort uint16
	SpeakerASN  uint32
	// Local is the address the router connects from.
	Local netip.Addr
}

// Router is a running test router. Close stops it.
type Router struct {
	srv     *server.BgpServer
	speaker netip.Addr
	close   func()
}

// Start starts a router that connects to the speaker (retrying every
// second) with IPv4 and IPv6 unicast.
func Start(cfg Config) (*Router, error) {
	srv := server.NewBgpServer(server.LoggerOption(slog.New(slog.DiscardHandler), nil))
	go srv.Serve()
	r := &Router{srv: srv, speaker: cfg.Speaker, close: sync.OnceFunc(srv.Stop)}
	if err := srv.StartBgp(context.Background(), &api.StartBgpRequest{Global: &api.Global{
		Asn: cfg.ASN, RouterId: cfg.RouterID.String(), ListenPort: -1, ListenAddresses: []string{cfg.Local.String()},
	}}); err != nil {
		r.Close()
		return nil, fmt.Errorf("bgptest: start: %w", err)
	}
	p := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: cfg.Speaker.String(), PeerAsn: cfg.SpeakerASN},
		Transport: &api.Transport{RemotePort: uint32(cfg.SpeakerPort), LocalAddress: cfg.Local.String()},
		Timers:    &api.Timers{Config: &api.TimersConfig{ConnectRetry: 1, HoldTime: 9, KeepaliveInterval: 3}},
		AfiSafis: []*api.AfiSafi{
			{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}, Enabled: true}},
			{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}, Enabled: true}},
		},
	}
	if err := srv.AddPeer(context.Background(), &api.AddPeerRequest{Peer: p}); err != nil {
		r.Close()
		return nil, fmt.Errorf("bgptest: add speaker: %w", err)
	}
	return r, nil
}

// Close stops the router; calling it again does nothing.
func (r *Router) Close() { r.close() }

// Has reports whether the router holds a route to prefix from the speaker.
func (r *Router) Has(prefix netip.Prefix) bool {
	fam := bgp.RF_IPv4_UC
	if prefix.Addr().Is6() {
		fam = bgp.RF_IPv6_UC
	}
	found := false
	// An error means no session (yet): nothing received.
	_ = r.srv.ListPath(apiutil.ListPathRequest{
		TableType: api.TableType_TABLE_TYPE_ADJ_IN, Name: r.speaker.String(), Family: fam,
	}, func(nlri bgp.NLRI, paths []*apiutil.Path) {
		p, err := netip.ParsePrefix(nlri.String())
		if err != nil || p != prefix {
			return
		}
		for _, pa := range paths {
			if !pa.Withdrawal {
				found = true
			}
		}
	})
	return found
}

// Route is what the router holds for one prefix from the speaker.
type Route struct {
	Prefix      netip.Prefix
	ASPath      []uint32 // every ASN of every segment, in order
	Communities []uint32 // RFC 1997, high 16 bits the ASN
	MED         *uint32  // nil = not sent
}

// Route returns the route the router holds for prefix from the speaker,
// and false when it holds none.
func (r *Router) Route(prefix netip.Prefix) (Route, bool) {
	fam := bgp.RF_IPv4_UC
	if prefix.Addr().Is6() {
		fam = bgp.RF_IPv6_UC
	}
	var out Route
	found := false
	_ = r.srv.ListPath(apiutil.ListPathRequest{
		TableType: api.TableType_TABLE_TYPE_ADJ_IN, Name: r.speaker.String(), Family: fam,
	}, func(nlri bgp.NLRI, paths []*apiutil.Path) {
		p, err := netip.ParsePrefix(nlri.String())
		if err != nil || p != prefix {
			return
		}
		for _, pa := range paths {
			if pa.Withdrawal {
				continue
			}
			found = true
			out = routeOf(p, pa)
		}
	})
	return out, found
}

func routeOf(p netip.Prefix, pa *apiutil.Path) Route {
	out := Route{Prefix: p}
	for _, a := range pa.Attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeAsPath:
			for _, seg := range a.Value {
				out.ASPath = append(out.ASPath, seg.GetAS()...)
			}
		case *bgp.PathAttributeCommunities:
			out.Communities = append([]uint32(nil), a.Value...)
		case *bgp.PathAttributeMultiExitDisc:
			v := a.Value
			out.MED = &v
		}
	}
	return out
}

// Event is a change of the router's best path for a prefix: a new route
// (Withdrawn false) or none any more.
type Event struct {
	Route
	Withdrawn bool
	Time      time.Time // as the router's event says
}

// Watch records the changes of the router's best paths (its Loc-RIB) from
// now until Close; Events returns them.
type Watch struct {
	mu     sync.Mutex
	events []Event
	stop   context.CancelFunc
}

// Watch starts recording the router's best-path changes.
func (r *Router) Watch() (*Watch, error) {
	ctx, cancel := context.WithCancel(context.Background())
	w := &Watch{stop: cancel}
	err := r.srv.WatchEvent(ctx, server.WatchEventMessageCallbacks{
		OnBestPath: func(paths []*apiutil.Path, at time.Time) {
			w.mu.Lock()
			defer w.mu.Unlock()
			for _, pa := range paths {
				p, err := netip.ParsePrefix(pa.Nlri.String())
				if err != nil {
					continue
				}
				w.events = append(w.events, Event{Route: routeOf(p, pa), Withdrawn: pa.Withdrawal, Time: at})
			}
		},
	}, server.WatchBestPath(false))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("bgptest: watch: %w", err)
	}
	return w, nil
}

// Events returns the changes recorded so far, oldest first.
func (w *Watch) Events() []Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Event(nil), w.events...)
}

// Close stops recording.
func (w *Watch) Close() { w.stop() }
