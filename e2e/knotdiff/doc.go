// Package knotdiff is the differential correctness test of anycastd against
// Knot DNS: both servers load the same zones from testdata/, receive the same
// queries, and their responses are compared field by field. The only
// differences tolerated are listed, each with its RFC reason, in
// acceptedDifferences and in README.md.
//
// The package holds tests only; run them with
//
//	go test ./e2e/knotdiff/
package knotdiff
