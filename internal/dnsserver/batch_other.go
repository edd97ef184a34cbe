//go:build !linux

package dnsserver

import (
	"net"
	"net/netip"
	"time"

	"github.com/anycastdns/anycastdns/internal/listen"
)

// serveUDPBatch falls back to one datagram per system call off Linux.
func (s *Server) serveUDPBatch(lis *listen.Listener, u *net.UDPConn) error {
	w := s.h.NewWorker()
	w.setUDP(u)
	local := udpLocal(u)
	return lis.ServeUDP(u, func(msg []byte, src netip.AddrPort, reply listen.UDPReply) {
		start := time.Now()
		resp, _ := w.Handle(msg, src, UDP)
		if resp == nil {
			return
		}
		_ = reply.Send(resp)
		w.Tap(msg, resp, local, UDP, start)
		if w.local != nil {
			w.local.observe(time.Since(start))
		}
	})
}
