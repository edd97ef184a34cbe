// Package monitor holds the end-to-end test of "anycastd monitor": two
// real "anycastd node" processes on different loopback addresses and one
// monitor probing them, driven through the monitor's /v1/view and the
// nodes' signals only.
//
//	go test ./e2e/monitor/
package monitor
