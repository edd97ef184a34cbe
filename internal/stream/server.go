package stream

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/anycastdns/anycastdns/internal/httpprobe"
)

// Event tells the server that a zone changed (the catalog zone included).
type Event struct {
	Zone    string // canonical
	Serial  uint32
	Deleted bool
}

// Source is the zone data the server streams: the control plane's transfer
// server (xfrout), which serves the same data to NOTIFY/IXFR secondaries.
// Its methods must be safe for concurrent use.
type Source interface {
	// Zones returns the current serial of every zone, the catalog zone
	// included.
	Zones(ctx context.Context) (map[string]uint32, error)
	// Subscribe returns the zones' changes, sent after each commit
	// (events of one zone may be merged into the newest), and a function
	// that ends the subscription.
	Subscribe() (<-chan Event, func())
	// Transfer sends, through send, the DNS messages that bring a
	// secondary from serial from to the zone's current version: the IXFR
	// answer from the change log (AXFR-style when the log does not reach
	// back to from), or the whole zone when full is set. When from is
	// current (or newer) it sends nothing and returns sent false. An
	// error from send comes back wrapped.
	Transfer(ctx context.Context, zone string, from uint32, full bool, send func(msg []byte) error) (serial uint32, sent bool, err error)
	// Catalog returns the name of the catalog zone, "" without one.
	Catalog() string
}

// Member is a node as it connects.
type Member struct {
	Node    string
	PoP     string
	Version string
	Key     string // the TSIG key it authenticated with
	Remote  string // its address as the server saw it
	// Zones is the serial of every secondary zone it follows (0: no data
	// yet), as its hello reported them.
	Zones map[string]uint32
	At    time.Time // when the stream was established
}

// Registry is the fleet: it admits nodes and records what their streams
// report. Its methods must be safe for concurrent use.
type Registry interface {
	// Admit is asked before a stream starts: an error (a revoked node)
	// refuses it with 403 and the error's text.
	Admit(node, key string) error
	// Join records a new stream of a member. stop ends that stream with
	// a reason sent to the node (a revocation, a newer stream of the same
	// node).
	Join(m Member, stop func(reason string)) Session
}

// Session is one member's stream as the registry follows it.
type Session interface {
	// Heartbeat records a heartbeat.
	Heartbeat(hb Heartbeat)
	// Serial records that the member holds zone at serial (0: no data).
	Serial(zone string, serial uint32)
	// Unfollow records that the member no longer follows zone.
	Unfollow(zone string)
	// Pushed records that serial of zone was sent to the member, not yet
	// acknowledged.
	Pushed(zone string, serial uint32)
	// Leave records the end of the stream, with the error that ended it
	// (nil: the server's shutdown).
	Leave(err error)
}

// LevelSession is a Session that also has levels for the node (its PoP's,
// decided by the control plane): the server sends each value it receives
// as a level frame, to a node that takes them. The channel should hold
// only the newest level.
type LevelSession interface {
	Session
	Levels() <-chan Level
}

// SteeringSession is a Session that also has steering states for the
// node: the server sends each value it receives as a steering frame, to a
// node that takes them. The channel should hold only the newest state.
type SteeringSession interface {
	Session
	Steering() <-chan Steering
}

// ServerConfig configures a Server.
type ServerConfig struct {
	// Name is the control plane's name, sent to the nodes.
	Name string
	// Keys are the TSIG keys nodes may authenticate with: canonical key
	// name → secret. SetKeys replaces them.
	Keys map[string][]byte
	// Heartbeat is how often nodes send heartbeats and the server a
	// keepalive (default 1s).
	Heartbeat time.Duration
	// Version is sent to the nodes.
	Version string
}

// DefaultHeartbeat is the heartbeat interval unless configured.
const DefaultHeartbeat = time.Second

// Server is the control plane's end of the streams: an http.Handler for
// Path. Each node holds one stream; the server pushes every committed
// change of a zone the node follows, from the serial the node holds, and
// records its heartbeats in the Registry.
type Server struct {
	cfg  ServerConfig
	src  Source
	reg  Registry
	log  *slog.Logger
	keys atomic.Pointer[map[string][]byte]
	met  *serverMetrics

	closing   chan struct{} // closed by Close: every stream says bye
	closeOnce sync.Once
	streams   sync.WaitGroup
}

// NewServer returns a Server of src's zones for the members of reg.
func NewServer(cfg ServerConfig, src Source, reg Registry, logger *slog.Logger) (*Server, error) {
	if src == nil || reg == nil {
		return nil, errors.New("stream server: no source or registry")
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	s := &Server{cfg: cfg, src: src, reg: reg, log: logger.With("component", "stream"), met: newServerMetrics(),
		closing: make(chan struct{})}
	s.SetKeys(cfg.Keys)
	return s, nil
}

// SetKeys replaces the keys nodes may authenticate with; streams already
// established stay.
func (s *Server) SetKeys(keys map[string][]byte) {
	k := make(map[string][]byte, len(keys))
	for name, secret := range keys {
		k[dns.CanonicalName(name)] = slices.Clone(secret)
	}
	s.keys.Store(&k)
}

// Collectors returns the server's Prometheus collectors.
func (s *Server) Collectors() []prometheus.Collector { return s.met.collectors() }

// Close ends every stream with a bye and waits for them; new streams are
// refused.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
	s.streams.Wait()
}

// Serve serves the streams (and /healthz, /readyz answered by readiness)
// on ln until ctx ends: HTTP/2 over TLS with tlsConfig, or unencrypted
// HTTP/2 ("h2c", prior knowledge) without. HTTP/1 is served too, for the
// probes and to tell a client that the stream needs HTTP/2.
func (s *Server) Serve(ctx context.Context, ln net.Listener, tlsConfig *tls.Config, readiness func() error) error {
	var protos http.Protocols
	protos.SetHTTP1(true)
	if tlsConfig != nil {
		protos.SetHTTP2(true)
	} else {
		protos.SetUnencryptedHTTP2(true)
	}
	mux := http.NewServeMux()
	mux.Handle(Path, s)
	srv := &http.Server{
		Handler:           httpprobe.Wrap(mux, readiness),
		Protocols:         &protos,
		TLSConfig:         tlsConfig,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		HTTP2:             &http.HTTP2Config{SendPingTimeout: 10 * time.Second, PingTimeout: 10 * time.Second},
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	s.log.Info("stream listening", "addr", ln.Addr().String(), "tls", tlsConfig != nil)
	select {
	case err := <-errc:
		s.Close()
		return fmt.Errorf("stream: serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	s.Close() // every stream says bye and returns
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		s.log.Warn("stream server stopped", "err", err)
	}
	return nil
}

// httpError writes a plain-text error.
func httpError(w http.ResponseWriter, code int, msg string) { http.Error(w, msg, code) }

// ContentType is the media type of both directions of a stream.
const ContentType = "application/x-anycastd-stream"

// ServeHTTP serves one node's stream.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		httpError(w, http.StatusMethodNotAllowed, "the stream is a POST")
		return
	}
	if r.ProtoMajor < 2 {
		httpError(w, http.StatusHTTPVersionNotSupported, "the stream needs HTTP/2 (h2c with prior knowledge, or TLS with ALPN h2)")
		return
	}
	select {
	case <-s.closing:
		httpError(w, http.StatusServiceUnavailable, "the control plane is shutting down")
		return
	default:
	}
	keyName := dns.CanonicalName(r.Header.Get(HeaderKey))
	node := r.Header.Get(HeaderNode)
	nonce, nerr := base64.StdEncoding.DecodeString(r.Header.Get(HeaderNonce))
	secret, known := (*s.keys.Load())[keyName]
	switch {
	case nerr != nil || len(nonce) != nonceLen:
		httpError(w, http.StatusBadRequest, fmt.Sprintf("header %s: want the base64 of %d random bytes", HeaderNonce, nonceLen))
		return
	case !validNode(node):
		httpError(w, http.StatusBadRequest, fmt.Sprintf("header %s: want the node's name, 1 to 255 printable characters", HeaderNode))
		return
	case !known:
		s.met.refused.WithLabelValues("unknown_key").Inc()
		s.log.Warn("stream refused: unknown key", "node", node, "key", keyName, "remote", r.RemoteAddr)
		httpError(w, http.StatusUnauthorized, fmt.Sprintf("key %q is not a key of this control plane", keyName))
		return
	}
	if err := s.reg.Admit(node, keyName); err != nil {
		s.met.refused.WithLabelValues("revoked").Inc()
		s.log.Info("stream refused", "node", node, "key", keyName, "remote", r.RemoteAddr, "err", err)
		httpError(w, http.StatusForbidden, err.Error())
		return
	}
	s.streams.Add(1)
	defer s.streams.Done()
	s.met.streams.Inc()
	defer s.met.streams.Dec()
	err := s.serveStream(w, r, node, keyName, secret, nonce)
	switch {
	case errors.Is(err, ErrAuth):
		s.met.refused.WithLabelValues("auth").Inc()
		s.log.Warn("stream closed: authentication failed", "node", node, "key", keyName, "remote", r.RemoteAddr, "err", err)
	case err != nil:
		s.log.Info("stream closed", "node", node, "remote", r.RemoteAddr, "err", err)
	default:
		s.log.Info("stream closed", "node", node, "remote", r.RemoteAddr)
	}
}

func validNode(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, c := range []byte(s) {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// session is one node's stream on the server.
type session struct {
	s      *Server
	fc     *frameConn
	rc     *http.ResponseController
	log    *slog.Logger
	member Session

	// Written by the reader, read by the writer.
	qmu   sync.Mutex
	queue []nodeEvent
	wake  chan struct{}

	// levels are the PoP levels for the node, nil when the registry has
	// none or the node does not take them.
	levels <-chan Level
	// steering are the steering states, nil as levels.
	steering <-chan Steering

	// The writer's own.
	belief   map[string]uint32 // serial the node holds, or will once it applied what was sent
	pushID   uint64
	resentAt map[string]uint64 // zone → push id of the last resend after a refusal
}

// nodeEvent is what the reader hands the writer: an ack, or changes to
// the set of zones the node follows.
type nodeEvent struct {
	ack      *ack
	follow   map[string]uint32
	unfollow []string
}

func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, node, keyName string, secret, nodeNonce []byte) error {
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return fmt.Errorf("send headers: %w", err)
	}
	fc := newFrameConn(r.Body, w, rc.Flush, true)
	serverNonce := make([]byte, nonceLen)
	_, _ = rand.Read(serverNonce)
	fc.setKey(sessionKey(secret, keyName, node, nodeNonce, serverNonce))
	hello, err := json.Marshal(serverHello{Server: s.cfg.Name, Version: s.cfg.Version, HeartbeatMS: s.cfg.Heartbeat.Milliseconds(), Catalog: s.src.Catalog()})
	if err != nil {
		return err
	}
	_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := fc.write(frameChallenge, serverNonce, hello); err != nil {
		return err
	}
	_ = rc.SetReadDeadline(time.Now().Add(helloTimeout))
	// A small frame first: nothing large is read from a client before it
	// has proven it holds the key.
	t, _, err := fc.readLimited(maxFirstFrame)
	if err != nil {
		return fmt.Errorf("read auth: %w", err)
	}
	if t != frameAuth {
		return fmt.Errorf("%w: %s frame instead of the auth", ErrProtocol, frameName(t))
	}
	t, p, err := fc.read()
	if err != nil {
		return fmt.Errorf("read hello: %w", err)
	}
	if t != frameHello {
		return fmt.Errorf("%w: %s frame instead of the hello", ErrProtocol, frameName(t))
	}
	var nh nodeHello
	if err := json.Unmarshal(p, &nh); err != nil {
		return fmt.Errorf("%w: hello: %w", ErrProtocol, err)
	}
	if nh.Node != node {
		return fmt.Errorf("%w: hello names node %q, the request %q", ErrProtocol, nh.Node, node)
	}
	zones := make(map[string]uint32, len(nh.Zones))
	for z, serial := range nh.Zones {
		zones[dns.CanonicalName(z)] = serial
	}
	ss := &session{
		s: s, fc: fc, rc: rc, wake: make(chan struct{}, 1),
		log:      s.log.With("node", node, "remote", r.RemoteAddr),
		belief:   zones,
		resentAt: map[string]uint64{},
	}
	stop := make(chan string, 1)
	ss.member = s.reg.Join(Member{Node: node, PoP: nh.PoP, Version: nh.Version, Key: keyName, Remote: r.RemoteAddr,
		Zones: cloneSerials(zones), At: time.Now()}, func(reason string) {
		select {
		case stop <- reason:
		default:
		}
	})
	if ls, ok := ss.member.(LevelSession); ok {
		if nh.Levels {
			ss.levels = ls.Levels()
		} else {
			ss.log.Info("the node does not take PoP levels (an older version): none is sent to it")
		}
	}
	if st, ok := ss.member.(SteeringSession); ok {
		if nh.Steering {
			ss.steering = st.Steering()
		} else {
			ss.log.Info("the node does not take steering states (an older version): none is sent to it")
		}
	}
	ss.log.Info("stream established", "pop", nh.PoP, "version", nh.Version, "key", keyName, "zones", len(zones), "levels", nh.Levels)
	readErr := make(chan error, 1)
	readDone := make(chan struct{})
	go func() {
		readErr <- ss.readLoop()
		close(readDone)
	}()
	err = ss.writeLoop(r.Context(), stop, readErr)
	// Unblock and wait for the reader before the handler returns (the
	// body may not be read after). The writer may have taken the reader's
	// error already (the read failed first): then err is that error, and
	// the channel stays empty.
	_ = rc.SetReadDeadline(time.Now())
	<-readDone
	select {
	case rerr := <-readErr:
		if err == nil && !errors.Is(rerr, errStopped) {
			err = rerr
		}
	default:
	}
	if errors.Is(err, errStopped) {
		err = nil
	}
	ss.member.Leave(err)
	return err
}

func cloneSerials(m map[string]uint32) map[string]uint32 {
	out := make(map[string]uint32, len(m))
	maps.Copy(out, m)
	return out
}

// Timeouts of a stream.
const (
	helloTimeout = 10 * time.Second
	writeTimeout = 30 * time.Second
	// silenceFactor heartbeat intervals without a frame end a stream.
	silenceFactor = 3
)

// errStopped: the stream ended on the server's side (bye sent).
var errStopped = errors.New("stream stopped")

// readLoop reads the node's frames until the stream ends.
func (ss *session) readLoop() error {
	silence := silenceFactor * ss.s.cfg.Heartbeat
	for {
		_ = ss.rc.SetReadDeadline(time.Now().Add(silence))
		t, p, err := ss.fc.read()
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		switch t {
		case frameHeartbeat:
			var hb Heartbeat
			if err := json.Unmarshal(p, &hb); err != nil {
				return fmt.Errorf("%w: heartbeat: %w", ErrProtocol, err)
			}
			ss.member.Heartbeat(hb)
			if len(hb.Serials) > 0 || len(hb.Removed) > 0 {
				ss.enqueue(nodeEvent{follow: hb.Serials, unfollow: hb.Removed})
			}
		case frameAck:
			var a ack
			if err := json.Unmarshal(p, &a); err != nil {
				return fmt.Errorf("%w: ack: %w", ErrProtocol, err)
			}
			a.Zone = dns.CanonicalName(a.Zone)
			if a.Unknown {
				ss.member.Unfollow(a.Zone)
			} else {
				ss.member.Serial(a.Zone, a.Serial)
			}
			ss.enqueue(nodeEvent{ack: &a, follow: a.Follow, unfollow: a.Unfollow})
		default:
			return fmt.Errorf("%w: unexpected %s frame from the node", ErrProtocol, frameName(t))
		}
	}
}

// enqueue hands an event to the writer without ever blocking: the writer
// may be busy writing to this very node, which may be waiting for its
// acks to be read.
func (ss *session) enqueue(ev nodeEvent) {
	ss.qmu.Lock()
	ss.queue = append(ss.queue, ev)
	ss.qmu.Unlock()
	select {
	case ss.wake <- struct{}{}:
	default:
	}
}

func (ss *session) drain() []nodeEvent {
	ss.qmu.Lock()
	defer ss.qmu.Unlock()
	q := ss.queue
	ss.queue = nil
	return q
}

// writeLoop pushes changes until the stream ends: first whatever the node
// misses (the catalog first), then each change as it commits.
func (ss *session) writeLoop(ctx context.Context, stop <-chan string, readErr <-chan error) error {
	events, unsubscribe := ss.s.src.Subscribe()
	defer unsubscribe()
	if err := ss.syncAll(ctx); err != nil {
		return err
	}
	keepalive := time.NewTicker(ss.s.cfg.Heartbeat)
	defer keepalive.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("request ended: %w", context.Cause(ctx))
		case <-ss.s.closing:
			return ss.bye(ByeShutdown)
		case reason := <-stop:
			return ss.bye(reason)
		case err := <-readErr:
			return err
		case ev, ok := <-events:
			if !ok {
				return ss.bye(ByeShutdown)
			}
			if _, follows := ss.belief[ev.Zone]; follows && !ev.Deleted && ss.belief[ev.Zone] != ev.Serial {
				if err := ss.push(ctx, ev.Zone); err != nil {
					return err
				}
			}
		case <-ss.wake:
			if err := ss.handle(ctx, ss.drain()); err != nil {
				return err
			}
		case l := <-ss.levels:
			b, err := json.Marshal(l)
			if err != nil {
				return err
			}
			if err := ss.write(frameLevel, b); err != nil {
				return err
			}
			ss.s.met.levels.Inc()
		case st := <-ss.steering:
			b, err := json.Marshal(st)
			if err != nil {
				return err
			}
			if err := ss.write(frameSteering, b); err != nil {
				return err
			}
			ss.s.met.steering.Inc()
		case <-keepalive.C:
			if err := ss.write(frameKeepalive); err != nil {
				return err
			}
		}
	}
}

// syncAll pushes every followed zone whose serial differs from the
// current one, the catalog first (its new members follow from it).
func (ss *session) syncAll(ctx context.Context) error {
	cur, err := ss.s.src.Zones(ctx)
	if err != nil {
		return fmt.Errorf("list zones: %w", err)
	}
	var todo []string
	for z, serial := range ss.belief {
		if c, ok := cur[z]; ok && (c != serial || serial == 0) {
			todo = append(todo, z)
		}
	}
	cat := ss.s.src.Catalog()
	slices.SortFunc(todo, func(a, b string) int {
		switch {
		case a == cat:
			return -1
		case b == cat:
			return 1
		}
		return strings.Compare(a, b)
	})
	return ss.pushAll(ctx, todo)
}

func (ss *session) pushAll(ctx context.Context, zones []string) error {
	for _, z := range zones {
		if err := ss.push(ctx, z); err != nil {
			return err
		}
	}
	return nil
}

// errWrite marks a failure to write to the node: the stream is over.
var errWrite = errors.New("write to the node")

func (ss *session) write(t byte, parts ...[]byte) error {
	_ = ss.rc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := ss.fc.write(t, parts...); err != nil {
		return fmt.Errorf("%w: %w", errWrite, err)
	}
	return nil
}

// push sends the transfer that brings zone from the node's serial to the
// current one, if they differ. Only a failure to write ends the stream; a
// zone that cannot be read is logged and left to the next change.
func (ss *session) push(ctx context.Context, zone string) error {
	from := ss.belief[zone]
	zp := zonePayload(zone)
	start := time.Now()
	var bytes int
	serial, sent, err := ss.s.src.Transfer(ctx, zone, from, from == 0, func(msg []byte) error {
		bytes += len(msg)
		return ss.write(frameXfr, zp, msg)
	})
	switch {
	case errors.Is(err, errWrite):
		return err
	case err != nil:
		ss.s.met.pushes.WithLabelValues("failed").Inc()
		ss.log.Warn("stream: no transfer for the node", "zone", zone, "from_serial", from, "err", err)
		return nil
	case !sent:
		ss.belief[zone] = serial
		return nil
	}
	ss.pushID++
	var tail [12]byte
	binary.BigEndian.PutUint32(tail[:4], serial)
	binary.BigEndian.PutUint64(tail[4:], ss.pushID)
	if err := ss.write(frameXfrEnd, zp, tail[:]); err != nil {
		return err
	}
	kind := "ixfr"
	if from == 0 {
		kind = "axfr"
	}
	ss.s.met.pushes.WithLabelValues(kind).Inc()
	ss.s.met.bytes.Add(float64(bytes))
	ss.belief[zone] = serial
	ss.member.Pushed(zone, serial)
	ss.log.Debug("pushed", "zone", zone, "from_serial", from, "serial", serial, "kind", kind, "bytes", bytes, "duration", time.Since(start))
	return nil
}

// handle applies what the node said: zones it follows or no longer
// follows, and refused transfers, which are sent again once from the
// serial the node holds.
func (ss *session) handle(ctx context.Context, evs []nodeEvent) error {
	var todo []string
	for _, ev := range evs {
		for z, serial := range ev.follow {
			// A zone the node starts following, or one it follows anew
			// without data (a catalog member re-created under a new
			// id): what the node says wins. A serial of a zone it has
			// says nothing new (a transfer may be on its way).
			z = dns.CanonicalName(z)
			if b, ok := ss.belief[z]; !ok || (serial == 0 && b != 0) {
				ss.belief[z] = serial
				todo = append(todo, z)
			}
		}
		for _, z := range ev.unfollow {
			delete(ss.belief, dns.CanonicalName(z))
		}
		a := ev.ack
		if a == nil || a.OK {
			continue
		}
		if a.Unknown {
			delete(ss.belief, a.Zone)
			continue
		}
		if a.Push < ss.resentAt[a.Zone] {
			continue // refused before the resend that answers it
		}
		if a.Push == ss.resentAt[a.Zone] && a.Push != 0 {
			ss.s.met.pushes.WithLabelValues("refused").Inc()
			ss.log.Warn("stream: the node refused the transfer sent again; its own refresh takes over", "zone", a.Zone, "serial", a.Serial, "err", a.Error)
			continue
		}
		ss.s.met.pushes.WithLabelValues("refused").Inc()
		ss.log.Info("stream: the node refused a transfer; sending it again from its serial", "zone", a.Zone, "serial", a.Serial, "full", a.Full, "err", a.Error)
		if a.Full {
			ss.belief[a.Zone] = 0
		} else {
			ss.belief[a.Zone] = a.Serial
		}
		ss.resentAt[a.Zone] = ss.pushID + 1 // the id of the next push
		todo = append(todo, a.Zone)
	}
	if len(todo) == 0 {
		return nil
	}
	cur, err := ss.s.src.Zones(ctx)
	if err != nil {
		return fmt.Errorf("list zones: %w", err)
	}
	var send []string
	for _, z := range todo {
		if c, ok := cur[z]; ok && (c != ss.belief[z] || ss.belief[z] == 0) {
			send = append(send, z)
		}
	}
	return ss.pushAll(ctx, send)
}

// bye tells the node why the stream ends.
func (ss *session) bye(reason string) error {
	b, _ := json.Marshal(bye{Reason: reason})
	if err := ss.write(frameBye, b); err != nil {
		return err
	}
	return errStopped
}

// serverMetrics are the stream server's collectors.
type serverMetrics struct {
	streams  prometheus.Gauge
	refused  *prometheus.CounterVec
	pushes   *prometheus.CounterVec
	bytes    prometheus.Counter
	levels   prometheus.Counter
	steering prometheus.Counter
}

func newServerMetrics() *serverMetrics {
	return &serverMetrics{
		streams: prometheus.NewGauge(prometheus.GaugeOpts{Name: "anycastd_stream_connections",
			Help: "Nodes' streams open now."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "anycastd_stream_refused_total",
			Help: "Streams refused, by reason (unknown_key, revoked, auth: the node's frames did not verify)."}, []string{"reason"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "anycastd_stream_pushes_total",
			Help: "Transfers pushed to nodes, by kind (ixfr, axfr), and pushes the nodes refused (refused) or that could not be made (failed)."}, []string{"kind"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "anycastd_stream_push_bytes_total",
			Help: "DNS message bytes pushed to nodes."}),
		levels: prometheus.NewCounter(prometheus.CounterOpts{Name: "anycastd_stream_levels_sent_total",
			Help: "PoP level frames sent to nodes (changes and refreshes)."}),
		steering: prometheus.NewCounter(prometheus.CounterOpts{Name: "anycastd_stream_steering_sent_total",
			Help: "Steering state frames sent to nodes."}),
	}
}

func (m *serverMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.streams, m.refused, m.pushes, m.bytes, m.levels, m.steering}
}
