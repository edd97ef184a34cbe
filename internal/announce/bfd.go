package announce

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// This file is a small single-hop BFD (RFC 5880 asynchronous mode over
// RFC 5881 UDP) used instead of GoBGP's: see README.md for why. No
// authentication, no echo, no demand mode.

const (
	bfdPort       = 3784 // RFC 5881 control packets
	bfdPacketLen  = 24
	bfdSlowTx     = time.Second // RFC 5880 §6.8.3: at least 1 s while not Up
	bfdMinSrcPort = 49152       // RFC 5881 §4
	bfdMaxSrcPort = 65535
)

// bfdState is a session state as carried on the wire.
type bfdState uint8

const (
	bfdAdminDown bfdState = 0
	bfdDown      bfdState = 1
	bfdInit      bfdState = 2
	bfdUp        bfdState = 3
)

func (s bfdState) String() string {
	switch s {
	case bfdAdminDown:
		return "admin_down"
	case bfdDown:
		return "down"
	case bfdInit:
		return "init"
	case bfdUp:
		return "up"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Diagnostic codes (RFC 5880 §4.1).
const (
	bfdDiagNone         uint8 = 0
	bfdDiagTimeExpired  uint8 = 1
	bfdDiagNeighborDown uint8 = 3
	bfdDiagAdminDown    uint8 = 7
)

var errBFDPacket = errors.New("invalid bfd packet")

// bfdPacket is a BFD control packet without authentication.
type bfdPacket struct {
	Diag          uint8
	State         bfdState
	Poll, Final   bool
	DetectMult    uint8
	MyDisc        uint32
	YourDisc      uint32
	DesiredMinTx  uint32 // µs
	RequiredMinRx uint32 // µs
}

func (p bfdPacket) marshal() []byte {
	b := make([]byte, bfdPacketLen)
	b[0] = 1<<5 | p.Diag&0x1f
	b[1] = byte(p.State) << 6
	if p.Poll {
		b[1] |= 1 << 5
	}
	if p.Final {
		b[1] |= 1 << 4
	}
	b[2] = p.DetectMult
	b[3] = bfdPacketLen
	binary.BigEndian.PutUint32(b[4:], p.MyDisc)
	binary.BigEndian.PutUint32(b[8:], p.YourDisc)
	binary.BigEndian.PutUint32(b[12:], p.DesiredMinTx)
	binary.BigEndian.PutUint32(b[16:], p.RequiredMinRx)
	// Required Min Echo RX Interval 0: we do not do echo.
	return b
}

// parseBFD decodes a control packet and applies the packet checks of
// RFC 5880 §6.8.6 that need no session.
func parseBFD(b []byte) (bfdPacket, error) {
	if len(b) < bfdPacketLen {
		return bfdPacket{}, fmt.Errorf("%w: %d bytes", errBFDPacket, len(b))
	}
	if v := b[0] >> 5; v != 1 {
		return bfdPacket{}, fmt.Errorf("%w: version %d", errBFDPacket, v)
	}
	length := int(b[3])
	if length < bfdPacketLen || length > len(b) {
		return bfdPacket{}, fmt.Errorf("%w: length field %d, %d bytes", errBFDPacket, length, len(b))
	}
	flags := b[1]
	if flags&(1<<2) != 0 {
		return bfdPacket{}, fmt.Errorf("%w: authentication not supported", errBFDPacket)
	}
	if flags&1 != 0 {
		return bfdPacket{}, fmt.Errorf("%w: multipoint bit set", errBFDPacket)
	}
	p := bfdPacket{
		Diag:          b[0] & 0x1f,
		State:         bfdState(flags >> 6),
		Poll:          flags&(1<<5) != 0,
		Final:         flags&(1<<4) != 0,
		DetectMult:    b[2],
		MyDisc:        binary.BigEndian.Uint32(b[4:]),
		YourDisc:      binary.BigEndian.Uint32(b[8:]),
		DesiredMinTx:  binary.BigEndian.Uint32(b[12:]),
		RequiredMinRx: binary.BigEndian.Uint32(b[16:]),
	}
	if p.Poll && p.Final {
		return bfdPacket{}, fmt.Errorf("%w: poll and final both set", errBFDPacket)
	}
	if p.DetectMult == 0 {
		return bfdPacket{}, fmt.Errorf("%w: detect multiplier 0", errBFDPacket)
	}
	if p.MyDisc == 0 {
		return bfdPacket{}, fmt.Errorf("%w: my discriminator 0", errBFDPacket)
	}
	if p.YourDisc == 0 && p.State != bfdDown && p.State != bfdAdminDown {
		return bfdPacket{}, fmt.Errorf("%w: your discriminator 0 in state %v", errBFDPacket, p.State)
	}
	return p, nil
}

// bfdChange is a session state change, reported to the speaker.
type bfdChange struct {
	Peer     netip.Addr
	From, To bfdState
	Diag     uint8
}

// bfdSession is one BFD session, run by one goroutine.
type bfdSession struct {
	peer      netip.Addr
	localDisc uint32
	interval  time.Duration // our desired min tx when Up, and our required min rx
	mult      uint8
	send      func([]byte) error
	onChange  func(bfdChange)
	logger    *slog.Logger
	// pending reports whether received packets wait unread in the socket;
	// nil in tests.
	pending func() bool

	rx    chan bfdPacket
	state atomic.Uint32 // bfdState, for Status

	// Owned by the run goroutine.
	st           bfdState
	diag         uint8
	remoteState  bfdState
	remoteDisc   uint32
	remoteMinRx  time.Duration
	remoteMinTx  time.Duration
	remoteMult   uint8
	desiredTx    time.Duration // as advertised now
	polling      bool
	sendFinalNow bool
}

func newBFDSession(peer netip.Addr, localDisc uint32, interval time.Duration, mult uint8,
	send func([]byte) error, onChange func(bfdChange), logger *slog.Logger) *bfdSession {
	s := &bfdSession{
		peer: peer, localDisc: localDisc, interval: interval, mult: mult,
		send: send, onChange: onChange, logger: logger,
		rx:          make(chan bfdPacket, 32),
		st:          bfdDown,
		remoteState: bfdDown,
		remoteMinRx: time.Microsecond, // unknown yet: send at our own pace
		desiredTx:   max(bfdSlowTx, interval),
	}
	s.state.Store(uint32(bfdDown))
	return s
}

// deliver hands a received packet to the session; it never blocks.
func (s *bfdSession) deliver(p bfdPacket) {
	select {
	case s.rx <- p:
	default:
	}
}

func (s *bfdSession) State() bfdState { return bfdState(s.state.Load()) }

// txInterval is the interval between periodic packets (RFC 5880 §6.8.7).
func (s *bfdSession) txInterval() time.Duration {
	return max(s.desiredTx, s.remoteMinRx)
}

// detectTime is how long without a packet before the session goes down
// (RFC 5880 §6.8.4, asynchronous mode).
func (s *bfdSession) detectTime() time.Duration {
	return time.Duration(s.remoteMult) * max(s.interval, s.remoteMinTx)
}

func jitter(d time.Duration, mult uint8) time.Duration {
	// RFC 5880 §6.8.7: 75-100 % of the interval, 75-90 % with multiplier 1.
	hi := 0.25
	if mult == 1 {
		hi = 0.15
	}
	return time.Duration(float64(d) * (0.75 + rand.Float64()*hi)) //nolint:gosec // RFC 5880 §6.8.7 jitter, not a secret
}

// run drives the session until ctx is done, then sends AdminDown once.
func (s *bfdSession) run(ctx context.Context) {
	tx := time.NewTimer(0)
	defer tx.Stop()
	detect := time.NewTimer(time.Hour)
	detect.Stop()
	defer detect.Stop()
	postponed := 0
	for {
		select {
		case <-ctx.Done():
			s.setState(bfdAdminDown, bfdDiagAdminDown)
			s.transmit(false)
			return
		case <-tx.C:
			s.transmit(false)
			tx.Reset(jitter(s.txInterval(), s.mult))
		case <-detect.C:
			if s.st != bfdInit && s.st != bfdUp {
				continue
			}
			// After a stall (CPU starvation, a paused process) the timer
			// and the packets that arrived meanwhile are ready together, and
			// select picks at random: read what has arrived before deciding.
			if s.drain(detect, tx) {
				postponed = 0
				continue
			}
			if s.pending != nil && postponed < 20 && s.pending() {
				postponed++
				detect.Reset(5 * time.Millisecond)
				continue
			}
			postponed = 0
			s.remoteDisc = 0 // RFC 5880 §6.8.1
			s.remoteMinTx = 0
			s.setState(bfdDown, bfdDiagTimeExpired)
		case p := <-s.rx:
			s.handle(p, detect, tx)
		}
	}
}

// drain handles the packets already delivered; it reports whether there were any.
func (s *bfdSession) drain(detect, tx *time.Timer) bool {
	got := false
	for {
		select {
		case p := <-s.rx:
			s.handle(p, detect, tx)
			got = true
		default:
			return got
		}
	}
}

func (s *bfdSession) handle(p bfdPacket, detect, tx *time.Timer) {
	before := s.txInterval()
	s.receive(p)
	if s.st == bfdInit || s.st == bfdUp {
		detect.Reset(s.detectTime())
	} else {
		detect.Stop()
	}
	if s.sendFinalNow {
		s.sendFinalNow = false
		s.transmit(true)
	}
	if after := s.txInterval(); after < before {
		// A faster rate takes effect at once (RFC 5880 §6.8.3).
		tx.Reset(jitter(after, s.mult))
	}
}

// receive applies RFC 5880 §6.8.6 to a packet already selected for this session.
func (s *bfdSession) receive(p bfdPacket) {
	s.remoteDisc = p.MyDisc
	s.remoteState = p.State
	s.remoteMinRx = time.Duration(p.RequiredMinRx) * time.Microsecond
	s.remoteMinTx = time.Duration(p.DesiredMinTx) * time.Microsecond
	s.remoteMult = p.DetectMult
	if p.Final && s.polling {
		s.polling = false
	}
	if p.State == bfdAdminDown {
		if s.st != bfdDown {
			s.setState(bfdDown, bfdDiagNeighborDown)
		}
	} else {
		switch s.st {
		case bfdDown:
			switch p.State {
			case bfdDown:
				s.setState(bfdInit, bfdDiagNone)
			case bfdInit:
				s.setState(bfdUp, bfdDiagNone)
			}
		case bfdInit:
			if p.State == bfdInit || p.State == bfdUp {
				s.setState(bfdUp, bfdDiagNone)
			}
		case bfdUp:
			if p.State == bfdDown {
				s.setState(bfdDown, bfdDiagNeighborDown)
			}
		}
	}
	if p.Poll {
		s.sendFinalNow = true
	}
}

func (s *bfdSession) setState(to bfdState, diag uint8) {
	from := s.st
	if from == to {
		return
	}
	s.st, s.diag = to, diag
	s.state.Store(uint32(to))
	switch {
	case to == bfdUp:
		// Now the fast rate: announce it with a Poll Sequence (§6.8.3).
		s.desiredTx = s.interval
		s.polling = true
		s.diag = bfdDiagNone
	case from == bfdUp:
		s.desiredTx = max(bfdSlowTx, s.interval)
		s.polling = false
	}
	s.logger.Debug("bfd state", "peer", s.peer, "from", from, "to", to, "diag", diag)
	if s.onChange != nil {
		s.onChange(bfdChange{Peer: s.peer, From: from, To: to, Diag: diag})
	}
}

func (s *bfdSession) transmit(final bool) {
	p := bfdPacket{
		Diag:          s.diag,
		State:         s.st,
		Poll:          s.polling && !final,
		Final:         final,
		DetectMult:    s.mult,
		MyDisc:        s.localDisc,
		YourDisc:      s.remoteDisc,
		DesiredMinTx:  uint32(s.desiredTx / time.Microsecond),
		RequiredMinRx: uint32(s.interval / time.Microsecond),
	}
	if err := s.send(p.marshal()); err != nil {
		s.logger.Debug("bfd send", "peer", s.peer, "err", err)
	}
}

// bfdMux owns the BFD sockets: one receiver per address family on the BFD
// port, one sender per session, and demultiplexes received packets to the
// sessions (RFC 5880 §6.8.6: by Your Discriminator, or by source address
// when it is zero).
type bfdMux struct {
	logger   *slog.Logger
	port     int // listen port, and the peers' port
	onChange func(bfdChange)

	mu       sync.Mutex
	sessions map[netip.Addr]*bfdSession
	byDisc   map[uint32]*bfdSession
	conns    []net.PacketConn
	rx       []net.PacketConn // the receivers, also in conns
	cancel   context.CancelFunc
	ctx      context.Context //nolint:containedctx // the mux's lifetime, ended by close
	sessWG   sync.WaitGroup
	rxWG     sync.WaitGroup
}

func newBFDMux(port int, onChange func(bfdChange), logger *slog.Logger) *bfdMux {
	ctx, cancel := context.WithCancel(context.Background())
	return &bfdMux{
		logger: logger, port: port, onChange: onChange,
		sessions: map[netip.Addr]*bfdSession{}, byDisc: map[uint32]*bfdSession{},
		ctx: ctx, cancel: cancel,
	}
}

// listen opens the receiver for a family if it is not open yet.
func (m *bfdMux) listen(v4 bool) error {
	network, addr := "udp4", fmt.Sprintf("0.0.0.0:%d", m.port)
	if !v4 {
		network, addr = "udp6", fmt.Sprintf("[::]:%d", m.port)
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
		})
		return errors.Join(err, serr)
	}}
	pc, err := lc.ListenPacket(m.ctx, network, addr)
	if err != nil {
		return fmt.Errorf("bfd listen %s: %w", addr, err)
	}
	var read func([]byte) (int, int, net.Addr, error)
	if v4 {
		c := ipv4.NewPacketConn(pc)
		if err := c.SetControlMessage(ipv4.FlagTTL, true); err != nil {
			_ = pc.Close()
			return fmt.Errorf("bfd listen %s: receive ttl: %w", addr, err)
		}
		read = func(b []byte) (int, int, net.Addr, error) {
			n, cm, src, err := c.ReadFrom(b)
			ttl := -1
			if cm != nil {
				ttl = cm.TTL
			}
			return n, ttl, src, err
		}
	} else {
		c := ipv6.NewPacketConn(pc)
		if err := c.SetControlMessage(ipv6.FlagHopLimit, true); err != nil {
			_ = pc.Close()
			return fmt.Errorf("bfd listen %s: receive hop limit: %w", addr, err)
		}
		read = func(b []byte) (int, int, net.Addr, error) {
			n, cm, src, err := c.ReadFrom(b)
			hl := -1
			if cm != nil {
				hl = cm.HopLimit
			}
			return n, hl, src, err
		}
	}
	m.conns = append(m.conns, pc)
	m.rx = append(m.rx, pc)
	m.rxWG.Go(func() { m.receive(read) })
	return nil
}

func (m *bfdMux) receive(read func([]byte) (int, int, net.Addr, error)) {
	buf := make([]byte, 512)
	for {
		n, ttl, src, err := read(buf)
		if err != nil {
			if m.ctx.Err() != nil {
				return
			}
			m.logger.Debug("bfd receive", "err", err)
			continue
		}
		ua, ok := src.(*net.UDPAddr)
		if !ok {
			continue
		}
		from := ua.AddrPort().Addr().Unmap()
		// RFC 5881 §5: single-hop packets must arrive with TTL 255 (GTSM).
		if ttl != 255 {
			m.logger.Debug("bfd packet dropped: ttl", "from", from, "ttl", ttl)
			continue
		}
		p, err := parseBFD(buf[:n])
		if err != nil {
			m.logger.Debug("bfd packet dropped", "from", from, "err", err)
			continue
		}
		m.dispatch(p, from)
	}
}

// dispatch selects the session of a received packet (RFC 5880 §6.8.6): by
// Your Discriminator when it is set, otherwise by the source address, so that
// a peer that restarted its session (new discriminator, Your Discriminator 0,
// state Down) still reaches our session and takes it down. It reports whether
// a session took the packet.
func (m *bfdMux) dispatch(p bfdPacket, from netip.Addr) bool {
	m.mu.Lock()
	var s *bfdSession
	if p.YourDisc != 0 {
		s = m.byDisc[p.YourDisc]
	} else {
		s = m.sessions[from]
	}
	m.mu.Unlock()
	if s == nil || s.peer != from {
		m.logger.Debug("bfd packet for no session", "from", from, "your_disc", p.YourDisc)
		return false
	}
	s.deliver(p)
	return true
}

// pending reports whether any receiver socket has unread packets.
func (m *bfdMux) pending() bool {
	m.mu.Lock()
	rx := m.rx
	m.mu.Unlock()
	for _, c := range rx {
		if unread(c) {
			return true
		}
	}
	return false
}

// add starts a session with peer, sending from local (may be invalid).
func (m *bfdMux) add(peer, local netip.Addr, interval time.Duration, mult uint8) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.sessions[peer]; ok {
		return fmt.Errorf("bfd session %v: exists", peer)
	}
	v4 := peer.Is4()
	listening := false
	for _, c := range m.conns {
		if a, ok := c.LocalAddr().(*net.UDPAddr); ok && (a.IP.To4() != nil) == v4 {
			listening = true
		}
	}
	if !listening {
		if err := m.listen(v4); err != nil {
			return err
		}
	}
	conn, err := dialBFD(peer, local, m.port)
	if err != nil {
		return fmt.Errorf("bfd session %v: %w", peer, err)
	}
	var disc uint32
	for disc == 0 || m.byDisc[disc] != nil {
		disc = rand.Uint32() //nolint:gosec // math/rand/v2 is ChaCha8, randomly seeded: unguessable enough for a discriminator (RFC 5880 §6.3)
	}
	send := func(b []byte) error {
		_, err := conn.Write(b)
		return err
	}
	s := newBFDSession(peer, disc, interval, mult, send, m.onChange, m.logger)
	s.pending = m.pending
	m.sessions[peer] = s
	m.byDisc[disc] = s
	m.conns = append(m.conns, conn)
	m.sessWG.Go(func() { s.run(m.ctx) })
	return nil
}

// dialBFD opens the sending socket of a session: a source port from the
// RFC 5881 range and TTL 255.
func dialBFD(peer, local netip.Addr, port int) (*net.UDPConn, error) {
	if !local.IsValid() {
		local = netip.IPv4Unspecified()
		if peer.Is6() {
			local = netip.IPv6Unspecified()
		}
	}
	var lastErr error
	for range 32 {
		src := bfdMinSrcPort + rand.IntN(bfdMaxSrcPort-bfdMinSrcPort+1) //nolint:gosec // source port choice (RFC 5881 §4), not a secret
		c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, uint16(src))),
			net.UDPAddrFromAddrPort(netip.AddrPortFrom(peer, uint16(port))))
		if err != nil {
			lastErr = err
			continue
		}
		if peer.Is4() {
			err = ipv4.NewConn(c).SetTTL(255)
		} else {
			err = ipv6.NewConn(c).SetHopLimit(255)
		}
		if err != nil {
			_ = c.Close()
			return nil, fmt.Errorf("set ttl 255: %w", err)
		}
		return c, nil
	}
	return nil, fmt.Errorf("dial from a port in %d-%d: %w", bfdMinSrcPort, bfdMaxSrcPort, lastErr)
}

// state returns the state of the session with peer, if there is one.
func (m *bfdMux) state(peer netip.Addr) (bfdState, bool) {
	m.mu.Lock()
	s, ok := m.sessions[peer]
	m.mu.Unlock()
	if !ok {
		return 0, false
	}
	return s.State(), true
}

// close stops the sessions (each sends AdminDown) and closes the sockets.
func (m *bfdMux) close() {
	m.cancel()
	m.sessWG.Wait()
	m.mu.Lock()
	for _, c := range m.conns {
		_ = c.Close()
	}
	m.conns = nil
	m.mu.Unlock()
	m.rxWG.Wait()
}
