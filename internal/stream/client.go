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
	"hash/fnv"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// PushResult is the outcome of applying a pushed transfer (Zones).
type PushResult struct {
	Serial   uint32 // the serial held afterwards, 0 = none
	Applied  bool   // the zone holds the pushed version now
	Unknown  bool   // not a secondary zone of the node
	NeedFull bool   // only the whole zone can apply
}

// Zones is the node's secondary zones (zonesync.Manager, through a small
// adapter).
type Zones interface {
	// Serials returns the serial of every secondary zone followed, the
	// catalog zone included, 0 for one without data yet.
	Serials() map[string]uint32
	// ApplyPushed applies the DNS messages of a transfer to a zone; the
	// error says why it did not.
	ApplyPushed(ctx context.Context, zone string, msgs [][]byte, source string) (PushResult, error)
	// Refresh makes a zone ask its primaries now (the fallback).
	Refresh(zone string) error
	// CatalogZone names the catalog zone followed, "" without one.
	CatalogZone() string
}

// ClientConfig configures a Client.
type ClientConfig struct {
	// URL is the control plane's stream address: http://host:port
	// (unencrypted HTTP/2) or https://host:port; Path is appended when
	// the URL has no path.
	URL string
	// KeyName and Secret are the TSIG key shared with the control plane.
	KeyName string
	Secret  []byte
	// Node is the node's identity (its NSID), PoP the PoP it belongs to.
	Node, PoP string
	Version   string
	// TLS configures https (nil: the system's roots).
	TLS *tls.Config
	// OnLevel, when set, is called with each level the control plane
	// sends for the node's PoP (from the stream's reader: it must not
	// block); nil = the node does not take levels, and the control plane
	// sends none.
	OnLevel func(Level)
	// OnSteering, when set, is called with each steering state the
	// control plane sends (from the stream's reader: it must not block);
	// nil = the node does not take them.
	OnSteering func(Steering)
}

// Client is the node's end of one control plane's stream: it keeps the
// stream up (reconnecting with backoff), applies what the control plane
// pushes and sends heartbeats. Create it with NewClient, then Run it.
type Client struct {
	cfg    ClientConfig
	url    string
	zones  Zones
	status func() Status
	log    *slog.Logger
	http   *http.Client

	live     atomic.Bool
	lastRead atomic.Int64 // unix nanoseconds of the last frame read
	hbEvery  atomic.Int64 // the server's heartbeat interval

	mu        sync.Mutex
	state     ClientState
	reported  map[string]uint32 // the serials the server was last told
	queries   uint64
	queriesAt time.Time
}

// ClientState is what a Client reports about its stream.
type ClientState struct {
	URL       string    `json:"url"`
	Connected bool      `json:"connected"`
	Since     time.Time `json:"since,omitzero"` // of the current stream, or of the last failure
	Server    string    `json:"server,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	Pushes    uint64    `json:"pushes"`
	Levels    uint64    `json:"levels"`   // level frames received
	Steering  uint64    `json:"steering"` // steering frames received
}

// NewClient checks cfg and returns a client; status is asked for each
// heartbeat.
func NewClient(cfg ClientConfig, zones Zones, status func() Status, logger *slog.Logger) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("stream: control plane address %q: want http://host:port or https://host:port", cfg.URL)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = Path
	}
	if len(cfg.Secret) == 0 || cfg.KeyName == "" {
		return nil, errors.New("stream: no key")
	}
	if !validNode(cfg.Node) {
		return nil, fmt.Errorf("stream: node name %q: want 1 to 255 printable characters", cfg.Node)
	}
	if zones == nil || status == nil {
		return nil, errors.New("stream: no zones or status")
	}
	var protos http.Protocols
	tr := &http.Transport{
		Protocols: &protos,
		// A dead path is noticed by the missing keepalives (3 intervals)
		// and by HTTP/2 pings.
		HTTP2:               &http.HTTP2Config{SendPingTimeout: 5 * time.Second, PingTimeout: 5 * time.Second},
		TLSHandshakeTimeout: 10 * time.Second,
	}
	if u.Scheme == "https" {
		protos.SetHTTP2(true)
		tr.TLSClientConfig = cfg.TLS
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
	} else {
		protos.SetUnencryptedHTTP2(true)
	}
	c := &Client{
		cfg: cfg, url: u.String(), zones: zones, status: status,
		log:  logger.With("component", "stream", "control", u.Host),
		http: &http.Client{Transport: tr},
	}
	c.state.URL = c.url
	return c, nil
}

// Live reports whether the stream is established and the control plane
// was heard from within three heartbeat intervals.
func (c *Client) Live() bool {
	if !c.live.Load() {
		return false
	}
	hb := time.Duration(c.hbEvery.Load())
	return time.Since(time.Unix(0, c.lastRead.Load())) < silenceFactor*hb
}

// State returns the stream's state.
func (c *Client) State() ClientState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Errors of the client.
var (
	// ErrRevoked: the control plane revoked this node.
	ErrRevoked = errors.New("revoked by the control plane")
)

// Backoff between connection attempts.
const (
	minBackoff     = 250 * time.Millisecond
	maxBackoff     = 5 * time.Second
	revokedBackoff = time.Minute
)

// Run keeps the stream up until ctx ends. Failures are logged, never
// returned: the node serves on without its control plane.
func (c *Client) Run(ctx context.Context) error {
	backoff := minBackoff
	failures := 0
	for {
		start := time.Now()
		established, err := c.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		c.mu.Lock()
		c.state.Connected, c.state.Since = false, time.Now()
		if err != nil {
			c.state.LastError = err.Error()
		}
		c.mu.Unlock()
		if established {
			backoff, failures = minBackoff, 0
			c.log.Warn("stream to the control plane ended; reconnecting", "after", time.Since(start).Round(time.Millisecond), "err", err)
		} else {
			failures++
			level := slog.LevelWarn
			if failures > 1 {
				level = slog.LevelDebug
			}
			c.log.Log(ctx, level, "stream to the control plane failed; retrying", "failures", failures, "retry_in", backoff, "err", err)
		}
		wait := backoff
		if errors.Is(err, ErrRevoked) {
			wait = revokedBackoff
		}
		wait = time.Duration(float64(wait) * (0.8 + 0.4*mrand.Float64())) //nolint:gosec // jitter, not a secret
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// session runs one stream; established reports whether it got past the
// handshake.
func (c *Client) session(ctx context.Context) (established bool, err error) {
	nonce := make([]byte, nonceLen)
	_, _ = cryptoRead(nonce)
	pr, pw := io.Pipe()
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer func() { _ = pr.CloseWithError(errors.New("stream closed")) }()
	req, err := http.NewRequestWithContext(sctx, http.MethodPost, c.url, pr)
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set(HeaderKey, c.cfg.KeyName)
	req.Header.Set(HeaderNode, c.cfg.Node)
	req.Header.Set(HeaderNonce, base64.StdEncoding.EncodeToString(nonce))
	hctx, hcancel := context.WithTimeout(sctx, helloTimeout)
	defer hcancel()
	stopHello := context.AfterFunc(hctx, func() {
		if hctx.Err() == context.DeadlineExceeded {
			cancel(errors.New("no answer to the stream request in time"))
		}
	})
	resp, err := c.http.Do(req)
	if err != nil {
		return false, fmt.Errorf("connect %s: %w", c.url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	// The transport notices a cancelled request only between writes of
	// the request body, which waits in the pipe: closing both ends is
	// what unblocks the reads and writes of a stream being torn down.
	stopClose := context.AfterFunc(sctx, func() {
		_ = pr.CloseWithError(errors.New("stream closed"))
		_ = resp.Body.Close()
	})
	defer stopClose()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		err := fmt.Errorf("connect %s: %s: %s", c.url, resp.Status, strings.TrimSpace(string(msg)))
		if resp.StatusCode == http.StatusForbidden {
			err = fmt.Errorf("%w: %w", ErrRevoked, err)
		}
		return false, err
	}
	fc := newFrameConn(resp.Body, pw, nil, false)
	head, payload, mac, err := fc.readRaw(maxFirstFrame)
	if err != nil {
		return false, fmt.Errorf("read challenge: %w", cmpCause(sctx, err))
	}
	if head[4] != frameChallenge || len(payload) < nonceLen {
		return false, fmt.Errorf("%w: %s frame instead of the challenge", ErrProtocol, frameName(head[4]))
	}
	fc.setKey(sessionKey(c.cfg.Secret, dns.CanonicalName(c.cfg.KeyName), c.cfg.Node, nonce, payload[:nonceLen]))
	if err := fc.verify(head, payload, mac); err != nil {
		return false, fmt.Errorf("the control plane does not hold key %s: %w", c.cfg.KeyName, err)
	}
	var sh serverHello
	if err := json.Unmarshal(payload[nonceLen:], &sh); err != nil {
		return false, fmt.Errorf("%w: server hello: %w", ErrProtocol, err)
	}
	hb := time.Duration(sh.HeartbeatMS) * time.Millisecond
	if hb <= 0 {
		hb = DefaultHeartbeat
	}
	serials := c.zones.Serials()
	hello, err := json.Marshal(nodeHello{Node: c.cfg.Node, PoP: c.cfg.PoP, Version: c.cfg.Version, Zones: serials, Levels: c.cfg.OnLevel != nil,
		Steering: c.cfg.OnSteering != nil})
	if err != nil {
		return false, err
	}
	if err := fc.write(frameAuth); err != nil {
		return false, err
	}
	if err := fc.write(frameHello, hello); err != nil {
		return false, err
	}
	stopHello()
	hcancel()
	c.mu.Lock()
	c.reported = serials
	c.state.Connected, c.state.Since, c.state.Server, c.state.LastError = true, time.Now(), sh.Server, ""
	c.mu.Unlock()
	c.hbEvery.Store(int64(hb))
	c.lastRead.Store(time.Now().UnixNano())
	c.live.Store(true)
	defer c.live.Store(false)
	c.log.Info("stream established", "server", sh.Server, "server_version", sh.Version, "zones", len(serials), "heartbeat", hb)

	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel(nil)
	// The watchdog ends a stream the control plane stopped talking on.
	wg.Go(func() {
		t := time.NewTicker(hb)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
				if time.Since(time.Unix(0, c.lastRead.Load())) > silenceFactor*hb {
					cancel(fmt.Errorf("nothing from the control plane for %s", silenceFactor*hb))
					return
				}
			}
		}
	})
	wg.Go(func() {
		t := time.NewTicker(hb)
		defer t.Stop()
		for {
			if err := c.heartbeat(fc); err != nil {
				cancel(err)
				return
			}
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
		}
	})
	ap := newAppliers(sctx, c, fc, &wg)
	err = c.readLoop(sctx, fc, ap)
	return true, cmpCause(sctx, err)
}

// cmpCause prefers the reason a context was cancelled with over the read
// error it caused.
func cmpCause(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

func cryptoRead(b []byte) (int, error) { return rand.Read(b) }

// readLoop reads the control plane's frames: transfers, keepalives, bye.
func (c *Client) readLoop(ctx context.Context, fc *frameConn, ap *appliers) error {
	var curZone string
	var msgs [][]byte
	catalog := dns.CanonicalName(c.zones.CatalogZone())
	for {
		t, p, err := fc.read()
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		c.lastRead.Store(time.Now().UnixNano())
		switch t {
		case frameKeepalive:
		case frameXfr:
			zone, msg, err := splitZone(p)
			if err != nil {
				return err
			}
			if curZone != "" && zone != curZone {
				return fmt.Errorf("%w: transfer of %s inside that of %s", ErrProtocol, zone, curZone)
			}
			curZone = zone
			msgs = append(msgs, msg)
		case frameXfrEnd:
			zone, rest, err := splitZone(p)
			if err != nil {
				return err
			}
			if zone != curZone || len(rest) != 12 {
				return fmt.Errorf("%w: end of a transfer of %s that did not start", ErrProtocol, zone)
			}
			j := job{zone: zone, serial: binary.BigEndian.Uint32(rest[:4]), push: binary.BigEndian.Uint64(rest[4:]), msgs: msgs}
			curZone, msgs = "", nil
			c.mu.Lock()
			c.state.Pushes++
			c.mu.Unlock()
			if dns.CanonicalName(zone) == catalog {
				// Applied before anything else is read: the transfers
				// of its new members come next and need their zones.
				if err := c.apply(ctx, fc, j, true); err != nil {
					return err
				}
				continue
			}
			if err := ap.send(ctx, j); err != nil {
				return err
			}
		case frameLevel:
			var l Level
			if err := json.Unmarshal(p, &l); err != nil {
				return fmt.Errorf("%w: level: %w", ErrProtocol, err)
			}
			c.mu.Lock()
			c.state.Levels++
			c.mu.Unlock()
			if c.cfg.OnLevel != nil {
				c.cfg.OnLevel(l)
			}
		case frameSteering:
			var st Steering
			if err := json.Unmarshal(p, &st); err != nil {
				return fmt.Errorf("%w: steering: %w", ErrProtocol, err)
			}
			c.mu.Lock()
			c.state.Steering++
			c.mu.Unlock()
			if c.cfg.OnSteering != nil {
				c.cfg.OnSteering(st)
			}
		case frameBye:
			var b bye
			_ = json.Unmarshal(p, &b)
			switch b.Reason {
			case ByeRevoked:
				return fmt.Errorf("%w: the stream was closed", ErrRevoked)
			case ByeReplaced:
				return errors.New("another stream of a node with this name replaced this one (are two nodes configured with the same identity?)")
			}
			return fmt.Errorf("the control plane closed the stream: %s", b.Reason)
		default:
			return fmt.Errorf("%w: unexpected %s frame from the control plane", ErrProtocol, frameName(t))
		}
	}
}

// job is a pushed transfer to apply.
type job struct {
	zone   string
	serial uint32
	push   uint64
	msgs   [][]byte
}

// apply applies one pushed transfer and acknowledges it; catalog also
// reports the zones it added or removed. Only a failure to write the ack
// is returned.
func (c *Client) apply(ctx context.Context, fc *frameConn, j job, catalog bool) error {
	start := time.Now()
	res, err := c.zones.ApplyPushed(ctx, j.zone, j.msgs, "stream "+c.url)
	a := ack{Zone: j.zone, Push: j.push, Serial: res.Serial, OK: err == nil && res.Applied, Full: res.NeedFull, Unknown: res.Unknown}
	switch {
	case err != nil:
		a.Error = err.Error()
		c.log.Warn("pushed transfer refused", "zone", j.zone, "serial", j.serial, "held", res.Serial, "err", err)
		if !res.NeedFull && !res.Unknown {
			// The zone asks its primaries too: whichever answers first
			// wins, the other finds it current.
			_ = c.zones.Refresh(j.zone)
		}
	case res.Unknown:
		c.log.Debug("pushed transfer of a zone not followed", "zone", j.zone)
	default:
		c.log.Debug("pushed transfer applied", "zone", j.zone, "serial", res.Serial, "duration", time.Since(start))
	}
	if catalog && a.OK {
		a.Follow, a.Unfollow = c.followChanges()
	}
	b, merr := json.Marshal(a)
	if merr != nil {
		return merr
	}
	return fc.write(frameAck, b)
}

// followChanges returns the zones followed now that the server was not
// told of, and those it was told of that are no longer followed, and
// records them as told.
func (c *Client) followChanges() (map[string]uint32, []string) {
	now := c.zones.Serials()
	c.mu.Lock()
	defer c.mu.Unlock()
	var follow map[string]uint32
	var unfollow []string
	for z, s := range now {
		// New zones, and zones followed anew from nothing (a member
		// re-created under a new id).
		if old, ok := c.reported[z]; !ok || (s == 0 && old != 0) {
			if follow == nil {
				follow = map[string]uint32{}
			}
			follow[z] = s
			c.reported[z] = s
		}
	}
	for z := range c.reported {
		if _, ok := now[z]; !ok {
			unfollow = append(unfollow, z)
			delete(c.reported, z)
		}
	}
	return follow, unfollow
}

// heartbeat sends the node's status and the serials that changed since
// the previous heartbeat.
func (c *Client) heartbeat(fc *frameConn) error {
	st := c.status()
	now := time.Now()
	serials := c.zones.Serials()
	hb := Heartbeat{Status: st}
	c.mu.Lock()
	if !c.queriesAt.IsZero() && st.Queries >= c.queries {
		if d := now.Sub(c.queriesAt).Seconds(); d > 0 {
			hb.QPS = float64(st.Queries-c.queries) / d
		}
	}
	c.queries, c.queriesAt = st.Queries, now
	for z, s := range serials {
		if old, ok := c.reported[z]; !ok || old != s {
			if hb.Serials == nil {
				hb.Serials = map[string]uint32{}
			}
			hb.Serials[z] = s
		}
	}
	for z := range c.reported {
		if _, ok := serials[z]; !ok {
			hb.Removed = append(hb.Removed, z)
		}
	}
	c.reported = serials
	c.mu.Unlock()
	b, err := json.Marshal(hb)
	if err != nil {
		return err
	}
	return fc.write(frameHeartbeat, b)
}

// appliers apply pushed transfers in parallel, each zone's in order: a
// zone whose loop is busy with a slow refresh holds up only the zones of
// its shard.
type appliers struct {
	shards []chan job
}

const applyShards = 8

func newAppliers(ctx context.Context, c *Client, fc *frameConn, wg *sync.WaitGroup) *appliers {
	ap := &appliers{shards: make([]chan job, applyShards)}
	for i := range ap.shards {
		ch := make(chan job, 64)
		ap.shards[i] = ch
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-ch:
					if err := c.apply(ctx, fc, j, false); err != nil {
						return // the stream is gone; the reader sees it too
					}
				}
			}
		})
	}
	return ap
}

func (ap *appliers) send(ctx context.Context, j job) error {
	h := fnv.New32a()
	_, _ = h.Write([]byte(dns.CanonicalName(j.zone)))
	select {
	case ap.shards[h.Sum32()%applyShards] <- j:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
