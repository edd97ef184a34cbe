//go:build !linux

package announce

import "net"

// unread reports whether the socket's receive queue holds data; unknown here.
func unread(net.PacketConn) bool { return false }
