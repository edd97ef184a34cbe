package lab

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// PingResult is the outcome of a series of ICMP echoes.
type PingResult struct {
	Sent int
	RTTs []time.Duration // of the echoes answered, in order
}

// Min is the smallest round-trip time, 0 when nothing came back.
func (r PingResult) Min() time.Duration {
	var m time.Duration
	for i, d := range r.RTTs {
		if i == 0 || d < m {
			m = d
		}
	}
	return m
}

// Avg is the mean round-trip time, 0 when nothing came back.
func (r PingResult) Avg() time.Duration {
	if len(r.RTTs) == 0 {
		return 0
	}
	var s time.Duration
	for _, d := range r.RTTs {
		s += d
	}
	return s / time.Duration(len(r.RTTs))
}

// Ping sends count ICMP echo requests from node to dst, one every interval,
// from the node's own address of dst's family, and waits up to timeout for
// each answer. It needs no ping binary: the socket is opened inside the
// node's namespace.
func (l *Lab) Ping(ctx context.Context, node string, dst netip.Addr, count int, interval, timeout time.Duration) (PingResult, error) {
	n, err := l.plan.node(node)
	if err != nil {
		return PingResult{}, err
	}
	src := n.Addr4
	if dst.Is6() {
		src = n.Addr6
	}
	return ping(ctx, namespacePath(n.Namespace), src, dst, count, interval, timeout)
}

func ping(ctx context.Context, nsPath string, src, dst netip.Addr, count int, interval, timeout time.Duration) (PingResult, error) {
	network, proto := "ip4:icmp", 1
	var reqType, replyType icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if dst.Is6() {
		network, proto = "ip6:ipv6-icmp", 58
		reqType, replyType = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	var conn *icmp.PacketConn
	err := inNamespace(nsPath, func() error {
		var err error
		conn, err = icmp.ListenPacket(network, src.String())
		return err
	})
	if err != nil {
		return PingResult{}, fmt.Errorf("ping %s from %s: %w", dst, src, err)
	}
	defer func() { _ = conn.Close() }()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()

	id := int(rand.Uint32() & 0xffff) //nolint:gosec // an echo identifier, not a secret
	var res PingResult
	buf := make([]byte, 1500)
	for seq := range count {
		if seq > 0 {
			select {
			case <-ctx.Done():
				return res, context.Cause(ctx)
			case <-time.After(interval):
			}
		}
		msg := icmp.Message{Type: reqType, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("anycastlab")}}
		b, err := msg.Marshal(nil) // the kernel fills in the ICMPv6 checksum
		if err != nil {
			return res, fmt.Errorf("ping: %w", err)
		}
		sent := time.Now()
		if _, err := conn.WriteTo(b, &net.IPAddr{IP: netIP(dst)}); err != nil {
			return res, fmt.Errorf("ping %s from %s: %w", dst, src, err)
		}
		res.Sent++
		if err := conn.SetReadDeadline(sent.Add(timeout)); err != nil {
			return res, err
		}
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
					break // lost
				}
				if ctx.Err() != nil {
					return res, context.Cause(ctx)
				}
				return res, fmt.Errorf("ping %s from %s: %w", dst, src, err)
			}
			rtt := time.Since(sent)
			m, err := icmp.ParseMessage(proto, buf[:n])
			if err != nil || m.Type != replyType {
				continue
			}
			echo, ok := m.Body.(*icmp.Echo)
			fromAddr, _ := netip.ParseAddr(from.String())
			if !ok || echo.ID != id || echo.Seq != seq || fromAddr != dst {
				continue // another ping's answer, or a late one
			}
			res.RTTs = append(res.RTTs, rtt)
			break
		}
	}
	return res, nil
}
