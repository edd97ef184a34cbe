package zonesync

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/miekg/dns"

	"github.com/anycastdns/anycastdns/internal/zone"
)

// bigZone is example.com. with n extra A records.
func bigZone(b *testing.B, serial uint32, n int, extra ...string) *zone.Zone {
	lines := make([]string, 0, n+len(extra))
	for i := range n {
		lines = append(lines, fmt.Sprintf("h%d.example.com. 300 IN A 10.%d.%d.%d", i, i>>16&255, i>>8&255, i&255))
	}
	return makeZone(b, serial, append(lines, extra...)...)
}

// BenchmarkAXFR100k: a full transfer of a 100,000-record zone over loopback
// TCP with TSIG, built and validated into a zone.
func BenchmarkAXFR100k(b *testing.B) {
	z := bigZone(b, 1, 100_000)
	p := newPrimary(b, nil, z, "")
	p.perMsg = 500
	m, err := New(Config{DataDir: b.TempDir(), Keys: testKeys(),
		Zones: []Zone{{Name: origin, Primaries: []Primary{{Addr: mustAddrPort(p.addr), Key: testKey}}}}}, testLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	s := m.zones[origin]
	b.ReportAllocs()
	for b.Loop() {
		nz, err := s.pull(context.Background(), s.primaries[0], nil)
		if err != nil || nz.Records != z.Records {
			b.Fatalf("%v %v", nz, err)
		}
	}
}

// BenchmarkIXFRApply100k: applying a 2-record IXFR to a 100,000-record zone
// (zone.Apply: the cost of the names changed, not of the zone).
func BenchmarkIXFRApply100k(b *testing.B) {
	old := bigZone(b, 1, 100_000)
	d := delta{
		from: old.SOA(), to: bigZone(b, 2, 0).SOA(),
		del: rrs(b, "h5.example.com. 300 IN A 10.0.0.5"),
		add: rrs(b, "h5.example.com. 300 IN A 10.0.0.6", "new.example.com. 60 IN TXT \"x\""),
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := applySteps(old, []delta{d}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIXFRApplyFile: an IXFR of one record (mail's A replaced, new
// SOA) applied as the secondary applies it (applySteps: the steps from
// dns.RR to wire form, then zone.Apply) to the zone of $ZONE_BENCH_FILE,
// origin bench.example. — e.g. the 1,000,000-name zone of make
// bench-change (go run ./bench/changebench -out DIR keeps it). Each
// iteration applies the step to the loaded version: the cost of one IXFR
// into a zone of that size.
func BenchmarkIXFRApplyFile(b *testing.B) {
	path := os.Getenv("ZONE_BENCH_FILE")
	if path == "" {
		b.Skip("ZONE_BENCH_FILE names no zone file of bench.example.")
	}
	z, err := zone.Load("bench.example.", path)
	if err != nil {
		b.Fatal(err)
	}
	z.Prepare() // as after an AXFR (secondary.buildFrom)
	soa := z.SOA()
	next := dns.Copy(soa).(*dns.SOA)
	next.Serial++
	d := delta{from: soa, to: next,
		del: rrs(b, "mail.bench.example. 3600 IN A 203.0.113.25"),
		add: rrs(b, "mail.bench.example. 3600 IN A 203.0.113.26"),
	}
	b.ReportAllocs()
	for b.Loop() {
		nz, err := applySteps(z, []delta{d})
		if err != nil || nz.Serial != next.Serial {
			b.Fatal(err)
		}
	}
}
