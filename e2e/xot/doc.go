// Package xot holds the end-to-end tests of zone transfers over TLS (XoT,
// RFC 9103) with the real binaries: `anycastd control` serving XoT from
// xfr.tls and `anycastd node` pulling a zone from it over TLS (TSIG still
// applied) and serving it; a node that trusts another CA refuses the
// transfer and logs why; SIGHUP swaps the control plane's certificate.
// Interoperability with BIND 9.18 (Debian bind9), both ways: named as an
// XoT secondary of our control plane, and named as the XoT primary of our
// node. Every process runs on loopback in a temporary directory and is
// stopped by its PID; certificates are made by the test.
//
// The BIND tests skip when named is missing (Debian package bind9), and
// fail instead when CI=true. Run them with
//
//	go test ./e2e/xot/
package xot
