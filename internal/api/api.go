// Package api is the control plane's REST API: HTTP handlers over a
// Backend (the zone store) and the JSON types they exchange, which
// internal/apiclient shares. docs/api.md is its reference, with examples.
//
// Every request carries "Authorization: Bearer TOKEN" with one of the
// configured tokens (compared in constant time). Paths are versioned:
//
//	GET    /v1/zones                               list zones
//	POST   /v1/zones                               create: JSON CreateZone, or text/dns with ?name=ZONE[&serial_policy=P][&allow_tld=true]
//	GET    /v1/zones/{zone}                        the zone's description and every RRset
//	DELETE /v1/zones/{zone}                        delete the zone
//	GET    /v1/zones/{zone}/zonefile               export as RFC 1035 text (text/dns)
//	PUT    /v1/zones/{zone}/zonefile               import RFC 1035 text: replace all content, creating the zone if needed [?allow_tld=true]
//	GET    /v1/zones/{zone}/rrsets[?name=NAME]     every RRset (at one name)
//	GET    /v1/zones/{zone}/rrsets/{name}/{type}   one RRset, with an ETag
//	PUT    /v1/zones/{zone}/rrsets/{name}/{type}   replace it: {"ttl":300,"records":["192.0.2.1"]}
//	DELETE /v1/zones/{zone}/rrsets/{name}/{type}   delete it
//	GET    /v1/zones/{zone}/dnssec                 the zone's signing: policy, keys, states, next event (dnssec.go)
//	PUT    /v1/zones/{zone}/dnssec                 enable signing: {"enabled":true,"policy":"default"}; disable: {"enabled":false}
//	POST   /v1/zones/{zone}/dnssec/ds-seen         {"tag":N}: the parent publishes the DS of a rollover's new key
//	GET    /v1/zones/{zone}/pools                  every pool (steered RRset) of the zone
//	GET    /v1/zones/{zone}/pools/{name}/{type}    one pool (type A or AAAA)
//	PUT    /v1/zones/{zone}/pools/{name}/{type}    define it: {"ttl":30,"policy":["up","weighted"],"endpoints":[...]}
//	DELETE /v1/zones/{zone}/pools/{name}/{type}    delete it
//	GET    /v1/fleet[?zone=ZONE]                   the nodes that joined over the stream (fleet.View)
//	DELETE /v1/fleet/{node}                        forget a member that is gone
//	POST   /v1/fleet/{node}/revoke                 revoke a member; DELETE lifts the revocation
//	POST   /v1/fleet/observations                  a monitor's report (fleet.Report)
//	PUT    /v1/fleet/pops/{pop}/pin                pin a PoP's level: {"level":"shed-2","reason":"..."}; DELETE lifts it
//	GET    /fleet                                  the fleet page (no token: it asks for one)
//
// Names in paths: a zone with or without the trailing dot, the root as
// "%2E" (PathSegment); an RRset name "@" for the apex, a name with a
// trailing dot or ending in the zone's name as it is, anything else
// relative to the zone ("www"). Record data is in presentation format,
// names in it relative to the zone unless they end in a dot, as in a zone
// file; RFC 3597 "\# len hex" works for every type. TXT and SPF data with
// spaces must be quoted ("\"v=spf1 -all\""): unquoted, it would be split
// into a string per word, so it is refused. A PUT of an RRset without a
// ttl keeps the RRset's TTL, or gives a new RRset the TTL of the zone's
// SOA. PUT and DELETE of an RRset honour If-Match (with the ETag of a GET)
// and If-None-Match: * for safe read-modify-write; a failed condition is
// 412.
//
// A zone is created only under a name the nodes serve
// (zone.ValidateZoneName: letters, digits, '-', '_' and '/'; no escapes, no
// wildcard), and the root or a top-level domain only with allow_tld. A
// zone whose signing is enabled (dnssec.go) is signed by the control
// plane: every edit is signed with it, and its DNSSEC records are the
// signer's alone (409). A zone that holds DNSSEC records without that
// (imported signed) is changed only by importing it whole, signed with a
// newer serial or unsigned, or by enabling signing: an edit of one RRset
// would leave bogus signatures, so it is refused with 409.
//
// A pool is stored as a record of the private-use type steer.TypePool at
// its owner, so it replicates with the zone; it is written only through
// the pools endpoints (a PUT of that type through rrsets is refused), and
// refused in a DNSSEC-signed zone with 409.
//
// Errors are JSON {"error": "..."}: 400 for bad input (naming the record or
// field), 401 without a valid token, 404, 405, 409 when the zone exists or
// an edit would break its signatures, 412, 413 for a body over the limit,
// 415 for a wrong Content-Type, 500 otherwise.
package api

import (
	"net/url"
	"strings"
	"time"
)

// Paths and media types.
const (
	PathZones     = "/v1/zones"
	MediaJSON     = "application/json"
	MediaZoneFile = "text/dns" // RFC 4027
)

// ZonePath is the path of a zone.
func ZonePath(zone string) string { return PathZones + "/" + PathSegment(zone) }

// PathSegment escapes a zone or owner name for one segment of a path. The
// root "." (and "..") are escaped too ("%2E"): as they are, clients and
// servers read them as "this directory" and drop them, so that
// DELETE /v1/zones/. would become DELETE /v1/zones.
func PathSegment(name string) string {
	s := url.PathEscape(name)
	if s == "." || s == ".." {
		s = strings.ReplaceAll(s, ".", "%2E")
	}
	return s
}

// ZoneFilePath is the path of a zone's RFC 1035 text.
func ZoneFilePath(zone string) string { return ZonePath(zone) + "/zonefile" }

// RRsetsPath is the path of a zone's RRsets.
func RRsetsPath(zone string) string { return ZonePath(zone) + "/rrsets" }

// RRsetPath is the path of one RRset.
func RRsetPath(zone, name, typ string) string {
	return RRsetsPath(zone) + "/" + PathSegment(name) + "/" + PathSegment(typ)
}

// ZoneInfo describes the current version of a zone.
type ZoneInfo struct {
	Name         string    `json:"name"`
	Serial       uint32    `json:"serial"`
	Records      int       `json:"records"`
	Updated      time.Time `json:"updated"`
	SerialPolicy string    `json:"serial_policy"`
}

// ZoneList is the answer to GET /v1/zones.
type ZoneList struct {
	Zones []ZoneInfo `json:"zones"`
}

// Zone is the answer to GET /v1/zones/{zone}: the description and every
// RRset, in canonical order.
type Zone struct {
	ZoneInfo
	RRsets []RRset `json:"rrsets"`
}

// RRsetList is the answer to GET /v1/zones/{zone}/rrsets.
type RRsetList struct {
	RRsets []RRset `json:"rrsets"`
}

// RRset is the records of one type at one name. In a PUT, name and type
// may be left out (the path gives them), and so may ttl (see PutRRset).
// The records of an RRSIG RRset are every signature at the name; ttl is
// then the lowest.
type RRset struct {
	Name    string   `json:"name,omitempty"`
	Type    string   `json:"type,omitempty"`
	TTL     uint32   `json:"ttl"`
	Records []string `json:"records"` // rdata in presentation format
}

// PutRRset is the body of a PUT of an RRset that may leave the TTL out:
// without one, an existing RRset keeps its TTL and a new one gets the TTL
// of the zone's SOA record (the zone's $TTL, in most zone files).
type PutRRset struct {
	TTL     *uint32  `json:"ttl,omitempty"`
	Records []string `json:"records"`
}

// CreateZone is the body of POST /v1/zones in JSON. Records are whole
// records in zone-file form, relative to the zone ("@ 3600 IN SOA ...",
// "www 300 IN A 192.0.2.1"; the TTL defaults to 3600).
type CreateZone struct {
	Name         string   `json:"name"`
	SerialPolicy string   `json:"serial_policy,omitempty"` // increment or date; "" = the server's default
	Records      []string `json:"records"`
	// AllowTLD must be set to create the root zone or a top-level domain
	// (a name of one label), so that "com" meant as "example.com" is not
	// created by mistake.
	AllowTLD bool `json:"allow_tld,omitempty"`
}

// WriteResult answers a write of an RRset: the zone's serial after it, and
// the RRset as stored (absent after a delete).
type WriteResult struct {
	Serial uint32 `json:"serial"`
	RRset  *RRset `json:"rrset,omitempty"`
}

// Error is the body of every error answer.
type Error struct {
	Error string `json:"error"`
}
