package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// probeSource returns the namespace path and the source address a client
// uses towards dst.
func (l *Lab) probeSource(client string, dst netip.Addr) (string, netip.Addr, error) {
	n, err := l.plan.node(client)
	if err != nil {
		return "", netip.Addr{}, err
	}
	if n.Role != RoleClient {
		return "", netip.Addr{}, fmt.Errorf("%s is a %s, not a client", client, n.Role)
	}
	src := n.Addr4
	if dst.Is6() {
		src = n.Addr6
	}
	return namespacePath(n.Namespace), src, nil
}

// TransportTo returns the transport name of network ("udp", "tcp") towards
// dst: "udp4", "tcp6"...
func TransportTo(network string, dst netip.Addr) string {
	if dst.Is4() {
		return network + "4"
	}
	return network + "6"
}

func qtypeFor(dst netip.Addr) uint16 {
	if dst.Is4() {
		return dns.TypeA
	}
	return dns.TypeAAAA
}

// Query sends one probe query from client to dst:53 over network ("udp"
// or "tcp") with the socket in the client's namespace, and returns what
// happened to it. The time of a TCP query does not include the connection
// set-up. An error means the query could not be sent at all.
func (l *Lab) Query(ctx context.Context, client, network string, dst netip.Addr, timeout time.Duration) (Answer, error) {
	nsPath, src, err := l.probeSource(client, dst)
	if err != nil {
		return Answer{}, err
	}
	q, err := probeQuery(qtypeFor(dst))
	if err != nil {
		return Answer{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var conn net.Conn
	err = inNamespace(nsPath, func() error {
		d := net.Dialer{}
		switch network {
		case "udp":
			d.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
		case "tcp":
			d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
		default:
			return fmt.Errorf("network %q: want udp or tcp", network)
		}
		var err error
		conn, err = d.DialContext(ctx, network, netip.AddrPortFrom(dst, DNSPort).String())
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return Answer{Sent: time.Now(), Err: "timeout (connect)"}, nil
		}
		return Answer{}, fmt.Errorf("query from %s to %s over %s: %w", client, dst, network, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	id := uint16(time.Now().UnixNano())
	q[0], q[1] = byte(id>>8), byte(id)

	if network == "tcp" {
		q = append([]byte{byte(len(q) >> 8), byte(len(q))}, q...)
	}
	a := Answer{Sent: time.Now()}
	_, err = conn.Write(q)
	if err != nil {
		return Answer{}, fmt.Errorf("query from %s to %s over %s: %w", client, dst, network, err)
	}
	buf := make([]byte, 65535)
	for {
		var n int
		if network == "tcp" {
			var m []byte
			m, err = readTCPMsg(conn)
			n = copy(buf, m)
		} else {
			n, err = conn.Read(buf)
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				a.Err = "timeout"
			} else {
				a.Err = err.Error()
			}
			return a, nil
		}
		rid, pop, perr := parseAnswer(buf[:n])
		if rid != id {
			continue // a stray answer
		}
		a.Recv, a.PoP = time.Now(), pop
		if perr != nil {
			a.Err = perr.Error()
		}
		return a, nil
	}
}

// readTCPMsg reads one length-prefixed DNS message.
func readTCPMsg(r io.Reader) ([]byte, error) {
	var l [2]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		return nil, err
	}
	b := make([]byte, int(l[0])<<8|int(l[1]))
	_, err := io.ReadFull(r, b)
	return b, err
}

// streamSockets is how many UDP sockets (source ports) a stream spreads its
// queries over, as a resolver does; with ECMP, routers hash the flows of
// one client over every equal path.
const streamSockets = 16

// StreamSpec says where a stream runs: from a client (its namespace and
// source address) to a destination, port 53.
type StreamSpec struct {
	Client string     `json:"client"`
	NS     string     `json:"ns"` // path of the client's namespace
	Src    netip.Addr `json:"src"`
	Dst    netip.Addr `json:"dst"`
}

// Stream is a steady flow of probe queries from one client at a fixed rate,
// each answered within a timeout or lost. Its sockets live in the client's
// namespace, in this process or in a probe process (ScenarioOptions.
// ProbeCommand) that reports every query as it goes; Stop ends it and
// returns every query's fate.
type Stream struct {
	Client    string
	Transport string
	Dst       netip.Addr
	interval  time.Duration
	timeout   time.Duration

	// local streams
	query   []byte
	conns   []*net.UDPConn
	stop    chan struct{}
	sender  sync.WaitGroup
	readers sync.WaitGroup
	onEvent func(Answer) // called after each send and each answer
	// remote streams
	group *probeProcess

	mu      sync.Mutex
	qs      []Answer
	pending map[uint16]int // query ID → index into qs
	stopped bool
}

// StartStream starts sending rate queries per second from client to dst:53
// over UDP in this process, each lost unless a good answer comes within
// timeout.
func (l *Lab) StartStream(client string, dst netip.Addr, rate int, timeout time.Duration) (*Stream, error) {
	nsPath, src, err := l.probeSource(client, dst)
	if err != nil {
		return nil, err
	}
	return startLocalStream(StreamSpec{Client: client, NS: nsPath, Src: src, Dst: dst}, rate, timeout, nil)
}

func checkRate(rate int) error {
	if rate <= 0 || rate > 10000 {
		return fmt.Errorf("stream rate %d: want 1..10000 queries per second", rate)
	}
	return nil
}

func startLocalStream(sp StreamSpec, rate int, timeout time.Duration, onEvent func(Answer)) (*Stream, error) {
	if err := checkRate(rate); err != nil {
		return nil, err
	}
	q, err := probeQuery(qtypeFor(sp.Dst))
	if err != nil {
		return nil, err
	}
	s := &Stream{
		Client: sp.Client, Transport: TransportTo("udp", sp.Dst), Dst: sp.Dst,
		interval: time.Second / time.Duration(rate), timeout: timeout, query: q,
		stop: make(chan struct{}), pending: map[uint16]int{}, onEvent: onEvent,
	}
	err = inNamespace(sp.NS, func() error {
		for range streamSockets {
			c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(sp.Src, 0)), net.UDPAddrFromAddrPort(netip.AddrPortFrom(sp.Dst, DNSPort)))
			if err != nil {
				return err
			}
			s.conns = append(s.conns, c)
		}
		return nil
	})
	if err != nil {
		for _, c := range s.conns {
			_ = c.Close()
		}
		return nil, fmt.Errorf("stream from %s to %s: %w", sp.Client, sp.Dst, err)
	}
	for _, c := range s.conns {
		s.readers.Add(1)
		go s.read(c)
	}
	s.sender.Add(1)
	go s.send()
	return s, nil
}

func (s *Stream) event(a Answer) {
	if s.onEvent != nil {
		s.onEvent(a)
	}
}

func (s *Stream) send() {
	defer s.sender.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	next := time.Now()
	q := make([]byte, len(s.query))
	for seq := 0; ; seq++ {
		if d := time.Until(next); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-s.stop:
				return
			}
		} else {
			select {
			case <-s.stop:
				return
			default:
			}
		}
		next = next.Add(s.interval)
		copy(q, s.query)
		id := uint16(seq)
		q[0], q[1] = byte(id>>8), byte(id)
		s.mu.Lock()
		s.qs = append(s.qs, Answer{Seq: seq, Sent: time.Now()})
		s.pending[id] = seq
		s.mu.Unlock()
		_, err := s.conns[seq%len(s.conns)].Write(q)
		s.mu.Lock()
		if err != nil {
			s.qs[seq].Err = "send: " + err.Error()
			delete(s.pending, id)
		}
		a := s.qs[seq]
		s.mu.Unlock()
		s.event(a)
	}
}

func (s *Stream) read(c *net.UDPConn) {
	defer s.readers.Done()
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		now := time.Now()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// ICMP unreachable (nobody listens where the route leads)
			// surfaces here; the query it concerns times out.
			continue
		}
		id, pop, perr := parseAnswer(buf[:n])
		s.mu.Lock()
		seq, ok := s.pending[id]
		var a Answer
		if ok {
			delete(s.pending, id)
			q := &s.qs[seq]
			q.Recv, q.PoP = now, pop
			switch {
			case now.Sub(q.Sent) > s.timeout:
				q.Err = "late"
			case perr != nil:
				q.Err = perr.Error()
			}
			a = *q
		}
		s.mu.Unlock()
		if ok {
			s.event(a)
		}
	}
}

// apply records what a probe process reported about one query: that it
// was sent, or its answer (which repeats the send time).
func (s *Stream) apply(a Answer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.Seq < 0 || a.Seq > 10_000_000 {
		return
	}
	for len(s.qs) <= a.Seq {
		s.qs = append(s.qs, Answer{Seq: len(s.qs)})
	}
	q := &s.qs[a.Seq]
	q.Sent = a.Sent
	if !a.Recv.IsZero() || a.Err != "" {
		q.Recv, q.PoP, q.Err = a.Recv, a.PoP, a.Err
	}
}

// Stop stops sending, waits for the answers still due, closes the sockets
// and returns the fate of every query in order. It may be called more than
// once.
func (s *Stream) Stop() []Answer {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return s.Answers()
	}
	s.stopped = true
	s.mu.Unlock()
	if s.group != nil {
		s.group.stop()
	} else {
		close(s.stop)
		s.sender.Wait()
		time.Sleep(s.timeout + 20*time.Millisecond)
		for _, c := range s.conns {
			_ = c.Close() // ends its reader
		}
		s.readers.Wait()
	}
	s.mu.Lock()
	for i := range s.qs {
		if s.qs[i].Recv.IsZero() && s.qs[i].Err == "" {
			s.qs[i].Err = "timeout"
		}
	}
	s.mu.Unlock()
	return s.Answers()
}

// Answers returns a copy of the queries so far.
func (s *Stream) Answers() []Answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Answer, len(s.qs))
	copy(out, s.qs)
	return out
}

// Last returns the most recent good answer (zero Answer if none).
func (s *Stream) Last() Answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	var last Answer
	for i := len(s.qs) - 1; i >= 0 && i >= len(s.qs)-int(2*s.timeout/s.interval)-2; i-- {
		if a := s.qs[i]; a.OK() && a.Recv.After(last.Recv) {
			last = a
		}
	}
	return last
}
