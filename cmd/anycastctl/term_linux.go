package main

import "golang.org/x/sys/unix"

// isTerminal reports whether fd is a terminal (a character device such as
// /dev/null is not).
func isTerminal(fd uintptr) bool {
	_, err := unix.IoctlGetTermios(int(fd), unix.TCGETS) //nolint:gosec // a file descriptor fits in an int
	return err == nil
}
