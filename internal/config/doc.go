// Package config decodes and validates the YAML configuration of each
// anycastd role.
//
// Documents are decoded through yaml.Node rather than struct tags so that
// every problem can be reported with the file, line and column it comes from
// and the dotted path of the field (for example
// "node.yaml:14:21: limits.tcp_idle_timeout: invalid duration \"10x\"").
// Decoding is strict: unknown and duplicate keys are errors, scalars must have
// the expected type, durations are Go duration strings ("250ms", "10s") and
// addresses are parsed into netip types.
//
// Loading is decode, then defaults, then Validate; all problems found are
// returned together, joined with errors.Join and sorted by position, each one
// a *FieldError that matches ErrInvalid with errors.Is. A key whose value is
// empty (null) is treated as absent. Relative file paths in a configuration
// are resolved against the directory of the configuration file.
//
// The package does no logging itself; NewLogger is the one place the roles'
// logger is built. LoadNode reads one file and ParseNode looks up
// os.Hostname when identity.name is absent.
package config
