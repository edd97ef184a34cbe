package zonesync

import (
	"context"
	"fmt"
	"testing"

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
