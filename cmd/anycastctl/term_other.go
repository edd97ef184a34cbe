//go:build !linux && !darwin && !freebsd && !netbsd && !openbsd && !dragonfly

package main

// isTerminal is false where it cannot be told: commands that ask for a
// confirmation then need their -yes flag.
func isTerminal(uintptr) bool { return false }
