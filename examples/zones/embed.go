// Package zones holds the example zone that `anycastd standalone` seeds into
// an empty store and that `make run` and examples/node.yaml serve.
package zones

import _ "embed"

// ExampleCom is the master file of example.com.
//
//go:embed example.com.zone
var ExampleCom string
