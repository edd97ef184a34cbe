// Package lab holds the end-to-end tests of the anycast lab: a network of
// namespaces with BIRD 2 routers and the real anycastd on every PoP, probed
// from client namespaces (internal/lab). They assert what the lab
// scenarios measure: catchment is the nearest PoP, a drain loses nothing, a
// crash loses at most two queries per client at 100 q/s, a frozen node is
// routed around in under 0.5 s (BFD), a failed DNS listener in under 1 s,
// a PoP added at runtime serves traffic within 5 s (ECMP), and changes made
// through a control plane's API reach every PoP without disturbing what the
// clients are served; that with a monitor per region reporting to the
// control plane (issue #13), a PoP whose DNS is blackholed upstream is
// withdrawn and its clients move within 2 s (plain anycast loses them), an
// overloaded PoP is shed a step at a time with no query lost in the move
// and comes back with at most one level change per hold, and a monitor cut
// off or every PoP hot moves nothing; that bounded floods into A-pop (issue
// #15) leave the clients of B and C untouched and A's answered, with
// amplification under 1 and every PoP announced; that with two
// control-plane replicas on PostgreSQL (issue #17) the one a writer uses
// can be killed without losing an acknowledged write, the writes resuming
// through the other within 2 s and every PoP converging; that a validating
// unbound resolving a signed zone through the anycast address sees no
// SERVFAIL and no answer without AD while its ZSK and KSK roll (issue
// #16, unbound needed); and that anycastlab removes everything it built,
// also on Ctrl-C.
//
// They need root (network namespaces, TUN devices, nftables) and bird,
// birdc, ip and nft; without root they skip, unless CI=true, where they
// fail. anycastd and anycastlab are built once for the run (or taken from
// ANYCASTD_BIN and ANYCASTLAB_BIN).
//
//	go test -v ./e2e/lab/
package lab
