// Package listen is the one DNS listener of anycastd, under the node's DNS
// server (dnsserver) and the control plane's transfer server (xfrout):
// binding UDP sockets and a TCP listener on the same port of each address
// (retrying when port 0 gave UDP a port TCP cannot have) — or, with a TLS
// configuration, a TCP listener alone whose connections speak TLS (DNS
// over TLS, RFC 7858, and zone transfers over it, RFC 9103) — the TCP accept
// loop with its limits — total and per source prefix, the connection idle
// longest evicted or the newcomer refused, a check of the source at accept
// time, a shorter idle timeout under pressure, a pause when the process is
// out of file descriptors — and RFC 7766 framing: length-prefixed
// messages, pipelined, answers flushed when no whole query is waiting.
//
// What a message means is the caller's: the TCP side hands each one to a
// Handler, and the UDP sockets are the caller's to read (dnsserver with
// recvmmsg, xfrout with ServeUDP).
package listen

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Config says what to bind.
type Config struct {
	Listen []netip.AddrPort
	// UDPSockets is the number of UDP sockets per address, bound with
	// SO_REUSEPORT so that the kernel spreads datagrams over them; 0 = 1.
	UDPSockets int
	// ReusePort sets SO_REUSEPORT on every socket even with one UDP
	// socket per address (it is always set with more).
	ReusePort bool
	// TLS, when set, makes the listener a TLS one: no UDP sockets, and
	// every TCP connection is a TLS server connection with this
	// configuration (its certificate, typically from a Certificates'
	// GetCertificate so that a reload reaches new connections, and its
	// ALPN protocols), the handshake bounded by the idle timeout. The
	// messages inside are framed as over TCP.
	TLS *tls.Config
}

// Listener holds the bound sockets and serves TCP on them. Create it with
// Bind; Close it once.
type Listener struct {
	addrs []netip.AddrPort
	udp   []*net.UDPConn
	tcp   []*net.TCPListener
	tcpServer
}

// TLS reports whether the listener serves TLS (Config.TLS was set).
func (l *Listener) TLS() bool { return l.tls != nil }

// bindTries bounds the attempts to bind port 0 on UDP and TCP alike.
const bindTries = 10

// Bind opens the UDP sockets and the TCP listener of every address. With
// port 0 the kernel picks the UDP port and TCP takes the same number,
// which may be in use for TCP: then it tries again with another port. On
// an error it closes what it opened.
func Bind(ctx context.Context, cfg Config) (*Listener, error) {
	if len(cfg.Listen) == 0 {
		return nil, errors.New("no listen address")
	}
	l := &Listener{}
	l.init()
	l.tls = cfg.TLS
	for _, ap := range cfg.Listen {
		var err error
		for try := 1; ; try++ {
			err = l.bindOnce(ctx, ap, cfg)
			if err == nil || ap.Port() != 0 || try == bindTries || !errors.Is(err, syscall.EADDRINUSE) {
				break
			}
		}
		if err != nil {
			l.Close()
			return nil, err
		}
	}
	return l, nil
}

func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

func (l *Listener) bindOnce(ctx context.Context, ap netip.AddrPort, cfg Config) error {
	var lc net.ListenConfig
	n := max(cfg.UDPSockets, 1)
	if cfg.TLS != nil {
		n = 0 // TLS is over TCP alone
	}
	if n > 1 || cfg.ReusePort {
		lc.Control = reusePort
	}
	unet, tnet := "udp4", "tcp4"
	if ap.Addr().Is6() && !ap.Addr().Is4In6() {
		unet, tnet = "udp6", "tcp6"
	}
	var udps []*net.UDPConn
	closeUDP := func() {
		for _, u := range udps {
			_ = u.Close()
		}
	}
	for i := range n {
		pc, err := lc.ListenPacket(ctx, unet, ap.String())
		if err != nil {
			closeUDP()
			return fmt.Errorf("listen udp %s: %w", ap, err)
		}
		u := pc.(*net.UDPConn)
		if i == 0 && ap.Port() == 0 {
			ap = netip.AddrPortFrom(ap.Addr(), uint16(u.LocalAddr().(*net.UDPAddr).Port))
		}
		udps = append(udps, u)
	}
	ln, err := lc.Listen(ctx, tnet, ap.String())
	if err != nil {
		closeUDP()
		return fmt.Errorf("listen tcp %s: %w", ap, err)
	}
	if ap.Port() == 0 { // TLS: no UDP socket chose the port
		ap = netip.AddrPortFrom(ap.Addr(), uint16(ln.Addr().(*net.TCPAddr).Port))
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.udp = append(l.udp, udps...)
	l.tcp = append(l.tcp, ln.(*net.TCPListener))
	l.addrs = append(l.addrs, ap)
	return nil
}

// Addrs returns the bound addresses, with the real port where 0 was asked;
// none for a nil Listener (not bound yet).
func (l *Listener) Addrs() []netip.AddrPort {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]netip.AddrPort(nil), l.addrs...)
}

// UDP returns the UDP sockets, UDPSockets of each address in turn.
func (l *Listener) UDP() []*net.UDPConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*net.UDPConn(nil), l.udp...)
}

// Close closes every socket and TCP connection: ServeTCP, ServeUDP and
// the caller's UDP loops end. It may be called more than once.
func (l *Listener) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	for _, u := range l.udp {
		_ = u.Close()
	}
	for _, t := range l.tcp {
		_ = t.Close()
	}
	for c := range l.conns {
		_ = c.tcp.Close()
	}
}

// Closed reports whether Close was called: a read error on a socket after
// it is the end, not a failure.
func (l *Listener) Closed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}

// ServeTCP accepts and serves the TCP connections of every address with h
// until Close, then waits for every connection's goroutine to end. A
// listener that fails otherwise closes everything and its error is
// returned.
func (l *Listener) ServeTCP(h Handler) error {
	l.mu.Lock()
	lns := append([]*net.TCPListener(nil), l.tcp...)
	l.mu.Unlock()
	var wg sync.WaitGroup
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		wg.Go(func() {
			if err := l.accept(ln, h, &wg); err != nil {
				errc <- err
				l.Close()
			}
		})
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// UDPReply sends the answer to the datagram being handled.
type UDPReply struct {
	u   *net.UDPConn
	src netip.AddrPort
}

// Send writes resp to the datagram's source.
func (r UDPReply) Send(resp []byte) error {
	_, err := r.u.WriteToUDPAddrPort(resp, r.src)
	return err
}

// ServeUDP reads the datagrams of u one at a time until Close and hands
// each to h with its source (IPv4 unmapped) and the means to answer it;
// msg is valid until h returns.
func (l *Listener) ServeUDP(u *net.UDPConn, h func(msg []byte, src netip.AddrPort, reply UDPReply)) error {
	buf := make([]byte, 65535)
	for {
		n, src, err := u.ReadFromUDPAddrPort(buf)
		if err != nil {
			if l.Closed() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("udp read %s: %w", u.LocalAddr(), err)
		}
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		h(buf[:n], src, UDPReply{u, src})
	}
}
