//go:build !linux

package dnsserver

import "net"

// serveUDPBatch falls back to one datagram per system call off Linux.
func (s *Server) serveUDPBatch(u *net.UDPConn) error { return s.serveUDP(u) }
