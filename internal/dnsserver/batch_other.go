//go:build !linux

package dnsserver

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// serveUDPBatch falls back to one datagram per system call off Linux.
func (s *Server) serveUDPBatch(u *net.UDPConn) error { return s.serveUDP(u) }

func (s *Server) serveUDP(u *net.UDPConn) error {
	w := s.h.NewWorker()
	buf := make([]byte, 65535)
	for {
		n, src, err := u.ReadFromUDPAddrPort(buf)
		if err != nil {
			if s.isClosed() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("udp read %s: %w", u.LocalAddr(), err)
		}
		start := time.Now()
		w.Src = src
		resp := w.Handle(buf[:n], UDP)
		if resp == nil {
			continue
		}
		if _, err := u.WriteToUDPAddrPort(resp, src); err != nil && s.isClosed() {
			return nil
		}
		if w.local != nil {
			w.local.observe(time.Since(start))
		}
	}
}
