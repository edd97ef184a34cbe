// Package xfr holds interoperability tests of the node as a secondary:
// Knot DNS (the Debian package knot) is the primary, with TSIG
// (hmac-sha256), NOTIFY and IXFR from its journal, and internal/zonesync
// behind a real internal/dnsserver listener is the secondary, wired the way
// the node role wires it. The tests skip when knotd is missing and fail
// when CI=true.
package xfr
