// Package monitor holds the end-to-end test of "anycastd monitor": two
// real "anycastd node" processes on different loopback addresses and one
// monitor probing them, driven through the monitor's /v1/view and the
// nodes' signals only; and of the loop of application-layer anycast
// (levels_test.go): a control plane deciding PoP levels from two monitors'
// reports, a node with BGP (to a router in the test) that follows them and
// one without BGP, and a gray failure only the monitors can see.
//
//	go test ./e2e/monitor/
package monitor
