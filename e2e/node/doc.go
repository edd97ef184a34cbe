// Package node holds the end-to-end tests of the real "anycastd node"
// binary: it is built once (or taken from $ANYCASTD_BIN), started as a
// separate process on loopback ports, and driven through its public
// surfaces only — DNS over UDP and TCP, signals, its configuration and zone
// files, its log and its Prometheus endpoint.
//
// The package holds tests only (Linux); run them with
//
//	go test ./e2e/node/
package node
