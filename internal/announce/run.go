package announce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
)

// flushTimeout bounds how long Run waits, on exit, for the withdrawals to be
// written to the peers before it closes the sessions.
const flushTimeout = time.Second

// Run starts the BGP server, adds the peers, announces the prefixes given to
// Set and keeps the sessions up until ctx is done; then it withdraws every
// prefix, closes the sessions and returns. It may be called once.
func (s *Speaker) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("run speaker: already started")
	}
	s.started = true
	s.mu.Unlock()

	rt, err := startRuntime(s.cfg, s.bfdPort, s.logger)
	if err != nil {
		s.markStopped()
		return fmt.Errorf("run speaker: %w", err)
	}
	s.mu.Lock()
	s.rt = rt
	err = s.reconcileLocked()
	s.mu.Unlock()
	if err != nil {
		rt.stop()
		s.markStopped()
		return fmt.Errorf("run speaker: initial announce: %w", err)
	}
	close(s.ready)
	s.logger.Info("bgp speaker started", "asn", s.cfg.ASN, "router_id", s.cfg.RouterID, "peers", len(s.cfg.Peers))

	rt.loop(ctx)

	// Withdraw first, and give the UPDATEs a moment to leave, so that the
	// routers drop the routes even if they keep the session state (graceful
	// restart) or the close gets lost.
	s.mu.Lock()
	before := rt.sentUpdates()
	s.desired = map[netip.Prefix]struct{}{}
	withdrawn := len(s.announced)
	err = s.reconcileLocked()
	s.rt = nil
	s.stopped = true
	s.mu.Unlock()
	if withdrawn > 0 && err == nil {
		rt.waitSent(before, flushTimeout)
	}
	rt.stop()
	s.logger.Info("bgp speaker stopped")
	if err != nil {
		return fmt.Errorf("run speaker: withdraw on exit: %w", err)
	}
	return nil
}

func (s *Speaker) markStopped() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
}

// runtime is the running GoBGP server and the speaker's view of its peers.
type runtime struct {
	srv         *server.BgpServer
	logger      *slog.Logger
	asn         uint32
	announces   []Announcement // to choose each session's families
	events      chan *apiutil.WatchEventMessage_PeerEvent
	watchCancel context.CancelFunc
	bfd         *bfdMux // nil when no peer uses BFD
	bfdEvents   chan bfdChange

	mu    sync.Mutex
	peers map[netip.Addr]*peerRT
	order []netip.Addr
}

// peerRT is the state the speaker keeps for one peer.
type peerRT struct {
	cfg         Peer
	state       bgp.FSMState
	established time.Time
	restarts    int
}

func startRuntime(cfg Config, bfdPort int, logger *slog.Logger) (*runtime, error) {
	srv := server.NewBgpServer(server.LoggerOption(logger.With("lib", "gobgp"), nil))
	go srv.Serve()
	rt := &runtime{
		srv:       srv,
		logger:    logger,
		asn:       cfg.ASN,
		events:    make(chan *apiutil.WatchEventMessage_PeerEvent, 64),
		bfdEvents: make(chan bfdChange, 64),
		peers:     map[netip.Addr]*peerRT{},
	}
	listen := cfg.ListenPort
	if listen == 0 {
		listen = -1 // GoBGP: do not listen
	}
	if err := srv.StartBgp(context.Background(), &api.StartBgpRequest{Global: &api.Global{
		Asn:        cfg.ASN,
		RouterId:   cfg.RouterID.String(),
		ListenPort: listen,
	}}); err != nil {
		srv.Stop()
		return nil, fmt.Errorf("start bgp: %w", err)
	}
	watchCtx, cancel := context.WithCancel(context.Background())
	rt.watchCancel = cancel
	err := srv.WatchEvent(watchCtx, server.WatchEventMessageCallbacks{
		OnPeerUpdate: func(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
			select {
			case rt.events <- ev:
			case <-watchCtx.Done():
			}
		},
	}, server.WatchPeer())
	if err != nil {
		rt.stop()
		return nil, fmt.Errorf("watch peers: %w", err)
	}
	rt.announces = cfg.Announce
	for _, p := range cfg.Peers {
		pr := &peerRT{cfg: p, state: bgp.BGP_FSM_IDLE}
		if err := srv.AddPeer(context.Background(), &api.AddPeerRequest{Peer: apiPeer(p, peerFamilies(p, cfg.Announce))}); err != nil {
			rt.stop()
			return nil, fmt.Errorf("add peer %v: %w", p.Address, err)
		}
		rt.peers[p.Address] = pr
		rt.order = append(rt.order, p.Address)
		if !p.BFD.Enabled {
			continue
		}
		if rt.bfd == nil {
			rt.bfd = newBFDMux(bfdPort, func(c bfdChange) {
				select {
				case rt.bfdEvents <- c:
				case <-watchCtx.Done():
				}
			}, logger)
		}
		if err := rt.bfd.add(p.Address, p.LocalAddress, p.BFD.Interval, p.BFD.Multiplier); err != nil {
			rt.stop()
			return nil, err
		}
	}
	return rt, nil
}

// loop follows the peers' state until ctx is done.
func (rt *runtime) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-rt.events:
			rt.handle(ev)
		case c := <-rt.bfdEvents:
			rt.handleBFD(c)
		}
	}
}

func (rt *runtime) handle(ev *apiutil.WatchEventMessage_PeerEvent) {
	if ev.Type != apiutil.PEER_EVENT_STATE {
		return
	}
	addr := ev.Peer.State.NeighborAddress.Unmap()
	rt.mu.Lock()
	p, ok := rt.peers[addr]
	if !ok {
		rt.mu.Unlock()
		return
	}
	old, next := p.state, ev.Peer.State.SessionState
	p.state = next
	var lasted time.Duration
	switch {
	case next == bgp.BGP_FSM_ESTABLISHED && old != bgp.BGP_FSM_ESTABLISHED:
		p.established = time.Now()
	case old == bgp.BGP_FSM_ESTABLISHED && next != bgp.BGP_FSM_ESTABLISHED:
		lasted = time.Since(p.established)
		p.established = time.Time{}
	}
	rt.mu.Unlock()

	switch {
	case next == bgp.BGP_FSM_ESTABLISHED && old != bgp.BGP_FSM_ESTABLISHED:
		rt.logger.Info("bgp session established", "peer", addr, "peer_asn", p.cfg.ASN)
	case old == bgp.BGP_FSM_ESTABLISHED && next != bgp.BGP_FSM_ESTABLISHED:
		rt.logger.Warn("bgp session lost", "peer", addr, "lasted", lasted.Round(time.Millisecond),
			"reason", ev.Peer.State.DisconnectReason.String(), "message", ev.Peer.State.DisconnectMessage)
		// GoBGP keeps a dropped peer idle for a fixed 5 s before it even
		// accepts a connection again, and may keep a queued reset that kills
		// the next session. A fresh peer starts clean and connects at once.
		rt.recreate(p)
	}
}

// handleBFD tears the BGP session down when BFD finds the path dead.
func (rt *runtime) handleBFD(c bfdChange) {
	rt.mu.Lock()
	p, ok := rt.peers[c.Peer]
	established := ok && p.state == bgp.BGP_FSM_ESTABLISHED
	rt.mu.Unlock()
	if !ok {
		return
	}
	switch {
	case c.To == bfdUp:
		rt.logger.Info("bfd up", "peer", c.Peer)
	case c.From == bfdUp:
		rt.logger.Warn("bfd down", "peer", c.Peer, "to", c.To, "diag", c.Diag, "bgp_established", established)
		if established {
			rt.recreate(p)
		}
	}
}

// recreate deletes the peer from GoBGP and adds it again with a fresh FSM.
func (rt *runtime) recreate(p *peerRT) {
	addr := p.cfg.Address
	rt.mu.Lock()
	p.state = bgp.BGP_FSM_IDLE
	p.restarts++
	rt.mu.Unlock()
	if err := rt.srv.DeletePeer(context.Background(), &api.DeletePeerRequest{Address: addr.String()}); err != nil {
		rt.logger.Error("re-create peer: delete", "peer", addr, "err", err)
	}
	if err := rt.srv.AddPeer(context.Background(), &api.AddPeerRequest{Peer: apiPeer(p.cfg, peerFamilies(p.cfg, rt.announces))}); err != nil {
		rt.logger.Error("re-create peer: add", "peer", addr, "err", err)
		return
	}
	rt.logger.Info("peer re-created", "peer", addr)
}

func (rt *runtime) announce(a Announcement) error {
	p, err := path(a, rt.asn, false)
	if err != nil {
		return err
	}
	if _, err := rt.srv.AddPath(apiutil.AddPathRequest{Paths: []*apiutil.Path{p}}); err != nil {
		return fmt.Errorf("add path: %w", err)
	}
	return nil
}

func (rt *runtime) withdraw(a Announcement) error {
	p, err := path(a, rt.asn, true)
	if err != nil {
		return err
	}
	if err := rt.srv.DeletePath(apiutil.DeletePathRequest{Paths: []*apiutil.Path{p}}); err != nil {
		return fmt.Errorf("delete path: %w", err)
	}
	return nil
}

// sentUpdates returns the number of UPDATE messages sent to each established peer.
func (rt *runtime) sentUpdates() map[string]uint64 {
	out := map[string]uint64{}
	_ = rt.srv.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.State == nil || p.State.SessionState != api.PeerState_SESSION_STATE_ESTABLISHED {
			return
		}
		if m := p.State.Messages; m != nil && m.Sent != nil {
			out[p.State.NeighborAddress] = m.Sent.Update
		}
	})
	return out
}

// waitSent waits until every peer in before has been sent at least one more
// UPDATE (or is gone), at most timeout.
func (rt *runtime) waitSent(before map[string]uint64, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		now := rt.sentUpdates()
		done := true
		for addr, n := range before {
			if m, ok := now[addr]; ok && m <= n {
				done = false
			}
		}
		if done {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	rt.logger.Warn("withdrawals not confirmed sent before shutdown", "timeout", timeout)
}

func (rt *runtime) sessions() []Session {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	out := make([]Session, 0, len(rt.order))
	for _, addr := range rt.order {
		p := rt.peers[addr]
		s := Session{Peer: addr, ASN: p.cfg.ASN, State: fsmStateName(p.state), Restarts: p.restarts}
		if p.state == bgp.BGP_FSM_ESTABLISHED && !p.established.IsZero() {
			s.Uptime = time.Since(p.established)
		}
		if rt.bfd != nil {
			if st, ok := rt.bfd.state(addr); ok {
				s.BFD = st.String()
			}
		}
		out = append(out, s)
	}
	return out
}

func (rt *runtime) stop() {
	rt.watchCancel()
	rt.srv.Stop()
	if rt.bfd != nil {
		rt.bfd.close()
	}
}

func announcedFamilies(as []Announcement) []bgp.Family {
	var fams []bgp.Family
	for _, a := range as {
		if f := family(a.Prefix); !slices.Contains(fams, f) {
			fams = append(fams, f)
		}
	}
	if len(fams) == 0 {
		fams = []bgp.Family{bgp.RF_IPv4_UC}
	}
	slices.Sort(fams)
	return fams
}

// peerFamilies returns the address families a session with p carries: its
// own family always, the other one only when every announcement of that
// family has an explicit next hop (next hop self is impossible there).
func peerFamilies(p Peer, as []Announcement) []bgp.Family {
	own := p.Address.Unmap().Is4()
	var fams []bgp.Family
	otherOK, otherAny := true, false
	for _, a := range as {
		if a.Prefix.Addr().Is4() == own {
			continue
		}
		otherAny = true
		if !a.NextHop.IsValid() {
			otherOK = false
		}
	}
	for _, f := range announcedFamilies(as) {
		isOwn := f == bgp.RF_IPv4_UC && own || f == bgp.RF_IPv6_UC && !own
		if isOwn || otherAny && otherOK {
			fams = append(fams, f)
		}
	}
	if len(fams) == 0 {
		if own {
			fams = []bgp.Family{bgp.RF_IPv4_UC}
		} else {
			fams = []bgp.Family{bgp.RF_IPv6_UC}
		}
	}
	return fams
}

// apiPeer converts a peer to GoBGP's peer configuration.
func apiPeer(p Peer, families []bgp.Family) *api.Peer {
	ap := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: p.Address.String(),
			PeerAsn:         p.ASN,
			AuthPassword:    p.Password,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime:          uint64(p.HoldTime / time.Second),
			KeepaliveInterval: uint64(p.Keepalive / time.Second),
			ConnectRetry:      uint64(connectRetry / time.Second),
		}},
		Transport: &api.Transport{PassiveMode: p.Passive, RemotePort: uint32(p.Port)},
	}
	if p.LocalAddress.IsValid() {
		ap.Transport.LocalAddress = p.LocalAddress.String()
	}
	if p.Multihop > 1 {
		ap.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(p.Multihop)}
	}
	for _, f := range families {
		afi, safi := f.Afi(), f.Safi()
		ap.AfiSafis = append(ap.AfiSafis, &api.AfiSafi{Config: &api.AfiSafiConfig{
			Family:  &api.Family{Afi: api.Family_Afi(afi), Safi: api.Family_Safi(safi)},
			Enabled: true,
		}})
	}
	// BFD is ours (bfd.go), not GoBGP's: see README.md.
	return ap
}

// connectRetry is the pause between failed outgoing connection attempts.
const connectRetry = 5 * time.Second

func fsmStateName(s bgp.FSMState) string {
	switch s {
	case bgp.BGP_FSM_IDLE:
		return "idle"
	case bgp.BGP_FSM_CONNECT:
		return "connect"
	case bgp.BGP_FSM_ACTIVE:
		return "active"
	case bgp.BGP_FSM_OPENSENT:
		return "opensent"
	case bgp.BGP_FSM_OPENCONFIRM:
		return "openconfirm"
	case bgp.BGP_FSM_ESTABLISHED:
		return "established"
	}
	return fmt.Sprintf("state(%d)", int(s))
}
