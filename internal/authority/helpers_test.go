package authority

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/wire"
	"github.com/anycastdns/anycastdns/internal/zone"
)

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

// The zones in testdata/zones/ are copies of e2e/knotdiff/testdata/*.zone,
// the zones anycastd is compared with Knot on: unsigned, NSEC and NSEC3
// signed parents, and children served beside them.
var (
	parentZones = []string{"example.com.", "example.net.", "types.example.", "nsec.example.", "nsec3.example."}
	childZones  = []string{
		"kid.example.com.", "kidnods.example.com.", "orphan.example.com.",
		"kid.nsec.example.", "kidnods.nsec.example.", "kid.nsec3.example.", "kidnods.nsec3.example.",
	}
)

// loadSet loads the named zones from testdata/zones/ into one Set.
func loadSet(t testing.TB, origins ...string) *zone.Set {
	t.Helper()
	var zs []*zone.Zone
	for _, o := range origins {
		z, err := zone.Load(o, filepath.Join("testdata", "zones", o+"zone"))
		if err != nil {
			t.Fatalf("load %s: %v", o, err)
		}
		zs = append(zs, z)
	}
	return zone.NewSet(zs...)
}

// ask is one query as a client sends it.
type ask struct {
	name  string
	qtype uint16
	do    bool // EDNS with the DO bit
	// size is the client's buffer: 0 for TCP (65535 octets), 512 for UDP
	// without EDNS, else an EDNS buffer, from which the server's OPT record
	// (11 octets) is reserved as anycastd's handler does.
	size int
}

func (q ask) String() string {
	s := dns.TypeToString[q.qtype] + " " + q.name
	switch {
	case q.size == 0:
		s += " tcp"
	case q.size == 512 && !q.do:
		s += " udp512"
	default:
		s += fmt.Sprintf(" edns%d", q.size)
	}
	if q.do {
		s += " +do"
	}
	return s
}

// run answers q from set as anycastd's handler frames it and decodes the
// message.
func run(t testing.TB, set *zone.Set, q ask) (*dns.Msg, Result) {
	t.Helper()
	name, err := zone.NameWire(q.name)
	if err != nil {
		t.Fatal(err)
	}
	limit, reserve := q.size, 0
	switch {
	case limit == 0:
		limit = 65535
	case q.do || limit != 512:
		reserve = 11
	}
	var b wire.Builder
	b.Reset(nil, limit)
	b.Header(1, 0x8000)
	b.Question(name, q.qtype, dns.ClassINET)
	b.Reserve(reserve)
	var a Answerer
	res := a.Answer(set, Query{Name: wire.LowerName(make([]byte, len(name)), name), Type: q.qtype, Class: dns.ClassINET, DO: q.do}, &b)
	m := new(dns.Msg)
	if err := m.Unpack(b.Bytes()); err != nil {
		t.Fatalf("%s: unpack: %v", q, err)
	}
	return m, res
}
