// Package zonesync makes the node a secondary: it keeps zones in step with
// their primaries (anycastdns's control plane or any standard primary such as
// BIND, Knot, NSD or PowerDNS) and persists them so that the node restarts
// without the primary.
//
// A Manager runs one secondary per zone. Each checks the primary's SOA serial
// on the zone's SOA refresh timer (retry timer after a failure, floors and
// caps in Timers), and at once when a NOTIFY (RFC 1996) arrives, then pulls
// the changes with IXFR (RFC 1995), falling back to AXFR (RFC 5936). All
// exchanges are over TCP and signed with TSIG (RFC 8945) when the primary has
// a key. A new version is validated by package zone before it replaces the
// served one; one that fails keeps the previous version serving. Accepted
// versions are written to the data directory (master file + state file, each
// replaced atomically, the state holding the master file's SHA-256 and record
// count); on start those that match are served at once, the others are
// discarded and transferred again. A zone that has not
// been confirmed by a primary for its SOA expire time is reported expired:
// the node keeps it in its zone set marked expired, answers SERVFAIL for it
// alone, and stays announced (every PoP follows the same primaries, so
// withdrawing would take every zone down everywhere).
//
// A catalog zone (RFC 9432, version 2) provisions member zones with the
// catalog's primaries: members that appear are added, members that disappear
// are removed and deleted from disk.
package zonesync
