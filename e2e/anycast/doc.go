// Package anycast holds the end-to-end tests of issue 3: the real
// "anycastd node" binary with its BGP speaker and health checks, against
// BIRD 2 as the router, in two network namespaces the tests create.
//
//	namespace R (router)                     namespace N (node)
//	BIRD 2, 100.64.0.1/30,      veth         anycastd node, 100.64.0.2/30,
//	2001:db8:ff::1/64        <-------->      2001:db8:ff::2/64,
//	kernel FIB fed by BIRD                   lo: 192.0.2.53/32, 2001:db8::53/128
//
// The node announces 192.0.2.53/32 and 2001:db8::53/128 (the IPv6 prefix
// over the IPv4 session, with next hop 2001:db8:ff::2) while it is healthy
// and not drained. The tests query DNS from R through the route, and read
// the router's view from BIRD (birdc show route) and from R's kernel FIB.
//
// The tests need root, BIRD 2 (bird, birdc), iproute2 and nftables; they
// skip without them, and fail instead when CI=true. Run them with
//
//	go test -v ./e2e/anycast/
//	ANYCAST_E2E_CYCLES=20 go test -v -run 'Freeze' -timeout 30m ./e2e/anycast/
//
// See README.md for what each test shows and the figures measured.
package anycast
