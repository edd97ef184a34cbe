// Package stream is the live link between a control plane and its nodes,
// shared by both ends: the control plane pushes every committed change of
// a zone to every node the moment it commits, and the nodes send
// heartbeats up the same stream.
//
// # Transport
//
// One long-lived HTTP/2 request per node and control plane: POST Path,
// the request body carrying the node's frames and the response body the
// control plane's, both open for the life of the stream. Unencrypted
// HTTP/2 with prior knowledge ("h2c", http:// addresses) on loopback and
// private networks, HTTP/2 over TLS (https://) where the operator
// configures certificates. HTTP/2 pings and keepalive frames (one per
// heartbeat interval) find a dead path; a side that hears nothing for three
// intervals drops the stream, and the node reconnects with backoff.
//
// # Authentication
//
// A node proves it holds one of the control plane's TSIG keys, and the
// control plane proves it holds the same key: a node with a valid key that
// connects is a member, with no per-node entry in the control plane's
// configuration. The request names the key, the node and a 32-byte random
// nonce; the control plane answers with its own nonce, and both derive the
// session key HMAC-SHA256(secret, "anycastd stream v1", key, node, nonces);
// the node's first frame is an empty one whose MAC proves the key, so that
// nothing large is read from a client that does not hold it.
// Every frame, the control plane's first included, carries an HMAC-SHA256
// under that key over its direction, its sequence number and its content:
// a party without the secret can neither join nor pose as the control
// plane, and a frame altered, replayed, reordered, dropped or injected ends
// the stream (ErrAuth). Unknown keys get 401, revoked nodes 403.
//
// # Changes
//
// The node's hello lists the serial of every secondary zone it follows (0
// for one without data). The control plane then sends, catalog zone first,
// each zone whose serial differs: the DNS messages of the IXFR answer from
// the node's serial, out of the same change log that serves IXFR (an
// AXFR-style answer when the log does not reach back), or the whole zone
// for a node without data; then, for each commit, the difference from what
// it last sent. The node applies each transfer through the same parser and
// validation as a transfer it asked for (zonesync), acknowledges the serial
// it holds and, when it refused the transfer (it holds another serial),
// the control plane sends it once more from that serial while the node
// also asks its primaries (NOTIFY, IXFR and AXFR stay the fallback, the SOA
// refresh the safety net). A transfer that ends at a serial the node has
// changes nothing, so a change is never applied twice, and a node that
// reconnects resumes from the serials it holds, so none is lost.
//
// # Heartbeats
//
// Every interval the node sends its Status (health, drain, announced
// prefixes, queries per second, TCP connections, zones) and the serials
// that changed since the previous heartbeat; the control plane records them
// in its Registry (package fleet).
//
// # Levels
//
// A node whose hello says it takes them (ClientConfig.OnLevel) is sent
// level frames: the level the control plane decided for its PoP, with a
// reason and a validity in milliseconds, at once on a change and as a
// refresh every decision interval (the registry's session implements
// LevelSession). The node keeps a level for its validity from receipt;
// without refreshes (the control plane or its monitors gone) it returns to
// normal.
//
// # Steering
//
// A node whose hello says it takes them (ClientConfig.OnSteering) is sent
// steering frames: the whole steering state (endpoint health, load, RTT by
// region) the control plane built from the monitors' endpoint checks, with
// its version, at once when it changes and when the node joins (the
// registry's session implements SteeringSession). A node of an older
// version says nothing and is sent none.
package stream
