// Package catalog measures what issue #5 asks of the control plane at scale:
// the real `anycastd control` on loopback gets 10,000 small zones through its
// REST API, then a new, empty `anycastd node` is started as a catalog
// consumer of it with a BGP session to an in-process GoBGP router
// (internal/announce/bgptest). The test
// reports how long the zones took to create, how long the node took to serve
// every one of them and to announce the anycast prefix, and the same for a
// restart of the node from its data directory with the primary stopped.
//
//	go test -v -run TestCatalog10k ./e2e/catalog/
//
// CATALOG_ZONES=N changes the number of zones (1,000 with -short);
// CATALOG_LOGDIR=DIR keeps the logs of the control plane and the node there.
// Only correctness is asserted (every zone served with its serial, the prefix
// not announced before every zone is served) and generous bounds; the
// figures are logged. docs/architecture.md records them.
package catalog
