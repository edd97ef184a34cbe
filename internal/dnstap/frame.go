package dnstap

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	pb "github.com/dnstap/golang-dnstap"
	framestream "github.com/farsightsec/golang-framestream"
	"google.golang.org/protobuf/proto"

	"github.com/anycastdns/anycastdns/internal/dnsserver"
)

// Collector is where the dnstap output goes: a Unix socket or a TCP
// address, spoken to with the bidirectional Frame Streams protocol
// (content type protobuf:dnstap.Dnstap), as BIND, Knot and Unbound do.
type Collector struct {
	Network string // "unix" or "tcp"
	Address string
}

func (c Collector) String() string { return c.Network + ":" + c.Address }

// Timing of the dnstap output.
const (
	// ioTimeout bounds a connection attempt, the handshake and each
	// write: a collector that stops reading fills the queue (counted
	// drops), it never blocks anything but the output's worker.
	ioTimeout = 5 * time.Second
	// minBackoff and maxBackoff bound the wait between connection
	// attempts, doubled after each failure (with jitter).
	minBackoff = 100 * time.Millisecond
	maxBackoff = 10 * time.Second
)

// frameOutput is the dnstap output's worker: it takes the records from
// its queue, encodes each as an AUTH_QUERY and an AUTH_RESPONSE message and
// writes them to the collector, connecting again with backoff when the
// collector goes away.
type frameOutput struct {
	to                Collector
	identity, version []byte
	q                 *Queue
	m                 *outputMetrics
	log               *slog.Logger
	backoff           func(attempt int) time.Duration // nil: backoffDelay

	// Encoding state, reused for every message.
	dt          pb.Dnstap
	msg         pb.Message
	typ         pb.Dnstap_Type
	mtype       pb.Message_Type
	family      pb.SocketFamily
	proto       pb.SocketProtocol
	qport       uint32
	rport       uint32
	qsec, rsec  uint64
	qnsec, rnsc uint32
	qaddr       [16]byte
	raddr       [16]byte
	buf         []byte
}

func newFrameOutput(to Collector, identity, version string, q *Queue, m *outputMetrics, logger *slog.Logger) *frameOutput {
	o := &frameOutput{to: to, identity: []byte(identity), version: []byte(version), q: q, m: m,
		log: logger.With("output", "dnstap", "collector", to.String())}
	o.typ = pb.Dnstap_MESSAGE
	o.dt.Type = &o.typ
	o.dt.Message = &o.msg
	if len(o.identity) > 0 {
		o.dt.Identity = o.identity
	}
	if len(o.version) > 0 {
		o.dt.Version = o.version
	}
	return o
}

// backoffDelay is the wait before connection attempt n (1 = the first
// retry): doubling from minBackoff up to maxBackoff, less up to a quarter
// at random, so that the nodes of a PoP do not reconnect in step.
func backoffDelay(n int) time.Duration {
	d := minBackoff
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	d = min(d, maxBackoff)
	return d - time.Duration(rand.Int64N(int64(d/4)+1)) //nolint:gosec // jitter, not a secret
}

// run connects, writes until the connection fails, and connects again,
// until ctx ends; then it writes what is queued (when connected) and
// closes the stream.
func (o *frameOutput) run(ctx context.Context) {
	delay := o.backoff
	if delay == nil {
		delay = backoffDelay
	}
	failures := 0
	for {
		conn, w, err := o.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			// The first failure is worth a warning; the retries of a
			// collector that stays away only at debug level.
			lvl := slog.LevelDebug
			if failures == 1 {
				lvl = slog.LevelWarn
			}
			d := delay(failures)
			o.log.Log(ctx, lvl, "dnstap: cannot reach the collector, retrying", "err", err, "attempt", failures, "retry_in", d.Round(time.Millisecond))
			select {
			case <-ctx.Done():
				return
			case <-time.After(d):
			}
			continue
		}
		if failures > 0 {
			o.log.Info("dnstap: connected to the collector", "attempts", failures+1)
		} else {
			o.log.Info("dnstap: connected to the collector")
		}
		failures = 0
		o.m.connected.Set(1)
		err = o.serve(ctx, w)
		o.m.connected.Set(0)
		if ctx.Err() != nil {
			o.finish(w)
			_ = conn.Close()
			return
		}
		_ = conn.Close()
		o.log.Warn("dnstap: collector connection lost, reconnecting", "err", err)
	}
}

// connect dials the collector and does the Frame Streams handshake.
func (o *frameOutput) connect(ctx context.Context) (net.Conn, *framestream.Writer, error) {
	d := net.Dialer{Timeout: ioTimeout}
	conn, err := d.DialContext(ctx, o.to.Network, o.to.Address)
	if err != nil {
		return nil, nil, err
	}
	w, err := framestream.NewWriter(conn, &framestream.WriterOptions{
		ContentTypes: [][]byte{pb.FSContentType}, Bidirectional: true, Timeout: ioTimeout,
	})
	if err != nil {
		_ = conn.Close()
		return nil, nil, fmt.Errorf("frame streams handshake: %w", err)
	}
	return conn, w, nil
}

// serve writes the queued records until ctx ends or a write fails. The
// frames are flushed whenever the queue is empty; a record counts as
// written once its frames are flushed, as lost (write_error) when the
// flush or a write fails.
func (o *frameOutput) serve(ctx context.Context, w *framestream.Writer) error {
	pending := 0 // records written into w's buffer since the last flush
	poll := time.NewTimer(pollInterval)
	defer poll.Stop()
	fail := func(err error) error {
		o.m.writeErrors.Add(float64(pending))
		return err
	}
	for {
		r := o.q.next()
		if r == nil {
			if err := w.Flush(); err != nil {
				return fail(fmt.Errorf("flush: %w", err))
			}
			o.m.written.Add(float64(pending))
			pending = 0
			if r = o.q.wait(ctx, poll); r == nil {
				return nil
			}
		}
		err := o.write(w, r)
		o.q.put(r)
		pending++
		if err != nil {
			return fail(err)
		}
	}
}

// finish writes what is still queued, then ends the stream (STOP, and the
// collector's FINISH), each write bounded by ioTimeout.
func (o *frameOutput) finish(w *framestream.Writer) {
	pending := 0
	for r := o.q.next(); r != nil; r = o.q.next() {
		err := o.write(w, r)
		o.q.put(r)
		pending++
		if err != nil {
			o.m.writeErrors.Add(float64(pending))
			return
		}
	}
	if err := w.Flush(); err != nil {
		o.m.writeErrors.Add(float64(pending))
		return
	}
	o.m.written.Add(float64(pending))
	if err := w.Close(); err != nil {
		o.log.Debug("dnstap: closing the stream", "err", err)
	}
}

// write encodes r as an AUTH_QUERY and an AUTH_RESPONSE frame.
func (o *frameOutput) write(w *framestream.Writer, r *record) error {
	o.setMessage(r, pb.Message_AUTH_QUERY)
	if err := o.writeFrame(w); err != nil {
		return err
	}
	o.setMessage(r, pb.Message_AUTH_RESPONSE)
	return o.writeFrame(w)
}

func (o *frameOutput) writeFrame(w *framestream.Writer) error {
	var err error
	o.buf, err = proto.MarshalOptions{}.MarshalAppend(o.buf[:0], &o.dt)
	if err != nil {
		return fmt.Errorf("encode dnstap message: %w", err)
	}
	if _, err := w.WriteFrame(o.buf); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

// setMessage fills the reused message with r as a message of type t.
func (o *frameOutput) setMessage(r *record, t pb.Message_Type) {
	m := &o.msg
	*m = pb.Message{}
	o.mtype = t
	m.Type = &o.mtype
	o.fillAddrs(m, r)
	qt := r.received
	if qt.IsZero() {
		qt = r.answered
	}
	o.qsec, o.qnsec = uint64(qt.Unix()), uint32(qt.Nanosecond())
	m.QueryTimeSec, m.QueryTimeNsec = &o.qsec, &o.qnsec
	if t == pb.Message_AUTH_QUERY {
		m.QueryMessage = r.query()
		return
	}
	o.rsec, o.rnsc = uint64(r.answered.Unix()), uint32(r.answered.Nanosecond())
	m.ResponseTimeSec, m.ResponseTimeNsec = &o.rsec, &o.rnsc
	m.ResponseMessage = r.response()
}

// fillAddrs sets the addresses, ports, family and protocol of m from r,
// in the output's own variables (no garbage a message).
func (o *frameOutput) fillAddrs(m *pb.Message, r *record) {
	client, server := r.client.Addr(), r.server.Addr()
	o.family = pb.SocketFamily_INET6
	if client.Is4() {
		o.family = pb.SocketFamily_INET
	}
	m.SocketFamily = &o.family
	o.proto = pb.SocketProtocol_UDP
	if r.transport == dnsserver.TCP {
		o.proto = pb.SocketProtocol_TCP
	}
	m.SocketProtocol = &o.proto
	if r.client.IsValid() {
		m.QueryAddress = addrBytes(&o.qaddr, client)
		o.qport = uint32(r.client.Port())
		m.QueryPort = &o.qport
	}
	// The server's address only when of the client's family (a wildcard
	// socket's unspecified address says nothing).
	if r.server.IsValid() && server.Is4() == client.Is4() && !server.IsUnspecified() {
		m.ResponseAddress = addrBytes(&o.raddr, server)
	}
	if r.server.IsValid() {
		o.rport = uint32(r.server.Port())
		m.ResponsePort = &o.rport
	}
}

// addrBytes is a's 4 or 16 bytes in buf.
func addrBytes(buf *[16]byte, a netip.Addr) []byte {
	if a.Is4() {
		b := a.As4()
		return append(buf[:0], b[:]...)
	}
	b := a.As16()
	return append(buf[:0], b[:]...)
}
