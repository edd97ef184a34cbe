// Package testzone builds the small zones the tests of the transfer
// server and the secondary zones serve. It is apart from testkit so that
// package zone's own tests may use testkit.
package testzone

import (
	"fmt"
	"testing"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/zone"
)

// New returns zone name with serial: SOA, NS ns1, ns1 A 192.0.2.1, hosts
// A records host0 … host{hosts-1} at 10.0.0.0 upwards (host i at 10.i>>16.
// i>>8.i, low bytes), then extra, each a record in presentation form.
func New(t testing.TB, name string, serial uint32, hosts int, extra ...string) *zone.Zone {
	t.Helper()
	lines := []string{
		fmt.Sprintf("%s 3600 IN SOA ns1.%s hostmaster.%s %d 3600 600 86400 300", name, name, name, serial),
		fmt.Sprintf("%s 3600 IN NS ns1.%s", name, name),
		fmt.Sprintf("ns1.%s 3600 IN A 192.0.2.1", name),
	}
	for i := range hosts {
		lines = append(lines, fmt.Sprintf("host%d.%s 300 IN A 10.%d.%d.%d", i, name, i>>16&255, i>>8&255, i&255))
	}
	lines = append(lines, extra...)
	rrs := make([]dns.RR, 0, len(lines))
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		rrs = append(rrs, rr)
	}
	z, err := zone.FromRecords(name, rrs, "test")
	if err != nil {
		t.Fatal(err)
	}
	return z
}
