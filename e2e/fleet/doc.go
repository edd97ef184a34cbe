// Package fleet tests the change stream and the fleet with the real
// binaries on loopback: `anycastd control` with a stream listener and no
// per-node configuration, and `anycastd node`s that know only its address
// and a key. TestStreamCut kills the control plane in the middle of a flow
// of changes and checks that every node converges with every change
// applied once; a node started afterwards joins the fleet by itself.
//
//	go test -v -run TestStreamCut ./e2e/fleet/
package fleet
