// Package xfrout holds the interoperability tests of the control plane's
// transfer server (internal/xfrout) with Knot DNS as its secondary: zones
// live in a real SQLite store (internal/store), the server runs in the test
// process on loopback, and knotd, started with a generated configuration in
// a temporary directory, follows it by NOTIFY, AXFR and IXFR with TSIG
// hmac-sha256 — and, through the catalog zone, picks up and drops zones by
// itself.
//
// The tests skip when knotd is not installed (Debian package knot), and
// fail instead when CI=true. Run them with
//
//	go test ./e2e/xfrout/
package xfrout
