// Package dnssec is the end-to-end test of signing on the control plane
// (issue #16): the real `anycastd control`, with a signing key file, and
// an `anycastd node` that follows it through the catalog, on loopback. A
// zone is created and signed through the API, then edited through the API;
// after the enable and after every edit, the zone as the node serves it
// (every RRset queried from the node with DO, since the node refuses
// AXFR) is the control plane's signed zone record for record, signatures
// included, and passes ldns-verify-zone, kzonecheck and dnssec-verify. TestAlgorithmRollover
// runs an algorithm rollover through them (TTLs of seconds), checking every
// version the same way.
//
//	go test -v -run TestSignedZoneThroughNode ./e2e/dnssec/
//
// TestSign100k measures, with DNSSEC_RECORDS=100000, how long enabling
// signing of a zone of that many records takes through the API, and how
// long a one-record edit of the signed zone takes (the API's answer, and
// until the node answers the new record), beside the same edit unsigned:
//
//	DNSSEC_RECORDS=100000 go test -v -run TestSign100k ./e2e/dnssec/
package dnssec
