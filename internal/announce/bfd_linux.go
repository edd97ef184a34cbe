package announce

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// unread reports whether the socket's receive queue holds data.
func unread(c net.PacketConn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	n := 0
	_ = rc.Control(func(fd uintptr) {
		v, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		if err == nil {
			n = v
		}
	})
	return n > 0
}
