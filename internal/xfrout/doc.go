// Package xfrout is the control plane's side of replication: a DNS server
// that gives secondaries (the nodes, or any standard secondary) the zones of
// a ZoneSource, and the NOTIFYs that tell them when to come.
//
//   - SOA queries over UDP and TCP, so that secondaries can check serials.
//   - AXFR (RFC 5936) over TCP: the SOA, every record, the SOA again, in
//     messages of at most Config.MessageSize bytes written straight from the
//     zone's wire form.
//   - IXFR (RFC 1995) from the client's serial, out of the source's change
//     log: the sequence of difference sequences; the current SOA alone when
//     the client is current, or over UDP; the whole zone AXFR-style when
//     the log does not reach back to the client's serial.
//   - TSIG (RFC 8945, HMAC-SHA1/224/256/384/512) on requests and on every
//     message of an answer; the ACL (Config.AllowTransfer: prefixes, each
//     with an optional required key) applies to every request. Refused
//     requests get REFUSED; bad signatures NOTAUTH with the TSIG error;
//     transfers of unknown zones NOTAUTH.
//   - NOTIFY (RFC 1996) to every target on each change event, signed when
//     the target has a key, retried with exponential backoff.
//   - A catalog zone (RFC 9432, version 2) generated from the zone list,
//     served and notified like the other zones, with IXFR between its
//     versions.
package xfrout
