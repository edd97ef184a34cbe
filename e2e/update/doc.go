// Package update proves DNS UPDATE (RFC 2136, issue #18) with real
// clients against the real binaries on loopback: `anycastd control` with
// an xfr.update policy that lets one TSIG key change the TXT records of
// _acme-challenge.example.com. and below, and `anycastd node` serving
// example.com. as a secondary of it. BIND's `nsupdate -y` (Debian
// bind9-dnsutils) adds and deletes TXT records through the control
// plane and through the node, which forwards them; each change must be
// served by the node within propagationBound. Changes the policy does not
// grant, a wrong key and failed prerequisites get their rcodes and change
// nothing. certbot's RFC 2136 plugin (Debian python3-certbot-dns-rfc2136)
// does an ACME DNS-01 round through its _RFC2136Client, as certbot does
// around a challenge, against the node and against the control plane, and
// is refused a record the policy does not grant.
//
// The tests skip when the tools are missing, and fail instead when
// CI=true. Run them with
//
//	go test ./e2e/update/
package update
