// Package replicas tests several control-plane replicas end to end with
// the real binaries on loopback: one PostgreSQL (internal/testkit/pgtest),
// two `anycastd control` replicas on the same database, and two `anycastd
// node`s that list both replicas as catalog primaries and stream servers.
// TestReplicasNodes makes 2 replicas × 8 writers × 500 API changes on one
// zone, each writer through its own replica, and checks that every write
// is acknowledged once with a serial of its own, that both replicas hold
// every acknowledged write, that both nodes converge to the final serial
// and answer every acknowledged record, and that each node installed
// versions pushed by both replicas, including commits made on the other.
//
// The package holds tests only (Linux); without PostgreSQL they skip,
// except under CI=true, where they fail:
//
//	go test -v -run TestReplicasNodes ./e2e/replicas/
package replicas
