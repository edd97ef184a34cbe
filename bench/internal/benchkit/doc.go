// Package benchkit holds what the benchmarks under bench/ share: the
// generated benchmark zone, a small DNS wire codec for probing the servers
// from outside, starting and stopping server processes (knotd's
// configuration among them), reading their accounting from /proc, building
// anycastd, and plain-text tables.
package benchkit
