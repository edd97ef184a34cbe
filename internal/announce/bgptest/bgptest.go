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
